// agt.v1.PrivacyService end to end against the real agt-server: private
// labels with the n* of the certificates and the guarantee, released label
// frequencies against the Cauchy and Laplace CDFs, the budget ledger (all or
// nothing, per client and model, across restarts, under concurrent
// requests), which mechanism each model admits, the private-querier role,
// and bad inputs of every RPC.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <memory>
#include <numbers>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
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

  void StartServer(double budget) {
    client_.reset();
    server_.reset();
    server_ = std::make_unique<ServerProcess>();
    ASSERT_TRUE(server_->Start(
        ServerArgs(dir_->File("p.db"),
                   {"--tokens", dir_->File("tokens"), "--privacy-budget", absl::StrCat(budget)}),
        dir_->File("server.err")))
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
                       const std::string& model = "") {
    agt::v1::PrivatePredictRequest request;
    request.set_model_id(model.empty() ? model_id_ : model);
    *request.mutable_inputs() = inputs;
    request.set_epsilon(epsilon);
    request.set_mechanism(mechanism);
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
  EXPECT_DOUBLE_EQ(r.budget().total_epsilon(), 100.0);
  EXPECT_DOUBLE_EQ(r.budget().spent_epsilon(), 30.0);
  EXPECT_DOUBLE_EQ(r.budget().remaining_epsilon(), 70.0);
  EXPECT_EQ(r.budget().releases(), 60);
  EXPECT_EQ(r.budget().client(), "analyst");
  for (const char* part : {"Theorem 11", "0.5-differentially private", "compose", "Cauchy",
                           "per batch", "initialisation"}) {
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
  ASSERT_TRUE(Predict(Inputs(6), 0.1, &r).ok());  // 0.6
  grpc::Status s = Predict(Inputs(5), 0.1, &r);   // 1.1 > 1
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  for (const char* part : {"analyst", "nothing was spent", "0.5"}) {
    EXPECT_TRUE(absl::StrContains(s.error_message(), part)) << part << ": " << s.error_message();
  }
  agt::v1::PrivacyBudget budget = Budget();
  EXPECT_NEAR(budget.spent_epsilon(), 0.6, 1e-12);
  EXPECT_EQ(budget.releases(), 6);
  // Exactly the rest still fits (ten spends of 0.1 make 1 despite rounding).
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(Predict(Inputs(1), 0.1, &r).ok()) << i;
  budget = Budget();
  EXPECT_NEAR(budget.spent_epsilon(), 1.0, 1e-12);
  EXPECT_EQ(budget.remaining_epsilon(), 0.0);
  EXPECT_EQ(Predict(Inputs(1), 1e-6, &r).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // A request refused for its input spends nothing either.
  agt::v1::Matrix bad = Inputs(1);
  bad.set_values(0, std::nan(""));
  EXPECT_EQ(Predict(bad, 1e-6, &r, kPrivate).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Budget(kPrivate).spent_epsilon(), 0.0);
}

TEST_F(PrivacyE2eTest, BudgetsArePerClientAndModelAndSurviveRestarts) {
  agt::v1::PrivatePredictResponse r;
  ASSERT_TRUE(Predict(Inputs(4), 0.25, &r, kPrivate).ok());
  ASSERT_TRUE(Predict(Inputs(2), 0.25, &r, kPrivate2).ok());
  const std::string second = Train(SubstitutionSpec(dataset_.id()));
  ASSERT_TRUE(
      Predict(Inputs(1), 2.0, &r, kPrivate, agt::v1::PRIVACY_MECHANISM_UNSPECIFIED, second).ok());
  EXPECT_DOUBLE_EQ(Budget(kPrivate).spent_epsilon(), 1.0);
  EXPECT_EQ(Budget(kPrivate).client(), "app one");
  EXPECT_DOUBLE_EQ(Budget(kPrivate2).spent_epsilon(), 0.5);
  EXPECT_DOUBLE_EQ(Budget(kPrivate, second).spent_epsilon(), 2.0);
  EXPECT_DOUBLE_EQ(Budget(kQuerier).spent_epsilon(), 0.0);

  // SIGTERM, then kill -9: what was committed stays.
  EXPECT_EQ(server_->Signal(SIGTERM), 0);
  ASSERT_NO_FATAL_FAILURE(StartServer(100.0));
  EXPECT_DOUBLE_EQ(Budget(kPrivate).spent_epsilon(), 1.0);
  ASSERT_TRUE(Predict(Inputs(2), 0.5, &r, kPrivate).ok());
  server_->Signal(SIGKILL);
  // A new total applies to what remains.
  ASSERT_NO_FATAL_FAILURE(StartServer(2.5));
  agt::v1::PrivacyBudget budget = Budget(kPrivate);
  EXPECT_DOUBLE_EQ(budget.spent_epsilon(), 2.0);
  EXPECT_DOUBLE_EQ(budget.total_epsilon(), 2.5);
  EXPECT_DOUBLE_EQ(budget.remaining_epsilon(), 0.5);
  EXPECT_EQ(budget.releases(), 6);
  EXPECT_EQ(Predict(Inputs(2), 0.5, &r, kPrivate).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
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
        const grpc::Status s = Predict(Inputs(1), 0.05, &r, kPrivate);
        if (s.ok()) {
          ++granted;
          if (r.budget().spent_epsilon() > 1.0 + 1e-9) ++other;
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
  EXPECT_EQ(granted.load(), 20);  // 20 x 0.05 = 1
  EXPECT_EQ(refused.load(), kThreads * kPerThread - 20);
  const agt::v1::PrivacyBudget budget = Budget(kPrivate);
  EXPECT_NEAR(budget.spent_epsilon(), 1.0, 1e-12);
  EXPECT_EQ(budget.releases(), 20);
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
  for (double epsilon : {0.0, -1.0, std::nan(""), HUGE_VAL, 1e308}) {
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
  for (const char* bad : {"-1", "nan", "inf", "lots"}) {
    std::string out;
    std::string err;
    const int code = RunServerCommand(
        {"--listen", "127.0.0.1:0", "--db", dir_->File("bad.db"), "--privacy-budget", bad}, "",
        &out, &err, *dir_);
    EXPECT_EQ(code, 2) << bad;
    EXPECT_TRUE(absl::StrContains(err, "--privacy-budget")) << err;
  }
}

}  // namespace
}  // namespace agt::e2e
