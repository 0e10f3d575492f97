#include "server/service/privacy_service.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/auth/permissions.h"
#include "server/domain/private_prediction.h"
#include "server/service/request_checks.h"
#include "server/service/status_mapping.h"

namespace agt::server {
namespace {

constexpr char kPredict[] = "/agt.v1.PrivacyService/PrivatePredict";
constexpr char kBudget[] = "/agt.v1.PrivacyService/GetPrivacyBudget";

}  // namespace

absl::StatusOr<std::unique_ptr<PrivacyServiceImpl>> PrivacyServiceImpl::Create(
    Store* store, ModelCache* cache, const CallAuth* auth, double total_epsilon) {
  if (!(std::isfinite(total_epsilon) && total_epsilon >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--privacy-budget: ", total_epsilon, " must be a finite epsilon >= 0"));
  }
  absl::StatusOr<std::unique_ptr<agt::SecureNoise>> noise = agt::SecureNoise::Create();
  if (!noise.ok()) return noise.status();
  return std::unique_ptr<PrivacyServiceImpl>(
      new PrivacyServiceImpl(store, cache, auth, total_epsilon, *std::move(noise)));
}

grpc::Status PrivacyServiceImpl::PrivatePredict(grpc::ServerContext* context,
                                                const agt::v1::PrivatePredictRequest* request,
                                                agt::v1::PrivatePredictResponse* response) {
  absl::StatusOr<Principal> caller = auth_->Check(*context, kPredict);
  if (!caller.ok()) return ToGrpcStatus(caller.status(), kPredict);
  absl::StatusOr<agt::v1::PrivatePredictResponse> done = Predict(*caller, *request);
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
  budget.set_total_epsilon(total_epsilon_);
  budget.set_spent_epsilon(record.spent_epsilon);
  budget.set_remaining_epsilon(std::max(0.0, total_epsilon_ - record.spent_epsilon));
  budget.set_releases(record.releases);
  budget.set_client(record.client);
  return budget;
}

absl::StatusOr<agt::v1::PrivatePredictResponse> PrivacyServiceImpl::Predict(
    const Principal& caller, const agt::v1::PrivatePredictRequest& request) {
  if (absl::Status s = CheckId(request.model_id(), "model_id"); !s.ok()) return s;
  absl::StatusOr<std::shared_ptr<const ModelRecord>> model =
      cache_->Get(store_, caller.tenant, request.model_id());
  if (!model.ok()) return model.status();
  absl::StatusOr<PreparedRelease> prepared =
      PreparePrivatePrediction(**model, request.inputs(), request.epsilon(), request.mechanism());
  if (!prepared.ok()) return prepared.status();

  absl::StatusOr<PrivacySpendRecord> spent = store_->SpendPrivacyBudget(
      caller.tenant, (*model)->id, ClientName(caller), total_epsilon_, prepared->total_epsilon(),
      static_cast<int64_t>(prepared->predicted.size()));
  if (!spent.ok()) return spent.status();

  // Roles that may read the model could compute n* from it themselves.
  const bool show_n_star = RoleMayPerform(caller.role, Action::kRead);
  agt::v1::PrivatePredictResponse response;
  {
    std::lock_guard<std::mutex> lock(noise_mu_);
    response = ReleasePrivatePrediction(*prepared, show_n_star, *noise_);
  }
  *response.mutable_budget() = ToBudget(*spent);
  response.set_guarantee(PrivacyGuaranteeText(**model, *prepared, show_n_star));
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
