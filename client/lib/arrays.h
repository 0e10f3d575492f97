// Reading image and array files on the client side: IDX (the MNIST /
// Fashion-MNIST format, gzipped or not) and NumPy .npy / .npz, converted to
// float64 arrays that agtctl uploads as DATASET_FORMAT_FLOAT64 rows with a
// sample shape, or sends as certify / predict inputs.
//
// IDX: magic 0x00 0x00 <type> <rank>, rank big-endian u32 dimensions, then
// the values big-endian in C order. Types: 0x08 uint8, 0x09 int8, 0x0B
// int16, 0x0C int32, 0x0D float32, 0x0E float64. A gzip stream (1f 8b) is
// inflated first.
//
// .npy: versions 1.0, 2.0 and 3.0; dtypes |u1 |i1 <i2 <i4 <i8 <u2 <u4 <f4 <f8
// (and their '=' forms); fortran_order True and object dtypes (pickles) are
// refused; the payload must hold exactly prod(shape) values. .npz: a zip of
// .npy members, stored or deflated (np.savez / np.savez_compressed), zip64
// sizes included; members are looked up by name without ".npy".
//
// Every parser is strict and never trusts a size it read: wrong magic,
// truncated data, dimensions whose product overflows or exceeds
// kMaxArrayValues, unknown types, and trailing bytes are InvalidArgument
// naming the source and what was wrong.
//
// Thread-safety: pure functions.
#ifndef AGT_CLIENT_LIB_ARRAYS_H_
#define AGT_CLIENT_LIB_ARRAYS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/lib/inputs.h"

namespace agt::client {

// The most values one array file may hold (2^30 doubles = 8 GiB).
inline constexpr int64_t kMaxArrayValues = int64_t{1} << 30;

// An array as float64 values in C order. `integral` says the source dtype
// was an integer type; `unsigned_bytes` that it was uint8 (images to scale).
struct NumericArray {
  std::vector<int64_t> shape;
  std::vector<double> values;
  bool integral = false;
  bool unsigned_bytes = false;
  int64_t rows() const { return shape.empty() ? 1 : shape[0]; }
  // Values per row (prod of shape[1:]; 1 for a vector).
  int64_t row_size() const;
};

// Inflates gzip data (1f 8b) and returns other bytes unchanged. The output
// is bounded by `max_bytes`.
absl::StatusOr<std::string> MaybeGunzip(std::string bytes, absl::string_view source,
                                        int64_t max_bytes = 8 * kMaxArrayValues + 4096);

absl::StatusOr<NumericArray> ParseIdx(absl::string_view bytes, absl::string_view source);
absl::StatusOr<NumericArray> ParseNpy(absl::string_view bytes, absl::string_view source);
// The .npz's arrays by member name ("x" for "x.npy").
absl::StatusOr<std::map<std::string, NumericArray>> ParseNpz(absl::string_view bytes,
                                                             absl::string_view source);

// Reads and parses a file by its extension: .idx / -ubyte (optionally .gz),
// .npy, or .npz. NotFound when the file cannot be read.
absl::StatusOr<NumericArray> ReadArrayFile(const std::string& path);
absl::StatusOr<std::map<std::string, NumericArray>> ReadNpzFile(const std::string& path);

// Features and labels for an upload or a labelled query.
struct LabelledArrays {
  NumericArray features;          // rows x sample
  std::vector<double> labels;     // one per row; empty when none
  std::vector<int> sample_shape;  // [D] or [C, H, W]
};

// Builds rows from an array file and optionally a labels file:
// - IDX images [N, H, W] become [1, H, W] samples; [N, C, H, W] stay; [N, D]
//   stay flat. Labels from `labels_path` (an IDX or .npy vector of N).
// - .npy features [N, ...]; labels from `labels_path`, or with
//   `last_column_is_label` from the last column of an [N, D+1] array.
// - .npz with members x/y or features/labels (labels optional).
// uint8 data is divided by `scale` (default 255, so pixels lie in [0, 1];
// scale 1 keeps 0..255); other dtypes are kept as they are unless `scale` is
// given explicitly (> 0). Errors name the file and the problem.
absl::StatusOr<LabelledArrays> ReadLabelledArrays(const std::string& path,
                                                  const std::string& labels_path,
                                                  bool last_column_is_label, double scale);

// True for the file names ReadLabelledArrays reads (.npy, .npz, .idx,
// *-ubyte, each optionally .gz).
bool IsArrayFileName(const std::string& path);

// Query inputs (certify, predict, unlearn check) from any format: CSV as
// ReadInputsCsv; .npy / IDX / .npz as ReadLabelledArrays (with `labelled`:
// an .npz's y/labels member, or an .npy's last column), rows flattened in C
// order, uint8 scaled by 255.
absl::StatusOr<InputRows> ReadQueryInputs(const std::string& path, bool labelled);

// Little-endian float64 rows: features then the label (the FLOAT64 upload).
std::string ToFloat64Rows(const LabelledArrays& arrays);

}  // namespace agt::client

#endif  // AGT_CLIENT_LIB_ARRAYS_H_
