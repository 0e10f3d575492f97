// agt.v1.PrivacyService: differentially private predictions from stored
// models and the privacy budget ledger, one budget per (tenant, root training
// dataset) shared by every token of the tenant and every model trained on the
// dataset (paper section 10.2; agt/v1/privacy.proto states the guarantee).
// A thin adapter: authenticate and authorize (CallAuth), look up a retried
// request_id, prepare the release (domain/private_prediction.h: validation,
// exact charge, mechanism, n*, in bounded chunks), draw the noise, then
// charge the budget and store the answer in one transaction
// (SpendPrivacyBudget, domain/ledgers.h), and return it.
//
// A request whose charge cannot fit what remains is refused before it is
// certified (a read of the budget, so that an exhausted budget costs the
// server no work); the charge's own transaction decides again.
//
// Order matters for "a refused request is charged nothing" and "nothing is
// charged for a release that was not returned": every error that can be
// found is found before the charge; the call's cancellation and deadline are
// checked between chunks and right before the charge; noise drawn for an
// answer that is not committed is never shown. After the commit the answer
// is returned; if the client is gone by then, the charge stands (counted,
// never lost) and a retry with the same request_id gets the stored answer.
//
// Idempotency: request_id (store/store.h RequestTag) with a fingerprint of
// the request without its id plus the client and whether n* is shown, so a
// retry from another client of the tenant or another role is a different
// request (InvalidArgument), never a way to read someone else's answer.
//
// The client is the token's label, or its tenant when the token has none
// (local mode is the client "local"); it names the caller's share of the
// budget in reports, not a budget of its own. n*, the sensitivity bound and
// the noise scale are reported only to roles that may read the model anyway
// (admin, trainer, querier), never to a private-querier.
//
// Errors: unknown or foreign model -> NOT_FOUND; a mechanism the model does
// not admit -> FAILED_PRECONDITION; bad epsilon (below 2^-40 included),
// inputs or request_id -> INVALID_ARGUMENT; budget exceeded or a row too
// large to certify -> RESOURCE_EXHAUSTED; cancelled -> CANCELLED; past the
// deadline (the caller's, or the server's default for a call that set none)
// -> DEADLINE_EXCEEDED.
//
// Ownership: the store, cache and auth must outlive the service.
// Thread-safety: gRPC calls the methods concurrently; the noise source is
// guarded by a mutex.
#ifndef AGT_SERVER_SERVICE_PRIVACY_SERVICE_H_
#define AGT_SERVER_SERVICE_PRIVACY_SERVICE_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "agt/v1/privacy.grpc.pb.h"
#include "core/privacy/noise.h"
#include "server/domain/certifier.h"
#include "server/service/call_auth.h"
#include "server/store/store.h"

namespace agt::server {

class PrivacyServiceImpl final : public agt::v1::PrivacyService::Service {
 public:
  // total_epsilon: the configured budget per (tenant, dataset), finite and
  // in [0, 2^22] (agt::TotalQuanta; InvalidArgument otherwise).
  // default_deadline: the deadline of a PrivatePredict that set none (or a
  // later one), counted from its start (<= 0: none; call_budget.h).
  // Unavailable if the OS random generator cannot be read.
  static absl::StatusOr<std::unique_ptr<PrivacyServiceImpl>> Create(
      Store* store, ModelCache* cache, const CallAuth* auth, double total_epsilon,
      std::chrono::milliseconds default_deadline = std::chrono::milliseconds(0),
      WorkingMemory* memory = nullptr);

  grpc::Status PrivatePredict(grpc::ServerContext* context,
                              const agt::v1::PrivatePredictRequest* request,
                              agt::v1::PrivatePredictResponse* response) override;
  grpc::Status GetPrivacyBudget(grpc::ServerContext* context,
                                const agt::v1::GetPrivacyBudgetRequest* request,
                                agt::v1::GetPrivacyBudgetResponse* response) override;

 private:
  PrivacyServiceImpl(Store* store, ModelCache* cache, const CallAuth* auth, int64_t total_quanta,
                     std::chrono::milliseconds default_deadline, WorkingMemory* memory,
                     std::unique_ptr<agt::SecureNoise> noise)
      : store_(store),
        cache_(cache),
        auth_(auth),
        total_quanta_(total_quanta),
        default_deadline_(default_deadline),
        memory_(memory),
        noise_(std::move(noise)) {}

  absl::StatusOr<agt::v1::PrivatePredictResponse> Predict(
      grpc::ServerContext* context, const Principal& caller,
      const agt::v1::PrivatePredictRequest& request);
  absl::StatusOr<agt::v1::PrivacyBudget> Budget(const Principal& caller,
                                                const std::string& model_id);
  agt::v1::PrivacyBudget ToBudget(const PrivacySpendRecord& record) const;
  // ResourceExhausted when `quanta` more would not fit the budget.
  absl::Status WouldFit(const PrivacySpendRecord& record, int64_t quanta) const;

  Store* const store_;
  ModelCache* const cache_;
  const CallAuth* const auth_;
  const int64_t total_quanta_;
  const std::chrono::milliseconds default_deadline_;
  WorkingMemory* const memory_;  // may be null; not owned
  std::mutex noise_mu_;
  const std::unique_ptr<agt::SecureNoise> noise_;
};

}  // namespace agt::server

#endif  // AGT_SERVER_SERVICE_PRIVACY_SERVICE_H_
