// agt.v1.UnlearningService: deletion requests against models trained under
// removal budgets, their status, per-input unlearning certificates (paper
// section 10.1), and the in-place retraining without the deleted rows. A thin
// adapter: authenticate and authorize (CallAuth), validate the request, then
// the deletion ledger (AppendDeletions of domain/ledgers.h decides, per batch
// of the model's training, and the store records atomically, idempotent by
// request_id),
// the domain (domain/unlearning.h) and the retraining job: the model's spec
// on its own dataset with the deleted rows in removed_rows, which is the
// retraining the certificates are about.
//
// Errors: unknown or foreign model -> NOT_FOUND; a model not trained under
// removal (every RPC, ListDeletions included) -> FAILED_PRECONDITION; empty
// or too many row ids, an unknown row id (named), a bad or reused
// request_id -> INVALID_ARGUMENT.
//
// Ownership: the store, cache, runner and auth must outlive the service.
// Thread-safety: gRPC calls the methods concurrently; enqueuing a retraining
// is serialised so one model gets at most one live retraining job.
#ifndef AGT_SERVER_SERVICE_UNLEARNING_SERVICE_H_
#define AGT_SERVER_SERVICE_UNLEARNING_SERVICE_H_

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "agt/v1/unlearning.grpc.pb.h"
#include "server/domain/admission.h"
#include "server/domain/certifier.h"
#include "server/jobs/job_runner.h"
#include "server/service/call_auth.h"
#include "server/store/store.h"

namespace agt::server {

class UnlearningServiceImpl final : public agt::v1::UnlearningService::Service {
 public:
  // Retraining jobs are admitted like submitted ones (`admission`: the
  // memory estimate and the per-tenant limit, server/domain/admission.h).
  // CheckUnlearning certifies under the call's deadline (or
  // `default_deadline` when it set none) and reserves its chunks from
  // `memory` (optional, not owned), like CertifyPredictions.
  UnlearningServiceImpl(Store* store, ModelCache* cache, JobRunner* runner, const CallAuth* auth,
                        JobAdmission admission = {},
                        std::chrono::milliseconds default_deadline = std::chrono::milliseconds(0),
                        WorkingMemory* memory = nullptr)
      : store_(store),
        cache_(cache),
        runner_(runner),
        auth_(auth),
        admission_(std::move(admission)),
        default_deadline_(default_deadline),
        memory_(memory) {}

  grpc::Status RequestDeletion(grpc::ServerContext* context,
                               const agt::v1::RequestDeletionRequest* request,
                               agt::v1::RequestDeletionResponse* response) override;
  grpc::Status GetUnlearningStatus(grpc::ServerContext* context,
                                   const agt::v1::GetUnlearningStatusRequest* request,
                                   agt::v1::GetUnlearningStatusResponse* response) override;
  grpc::Status CheckUnlearning(grpc::ServerContext* context,
                               const agt::v1::CheckUnlearningRequest* request,
                               agt::v1::CheckUnlearningResponse* response) override;
  grpc::Status ListDeletions(grpc::ServerContext* context,
                             const agt::v1::ListDeletionsRequest* request,
                             agt::v1::ListDeletionsResponse* response) override;
  grpc::Status RetrainInPlace(grpc::ServerContext* context,
                              const agt::v1::RetrainInPlaceRequest* request,
                              agt::v1::RetrainInPlaceResponse* response) override;

 private:
  absl::StatusOr<std::shared_ptr<const ModelRecord>> LoadModel(const Principal& caller,
                                                               const std::string& model_id);
  // *replayed (optional): set when the answer is a retried request_id's
  // stored first answer (nothing newly decided).
  absl::StatusOr<agt::v1::RequestDeletionResponse> Delete(
      const Principal& caller, const agt::v1::RequestDeletionRequest& request,
      bool* replayed = nullptr);
  absl::StatusOr<agt::v1::GetUnlearningStatusResponse> LoadStatus(const Principal& caller,
                                                                  const std::string& model_id);
  absl::StatusOr<agt::v1::CheckUnlearningResponse> Check(
      const Principal& caller, const agt::v1::CheckUnlearningRequest& request,
      const CertifyOptions& options);
  absl::StatusOr<agt::v1::ListDeletionsResponse> Ledger(
      const Principal& caller, const agt::v1::ListDeletionsRequest& request);
  // The model's gating inputs: its removal budgets (FailedPrecondition for a
  // model that cannot be gated) and the batches of its training.
  struct Gate {
    std::shared_ptr<const ModelRecord> model;
    std::vector<int> budgets;
  };
  absl::StatusOr<Gate> LoadGate(const Principal& caller, const std::string& model_id);
  // The model's retraining job: its existing one while QUEUED or RUNNING, or
  // SUCCEEDED without a ledger row left out; otherwise a new in-place
  // retraining (domain PlanInPlaceRetraining) is enqueued.
  absl::StatusOr<agt::v1::RetrainInPlaceResponse> EnsureRetraining(const Principal& caller,
                                                                   const ModelRecord& model);

  Store* const store_;
  ModelCache* const cache_;
  JobRunner* const runner_;
  const CallAuth* const auth_;
  const JobAdmission admission_;
  const std::chrono::milliseconds default_deadline_;
  WorkingMemory* const memory_;
  std::mutex retrain_mu_;
};

}  // namespace agt::server

#endif  // AGT_SERVER_SERVICE_UNLEARNING_SERVICE_H_
