/* ----------------------------------------------------------------------
   nequip_pol: integrity check of a compiled model (*.nequip.pt2, a zip archive) before loading.

   torch's zip reader does not verify the CRC-32 of the members it extracts, so a package with
   changed bytes can load a damaged shared library (a crash, or wrong numbers), and a package cut
   short fails with "failed finding central directory" without saying why. pol_zip_problem()
   reads the archive once (end record, ZIP64 end record, central directory, every stored
   member's CRC-32) and returns what is wrong, or "" for a sound archive.
------------------------------------------------------------------------- */

#ifndef LMP_POL_ZIP_CHECK_H
#define LMP_POL_ZIP_CHECK_H

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace nequip_pol {

inline uint32_t zip_crc32(uint32_t crc, const unsigned char *buf, size_t n)
{
  struct Table {
    uint32_t v[256];
    Table()
    {
      for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        v[i] = c;
      }
    }
  };
  static const Table table;
  crc = ~crc;
  for (size_t i = 0; i < n; i++) crc = table.v[(crc ^ buf[i]) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

inline uint64_t zip_le(const unsigned char *p, int nbytes)
{
  uint64_t v = 0;
  for (int i = nbytes - 1; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

// what is wrong with the zip archive at path ("" when it is complete and every stored member
// matches its CRC-32); the text completes "the file is ..." style messages
inline std::string pol_zip_problem(const std::string &path)
{
  FILE *fp = fopen(path.c_str(), "rb");
  if (!fp) return "cannot be opened";
  struct Closer {
    FILE *f;
    ~Closer() { fclose(f); }
  } closer{fp};
  auto read_at = [&](uint64_t offset, unsigned char *buf, size_t n) -> bool {
    if (fseeko(fp, (off_t) offset, SEEK_SET) != 0) return false;
    return fread(buf, 1, n, fp) == n;
  };
  if (fseeko(fp, 0, SEEK_END) != 0) return "cannot be read";
  const uint64_t size = (uint64_t) ftello(fp);
  unsigned char head[4] = {0, 0, 0, 0};
  if (size < 4 || !read_at(0, head, 4) || zip_le(head, 4) != 0x04034b50u)
    return "not a zip archive (nequip-compile writes *.nequip.pt2 as one): another format, "
           "or an empty or overwritten file";
  // the end-of-central-directory record, within the last 64 KiB + 22 bytes
  const uint64_t tail_len = std::min<uint64_t>(size, 65557);
  std::vector<unsigned char> tail(tail_len);
  if (!read_at(size - tail_len, tail.data(), tail_len)) return "cannot be read";
  int64_t eocd = -1;
  for (int64_t i = (int64_t) tail_len - 22; i >= 0; i--)
    if (zip_le(&tail[i], 4) == 0x06054b50u) {
      eocd = i;
      break;
    }
  if (eocd < 0)
    return "truncated: the zip archive has no end record (" + std::to_string(size) +
        " bytes); the file was cut short by an interrupted save or copy";
  uint64_t entries = zip_le(&tail[eocd + 10], 2);
  uint64_t cd_size = zip_le(&tail[eocd + 12], 4);
  uint64_t cd_offset = zip_le(&tail[eocd + 16], 4);
  if ((entries == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_offset == 0xFFFFFFFFu) && eocd >= 20 &&
      zip_le(&tail[eocd - 20], 4) == 0x07064b50u) {  // ZIP64 locator -> ZIP64 end record
    unsigned char z64[56];
    if (!read_at(zip_le(&tail[eocd - 20 + 8], 8), z64, 56) || zip_le(z64, 4) != 0x06064b50u)
      return "corrupted: bad ZIP64 end record";
    entries = zip_le(z64 + 32, 8);
    cd_size = zip_le(z64 + 40, 8);
    cd_offset = zip_le(z64 + 48, 8);
  }
  if (cd_offset + cd_size > size) return "truncated or corrupted: the central directory lies past the end";
  std::vector<unsigned char> cd(cd_size);
  if (cd_size && !read_at(cd_offset, cd.data(), cd_size)) return "cannot be read";
  std::vector<unsigned char> buf(1 << 20);
  size_t p = 0;
  for (uint64_t e = 0; e < entries; e++) {
    if (p + 46 > cd.size() || zip_le(&cd[p], 4) != 0x02014b50u)
      return "corrupted: bad central directory entry " + std::to_string(e);
    const uint64_t method = zip_le(&cd[p + 10], 2);
    const uint32_t crc = (uint32_t) zip_le(&cd[p + 16], 4);
    uint64_t csize = zip_le(&cd[p + 20], 4), usize = zip_le(&cd[p + 24], 4);
    const size_t name_len = zip_le(&cd[p + 28], 2), extra_len = zip_le(&cd[p + 30], 2),
                 comment_len = zip_le(&cd[p + 32], 2);
    uint64_t local = zip_le(&cd[p + 42], 4);
    if (p + 46 + name_len + extra_len > cd.size())
      return "corrupted: bad central directory entry " + std::to_string(e);
    const std::string name(reinterpret_cast<const char *>(&cd[p + 46]), name_len);
    // ZIP64 extra field: the 64-bit values of the fields set to 0xFFFFFFFF, in this order
    for (size_t x = p + 46 + name_len; x + 4 <= p + 46 + name_len + extra_len;) {
      const uint64_t id = zip_le(&cd[x], 2), len = zip_le(&cd[x + 2], 2);
      if (id == 1) {
        size_t q = x + 4;
        if (usize == 0xFFFFFFFFu && q + 8 <= x + 4 + len) usize = zip_le(&cd[q], 8), q += 8;
        if (csize == 0xFFFFFFFFu && q + 8 <= x + 4 + len) csize = zip_le(&cd[q], 8), q += 8;
        if (local == 0xFFFFFFFFu && q + 8 <= x + 4 + len) local = zip_le(&cd[q], 8), q += 8;
      }
      x += 4 + len;
    }
    p += 46 + name_len + extra_len + comment_len;
    unsigned char lh[30];
    if (local + 30 > size || !read_at(local, lh, 30) || zip_le(lh, 4) != 0x04034b50u)
      return "corrupted: the member " + name + " has no valid header";
    const uint64_t data = local + 30 + zip_le(lh + 26, 2) + zip_le(lh + 28, 2);
    if (data + csize > size) return "truncated: the member " + name + " ends past the file";
    if (method != 0 || (crc == 0 && usize > 0)) continue;  // compressed, or written without CRC
    uint32_t c = 0;
    for (uint64_t done = 0; done < csize;) {
      const size_t n = (size_t) std::min<uint64_t>(buf.size(), csize - done);
      if (!read_at(data + done, buf.data(), n)) return "cannot be read";
      c = zip_crc32(c, buf.data(), n);
      done += n;
    }
    if (c != crc) return "corrupted: the member " + name + " fails its CRC-32 check (changed bytes)";
  }
  return "";
}

}    // namespace nequip_pol

#endif
