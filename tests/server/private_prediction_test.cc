// The private-prediction domain layer on hand-built models whose boxes make
// chosen inputs stable at chosen budgets: n* per input, which mechanism each
// kind of model admits (and the refusals, which name the alternative), input
// validation before anything is drawn (an epsilon below the ledger's quantum,
// a row too large to certify), chunked certification, the release with a
// scripted noise source, withheld fields, and the guarantee text.
#include "server/domain/private_prediction.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agt/v1/training.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace agt::server {
namespace {

using ::testing::HasSubstr;

// Returns the scripted uniforms in order (then 1/2, which is zero noise)
// and counts the draws.
class ScriptedUniform : public agt::UniformSource {
 public:
  explicit ScriptedUniform(std::vector<double> values) : values_(std::move(values)) {}
  double Uniform() override {
    ++draws_;
    return next_ < values_.size() ? values_[next_++] : 0.5;
  }
  int draws() const { return draws_; }

 private:
  std::vector<double> values_;
  size_t next_ = 0;
  int draws_ = 0;
};

agt::v1::TrainingJobSpec SpecFor(agt::v1::PerturbationKind kind, double clip, double momentum) {
  agt::v1::TrainingJobSpec spec;
  spec.set_name("hand-built");
  spec.set_loss(agt::v1::LOSS_BINARY_CROSS_ENTROPY);
  spec.mutable_perturbation()->set_kind(kind);
  spec.set_clip_gamma(clip);
  spec.mutable_optimizer()->set_learning_rate(0.1);
  spec.mutable_optimizer()->set_momentum(momentum);
  return spec;
}

// A linear binary model y = w0 x0 + w1 x1 + b with nominal w = (1, 0), b = 0
// and boxes (listed out of order, as a job may list its budgets):
//   n = 2: w0 in [0.5, 1.5], w1 in [-1, 1],     b in [-0.6, 0.6]
//   n = 1: w0 in [0.9, 1.1], w1 in [-0.1, 0.1], b in [-0.1, 0.1]
// So x = (1, 0) is stable at n = 1 only (n* = 1), x = (3, 0) at both
// (n* = 2), x = (0.05, 0) at neither (n* = 0), and x = (-3, 0) has n* = 2
// with prediction 0.
ModelRecord LinearModel(agt::v1::PerturbationKind kind = agt::v1::PERTURBATION_KIND_SUBSTITUTION,
                        double clip = 1.0, double momentum = 0.0) {
  ModelRecord m;
  m.id = "mdl-hand";
  m.tenant = "t";
  m.spec = SpecFor(kind, clip, momentum).SerializeAsString();
  m.architecture = agt::ModelSpec::Mlp({2, 1});
  m.input_features = 2;
  m.num_classes = 2;
  m.nominal = agt::Vector::Zero(3);
  m.nominal[0] = 1.0;
  auto box = [](int n, double w0, double w1, double b) {
    BoxRecord r;
    r.budget = {n, 0};
    r.box.lower = agt::Vector(3);
    r.box.upper = agt::Vector(3);
    r.box.lower << 1.0 - w0, -w1, -b;
    r.box.upper << 1.0 + w0, w1, b;
    return r;
  };
  m.boxes = {box(2, 0.5, 1.0, 0.6), box(1, 0.1, 0.1, 0.1)};
  return m;
}

agt::v1::Matrix Points(const std::vector<std::vector<double>>& rows) {
  agt::v1::Matrix m;
  m.set_rows(static_cast<int64_t>(rows.size()));
  m.set_cols(rows.empty() ? 0 : static_cast<int64_t>(rows[0].size()));
  for (const auto& r : rows) {
    for (double v : r) m.add_values(v);
  }
  return m;
}

const agt::v1::Matrix kFour = Points({{1, 0}, {3, 0}, {0.05, 0}, {-3, 0}});

TEST(PrivatePredictionTest, NStarIsTheLargestStableBudget) {
  absl::StatusOr<PreparedRelease> p =
      PreparePrivatePrediction(LinearModel(), kFour, 0.5, agt::v1::PRIVACY_MECHANISM_UNSPECIFIED);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->mechanism, agt::v1::PRIVACY_MECHANISM_SMOOTH_SENSITIVITY);
  EXPECT_EQ(p->n_star, (std::vector<int>{1, 2, 0, 2}));
  EXPECT_EQ(p->predicted, (std::vector<int>{1, 1, 1, 0}));
  EXPECT_EQ(p->quanta, int64_t{2} << 40);  // 4 labels x 0.5, in quanta of 2^-40
}

TEST(PrivatePredictionTest, ZeroNoiseReleasesTheNominalLabelsWithTheirGuarantee) {
  absl::StatusOr<PreparedRelease> p = PreparePrivatePrediction(
      LinearModel(), kFour, 0.5, agt::v1::PRIVACY_MECHANISM_SMOOTH_SENSITIVITY);
  ASSERT_TRUE(p.ok()) << p.status();
  ScriptedUniform noise({});  // every draw 1/2: zero noise
  const agt::v1::PrivatePredictResponse r = ReleasePrivatePrediction(*p, true, noise);
  EXPECT_EQ(noise.draws(), 4);
  ASSERT_EQ(r.labels_size(), 4);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(r.labels(i).label(), p->predicted[i]);
    EXPECT_EQ(r.labels(i).n_star(), p->n_star[i]);
    const double ss = std::exp(-0.5 * p->n_star[i] / 6.0);
    EXPECT_DOUBLE_EQ(r.labels(i).sensitivity(), ss);
    EXPECT_DOUBLE_EQ(r.labels(i).noise_scale(), 6.0 * ss / 0.5);
  }
  EXPECT_EQ(r.mechanism(), agt::v1::PRIVACY_MECHANISM_SMOOTH_SENSITIVITY);
  EXPECT_DOUBLE_EQ(r.epsilon_per_label(), 0.5);
  EXPECT_DOUBLE_EQ(r.epsilon_spent(), 2.0);
  const std::string text = PrivacyGuaranteeText(LinearModel(), *p, true);
  EXPECT_THAT(text, HasSubstr("0.5-differentially private"));
  EXPECT_THAT(text, HasSubstr("Theorem 11"));
  EXPECT_THAT(text, HasSubstr("reported per label"));
  EXPECT_THAT(PrivacyGuaranteeText(LinearModel(), *p, false), HasSubstr("withheld"));
}

TEST(PrivatePredictionTest, LargeNoiseFlipsAndWithheldFieldsAreMinusOne) {
  absl::StatusOr<PreparedRelease> p =
      PreparePrivatePrediction(LinearModel(), kFour, 0.5, agt::v1::PRIVACY_MECHANISM_UNSPECIFIED);
  ASSERT_TRUE(p.ok());
  // u near 0: a large negative Cauchy draw turns 1 into 0; near 1 the reverse.
  ScriptedUniform noise({1e-6, 1e-6, 1e-6, 1 - 1e-6});
  const agt::v1::PrivatePredictResponse r = ReleasePrivatePrediction(*p, false, noise);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(r.labels(i).label(), 1 - p->predicted[i]) << i;
    EXPECT_EQ(r.labels(i).n_star(), -1);
    EXPECT_EQ(r.labels(i).sensitivity(), -1.0);
    EXPECT_EQ(r.labels(i).noise_scale(), -1.0);
  }
}

TEST(PrivatePredictionTest, GlobalMechanismsIgnoreTheCertificates) {
  absl::StatusOr<PreparedRelease> laplace = PreparePrivatePrediction(
      LinearModel(), kFour, 2.0, agt::v1::PRIVACY_MECHANISM_GLOBAL_LAPLACE);
  ASSERT_TRUE(laplace.ok());
  EXPECT_EQ(laplace->n_star, (std::vector<int>{0, 0, 0, 0}));
  ScriptedUniform noise({});
  agt::v1::PrivatePredictResponse r = ReleasePrivatePrediction(*laplace, true, noise);
  EXPECT_DOUBLE_EQ(r.labels(0).noise_scale(), 0.5);
  EXPECT_DOUBLE_EQ(r.labels(0).sensitivity(), 1.0);
  EXPECT_THAT(PrivacyGuaranteeText(LinearModel(), *laplace, true), HasSubstr("no certificate"));

  absl::StatusOr<PreparedRelease> argmax = PreparePrivatePrediction(
      LinearModel(), kFour, 2.0, agt::v1::PRIVACY_MECHANISM_REPORT_NOISY_ARGMAX);
  ASSERT_TRUE(argmax.ok());
  ScriptedUniform two_per_label({});
  r = ReleasePrivatePrediction(*argmax, true, two_per_label);
  EXPECT_EQ(two_per_label.draws(), 8);               // one per class and label
  EXPECT_DOUBLE_EQ(r.labels(0).noise_scale(), 1.0);  // 2 / epsilon
  for (int i = 0; i < 4; ++i) EXPECT_EQ(r.labels(i).label(), argmax->predicted[i]);
}

TEST(PrivatePredictionTest, SmoothSensitivityIsRefusedWhereTheorem11DoesNotApply) {
  struct Case {
    ModelRecord model;
    const char* why;
  };
  ModelRecord three_classes = LinearModel();
  three_classes.num_classes = 3;
  ModelRecord no_boxes = LinearModel();
  no_boxes.boxes.clear();
  const Case cases[] = {
      {LinearModel(agt::v1::PERTURBATION_KIND_REMOVAL), "PERTURBATION_KIND_REMOVAL"},
      {LinearModel(agt::v1::PERTURBATION_KIND_POISONING), "PERTURBATION_KIND_POISONING"},
      {LinearModel(agt::v1::PERTURBATION_KIND_SUBSTITUTION, 0.0), "clipping"},
      {LinearModel(agt::v1::PERTURBATION_KIND_SUBSTITUTION, 1.0, 0.9), "momentum"},
      {three_classes, "PRIVACY_MECHANISM_REPORT_NOISY_ARGMAX"},
      {no_boxes, "no parameter boxes"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<agt::v1::PrivacyMechanism> m =
        ResolveMechanism(c.model, agt::v1::PRIVACY_MECHANISM_UNSPECIFIED);
    EXPECT_EQ(m.status().code(), absl::StatusCode::kFailedPrecondition) << c.why;
    EXPECT_THAT(m.status().message(), HasSubstr(c.why));
    EXPECT_THAT(m.status().message(), HasSubstr("mdl-hand"));
  }
  // Binary models that are refused name the Laplace baseline, which works.
  absl::StatusOr<agt::v1::PrivacyMechanism> m = ResolveMechanism(
      LinearModel(agt::v1::PERTURBATION_KIND_REMOVAL), agt::v1::PRIVACY_MECHANISM_UNSPECIFIED);
  EXPECT_THAT(m.status().message(), HasSubstr("PRIVACY_MECHANISM_GLOBAL_LAPLACE"));
  EXPECT_TRUE(ResolveMechanism(LinearModel(agt::v1::PERTURBATION_KIND_REMOVAL),
                               agt::v1::PRIVACY_MECHANISM_GLOBAL_LAPLACE)
                  .ok());
  // Three classes: Laplace is binary only; report-noisy-argmax works.
  EXPECT_EQ(
      ResolveMechanism(three_classes, agt::v1::PRIVACY_MECHANISM_GLOBAL_LAPLACE).status().code(),
      absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(ResolveMechanism(three_classes, agt::v1::PRIVACY_MECHANISM_REPORT_NOISY_ARGMAX).ok());
  // Regression: nothing.
  ModelRecord regression = LinearModel();
  regression.num_classes = 0;
  for (auto mech :
       {agt::v1::PRIVACY_MECHANISM_UNSPECIFIED, agt::v1::PRIVACY_MECHANISM_GLOBAL_LAPLACE,
        agt::v1::PRIVACY_MECHANISM_REPORT_NOISY_ARGMAX}) {
    EXPECT_EQ(ResolveMechanism(regression, mech).status().code(),
              absl::StatusCode::kFailedPrecondition);
  }
  // Unknown enum values and an unparsable spec.
  EXPECT_EQ(
      ResolveMechanism(LinearModel(), static_cast<agt::v1::PrivacyMechanism>(9)).status().code(),
      absl::StatusCode::kInvalidArgument);
  ModelRecord corrupt = LinearModel();
  corrupt.spec = "\xff\xff\xff";
  EXPECT_EQ(ResolveMechanism(corrupt, agt::v1::PRIVACY_MECHANISM_UNSPECIFIED).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(PrivatePredictionTest, BadRequestsAreRefusedBeforeAnythingIsDrawn) {
  const ModelRecord model = LinearModel();
  auto code = [&](const agt::v1::Matrix& inputs, double epsilon) {
    return PreparePrivatePrediction(model, inputs, epsilon, agt::v1::PRIVACY_MECHANISM_UNSPECIFIED)
        .status()
        .code();
  };
  for (double epsilon : {0.0, -0.1, std::nan(""), HUGE_VAL}) {
    EXPECT_EQ(code(kFour, epsilon), absl::StatusCode::kInvalidArgument) << epsilon;
  }
  EXPECT_EQ(code(kFour, 1e308), absl::StatusCode::kInvalidArgument);  // 4e308 overflows
  // Below the ledger's quantum 2^-40: no exact charge exists.
  const absl::Status tiny =
      PreparePrivatePrediction(model, kFour, 1e-21, agt::v1::PRIVACY_MECHANISM_UNSPECIFIED)
          .status();
  EXPECT_EQ(tiny.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tiny.message(), HasSubstr("quantum"));
  EXPECT_EQ(code(agt::v1::Matrix(), 1.0), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Points({{1, 2, 3}}), 1.0), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Points({{1, std::nan("")}}), 1.0), absl::StatusCode::kInvalidArgument);
  agt::v1::Matrix too_many;
  too_many.set_rows(kMaxPrivateRows + 1);
  too_many.set_cols(2);
  too_many.mutable_values()->Resize(2 * (kMaxPrivateRows + 1), 0.0);
  absl::Status s =
      PreparePrivatePrediction(model, too_many, 1e-9, agt::v1::PRIVACY_MECHANISM_UNSPECIFIED)
          .status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("inputs.rows"));
}

// Rows are certified in chunks (kMaxCertifyChunkRows for this small model):
// a request of several chunks gets the same n* and predictions, row for
// row, as the four rows alone, and keep_going is asked before every chunk.
TEST(PrivatePredictionTest, ChunkedRowsGetTheSameCertificatesAndStopWhenAsked) {
  constexpr int kRepeats = 2500;  // 10 000 rows
  agt::v1::Matrix many;
  many.set_rows(4 * kRepeats);
  many.set_cols(kFour.cols());
  for (int r = 0; r < kRepeats; ++r) {
    for (double v : kFour.values()) many.add_values(v);
  }
  absl::StatusOr<int64_t> chunk = CertifyChunkRows(LinearModel(), kCertifyWorkingBytes);
  ASSERT_TRUE(chunk.ok()) << chunk.status();
  const int64_t chunks = (4 * kRepeats + *chunk - 1) / *chunk;
  ASSERT_GE(chunks, 2);
  int asked = 0;
  absl::StatusOr<PreparedRelease> p = PreparePrivatePrediction(
      LinearModel(), many, 0.5, agt::v1::PRIVACY_MECHANISM_UNSPECIFIED, [&] {
        ++asked;
        return absl::OkStatus();
      });
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(asked, chunks);
  ASSERT_EQ(p->n_star.size(), 4u * kRepeats);
  for (int i = 0; i < 4 * kRepeats; ++i) {
    ASSERT_EQ(p->n_star[i], (std::vector<int>{1, 2, 0, 2})[i % 4]) << i;
    ASSERT_EQ(p->predicted[i], (std::vector<int>{1, 1, 1, 0})[i % 4]) << i;
  }
  EXPECT_EQ(p->quanta, int64_t{4 * kRepeats} << 39);  // x 0.5
  // A stop asked for after the first chunk ends the work with its status.
  asked = 0;
  const absl::Status stopped =
      PreparePrivatePrediction(LinearModel(), many, 0.5, agt::v1::PRIVACY_MECHANISM_UNSPECIFIED,
                               [&] {
                                 return ++asked > 1 ? absl::DeadlineExceededError("late")
                                                    : absl::OkStatus();
                               })
          .status();
  EXPECT_EQ(stopped.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(asked, 2);
}

TEST(PrivatePredictionTest, AModelWhoseOneRowDoesNotFitIsRefusedUpFront) {
  ModelRecord wide = LinearModel();
  wide.input_features = 3000;  // degree 2: 4 504 500 features, ~430 MB a row
  wide.polynomial_degree = 2;
  ASSERT_GT(CertifyRowBytes(wide), kCertifyWorkingBytes);
  agt::v1::Matrix one;
  one.set_rows(1);
  one.set_cols(3000);
  one.mutable_values()->Resize(3000, 0.0);
  const absl::Status s =
      PreparePrivatePrediction(wide, one, 0.5, agt::v1::PRIVACY_MECHANISM_UNSPECIFIED).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat(CertifyRowBytes(wide))));
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat(kCertifyWorkingBytes)));
}

}  // namespace
}  // namespace agt::server
