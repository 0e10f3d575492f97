#include "server/service/unlearning_service.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agt/v1/training.pb.h"
#include "core/common/status_details.h"
#include "server/domain/job_spec.h"
#include "server/domain/ledgers.h"
#include "server/domain/model_convert.h"
#include "server/domain/unlearning.h"
#include "server/observability/log.h"
#include "server/observability/rpc_observer.h"
#include "server/service/call_budget.h"
#include "server/service/request_checks.h"
#include "server/service/request_fingerprint.h"
#include "server/service/status_mapping.h"
#include "server/store/blob.h"

namespace agt::server {
namespace {

constexpr char kRequest[] = "/agt.v1.UnlearningService/RequestDeletion";
constexpr char kStatus[] = "/agt.v1.UnlearningService/GetUnlearningStatus";
constexpr char kCheck[] = "/agt.v1.UnlearningService/CheckUnlearning";
constexpr char kLedger[] = "/agt.v1.UnlearningService/ListDeletions";
constexpr char kRetrain[] = "/agt.v1.UnlearningService/RetrainInPlace";

std::string DecisionMessage(const agt::DeletionDecision& d) {
  if (d.accepted) {
    return absl::StrCat("accepted ", d.new_rows.size(), " new row(s); ", d.after.total,
                        " rows deleted, at most ", d.after.max_per_batch,
                        " in one trained batch, within the largest removal budget ", d.max_budget,
                        ": certified for the model retrained in place without them");
  }
  return absl::StrCat("retraining required: batch ", d.after.fullest_batch, " would hold ",
                      d.after.max_per_batch, " deleted rows (at most ", d.before.max_per_batch,
                      " per batch before this request), more than the largest removal budget ",
                      d.max_budget, "; the ", d.new_rows.size(),
                      " new row(s) are recorded but not certified");
}

// The answer to a decision, before any retraining job is attached.
agt::v1::RequestDeletionResponse DecisionResponse(const agt::DeletionDecision& d) {
  agt::v1::RequestDeletionResponse r;
  r.set_accepted(d.accepted);
  const agt::DeletionCount& counted = d.accepted ? d.after : d.before;
  r.set_deletions(counted.total);
  r.set_max_deletions_per_batch(counted.max_per_batch);
  r.set_max_budget(d.max_budget);
  r.set_newly_accepted(d.accepted ? static_cast<int64_t>(d.new_rows.size()) : 0);
  r.set_duplicates(d.duplicate_count);
  r.set_retraining_required(d.retraining_required());
  r.set_message(DecisionMessage(d));
  return r;
}

// The request's idempotency key: the request without its id, serialized
// deterministically (the model, the rows in order, retrain_if_needed).
RequestTag Tag(const agt::v1::RequestDeletionRequest& request) {
  RequestTag tag;
  if (request.request_id().empty()) return tag;
  tag.id = request.request_id();
  agt::v1::RequestDeletionRequest content = request;
  content.clear_request_id();
  tag.fingerprint = Sha256Hex(DeterministicBytes(content));
  return tag;
}

std::string JoinBudgets(const std::vector<int>& budgets) {
  return absl::StrCat("{", absl::StrJoin(budgets, ", "), "}");
}

}  // namespace

absl::StatusOr<std::shared_ptr<const ModelRecord>> UnlearningServiceImpl::LoadModel(
    const Principal& caller, const std::string& model_id) {
  if (absl::Status s = CheckId(model_id, "model_id"); !s.ok()) return s;
  return cache_->Get(store_, caller.tenant, model_id);
}

absl::StatusOr<UnlearningServiceImpl::Gate> UnlearningServiceImpl::LoadGate(
    const Principal& caller, const std::string& model_id) {
  Gate gate;
  absl::StatusOr<std::shared_ptr<const ModelRecord>> model = LoadModel(caller, model_id);
  if (!model.ok()) return model.status();
  gate.model = *std::move(model);
  absl::StatusOr<std::vector<int>> budgets = RemovalBudgets(*gate.model);
  if (!budgets.ok()) return budgets.status();
  gate.budgets = *std::move(budgets);
  return gate;
}

grpc::Status UnlearningServiceImpl::RequestDeletion(grpc::ServerContext* context,
                                                    const agt::v1::RequestDeletionRequest* request,
                                                    agt::v1::RequestDeletionResponse* response) {
  absl::StatusOr<Principal> caller = auth_->Check(*context, kRequest);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kRequest);
  bool replayed = false;
  absl::StatusOr<agt::v1::RequestDeletionResponse> done = Delete(*caller, *request, &replayed);
  // For the audit log and metrics (observability/rpc_observer.h).
  if (replayed) context->AddTrailingMetadata(kReplayedMetadataKey, "1");
  if (!done.ok()) return ToGrpcStatus(done.status(), kRequest);
  *response = *std::move(done);
  return grpc::Status::OK;
}

grpc::Status UnlearningServiceImpl::GetUnlearningStatus(
    grpc::ServerContext* context, const agt::v1::GetUnlearningStatusRequest* request,
    agt::v1::GetUnlearningStatusResponse* response) {
  absl::StatusOr<Principal> caller = auth_->Check(*context, kStatus);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kStatus);
  absl::StatusOr<agt::v1::GetUnlearningStatusResponse> status =
      LoadStatus(*caller, request->model_id());
  if (!status.ok()) return ToGrpcStatus(status.status(), kStatus);
  *response = *std::move(status);
  return grpc::Status::OK;
}

grpc::Status UnlearningServiceImpl::CheckUnlearning(grpc::ServerContext* context,
                                                    const agt::v1::CheckUnlearningRequest* request,
                                                    agt::v1::CheckUnlearningResponse* response) {
  const CallBudget budget(*context, default_deadline_);
  absl::StatusOr<Principal> caller = auth_->Check(*context, kCheck);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kCheck);
  CertifyOptions options;
  options.keep_going = budget.AsKeepGoing();
  options.memory = memory_;
  absl::StatusOr<agt::v1::CheckUnlearningResponse> checked = Check(*caller, *request, options);
  if (!checked.ok()) return ToGrpcStatus(checked.status(), kCheck);
  *response = *std::move(checked);
  return grpc::Status::OK;
}

grpc::Status UnlearningServiceImpl::ListDeletions(grpc::ServerContext* context,
                                                  const agt::v1::ListDeletionsRequest* request,
                                                  agt::v1::ListDeletionsResponse* response) {
  absl::StatusOr<Principal> caller = auth_->Check(*context, kLedger);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kLedger);
  absl::StatusOr<agt::v1::ListDeletionsResponse> page = Ledger(*caller, *request);
  if (!page.ok()) return ToGrpcStatus(page.status(), kLedger);
  *response = *std::move(page);
  return grpc::Status::OK;
}

grpc::Status UnlearningServiceImpl::RetrainInPlace(grpc::ServerContext* context,
                                                   const agt::v1::RetrainInPlaceRequest* request,
                                                   agt::v1::RetrainInPlaceResponse* response) {
  absl::StatusOr<Principal> caller = auth_->Check(*context, kRetrain);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kRetrain);
  absl::StatusOr<Gate> gate = LoadGate(*caller, request->model_id());
  if (!gate.ok()) return ToGrpcStatus(gate.status(), kRetrain);
  absl::StatusOr<agt::v1::RetrainInPlaceResponse> job = EnsureRetraining(*caller, *gate->model);
  if (!job.ok()) return ToGrpcStatus(job.status(), kRetrain);
  *response = *std::move(job);
  return grpc::Status::OK;
}

absl::StatusOr<agt::v1::ListDeletionsResponse> UnlearningServiceImpl::Ledger(
    const Principal& caller, const agt::v1::ListDeletionsRequest& request) {
  if (absl::Status s = CheckId(request.model_id(), "model_id"); !s.ok()) return s;
  absl::StatusOr<int> page_size = ResolvePageSize(request.page_size(), "page_size");
  if (!page_size.ok()) return page_size.status();
  if (absl::Status s = CheckPageToken(request.page_token(), "page_token"); !s.ok()) return s;
  // As every unlearning call: only models trained under removal have a ledger.
  absl::StatusOr<Gate> gate = LoadGate(caller, request.model_id());
  if (!gate.ok()) return gate.status();
  absl::StatusOr<Page<DeletionRecord>> page =
      store_->ListDeletionPage(caller.tenant, request.model_id(), *page_size, request.page_token());
  if (!page.ok()) return page.status();
  // The batch of each row; with the dataset gone its tail is unknown, and a
  // row is named by the batch its index falls in.
  std::optional<agt::BatchPlan> batches;
  if (absl::StatusOr<DatasetRecord> dataset =
          store_->GetDataset(caller.tenant, gate->model->dataset_id);
      dataset.ok()) {
    absl::StatusOr<agt::BatchPlan> plan = TrainingBatches(*gate->model, dataset->num_rows);
    if (!plan.ok()) return plan.status();
    batches = *std::move(plan);
  } else if (!absl::IsNotFound(dataset.status())) {
    return dataset.status();
  }
  agt::v1::TrainingJobSpec spec;
  spec.ParseFromString(gate->model->spec);  // TrainingBatches or RemovalBudgets parsed it
  agt::v1::ListDeletionsResponse response;
  for (const DeletionRecord& r : page->items) {
    agt::v1::Deletion* d = response.add_deletions();
    d->set_row_id(r.row_id);
    d->set_requested_by(r.requested_by);
    *d->mutable_requested() = MillisToTimestamp(r.requested_ms);
    d->set_accepted(r.accepted);
    d->set_batch(batches ? batches->BatchOf(r.row_id)
                         : r.row_id / std::max(1, spec.batch_size()));
  }
  response.set_next_page_token(page->next_page_token);
  return response;
}

absl::StatusOr<agt::v1::RequestDeletionResponse> UnlearningServiceImpl::Delete(
    const Principal& caller, const agt::v1::RequestDeletionRequest& request, bool* replayed) {
  if (absl::Status s = CheckId(request.model_id(), "model_id"); !s.ok()) return s;
  if (request.row_ids().empty()) {
    return absl::InvalidArgumentError("row_ids: required (at least one training row id)");
  }
  if (request.row_ids_size() > kMaxDeletionRowIds) {
    return absl::InvalidArgumentError(absl::StrCat("row_ids: ", request.row_ids_size(),
                                                   " ids exceed the limit of ", kMaxDeletionRowIds,
                                                   " per request"));
  }
  if (absl::Status s = ValidateRequestId(request.request_id()); !s.ok()) return s;
  const RequestTag tag = Tag(request);
  absl::StatusOr<Gate> gate = LoadGate(caller, request.model_id());
  if (!gate.ok()) return gate.status();
  const ModelRecord& model = *gate->model;

  // Fast path for a retry: the first answer, whatever the ledger says now.
  absl::StatusOr<std::optional<std::string>> first =
      store_->FindRequest(caller.tenant, RequestKind::kDeletion, tag);
  if (!first.ok()) return first.status();
  std::string answer;
  if (first->has_value()) {
    answer = **first;
    if (replayed != nullptr) *replayed = true;
  } else {
    absl::StatusOr<DatasetRecord> dataset = store_->GetDataset(caller.tenant, model.dataset_id);
    if (absl::IsNotFound(dataset.status())) {
      return WithMetadata(
          WithMetadata(WithReason(absl::FailedPreconditionError(absl::StrCat(
                                      "model ", model.id, ": its training dataset ",
                                      model.dataset_id, " was deleted, so row ids cannot be checked")),
                                  kReasonTrainingDataDeleted),
                       "model_id", model.id),
          "dataset_id", model.dataset_id);
    }
    if (!dataset.ok()) return dataset.status();
    absl::StatusOr<agt::BatchPlan> batches = TrainingBatches(model, dataset->num_rows);
    if (!batches.ok()) return batches.status();
    const std::vector<int64_t> rows(request.row_ids().begin(), request.row_ids().end());
    absl::StatusOr<DeletionAppend> appended = AppendDeletions(
        *store_, caller.tenant, model.id, gate->budgets, *batches, rows, ClientName(caller), tag,
        [](const agt::DeletionDecision& d) { return DecisionResponse(d).SerializeAsString(); });
    if (!appended.ok()) return appended.status();
    if (replayed != nullptr && !appended->decision.has_value()) *replayed = true;
    answer = std::move(appended->answer);
  }
  agt::v1::RequestDeletionResponse response;
  if (!response.ParseFromString(answer)) {
    return absl::DataLossError("the stored answer to this request_id does not parse");
  }
  if (response.retraining_required() && request.retrain_if_needed()) {
    // A retry gets the same job: the live retraining is returned, not a new one.
    absl::StatusOr<agt::v1::RetrainInPlaceResponse> job = EnsureRetraining(caller, model);
    if (!job.ok()) {
      // The ledger already holds the request (as not certified); say so.
      return WithMessage(job.status(),
                         absl::StrCat("the rows are recorded as retraining required, but no "
                                       "retraining was enqueued: ",
                                       job.status().message()));
    }
    response.set_retraining_job_id(job->job_id());
    absl::StrAppend(response.mutable_message(), "; ", job->message());
  }
  return response;
}

absl::StatusOr<agt::v1::RetrainInPlaceResponse> UnlearningServiceImpl::EnsureRetraining(
    const Principal& caller, const ModelRecord& model) {
  std::lock_guard<std::mutex> lock(retrain_mu_);
  absl::StatusOr<std::vector<DeletionRecord>> ledger =
      store_->ListDeletions(caller.tenant, model.id);
  if (!ledger.ok()) return ledger.status();
  std::vector<int64_t> rows;
  for (const DeletionRecord& r : *ledger) rows.push_back(r.row_id);

  agt::v1::RetrainInPlaceResponse response;
  absl::StatusOr<std::optional<RetrainingRecord>> existing =
      store_->GetRetraining(caller.tenant, model.id);
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) {
    absl::StatusOr<JobRecord> job = store_->GetJob(caller.tenant, (*existing)->job_id);
    if (!job.ok()) return job.status();
    agt::v1::TrainingJobSpec spec;
    spec.ParseFromString(job->spec);
    const std::vector<int64_t> removed(spec.removed_rows().begin(), spec.removed_rows().end());
    const bool covers_ledger = std::all_of(rows.begin(), rows.end(), [&](int64_t r) {
      return std::binary_search(removed.begin(), removed.end(), r);
    });
    const bool live = job->state == JobState::kQueued || job->state == JobState::kRunning;
    if (live || (job->state == JobState::kSucceeded && covers_ledger)) {
      response.set_job_id(job->id);
      response.set_enqueued(false);
      response.set_removed_rows(spec.removed_rows_size());
      for (const agt::v1::Budget& b : spec.budgets()) response.add_budgets(b.n());
      const std::string_view state = JobStateName(job->state);
      response.set_message(absl::StrCat(
          "retraining job ", job->id, " is ", absl::string_view(state.data(), state.size()),
          ", without ",
          spec.removed_rows_size(), " rows removed in place",
          covers_ledger ? "" : "; rows requested after it was enqueued are not in it: ask again "
                               "when it is done, or delete them from its model"));
      return response;
    }
  }

  absl::StatusOr<DatasetRecord> dataset = store_->GetDataset(caller.tenant, model.dataset_id);
  if (absl::IsNotFound(dataset.status())) {
    return WithMetadata(
        WithMetadata(WithReason(absl::FailedPreconditionError(absl::StrCat(
                                    "cannot retrain model ", model.id,
                                    " in place: its training dataset ", model.dataset_id,
                                    " was deleted")),
                                kReasonTrainingDataDeleted),
                     "model_id", model.id),
        "dataset_id", model.dataset_id);
  }
  if (!dataset.ok()) return dataset.status();
  absl::StatusOr<InPlaceRetraining> plan = PlanInPlaceRetraining(model, *dataset, rows);
  if (!plan.ok()) return plan.status();
  // Admitted like a submitted job: refused up front (RESOURCE_EXHAUSTED
  // naming the estimate and the limit) rather than failed at claim.
  absl::StatusOr<ResolvedJob> resolved = ResolveJobSpec(plan->spec, *dataset);
  if (!resolved.ok()) return resolved.status();
  if (absl::StatusOr<JobEstimate> admitted = AdmitJob(*resolved, *dataset, admission_.limits);
      !admitted.ok()) {
    return WithMessage(admitted.status(), absl::StrCat("retraining model ", model.id, " in place: ",
                                                       admitted.status().message()));
  }
  JobInsertOptions insert;
  insert.max_active_jobs_per_tenant = admission_.max_jobs_per_tenant;

  JobRecord job;
  job.tenant = caller.tenant;
  job.dataset_id = dataset->id;
  job.name = plan->spec.name();
  job.spec = plan->spec.SerializeAsString();
  absl::StatusOr<JobRecord> inserted = store_->InsertJob(std::move(job), insert);
  if (!inserted.ok()) return inserted.status();
  Log(LogLevel::kInfo, "job_queued",
      {{"job", inserted->id},
       {"tenant", caller.tenant},
       {"dataset", dataset->id},
       {"why", "retraining without deleted rows"},
       {"model", model.id}});
  RetrainingRecord record;
  record.model_id = model.id;
  record.job_id = inserted->id;
  record.dataset_id = dataset->id;  // the same dataset: the rows go in place
  if (absl::Status s = store_->RecordRetraining(caller.tenant, record); !s.ok()) return s;
  runner_->Wake();

  response.set_job_id(inserted->id);
  response.set_enqueued(true);
  response.set_removed_rows(plan->spec.removed_rows_size());
  response.mutable_budgets()->Add(plan->budgets.begin(), plan->budgets.end());
  response.mutable_dropped_budgets()->Add(plan->dropped_budgets.begin(),
                                          plan->dropped_budgets.end());
  std::string message = absl::StrCat(
      "enqueued retraining job ", inserted->id, ": model ", model.id, "'s spec on dataset ",
      dataset->id, " without ", plan->spec.removed_rows_size(),
      " rows removed in place (every other row stays in its batch), removal budgets ",
      JoinBudgets(plan->budgets));
  if (!plan->dropped_budgets.empty()) {
    absl::StrAppend(&message, "; budgets ", JoinBudgets(plan->dropped_budgets),
                    " dropped: the smallest batch left (batch ", plan->smallest_batch_index,
                    ") has ", plan->smallest_batch, " rows, and a removal budget must be below it");
  }
  response.set_message(std::move(message));
  return response;
}

absl::StatusOr<agt::v1::GetUnlearningStatusResponse> UnlearningServiceImpl::LoadStatus(
    const Principal& caller, const std::string& model_id) {
  absl::StatusOr<Gate> gate = LoadGate(caller, model_id);
  if (!gate.ok()) return gate.status();
  const ModelRecord& model = *gate->model;
  absl::StatusOr<std::vector<DeletionRecord>> ledger =
      store_->ListDeletions(caller.tenant, model_id);
  if (!ledger.ok()) return ledger.status();
  const bool refused = std::any_of(ledger->begin(), ledger->end(),
                                   [](const DeletionRecord& r) { return !r.accepted; });
  absl::StatusOr<agt::DeletionCount> d = CountAcceptedDeletions(*store_, caller.tenant, model);
  if (!d.ok()) return d.status();
  agt::v1::GetUnlearningStatusResponse response;
  response.set_deletions(d->total);
  response.set_max_deletions_per_batch(d->max_per_batch);
  response.set_max_budget(gate->budgets.back());
  response.set_state(refused ? agt::v1::UNLEARNING_STATE_RETRAINING_REQUIRED
                             : agt::v1::UNLEARNING_STATE_ACTIVE);

  absl::StatusOr<std::optional<RetrainingRecord>> retraining =
      store_->GetRetraining(caller.tenant, model_id);
  if (!retraining.ok()) return retraining.status();
  if (retraining->has_value()) {
    response.set_retraining_job_id((*retraining)->job_id);
    absl::StatusOr<JobRecord> job = store_->GetJob(caller.tenant, (*retraining)->job_id);
    if (!job.ok()) return job.status();
    if (job->state == JobState::kSucceeded) {
      response.set_state(agt::v1::UNLEARNING_STATE_SUPERSEDED);
      response.set_successor_model_id(job->model_id);
    }
  }

  absl::StatusOr<agt::Dataset> data = store_->LoadDatasetData(caller.tenant, model.dataset_id);
  if (absl::IsNotFound(data.status())) return response;  // no audit set
  if (!data.ok()) return data.status();
  absl::StatusOr<agt::v1::CheckUnlearningResponse> audit =
      agt::server::CheckUnlearning(model, AuditSample(*data, kMaxAuditRows), *d);
  if (!audit.ok()) return audit.status();
  int64_t certified = 0;
  for (const agt::v1::UnlearningCheck& p : audit->points()) certified += p.certified_unchanged();
  response.set_has_audit(true);
  response.set_audit_rows(audit->points_size());
  response.set_audit_certified_fraction(
      audit->points_size() == 0 ? 0.0 : static_cast<double>(certified) / audit->points_size());
  return response;
}

absl::StatusOr<agt::v1::CheckUnlearningResponse> UnlearningServiceImpl::Check(
    const Principal& caller, const agt::v1::CheckUnlearningRequest& request,
    const CertifyOptions& options) {
  absl::StatusOr<Gate> gate = LoadGate(caller, request.model_id());
  if (!gate.ok()) return gate.status();
  absl::StatusOr<agt::DeletionCount> d =
      CountAcceptedDeletions(*store_, caller.tenant, *gate->model);
  if (!d.ok()) return d.status();
  return agt::server::CheckUnlearning(*gate->model, request.inputs(), *d, options);
}

}  // namespace agt::server
