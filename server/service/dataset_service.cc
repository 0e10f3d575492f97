#include "server/service/dataset_service.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/domain/model_convert.h"
#include "server/service/request_checks.h"
#include "server/service/status_mapping.h"

namespace agt::server {
namespace {

constexpr char kUpload[] = "/agt.v1.DatasetService/UploadDataset";
constexpr char kList[] = "/agt.v1.DatasetService/ListDatasets";
constexpr char kGet[] = "/agt.v1.DatasetService/GetDataset";
constexpr char kDelete[] = "/agt.v1.DatasetService/DeleteDataset";

}  // namespace

grpc::Status DatasetServiceImpl::UploadDataset(
    grpc::ServerContext* context, grpc::ServerReader<agt::v1::UploadDatasetRequest>* reader,
    agt::v1::UploadDatasetResponse* response) {
  absl::StatusOr<Principal> caller = auth_->Check(*context, kUpload);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kUpload);
  absl::StatusOr<agt::v1::Dataset> dataset = Upload(*caller, reader);
  if (!dataset.ok()) return ToGrpcStatus(dataset.status(), kUpload);
  *response->mutable_dataset() = *std::move(dataset);
  return grpc::Status::OK;
}

absl::StatusOr<agt::v1::Dataset> DatasetServiceImpl::Upload(
    const Principal& caller, grpc::ServerReader<agt::v1::UploadDatasetRequest>* reader) {
  agt::v1::UploadDatasetRequest message;
  if (!reader->Read(&message)) {
    return absl::InvalidArgumentError("empty upload: the first message must carry metadata");
  }
  if (!message.has_metadata()) {
    return absl::InvalidArgumentError(
        "message 1: the first message must carry metadata, not a chunk");
  }
  absl::StatusOr<DatasetUpload> upload = DatasetUpload::Begin(message.metadata(), limits_);
  if (!upload.ok()) return upload.status();
  for (int64_t index = 2; reader->Read(&message); ++index) {
    if (message.part_case() != agt::v1::UploadDatasetRequest::kChunk) {
      return absl::InvalidArgumentError(
          absl::StrCat("message ", index, ": expected a chunk, got ",
                       message.has_metadata() ? "a second metadata" : "an empty message"));
    }
    if (absl::Status added = upload->AddChunk(message.chunk(), index); !added.ok()) {
      return added;
    }
  }
  absl::StatusOr<agt::Dataset> data = upload->Finish();
  if (!data.ok()) return data.status();

  DatasetRecord record;
  record.tenant = caller.tenant;
  record.name = upload->name();
  record.num_rows = data->size();
  record.num_features = static_cast<int>(data->dim());
  record.num_classes = data->num_classes;
  absl::StatusOr<DatasetRecord> stored = store_->InsertDataset(std::move(record), *data);
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
