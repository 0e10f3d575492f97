#include "server/store/blob.h"

#include <openssl/evp.h>

#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace agt::server {
namespace {

constexpr absl::string_view kTensorMagic = "AGTT";
constexpr absl::string_view kTrainStateMagic = "AGTS";
constexpr absl::string_view kModelSpecMagic = "AGTM";
constexpr size_t kHeaderBytes = 16;
constexpr size_t kChecksumBytes = 32;
constexpr size_t kLengthOffset = 8;
constexpr uint8_t kDtypeFloat64 = 1;
constexpr uint8_t kLayerDense = 1;
constexpr uint8_t kLayerRelu = 2;
constexpr uint8_t kLayerConv2d = 3;
constexpr uint8_t kLayerFlatten = 4;
// Smallest encoding of a tensor body: dtype, rank, no dimensions, one value.
constexpr size_t kMinTensorBodyBytes = 2;

static_assert(kHeaderBytes + kChecksumBytes == kBlobOverheadBytes);
static_assert(Matrix::IsRowMajor, "blobs store matrices row-major, as agt::Matrix is");

absl::Status Corrupt(absl::string_view what, absl::string_view problem) {
  return absl::DataLossError(absl::StrCat(what, " blob: ", problem));
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

// Appends fixed-width little-endian integers and doubles, then seals the
// envelope (length and checksum) in Finish.
class BlobWriter {
 public:
  explicit BlobWriter(absl::string_view magic, uint16_t version = kBlobFormatVersion) {
    buf_.append(magic.data(), magic.size());
    PutU16(version);
    PutU16(0);
    PutU64(0);  // total length, patched by Finish
  }

  void PutU8(uint8_t v) { buf_.push_back(static_cast<char>(v)); }
  void PutU16(uint16_t v) { PutLittleEndian(v, 2); }
  void PutU32(uint32_t v) { PutLittleEndian(v, 4); }
  void PutU64(uint64_t v) { PutLittleEndian(v, 8); }
  void PutF64(double v) { PutU64(std::bit_cast<uint64_t>(v)); }

  void PutTensorBody(const std::vector<int64_t>& shape, const double* values, size_t count) {
    PutU8(kDtypeFloat64);
    PutU8(static_cast<uint8_t>(shape.size()));
    for (int64_t d : shape) PutU64(static_cast<uint64_t>(d));
    buf_.reserve(buf_.size() + 8 * count + kChecksumBytes);
    for (size_t i = 0; i < count; ++i) PutF64(values[i]);
  }
  void PutVectorBody(const Vector& v) {
    PutTensorBody({static_cast<int64_t>(v.size())}, v.data(), static_cast<size_t>(v.size()));
  }

  std::string Finish() && {
    const uint64_t total = buf_.size() + kChecksumBytes;
    for (int i = 0; i < 8; ++i) {
      buf_[kLengthOffset + i] = static_cast<char>((total >> (8 * i)) & 0xff);
    }
    buf_.append(Sha256(buf_));
    return std::move(buf_);
  }

 private:
  void PutLittleEndian(uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) buf_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }

  std::string buf_;
};

// Reads little-endian values from the content of a verified envelope. Every
// Read returns false (and reads nothing) when too few bytes remain.
class ByteReader {
 public:
  explicit ByteReader(absl::string_view data) : data_(data) {}

  size_t remaining() const { return data_.size() - pos_; }

  bool ReadU8(uint8_t* v) {
    uint64_t x;
    if (!ReadLittleEndian(1, &x)) return false;
    *v = static_cast<uint8_t>(x);
    return true;
  }
  bool ReadU16(uint16_t* v) {
    uint64_t x;
    if (!ReadLittleEndian(2, &x)) return false;
    *v = static_cast<uint16_t>(x);
    return true;
  }
  bool ReadU32(uint32_t* v) {
    uint64_t x;
    if (!ReadLittleEndian(4, &x)) return false;
    *v = static_cast<uint32_t>(x);
    return true;
  }
  bool ReadU64(uint64_t* v) { return ReadLittleEndian(8, v); }
  // Caller has checked that 8 bytes remain.
  double ReadF64Unchecked() {
    uint64_t x = 0;
    ReadLittleEndian(8, &x);
    return std::bit_cast<double>(x);
  }

 private:
  bool ReadLittleEndian(int bytes, uint64_t* v) {
    if (remaining() < static_cast<size_t>(bytes)) return false;
    uint64_t x = 0;
    for (int i = 0; i < bytes; ++i) {
      x |= static_cast<uint64_t>(static_cast<unsigned char>(data_[pos_ + i])) << (8 * i);
    }
    pos_ += bytes;
    *v = x;
    return true;
  }

  absl::string_view data_;
  size_t pos_ = 0;
};

uint64_t LoadU64(absl::string_view bytes, size_t offset) {
  uint64_t x = 0;
  for (int i = 0; i < 8; ++i) {
    x |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[offset + i])) << (8 * i);
  }
  return x;
}

// Verifies the envelope (size, magic, version, length, checksum) and returns
// the content between header and checksum. Versions 1..max_version are read;
// `version` (if given) receives the blob's.
absl::StatusOr<absl::string_view> OpenEnvelope(absl::string_view blob, absl::string_view magic,
                                               absl::string_view what,
                                               uint16_t max_version = kBlobFormatVersion,
                                               uint16_t* version_out = nullptr) {
  if (blob.size() < kBlobOverheadBytes) {
    return Corrupt(what, absl::StrCat("truncated: ", blob.size(), " bytes, fewer than the ",
                                      kBlobOverheadBytes, "-byte minimum"));
  }
  if (blob.substr(0, 4) != magic) {
    return Corrupt(what, absl::StrCat("bad magic \"", absl::CHexEscape(blob.substr(0, 4)),
                                      "\", expected \"", magic, "\""));
  }
  ByteReader header(blob.substr(4, kHeaderBytes - 4));
  uint16_t version = 0;
  uint16_t reserved = 0;
  header.ReadU16(&version);
  header.ReadU16(&reserved);
  if (version < 1 || version > max_version) {
    return Corrupt(
        what, absl::StrCat("unknown format version ", version,
                           max_version == 1 ? std::string(" (this server reads version 1)")
                                            : absl::StrCat(" (this server reads versions 1 to ",
                                                           max_version, ")")));
  }
  if (version_out != nullptr) *version_out = version;
  if (reserved != 0) {
    return Corrupt(what, absl::StrCat("reserved header field is ", reserved, ", not 0"));
  }
  const uint64_t length = LoadU64(blob, kLengthOffset);
  if (length > blob.size()) {
    return Corrupt(what, absl::StrCat("truncated: ", blob.size(), " bytes, header says ", length));
  }
  if (length < blob.size()) {
    return Corrupt(what,
                   absl::StrCat("length mismatch: ", blob.size(), " bytes, header says ", length));
  }
  const absl::string_view covered = blob.substr(0, blob.size() - kChecksumBytes);
  if (Sha256(covered) != blob.substr(blob.size() - kChecksumBytes)) {
    return Corrupt(what, "checksum mismatch (SHA-256 of the contents differs from the stored one)");
  }
  return blob.substr(kHeaderBytes, blob.size() - kBlobOverheadBytes);
}

// Reads one tensor body. With `exact`, the payload must use up the reader.
absl::StatusOr<Tensor> ReadTensorBody(ByteReader& r, absl::string_view what, bool exact) {
  uint8_t dtype = 0;
  uint8_t rank = 0;
  if (!r.ReadU8(&dtype) || !r.ReadU8(&rank)) {
    return Corrupt(what, "shape/size mismatch: content ends inside a tensor header");
  }
  if (dtype != kDtypeFloat64) {
    return Corrupt(what, absl::StrCat("unknown dtype ", dtype, " (only 1 = float64 is known)"));
  }
  if (rank > kMaxTensorRank) {
    return Corrupt(what, absl::StrCat("rank ", rank, " exceeds the maximum ", kMaxTensorRank));
  }
  Tensor t;
  t.shape.reserve(rank);
  bool zero = false;
  for (int i = 0; i < rank; ++i) {
    uint64_t d = 0;
    if (!r.ReadU64(&d)) {
      return Corrupt(what, "shape/size mismatch: content ends inside a tensor shape");
    }
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Corrupt(what, absl::StrCat("dimension ", i, " is ", d, ", too large"));
    }
    t.shape.push_back(static_cast<int64_t>(d));
    if (d == 0) zero = true;
  }
  // The element count, bounded by the bytes present so that it cannot overflow.
  const uint64_t max_count = r.remaining() / 8;
  uint64_t count = zero ? 0 : 1;
  if (!zero) {
    for (int64_t d : t.shape) {
      if (static_cast<uint64_t>(d) > max_count / count) {
        return Corrupt(
            what, absl::StrCat("shape/size mismatch: shape ", ShapeString(t.shape),
                               " needs more than the ", r.remaining(), " payload bytes present"));
      }
      count *= static_cast<uint64_t>(d);
    }
  }
  const uint64_t need = 8 * count;
  if (need > r.remaining() || (exact && need != r.remaining())) {
    return Corrupt(what, absl::StrCat("shape/size mismatch: shape ", ShapeString(t.shape),
                                      " needs ", need, " payload bytes, blob has ", r.remaining()));
  }
  t.values.resize(count);
  for (uint64_t i = 0; i < count; ++i) t.values[i] = r.ReadF64Unchecked();
  return t;
}

absl::StatusOr<Vector> ReadVectorBody(ByteReader& r, absl::string_view what, bool exact) {
  absl::StatusOr<Tensor> t = ReadTensorBody(r, what, exact);
  if (!t.ok()) return t.status();
  if (t->shape.size() != 1) {
    return Corrupt(what, absl::StrCat("shape/size mismatch: rank ", t->shape.size(),
                                      ", expected a vector (rank 1)"));
  }
  Vector v(static_cast<Index>(t->values.size()));
  for (size_t i = 0; i < t->values.size(); ++i) v[static_cast<Index>(i)] = t->values[i];
  return v;
}

}  // namespace

std::string Sha256(absl::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1 ||
      len != kChecksumBytes) {
    // Only fails when OpenSSL itself is broken; no data could be trusted then.
    std::fprintf(stderr, "agt/store: OpenSSL SHA-256 failed\n");
    std::abort();
  }
  return std::string(reinterpret_cast<const char*>(md), len);
}

std::string Sha256Hex(absl::string_view data) { return absl::BytesToHexString(Sha256(data)); }

std::string Sha256HexOfParts(const std::vector<absl::string_view>& parts) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1;
  for (absl::string_view part : parts) {
    ok = ok && EVP_DigestUpdate(ctx, part.data(), part.size()) == 1;
  }
  ok = ok && EVP_DigestFinal_ex(ctx, md, &len) == 1 && len == kChecksumBytes;
  EVP_MD_CTX_free(ctx);
  if (!ok) {
    std::fprintf(stderr, "agt/store: OpenSSL SHA-256 failed\n");
    std::abort();
  }
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(md), len));
}

absl::StatusOr<std::string> EncodeTensor(const Tensor& tensor) {
  if (tensor.shape.size() > static_cast<size_t>(kMaxTensorRank)) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor rank ", tensor.shape.size(), " exceeds the maximum ", kMaxTensorRank));
  }
  uint64_t count = 1;
  for (size_t i = 0; i < tensor.shape.size(); ++i) {
    const int64_t d = tensor.shape[i];
    if (d < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor dimension ", i, " is ", d, ", must be >= 0"));
    }
    // Saturate: a product beyond any real vector size cannot match values.size().
    count = (d != 0 && count > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d))
                ? std::numeric_limits<uint64_t>::max()
                : count * static_cast<uint64_t>(d);
  }
  if (count != tensor.values.size()) {
    return absl::InvalidArgumentError(absl::StrCat("tensor shape ", ShapeString(tensor.shape),
                                                   " does not match ", tensor.values.size(),
                                                   " values"));
  }
  BlobWriter w(kTensorMagic);
  w.PutTensorBody(tensor.shape, tensor.values.data(), tensor.values.size());
  return std::move(w).Finish();
}

absl::StatusOr<Tensor> DecodeTensor(absl::string_view blob) {
  absl::StatusOr<absl::string_view> content = OpenEnvelope(blob, kTensorMagic, "tensor");
  if (!content.ok()) return content.status();
  ByteReader r(*content);
  return ReadTensorBody(r, "tensor", /*exact=*/true);
}

std::string EncodeVector(const Vector& v) {
  BlobWriter w(kTensorMagic);
  w.PutVectorBody(v);
  return std::move(w).Finish();
}

absl::StatusOr<Vector> DecodeVector(absl::string_view blob) {
  absl::StatusOr<absl::string_view> content = OpenEnvelope(blob, kTensorMagic, "tensor");
  if (!content.ok()) return content.status();
  ByteReader r(*content);
  return ReadVectorBody(r, "tensor", /*exact=*/true);
}

std::string EncodeMatrix(const Matrix& m) {
  BlobWriter w(kTensorMagic);
  w.PutTensorBody({static_cast<int64_t>(m.rows()), static_cast<int64_t>(m.cols())}, m.data(),
                  static_cast<size_t>(m.size()));
  return std::move(w).Finish();
}

absl::StatusOr<Matrix> DecodeMatrix(absl::string_view blob) {
  absl::StatusOr<Tensor> t = DecodeTensor(blob);
  if (!t.ok()) return t.status();
  if (t->shape.size() != 2) {
    return Corrupt("tensor", absl::StrCat("shape/size mismatch: rank ", t->shape.size(),
                                          ", expected a matrix (rank 2)"));
  }
  Matrix m(static_cast<Index>(t->shape[0]), static_cast<Index>(t->shape[1]));
  for (size_t i = 0; i < t->values.size(); ++i) m.data()[i] = t->values[i];
  return m;
}

std::string EncodeDoubles(const std::vector<double>& v) {
  BlobWriter w(kTensorMagic);
  w.PutTensorBody({static_cast<int64_t>(v.size())}, v.data(), v.size());
  return std::move(w).Finish();
}

absl::StatusOr<std::vector<double>> DecodeDoubles(absl::string_view blob) {
  absl::StatusOr<Tensor> t = DecodeTensor(blob);
  if (!t.ok()) return t.status();
  if (t->shape.size() != 1) {
    return Corrupt("tensor", absl::StrCat("shape/size mismatch: rank ", t->shape.size(),
                                          ", expected a vector (rank 1)"));
  }
  return std::move(t->values);
}

std::string EncodeTrainState(const agt::TrainState& state) {
  BlobWriter w(kTrainStateMagic);
  w.PutU64(static_cast<uint64_t>(state.step));
  w.PutU32(static_cast<uint32_t>(state.boxes.size()));
  w.PutU32(static_cast<uint32_t>(state.velocity_lower.size()));
  w.PutU32(static_cast<uint32_t>(state.velocity_upper.size()));
  w.PutVectorBody(state.nominal);
  for (const ParameterBox& box : state.boxes) {
    w.PutVectorBody(box.lower);
    w.PutVectorBody(box.upper);
  }
  w.PutVectorBody(state.velocity_nominal);
  for (const Vector& v : state.velocity_lower) w.PutVectorBody(v);
  for (const Vector& v : state.velocity_upper) w.PutVectorBody(v);
  return std::move(w).Finish();
}

absl::StatusOr<agt::TrainState> DecodeTrainState(absl::string_view blob) {
  constexpr absl::string_view kWhat = "train state";
  absl::StatusOr<absl::string_view> content = OpenEnvelope(blob, kTrainStateMagic, kWhat);
  if (!content.ok()) return content.status();
  ByteReader r(*content);
  uint64_t step = 0;
  uint32_t num_boxes = 0;
  uint32_t num_vl = 0;
  uint32_t num_vu = 0;
  if (!r.ReadU64(&step) || !r.ReadU32(&num_boxes) || !r.ReadU32(&num_vl) || !r.ReadU32(&num_vu)) {
    return Corrupt(kWhat, "shape/size mismatch: content ends inside the train state header");
  }
  const uint64_t tensors = 2 * static_cast<uint64_t>(num_boxes) + 2 + num_vl + num_vu;
  if (tensors * kMinTensorBodyBytes > r.remaining()) {
    return Corrupt(kWhat, absl::StrCat("shape/size mismatch: header lists ", tensors,
                                       " tensors but only ", r.remaining(), " bytes remain"));
  }
  agt::TrainState state;
  state.step = static_cast<int64_t>(step);
  auto read = [&](Vector* out) -> absl::Status {
    absl::StatusOr<Vector> v = ReadVectorBody(r, kWhat, /*exact=*/false);
    if (!v.ok()) return v.status();
    *out = *std::move(v);
    return absl::OkStatus();
  };
  if (absl::Status s = read(&state.nominal); !s.ok()) return s;
  state.boxes.resize(num_boxes);
  for (ParameterBox& box : state.boxes) {
    if (absl::Status s = read(&box.lower); !s.ok()) return s;
    if (absl::Status s = read(&box.upper); !s.ok()) return s;
  }
  if (absl::Status s = read(&state.velocity_nominal); !s.ok()) return s;
  state.velocity_lower.resize(num_vl);
  for (Vector& v : state.velocity_lower) {
    if (absl::Status s = read(&v); !s.ok()) return s;
  }
  state.velocity_upper.resize(num_vu);
  for (Vector& v : state.velocity_upper) {
    if (absl::Status s = read(&v); !s.ok()) return s;
  }
  if (r.remaining() != 0) {
    return Corrupt(kWhat, absl::StrCat("shape/size mismatch: ", r.remaining(),
                                       " bytes left after the last tensor"));
  }
  return state;
}

absl::Status CheckServedModelSpec(const agt::ModelSpec& spec) {
  // Every layer kind, shape and frozen prefix of the core is encodable since
  // model spec version 2; what remains is what the format's integers hold.
  auto check_layers = [](const std::vector<LayerSpec>& layers,
                         absl::string_view field) -> absl::Status {
    for (size_t i = 0; i < layers.size(); ++i) {
      const LayerSpec& l = layers[i];
      const int values[] = {l.in,
                            l.out,
                            l.conv.in_channels,
                            l.conv.out_channels,
                            l.conv.kernel_h,
                            l.conv.kernel_w,
                            l.conv.stride_h,
                            l.conv.stride_w,
                            l.conv.pad_h,
                            l.conv.pad_w};
      for (int v : values) {
        if (v < 0) {
          return absl::InvalidArgumentError(
              absl::StrCat(field, "[", i, "]: negative hyper-parameter ", v));
        }
      }
    }
    return absl::OkStatus();
  };
  if (absl::Status s = check_layers(spec.layers, "layers"); !s.ok()) return s;
  if (absl::Status s = check_layers(spec.frozen.layers, "frozen.layers"); !s.ok()) return s;
  if (spec.input_shape.dims.size() > 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("input_shape: ", spec.input_shape.ToString(), " has more than 3 dimensions"));
  }
  for (int d : spec.input_shape.dims) {
    if (d < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("input_shape: ", spec.input_shape.ToString(), " has a negative dimension"));
    }
  }
  return absl::OkStatus();
}

namespace {

void PutLayers(BlobWriter& w, const std::vector<LayerSpec>& layers) {
  w.PutU32(static_cast<uint32_t>(layers.size()));
  for (const LayerSpec& l : layers) {
    switch (l.kind) {
      case LayerKind::kDense:
        w.PutU8(kLayerDense);
        w.PutU32(static_cast<uint32_t>(l.in));
        w.PutU32(static_cast<uint32_t>(l.out));
        break;
      case LayerKind::kRelu:
        w.PutU8(kLayerRelu);
        break;
      case LayerKind::kFlatten:
        w.PutU8(kLayerFlatten);
        break;
      case LayerKind::kConv2d:
        w.PutU8(kLayerConv2d);
        for (int v : {l.conv.in_channels, l.conv.out_channels, l.conv.kernel_h, l.conv.kernel_w,
                      l.conv.stride_h, l.conv.stride_w, l.conv.pad_h, l.conv.pad_w}) {
          w.PutU32(static_cast<uint32_t>(v));
        }
        break;
    }
  }
}

constexpr uint32_t kMaxEncodedInt = static_cast<uint32_t>(std::numeric_limits<int>::max());

bool ReadInt(ByteReader& r, int* v) {
  uint32_t x = 0;
  if (!r.ReadU32(&x) || x > kMaxEncodedInt) return false;
  *v = static_cast<int>(x);
  return true;
}

// Version 2 layer lists: a count, then per layer its kind byte and the
// kind's integers (dense: in, out; conv2d: the eight Conv2dParams; relu and
// flatten: none).
absl::StatusOr<std::vector<LayerSpec>> ReadLayers(ByteReader& r, absl::string_view what,
                                                  absl::string_view list) {
  uint32_t count = 0;
  if (!r.ReadU32(&count)) {
    return Corrupt(
        what, absl::StrCat("shape/size mismatch: content ends before the ", list, " layer count"));
  }
  // Every layer takes at least its kind byte.
  if (count > r.remaining()) {
    return Corrupt(what, absl::StrCat("shape/size mismatch: ", count, " ", list,
                                      " layers but only ", r.remaining(), " bytes remain"));
  }
  std::vector<LayerSpec> layers;
  layers.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    uint8_t kind = 0;
    if (!r.ReadU8(&kind)) {
      return Corrupt(what,
                     absl::StrCat("shape/size mismatch: content ends inside ", list, " layer ", i));
    }
    const std::string bad = absl::StrCat(list, " layer ", i, " is truncated or out of range");
    LayerSpec l;
    switch (kind) {
      case kLayerDense:
        l.kind = LayerKind::kDense;
        if (!ReadInt(r, &l.in) || !ReadInt(r, &l.out)) return Corrupt(what, bad);
        break;
      case kLayerRelu:
        l.kind = LayerKind::kRelu;
        break;
      case kLayerFlatten:
        l.kind = LayerKind::kFlatten;
        break;
      case kLayerConv2d: {
        l.kind = LayerKind::kConv2d;
        Conv2dParams& c = l.conv;
        for (int* v : {&c.in_channels, &c.out_channels, &c.kernel_h, &c.kernel_w, &c.stride_h,
                       &c.stride_w, &c.pad_h, &c.pad_w}) {
          if (!ReadInt(r, v)) return Corrupt(what, bad);
        }
        break;
      }
      default:
        return Corrupt(what, absl::StrCat("unknown kind ", kind, " of ", list, " layer ", i));
    }
    layers.push_back(l);
  }
  return layers;
}

// Version 1 (dense and relu only): a count, then 9 bytes per layer (kind,
// in, out).
absl::StatusOr<agt::ModelSpec> DecodeModelSpecV1(ByteReader& r, absl::string_view what) {
  constexpr size_t kLayerBytes = 9;
  uint32_t num_layers = 0;
  if (!r.ReadU32(&num_layers)) {
    return Corrupt(what, "shape/size mismatch: content ends before the layer count");
  }
  if (static_cast<uint64_t>(num_layers) * kLayerBytes != r.remaining()) {
    return Corrupt(what, absl::StrCat("shape/size mismatch: ", num_layers, " layers need ",
                                      static_cast<uint64_t>(num_layers) * kLayerBytes,
                                      " bytes, blob has ", r.remaining()));
  }
  agt::ModelSpec spec;
  spec.layers.reserve(num_layers);
  for (uint32_t i = 0; i < num_layers; ++i) {
    uint8_t kind = 0;
    uint32_t in = 0;
    uint32_t out = 0;
    r.ReadU8(&kind);
    r.ReadU32(&in);
    r.ReadU32(&out);
    if (kind != kLayerDense && kind != kLayerRelu) {
      return Corrupt(what, absl::StrCat("unknown kind ", kind, " of layer ", i));
    }
    if (in > kMaxEncodedInt || out > kMaxEncodedInt) {
      return Corrupt(what, absl::StrCat("layer ", i, " width ", in, "x", out, " out of range"));
    }
    LayerSpec layer;
    layer.kind = kind == kLayerDense ? LayerKind::kDense : LayerKind::kRelu;
    layer.in = static_cast<int>(in);
    layer.out = static_cast<int>(out);
    spec.layers.push_back(layer);
  }
  return spec;
}

absl::StatusOr<agt::ModelSpec> DecodeModelSpecV2(ByteReader& r, absl::string_view what) {
  agt::ModelSpec spec;
  uint8_t rank = 0;
  if (!r.ReadU8(&rank)) {
    return Corrupt(what, "shape/size mismatch: content ends before the input shape");
  }
  if (rank > 3) return Corrupt(what, absl::StrCat("input shape rank ", rank, " exceeds 3"));
  for (int i = 0; i < rank; ++i) {
    int d = 0;
    if (!ReadInt(r, &d)) {
      return Corrupt(what, absl::StrCat("input shape dimension ", i, " truncated or out of range"));
    }
    spec.input_shape.dims.push_back(d);
  }
  absl::StatusOr<std::vector<LayerSpec>> layers = ReadLayers(r, what, "trained");
  if (!layers.ok()) return layers.status();
  spec.layers = *std::move(layers);
  absl::StatusOr<std::vector<LayerSpec>> frozen = ReadLayers(r, what, "frozen");
  if (!frozen.ok()) return frozen.status();
  spec.frozen.layers = *std::move(frozen);
  absl::StatusOr<Vector> params = ReadVectorBody(r, what, /*exact=*/true);
  if (!params.ok()) return params.status();
  spec.frozen.parameters = *std::move(params);
  return spec;
}

}  // namespace

absl::StatusOr<std::string> EncodeModelSpec(const agt::ModelSpec& spec) {
  if (absl::Status s = CheckServedModelSpec(spec); !s.ok()) return s;
  BlobWriter w(kModelSpecMagic, kModelSpecFormatVersion);
  w.PutU8(static_cast<uint8_t>(spec.input_shape.dims.size()));
  for (int d : spec.input_shape.dims) w.PutU32(static_cast<uint32_t>(d));
  PutLayers(w, spec.layers);
  PutLayers(w, spec.frozen.layers);
  w.PutVectorBody(spec.frozen.parameters);
  return std::move(w).Finish();
}

absl::StatusOr<agt::ModelSpec> DecodeModelSpec(absl::string_view blob) {
  constexpr absl::string_view kWhat = "model spec";
  uint16_t version = 0;
  absl::StatusOr<absl::string_view> content =
      OpenEnvelope(blob, kModelSpecMagic, kWhat, kModelSpecFormatVersion, &version);
  if (!content.ok()) return content.status();
  ByteReader r(*content);
  return version == 1 ? DecodeModelSpecV1(r, kWhat) : DecodeModelSpecV2(r, kWhat);
}

}  // namespace agt::server
