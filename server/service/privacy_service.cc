#include "server/service/privacy_service.h"

#include <chrono>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/common/status_details.h"
#include "core/privacy/budget.h"
#include "server/auth/permissions.h"
#include "server/domain/ledgers.h"
#include "server/domain/private_prediction.h"
#include "server/observability/rpc_observer.h"
#include "server/service/call_budget.h"
#include "server/service/request_checks.h"
#include "server/service/request_fingerprint.h"
#include "server/service/status_mapping.h"
#include "server/store/blob.h"

namespace agt::server {
namespace {

constexpr char kPredict[] = "/agt.v1.PrivacyService/PrivatePredict";
constexpr char kBudget[] = "/agt.v1.PrivacyService/GetPrivacyBudget";

// The request's idempotency key. The fingerprint covers the request without
// its id (deterministic serialization), the client and whether n* is shown:
// the stored answer is that client's view, never handed to another.
RequestTag Tag(const agt::v1::PrivatePredictRequest& request, const std::string& client,
               bool show_n_star) {
  RequestTag tag;
  if (request.request_id().empty()) return tag;
  tag.id = request.request_id();
  agt::v1::PrivatePredictRequest content = request;
  content.clear_request_id();
  std::string bytes = DeterministicBytes(content);
  absl::StrAppend(&bytes, std::string(1, '\0'), "client=", client, std::string(1, '\0'),
                  "show_n_star=", show_n_star ? 1 : 0);
  tag.fingerprint = Sha256Hex(bytes);
  return tag;
}

absl::StatusOr<agt::v1::PrivatePredictResponse> ParseStored(const std::string& bytes) {
  agt::v1::PrivatePredictResponse response;
  if (!response.ParseFromString(bytes)) {
    return absl::DataLossError("the stored answer to this request_id does not parse");
  }
  return response;
}

// ResourceExhausted unless `quanta` more fit the budget `record` is
// against `total_quanta` (the same rule as SpendPrivacyBudget, domain/ledgers.h).
absl::Status WouldFitTotal(const PrivacySpendRecord& record, int64_t quanta,
                           int64_t total_quanta) {
  absl::StatusOr<agt::PrivacyBudget> budget =
      agt::PrivacyBudget::Create(total_quanta, record.spent_quanta);
  if (!budget.ok()) return budget.status();
  if (budget->Spend(quanta).ok()) return absl::OkStatus();
  if (record.spent_quanta > total_quanta) {  // the total was lowered below it
    return absl::ResourceExhaustedError(absl::StrCat(
        "privacy budget of the tenant for dataset ", record.dataset_id, " is used up: spent ",
        agt::EpsilonOfQuantaUp(record.spent_quanta), " of a total of ",
        agt::EpsilonOfQuantaDown(total_quanta), "; client \"", record.client, "\" asked for ",
        agt::EpsilonOfQuantaUp(quanta), "; nothing was spent"));
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "privacy budget of the tenant for dataset ", record.dataset_id,
      " (every model trained on it, every token) exceeded: client \"", record.client,
      "\" asked for epsilon ", agt::EpsilonOfQuantaUp(quanta), " (", quanta,
      " quanta of 2^-40) but only ", agt::EpsilonOfQuantaDown(budget->remaining_quanta()), " (",
      budget->remaining_quanta(), " quanta) of ", agt::EpsilonOfQuantaDown(total_quanta),
      " remains (spent ", agt::EpsilonOfQuantaUp(record.spent_quanta),
      "); nothing was spent"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PrivacyServiceImpl>> PrivacyServiceImpl::Create(
    Store* store, ModelCache* cache, const CallAuth* auth, double total_epsilon,
    std::chrono::milliseconds default_deadline, WorkingMemory* memory) {
  absl::StatusOr<int64_t> total_quanta = agt::TotalQuanta(total_epsilon);
  if (!total_quanta.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--privacy-budget: ", total_quanta.status().message()));
  }
  absl::StatusOr<std::unique_ptr<agt::SecureNoise>> noise = agt::SecureNoise::Create();
  if (!noise.ok()) return noise.status();
  return std::unique_ptr<PrivacyServiceImpl>(
      new PrivacyServiceImpl(store, cache, auth, *total_quanta, default_deadline, memory,
                             *std::move(noise)));
}

grpc::Status PrivacyServiceImpl::PrivatePredict(grpc::ServerContext* context,
                                                const agt::v1::PrivatePredictRequest* request,
                                                agt::v1::PrivatePredictResponse* response) {
  absl::StatusOr<Principal> caller = auth_->Check(*context, kPredict);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kPredict);
  absl::StatusOr<agt::v1::PrivatePredictResponse> done = Predict(context, *caller, *request);
  if (!done.ok()) return ToGrpcStatus(done.status(), kPredict);
  *response = *std::move(done);
  return grpc::Status::OK;
}

grpc::Status PrivacyServiceImpl::GetPrivacyBudget(grpc::ServerContext* context,
                                                  const agt::v1::GetPrivacyBudgetRequest* request,
                                                  agt::v1::GetPrivacyBudgetResponse* response) {
  absl::StatusOr<Principal> caller = auth_->Check(*context, kBudget);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kBudget);
  absl::StatusOr<agt::v1::PrivacyBudget> budget = Budget(*caller, request->model_id());
  if (!budget.ok()) return ToGrpcStatus(budget.status(), kBudget);
  *response->mutable_budget() = *std::move(budget);
  return grpc::Status::OK;
}

agt::v1::PrivacyBudget PrivacyServiceImpl::ToBudget(const PrivacySpendRecord& record) const {
  agt::v1::PrivacyBudget budget;
  const int64_t remaining =
      record.spent_quanta >= total_quanta_ ? 0 : total_quanta_ - record.spent_quanta;
  budget.set_total_epsilon(agt::EpsilonOfQuantaDown(total_quanta_));
  budget.set_spent_epsilon(agt::EpsilonOfQuantaUp(record.spent_quanta));
  budget.set_remaining_epsilon(agt::EpsilonOfQuantaDown(remaining));
  budget.set_releases(record.releases);
  budget.set_client(record.client);
  budget.set_dataset_id(record.dataset_id);
  budget.set_total_quanta(total_quanta_);
  budget.set_spent_quanta(record.spent_quanta);
  budget.set_remaining_quanta(remaining);
  budget.set_epsilon_quantum(agt::kEpsilonQuantum);
  budget.set_client_spent_epsilon(agt::EpsilonOfQuantaUp(record.client_spent_quanta));
  budget.set_client_spent_quanta(record.client_spent_quanta);
  budget.set_client_releases(record.client_releases);
  return budget;
}

absl::Status PrivacyServiceImpl::WouldFit(const PrivacySpendRecord& record,
                                          int64_t quanta) const {
  return WouldFitTotal(record, quanta, total_quanta_);
}

absl::StatusOr<agt::v1::PrivatePredictResponse> PrivacyServiceImpl::Predict(
    grpc::ServerContext* context, const Principal& caller,
    const agt::v1::PrivatePredictRequest& request) {
  if (absl::Status s = CheckId(request.model_id(), "model_id"); !s.ok()) return s;
  if (absl::Status s = ValidateRequestId(request.request_id()); !s.ok()) return s;
  const std::string client = ClientName(caller);
  // Roles that may read the model could compute n* from it themselves.
  const bool show_n_star = RoleMayPerform(caller.role, Action::kRead);
  const RequestTag tag = Tag(request, client, show_n_star);
  if (!tag.empty()) {
    absl::StatusOr<std::optional<std::string>> earlier =
        store_->FindRequest(caller.tenant, RequestKind::kPrivatePredict, tag);
    if (!earlier.ok()) return earlier.status();
    if (earlier->has_value()) {
      // Free: the audit log and metrics must not count it again.
      context->AddTrailingMetadata(kReplayedMetadataKey, "1");
      return ParseStored(**earlier);
    }
  }
  absl::StatusOr<std::shared_ptr<const ModelRecord>> model =
      cache_->Get(store_, caller.tenant, request.model_id());
  if (!model.ok()) return model.status();
  // Fail fast, before certifying, when the budget cannot hold the charge
  // (the charge's own transaction decides again; this read only saves work).
  if (absl::StatusOr<int64_t> quanta =
          agt::ChargeQuanta(request.epsilon(), request.inputs().rows());
      quanta.ok()) {
    absl::StatusOr<PrivacySpendRecord> now =
        store_->GetPrivacySpend(caller.tenant, (*model)->id, client);
    if (!now.ok()) return now.status();
    if (absl::Status s = WouldFit(*now, *quanta); !s.ok()) {
      if (!absl::IsResourceExhausted(s)) return s;
      return PrivacyBudgetRefusal(std::move(s), caller.tenant, (*model)->id, *now);
    }
  }
  // The caller's deadline, or the server's default for a call that set none.
  const CallBudget call(*context, default_deadline_);
  const KeepGoing keep_going = [&call] {
    absl::Status s = call.Check();
    if (s.ok()) return s;
    return WithMessage(s, absl::StrCat(s.message(), " before the release; nothing was charged"));
  };
  absl::StatusOr<PreparedRelease> prepared = PreparePrivatePrediction(
      **model, request.inputs(), request.epsilon(), request.mechanism(), keep_going, memory_);
  if (!prepared.ok()) return prepared.status();

  // Drawn before the charge, shown only after it commits.
  agt::v1::PrivatePredictResponse response;
  {
    std::lock_guard<std::mutex> lock(noise_mu_);
    response = ReleasePrivatePrediction(*prepared, show_n_star, *noise_);
  }
  response.set_guarantee(PrivacyGuaranteeText(**model, *prepared, show_n_star));
  if (absl::Status s = keep_going(); !s.ok()) return s;

  PrivacyCharge charge;
  charge.client = client;
  charge.total_quanta = total_quanta_;
  charge.quanta = prepared->quanta;
  charge.releases = static_cast<int64_t>(prepared->predicted.size());
  absl::StatusOr<PrivacySpendResult> spent = SpendPrivacyBudget(
      *store_, caller.tenant, (*model)->id, charge, tag, [&](const PrivacySpendRecord& record) {
        *response.mutable_budget() = ToBudget(record);
        return response.SerializeAsString();
      });
  if (!spent.ok()) return spent.status();
  if (spent->replayed) {  // a concurrent retry won
    context->AddTrailingMetadata(kReplayedMetadataKey, "1");
    return ParseStored(spent->response);
  }
  return response;
}

absl::StatusOr<agt::v1::PrivacyBudget> PrivacyServiceImpl::Budget(const Principal& caller,
                                                                  const std::string& model_id) {
  if (absl::Status s = CheckId(model_id, "model_id"); !s.ok()) return s;
  absl::StatusOr<PrivacySpendRecord> record =
      store_->GetPrivacySpend(caller.tenant, model_id, ClientName(caller));
  if (!record.ok()) return record.status();
  return ToBudget(*record);
}

}  // namespace agt::server
