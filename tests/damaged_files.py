"""Damaged copies of model files (zip archives) for the loader tests: cut short, or bytes changed."""

import zipfile
from pathlib import Path


def truncated_copy(src, dst, fraction=0.5):
    """``dst``: the first ``fraction`` of ``src``'s bytes (an interrupted save or copy)."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return Path(dst)


def corrupted_copy(src, dst):
    """``dst``: ``src`` with one byte flipped in the middle of its largest member's data
    (the archive's structure intact: only the member's CRC-32 tells)."""
    with zipfile.ZipFile(src) as archive:
        info = max(archive.infolist(), key=lambda i: i.compress_size)
    data = bytearray(Path(src).read_bytes())
    # the data follow the 30-byte local header, the name and the local extra field
    start = info.header_offset + 30
    name_len = int.from_bytes(data[start - 4 : start - 2], "little")
    extra_len = int.from_bytes(data[start - 2 : start], "little")
    data[start + name_len + extra_len + info.compress_size // 2] ^= 0xFF
    Path(dst).write_bytes(bytes(data))
    return Path(dst)
