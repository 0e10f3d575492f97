#include "server/service/unlearning_service.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agt/v1/training.pb.h"
#include "server/domain/job_spec.h"
#include "server/domain/model_convert.h"
#include "server/domain/unlearning.h"
#include "server/service/request_checks.h"
#include "server/service/status_mapping.h"

namespace agt::server {
namespace {

constexpr char kRequest[] = "/agt.v1.UnlearningService/RequestDeletion";
constexpr char kStatus[] = "/agt.v1.UnlearningService/GetUnlearningStatus";
constexpr char kCheck[] = "/agt.v1.UnlearningService/CheckUnlearning";
constexpr char kLedger[] = "/agt.v1.UnlearningService/ListDeletions";

std::string DecisionMessage(const agt::DeletionDecision& d, const std::string& job_id) {
  if (d.accepted) {
    return absl::StrCat("accepted ", d.new_rows.size(), " new row(s); ", d.d_after, " of at most ",
                        d.max_budget, " deletions are certified");
  }
  std::string text = absl::StrCat("retraining required: ", d.d_before, " + ", d.new_rows.size(),
                                  " new row(s) would exceed the largest removal budget ",
                                  d.max_budget, "; the rows are recorded but not certified");
  if (!job_id.empty()) absl::StrAppend(&text, "; retraining job ", job_id);
  return text;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const ModelRecord>> UnlearningServiceImpl::LoadModel(
    const Principal& caller, const std::string& model_id) {
  if (absl::Status s = CheckId(model_id, "model_id"); !s.ok()) return s;
  return cache_->Get(store_, caller.tenant, model_id);
}

grpc::Status UnlearningServiceImpl::RequestDeletion(grpc::ServerContext* context,
                                                    const agt::v1::RequestDeletionRequest* request,
                                                    agt::v1::RequestDeletionResponse* response) {
  absl::StatusOr<Principal> caller = auth_->Check(*context, kRequest);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kRequest);
  absl::StatusOr<agt::v1::RequestDeletionResponse> done = Delete(*caller, *request);
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
  absl::StatusOr<Principal> caller = auth_->Check(*context, kCheck);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kCheck);
  absl::StatusOr<agt::v1::CheckUnlearningResponse> checked = Check(*caller, *request);
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

absl::StatusOr<agt::v1::ListDeletionsResponse> UnlearningServiceImpl::Ledger(
    const Principal& caller, const agt::v1::ListDeletionsRequest& request) {
  if (absl::Status s = CheckId(request.model_id(), "model_id"); !s.ok()) return s;
  absl::StatusOr<int> page_size = ResolvePageSize(request.page_size(), "page_size");
  if (!page_size.ok()) return page_size.status();
  if (absl::Status s = CheckPageToken(request.page_token(), "page_token"); !s.ok()) return s;
  absl::StatusOr<Page<DeletionRecord>> page =
      store_->ListDeletionPage(caller.tenant, request.model_id(), *page_size, request.page_token());
  if (!page.ok()) return page.status();
  agt::v1::ListDeletionsResponse response;
  for (const DeletionRecord& r : page->items) {
    agt::v1::Deletion* d = response.add_deletions();
    d->set_row_id(r.row_id);
    d->set_requested_by(r.requested_by);
    *d->mutable_requested() = MillisToTimestamp(r.requested_ms);
    d->set_accepted(r.accepted);
  }
  response.set_next_page_token(page->next_page_token);
  return response;
}

absl::StatusOr<agt::v1::RequestDeletionResponse> UnlearningServiceImpl::Delete(
    const Principal& caller, const agt::v1::RequestDeletionRequest& request) {
  if (absl::Status s = CheckId(request.model_id(), "model_id"); !s.ok()) return s;
  if (request.row_ids().empty()) {
    return absl::InvalidArgumentError("row_ids: required (at least one training row id)");
  }
  if (request.row_ids_size() > kMaxDeletionRowIds) {
    return absl::InvalidArgumentError(absl::StrCat("row_ids: ", request.row_ids_size(),
                                                   " ids exceed the limit of ", kMaxDeletionRowIds,
                                                   " per request"));
  }
  absl::StatusOr<std::shared_ptr<const ModelRecord>> model = LoadModel(caller, request.model_id());
  if (!model.ok()) return model.status();
  absl::StatusOr<std::vector<int>> budgets = RemovalBudgets(**model);
  if (!budgets.ok()) return budgets.status();
  absl::StatusOr<DatasetRecord> dataset = store_->GetDataset(caller.tenant, (*model)->dataset_id);
  if (absl::IsNotFound(dataset.status())) {
    return absl::FailedPreconditionError(
        absl::StrCat("model ", (*model)->id, ": its training dataset ", (*model)->dataset_id,
                     " was deleted, so row ids cannot be checked"));
  }
  if (!dataset.ok()) return dataset.status();
  const std::vector<int64_t> rows(request.row_ids().begin(), request.row_ids().end());
  absl::StatusOr<agt::DeletionDecision> decision = store_->AppendDeletions(
      caller.tenant, (*model)->id, *budgets, dataset->num_rows, rows, ClientName(caller));
  if (!decision.ok()) return decision.status();

  std::string job_id;
  if (decision->retraining_required() && request.retrain_if_needed()) {
    absl::StatusOr<std::string> job = EnsureRetraining(caller, **model);
    if (!job.ok()) {
      // The ledger already holds the request (as not certified); say so.
      return absl::Status(job.status().code(),
                          absl::StrCat("the rows are recorded as retraining required, but no "
                                       "retraining was enqueued: ",
                                       job.status().message()));
    }
    job_id = *std::move(job);
  }
  agt::v1::RequestDeletionResponse response;
  response.set_accepted(decision->accepted);
  response.set_deletions(decision->accepted ? decision->d_after : decision->d_before);
  response.set_max_budget(decision->max_budget);
  response.set_newly_accepted(decision->accepted ? static_cast<int64_t>(decision->new_rows.size())
                                                 : 0);
  response.set_duplicates(decision->duplicate_count);
  response.set_retraining_required(decision->retraining_required());
  response.set_retraining_job_id(job_id);
  response.set_message(DecisionMessage(*decision, job_id));
  return response;
}

absl::StatusOr<std::string> UnlearningServiceImpl::EnsureRetraining(const Principal& caller,
                                                                    const ModelRecord& model) {
  std::lock_guard<std::mutex> lock(retrain_mu_);
  absl::StatusOr<std::optional<RetrainingRecord>> existing =
      store_->GetRetraining(caller.tenant, model.id);
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) {
    absl::StatusOr<JobRecord> job = store_->GetJob(caller.tenant, (*existing)->job_id);
    if (!job.ok()) return job.status();
    if (job->state != JobState::kFailed && job->state != JobState::kCancelled) return job->id;
  }
  absl::StatusOr<std::vector<DeletionRecord>> ledger =
      store_->ListDeletions(caller.tenant, model.id);
  if (!ledger.ok()) return ledger.status();
  std::vector<int64_t> rows;
  for (const DeletionRecord& r : *ledger) rows.push_back(r.row_id);
  absl::StatusOr<DatasetRecord> original = store_->GetDataset(caller.tenant, model.dataset_id);
  if (!original.ok()) return original.status();
  absl::StatusOr<agt::Dataset> data = store_->LoadDatasetData(caller.tenant, model.dataset_id);
  if (!data.ok()) return data.status();

  const agt::Dataset rest = WithoutRows(*data, rows);

  // The spec is checked against the derived dataset before anything is
  // stored, so a retraining that cannot run leaves no dataset behind.
  agt::v1::TrainingJobSpec spec;
  if (!spec.ParseFromString(model.spec)) {
    return absl::DataLossError(absl::StrCat("model ", model.id, ": stored spec does not parse"));
  }
  spec.set_name(absl::StrCat(spec.name(), " (retrained without ", rows.size(), " rows)")
                    .substr(0, kMaxJobNameLength));
  DatasetRecord candidate = *original;
  candidate.num_rows = rest.size();
  spec.set_dataset_id(candidate.id);
  if (absl::StatusOr<ResolvedJob> resolved = ResolveJobSpec(spec, candidate); !resolved.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot retrain model ", model.id,
                     " without the deleted rows: ", resolved.status().message()));
  }
  DatasetRecord derived;
  derived.tenant = caller.tenant;
  derived.name = absl::StrCat(original->name, " without ", rows.size(), " deleted rows");
  absl::StatusOr<DatasetRecord> stored = store_->InsertDataset(derived, rest);
  if (!stored.ok()) return stored.status();
  spec.set_dataset_id(stored->id);

  JobRecord job;
  job.tenant = caller.tenant;
  job.dataset_id = stored->id;
  job.name = spec.name();
  job.spec = spec.SerializeAsString();
  absl::StatusOr<JobRecord> inserted = store_->InsertJob(std::move(job));
  if (!inserted.ok()) return inserted.status();
  RetrainingRecord record;
  record.model_id = model.id;
  record.job_id = inserted->id;
  record.dataset_id = stored->id;
  if (absl::Status s = store_->RecordRetraining(caller.tenant, record); !s.ok()) return s;
  runner_->Wake();
  return inserted->id;
}

absl::StatusOr<agt::v1::GetUnlearningStatusResponse> UnlearningServiceImpl::LoadStatus(
    const Principal& caller, const std::string& model_id) {
  absl::StatusOr<std::shared_ptr<const ModelRecord>> model = LoadModel(caller, model_id);
  if (!model.ok()) return model.status();
  absl::StatusOr<std::vector<int>> budgets = RemovalBudgets(**model);
  if (!budgets.ok()) return budgets.status();
  absl::StatusOr<std::vector<DeletionRecord>> ledger =
      store_->ListDeletions(caller.tenant, model_id);
  if (!ledger.ok()) return ledger.status();
  int64_t d = 0;
  bool refused = false;
  for (const DeletionRecord& r : *ledger) {
    if (r.accepted) {
      ++d;
    } else {
      refused = true;
    }
  }
  agt::v1::GetUnlearningStatusResponse response;
  response.set_deletions(d);
  response.set_max_budget(budgets->back());
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

  absl::StatusOr<agt::Dataset> data = store_->LoadDatasetData(caller.tenant, (*model)->dataset_id);
  if (absl::IsNotFound(data.status())) return response;  // no audit set
  if (!data.ok()) return data.status();
  absl::StatusOr<agt::v1::CheckUnlearningResponse> audit =
      agt::server::CheckUnlearning(**model, AuditSample(*data, kMaxAuditRows), d);
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
    const Principal& caller, const agt::v1::CheckUnlearningRequest& request) {
  absl::StatusOr<std::shared_ptr<const ModelRecord>> model = LoadModel(caller, request.model_id());
  if (!model.ok()) return model.status();
  if (absl::StatusOr<std::vector<int>> b = RemovalBudgets(**model); !b.ok()) return b.status();
  absl::StatusOr<int64_t> d = store_->CountAcceptedDeletions(caller.tenant, request.model_id());
  if (!d.ok()) return d.status();
  return agt::server::CheckUnlearning(**model, request.inputs(), *d);
}

}  // namespace agt::server
