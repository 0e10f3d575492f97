// Assembles an uploaded dataset from the UploadDataset stream: the metadata
// message, then the file's bytes in chunks, then parsing into an
// agt::Dataset. Knows nothing of gRPC; the service feeds it messages.
//
// Formats (agt.v1.DatasetFormat):
// - CSV: agt::ParseCsv (core/data/dataset.h) with num_classes from the
//   metadata; errors name the 1-based line and column.
// - FLOAT64: raw little-endian IEEE-754 doubles, row-major, each row
//   num_features features then the label. The byte count must be a positive
//   multiple of 8 * (num_features + 1). Errors name the 1-based row and
//   column (column num_features + 1 is the label) and the byte offset.
//   num_classes -1 infers classes as the CSV reader does: integral labels in
//   0..999 are classes 0..max (at least 2), anything else is regression.
//
// Limits: name 1..kMaxDatasetNameLength characters (UTF-8 code points, no
// control characters); num_classes -1, 0 or 2..kMaxDatasetClasses; every
// chunk at most limits.max_chunk_bytes (InvalidArgument); the total at most
// limits.max_total_bytes (ResourceExhausted, reported as soon as a chunk
// crosses it, so an oversized upload is never buffered whole), and so is
// the parsed dataset's doubles (8 bytes per value): a declared size_bytes
// is checked in Begin, a CSV's value count is counted from its separators
// as chunks arrive (an upper estimate: fields of every line), then exactly.
//
// Memory: FLOAT64 rows are decoded as their bytes arrive (only a partial row
// is buffered), so an upload holds the dataset's doubles once (into the
// final matrix when metadata.size_bytes is declared; otherwise twice for a
// moment while Finish builds the matrix); a CSV holds its text, then its
// doubles (the text is freed when Finish has parsed it).
//
// Thread-safety: one upload per stream; not shared.
#ifndef AGT_SERVER_SERVICE_DATASET_UPLOAD_H_
#define AGT_SERVER_SERVICE_DATASET_UPLOAD_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agt/v1/datasets.pb.h"
#include "core/data/dataset.h"

namespace agt::server {

inline constexpr int kMaxDatasetNameLength = 128;
// Matches the widest output layer a job may ask for (domain/job_spec.h).
inline constexpr int kMaxDatasetClasses = 4096;
inline constexpr int kMaxFloat64Features = 1 << 20;
// The largest dimension of metadata.sample_shape.
inline constexpr int kMaxSampleDimension = 65535;

struct UploadLimits {
  int64_t max_total_bytes = int64_t{256} << 20;
  int64_t max_chunk_bytes = int64_t{1} << 20;
};

class DatasetUpload {
 public:
  // Validates the metadata (errors name "metadata.<field>").
  static absl::StatusOr<DatasetUpload> Begin(const agt::v1::DatasetMetadata& metadata,
                                             const UploadLimits& limits);

  // Appends the next chunk; `index` is its 1-based position in the stream
  // (the metadata is message 1), for error messages.
  absl::Status AddChunk(absl::string_view bytes, int64_t index);

  // Parses what was received (once; the buffers are handed over or freed);
  // InvalidArgument naming where the data is wrong.
  absl::StatusOr<agt::Dataset> Finish();

  const std::string& name() const { return metadata_.name(); }
  const std::string& request_id() const { return metadata_.request_id(); }
  // metadata.sample_shape checked against the finished data (its product
  // must be data.dim(); InvalidArgument naming metadata.sample_shape), or
  // [data.dim()] when the upload gave none.
  absl::StatusOr<std::vector<int>> SampleShape(const agt::Dataset& data) const;
  int64_t bytes_received() const { return received_; }

  // The request's content without its request_id, for idempotent retries:
  // SHA-256 hex of the metadata (request_id cleared, deterministic
  // serialization) and of the parsed features and labels.
  std::string Fingerprint(const agt::Dataset& data) const;

 private:
  DatasetUpload(agt::v1::DatasetMetadata metadata, UploadLimits limits);

  absl::Status AddFloat64(absl::string_view bytes);
  absl::Status CheckDoubles(int64_t values, int64_t index) const;
  absl::StatusOr<agt::Dataset> FinishFloat64();

  agt::v1::DatasetMetadata metadata_;
  UploadLimits limits_;
  int64_t received_ = 0;
  // CSV: the text received so far, and its separators (',' and newlines).
  std::string data_;
  int64_t separators_ = 0;
  // FLOAT64: the bytes of an incomplete row, decoded rows' features
  // (row-major; straight into the matrix when the size was declared) and
  // labels.
  std::string partial_;
  agt::Matrix declared_x_;
  std::vector<double> features_;
  std::vector<double> labels_;
};

}  // namespace agt::server

#endif  // AGT_SERVER_SERVICE_DATASET_UPLOAD_H_
