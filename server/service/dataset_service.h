// agt.v1.DatasetService: upload, list, get and delete datasets of the
// caller's tenant. A thin adapter: authenticate and authorize (CallAuth),
// validate the request, assemble uploads (DatasetUpload), call the Store,
// convert records (domain/model_convert.h) and map statuses.
//
// UploadDataset is served by the callback API (no thread waits on a slow
// stream): each upload holds a slot of UploadAdmission (at most
// max_uploads_per_tenant at once, RESOURCE_EXHAUSTED beyond), is ended with
// DEADLINE_EXCEEDED when no message arrives for the idle timeout or the call
// passes its deadline (the caller's, or default_deadline when it set none),
// and stops with CANCELLED when the call is cancelled. Parsing and storing
// the finished upload run on a thread of their own. metadata.request_id
// makes the upload idempotent (Store::InsertDataset).
//
// Ownership: the store and auth must outlive the service.
// Thread-safety: gRPC calls the methods concurrently; the admission is
// thread-safe and the service holds no other mutable state.
#ifndef AGT_SERVER_SERVICE_DATASET_SERVICE_H_
#define AGT_SERVER_SERVICE_DATASET_SERVICE_H_

#include <chrono>

#include "agt/v1/datasets.grpc.pb.h"
#include "server/service/call_auth.h"
#include "server/service/dataset_upload.h"
#include "server/service/upload_admission.h"
#include "server/store/store.h"

namespace agt::server {

class DatasetServiceImpl final : public agt::v1::DatasetService::WithCallbackMethod_UploadDataset<
                                       agt::v1::DatasetService::Service> {
 public:
  DatasetServiceImpl(Store* store, const CallAuth* auth, UploadLimits limits,
                     UploadAdmissionOptions admission = {},
                     std::chrono::milliseconds default_deadline = std::chrono::milliseconds(0))
      : store_(store),
        auth_(auth),
        limits_(limits),
        admission_(admission),
        default_deadline_(default_deadline) {}

  grpc::ServerReadReactor<agt::v1::UploadDatasetRequest>* UploadDataset(
      grpc::CallbackServerContext* context, agt::v1::UploadDatasetResponse* response) override;
  grpc::Status ListDatasets(grpc::ServerContext* context,
                            const agt::v1::ListDatasetsRequest* request,
                            agt::v1::ListDatasetsResponse* response) override;
  grpc::Status GetDataset(grpc::ServerContext* context, const agt::v1::GetDatasetRequest* request,
                          agt::v1::GetDatasetResponse* response) override;
  grpc::Status DeleteDataset(grpc::ServerContext* context,
                             const agt::v1::DeleteDatasetRequest* request,
                             agt::v1::DeleteDatasetResponse* response) override;

 private:
  class UploadReactor;
  // Parses a complete upload and stores it (idempotently with a request id).
  absl::StatusOr<agt::v1::Dataset> StoreUpload(const Principal& caller, DatasetUpload& upload);

  Store* const store_;
  const CallAuth* const auth_;
  const UploadLimits limits_;
  UploadAdmission admission_;
  const std::chrono::milliseconds default_deadline_;
};

}  // namespace agt::server

#endif  // AGT_SERVER_SERVICE_DATASET_SERVICE_H_
