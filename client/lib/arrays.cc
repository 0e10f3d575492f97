#include "client/lib/arrays.h"

#include <zlib.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/lib/inputs.h"

namespace agt::client {
namespace {

absl::Status Bad(absl::string_view source, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": ", what));
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// prod(shape), or an error when a dimension is negative or the product
// exceeds kMaxArrayValues (checked before multiplying, so it cannot overflow).
absl::StatusOr<int64_t> CountValues(const std::vector<int64_t>& shape, absl::string_view source) {
  int64_t count = 1;
  for (int64_t d : shape) {
    if (d < 0) return Bad(source, absl::StrCat("negative dimension in shape ", ShapeText(shape)));
    if (d != 0 && count > kMaxArrayValues / d) {
      return Bad(source, absl::StrCat("shape ", ShapeText(shape), " holds more than ",
                                      kMaxArrayValues, " values"));
    }
    count *= d;
  }
  return count;
}

uint64_t LoadBig(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | p[i];
  return v;
}

uint64_t LoadLittle(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// One element of `width` bytes as a double.
enum class Kind { kUnsigned, kSigned, kFloat };

double Decode(const unsigned char* p, int width, Kind kind, bool big_endian) {
  const uint64_t raw = big_endian ? LoadBig(p, width) : LoadLittle(p, width);
  switch (kind) {
    case Kind::kUnsigned:
      return static_cast<double>(raw);
    case Kind::kSigned: {
      const int shift = 64 - 8 * width;
      return static_cast<double>(static_cast<int64_t>(raw << shift) >> shift);
    }
    case Kind::kFloat:
      if (width == 4) return std::bit_cast<float>(static_cast<uint32_t>(raw));
      return std::bit_cast<double>(raw);
  }
  return 0.0;
}

absl::Status DecodeValues(absl::string_view payload, int64_t count, int width, Kind kind,
                          bool big_endian, absl::string_view source, NumericArray* out) {
  const uint64_t need = static_cast<uint64_t>(count) * static_cast<uint64_t>(width);
  if (payload.size() < need) {
    return Bad(source, absl::StrCat("truncated: shape ", ShapeText(out->shape), " needs ", need,
                                    " bytes of data, the file has ", payload.size()));
  }
  if (payload.size() > need) {
    return Bad(source, absl::StrCat(payload.size() - need, " bytes after the ", count,
                                    " values of shape ", ShapeText(out->shape)));
  }
  out->values.resize(static_cast<size_t>(count));
  const auto* p = reinterpret_cast<const unsigned char*>(payload.data());
  for (int64_t i = 0; i < count; ++i) {
    const double v = Decode(p + i * width, width, kind, big_endian);
    if (!std::isfinite(v)) {
      return Bad(source, absl::StrCat("value ", i, " is ", v, " (NaN and infinities are refused)"));
    }
    out->values[static_cast<size_t>(i)] = v;
  }
  out->integral = kind != Kind::kFloat;
  out->unsigned_bytes = kind == Kind::kUnsigned && width == 1;
  return absl::OkStatus();
}

}  // namespace

int64_t NumericArray::row_size() const {
  int64_t n = 1;
  for (size_t i = 1; i < shape.size(); ++i) n *= shape[i];
  return n;
}

absl::StatusOr<std::string> MaybeGunzip(std::string bytes, absl::string_view source,
                                        int64_t max_bytes) {
  if (bytes.size() < 2 || static_cast<unsigned char>(bytes[0]) != 0x1f ||
      static_cast<unsigned char>(bytes[1]) != 0x8b) {
    return bytes;
  }
  z_stream zs;
  std::memset(&zs, 0, sizeof zs);
  if (inflateInit2(&zs, 15 + 32) != Z_OK) return Bad(source, "zlib initialisation failed");
  std::string out;
  zs.next_in = reinterpret_cast<Bytef*>(bytes.data());
  zs.avail_in = static_cast<uInt>(std::min<size_t>(bytes.size(), std::numeric_limits<uInt>::max()));
  int rc = Z_OK;
  char buffer[1 << 16];
  while (rc != Z_STREAM_END) {
    zs.next_out = reinterpret_cast<Bytef*>(buffer);
    zs.avail_out = sizeof buffer;
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&zs);
      return Bad(source, absl::StrCat("not a valid gzip stream (",
                                      rc == Z_BUF_ERROR ? "truncated" : "corrupt", ")"));
    }
    out.append(buffer, sizeof buffer - zs.avail_out);
    if (static_cast<int64_t>(out.size()) > max_bytes) {
      inflateEnd(&zs);
      return Bad(source, absl::StrCat("inflates to more than ", max_bytes, " bytes"));
    }
  }
  inflateEnd(&zs);
  return out;
}

absl::StatusOr<NumericArray> ParseIdx(absl::string_view bytes, absl::string_view source) {
  if (bytes.size() < 4) return Bad(source, "truncated: an IDX file starts with a 4-byte magic");
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (p[0] != 0 || p[1] != 0) {
    return Bad(source, absl::StrCat("bad magic 0x", absl::Hex(LoadBig(p, 4), absl::kZeroPad8),
                                    " (an IDX file starts with two zero bytes)"));
  }
  int width = 0;
  Kind kind = Kind::kUnsigned;
  switch (p[2]) {
    case 0x08:
      width = 1, kind = Kind::kUnsigned;
      break;
    case 0x09:
      width = 1, kind = Kind::kSigned;
      break;
    case 0x0B:
      width = 2, kind = Kind::kSigned;
      break;
    case 0x0C:
      width = 4, kind = Kind::kSigned;
      break;
    case 0x0D:
      width = 4, kind = Kind::kFloat;
      break;
    case 0x0E:
      width = 8, kind = Kind::kFloat;
      break;
    default:
      return Bad(source, absl::StrCat("unknown IDX type 0x", absl::Hex(p[2], absl::kZeroPad2),
                                      " (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D "
                                      "float32, 0x0E float64)"));
  }
  const int rank = p[3];
  if (rank < 1 || rank > 4) {
    return Bad(source, absl::StrCat("IDX rank ", rank, " (1 to 4 are read)"));
  }
  const size_t header = 4 + 4 * static_cast<size_t>(rank);
  if (bytes.size() < header) {
    return Bad(source, absl::StrCat("truncated: the header needs ", header, " bytes, the file has ",
                                    bytes.size()));
  }
  NumericArray out;
  for (int i = 0; i < rank; ++i)
    out.shape.push_back(static_cast<int64_t>(LoadBig(p + 4 + 4 * i, 4)));
  absl::StatusOr<int64_t> count = CountValues(out.shape, source);
  if (!count.ok()) return count.status();
  if (absl::Status s = DecodeValues(bytes.substr(header), *count, width, kind, /*big_endian=*/true,
                                    source, &out);
      !s.ok()) {
    return s;
  }
  return out;
}

namespace {

// The value text of `key` in a .npy header dict, e.g. "'<f8'" or "(3, 4)".
absl::StatusOr<std::string> HeaderValue(absl::string_view header, absl::string_view key,
                                        absl::string_view source) {
  const std::string quoted = absl::StrCat("'", key, "'");
  const size_t at = header.find(quoted);
  if (at == absl::string_view::npos) {
    return Bad(source, absl::StrCat(".npy header has no ", quoted, " entry"));
  }
  absl::string_view rest = header.substr(at + quoted.size());
  rest = absl::StripLeadingAsciiWhitespace(rest);
  if (!absl::ConsumePrefix(&rest, ":")) return Bad(source, ".npy header is not a dict");
  rest = absl::StripLeadingAsciiWhitespace(rest);
  size_t end = 0;
  if (absl::StartsWith(rest, "(")) {
    end = rest.find(')');
    if (end == absl::string_view::npos) return Bad(source, ".npy header shape is not closed");
    ++end;
  } else if (absl::StartsWith(rest, "'")) {
    end = rest.find('\'', 1);
    if (end == absl::string_view::npos) return Bad(source, ".npy header string is not closed");
    ++end;
  } else {
    end = rest.find_first_of(",}");
    if (end == absl::string_view::npos) end = rest.size();
  }
  return std::string(absl::StripAsciiWhitespace(rest.substr(0, end)));
}

}  // namespace

absl::StatusOr<NumericArray> ParseNpy(absl::string_view bytes, absl::string_view source) {
  constexpr absl::string_view kMagic("\x93NUMPY", 6);
  if (bytes.size() < 10 || bytes.substr(0, 6) != kMagic) {
    return Bad(source, "bad magic: not a .npy file (it starts with \\x93NUMPY)");
  }
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const int major = p[6];
  size_t header_len = 0;
  size_t start = 0;
  if (major == 1) {
    header_len = LoadLittle(p + 8, 2);
    start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return Bad(source, "truncated .npy header");
    header_len = LoadLittle(p + 8, 4);
    start = 12;
  } else {
    return Bad(source, absl::StrCat(".npy version ", major, ".", int{p[7]},
                                    " (1.0, 2.0 and 3.0 are read)"));
  }
  if (header_len > bytes.size() - start) {
    return Bad(source, absl::StrCat("truncated: the .npy header says ", header_len,
                                    " bytes, the file has ", bytes.size() - start, " after it"));
  }
  const absl::string_view header = bytes.substr(start, header_len);
  absl::StatusOr<std::string> descr = HeaderValue(header, "descr", source);
  if (!descr.ok()) return descr.status();
  absl::StatusOr<std::string> fortran = HeaderValue(header, "fortran_order", source);
  if (!fortran.ok()) return fortran.status();
  absl::StatusOr<std::string> shape_text = HeaderValue(header, "shape", source);
  if (!shape_text.ok()) return shape_text.status();
  if (*fortran != "False") {
    return Bad(source, absl::StrCat("fortran_order ", *fortran,
                                    " is not read: save a C-ordered array "
                                    "(np.ascontiguousarray)"));
  }
  if (descr->size() < 4 || descr->front() != '\'' || descr->back() != '\'') {
    return Bad(source, absl::StrCat("dtype ", *descr, " (structured dtypes are not read)"));
  }
  const std::string type = descr->substr(1, descr->size() - 2);
  const char order = type[0];
  const char letter = type[1];
  int width = 0;
  if (letter == 'O') return Bad(source, "object arrays (pickles) are refused");
  if (!absl::SimpleAtoi(type.substr(2), &width)) {
    return Bad(source, absl::StrCat("dtype '", type, "' is not read"));
  }
  Kind kind;
  bool ok_width = false;
  switch (letter) {
    case 'u':
      kind = Kind::kUnsigned;
      ok_width = width == 1 || width == 2 || width == 4;
      break;
    case 'i':
      kind = Kind::kSigned;
      ok_width = width == 1 || width == 2 || width == 4 || width == 8;
      break;
    case 'f':
      kind = Kind::kFloat;
      ok_width = width == 4 || width == 8;
      break;
    default:
      kind = Kind::kFloat;
      break;
  }
  const bool ok_order =
      order == '<' || order == '|' || (order == '=' && std::endian::native == std::endian::little);
  if (!ok_width || !ok_order || (order == '|' && width != 1)) {
    return Bad(source, absl::StrCat("dtype '", type,
                                    "' is not read (uint8/16/32, int8/16/32/64, float32/64, "
                                    "little-endian)"));
  }
  NumericArray out;
  absl::string_view dims = *shape_text;
  if (!absl::ConsumePrefix(&dims, "(") || !absl::ConsumeSuffix(&dims, ")")) {
    return Bad(source, absl::StrCat("shape ", *shape_text, " is not a tuple"));
  }
  for (absl::string_view d : absl::StrSplit(dims, ',', absl::SkipWhitespace())) {
    int64_t v = 0;
    const absl::string_view text = absl::StripAsciiWhitespace(d);
    if (!absl::SimpleAtoi(text, &v) || v < 0) {
      return Bad(source, absl::StrCat("shape ", *shape_text, " has a bad dimension '", text, "'"));
    }
    out.shape.push_back(v);
  }
  if (out.shape.size() > 8) return Bad(source, absl::StrCat("rank ", out.shape.size(), " above 8"));
  absl::StatusOr<int64_t> count = CountValues(out.shape, source);
  if (!count.ok()) return count.status();
  if (absl::Status s = DecodeValues(bytes.substr(start + header_len), *count, width, kind,
                                    /*big_endian=*/false, source, &out);
      !s.ok()) {
    return s;
  }
  return out;
}

namespace {

struct ZipReader {
  absl::string_view bytes;
  absl::string_view source;
  const unsigned char* at(size_t offset) const {
    return reinterpret_cast<const unsigned char*>(bytes.data()) + offset;
  }
  bool Has(uint64_t offset, uint64_t length) const {
    return offset <= bytes.size() && length <= bytes.size() - offset;
  }
  uint64_t U(size_t offset, int width) const { return LoadLittle(at(offset), width); }
};

absl::StatusOr<std::string> Inflate(absl::string_view data, uint64_t size, absl::string_view what) {
  if (size > static_cast<uint64_t>(8 * kMaxArrayValues)) {
    return Bad(what, absl::StrCat("member inflates to ", size, " bytes, too large"));
  }
  std::string out(static_cast<size_t>(size), '\0');
  z_stream zs;
  std::memset(&zs, 0, sizeof zs);
  if (inflateInit2(&zs, -15) != Z_OK) return Bad(what, "zlib initialisation failed");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(std::min<size_t>(data.size(), std::numeric_limits<uInt>::max()));
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(std::min<size_t>(out.size(), std::numeric_limits<uInt>::max()));
  const int rc = inflate(&zs, Z_FINISH);
  const uint64_t produced = size - zs.avail_out;
  inflateEnd(&zs);
  if (rc != Z_STREAM_END || produced != size) {
    return Bad(what, "deflated member is corrupt or does not have its declared size");
  }
  return out;
}

}  // namespace

absl::StatusOr<std::map<std::string, NumericArray>> ParseNpz(absl::string_view bytes,
                                                             absl::string_view source) {
  const ZipReader z{bytes, source};
  if (bytes.size() < 22 || z.U(0, 4) != 0x04034b50) {
    return Bad(source, "bad magic: not a .npz (zip) file");
  }
  // The end of central directory record: within the last 64 KiB + 22 bytes.
  size_t eocd = std::string::npos;
  const size_t lowest = bytes.size() > 65557 ? bytes.size() - 65557 : 0;
  for (size_t i = bytes.size() - 22 + 1; i-- > lowest;) {
    if (z.U(i, 4) == 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd == std::string::npos) return Bad(source, "truncated: no zip end-of-directory record");
  uint64_t entries = z.U(eocd + 10, 2);
  uint64_t cd_offset = z.U(eocd + 16, 4);
  if (cd_offset == 0xffffffff || entries == 0xffff) {
    if (eocd < 20 || z.U(eocd - 20, 4) != 0x07064b50) {
      return Bad(source, "zip64 end-of-directory locator missing");
    }
    const uint64_t z64 = z.U(eocd - 20 + 8, 8);
    if (!z.Has(z64, 56) || z.U(z64, 4) != 0x06064b50) {
      return Bad(source, "zip64 end-of-directory record missing or truncated");
    }
    entries = z.U(z64 + 32, 8);
    cd_offset = z.U(z64 + 48, 8);
  }
  std::map<std::string, NumericArray> arrays;
  uint64_t at = cd_offset;
  for (uint64_t e = 0; e < entries; ++e) {
    if (!z.Has(at, 46) || z.U(at, 4) != 0x02014b50) {
      return Bad(source, absl::StrCat("zip directory entry ", e, " is truncated or corrupt"));
    }
    const uint64_t flags = z.U(at + 8, 2);
    const uint64_t method = z.U(at + 10, 2);
    const uint64_t crc = z.U(at + 16, 4);
    uint64_t csize = z.U(at + 20, 4);
    uint64_t usize = z.U(at + 24, 4);
    const uint64_t nlen = z.U(at + 28, 2), xlen = z.U(at + 30, 2), clen = z.U(at + 32, 2);
    uint64_t local = z.U(at + 42, 4);
    if (!z.Has(at + 46, nlen + xlen + clen)) {
      return Bad(source, absl::StrCat("zip directory entry ", e, " is truncated"));
    }
    std::string name(bytes.substr(at + 46, nlen));
    // Zip64 sizes and offset, in this order, for the fields that say so.
    for (uint64_t x = at + 46 + nlen; x + 4 <= at + 46 + nlen + xlen;) {
      const uint64_t id = z.U(x, 2), len = z.U(x + 2, 2);
      if (x + 4 + len > at + 46 + nlen + xlen) break;
      if (id == 0x0001) {
        uint64_t f = x + 4;
        auto take = [&](uint64_t* field) {
          if (*field == 0xffffffff && f + 8 <= x + 4 + len) {
            *field = z.U(f, 8);
            f += 8;
          }
        };
        take(&usize);
        take(&csize);
        take(&local);
      }
      x += 4 + len;
    }
    at += 46 + nlen + xlen + clen;
    const std::string what = absl::StrCat(source, " member ", name);
    if (flags & 1) return Bad(what, "encrypted zip members are not read");
    if (!z.Has(local, 30) || z.U(local, 4) != 0x04034b50) {
      return Bad(what, "local header is truncated or corrupt");
    }
    const uint64_t data_at = local + 30 + z.U(local + 26, 2) + z.U(local + 28, 2);
    if (!z.Has(data_at, csize)) return Bad(what, "truncated member data");
    const absl::string_view data = bytes.substr(data_at, csize);
    std::string plain;
    if (method == 0) {
      if (csize != usize) return Bad(what, "stored member sizes disagree");
      plain = std::string(data);
    } else if (method == 8) {
      absl::StatusOr<std::string> inflated = Inflate(data, usize, what);
      if (!inflated.ok()) return inflated.status();
      plain = *std::move(inflated);
    } else {
      return Bad(what, absl::StrCat("zip method ", method, " (stored and deflate are read)"));
    }
    const uLong actual =
        crc32(0L, reinterpret_cast<const Bytef*>(plain.data()), static_cast<uInt>(plain.size()));
    if (actual != crc) return Bad(what, "CRC-32 mismatch");
    if (!absl::EndsWith(name, ".npy")) return Bad(what, "is not a .npy member");
    absl::StatusOr<NumericArray> array = ParseNpy(plain, what);
    if (!array.ok()) return array.status();
    name.resize(name.size() - 4);
    arrays[name] = *std::move(array);
  }
  return arrays;
}

namespace {

std::string LowerName(const std::string& path) {
  const std::string lower = absl::AsciiStrToLower(path);
  return std::string(absl::StripSuffix(lower, ".gz"));
}

bool IsIdxName(const std::string& lower) {
  return absl::EndsWith(lower, ".idx") || absl::EndsWith(lower, "-ubyte") ||
         absl::StrContains(lower, "-idx");
}

absl::StatusOr<std::string> ReadMaybeGzipped(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadFile(path);
  if (!bytes.ok()) return bytes.status();
  return MaybeGunzip(*std::move(bytes), path);
}

}  // namespace

bool IsArrayFileName(const std::string& path) {
  const std::string lower = LowerName(path);
  return absl::EndsWith(lower, ".npy") || absl::EndsWith(lower, ".npz") || IsIdxName(lower);
}

absl::StatusOr<NumericArray> ReadArrayFile(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadMaybeGzipped(path);
  if (!bytes.ok()) return bytes.status();
  const std::string lower = LowerName(path);
  if (absl::EndsWith(lower, ".npy")) return ParseNpy(*bytes, path);
  if (IsIdxName(lower)) return ParseIdx(*bytes, path);
  return Bad(path, "not an .npy or IDX file name (.npy, .idx, *-ubyte, optionally .gz)");
}

absl::StatusOr<std::map<std::string, NumericArray>> ReadNpzFile(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadFile(path);
  if (!bytes.ok()) return bytes.status();
  return ParseNpz(*bytes, path);
}

namespace {

absl::Status ScaleInPlace(NumericArray* a, double scale) {
  const double divisor = scale > 0 ? scale : (a->unsigned_bytes ? 255.0 : 1.0);
  if (divisor == 1.0) return absl::OkStatus();
  for (double& v : a->values) v /= divisor;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<double>> LabelVector(const NumericArray& a, int64_t rows,
                                                absl::string_view source) {
  if (a.shape.size() > 2 || (a.shape.size() == 2 && a.shape[1] != 1)) {
    return Bad(source, absl::StrCat("labels must be a vector, got shape ", ShapeText(a.shape)));
  }
  if (a.rows() != rows) {
    return Bad(source, absl::StrCat(a.rows(), " labels for ", rows, " rows of features"));
  }
  return a.values;
}

}  // namespace

absl::StatusOr<LabelledArrays> ReadLabelledArrays(const std::string& path,
                                                  const std::string& labels_path,
                                                  bool last_column_is_label, double scale) {
  LabelledArrays out;
  NumericArray labels;
  bool have_labels = false;
  if (absl::EndsWith(LowerName(path), ".npz")) {
    absl::StatusOr<std::map<std::string, NumericArray>> members = ReadNpzFile(path);
    if (!members.ok()) return members.status();
    for (const auto& [x, y] : {std::pair<const char*, const char*>{"x", "y"},
                               std::pair<const char*, const char*>{"features", "labels"}}) {
      auto fx = members->find(x);
      if (fx == members->end()) continue;
      out.features = fx->second;
      auto fy = members->find(y);
      if (fy != members->end()) {
        labels = fy->second;
        have_labels = true;
      }
      break;
    }
    if (out.features.shape.empty()) {
      std::vector<std::string> names;
      for (const auto& [name, unused] : *members) names.push_back(name);
      return Bad(
          path,
          absl::StrCat("no array named x or features (it has: ", absl::StrJoin(names, ", "), ")"));
    }
  } else {
    absl::StatusOr<NumericArray> features = ReadArrayFile(path);
    if (!features.ok()) return features.status();
    out.features = *std::move(features);
  }
  NumericArray& x = out.features;
  if (x.shape.empty()) return Bad(path, "a scalar is not a dataset");
  if (x.shape[0] < 1) return Bad(path, "no rows");
  if (!labels_path.empty()) {
    if (have_labels) return Bad(path, "has labels already; drop --labels");
    absl::StatusOr<NumericArray> l = ReadArrayFile(labels_path);
    if (!l.ok()) return l.status();
    labels = *std::move(l);
    have_labels = true;
  }
  if (last_column_is_label) {
    if (have_labels) return Bad(path, "labels given twice (a labels file and the last column)");
    if (x.shape.size() != 2 || x.shape[1] < 2) {
      return Bad(path, absl::StrCat("the last column is the label only for [N, D+1] arrays, got ",
                                    ShapeText(x.shape)));
    }
    const int64_t cols = x.shape[1];
    std::vector<double> features;
    features.reserve(static_cast<size_t>(x.rows() * (cols - 1)));
    for (int64_t r = 0; r < x.rows(); ++r) {
      for (int64_t c = 0; c + 1 < cols; ++c) features.push_back(x.values[r * cols + c]);
      out.labels.push_back(x.values[r * cols + cols - 1]);
    }
    x.values = std::move(features);
    x.shape[1] = cols - 1;
  } else if (have_labels) {
    absl::StatusOr<std::vector<double>> l =
        LabelVector(labels, x.rows(), labels_path.empty() ? path : labels_path);
    if (!l.ok()) return l.status();
    out.labels = *std::move(l);
  }
  switch (x.shape.size()) {
    case 1:
      out.sample_shape = {1};
      break;
    case 2:
      out.sample_shape = {static_cast<int>(x.shape[1])};
      break;
    case 3:
      out.sample_shape = {1, static_cast<int>(x.shape[1]), static_cast<int>(x.shape[2])};
      break;
    case 4:
      out.sample_shape = {static_cast<int>(x.shape[1]), static_cast<int>(x.shape[2]),
                          static_cast<int>(x.shape[3])};
      break;
    default:
      return Bad(path, absl::StrCat("shape ", ShapeText(x.shape),
                                    ": give [N, D], [N, H, W] or [N, C, H, W]"));
  }
  for (int64_t d : x.shape) {
    if (d > std::numeric_limits<int>::max()) return Bad(path, "a dimension is too large");
  }
  if (x.row_size() < 1)
    return Bad(path, absl::StrCat("empty samples in shape ", ShapeText(x.shape)));
  if (absl::Status s = ScaleInPlace(&x, scale); !s.ok()) return s;
  return out;
}

absl::StatusOr<InputRows> ReadQueryInputs(const std::string& path, bool labelled) {
  if (!IsArrayFileName(path)) return ReadInputsCsv(path, labelled);
  const bool npz = absl::EndsWith(LowerName(path), ".npz");
  absl::StatusOr<LabelledArrays> arrays =
      ReadLabelledArrays(path, "", /*last_column_is_label=*/labelled && !npz, /*scale=*/0);
  if (!arrays.ok()) return arrays.status();
  if (labelled && arrays->labels.empty()) {
    return Bad(path, "--labels: the file has no labels (an .npz needs a y or labels member)");
  }
  InputRows rows;
  const NumericArray& x = arrays->features;
  rows.inputs.set_rows(x.rows());
  rows.inputs.set_cols(x.row_size());
  rows.inputs.mutable_values()->Assign(x.values.begin(), x.values.end());
  if (labelled) rows.labels = arrays->labels;
  return rows;
}

std::string ToFloat64Rows(const LabelledArrays& arrays) {
  const NumericArray& x = arrays.features;
  const int64_t rows = x.rows();
  const int64_t cols = x.row_size();
  std::string out;
  out.reserve(static_cast<size_t>(rows * (cols + 1) * 8));
  auto put = [&](double v) {
    const uint64_t bits = std::bit_cast<uint64_t>(v);
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
  };
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) put(x.values[static_cast<size_t>(r * cols + c)]);
    put(arrays.labels.empty() ? 0.0 : arrays.labels[static_cast<size_t>(r)]);
  }
  return out;
}

}  // namespace agt::client
