// agt.v1.PrivacyService end to end against the real agt-server: private
// labels with the n* of the certificates and the guarantee, released label
// frequencies against the Cauchy and Laplace CDFs, the budget ledger (exact
// quanta of 2^-40, all or nothing, one budget per tenant and dataset shared
// by tokens and models, across restarts, under concurrent requests and a
// kill -9 among them), idempotent request ids, which mechanism each model
// admits, the private-querier role, bounded memory and deadlines for large
// requests, and bad inputs of every RPC.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <cmath>
#include <memory>
#include <numbers>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "agt/v1/privacy.grpc.pb.h"
#include "agt/v1/unlearning.grpc.pb.h"
#include "tests/server/e2e_util.h"

namespace agt::e2e {
namespace {

constexpr char kTrainer[] = "trainer-token";
constexpr char kQuerier[] = "querier-token";
constexpr char kPrivate[] = "private-token";
constexpr char kPrivate2[] = "private-token-2";
constexpr char kOther[] = "other-tenant-token";
constexpr int kRows = 200;
const std::vector<int> kBudgets = {1, 2, 4};

// Binary moons MLP trained under substitution (clamp clipping): the model
// the smooth-sensitivity mechanism is for.
agt::v1::TrainingJobSpec SubstitutionSpec(const std::string& dataset_id) {
  agt::v1::TrainingJobSpec spec = MoonsSpec(dataset_id, 2, 50, kBudgets);
  spec.mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_SUBSTITUTION);
  spec.set_clip_gamma(1.0);
  return spec;
}

class PrivacyE2eTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<TempDir>();
    WriteFile(dir_->File("tokens"),
              absl::StrCat(TokenLine(kTrainer, "trainer", "acme"),
                           TokenLine(kQuerier, "querier", "acme", "analyst"),
                           TokenLine(kPrivate, "private-querier", "acme", "app one"),
                           TokenLine(kPrivate2, "private-querier", "acme", "app two"),
                           TokenLine(kOther, "admin", "beta")));
    StartServer(100.0);
    dataset_ = UploadMoons(*client_, kRows, 3, kTrainer);
    model_id_ = Train(SubstitutionSpec(dataset_.id()));
  }

  void StartServer(double budget, std::vector<std::string> extra = {}) {
    client_.reset();
    server_.reset();
    server_ = std::make_unique<ServerProcess>();
    std::vector<std::string> args = {"--tokens", dir_->File("tokens"), "--privacy-budget",
                                     absl::StrCat(budget)};
    args.insert(args.end(), extra.begin(), extra.end());
    ASSERT_TRUE(server_->Start(ServerArgs(dir_->File("p.db"), args), dir_->File("server.err")))
        << ReadFileText(dir_->File("server.err"));
    client_ = std::make_unique<Client>(server_->address());
    privacy_ = agt::v1::PrivacyService::NewStub(client_->channel);
  }

  std::string Train(const agt::v1::TrainingJobSpec& spec) {
    return TrainModel(*client_, spec, kTrainer);
  }

  // The first `rows` points of the training set, optionally the same point
  // `repeat` times each.
  static agt::v1::Matrix Inputs(int rows, int repeat = 1) {
    const agt::Dataset data = agt::MakeMoons(kRows, 0.1, 3);
    agt::v1::Matrix m;
    m.set_rows(static_cast<int64_t>(rows) * repeat);
    m.set_cols(2);
    for (int i = 0; i < rows; ++i) {
      for (int r = 0; r < repeat; ++r) {
        m.add_values(data.x(i, 0));
        m.add_values(data.x(i, 1));
      }
    }
    return m;
  }

  grpc::Status Predict(const agt::v1::Matrix& inputs, double epsilon,
                       agt::v1::PrivatePredictResponse* out, const std::string& token = kQuerier,
                       agt::v1::PrivacyMechanism mechanism = agt::v1::PRIVACY_MECHANISM_UNSPECIFIED,
                       const std::string& model = "", const std::string& request_id = "") {
    agt::v1::PrivatePredictRequest request;
    request.set_model_id(model.empty() ? model_id_ : model);
    *request.mutable_inputs() = inputs;
    request.set_epsilon(epsilon);
    request.set_mechanism(mechanism);
    request.set_request_id(request_id);
    return privacy_->PrivatePredict(Ctx(token).get(), request, out);
  }

  agt::v1::PrivacyBudget Budget(const std::string& token = kQuerier,
                                const std::string& model = "") {
    agt::v1::GetPrivacyBudgetRequest request;
    request.set_model_id(model.empty() ? model_id_ : model);
    agt::v1::GetPrivacyBudgetResponse response;
    const grpc::Status s = privacy_->GetPrivacyBudget(Ctx(token).get(), request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response.budget();
  }

  // n* per input from CertifyPredictions: the largest budget at which the
  // point is stable, 0 if none; and the nominal predictions.
  void CertifiedNStar(const agt::v1::Matrix& inputs, std::vector<int>* n_star,
                      std::vector<int>* predicted) {
    agt::v1::CertifyPredictionsRequest certify;
    certify.set_model_id(model_id_);
    *certify.mutable_inputs() = inputs;
    agt::v1::CertifyPredictionsResponse certified;
    const grpc::Status s =
        client_->models->CertifyPredictions(Ctx(kQuerier).get(), certify, &certified);
    ASSERT_TRUE(s.ok()) << s.error_message();
    for (const agt::v1::PointCertificate& p : certified.points()) {
      int n = 0;
      for (int j = 0; j < p.stable_size(); ++j) {
        if (p.stable(j)) n = std::max(n, kBudgets[j]);
      }
      n_star->push_back(n);
      predicted->push_back(p.predicted_class());
    }
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<agt::v1::PrivacyService::Stub> privacy_;
  agt::v1::Dataset dataset_;
  std::string model_id_;
};

TEST_F(PrivacyE2eTest, ReleasesLabelsWithTheCertifiedNStarAndSpendsTheBudget) {
  const agt::v1::Matrix inputs = Inputs(60);
  std::vector<int> n_star;
  std::vector<int> predicted;
  ASSERT_NO_FATAL_FAILURE(CertifiedNStar(inputs, &n_star, &predicted));
  int with_n_star = 0;
  for (int n : n_star) with_n_star += n >= 1;
  ASSERT_GE(with_n_star, 10) << "the test needs points certified at some budget";

  const double epsilon = 0.5;
  agt::v1::PrivatePredictResponse r;
  const grpc::Status s = Predict(inputs, epsilon, &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.mechanism(), agt::v1::PRIVACY_MECHANISM_SMOOTH_SENSITIVITY);
  EXPECT_DOUBLE_EQ(r.epsilon_per_label(), epsilon);
  EXPECT_DOUBLE_EQ(r.epsilon_spent(), 60 * epsilon);
  ASSERT_EQ(r.labels_size(), 60);
  for (int i = 0; i < 60; ++i) {
    const agt::v1::PrivateLabel& l = r.labels(i);
    EXPECT_TRUE(l.label() == 0 || l.label() == 1);
    EXPECT_EQ(l.n_star(), n_star[i]) << "point " << i;
    const double ss = std::exp(-epsilon * n_star[i] / 6.0);  // Theorem 11
    EXPECT_DOUBLE_EQ(l.sensitivity(), ss);
    EXPECT_DOUBLE_EQ(l.noise_scale(), 6.0 * ss / epsilon);  // eq. 59
  }
  EXPECT_EQ(r.quanta_charged(), int64_t{30} << 40);
  EXPECT_DOUBLE_EQ(r.budget().total_epsilon(), 100.0);
  EXPECT_DOUBLE_EQ(r.budget().spent_epsilon(), 30.0);
  EXPECT_DOUBLE_EQ(r.budget().remaining_epsilon(), 70.0);
  EXPECT_EQ(r.budget().total_quanta(), int64_t{100} << 40);
  EXPECT_EQ(r.budget().spent_quanta(), int64_t{30} << 40);
  EXPECT_EQ(r.budget().remaining_quanta(), int64_t{70} << 40);
  EXPECT_EQ(r.budget().epsilon_quantum(), std::ldexp(1.0, -40));
  EXPECT_EQ(r.budget().releases(), 60);
  EXPECT_EQ(r.budget().client(), "analyst");
  EXPECT_EQ(r.budget().dataset_id(), dataset_.id());
  EXPECT_DOUBLE_EQ(r.budget().client_spent_epsilon(), 30.0);
  EXPECT_EQ(r.budget().client_releases(), 60);
  for (const char* part : {"Theorem 11", "0.5-differentially private", "compose", "Cauchy",
                           "per batch", "initialisation", "any model trained on",
                           "any token of the tenant", "2^-40"}) {
    EXPECT_TRUE(absl::StrContains(r.guarantee(), part)) << part << ": " << r.guarantee();
  }
  const agt::v1::PrivacyBudget budget = Budget();
  EXPECT_DOUBLE_EQ(budget.spent_epsilon(), 30.0);
  EXPECT_EQ(budget.releases(), 60);
}

// The released labels of one point follow the mechanism's distribution: the
// flip rate of R(x) = 1[f + z > 1/2] is P(z < -1/2) for f = 1 and P(z > 1/2)
// for f = 0, i.e. 1/2 - atan(1 / (2 s)) / pi for Cauchy(s) and
// exp(-1 / (2 b)) / 2 for Laplace(b).
TEST_F(PrivacyE2eTest, ReleasedLabelFrequenciesMatchTheNoiseDistributions) {
  constexpr int kRepeats = 4000;
  const agt::v1::Matrix probe = Inputs(60);
  std::vector<int> n_star;
  std::vector<int> predicted;
  ASSERT_NO_FATAL_FAILURE(CertifiedNStar(probe, &n_star, &predicted));
  // One point with the largest n* and, if there is one, one with n* = 0.
  int best = 0;
  for (int i = 1; i < 60; ++i) best = n_star[i] > n_star[best] ? i : best;
  ASSERT_GE(n_star[best], 1);

  struct Case {
    agt::v1::PrivacyMechanism mechanism;
    double epsilon;
  };
  // A budget large enough for every case, for the trainer's own client.
  ASSERT_NO_FATAL_FAILURE(StartServer(1e6));
  for (const Case& c : {Case{agt::v1::PRIVACY_MECHANISM_SMOOTH_SENSITIVITY, 1.0},
                        Case{agt::v1::PRIVACY_MECHANISM_SMOOTH_SENSITIVITY, 4.0},
                        Case{agt::v1::PRIVACY_MECHANISM_GLOBAL_LAPLACE, 1.0}}) {
    agt::v1::Matrix inputs;
    inputs.set_rows(kRepeats);
    inputs.set_cols(2);
    for (int r = 0; r < kRepeats; ++r) {
      inputs.add_values(probe.values(2 * best));
      inputs.add_values(probe.values(2 * best + 1));
    }
    agt::v1::PrivatePredictResponse r;
    const grpc::Status s = Predict(inputs, c.epsilon, &r, kTrainer, c.mechanism);
    ASSERT_TRUE(s.ok()) << s.error_message();
    int flips = 0;
    for (const agt::v1::PrivateLabel& l : r.labels()) flips += l.label() != predicted[best];
    double expected = 0;
    if (c.mechanism == agt::v1::PRIVACY_MECHANISM_SMOOTH_SENSITIVITY) {
      const double scale = 6.0 * std::exp(-c.epsilon * n_star[best] / 6.0) / c.epsilon;
      EXPECT_DOUBLE_EQ(r.labels(0).noise_scale(), scale);
      expected = 0.5 - std::atan(0.5 / scale) / std::numbers::pi;
    } else {
      expected = 0.5 * std::exp(-0.5 * c.epsilon);
    }
    const double rate = static_cast<double>(flips) / kRepeats;
    const double se = std::sqrt(expected * (1 - expected) / kRepeats);
    EXPECT_NEAR(rate, expected, 5 * se + 1e-9)
        << agt::v1::PrivacyMechanism_Name(c.mechanism) << " epsilon " << c.epsilon << " n* "
        << n_star[best];
  }
}

TEST_F(PrivacyE2eTest, AnOverspendIsRefusedAndSpendsNothing) {
  ASSERT_NO_FATAL_FAILURE(StartServer(1.0));
  agt::v1::PrivatePredictResponse r;
  ASSERT_TRUE(Predict(Inputs(4), 0.125, &r).ok());  // 0.5
  // A request refused for its input charges nothing.
  agt::v1::Matrix bad = Inputs(1);
  bad.set_values(0, std::nan(""));
  EXPECT_EQ(Predict(bad, 1e-6, &r, kPrivate).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Budget(kPrivate).spent_epsilon(), 0.5);
  grpc::Status s = Predict(Inputs(5), 0.125, &r);  // 1.125 > 1
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  for (const char* part : {"analyst", "nothing was spent", "0.5", "quanta", dataset_.id().c_str()}) {
    EXPECT_TRUE(absl::StrContains(s.error_message(), part)) << part << ": " << s.error_message();
  }
  agt::v1::PrivacyBudget budget = Budget();
  EXPECT_EQ(budget.spent_epsilon(), 0.5);
  EXPECT_EQ(budget.releases(), 4);
  // Exactly the rest still fits: binary fractions add exactly.
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(Predict(Inputs(1), 0.125, &r).ok()) << i;
  budget = Budget();
  EXPECT_EQ(budget.spent_epsilon(), 1.0);
  EXPECT_EQ(budget.remaining_epsilon(), 0.0);
  EXPECT_EQ(budget.remaining_quanta(), 0);
  EXPECT_EQ(Predict(Inputs(1), 1e-6, &r).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // Another token of the tenant finds the same budget used up.
  EXPECT_EQ(Predict(Inputs(1), 1e-6, &r, kPrivate).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(Budget(kPrivate).client_spent_epsilon(), 0.0);
  EXPECT_EQ(Budget(kPrivate).releases(), 8);
}

// Decimal epsilons are not binary fractions: double(0.1) exceeds 0.1, so the
// tenth charge of 0.1 does not fit a total of 1 (the old tolerance let it).
TEST_F(PrivacyE2eTest, DecimalEpsilonsAreChargedRoundedUp) {
  ASSERT_NO_FATAL_FAILURE(StartServer(1.0));
  agt::v1::PrivatePredictResponse r;
  for (int i = 0; i < 9; ++i) ASSERT_TRUE(Predict(Inputs(1), 0.1, &r).ok()) << i;
  EXPECT_EQ(r.quanta_charged(), 109'951'162'778);  // ceil(0.1 x 2^40)
  EXPECT_GE(r.budget().spent_epsilon(), 9 * 0.1);
  EXPECT_EQ(Predict(Inputs(1), 0.1, &r).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(Budget().spent_quanta(), 9 * int64_t{109'951'162'778});
}

// Finding 4: with a budget of 1 spent down to 0.9999999999999999, 100
// requests x 10 000 labels at epsilon 1e-21 were all accepted and spent never
// moved. Now 1e-21 is below the ledger's quantum and refused; the smallest
// chargeable epsilon moves spent by one quantum per label, and does not fit
// an exhausted budget.
TEST_F(PrivacyE2eTest, TheTinyEpsilonAttackIsRefusedAndChargesNeverVanish) {
  ASSERT_NO_FATAL_FAILURE(StartServer(1.0));
  agt::v1::PrivatePredictResponse r;
  ASSERT_TRUE(Predict(Inputs(1), 0.9999999999999999, &r).ok());
  EXPECT_EQ(r.quanta_charged(), int64_t{1} << 40);  // rounded up to the whole total
  agt::v1::PrivacyBudget budget = Budget();
  EXPECT_EQ(budget.spent_quanta(), budget.total_quanta());
  EXPECT_EQ(budget.remaining_epsilon(), 0.0);
  const agt::v1::Matrix many = Inputs(1, 10'000);
  for (int request = 0; request < 100; ++request) {
    const grpc::Status s = Predict(many, 1e-21, &r);
    ASSERT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << request;
    if (request == 0) {
      for (const char* part : {"1e-21", "quantum", "2^-40"}) {
        EXPECT_TRUE(absl::StrContains(s.error_message(), part)) << part << ": " << s.error_message();
      }
    }
  }
  const double quantum = std::ldexp(1.0, -40);
  EXPECT_EQ(Predict(many, quantum, &r).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  budget = Budget();
  EXPECT_EQ(budget.spent_quanta(), int64_t{1} << 40);
  EXPECT_EQ(budget.releases(), 1);

  // With room left, every tiny charge moves spent: 10 000 x ceil(1e-12 / q)
  // = 20 000 quanta per request.
  ASSERT_NO_FATAL_FAILURE(StartServer(2.0));
  int64_t spent = Budget().spent_quanta();
  for (int request = 0; request < 5; ++request) {
    ASSERT_TRUE(Predict(many, 1e-12, &r).ok()) << request;
    EXPECT_EQ(r.quanta_charged(), 20'000);
    EXPECT_EQ(r.budget().spent_quanta(), spent + 20'000);
    EXPECT_GT(r.budget().spent_epsilon(), 1.0);
    spent = r.budget().spent_quanta();
  }
  EXPECT_EQ(Budget().releases(), 1 + 5 * 10'000);
}

// Finding 5: the budget was per token and per model. Now one budget per
// (tenant, dataset) is drawn on by every token of the tenant and every model
// trained on the dataset; another dataset has its own.
TEST_F(PrivacyE2eTest, TokensAndModelsOfOneDatasetShareOneBudgetAcrossRestarts) {
  agt::v1::PrivatePredictResponse r;
  ASSERT_TRUE(Predict(Inputs(4), 0.25, &r, kPrivate).ok());   // 1
  ASSERT_TRUE(Predict(Inputs(2), 0.25, &r, kPrivate2).ok());  // 0.5
  const std::string second = Train(SubstitutionSpec(dataset_.id()));
  ASSERT_TRUE(
      Predict(Inputs(1), 2.0, &r, kPrivate, agt::v1::PRIVACY_MECHANISM_UNSPECIFIED, second).ok());
  EXPECT_EQ(r.budget().spent_epsilon(), 3.5);
  for (const auto& [token, model] :
       std::vector<std::pair<std::string, std::string>>{{kPrivate, model_id_},
                                                        {kPrivate2, model_id_},
                                                        {kQuerier, model_id_},
                                                        {kPrivate, second},
                                                        {kTrainer, second}}) {
    const agt::v1::PrivacyBudget b = Budget(token, model);
    EXPECT_EQ(b.spent_epsilon(), 3.5) << token << " " << model;
    EXPECT_EQ(b.releases(), 7) << token << " " << model;
    EXPECT_EQ(b.dataset_id(), dataset_.id()) << token << " " << model;
  }
  EXPECT_EQ(Budget(kPrivate).client(), "app one");
  EXPECT_EQ(Budget(kPrivate).client_spent_epsilon(), 3.0);
  EXPECT_EQ(Budget(kPrivate).client_releases(), 5);
  EXPECT_EQ(Budget(kPrivate2).client_spent_epsilon(), 0.5);
  EXPECT_EQ(Budget(kQuerier).client_spent_epsilon(), 0.0);
  // Another dataset of the tenant has its own budget.
  const agt::v1::Dataset other = UploadMoons(*client_, kRows, 5, kTrainer);
  const std::string elsewhere = Train(SubstitutionSpec(other.id()));
  EXPECT_EQ(Budget(kPrivate, elsewhere).spent_epsilon(), 0.0);
  EXPECT_EQ(Budget(kPrivate, elsewhere).dataset_id(), other.id());

  // SIGTERM, then kill -9: what was committed stays.
  EXPECT_EQ(server_->Signal(SIGTERM), 0);
  ASSERT_NO_FATAL_FAILURE(StartServer(100.0));
  EXPECT_EQ(Budget(kPrivate, second).spent_epsilon(), 3.5);
  ASSERT_TRUE(Predict(Inputs(2), 0.5, &r, kPrivate2).ok());  // 4.5
  server_->Signal(SIGKILL);
  // A new total applies to what remains, for every token and model.
  ASSERT_NO_FATAL_FAILURE(StartServer(5.0));
  agt::v1::PrivacyBudget budget = Budget(kPrivate, second);
  EXPECT_EQ(budget.spent_epsilon(), 4.5);
  EXPECT_EQ(budget.total_epsilon(), 5.0);
  EXPECT_EQ(budget.remaining_epsilon(), 0.5);
  EXPECT_EQ(budget.releases(), 9);
  EXPECT_EQ(Predict(Inputs(2), 0.5, &r, kPrivate, agt::v1::PRIVACY_MECHANISM_UNSPECIFIED, second)
                .error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  ASSERT_TRUE(Predict(Inputs(1), 0.5, &r).ok());  // exactly the rest, by another token
  // Lowered below what was spent: nothing remains, and the answer says so.
  ASSERT_NO_FATAL_FAILURE(StartServer(1.0));
  budget = Budget(kPrivate);
  EXPECT_EQ(budget.remaining_epsilon(), 0.0);
  const grpc::Status s = Predict(Inputs(1), 0.01, &r, kPrivate);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "used up")) << s.error_message();
}

TEST_F(PrivacyE2eTest, ConcurrentRequestsNeverOverspend) {
  ASSERT_NO_FATAL_FAILURE(StartServer(1.0));
  constexpr int kThreads = 8;
  constexpr int kPerThread = 10;
  std::atomic<int> granted{0};
  std::atomic<int> refused{0};
  std::atomic<int> other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        agt::v1::PrivatePredictResponse r;
        const grpc::Status s = Predict(Inputs(1), 0.0625, &r, kPrivate);
        if (s.ok()) {
          ++granted;
          if (r.budget().spent_quanta() > r.budget().total_quanta()) ++other;
        } else if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
          ++refused;
        } else {
          ++other;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(granted.load(), 16);  // 16 x 1/16 = 1, exactly
  EXPECT_EQ(refused.load(), kThreads * kPerThread - 16);
  const agt::v1::PrivacyBudget budget = Budget(kPrivate);
  EXPECT_EQ(budget.spent_epsilon(), 1.0);
  EXPECT_EQ(budget.releases(), 16);
}

TEST_F(PrivacyE2eTest, APrivateQuerierSeesOnlyLabelsAndItsBudget) {
  agt::v1::PrivatePredictResponse r;
  ASSERT_TRUE(Predict(Inputs(10), 0.5, &r, kPrivate).ok());
  for (const agt::v1::PrivateLabel& l : r.labels()) {
    EXPECT_EQ(l.n_star(), -1);
    EXPECT_EQ(l.sensitivity(), -1.0);
    EXPECT_EQ(l.noise_scale(), -1.0);
  }
  EXPECT_TRUE(absl::StrContains(r.guarantee(), "withheld")) << r.guarantee();
  agt::v1::GetModelRequest get;
  get.set_model_id(model_id_);
  agt::v1::GetModelResponse model;
  EXPECT_EQ(client_->models->GetModel(Ctx(kPrivate).get(), get, &model).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  agt::v1::CertifyPredictionsRequest certify;
  certify.set_model_id(model_id_);
  *certify.mutable_inputs() = Inputs(1);
  agt::v1::CertifyPredictionsResponse certified;
  EXPECT_EQ(
      client_->models->CertifyPredictions(Ctx(kPrivate).get(), certify, &certified).error_code(),
      grpc::StatusCode::PERMISSION_DENIED);
  agt::v1::ListDatasetsResponse datasets;
  EXPECT_EQ(client_->datasets
                ->ListDatasets(Ctx(kPrivate).get(), agt::v1::ListDatasetsRequest(), &datasets)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  auto unlearning = agt::v1::UnlearningService::NewStub(client_->channel);
  agt::v1::GetUnlearningStatusRequest status;
  status.set_model_id(model_id_);
  agt::v1::GetUnlearningStatusResponse status_response;
  EXPECT_EQ(
      unlearning->GetUnlearningStatus(Ctx(kPrivate).get(), status, &status_response).error_code(),
      grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(PrivacyE2eTest, EachModelGetsOnlyTheMechanismsThatApply) {
  agt::v1::PrivatePredictResponse r;
  // Removal-trained binary model: no smooth sensitivity, Laplace and
  // report-noisy-argmax work.
  const std::string removal = Train(MoonsSpec(dataset_.id(), 1, 50, {1, 2}));
  grpc::Status s =
      Predict(Inputs(3), 1.0, &r, kQuerier, agt::v1::PRIVACY_MECHANISM_UNSPECIFIED, removal);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "PERTURBATION_KIND_SUBSTITUTION"))
      << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), "PRIVACY_MECHANISM_GLOBAL_LAPLACE"))
      << s.error_message();
  ASSERT_TRUE(
      Predict(Inputs(3), 1.0, &r, kQuerier, agt::v1::PRIVACY_MECHANISM_GLOBAL_LAPLACE, removal)
          .ok());
  EXPECT_EQ(r.mechanism(), agt::v1::PRIVACY_MECHANISM_GLOBAL_LAPLACE);
  EXPECT_EQ(r.labels(0).n_star(), 0);
  EXPECT_DOUBLE_EQ(r.labels(0).noise_scale(), 1.0);
  EXPECT_TRUE(absl::StrContains(r.guarantee(), "uses no certificate")) << r.guarantee();

  // A 3-class model: only report-noisy-argmax.
  const agt::Dataset blobs = agt::MakeBlobs(90, 2, 3, 0.5, 5.0, 11);
  std::string csv = "x0,x1,y\n";
  for (agt::Index i = 0; i < blobs.size(); ++i) {
    absl::StrAppend(&csv, blobs.x(i, 0), ",", blobs.x(i, 1), ",", static_cast<int>(blobs.y[i]),
                    "\n");
  }
  agt::v1::Dataset three;
  ASSERT_TRUE(Upload(*client_, CsvMetadata("blobs3", 3), csv, &three, kTrainer).ok());
  agt::v1::TrainingJobSpec spec = SubstitutionSpec(three.id());
  spec.set_loss(agt::v1::LOSS_CROSS_ENTROPY);
  spec.set_batch_size(30);
  const std::string multi = Train(spec);
  s = Predict(Inputs(2), 1.0, &r, kQuerier, agt::v1::PRIVACY_MECHANISM_UNSPECIFIED, multi);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "PRIVACY_MECHANISM_REPORT_NOISY_ARGMAX"))
      << s.error_message();
  s = Predict(Inputs(2), 1.0, &r, kQuerier, agt::v1::PRIVACY_MECHANISM_GLOBAL_LAPLACE, multi);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(
      Predict(Inputs(50), 1.0, &r, kQuerier, agt::v1::PRIVACY_MECHANISM_REPORT_NOISY_ARGMAX, multi)
          .ok());
  EXPECT_EQ(r.mechanism(), agt::v1::PRIVACY_MECHANISM_REPORT_NOISY_ARGMAX);
  for (const agt::v1::PrivateLabel& l : r.labels()) {
    EXPECT_GE(l.label(), 0);
    EXPECT_LT(l.label(), 3);
    EXPECT_DOUBLE_EQ(l.noise_scale(), 2.0);
  }
  // Refusals spent nothing on either model.
  EXPECT_DOUBLE_EQ(Budget(kQuerier, removal).spent_epsilon(), 3.0);
  EXPECT_DOUBLE_EQ(Budget(kQuerier, multi).spent_epsilon(), 50.0);
}

TEST_F(PrivacyE2eTest, BadInputsOfEveryRpcGetTheRightStatus) {
  agt::v1::PrivatePredictResponse r;
  for (double epsilon : {0.0, -1.0, std::nan(""), HUGE_VAL, 1e308, 1e-21, 5e6}) {
    const grpc::Status s = Predict(Inputs(2), epsilon, &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << epsilon;
    EXPECT_TRUE(absl::StrContains(s.error_message(), "epsilon")) << s.error_message();
  }
  EXPECT_EQ(Predict(agt::v1::Matrix(), 0.1, &r).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::Status s = Predict(Inputs(1, 10'001), 1e-9, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "10000")) << s.error_message();
  agt::v1::Matrix wrong;
  wrong.set_rows(1);
  wrong.set_cols(3);
  for (double v : {1.0, 2.0, 3.0}) wrong.add_values(v);
  s = Predict(wrong, 0.1, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "inputs")) << s.error_message();
  wrong.set_cols(2);  // 3 values for 1 x 2
  EXPECT_EQ(Predict(wrong, 0.1, &r).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(
      Predict(Inputs(1), 0.1, &r, kQuerier, static_cast<agt::v1::PrivacyMechanism>(7)).error_code(),
      grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(
      Predict(Inputs(1), 0.1, &r, kQuerier, agt::v1::PRIVACY_MECHANISM_UNSPECIFIED, "mdl-unknown")
          .error_code(),
      grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Predict(Inputs(1), 0.1, &r, kQuerier, agt::v1::PRIVACY_MECHANISM_UNSPECIFIED, "bad id")
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Predict(Inputs(1), 0.1, &r, kOther).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Predict(Inputs(1), 0.1, &r, "").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Predict(Inputs(1), 0.1, &r, "not-a-token").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  for (const std::string& id : {std::string("has space"), std::string(129, 'x')}) {
    s = Predict(Inputs(1), 0.1, &r, kQuerier, agt::v1::PRIVACY_MECHANISM_UNSPECIFIED, "", id);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << id;
    EXPECT_TRUE(absl::StrContains(s.error_message(), "request_id")) << s.error_message();
  }

  agt::v1::GetPrivacyBudgetRequest request;
  agt::v1::GetPrivacyBudgetResponse response;
  EXPECT_EQ(privacy_->GetPrivacyBudget(Ctx(kQuerier).get(), request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  request.set_model_id("mdl-unknown");
  EXPECT_EQ(privacy_->GetPrivacyBudget(Ctx(kQuerier).get(), request, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  request.set_model_id(model_id_);
  EXPECT_EQ(privacy_->GetPrivacyBudget(Ctx(kOther).get(), request, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(privacy_->GetPrivacyBudget(Ctx("").get(), request, &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // None of it spent anything, and the server still serves.
  const agt::v1::PrivacyBudget budget = Budget();
  EXPECT_EQ(budget.spent_epsilon(), 0.0);
  EXPECT_EQ(budget.releases(), 0);
  ASSERT_TRUE(Predict(Inputs(1), 0.1, &r).ok());
}

TEST_F(PrivacyE2eTest, TheServerRefusesABadTotal) {
  for (const char* bad : {"-1", "nan", "inf", "lots", "1e7"}) {
    std::string out;
    std::string err;
    const int code = RunServerCommand(
        {"--listen", "127.0.0.1:0", "--db", dir_->File("bad.db"), "--privacy-budget", bad}, "",
        &out, &err, *dir_);
    EXPECT_EQ(code, 2) << bad;
    EXPECT_TRUE(absl::StrContains(err, "--privacy-budget")) << err;
  }
}

// A retrained successor (the service's own retraining after deletions) draws
// on the budget of the data it was trained on, not a fresh one.
TEST_F(PrivacyE2eTest, ARetrainedSuccessorSharesItsPredecessorsBudget) {
  ASSERT_NO_FATAL_FAILURE(StartServer(1.0));
  const agt::v1::PrivacyMechanism laplace = agt::v1::PRIVACY_MECHANISM_GLOBAL_LAPLACE;
  const std::string original = Train(MoonsSpec(dataset_.id(), 1, 50, {1, 2}));
  auto unlearning = agt::v1::UnlearningService::NewStub(client_->channel);
  agt::v1::RequestDeletionRequest deletion;
  deletion.set_model_id(original);
  deletion.add_row_ids(3);
  agt::v1::RequestDeletionResponse deleted;
  ASSERT_TRUE(unlearning->RequestDeletion(Ctx(kTrainer).get(), deletion, &deleted).ok());
  agt::v1::RetrainInPlaceRequest retrain;
  retrain.set_model_id(original);
  agt::v1::RetrainInPlaceResponse job;
  const grpc::Status s = unlearning->RetrainInPlace(Ctx(kTrainer).get(), retrain, &job);
  ASSERT_TRUE(s.ok()) << s.error_message();
  const agt::v1::Job done = WaitForFinal(*client_, job.job_id(), kTrainer);
  ASSERT_EQ(done.state(), agt::v1::JOB_STATE_SUCCEEDED) << done.error();
  const std::string successor = done.model_id();
  ASSERT_FALSE(successor.empty());
  ASSERT_NE(successor, original);

  agt::v1::PrivatePredictResponse r;
  ASSERT_TRUE(Predict(Inputs(3), 0.25, &r, kPrivate, laplace, original).ok());
  EXPECT_EQ(Budget(kPrivate, successor).spent_epsilon(), 0.75);
  EXPECT_EQ(Budget(kPrivate, successor).dataset_id(), dataset_.id());
  EXPECT_EQ(Predict(Inputs(2), 0.25, &r, kPrivate2, laplace, successor).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  ASSERT_TRUE(Predict(Inputs(1), 0.25, &r, kPrivate2, laplace, successor).ok());
  EXPECT_EQ(Budget(kQuerier, original).remaining_quanta(), 0);
}

bool SameAnswer(const agt::v1::PrivatePredictResponse& a,
                const agt::v1::PrivatePredictResponse& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

TEST_F(PrivacyE2eTest, ARetriedRequestIdReturnsTheSameLabelsAndIsChargedOnce) {
  agt::v1::PrivatePredictResponse first;
  const agt::v1::PrivacyMechanism smooth = agt::v1::PRIVACY_MECHANISM_UNSPECIFIED;
  ASSERT_TRUE(Predict(Inputs(200), 0.25, &first, kPrivate, smooth, "", "retry-1").ok());
  EXPECT_EQ(first.budget().spent_epsilon(), 50.0);
  for (int retry = 0; retry < 3; ++retry) {
    agt::v1::PrivatePredictResponse again;
    ASSERT_TRUE(Predict(Inputs(200), 0.25, &again, kPrivate, smooth, "", "retry-1").ok());
    EXPECT_TRUE(SameAnswer(first, again)) << retry;
  }
  EXPECT_EQ(Budget(kPrivate).spent_epsilon(), 50.0);
  EXPECT_EQ(Budget(kPrivate).releases(), 200);
  // Without the id it is a new release: charged again, and fresh noise
  // (each label flips with probability close to 1/2 at this epsilon, so
  // 200 equal labels by chance is out of the question).
  agt::v1::PrivatePredictResponse fresh;
  ASSERT_TRUE(Predict(Inputs(200), 0.25, &fresh, kPrivate).ok());
  int differ = 0;
  for (int i = 0; i < 200; ++i) differ += fresh.labels(i).label() != first.labels(i).label();
  EXPECT_GT(differ, 0);
  EXPECT_EQ(Budget(kPrivate).spent_epsilon(), 100.0);  // the whole total
  // The same id for other content, from another token or another role is
  // refused: it neither charges nor shows the stored answer.
  agt::v1::PrivatePredictResponse r;
  for (const auto& [epsilon, token] : std::vector<std::pair<double, std::string>>{
           {0.5, kPrivate}, {0.25, kPrivate2}, {0.25, kQuerier}}) {
    const grpc::Status s = Predict(Inputs(200), epsilon, &r, token, smooth, "", "retry-1");
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << token;
    EXPECT_TRUE(absl::StrContains(s.error_message(), "retry-1")) << s.error_message();
  }
  // The budget is used up, the stored answer is still served, also after a
  // kill -9.
  server_->Signal(SIGKILL);
  ASSERT_NO_FATAL_FAILURE(StartServer(100.0));
  agt::v1::PrivatePredictResponse after;
  ASSERT_TRUE(Predict(Inputs(200), 0.25, &after, kPrivate, smooth, "", "retry-1").ok());
  EXPECT_TRUE(SameAnswer(first, after));
  EXPECT_EQ(Predict(Inputs(1), 0.25, &r, kPrivate).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(Budget(kPrivate).spent_quanta(), int64_t{100} << 40);
}

// Concurrent releases with request ids, the server killed -9 among them.
// The ledger never holds less than the charges of the answers clients
// received (charge and answer commit together); retrying every id then
// brings it to exactly the charges of all answers, each answered once.
TEST_F(PrivacyE2eTest, AKillAmongConcurrentReleasesLeavesAConsistentLedger) {
  ASSERT_NO_FATAL_FAILURE(StartServer(10'000.0));
  constexpr int kThreads = 6;
  constexpr int kRowsPer = 5;
  constexpr double kEpsilon = 0.125;
  const int64_t charge = kRowsPer * (int64_t{1} << 37);
  std::mutex mu;
  std::vector<std::string> sent;
  std::map<std::string, agt::v1::PrivatePredictResponse> received;
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        const std::string id = absl::StrCat("kill-", t, "-", i);
        {
          std::lock_guard<std::mutex> lock(mu);
          sent.push_back(id);
        }
        agt::v1::PrivatePredictResponse r;
        const grpc::Status s = Predict(Inputs(kRowsPer), kEpsilon, &r, kPrivate,
                                       agt::v1::PRIVACY_MECHANISM_UNSPECIFIED, "", id);
        if (!s.ok()) break;  // the server is gone
        std::lock_guard<std::mutex> lock(mu);
        received[id] = r;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  server_->Signal(SIGKILL);
  stop = true;
  for (std::thread& t : threads) t.join();
  ASSERT_GE(received.size(), 10u) << "the kill must land among many releases";

  ASSERT_NO_FATAL_FAILURE(StartServer(10'000.0));
  agt::v1::PrivacyBudget budget = Budget(kPrivate);
  EXPECT_EQ(budget.spent_quanta() % charge, 0);
  const int64_t committed = budget.spent_quanta() / charge;
  EXPECT_GE(committed, static_cast<int64_t>(received.size()));
  EXPECT_LE(committed, static_cast<int64_t>(sent.size()));
  EXPECT_EQ(budget.releases(), committed * kRowsPer);
  std::printf("kill -9 among releases: %zu sent, %zu answers received, %lld committed\n",
              sent.size(), received.size(), static_cast<long long>(committed));
  for (const std::string& id : sent) {
    agt::v1::PrivatePredictResponse r;
    const grpc::Status s = Predict(Inputs(kRowsPer), kEpsilon, &r, kPrivate,
                                   agt::v1::PRIVACY_MECHANISM_UNSPECIFIED, "", id);
    ASSERT_TRUE(s.ok()) << id << ": " << s.error_message();
    auto it = received.find(id);
    if (it != received.end()) {
      EXPECT_TRUE(SameAnswer(it->second, r)) << id;
    }
  }
  budget = Budget(kPrivate);
  EXPECT_EQ(budget.spent_quanta(), static_cast<int64_t>(sent.size()) * charge);
  EXPECT_EQ(budget.releases(), static_cast<int64_t>(sent.size()) * kRowsPer);
}

// /proc/<pid>/status "VmHWM" (peak resident set) in bytes.
int64_t PeakRssBytes(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return -1;
}

// User + system CPU seconds of a process (/proc/<pid>/stat fields 14, 15).
double CpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i >= 14) ticks += std::stod(field);
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Finding 2 for PrivatePredict: 700 raw features of degree 2 expand to
// 246 050 per row, about 2 MB; 1 000 rows at once needed 2 GB and failed as
// UNKNOWN (500 here, to keep the test short: 940 MiB at once). Rows are now certified in bounded chunks, so the server's peak
// memory does not follow the row count; and a call past its deadline stops
// and is charged nothing.
TEST_F(PrivacyE2eTest, AWideRequestIsServedInBoundedMemoryAndStopsAtItsDeadline) {
  constexpr int kFeatures = 700;
  constexpr int kRowsAtOnce = 500;
  std::string csv;
  for (int c = 0; c < kFeatures; ++c) absl::StrAppend(&csv, "x", c, ",");
  absl::StrAppend(&csv, "y\n");
  for (int row = 0; row < 40; ++row) {
    for (int c = 0; c < kFeatures; ++c) {
      absl::StrAppend(&csv, ((row * 7 + c * 13) % 17) / 17.0 - 0.5, ",");
    }
    absl::StrAppend(&csv, row % 2, "\n");
  }
  agt::v1::Dataset wide;
  ASSERT_TRUE(Upload(*client_, CsvMetadata("wide", 2), csv, &wide, kTrainer).ok());
  agt::v1::TrainingJobSpec spec = SubstitutionSpec(wide.id());
  spec.clear_hidden_widths();  // a linear model on the expanded features
  spec.set_polynomial_degree(2);
  spec.set_batch_size(20);
  spec.set_epochs(1);
  spec.clear_budgets();
  spec.add_budgets()->set_n(1);
  const std::string model = Train(spec);
  ASSERT_FALSE(model.empty());

  auto rows = [&](int n) {
    agt::v1::Matrix m;
    m.set_rows(n);
    m.set_cols(kFeatures);
    for (int i = 0; i < n; ++i) {
      for (int c = 0; c < kFeatures; ++c) m.add_values(((i * 3 + c * 5) % 11) / 11.0 - 0.5);
    }
    return m;
  };
  // A fresh process, so that its peak is this request's, not training's.
  ASSERT_NO_FATAL_FAILURE(StartServer(100.0));
  const pid_t pid = server_->pid();
  const int64_t peak_before = PeakRssBytes(pid);
  agt::v1::PrivatePredictResponse r;
  const auto start = std::chrono::steady_clock::now();
  grpc::Status s = Predict(rows(kRowsAtOnce), 0.01, &r, kQuerier,
                           agt::v1::PRIVACY_MECHANISM_UNSPECIFIED, model);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.labels_size(), kRowsAtOnce);
  const int64_t peak_after = PeakRssBytes(pid);
  std::printf("%d rows x 246050 expanded features: %.2f s, server peak RSS %.0f MiB before, "
              "%.0f MiB after (all rows at once: >= %.0f MiB for the expansion alone)\n",
              kRowsAtOnce, seconds, peak_before / 1048576.0, peak_after / 1048576.0,
              kRowsAtOnce * 246050.0 * 8 / 1048576.0);
  // Chunks of kCertifyWorkingBytes (64 MiB) plus the request and the model.
  EXPECT_LT(peak_after - peak_before, int64_t{400} << 20);
  const int64_t spent = Budget(kQuerier, model).spent_quanta();

  // A deadline far shorter than the work: DEADLINE_EXCEEDED, the server
  // stops within a chunk, and nothing is charged.
  const agt::v1::Matrix big = rows(4000);
  agt::v1::PrivatePredictRequest request;
  request.set_model_id(model);
  *request.mutable_inputs() = big;
  request.set_epsilon(0.01);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(400));
  context.AddMetadata("authorization", std::string("Bearer ") + kQuerier);
  s = privacy_->PrivatePredict(&context, request, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << s.error_message();
  const double cpu_at_deadline = CpuSeconds(pid);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const double cpu_after = CpuSeconds(pid) - cpu_at_deadline;
  std::printf("4000 rows with a 0.4 s deadline: server CPU %.2f s in the 1.5 s after it "
              "(the whole request: about %.1f s)\n",
              cpu_after, 4000.0 / kRowsAtOnce * seconds);
  EXPECT_LT(cpu_after, 0.75);
  EXPECT_EQ(Budget(kQuerier, model).spent_quanta(), spent);

  // A call with a generous deadline of its own stops at the server's
  // --default-deadline when that is earlier.
  ASSERT_NO_FATAL_FAILURE(StartServer(100.0, {"--default-deadline", "0.5"}));
  s = Predict(big, 0.01, &r, kQuerier, agt::v1::PRIVACY_MECHANISM_UNSPECIFIED, model);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), "--default-deadline")) << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), "nothing was charged")) << s.error_message();
  EXPECT_EQ(Budget(kQuerier, model).spent_quanta(), spent);
}

}  // namespace
}  // namespace agt::e2e
