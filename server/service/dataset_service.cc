#include "server/service/dataset_service.h"

#include <atomic>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/common/status_details.h"
#include "server/domain/model_convert.h"
#include "server/service/call_budget.h"
#include "server/service/request_checks.h"
#include "server/service/status_mapping.h"

namespace agt::server {
namespace {

constexpr char kUpload[] = "/agt.v1.DatasetService/UploadDataset";
constexpr char kList[] = "/agt.v1.DatasetService/ListDatasets";
constexpr char kGet[] = "/agt.v1.DatasetService/GetDataset";
constexpr char kDelete[] = "/agt.v1.DatasetService/DeleteDataset";

}  // namespace

// One upload stream. Lifetime: created by UploadDataset, deleted in OnDone
// (after Finish and every pending operation). Finish is called exactly once
// (FinishOnce); after it nothing of `this` is touched by the caller.
class DatasetServiceImpl::UploadReactor final
    : public grpc::ServerReadReactor<agt::v1::UploadDatasetRequest> {
 public:
  UploadReactor(DatasetServiceImpl* service, grpc::CallbackServerContext* context,
                agt::v1::UploadDatasetResponse* response)
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
        status = WithReason(absl::ResourceExhaustedError(absl::StrCat(
                                "message ", index_.load(),
                                ": the server ran out of memory for the upload")),
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
    if (!upload_.has_value()) {
      if (!message_.has_metadata()) {
        return WithField(absl::InvalidArgumentError(
                             "message 1: the first message must carry metadata, not a chunk"),
                         "metadata");
      }
      if (absl::Status s = ValidateRequestId(message_.metadata().request_id()); !s.ok()) {
        return WithField(absl::InvalidArgumentError(absl::StrCat("metadata.", s.message())),
                         "metadata.request_id");
      }
      absl::StatusOr<DatasetUpload> upload =
          DatasetUpload::Begin(message_.metadata(), service_->limits_);
      if (!upload.ok()) return upload.status();
      upload_.emplace(*std::move(upload));
      return absl::OkStatus();
    }
    if (message_.part_case() != agt::v1::UploadDatasetRequest::kChunk) {
      return absl::InvalidArgumentError(
          absl::StrCat("message ", index_.load(), ": expected a chunk, got ",
                       message_.has_metadata() ? "a second metadata" : "an empty message"));
    }
    absl::Status added = upload_->AddChunk(message_.chunk(), index_);
    message_.Clear();
    return added;
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
    if (!upload_.has_value()) {
      FinishOnce(ToGrpcStatus(
          WithField(absl::InvalidArgumentError(
                        "empty upload: the first message must carry metadata"),
                    "metadata"),
          kUpload));
      return;
    }
    // Parsing and storing may take seconds: not on a gRPC callback thread.
    std::thread([this] {
      grpc::Status status;
      try {
        absl::Status in_time = budget_.Check();
        absl::StatusOr<agt::v1::Dataset> stored =
            in_time.ok() ? service_->StoreUpload(caller_, *upload_) : in_time;
        if (stored.ok()) *response_->mutable_dataset() = *std::move(stored);
        status = ToGrpcStatus(stored.status(), kUpload);
      } catch (const std::bad_alloc&) {
        status = ToGrpcStatus(
            WithReason(absl::ResourceExhaustedError(
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
        WithReason(absl::DeadlineExceededError(absl::StrCat(
                       "upload stalled: no message for ",
                       service_->admission_.idle_timeout().count(), " ms after message ",
                       index_.load(),
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

  DatasetServiceImpl* const service_;
  grpc::CallbackServerContext* const context_;
  agt::v1::UploadDatasetResponse* const response_;
  const CallBudget budget_;
  Principal caller_;
  std::unique_ptr<UploadAdmission::Slot> slot_;
  std::mutex mu_;  // guards finished_, message_, upload_ while reading
  bool finished_ = false;
  agt::v1::UploadDatasetRequest message_;
  std::atomic<int64_t> index_{0};
  std::optional<DatasetUpload> upload_;
};

grpc::ServerReadReactor<agt::v1::UploadDatasetRequest>* DatasetServiceImpl::UploadDataset(
    grpc::CallbackServerContext* context, agt::v1::UploadDatasetResponse* response) {
  return new UploadReactor(this, context, response);
}

absl::StatusOr<agt::v1::Dataset> DatasetServiceImpl::StoreUpload(const Principal& caller,
                                                                 DatasetUpload& upload) {
  absl::StatusOr<agt::Dataset> data = upload.Finish();
  if (!data.ok()) return data.status();
  absl::StatusOr<std::vector<int>> shape = upload.SampleShape(*data);
  if (!shape.ok()) return shape.status();
  DatasetInsertOptions options;
  options.request_id = upload.request_id();
  if (!options.request_id.empty()) options.request_fingerprint = upload.Fingerprint(*data);
  DatasetRecord record;
  record.tenant = caller.tenant;
  record.name = upload.name();
  record.num_rows = data->size();
  record.num_features = static_cast<int>(data->dim());
  record.num_classes = data->num_classes;
  record.sample_shape = *std::move(shape);
  absl::StatusOr<DatasetRecord> stored =
      store_->InsertDataset(std::move(record), *std::move(data), options);
  if (!stored.ok()) return stored.status();
  return DatasetToProto(*stored);
}

grpc::Status DatasetServiceImpl::ListDatasets(grpc::ServerContext* context,
                                              const agt::v1::ListDatasetsRequest* request,
                                              agt::v1::ListDatasetsResponse* response) {
  absl::StatusOr<Principal> caller = auth_->Check(*context, kList);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kList);
  absl::StatusOr<int> page_size = ResolvePageSize(request->page_size(), "page_size");
  if (!page_size.ok()) return ToGrpcStatus(page_size.status(), kList);
  if (absl::Status s = CheckPageToken(request->page_token(), "page_token"); !s.ok()) {
    return ToGrpcStatus(s, kList);
  }
  absl::StatusOr<Page<DatasetRecord>> page =
      store_->ListDatasets(caller->tenant, *page_size, request->page_token());
  if (!page.ok()) return ToGrpcStatus(page.status(), kList);
  for (const DatasetRecord& record : page->items) {
    *response->add_datasets() = DatasetToProto(record);
  }
  response->set_next_page_token(page->next_page_token);
  return grpc::Status::OK;
}

grpc::Status DatasetServiceImpl::GetDataset(grpc::ServerContext* context,
                                            const agt::v1::GetDatasetRequest* request,
                                            agt::v1::GetDatasetResponse* response) {
  absl::StatusOr<Principal> caller = auth_->Check(*context, kGet);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kGet);
  if (absl::Status s = CheckId(request->dataset_id(), "dataset_id"); !s.ok()) {
    return ToGrpcStatus(s, kGet);
  }
  absl::StatusOr<DatasetRecord> record = store_->GetDataset(caller->tenant, request->dataset_id());
  if (!record.ok()) return ToGrpcStatus(record.status(), kGet);
  *response->mutable_dataset() = DatasetToProto(*record);
  return grpc::Status::OK;
}

grpc::Status DatasetServiceImpl::DeleteDataset(grpc::ServerContext* context,
                                               const agt::v1::DeleteDatasetRequest* request,
                                               agt::v1::DeleteDatasetResponse* /*response*/) {
  absl::StatusOr<Principal> caller = auth_->Check(*context, kDelete);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kDelete);
  if (absl::Status s = CheckId(request->dataset_id(), "dataset_id"); !s.ok()) {
    return ToGrpcStatus(s, kDelete);
  }
  return ToGrpcStatus(store_->DeleteDataset(caller->tenant, request->dataset_id()), kDelete);
}

}  // namespace agt::server
