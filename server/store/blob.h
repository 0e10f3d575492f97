// Tensors and training state as self-checking byte strings ("blobs"), the form
// in which the store keeps every array of doubles.
//
// Every blob is an envelope around kind-specific content. All integers are
// little-endian and doubles are IEEE-754 binary64 bit patterns written
// little-endian, byte by byte, so a file moves between hosts of either byte
// order unchanged:
//
//   offset  size  field
//        0     4  magic: "AGTT" tensor, "AGTS" TrainState, "AGTM" ModelSpec
//        4     2  format version (kBlobFormatVersion; kModelSpecFormatVersion for "AGTM")
//        6     2  reserved, 0
//        8     8  total blob length in bytes, checksum included
//       16     .  content
//   len-32    32  SHA-256 of bytes [0, len-32)
//
// Tensor content: dtype (1 byte; 1 = float64), rank r (1 byte, at most
// kMaxTensorRank), r dimensions (8 bytes each), then prod(dims) doubles in
// row-major order. A rank-0 tensor is one scalar; a dimension may be 0.
//
// Decoding verifies the envelope (length, magic, version, checksum) and then
// that the content is self-consistent; anything wrong is DataLossError whose
// message says what (bad magic, unknown version, truncated, checksum mismatch,
// shape/size mismatch). A blob that decodes gives back exactly the doubles that
// were encoded, bit for bit (-0.0, subnormals, infinities and NaN payloads
// included).
//
// Thread-safety: all functions are pure and may be called concurrently.
#ifndef AGT_SERVER_STORE_BLOB_H_
#define AGT_SERVER_STORE_BLOB_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/common/types.h"
#include "core/model/model.h"
#include "core/train/train.h"

namespace agt::server {

inline constexpr int kBlobFormatVersion = 1;
// Model spec blobs are written as version 2 (shapes, conv2d, flatten, a
// frozen prefix); version 1 blobs (dense and relu only) still decode.
inline constexpr int kModelSpecFormatVersion = 2;
inline constexpr int kMaxTensorRank = 8;
// Bytes of envelope around the content: 16 of header, 32 of checksum.
inline constexpr size_t kBlobOverheadBytes = 48;

// A dense float64 tensor, row-major. values.size() == product of shape.
struct Tensor {
  std::vector<int64_t> shape;
  std::vector<double> values;
};

// InvalidArgument when the shape has a negative dimension, more than
// kMaxTensorRank dimensions, or does not match values.size().
absl::StatusOr<std::string> EncodeTensor(const Tensor& tensor);
absl::StatusOr<Tensor> DecodeTensor(absl::string_view blob);

// Rank-1 and rank-2 tensors. Decoding a blob of another rank is DataLoss.
std::string EncodeVector(const Vector& v);
absl::StatusOr<Vector> DecodeVector(absl::string_view blob);
std::string EncodeMatrix(const Matrix& m);
absl::StatusOr<Matrix> DecodeMatrix(absl::string_view blob);
// Convenience for std::vector<double> (stored as a rank-1 tensor).
std::string EncodeDoubles(const std::vector<double>& v);
absl::StatusOr<std::vector<double>> DecodeDoubles(absl::string_view blob);

// agt::TrainState: step, nominal parameters, one box per budget, and the SGDM
// velocities (possibly empty), all as rank-1 tensors inside one "AGTS" blob.
std::string EncodeTrainState(const agt::TrainState& state);
absl::StatusOr<agt::TrainState> DecodeTrainState(absl::string_view blob);

// The models the server stores and serves: every layer kind of the core
// (dense, conv2d, relu, flatten), a flat or [C, H, W] input shape and a
// frozen prefix. What the encoding cannot hold (negative hyper-parameters or
// dimensions, rank above 3) is InvalidArgument naming the field.
absl::Status CheckServedModelSpec(const agt::ModelSpec& spec);

// agt::ModelSpec inside one "AGTM" blob. Version 2 content: the input shape
// (rank byte, then u32 dimensions), the trained layers and the frozen layers
// (each a u32 count, then per layer a kind byte 1 dense / 2 relu / 3 conv2d /
// 4 flatten and its u32 hyper-parameters: dense in, out; conv2d in_channels,
// out_channels, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w), then
// the frozen parameters as a rank-1 tensor body. Version 1 content (from
// before conv models were served): a u32 count, then 9 bytes per layer (kind
// 1 or 2, u32 in, u32 out). The encoder refuses what CheckServedModelSpec
// refuses rather than mis-encode it; the decoder checks the encoding only,
// not ModelSpec::Validate.
absl::StatusOr<std::string> EncodeModelSpec(const agt::ModelSpec& spec);
absl::StatusOr<agt::ModelSpec> DecodeModelSpec(absl::string_view blob);

// SHA-256 of `data`: 32 raw bytes, or 64 lowercase hex characters.
std::string Sha256(absl::string_view data);
std::string Sha256Hex(absl::string_view data);
// SHA-256 hex of the concatenation of `parts` (without building it).
std::string Sha256HexOfParts(const std::vector<absl::string_view>& parts);

}  // namespace agt::server

#endif  // AGT_SERVER_STORE_BLOB_H_
