#include "server/service/dataset_upload.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/status_details.h"
#include "server/service/request_fingerprint.h"
#include "server/store/blob.h"

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

absl::Status ShapeInvalid(absl::string_view what) {
  return WithField(absl::InvalidArgumentError(absl::StrCat("metadata.sample_shape: ", what)),
                   "metadata.sample_shape");
}

std::string ShapeText(const google::protobuf::RepeatedField<int32_t>& dims) {
  return absl::StrCat("[", absl::StrJoin(dims, ", "), "]");
}

// Rank and dimensions; for FLOAT64 (where num_features is known up front)
// also the product. CSV's feature count is known only at Finish.
absl::Status CheckSampleShapeField(const agt::v1::DatasetMetadata& metadata) {
  const auto& dims = metadata.sample_shape();
  if (dims.empty()) return absl::OkStatus();
  if (dims.size() != 1 && dims.size() != 3) {
    return ShapeInvalid(
        absl::StrCat(ShapeText(dims), " has ", dims.size(), " dimensions; give [D] or [C, H, W]"));
  }
  int64_t product = 1;
  for (int i = 0; i < dims.size(); ++i) {
    if (dims[i] < 1 || dims[i] > kMaxSampleDimension) {
      return ShapeInvalid(absl::StrCat(ShapeText(dims), ": dimension ", i, " is ", dims[i],
                                       ", must be in [1, ", kMaxSampleDimension, "]"));
    }
    product *= dims[i];  // at most 65535^3: no overflow
  }
  if (metadata.format() == agt::v1::DATASET_FORMAT_FLOAT64 && product != metadata.num_features()) {
    return ShapeInvalid(absl::StrCat(ShapeText(dims), " has ", product,
                                     " values per sample, metadata.num_features is ",
                                     metadata.num_features()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<int>> DatasetUpload::SampleShape(const agt::Dataset& data) const {
  const auto& dims = metadata_.sample_shape();
  if (dims.empty()) return std::vector<int>{static_cast<int>(data.dim())};
  int64_t product = 1;
  for (int d : dims) product *= d;
  if (product != data.dim()) {
    return ShapeInvalid(absl::StrCat(ShapeText(dims), " has ", product,
                                     " values per sample, the data has ", data.dim(),
                                     " features per row"));
  }
  return std::vector<int>(dims.begin(), dims.end());
}

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
  if (absl::Status s = CheckSampleShapeField(metadata); !s.ok()) return s;
  const int64_t declared = metadata.size_bytes();
  if (declared < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metadata.size_bytes: ", declared, " must be >= 0 (0 = not declared)"));
  }
  if (declared > limits.max_total_bytes) {
    return WithQuota(
        WithReason(WithField(absl::ResourceExhaustedError(absl::StrCat(
                                 "metadata.size_bytes: the upload declares ", declared,
                                 " bytes, above the server's dataset size limit of ",
                                 limits.max_total_bytes, " bytes (--max-dataset-mib)")),
                             "metadata.size_bytes"),
                   kReasonDatasetSizeLimit),
        "server");
  }
  if (metadata.format() == agt::v1::DATASET_FORMAT_FLOAT64 && declared > 0 &&
      declared % (8 * (int64_t{metadata.num_features()} + 1)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metadata.size_bytes: ", declared, " is not a multiple of the row size ",
        8 * (int64_t{metadata.num_features()} + 1), " (8 bytes x (", metadata.num_features(),
        " features + 1 label))"));
  }
  return DatasetUpload(metadata, limits);
}

DatasetUpload::DatasetUpload(agt::v1::DatasetMetadata metadata, UploadLimits limits)
    : metadata_(std::move(metadata)), limits_(limits) {
  const int64_t declared = metadata_.size_bytes();
  if (metadata_.format() == agt::v1::DATASET_FORMAT_FLOAT64 && declared > 0) {
    // Exactly what the rows need: no growth, no second copy while receiving.
    const int64_t rows = declared / (8 * (int64_t{metadata_.num_features()} + 1));
    declared_x_.resize(rows, metadata_.num_features());
    labels_.reserve(static_cast<size_t>(rows));
  } else if (declared > 0) {
    data_.reserve(static_cast<size_t>(declared));
  }
}

absl::Status DatasetUpload::CheckDoubles(int64_t values, int64_t index) const {
  if (values <= limits_.max_total_bytes / 8) return absl::OkStatus();
  return WithQuota(WithReason(absl::ResourceExhaustedError(absl::StrCat(
                                  "message ", index, ": the dataset holds at least ", values,
                                  " values (", values,
                                  " x 8 bytes as doubles), above the server's dataset size "
                                  "limit of ",
                                  limits_.max_total_bytes, " bytes (--max-dataset-mib)")),
                              kReasonDatasetSizeLimit),
                   "server");
}

absl::Status DatasetUpload::AddChunk(absl::string_view bytes, int64_t index) {
  const auto size = static_cast<int64_t>(bytes.size());
  if (size > limits_.max_chunk_bytes) {
    return WithField(absl::InvalidArgumentError(absl::StrCat(
                         "message ", index, ": chunk of ", size,
                         " bytes exceeds the chunk limit of ", limits_.max_chunk_bytes, " bytes")),
                     "chunk");
  }
  if (received_ + size > limits_.max_total_bytes) {
    return WithQuota(
        WithReason(absl::ResourceExhaustedError(absl::StrCat(
                       "message ", index, ": upload exceeds the server's dataset size limit of ",
                       limits_.max_total_bytes, " bytes (--max-dataset-mib)")),
                   kReasonDatasetSizeLimit),
        "server");
  }
  const int64_t declared = metadata_.size_bytes();
  if (declared > 0 && received_ + size > declared) {
    return WithField(absl::InvalidArgumentError(absl::StrCat(
                         "message ", index, ": the chunks carry more than the ", declared,
                         " bytes declared in metadata.size_bytes")),
                     "metadata.size_bytes");
  }
  received_ += size;
  if (metadata_.format() == agt::v1::DATASET_FORMAT_FLOAT64) {
    if (absl::Status s = AddFloat64(bytes); !s.ok()) return s;
    return CheckDoubles(static_cast<int64_t>(labels_.size()) * (metadata_.num_features() + 1),
                        index);
  }
  separators_ += std::count_if(bytes.begin(), bytes.end(),
                               [](char c) { return c == ',' || c == '\n'; });
  if (absl::Status s = CheckDoubles(separators_ + 1, index); !s.ok()) return s;
  data_.append(bytes.data(), bytes.size());
  return absl::OkStatus();
}

absl::Status DatasetUpload::AddFloat64(absl::string_view bytes) {
  const int64_t features = metadata_.num_features();
  const auto row_bytes = static_cast<size_t>(8 * (features + 1));
  auto decode_row = [&](const char* p) -> absl::Status {
    const int64_t r = static_cast<int64_t>(labels_.size());
    for (int64_t c = 0; c <= features; ++c, p += 8) {
      const double value = ReadLittleEndianDouble(p);
      if (!std::isfinite(value)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "FLOAT64: row ", r + 1, ", column ", c + 1, (c == features ? " (label)" : ""),
            " at byte offset ", r * static_cast<int64_t>(row_bytes) + 8 * c, ": value ", value,
            " is not finite"));
      }
      if (c < features) {
        if (declared_x_.rows() > 0) {
          declared_x_(r, c) = value;  // r < rows: the declared size is enforced
        } else {
          features_.push_back(value);
        }
      } else {
        labels_.push_back(value);
      }
    }
    return absl::OkStatus();
  };
  if (!partial_.empty()) {
    const size_t take = std::min(row_bytes - partial_.size(), bytes.size());
    partial_.append(bytes.data(), take);
    bytes.remove_prefix(take);
    if (partial_.size() < row_bytes) return absl::OkStatus();
    if (absl::Status s = decode_row(partial_.data()); !s.ok()) return s;
    partial_.clear();
  }
  while (bytes.size() >= row_bytes) {
    if (absl::Status s = decode_row(bytes.data()); !s.ok()) return s;
    bytes.remove_prefix(row_bytes);
  }
  partial_.assign(bytes.data(), bytes.size());
  return absl::OkStatus();
}

absl::StatusOr<agt::Dataset> DatasetUpload::Finish() {
  if (metadata_.size_bytes() > 0 && received_ != metadata_.size_bytes()) {
    return WithField(absl::InvalidArgumentError(absl::StrCat(
                         "the chunks carried ", received_, " bytes, metadata.size_bytes declared ",
                         metadata_.size_bytes())),
                     "metadata.size_bytes");
  }
  if (received_ == 0) {
    return WithField(absl::InvalidArgumentError(
                         "no data: send the file's bytes in chunk messages after the metadata"),
                     "chunk");
  }
  absl::StatusOr<agt::Dataset> data;
  if (metadata_.format() == agt::v1::DATASET_FORMAT_CSV) {
    agt::CsvOptions options;
    options.num_classes = metadata_.num_classes();
    data = agt::ParseCsv(data_, options);
    std::string().swap(data_);  // the text is no longer needed
    if (!data.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("CSV: ", data.status().message()));
    }
    if (metadata_.num_features() != 0 && data->dim() != metadata_.num_features()) {
      return absl::InvalidArgumentError(
          absl::StrCat("metadata.num_features: ", metadata_.num_features(), " but the CSV has ",
                       data->dim(), " feature columns"));
    }
    if (absl::Status s = CheckDoubles(data->size() * (data->dim() + 1), 0); !s.ok()) {
      return WithMessage(
          s, absl::StrCat("CSV: ", data->size(), " rows x ", data->dim() + 1,
                          " values as doubles exceed the server's dataset size limit of ",
                          limits_.max_total_bytes, " bytes (--max-dataset-mib)"));
    }
  } else {
    data = FinishFloat64();
    if (!data.ok()) return data.status();
  }
  if (data->size() < 1) return absl::InvalidArgumentError("the dataset has no rows");
  return data;
}

absl::StatusOr<agt::Dataset> DatasetUpload::FinishFloat64() {
  const int64_t features = metadata_.num_features();
  const int64_t row_bytes = 8 * (features + 1);
  if (!partial_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "FLOAT64: ", received_, " bytes is not a multiple of the row size ", row_bytes,
        " (8 bytes x (", features, " features + 1 label)); the last row is incomplete"));
  }
  const auto rows = static_cast<int64_t>(labels_.size());
  agt::Dataset data;
  if (declared_x_.rows() > 0) {
    data.x = std::move(declared_x_);  // received_ == the declared size: all rows filled
  } else {
    data.x = Eigen::Map<const agt::Matrix>(features_.data(), rows, features);
    std::vector<double>().swap(features_);
  }
  data.y = Eigen::Map<const agt::Vector>(labels_.data(), rows);
  std::vector<double>().swap(labels_);
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

std::string DatasetUpload::Fingerprint(const agt::Dataset& data) const {
  agt::v1::DatasetMetadata metadata = metadata_;
  metadata.clear_request_id();
  const std::string serialized = DeterministicBytes(metadata);
  const auto bytes = [](const double* p, agt::Index n) {
    return absl::string_view(reinterpret_cast<const char*>(p), static_cast<size_t>(n) * 8);
  };
  return Sha256HexOfParts({serialized, bytes(data.x.data(), data.x.size()),
                           bytes(data.y.data(), data.y.size())});
}

}  // namespace agt::server
