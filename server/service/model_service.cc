#include "server/service/model_service.h"

#include <algorithm>
#include <exception>
#include <new>
#include <utility>

#include "core/common/status_details.h"
#include "server/domain/model_artifacts.h"
#include "server/domain/model_convert.h"
#include "server/domain/unlearning.h"
#include "server/service/call_budget.h"
#include "server/service/request_checks.h"
#include "server/service/status_mapping.h"
#include "server/store/blob.h"

namespace agt::server {
namespace {

constexpr char kGet[] = "/agt.v1.ModelService/GetModel";
constexpr char kList[] = "/agt.v1.ModelService/ListModels";
constexpr char kExport[] = "/agt.v1.ModelService/ExportModel";
constexpr char kDelete[] = "/agt.v1.ModelService/DeleteModel";
constexpr char kExportOnnx[] = "/agt.v1.ModelService/ExportModelOnnx";
constexpr char kCertifyPredictions[] = "/agt.v1.ModelService/CertifyPredictions";
constexpr char kCertifyDataset[] = "/agt.v1.ModelService/CertifyDataset";

// No exception may leave a handler (gRPC would answer UNKNOWN).
template <typename Fn>
grpc::Status Guarded(const char* method, Fn&& fn) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    return ToGrpcStatus(
        WithReason(absl::ResourceExhaustedError(
                       "the server ran out of memory for this call; try again later"),
                   kReasonServerOutOfMemory),
        method);
  } catch (const std::exception& e) {
    return ToGrpcStatus(absl::InternalError(e.what()), method);
  }
}

}  // namespace

absl::StatusOr<std::shared_ptr<const ModelRecord>> ModelServiceImpl::LoadModel(
    const Principal& caller, const std::string& model_id) {
  if (absl::Status s = CheckId(model_id, "model_id"); !s.ok()) return s;
  return cache_->Get(store_, caller.tenant, model_id);
}

grpc::Status ModelServiceImpl::GetModel(grpc::ServerContext* context,
                                        const agt::v1::GetModelRequest* request,
                                        agt::v1::GetModelResponse* response) {
  absl::StatusOr<Principal> caller = auth_->Check(*context, kGet);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kGet);
  absl::StatusOr<std::shared_ptr<const ModelRecord>> model =
      LoadModel(*caller, request->model_id());
  if (!model.ok()) return ToGrpcStatus(model.status(), kGet);
  absl::StatusOr<agt::v1::Model> proto = ModelToProto(**model);
  if (!proto.ok()) return ToGrpcStatus(proto.status(), kGet);
  *response->mutable_model() = *std::move(proto);
  return grpc::Status::OK;
}

grpc::Status ModelServiceImpl::ListModels(grpc::ServerContext* context,
                                          const agt::v1::ListModelsRequest* request,
                                          agt::v1::ListModelsResponse* response) {
  absl::StatusOr<Principal> caller = auth_->Check(*context, kList);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kList);
  absl::StatusOr<int> page_size = ResolvePageSize(request->page_size(), "page_size");
  if (!page_size.ok()) return ToGrpcStatus(page_size.status(), kList);
  if (absl::Status s = CheckPageToken(request->page_token(), "page_token"); !s.ok()) {
    return ToGrpcStatus(s, kList);
  }
  absl::StatusOr<Page<ModelRecord>> page =
      store_->ListModels(caller->tenant, *page_size, request->page_token());
  if (!page.ok()) return ToGrpcStatus(page.status(), kList);
  for (const ModelRecord& record : page->items) {
    absl::StatusOr<agt::v1::Model> model = ModelToProto(record);
    if (!model.ok()) return ToGrpcStatus(model.status(), kList);
    *response->add_models() = *std::move(model);
  }
  response->set_next_page_token(page->next_page_token);
  return grpc::Status::OK;
}

grpc::Status ModelServiceImpl::ExportModel(grpc::ServerContext* context,
                                           const agt::v1::ExportModelRequest* request,
                                           agt::v1::ExportModelResponse* response) {
  absl::StatusOr<Principal> caller = auth_->Check(*context, kExport);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kExport);
  absl::StatusOr<std::shared_ptr<const ModelRecord>> model =
      LoadModel(*caller, request->model_id());
  if (!model.ok()) return ToGrpcStatus(model.status(), kExport);
  absl::StatusOr<agt::v1::ExportModelResponse> exported = ExportModelToProto(**model);
  if (!exported.ok()) return ToGrpcStatus(exported.status(), kExport);
  *response = *std::move(exported);
  return grpc::Status::OK;
}

grpc::Status ModelServiceImpl::ExportModelOnnx(
    grpc::ServerContext* context, const agt::v1::ExportModelOnnxRequest* request,
    grpc::ServerWriter<agt::v1::ExportModelOnnxChunk>* writer) {
  absl::StatusOr<Principal> caller = auth_->Check(*context, kExportOnnx);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kExportOnnx);
  return Guarded(kExportOnnx, [&]() -> grpc::Status {
    absl::StatusOr<std::shared_ptr<const ModelRecord>> model =
        LoadModel(*caller, request->model_id());
    if (!model.ok()) return ToGrpcStatus(model.status(), kExportOnnx);
    absl::StatusOr<std::string> file =
        agt::server::ExportModelOnnx((*model)->architecture, (*model)->nominal,
                                     (*model)->polynomial_degree, request->float32());
    if (!file.ok()) return ToGrpcStatus(file.status(), kExportOnnx);
    agt::v1::ExportModelOnnxChunk chunk;
    chunk.set_size_bytes(static_cast<int64_t>(file->size()));
    chunk.set_sha256(Sha256Hex(*file));
    size_t offset = 0;
    do {
      const size_t n = std::min(kOnnxChunkBytes, file->size() - offset);
      chunk.set_chunk(file->substr(offset, n));
      offset += n;
      if (!writer->Write(chunk)) {
        return ToGrpcStatus(absl::CancelledError("the client went away during the export"),
                            kExportOnnx);
      }
      chunk.Clear();
    } while (offset < file->size());
    return grpc::Status::OK;
  });
}

grpc::Status ModelServiceImpl::CertifyPredictions(grpc::ServerContext* context,
                                                  const agt::v1::CertifyPredictionsRequest* request,
                                                  agt::v1::CertifyPredictionsResponse* response) {
  const CallBudget budget(*context, default_deadline_);
  return Guarded(kCertifyPredictions, [&]() -> grpc::Status {
    absl::StatusOr<Principal> caller = auth_->Check(*context, kCertifyPredictions);
    if (!caller.ok()) return ToGrpcStatus(caller.status(), kCertifyPredictions);
    absl::StatusOr<std::shared_ptr<const ModelRecord>> model =
        LoadModel(*caller, request->model_id());
    if (!model.ok()) return ToGrpcStatus(model.status(), kCertifyPredictions);
    CertifyOptions options;
    options.keep_going = budget.AsKeepGoing();
    options.memory = memory_;
    absl::StatusOr<agt::v1::CertifyPredictionsResponse> certified =
        agt::server::CertifyPredictions(**model, *request, options);
    if (!certified.ok()) return ToGrpcStatus(certified.status(), kCertifyPredictions);
    if (absl::Status s = AddDeletionCertificates(*caller, **model, &*certified); !s.ok()) {
      return ToGrpcStatus(s, kCertifyPredictions);
    }
    *response = *std::move(certified);
    return grpc::Status::OK;
  });
}

grpc::Status ModelServiceImpl::CertifyDataset(grpc::ServerContext* context,
                                              const agt::v1::CertifyDatasetRequest* request,
                                              agt::v1::CertifyDatasetResponse* response) {
  const CallBudget budget(*context, default_deadline_);
  return Guarded(kCertifyDataset, [&]() -> grpc::Status {
    absl::StatusOr<Principal> caller = auth_->Check(*context, kCertifyDataset);
    if (!caller.ok()) return ToGrpcStatus(caller.status(), kCertifyDataset);
    CertifyOptions options;
    options.keep_going = budget.AsKeepGoing();
    options.memory = memory_;
    absl::StatusOr<agt::v1::CertifyDatasetResponse> certified =
        CertifyStoredDataset(*caller, *request, options);
    if (!certified.ok()) return ToGrpcStatus(certified.status(), kCertifyDataset);
    *response = *std::move(certified);
    return grpc::Status::OK;
  });
}

absl::Status ModelServiceImpl::AddDeletionCertificates(
    const Principal& caller, const ModelRecord& model,
    agt::v1::CertifyPredictionsResponse* response) {
  // Only removal (classification) models have a deletion ledger.
  if (!RemovalBudgets(model).ok()) return absl::OkStatus();
  // Counted per batch of the model's training (domain/unlearning.h).
  absl::StatusOr<agt::DeletionCount> d = CountAcceptedDeletions(*store_, caller.tenant, model);
  if (!d.ok()) return d.status();
  return AddUnlearningCertificates(model, *d, response);
}

absl::StatusOr<agt::v1::CertifyDatasetResponse> ModelServiceImpl::CertifyStoredDataset(
    const Principal& caller, const agt::v1::CertifyDatasetRequest& request,
    const CertifyOptions& options) {
  absl::StatusOr<std::shared_ptr<const ModelRecord>> model = LoadModel(caller, request.model_id());
  if (!model.ok()) return model.status();
  if (absl::Status s = CheckId(request.dataset_id(), "dataset_id"); !s.ok()) return s;
  absl::StatusOr<agt::Dataset> data = store_->LoadDatasetData(caller.tenant, request.dataset_id());
  if (!data.ok()) return data.status();
  if (absl::Status s = options.keep_going(); !s.ok()) return s;
  return agt::server::CertifyDataset(**model, *data, request.test_epsilon(),
                                     request.stability_rule(), options);
}

grpc::Status ModelServiceImpl::DeleteModel(grpc::ServerContext* context,
                                           const agt::v1::DeleteModelRequest* request,
                                           agt::v1::DeleteModelResponse* /*response*/) {
  absl::StatusOr<Principal> caller = auth_->Check(*context, kDelete);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kDelete);
  if (absl::Status s = CheckId(request->model_id(), "model_id"); !s.ok()) {
    return ToGrpcStatus(s, kDelete);
  }
  if (absl::Status s = store_->DeleteModel(caller->tenant, request->model_id()); !s.ok()) {
    return ToGrpcStatus(s, kDelete);
  }
  cache_->Forget(caller->tenant, request->model_id());
  return grpc::Status::OK;
}

}  // namespace agt::server
