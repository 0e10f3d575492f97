// agt.v1.DatasetService: upload, list, get and delete datasets of the
// caller's tenant. A thin adapter: authenticate and authorize (CallAuth),
// validate the request, assemble uploads (DatasetUpload), call the Store,
// convert records (domain/model_convert.h) and map statuses.
//
// Ownership: the store, auth and limits must outlive the service.
// Thread-safety: gRPC calls the methods concurrently; the service holds no
// mutable state.
#ifndef AGT_SERVER_SERVICE_DATASET_SERVICE_H_
#define AGT_SERVER_SERVICE_DATASET_SERVICE_H_

#include "agt/v1/datasets.grpc.pb.h"
#include "server/service/call_auth.h"
#include "server/service/dataset_upload.h"
#include "server/store/store.h"

namespace agt::server {

class DatasetServiceImpl final : public agt::v1::DatasetService::Service {
 public:
  DatasetServiceImpl(Store* store, const CallAuth* auth, UploadLimits limits)
      : store_(store), auth_(auth), limits_(limits) {}

  grpc::Status UploadDataset(grpc::ServerContext* context,
                             grpc::ServerReader<agt::v1::UploadDatasetRequest>* reader,
                             agt::v1::UploadDatasetResponse* response) override;
  grpc::Status ListDatasets(grpc::ServerContext* context,
                            const agt::v1::ListDatasetsRequest* request,
                            agt::v1::ListDatasetsResponse* response) override;
  grpc::Status GetDataset(grpc::ServerContext* context, const agt::v1::GetDatasetRequest* request,
                          agt::v1::GetDatasetResponse* response) override;
  grpc::Status DeleteDataset(grpc::ServerContext* context,
                             const agt::v1::DeleteDatasetRequest* request,
                             agt::v1::DeleteDatasetResponse* response) override;

 private:
  absl::StatusOr<agt::v1::Dataset> Upload(
      const Principal& caller, grpc::ServerReader<agt::v1::UploadDatasetRequest>* reader);

  Store* const store_;
  const CallAuth* const auth_;
  const UploadLimits limits_;
};

}  // namespace agt::server

#endif  // AGT_SERVER_SERVICE_DATASET_SERVICE_H_
