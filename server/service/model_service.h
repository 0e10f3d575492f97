// agt.v1.ModelService: trained models of the caller's tenant and
// certificates from their stored parameter boxes. A thin adapter:
// authenticate and authorize (CallAuth), validate ids, read models through a
// ModelCache (stored models never change, so repeated certify calls skip
// SQLite), and call the domain certifier (domain/certifier.h), which
// validates inputs against the model and does the maths. For models trained
// under removal budgets, CertifyPredictions also says per point whether it is
// certified unchanged by the deletions in the model's ledger (the ledger is
// read from the store on every call; it changes, the model does not).
//
// CertifyPredictions and CertifyDataset work a chunk of rows at a time and
// stop between chunks once the call is cancelled or past its deadline (the
// caller's, or `default_deadline` for calls that set none; call_budget.h):
// CANCELLED / DEADLINE_EXCEEDED. No exception escapes a handler
// (RESOURCE_EXHAUSTED on allocation failure, INTERNAL otherwise).
//
// Ownership: the store, cache and auth must outlive the service.
// Thread-safety: gRPC calls the methods concurrently; the cache is
// thread-safe and the service holds no other mutable state.
#ifndef AGT_SERVER_SERVICE_MODEL_SERVICE_H_
#define AGT_SERVER_SERVICE_MODEL_SERVICE_H_

#include <chrono>

#include "agt/v1/models.grpc.pb.h"
#include "server/domain/certifier.h"
#include "server/service/call_auth.h"
#include "server/store/store.h"

namespace agt::server {

class ModelServiceImpl final : public agt::v1::ModelService::Service {
 public:
  // `memory` (optional, must outlive the service): the server-wide budget
  // certify calls reserve their chunks from.
  ModelServiceImpl(Store* store, ModelCache* cache, const CallAuth* auth,
                   std::chrono::milliseconds default_deadline = std::chrono::milliseconds(0),
                   WorkingMemory* memory = nullptr)
      : store_(store),
        cache_(cache),
        auth_(auth),
        default_deadline_(default_deadline),
        memory_(memory) {}

  grpc::Status GetModel(grpc::ServerContext* context, const agt::v1::GetModelRequest* request,
                        agt::v1::GetModelResponse* response) override;
  grpc::Status ListModels(grpc::ServerContext* context, const agt::v1::ListModelsRequest* request,
                          agt::v1::ListModelsResponse* response) override;
  grpc::Status ExportModel(grpc::ServerContext* context, const agt::v1::ExportModelRequest* request,
                           agt::v1::ExportModelResponse* response) override;
  // The nominal network as an ONNX file (domain/model_artifacts.h), in
  // chunks of kOnnxChunkBytes.
  grpc::Status ExportModelOnnx(grpc::ServerContext* context,
                               const agt::v1::ExportModelOnnxRequest* request,
                               grpc::ServerWriter<agt::v1::ExportModelOnnxChunk>* writer) override;
  static constexpr size_t kOnnxChunkBytes = size_t{1} << 20;
  grpc::Status CertifyPredictions(grpc::ServerContext* context,
                                  const agt::v1::CertifyPredictionsRequest* request,
                                  agt::v1::CertifyPredictionsResponse* response) override;
  grpc::Status CertifyDataset(grpc::ServerContext* context,
                              const agt::v1::CertifyDatasetRequest* request,
                              agt::v1::CertifyDatasetResponse* response) override;
  // The store deletes (Store::DeleteModel says what stays and what is
  // refused), then the cache forgets the model.
  grpc::Status DeleteModel(grpc::ServerContext* context, const agt::v1::DeleteModelRequest* request,
                           agt::v1::DeleteModelResponse* response) override;

 private:
  // The caller's model `model_id` (validated, then from the cache).
  absl::StatusOr<std::shared_ptr<const ModelRecord>> LoadModel(const Principal& caller,
                                                               const std::string& model_id);
  // Removal models: per point, certified unchanged by the accepted deletions
  // (domain/unlearning.h); other models are left as they are.
  absl::Status AddDeletionCertificates(const Principal& caller, const ModelRecord& model,
                                       agt::v1::CertifyPredictionsResponse* response);
  absl::StatusOr<agt::v1::CertifyDatasetResponse> CertifyStoredDataset(
      const Principal& caller, const agt::v1::CertifyDatasetRequest& request,
      const CertifyOptions& options);

  Store* const store_;
  ModelCache* const cache_;
  const CallAuth* const auth_;
  const std::chrono::milliseconds default_deadline_;
  WorkingMemory* const memory_;
};

}  // namespace agt::server

#endif  // AGT_SERVER_SERVICE_MODEL_SERVICE_H_
