// agt.v1.TrainingService: submit, get, list, cancel and watch training jobs
// of the caller's tenant. A thin adapter: authenticate and authorize
// (CallAuth), validate (domain/job_spec.h resolves the spec against its
// dataset before anything is queued), admit (domain/admission.h: the job's
// estimated memory and checkpoint against the server's limits, and the
// tenant's QUEUED + RUNNING jobs against its limit, RESOURCE_EXHAUSTED), then
// the Store and the JobRunner. A request_id makes a submission idempotent:
// a retry gets the first job back (checked before admission, so a retry is
// answered even when the tenant is at its limit).
//
// GetTrainingHistory serves a job's stored width history
// (jobs/width_history.h), found by job id or by the model the job trained,
// with GetJob's role and tenant checks.
//
// WatchJob streams JobEvents from a JobWatch until the job reaches a final
// state (then OK). It ends early with CANCELLED when the client goes away
// and with UNAVAILABLE when the server shuts down (BeginShutdown, or the
// runner stopping), so a shutdown never waits on a watcher.
//
// Ownership: the store, runner and auth must outlive the service.
// Thread-safety: gRPC calls the methods concurrently; BeginShutdown may be
// called from any thread.
#ifndef AGT_SERVER_SERVICE_TRAINING_SERVICE_H_
#define AGT_SERVER_SERVICE_TRAINING_SERVICE_H_

#include <atomic>
#include <chrono>
#include <utility>

#include "agt/v1/training.grpc.pb.h"
#include "server/domain/admission.h"
#include "server/jobs/job_runner.h"
#include "server/service/call_auth.h"
#include "server/service/tenant_slots.h"
#include "server/store/artifact_store.h"
#include "server/store/store.h"

namespace agt::server {

class TrainingServiceImpl final : public agt::v1::TrainingService::Service {
 public:
  // At most `max_watches_per_tenant` (>= 1) WatchJob streams of one tenant
  // are open at a time (each holds a server thread); more are
  // RESOURCE_EXHAUSTED.
  TrainingServiceImpl(Store* store, JobRunner* runner, const CallAuth* auth,
                      JobAdmission admission = {}, int max_watches_per_tenant = 16)
      : store_(store),
        runner_(runner),
        auth_(auth),
        admission_(std::move(admission)),
        watches_("job watches", "--max-watches-per-tenant", max_watches_per_tenant) {}

  // Where spec.model_artifact references are resolved (not owned; must
  // outlive the service). Unset: such specs are FAILED_PRECONDITION.
  void set_artifacts(ArtifactStore* artifacts) { artifacts_ = artifacts; }

  grpc::Status SubmitTrainingJob(grpc::ServerContext* context,
                                 const agt::v1::SubmitTrainingJobRequest* request,
                                 agt::v1::SubmitTrainingJobResponse* response) override;
  grpc::Status GetJob(grpc::ServerContext* context, const agt::v1::GetJobRequest* request,
                      agt::v1::GetJobResponse* response) override;
  grpc::Status ListJobs(grpc::ServerContext* context, const agt::v1::ListJobsRequest* request,
                        agt::v1::ListJobsResponse* response) override;
  grpc::Status CancelJob(grpc::ServerContext* context, const agt::v1::CancelJobRequest* request,
                         agt::v1::CancelJobResponse* response) override;
  grpc::Status DeleteJob(grpc::ServerContext* context, const agt::v1::DeleteJobRequest* request,
                         agt::v1::DeleteJobResponse* response) override;
  grpc::Status WatchJob(grpc::ServerContext* context, const agt::v1::WatchJobRequest* request,
                        grpc::ServerWriter<agt::v1::JobEvent>* writer) override;
  grpc::Status GetTrainingHistory(grpc::ServerContext* context,
                                  const agt::v1::GetTrainingHistoryRequest* request,
                                  agt::v1::GetTrainingHistoryResponse* response) override;

  // Ends every WatchJob stream (UNAVAILABLE) within one poll interval and
  // refuses new ones.
  void BeginShutdown() { shutting_down_.store(true, std::memory_order_release); }

  // How often a watch loop checks for a cancelled client or a shutdown.
  static constexpr std::chrono::milliseconds kWatchPoll{100};

 private:
  // The spec with spec.model_artifact resolved into its architecture
  // (domain/model_artifacts.h); the spec itself when it names none.
  absl::StatusOr<agt::v1::TrainingJobSpec> ResolveArtifact(const Principal& caller,
                                                           const agt::v1::TrainingJobSpec& spec);
  absl::StatusOr<agt::v1::Job> Submit(const Principal& caller,
                                      const agt::v1::SubmitTrainingJobRequest& request);
  absl::StatusOr<agt::v1::GetTrainingHistoryResponse> History(
      const Principal& caller, const agt::v1::GetTrainingHistoryRequest& request);
  absl::Status Watch(const Principal& caller, const std::string& job_id,
                     grpc::ServerContext* context, grpc::ServerWriter<agt::v1::JobEvent>* writer);
  bool shutting_down() const { return shutting_down_.load(std::memory_order_acquire); }

  Store* const store_;
  ArtifactStore* artifacts_ = nullptr;
  JobRunner* const runner_;
  const CallAuth* const auth_;
  const JobAdmission admission_;
  TenantSlots watches_;
  std::atomic<bool> shutting_down_{false};
};

}  // namespace agt::server

#endif  // AGT_SERVER_SERVICE_TRAINING_SERVICE_H_
