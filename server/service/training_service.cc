#include "server/service/training_service.h"

#include <optional>
#include <utility>

#include "server/domain/job_spec.h"
#include "server/domain/model_artifacts.h"
#include "server/domain/model_convert.h"
#include "server/jobs/width_history.h"
#include "server/observability/log.h"
#include "server/service/artifact_service.h"
#include "server/service/request_checks.h"
#include "server/service/request_fingerprint.h"
#include "server/service/status_mapping.h"
#include "server/store/blob.h"

namespace agt::server {
namespace {

constexpr char kSubmit[] = "/agt.v1.TrainingService/SubmitTrainingJob";
constexpr char kGet[] = "/agt.v1.TrainingService/GetJob";
constexpr char kList[] = "/agt.v1.TrainingService/ListJobs";
constexpr char kCancel[] = "/agt.v1.TrainingService/CancelJob";
constexpr char kWatch[] = "/agt.v1.TrainingService/WatchJob";
constexpr char kDelete[] = "/agt.v1.TrainingService/DeleteJob";
constexpr char kHistory[] = "/agt.v1.TrainingService/GetTrainingHistory";

}  // namespace

grpc::Status TrainingServiceImpl::SubmitTrainingJob(
    grpc::ServerContext* context, const agt::v1::SubmitTrainingJobRequest* request,
    agt::v1::SubmitTrainingJobResponse* response) {
  absl::StatusOr<Principal> caller = auth_->Check(*context, kSubmit);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kSubmit);
  absl::StatusOr<agt::v1::Job> job = Submit(*caller, *request);
  if (!job.ok()) return ToGrpcStatus(job.status(), kSubmit);
  *response->mutable_job() = *std::move(job);
  return grpc::Status::OK;
}

absl::StatusOr<agt::v1::TrainingJobSpec> TrainingServiceImpl::ResolveArtifact(
    const Principal& caller, const agt::v1::TrainingJobSpec& spec) {
  if (!spec.has_model_artifact()) return spec;
  const std::string& id = spec.model_artifact().artifact_id();
  if (absl::Status s = CheckId(id, "spec.model_artifact.artifact_id"); !s.ok()) return s;
  if (artifacts_ == nullptr) {
    return absl::FailedPreconditionError(
        "spec.model_artifact: this server keeps no model artifacts");
  }
  absl::StatusOr<ArtifactRecord> record = artifacts_->Get(caller.tenant, id);
  if (!record.ok()) return record.status();
  absl::StatusOr<agt::v1::ModelArtifact> artifact = ArtifactToProto(*record);
  if (!artifact.ok()) return artifact.status();
  absl::StatusOr<std::string> bytes = artifacts_->LoadContent(caller.tenant, id);
  if (!bytes.ok()) return bytes.status();
  // The dataset's sample shape must be the network's input shape; an
  // unknown dataset is reported as it is without an artifact.
  absl::StatusOr<DatasetRecord> dataset = store_->GetDataset(caller.tenant, spec.dataset_id());
  if (!dataset.ok()) return dataset.status();
  agt::v1::TrainingJobSpec resolved = spec;
  if (absl::Status s = ResolveModelArtifact(*artifact, *bytes, *dataset, &resolved); !s.ok()) {
    return s;
  }
  return resolved;
}

absl::StatusOr<agt::v1::Job> TrainingServiceImpl::Submit(
    const Principal& caller, const agt::v1::SubmitTrainingJobRequest& request) {
  if (!request.has_spec()) return absl::InvalidArgumentError("spec: required");
  if (absl::Status s = CheckId(request.spec().dataset_id(), "spec.dataset_id"); !s.ok()) return s;
  // Shape first: a malformed spec is reported even when its dataset is
  // unknown (a spec naming a model artifact once that is resolved, below).
  const bool names_artifact = request.spec().has_model_artifact();
  if (!names_artifact) {
    if (absl::Status s = ValidateJobSpecShape(request.spec()); !s.ok()) return s;
  }
  JobInsertOptions insert;
  insert.max_active_jobs_per_tenant = admission_.max_jobs_per_tenant;
  if (!request.request_id().empty()) {
    if (absl::Status s = ValidateRequestId(request.request_id()); !s.ok()) return s;
    agt::v1::SubmitTrainingJobRequest content = request;
    content.clear_request_id();
    insert.request_id = request.request_id();
    insert.request_fingerprint = Sha256Hex(DeterministicBytes(content));
    // Fast path for a retry: the first job, whatever the limits say now.
    absl::StatusOr<std::optional<std::string>> first = store_->FindRequest(
        caller.tenant, RequestKind::kSubmitJob,
        RequestTag{insert.request_id, insert.request_fingerprint});
    if (!first.ok()) return first.status();
    if (first->has_value()) {
      absl::StatusOr<JobRecord> job = store_->GetJob(caller.tenant, **first);
      if (!job.ok()) return job.status();
      return JobToProto(*job);
    }
  }
  // A model artifact is resolved into the spec after the retry lookup (a
  // retry is answered even once the artifact is deleted): what is validated
  // and stored is then self-contained.
  absl::StatusOr<agt::v1::TrainingJobSpec> with_model = ResolveArtifact(caller, request.spec());
  if (!with_model.ok()) return with_model.status();
  const agt::v1::TrainingJobSpec& spec = *with_model;
  if (names_artifact) {
    if (absl::Status s = ValidateJobSpecShape(spec); !s.ok()) return s;
  }
  absl::StatusOr<DatasetRecord> dataset = store_->GetDataset(caller.tenant, spec.dataset_id());
  if (!dataset.ok()) return dataset.status();
  absl::StatusOr<ResolvedJob> resolved = ResolveJobSpec(spec, *dataset);
  if (!resolved.ok()) return resolved.status();
  if (absl::StatusOr<JobEstimate> admitted = AdmitJob(*resolved, *dataset, admission_.limits);
      !admitted.ok()) {
    return admitted.status();
  }
  if (admission_.checks_backend_at_submit) {
    const agt::BackendChoice choice = BackendChoiceOf(spec.backend(), admission_.default_backend);
    if (absl::StatusOr<std::string> usable = agt::ResolveBackend(choice); !usable.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("spec.backend: ", usable.status().message()));
    }
  }
  JobRecord record;
  record.tenant = caller.tenant;
  record.dataset_id = spec.dataset_id();
  record.name = spec.name();
  // Stored in the current form: a legacy bound_method becomes IBP plus its
  // interval_product (what the schema-4 migration does to older rows).
  agt::v1::TrainingJobSpec stored_spec = spec;  // with the artifact resolved
  UpgradeLegacyBoundMethod(&stored_spec);
  record.spec = stored_spec.SerializeAsString();
  absl::StatusOr<JobRecord> stored = store_->InsertJob(std::move(record), insert);
  if (!stored.ok()) return stored.status();
  Log(LogLevel::kInfo, "job_queued",
      {{"job", stored->id}, {"tenant", caller.tenant}, {"dataset", stored->dataset_id}});
  runner_->Wake();
  return JobToProto(*stored);
}

grpc::Status TrainingServiceImpl::GetJob(grpc::ServerContext* context,
                                         const agt::v1::GetJobRequest* request,
                                         agt::v1::GetJobResponse* response) {
  absl::StatusOr<Principal> caller = auth_->Check(*context, kGet);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kGet);
  if (absl::Status s = CheckId(request->job_id(), "job_id"); !s.ok()) {
    return ToGrpcStatus(s, kGet);
  }
  absl::StatusOr<JobRecord> record = store_->GetJob(caller->tenant, request->job_id());
  if (!record.ok()) return ToGrpcStatus(record.status(), kGet);
  absl::StatusOr<agt::v1::Job> job = JobToProto(*record);
  if (!job.ok()) return ToGrpcStatus(job.status(), kGet);
  *response->mutable_job() = *std::move(job);
  return grpc::Status::OK;
}

grpc::Status TrainingServiceImpl::ListJobs(grpc::ServerContext* context,
                                           const agt::v1::ListJobsRequest* request,
                                           agt::v1::ListJobsResponse* response) {
  absl::StatusOr<Principal> caller = auth_->Check(*context, kList);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kList);
  absl::StatusOr<int> page_size = ResolvePageSize(request->page_size(), "page_size");
  if (!page_size.ok()) return ToGrpcStatus(page_size.status(), kList);
  if (absl::Status s = CheckPageToken(request->page_token(), "page_token"); !s.ok()) {
    return ToGrpcStatus(s, kList);
  }
  std::optional<JobState> state;
  if (request->state() != agt::v1::JOB_STATE_UNSPECIFIED) {
    absl::StatusOr<JobState> parsed = JobStateFromProto(request->state(), "state");
    if (!parsed.ok()) return ToGrpcStatus(parsed.status(), kList);
    state = *parsed;
  }
  absl::StatusOr<Page<JobRecord>> page =
      store_->ListJobs(caller->tenant, state, *page_size, request->page_token());
  if (!page.ok()) return ToGrpcStatus(page.status(), kList);
  for (const JobRecord& record : page->items) {
    absl::StatusOr<agt::v1::Job> job = JobToProto(record);
    if (!job.ok()) return ToGrpcStatus(job.status(), kList);
    *response->add_jobs() = *std::move(job);
  }
  response->set_next_page_token(page->next_page_token);
  return grpc::Status::OK;
}

grpc::Status TrainingServiceImpl::CancelJob(grpc::ServerContext* context,
                                            const agt::v1::CancelJobRequest* request,
                                            agt::v1::CancelJobResponse* response) {
  absl::StatusOr<Principal> caller = auth_->Check(*context, kCancel);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kCancel);
  if (absl::Status s = CheckId(request->job_id(), "job_id"); !s.ok()) {
    return ToGrpcStatus(s, kCancel);
  }
  absl::StatusOr<JobRecord> record = runner_->Cancel(caller->tenant, request->job_id());
  if (!record.ok()) return ToGrpcStatus(record.status(), kCancel);
  absl::StatusOr<agt::v1::Job> job = JobToProto(*record);
  if (!job.ok()) return ToGrpcStatus(job.status(), kCancel);
  *response->mutable_job() = *std::move(job);
  return grpc::Status::OK;
}

grpc::Status TrainingServiceImpl::DeleteJob(grpc::ServerContext* context,
                                            const agt::v1::DeleteJobRequest* request,
                                            agt::v1::DeleteJobResponse* /*response*/) {
  absl::StatusOr<Principal> caller = auth_->Check(*context, kDelete);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kDelete);
  if (absl::Status s = CheckId(request->job_id(), "job_id"); !s.ok()) {
    return ToGrpcStatus(s, kDelete);
  }
  return ToGrpcStatus(store_->DeleteJob(caller->tenant, request->job_id()), kDelete);
}

grpc::Status TrainingServiceImpl::WatchJob(grpc::ServerContext* context,
                                           const agt::v1::WatchJobRequest* request,
                                           grpc::ServerWriter<agt::v1::JobEvent>* writer) {
  absl::StatusOr<Principal> caller = auth_->Check(*context, kWatch);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kWatch);
  if (absl::Status s = CheckId(request->job_id(), "job_id"); !s.ok()) {
    return ToGrpcStatus(s, kWatch);
  }
  return ToGrpcStatus(Watch(*caller, request->job_id(), context, writer), kWatch);
}

absl::Status TrainingServiceImpl::Watch(const Principal& caller, const std::string& job_id,
                                        grpc::ServerContext* context,
                                        grpc::ServerWriter<agt::v1::JobEvent>* writer) {
  if (shutting_down()) return absl::UnavailableError("the server is shutting down");
  absl::StatusOr<std::unique_ptr<TenantSlots::Slot>> slot = watches_.Acquire(caller.tenant);
  if (!slot.ok()) return slot.status();
  absl::StatusOr<std::shared_ptr<JobWatch>> watch = runner_->Watch(caller.tenant, job_id);
  if (!watch.ok()) return watch.status();
  JobRecord snapshot;
  while (true) {
    if (context->IsCancelled()) {
      (*watch)->Close();
      return absl::CancelledError("the client cancelled the watch");
    }
    if (shutting_down()) {
      (*watch)->Close();
      return absl::UnavailableError(
          "the server is shutting down; the job is kept and resumes after restart");
    }
    if ((*watch)->Next(&snapshot, kWatchPoll)) {
      if (!writer->Write(JobEventFromRecord(snapshot))) {
        (*watch)->Close();
        return absl::CancelledError("the client went away");
      }
      if (IsFinal(snapshot.state)) return absl::OkStatus();
    } else if ((*watch)->Finished()) {
      return absl::UnavailableError(
          "the job runner stopped (server shutting down); the job resumes after restart");
    }
  }
}

grpc::Status TrainingServiceImpl::GetTrainingHistory(
    grpc::ServerContext* context, const agt::v1::GetTrainingHistoryRequest* request,
    agt::v1::GetTrainingHistoryResponse* response) {
  absl::StatusOr<Principal> caller = auth_->Check(*context, kHistory);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kHistory);
  absl::StatusOr<agt::v1::GetTrainingHistoryResponse> history = History(*caller, *request);
  if (!history.ok()) return ToGrpcStatus(history.status(), kHistory);
  *response = *std::move(history);
  return grpc::Status::OK;
}

absl::StatusOr<agt::v1::GetTrainingHistoryResponse> TrainingServiceImpl::History(
    const Principal& caller, const agt::v1::GetTrainingHistoryRequest& request) {
  std::string job_id;
  switch (request.target_case()) {
    case agt::v1::GetTrainingHistoryRequest::kJobId:
      if (absl::Status s = CheckId(request.job_id(), "job_id"); !s.ok()) return s;
      job_id = request.job_id();
      break;
    case agt::v1::GetTrainingHistoryRequest::kModelId: {
      if (absl::Status s = CheckId(request.model_id(), "model_id"); !s.ok()) return s;
      absl::StatusOr<ModelRecord> model = store_->GetModel(caller.tenant, request.model_id());
      if (!model.ok()) return model.status();
      job_id = model->job_id;
      break;
    }
    default:
      return absl::InvalidArgumentError("job_id or model_id: one is required");
  }
  absl::StatusOr<JobRecord> job = store_->GetJob(caller.tenant, job_id);
  if (!job.ok()) return job.status();
  absl::StatusOr<agt::v1::Job> spec = JobToProto(*job);
  if (!spec.ok()) return spec.status();
  absl::StatusOr<WidthHistoryRecord> history = store_->GetWidthHistory(job_id, &caller.tenant);
  if (!history.ok()) return history.status();
  agt::v1::GetTrainingHistoryResponse out;
  out.set_job_id(job_id);
  *out.mutable_budgets() = spec->spec().budgets();
  out.set_total_iterations(job->progress.total_iterations);
  out.set_max_points(kMaxHistoryPoints);
  WidthHistoryToProto(*history, &out);
  return out;
}

}  // namespace agt::server
