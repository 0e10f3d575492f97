#include "server/service/artifact_service.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/status_details.h"
#include "server/domain/model_artifacts.h"
#include "server/domain/model_convert.h"
#include "server/service/call_budget.h"
#include "server/service/dataset_upload.h"
#include "server/service/request_checks.h"
#include "server/service/status_mapping.h"
#include "server/store/blob.h"

namespace agt::server {
namespace {

constexpr char kUpload[] = "/agt.v1.ModelArtifactService/UploadModelArtifact";
constexpr char kGet[] = "/agt.v1.ModelArtifactService/GetModelArtifact";
constexpr char kList[] = "/agt.v1.ModelArtifactService/ListModelArtifacts";
constexpr char kDelete[] = "/agt.v1.ModelArtifactService/DeleteModelArtifact";

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return WithField(absl::InvalidArgumentError(absl::StrCat(field, ": ", what)), field);
}

absl::Status SizeLimit(absl::Status status, absl::string_view field) {
  if (!field.empty()) status = WithField(std::move(status), field);
  return WithQuota(WithReason(std::move(status), kReasonArtifactSizeLimit), "server");
}

// The metadata on its own (the bytes come later).
absl::Status CheckMetadata(const agt::v1::ModelArtifactMetadata& m, const ArtifactLimits& limits) {
  const int64_t chars = std::count_if(m.name().begin(), m.name().end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  });
  if (chars < 1 || chars > kMaxArtifactNameLength) {
    return Invalid("metadata.name",
                   absl::StrCat(chars, " characters, must be 1..", kMaxArtifactNameLength));
  }
  for (char c : m.name()) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return Invalid("metadata.name", "control characters are not allowed");
    }
  }
  if (m.format() != agt::v1::MODEL_ARTIFACT_FORMAT_ONNX) {
    return Invalid("metadata.format",
                   absl::StrCat(m.format(), " must be MODEL_ARTIFACT_FORMAT_ONNX (1)"));
  }
  if (m.size_bytes() < 1) {
    return Invalid("metadata.size_bytes",
                   absl::StrCat(m.size_bytes(), " must be > 0 (the file's size)"));
  }
  if (m.size_bytes() > limits.max_bytes) {
    return SizeLimit(absl::ResourceExhaustedError(
                         absl::StrCat("metadata.size_bytes: the upload declares ", m.size_bytes(),
                                      " bytes, above the server's model artifact size limit of ",
                                      limits.max_bytes, " bytes (--max-artifact-mib)")),
                     "metadata.size_bytes");
  }
  const std::string& sha = m.sha256();
  if (sha.size() != 64 ||
      !std::all_of(sha.begin(), sha.end(), [](char c) { return absl::ascii_isxdigit(c); })) {
    return Invalid("metadata.sha256",
                   absl::StrCat("must be 64 hex characters (the file's SHA-256), got ", sha.size(),
                                " characters"));
  }
  const auto& dims = m.input_shape();
  if (!dims.empty() && dims.size() != 1 && dims.size() != 3) {
    return Invalid("metadata.input_shape",
                   absl::StrCat("[", absl::StrJoin(dims, ", "), "] has ", dims.size(),
                                " dimensions; give [D] or [C, H, W]"));
  }
  for (int i = 0; i < dims.size(); ++i) {
    if (dims[i] < 1 || dims[i] > kMaxSampleDimension) {
      return Invalid("metadata.input_shape",
                     absl::StrCat("dimension ", i, " is ", dims[i], ", must be in [1, ",
                                  kMaxSampleDimension, "]"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<agt::v1::ModelArtifact> ArtifactToProto(const ArtifactRecord& record) {
  agt::v1::ModelArtifact out;
  if (!out.ParseFromString(record.summary)) {
    return absl::DataLossError(
        absl::StrCat("model artifact ", record.id, ": the stored summary does not parse"));
  }
  out.set_id(record.id);
  out.set_name(record.name);
  out.set_format(static_cast<agt::v1::ModelArtifactFormat>(record.format));
  out.set_size_bytes(record.size_bytes);
  out.set_sha256(record.sha256);
  *out.mutable_created() = MillisToTimestamp(record.created_ms);
  return out;
}

// One upload stream, on gRPC's callback API (no thread waits on a slow
// stream). Lifetime: created by UploadModelArtifact, deleted in OnDone (after
// Finish and every pending operation). Finish is called exactly once
// (FinishOnce); after it nothing of `this` is touched by the caller.
class ModelArtifactServiceImpl::UploadReactor final
    : public grpc::ServerReadReactor<agt::v1::UploadModelArtifactRequest> {
 public:
  UploadReactor(ModelArtifactServiceImpl* service, grpc::CallbackServerContext* context,
                agt::v1::UploadModelArtifactResponse* response)
      : service_(service),
        context_(context),
        response_(response),
        budget_(*context, service->default_deadline_) {
    absl::StatusOr<Principal> caller = service_->auth_->Check(*context, kUpload);
    if (!caller.ok()) {
      FinishOnce(ToGrpcStatus(caller.status(), kUpload));
      return;
    }
    caller_ = *std::move(caller);
    absl::StatusOr<std::unique_ptr<UploadAdmission::Slot>> slot =
        service_->admission_.Acquire(caller_.tenant, [this] { OnIdle(); });
    if (!slot.ok()) {
      FinishOnce(ToGrpcStatus(slot.status(), kUpload));
      return;
    }
    slot_ = *std::move(slot);
    std::lock_guard<std::mutex> lock(mu_);
    StartRead(&message_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      EndOfStream();
      return;
    }
    // Not under mu_: the watch thread holds the slot's lock while OnIdle
    // takes mu_.
    slot_->Touch();
    absl::Status status;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finished_) return;
      ++index_;
      try {
        status = Take();
      } catch (const std::bad_alloc&) {
        status = WithReason(
            absl::ResourceExhaustedError(absl::StrCat(
                "message ", index_.load(), ": the server ran out of memory for the upload")),
            kReasonServerOutOfMemory);
      }
      if (status.ok()) status = budget_.Check();
      if (status.ok()) {
        StartRead(&message_);
        return;
      }
    }
    FinishOnce(ToGrpcStatus(status, kUpload));
  }

  void OnDone() override {
    slot_.reset();
    delete this;
  }

 private:
  // The next message: metadata first, then chunks.
  absl::Status Take() {
    const ArtifactLimits& limits = service_->limits_;
    if (!has_metadata_) {
      if (!message_.has_metadata()) {
        return Invalid("metadata", "message 1: the first message must carry metadata");
      }
      if (absl::Status s = CheckMetadata(message_.metadata(), limits); !s.ok()) return s;
      metadata_ = message_.metadata();
      has_metadata_ = true;
      content_.reserve(static_cast<size_t>(metadata_.size_bytes()));
      return absl::OkStatus();
    }
    if (message_.part_case() != agt::v1::UploadModelArtifactRequest::kChunk) {
      return absl::InvalidArgumentError(
          absl::StrCat("message ", index_.load(), ": expected a chunk, got ",
                       message_.has_metadata() ? "a second metadata" : "an empty message"));
    }
    const int64_t size = static_cast<int64_t>(message_.chunk().size());
    if (size > limits.max_chunk_bytes) {
      return Invalid("chunk", absl::StrCat("message ", index_.load(), ": chunk of ", size,
                                           " bytes exceeds the chunk limit of ",
                                           limits.max_chunk_bytes, " bytes"));
    }
    const int64_t total = static_cast<int64_t>(content_.size()) + size;
    if (total > limits.max_bytes) {
      return SizeLimit(absl::ResourceExhaustedError(absl::StrCat(
                           "message ", index_.load(),
                           ": upload exceeds the server's model artifact size limit of ",
                           limits.max_bytes, " bytes (--max-artifact-mib)")),
                       "");
    }
    if (total > metadata_.size_bytes()) {
      return Invalid("metadata.size_bytes",
                     absl::StrCat("message ", index_.load(), ": the chunks carry more than the ",
                                  metadata_.size_bytes(), " bytes declared"));
    }
    content_.append(message_.chunk());
    message_.Clear();
    return absl::OkStatus();
  }

  void EndOfStream() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finished_) return;
    }
    if (context_->IsCancelled()) {
      FinishOnce(ToGrpcStatus(
          absl::CancelledError("the upload was cancelled (client gone or server shutting down)"),
          kUpload));
      return;
    }
    slot_->StopWatching();
    if (!has_metadata_) {
      FinishOnce(ToGrpcStatus(
          Invalid("metadata", "empty upload: the first message must carry metadata"), kUpload));
      return;
    }
    // Hashing, parsing and storing may take seconds: not on a gRPC thread.
    std::thread([this] {
      grpc::Status status;
      try {
        absl::Status in_time = budget_.Check();
        absl::StatusOr<agt::v1::ModelArtifact> stored =
            in_time.ok() ? service_->StoreUpload(caller_, metadata_, content_) : in_time;
        if (stored.ok()) *response_->mutable_artifact() = *std::move(stored);
        status = ToGrpcStatus(stored.status(), kUpload);
      } catch (const std::bad_alloc&) {
        status = ToGrpcStatus(WithReason(absl::ResourceExhaustedError(
                                             "the server ran out of memory storing the upload"),
                                         kReasonServerOutOfMemory),
                              kUpload);
      } catch (const std::exception& e) {
        status = ToGrpcStatus(absl::InternalError(e.what()), kUpload);
      }
      FinishOnce(std::move(status));
    }).detach();
  }

  // Runs on the admission's watch thread.
  void OnIdle() {
    FinishOnce(ToGrpcStatus(
        WithReason(
            absl::DeadlineExceededError(absl::StrCat(
                "upload stalled: no message for ", service_->admission_.idle_timeout().count(),
                " ms after message ", index_.load(),
                " (--upload-idle-timeout); the upload was dropped and nothing was stored")),
            kReasonUploadStalled),
        kUpload));
  }

  void FinishOnce(grpc::Status status) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finished_) return;
      finished_ = true;
    }
    // The slot is free before the client hears the answer.
    if (slot_ != nullptr) slot_->ReleaseCount();
    Finish(std::move(status));
  }

  ModelArtifactServiceImpl* const service_;
  grpc::CallbackServerContext* const context_;
  agt::v1::UploadModelArtifactResponse* const response_;
  const CallBudget budget_;
  Principal caller_;
  std::unique_ptr<UploadAdmission::Slot> slot_;
  std::mutex mu_;  // guards finished_, message_, metadata_, content_ while reading
  bool finished_ = false;
  agt::v1::UploadModelArtifactRequest message_;
  std::atomic<int64_t> index_{0};
  bool has_metadata_ = false;
  agt::v1::ModelArtifactMetadata metadata_;
  std::string content_;
};

grpc::ServerReadReactor<agt::v1::UploadModelArtifactRequest>*
ModelArtifactServiceImpl::UploadModelArtifact(grpc::CallbackServerContext* context,
                                              agt::v1::UploadModelArtifactResponse* response) {
  return new UploadReactor(this, context, response);
}

absl::StatusOr<agt::v1::ModelArtifact> ModelArtifactServiceImpl::StoreUpload(
    const Principal& caller, const agt::v1::ModelArtifactMetadata& metadata,
    const std::string& content) {
  if (static_cast<int64_t>(content.size()) != metadata.size_bytes()) {
    return Invalid("metadata.size_bytes",
                   absl::StrCat("the chunks carried ", content.size(),
                                " bytes, metadata.size_bytes declared ", metadata.size_bytes()));
  }
  const std::string received = Sha256Hex(content);
  if (received != absl::AsciiStrToLower(metadata.sha256())) {
    return WithReason(
        Invalid("metadata.sha256",
                absl::StrCat("the received bytes have SHA-256 ", received,
                             ", the metadata declared ", absl::AsciiStrToLower(metadata.sha256()))),
        kReasonArtifactChecksum);
  }
  absl::StatusOr<agt::v1::ModelArtifact> parsed = DescribeOnnxArtifact(
      content, std::vector<int>(metadata.input_shape().begin(), metadata.input_shape().end()),
      limits_.max_bytes);
  if (!parsed.ok()) {
    return absl::Status(parsed.status().code(), absl::StrCat("ONNX: ", parsed.status().message()));
  }
  ArtifactRecord record;
  record.tenant = caller.tenant;
  record.name = metadata.name();
  record.format = metadata.format();
  record.summary = parsed->SerializeAsString();
  absl::StatusOr<ArtifactRecord> stored = store_->Insert(std::move(record), content);
  if (!stored.ok()) return stored.status();
  return ArtifactToProto(*stored);
}

grpc::Status ModelArtifactServiceImpl::GetModelArtifact(
    grpc::ServerContext* context, const agt::v1::GetModelArtifactRequest* request,
    agt::v1::GetModelArtifactResponse* response) {
  absl::StatusOr<Principal> caller = auth_->Check(*context, kGet);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kGet);
  if (absl::Status s = CheckId(request->artifact_id(), "artifact_id"); !s.ok()) {
    return ToGrpcStatus(s, kGet);
  }
  absl::StatusOr<ArtifactRecord> record = store_->Get(caller->tenant, request->artifact_id());
  if (!record.ok()) return ToGrpcStatus(record.status(), kGet);
  absl::StatusOr<agt::v1::ModelArtifact> artifact = ArtifactToProto(*record);
  if (!artifact.ok()) return ToGrpcStatus(artifact.status(), kGet);
  *response->mutable_artifact() = *std::move(artifact);
  return grpc::Status::OK;
}

grpc::Status ModelArtifactServiceImpl::ListModelArtifacts(
    grpc::ServerContext* context, const agt::v1::ListModelArtifactsRequest* request,
    agt::v1::ListModelArtifactsResponse* response) {
  absl::StatusOr<Principal> caller = auth_->Check(*context, kList);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kList);
  absl::StatusOr<int> page_size = ResolvePageSize(request->page_size(), "page_size");
  if (!page_size.ok()) return ToGrpcStatus(page_size.status(), kList);
  if (absl::Status s = CheckPageToken(request->page_token(), "page_token"); !s.ok()) {
    return ToGrpcStatus(s, kList);
  }
  absl::StatusOr<Page<ArtifactRecord>> page =
      store_->List(caller->tenant, *page_size, request->page_token());
  if (!page.ok()) return ToGrpcStatus(page.status(), kList);
  for (const ArtifactRecord& record : page->items) {
    absl::StatusOr<agt::v1::ModelArtifact> artifact = ArtifactToProto(record);
    if (!artifact.ok()) return ToGrpcStatus(artifact.status(), kList);
    *response->add_artifacts() = *std::move(artifact);
  }
  response->set_next_page_token(page->next_page_token);
  return grpc::Status::OK;
}

grpc::Status ModelArtifactServiceImpl::DeleteModelArtifact(
    grpc::ServerContext* context, const agt::v1::DeleteModelArtifactRequest* request,
    agt::v1::DeleteModelArtifactResponse* /*response*/) {
  absl::StatusOr<Principal> caller = auth_->Check(*context, kDelete);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kDelete);
  if (absl::Status s = CheckId(request->artifact_id(), "artifact_id"); !s.ok()) {
    return ToGrpcStatus(s, kDelete);
  }
  return ToGrpcStatus(store_->Delete(caller->tenant, request->artifact_id()), kDelete);
}

}  // namespace agt::server
