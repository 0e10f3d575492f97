#include "server/service/dataset_upload.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace agt::server {
namespace {

// UTF-8 code points (protobuf has already checked the encoding).
int64_t CountCodePoints(absl::string_view s) {
  return std::count_if(s.begin(), s.end(),
                       [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; });
}

double ReadLittleEndianDouble(const char* p) {
  uint64_t bits = 0;
  for (int i = 7; i >= 0; --i) bits = (bits << 8) | static_cast<unsigned char>(p[i]);
  double value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

}  // namespace

absl::StatusOr<DatasetUpload> DatasetUpload::Begin(const agt::v1::DatasetMetadata& metadata,
                                                   const UploadLimits& limits) {
  const std::string& name = metadata.name();
  const int64_t name_length = CountCodePoints(name);
  if (name_length < 1 || name_length > kMaxDatasetNameLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metadata.name: ", name_length, " characters, must be 1..", kMaxDatasetNameLength));
  }
  for (char c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError("metadata.name: control characters are not allowed");
    }
  }
  const int classes = metadata.num_classes();
  if (classes < -1 || classes == 1 || classes > kMaxDatasetClasses) {
    return absl::InvalidArgumentError(absl::StrCat("metadata.num_classes: ", classes,
                                                   " must be -1 (infer), 0 (regression) or 2..",
                                                   kMaxDatasetClasses));
  }
  switch (metadata.format()) {
    case agt::v1::DATASET_FORMAT_CSV:
      if (metadata.num_features() < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("metadata.num_features: ", metadata.num_features(),
                         " must be >= 0 (0 = from the file)"));
      }
      break;
    case agt::v1::DATASET_FORMAT_FLOAT64:
      if (metadata.num_features() < 1 || metadata.num_features() > kMaxFloat64Features) {
        return absl::InvalidArgumentError(
            absl::StrCat("metadata.num_features: ", metadata.num_features(), " must be 1..",
                         kMaxFloat64Features, " for DATASET_FORMAT_FLOAT64"));
      }
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("metadata.format: ", metadata.format(),
                       " must be DATASET_FORMAT_CSV (1) or DATASET_FORMAT_FLOAT64 (2)"));
  }
  return DatasetUpload(metadata, limits);
}

absl::Status DatasetUpload::AddChunk(absl::string_view bytes, int64_t index) {
  const auto size = static_cast<int64_t>(bytes.size());
  if (size > limits_.max_chunk_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("message ", index, ": chunk of ", size,
                                                   " bytes exceeds the chunk limit of ",
                                                   limits_.max_chunk_bytes, " bytes"));
  }
  if (bytes_received() + size > limits_.max_total_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("message ", index, ": upload exceeds the server's dataset size limit of ",
                     limits_.max_total_bytes, " bytes (--max-dataset-mib)"));
  }
  data_.append(bytes.data(), bytes.size());
  return absl::OkStatus();
}

absl::StatusOr<agt::Dataset> DatasetUpload::Finish() const {
  if (data_.empty()) {
    return absl::InvalidArgumentError(
        "no data: send the file's bytes in chunk messages after the metadata");
  }
  absl::StatusOr<agt::Dataset> data;
  if (metadata_.format() == agt::v1::DATASET_FORMAT_CSV) {
    agt::CsvOptions options;
    options.num_classes = metadata_.num_classes();
    data = agt::ParseCsv(data_, options);
    if (!data.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("CSV: ", data.status().message()));
    }
    if (metadata_.num_features() != 0 && data->dim() != metadata_.num_features()) {
      return absl::InvalidArgumentError(
          absl::StrCat("metadata.num_features: ", metadata_.num_features(), " but the CSV has ",
                       data->dim(), " feature columns"));
    }
  } else {
    data = DecodeFloat64();
    if (!data.ok()) return data.status();
  }
  if (data->size() < 1) return absl::InvalidArgumentError("the dataset has no rows");
  return data;
}

absl::StatusOr<agt::Dataset> DatasetUpload::DecodeFloat64() const {
  const int64_t features = metadata_.num_features();
  const int64_t row_bytes = 8 * (features + 1);
  const auto total = static_cast<int64_t>(data_.size());
  if (total % row_bytes != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "FLOAT64: ", total, " bytes is not a multiple of the row size ", row_bytes, " (8 bytes x (",
        features, " features + 1 label)); the last row is incomplete"));
  }
  const int64_t rows = total / row_bytes;
  agt::Dataset data;
  data.x.resize(rows, features);
  data.y.resize(rows);
  const char* p = data_.data();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c <= features; ++c) {
      const double value = ReadLittleEndianDouble(p);
      if (!std::isfinite(value)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "FLOAT64: row ", r + 1, ", column ", c + 1, (c == features ? " (label)" : ""),
            " at byte offset ", r * row_bytes + 8 * c, ": value ", value, " is not finite"));
      }
      if (c < features) {
        data.x(r, c) = value;
      } else {
        data.y[r] = value;
      }
      p += 8;
    }
  }
  const int classes = metadata_.num_classes();
  if (classes >= 0) {
    data.num_classes = classes;
  } else {
    absl::StatusOr<int> inferred = agt::InferNumClasses(data.y);
    if (!inferred.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("FLOAT64 (rows counted from 0): ", inferred.status().message()));
    }
    data.num_classes = *inferred;
  }
  if (absl::Status valid = data.Validate(); !valid.ok()) {
    // Validate counts rows from 0; say so rather than renumber its message.
    return absl::InvalidArgumentError(
        absl::StrCat("FLOAT64 (rows counted from 0): ", valid.message()));
  }
  return data;
}

}  // namespace agt::server
