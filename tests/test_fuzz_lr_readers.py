"""Property-based tests (Hypothesis) of the linear-response readers, as tests/test_fuzz_readers.py
does for the other readers: random corruptions (truncation, NaN, a word or an overflow in a
number, a number dropped, an empty or binary file) of a VASP OUTCAR or a pw.x / ph.x output give
one error of the reader's family whose message names the file, never another exception, and the
verbs (``parse-vasp``, ``parse-qe-ph``) exit with status 2 and write nothing. A corruption the
readers do not see (outside the lines they read) gives a frame with finite values.

Bounded by the ``default-suite`` profile of tests/conftest.py.
"""

import re

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import given, strategies as st  # noqa: E402

import lr_outputs as L  # noqa: E402
from nequip_pol.io.errors import NequipPolIOError  # noqa: E402
from nequip_pol.io.qe_ph import parse_qe_ph_runs  # noqa: E402
from nequip_pol.io.vasp import parse_vasp_runs  # noqa: E402

_NUMBER = re.compile(r"-?\d+\.\d+")
KINDS = ["truncate", "nan", "word", "overflow", "drop_number", "empty", "binary"]


def corrupt(text: str, kind: str, where: float) -> str:
    numbers = list(_NUMBER.finditer(text))
    m = numbers[min(int(where * len(numbers)), len(numbers) - 1)]
    if kind == "truncate":
        return text[: int(where * (len(text) - 1))]
    if kind in ("nan", "word", "overflow", "drop_number"):
        new = {"nan": "NaN", "word": m.group(0) + "x", "overflow": "*******"}.get(
            kind, ""
        )
        return text[: m.start()] + new + text[m.end() :]
    if kind == "empty":
        return ""
    return "\x00\x01\x02binary\xff" * 10


def _finite(frames):
    for f in frames:
        for d in (f.info, f.arrays):
            for k, v in d.items():
                if k not in ("numbers",):
                    assert np.all(np.isfinite(np.asarray(v, dtype=float))), k


def _cli(argv):
    try:
        from nequip_pol.cli import main
    except ImportError:  # pragma: no cover
        pytest.skip("nequip_pol.cli not importable")
    return main(argv)


def _verb_writes_nothing(verb, folder, root, bad, capsys):
    out = root / "out.xyz"
    status = _cli([verb, str(folder), "-o", str(out)])
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err and str(bad) in err, err
    assert err.startswith(f"nequip-pol {verb}: error: "), err
    assert not out.exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".out.xyz")]


@given(kind=st.sampled_from(KINDS), where=st.floats(0.0, 1.0))
def test_corrupted_outcar_gives_a_named_error(tmp_path_factory, kind, where, capsys):
    root = tmp_path_factory.mktemp("vasp_bad")
    path = L.make_outcar(root / "run")
    text = corrupt(path.read_text(), kind, where)
    path.write_bytes(text.encode("latin-1", errors="replace"))
    try:
        frames = parse_vasp_runs(path.parent)
    except NequipPolIOError as exc:
        assert str(path) in str(exc), (kind, str(exc))
        _verb_writes_nothing("parse-vasp", path.parent, root, path, capsys)
        return
    # accepted: the change was outside what the reader uses
    assert kind in ("truncate", "nan", "word", "overflow", "drop_number"), kind
    _finite(frames)


@given(
    kind=st.sampled_from(KINDS),
    which=st.sampled_from(["scf.out", "ph.out"]),
    where=st.floats(0.0, 1.0),
)
def test_corrupted_qe_outputs_give_a_named_error(
    tmp_path_factory, kind, which, where, capsys
):
    root = tmp_path_factory.mktemp("qe_bad")
    folder = L.make_qe_ph_run(
        root / "run",
        scf=L.pw_scf_text(stress_ry_bohr3=np.diag([1e-5, 2e-5, 3e-5])),
        ph=L.ph_text(),
    )
    bad = folder / which
    bad.write_bytes(corrupt(bad.read_text(), kind, where).encode("latin-1", "replace"))
    try:
        frames = parse_qe_ph_runs(folder)
    except NequipPolIOError as exc:
        # a file that no longer reads as a pw.x / ph.x output is reported as missing, which
        # names the folder holding it
        assert str(bad) in str(exc) or str(folder) in str(exc), (kind, str(exc))
        _verb_writes_nothing("parse-qe-ph", folder, root, folder, capsys)
        return
    assert kind in ("truncate", "nan", "word", "overflow", "drop_number"), kind
    _finite(frames)
