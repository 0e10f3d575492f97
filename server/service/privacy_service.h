// agt.v1.PrivacyService: differentially private predictions from stored
// models and the privacy budget ledger per (client, model) (paper section
// 10.2). A thin adapter: authenticate and authorize (CallAuth), prepare the
// release (domain/private_prediction.h: validation, mechanism, n*), spend
// rows x epsilon in the store (Store::SpendPrivacyBudget decides and records
// atomically), then draw the noise.
//
// Order matters for "a refused request spends nothing": every error that
// can be found is found before the spend, and after the spend the release
// cannot fail.
//
// The client of a budget is the token's label, or its tenant when the token
// has none (every unlabelled token of a tenant shares one budget; local mode
// is the client "local"). n*, the sensitivity bound and the noise scale are
// reported only to roles that may read the model anyway (admin, trainer,
// querier), never to a private-querier.
//
// Errors: unknown or foreign model -> NOT_FOUND; a mechanism the model does
// not admit -> FAILED_PRECONDITION; bad epsilon or inputs -> INVALID_ARGUMENT;
// budget exceeded -> RESOURCE_EXHAUSTED.
//
// Ownership: the store, cache and auth must outlive the service.
// Thread-safety: gRPC calls the methods concurrently; the noise source is
// guarded by a mutex.
#ifndef AGT_SERVER_SERVICE_PRIVACY_SERVICE_H_
#define AGT_SERVER_SERVICE_PRIVACY_SERVICE_H_

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
  // total_epsilon: the configured budget per (client, model), finite and >=
  // 0 (InvalidArgument otherwise). Unavailable if the OS random generator
  // cannot be read.
  static absl::StatusOr<std::unique_ptr<PrivacyServiceImpl>> Create(Store* store, ModelCache* cache,
                                                                    const CallAuth* auth,
                                                                    double total_epsilon);

  grpc::Status PrivatePredict(grpc::ServerContext* context,
                              const agt::v1::PrivatePredictRequest* request,
                              agt::v1::PrivatePredictResponse* response) override;
  grpc::Status GetPrivacyBudget(grpc::ServerContext* context,
                                const agt::v1::GetPrivacyBudgetRequest* request,
                                agt::v1::GetPrivacyBudgetResponse* response) override;

 private:
  PrivacyServiceImpl(Store* store, ModelCache* cache, const CallAuth* auth, double total_epsilon,
                     std::unique_ptr<agt::SecureNoise> noise)
      : store_(store),
        cache_(cache),
        auth_(auth),
        total_epsilon_(total_epsilon),
        noise_(std::move(noise)) {}

  absl::StatusOr<agt::v1::PrivatePredictResponse> Predict(
      const Principal& caller, const agt::v1::PrivatePredictRequest& request);
  absl::StatusOr<agt::v1::PrivacyBudget> Budget(const Principal& caller,
                                                const std::string& model_id);
  agt::v1::PrivacyBudget ToBudget(const PrivacySpendRecord& record) const;

  Store* const store_;
  ModelCache* const cache_;
  const CallAuth* const auth_;
  const double total_epsilon_;
  std::mutex noise_mu_;
  const std::unique_ptr<agt::SecureNoise> noise_;
};

}  // namespace agt::server

#endif  // AGT_SERVER_SERVICE_PRIVACY_SERVICE_H_
