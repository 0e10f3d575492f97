// Property tests that try to break the certified parameter boxes by training
// for real (paper section 5.2, eq. 13; Theorems 6, 8, 9): for every
// perturbation model, loss and model kind, a perturbed-SGD harness
// (perturbed_sgd.h, campaigns in soundness_harness.h) retrains with online
// adversaries (adversaries.h) that change every batch within the budget, and
// every step's parameters, and the final model's test logits, must lie in
// the trainer's box for that budget (and for every larger budget of the same
// training).
//
// Adversaries: random choices (seeded, different every step), loss-driven
// heuristics (drop / flip / push towards the rows of largest loss, input
// corners along the sign of the loss's input gradient), and greedy attacks on
// one parameter (the per-step choice that moves that parameter's mean gradient
// the most, which is exactly what the per-parameter aggregation bounds), with
// the target parameter fixed for the run or changed every step.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "core/bounds/ibp.h"
#include "core/certify/certify.h"
#include "core/common/rng.h"
#include "core/data/dataset.h"
#include "core/loss/loss.h"
#include "core/model/model.h"
#include "core/train/train.h"
#include "tests/core/adversaries.h"
#include "tests/core/perturbed_sgd.h"
#include "tests/core/soundness_harness.h"

namespace agt_test {
namespace {

using agt::Budget;
using agt::Dataset;
using agt::LossKind;
using agt::ModelSpec;
using agt::PerturbationKind;
using agt::TrainConfig;

// ---------------------------------------------------------------------------
// Bookkeeping: how many perturbed trainings each category ran.

std::map<std::string, int>& RunCounts() {
  static std::map<std::string, int> counts;
  return counts;
}

class RunCountReporter : public ::testing::Environment {
 public:
  void TearDown() override {
    int total = 0;
    std::printf("[soundness] perturbed trainings by category:\n");
    for (const auto& [category, count] : RunCounts()) {
      std::printf("[soundness]   %-44s %5d\n", category.c_str(), count);
      total += count;
    }
    std::printf("[soundness]   %-44s %5d\n", "total", total);
  }
};

[[maybe_unused]] ::testing::Environment* const kReporter =
    ::testing::AddGlobalTestEnvironment(new RunCountReporter);

// ---------------------------------------------------------------------------
// Data: small datasets, training rows first, test rows after.

Data SplitRows(const Dataset& all, Index n_train) {
  return Data{all.Slice(0, n_train), all.Slice(n_train, all.size())};
}

Data Moons(int degree) {
  Dataset all = agt::MakeMoons(120, 0.1, 11);
  if (degree > 1) all.x = agt::PolynomialFeatures(all.x, degree);
  return SplitRows(all, 80);
}

Data Blobs(int dim) { return SplitRows(agt::MakeBlobs(135, dim, 3, 0.8, 3.0, 21), 90); }

// y = 0.8 x0 - 0.5 x1 + 0.3 sin(3 x2) + noise, x uniform in [-1, 1]^3.
Data Regression() {
  agt::Rng rng(31);
  Dataset all;
  all.num_classes = 0;
  all.x.resize(120, 3);
  all.y.resize(120);
  for (Index i = 0; i < all.x.rows(); ++i) {
    for (Index j = 0; j < 3; ++j) all.x(i, j) = rng.Uniform(-1.0, 1.0);
    all.y(i) = 0.8 * all.x(i, 0) - 0.5 * all.x(i, 1) + 0.3 * std::sin(3.0 * all.x(i, 2)) +
               0.05 * rng.Normal();
  }
  return SplitRows(all, 80);
}

ModelSpec Linear(int in, int out) { return agt::ModelSpec::Mlp({in, out}); }

// ---------------------------------------------------------------------------
// The campaign (soundness_harness.h): one certified training, many perturbed
// retrainings, by the adversaries of adversaries.h.

void RunCampaign(const Campaign& c) {
  HarnessOptions options;
  options.budget_done = [&c](size_t j, const BudgetOutcome& outcome) {
    RunCounts()[c.group + "/" + c.name] += outcome.runs;
    std::printf("[soundness] %-70s runs %3d  width %10.4g  attacks reached %5.1f%% of the box\n",
                Describe(c, c.config.budgets[j]).c_str(), outcome.runs, outcome.width,
                100.0 * outcome.max_reach);
  };
  RunCampaignWith(c, options);
}

// ---------------------------------------------------------------------------
// Removal (unlearning), Theorem 6.

Campaign RemovalCampaign(const std::string& name, const ModelSpec& model, LossKind loss, Data data,
                         int batch_size, int epochs, double lr) {
  Campaign c{"removal", name, Config(model, loss, batch_size, epochs, lr), std::move(data)};
  c.config.perturbation.kind = PerturbationKind::kRemoval;
  c.config.budgets = {{0, 0}, {1, 0}, {2, 0}, {4, 0}};
  return c;
}

TEST(RemovalSoundness, RemovalBoundsContainEveryRetrainingWithoutNRowsPerBatch_LinearBce) {
  Campaign c = RemovalCampaign("linear-bce", Linear(9, 1), LossKind::kBinaryCrossEntropy, Moons(3),
                               20, 3, 0.1);
  c.config.optimizer.lr_decay = 0.1;
  c.config.optimizer.lr_min = 0.02;
  c.seeds = 5;
  RunCampaign(c);
}

TEST(RemovalSoundness, RemovalBoundsContainEveryRetrainingWithoutNRowsPerBatch_LinearHingeL2) {
  Campaign c =
      RemovalCampaign("linear-hinge", Linear(2, 1), LossKind::kHinge, Moons(1), 16, 3, 0.1);
  c.config.optimizer.l2 = 0.01;
  RunCampaign(c);
}

TEST(RemovalSoundness, RemovalBoundsContainEveryRetrainingWithoutNRowsPerBatch_MlpCrossEntropy) {
  Campaign c = RemovalCampaign("mlp-ce", ModelSpec::Mlp({2, 8, 8, 3}), LossKind::kCrossEntropy,
                               Blobs(2), 30, 2, 0.05);
  c.config.optimizer.l2 = 0.005;
  RunCampaign(c);
}

TEST(RemovalSoundness, RemovalBoundsContainEveryRetrainingWithoutNRowsPerBatch_LinearMse) {
  Campaign c =
      RemovalCampaign("linear-mse", Linear(3, 1), LossKind::kMse, Regression(), 20, 3, 0.1);
  c.config.optimizer.lr_decay = 0.2;
  c.config.optimizer.lr_min = 0.05;
  RunCampaign(c);
}

TEST(RemovalSoundness, RemovalBoundsContainEveryRetrainingWithoutNRowsPerBatch_MlpMse) {
  Campaign c = RemovalCampaign("mlp-mse", ModelSpec::Mlp({3, 8, 8, 1}), LossKind::kMse,
                               Regression(), 20, 2, 0.05);
  c.config.optimizer.l2 = 0.01;
  RunCampaign(c);
}

TEST(RemovalSoundness, RemovalBoundsContainEveryRetrainingWithClippingAndL1) {
  Campaign c = RemovalCampaign("linear-bce-clip-l1", Linear(9, 1), LossKind::kBinaryCrossEntropy,
                               Moons(3), 20, 3, 0.1);
  c.config.clip_gamma = 0.3;
  c.config.optimizer.l1 = 0.01;
  RunCampaign(c);
}

// A strong L1 pulls weights onto zero, where they oscillate in (-s, s) and
// their boxes straddle 0: the case the L1 box rule treats separately.
TEST(RemovalSoundness, RemovalBoundsContainEveryRetrainingWithStrongL1AcrossZero) {
  Campaign c = RemovalCampaign("linear-bce-strong-l1", Linear(9, 1), LossKind::kBinaryCrossEntropy,
                               Moons(3), 10, 4, 0.2);
  c.config.optimizer.l1 = 0.2;
  c.config.budgets = {{0, 0}, {1, 0}, {2, 0}};
  c.seeds = 5;
  RunCampaign(c);
}

// The tighter interval products must stay sound too (goldens README, semantics 1).
TEST(RemovalSoundness, RemovalBoundsContainEveryRetrainingWithNguyenMatMul_MlpCe) {
  Campaign c = RemovalCampaign("mlp-ce-nguyen", ModelSpec::Mlp({2, 8, 8, 3}),
                               LossKind::kCrossEntropy, Blobs(2), 30, 2, 0.05);
  c.config.bounds.interval.product = agt::MatMulMethod::kNguyen;
  RunCampaign(c);
}

// ---------------------------------------------------------------------------
// Substitution (privacy) with clamp clipping, Theorem 8.

Campaign SubstitutionCampaign(const std::string& name, const ModelSpec& model, LossKind loss,
                              Data data, int batch_size, int epochs, double lr, double gamma) {
  Campaign c{"substitution", name, Config(model, loss, batch_size, epochs, lr), std::move(data)};
  c.config.perturbation.kind = PerturbationKind::kSubstitution;
  c.config.clip_gamma = gamma;
  c.config.budgets = {{0, 0}, {1, 0}, {3, 0}};
  return c;
}

TEST(SubstitutionSoundness, SubstitutionBoundsContainEveryRetrainingWithNRowsReplaced_LinearBce) {
  Campaign c = SubstitutionCampaign("linear-bce", Linear(2, 1), LossKind::kBinaryCrossEntropy,
                                    Moons(1), 20, 3, 0.2, 0.5);
  c.seeds = 5;
  RunCampaign(c);
}

TEST(SubstitutionSoundness, SubstitutionBoundsContainEveryRetrainingWithNRowsReplaced_LinearHinge) {
  Campaign c = SubstitutionCampaign("linear-hinge", Linear(9, 1), LossKind::kHinge, Moons(3), 20, 3,
                                    0.05, 0.5);
  c.config.optimizer.lr_decay = 0.1;
  RunCampaign(c);
}

TEST(SubstitutionSoundness, SubstitutionBoundsContainEveryRetrainingWithNRowsReplaced_MlpCe) {
  Campaign c = SubstitutionCampaign("mlp-ce", ModelSpec::Mlp({2, 8, 8, 3}), LossKind::kCrossEntropy,
                                    Blobs(2), 30, 2, 0.05, 0.2);
  c.config.optimizer.l2 = 0.01;
  RunCampaign(c);
}

TEST(SubstitutionSoundness, SubstitutionBoundsContainEveryRetrainingWithNRowsReplaced_LinearMse) {
  Campaign c = SubstitutionCampaign("linear-mse", Linear(3, 1), LossKind::kMse, Regression(), 20, 3,
                                    0.1, 1.0);
  c.config.optimizer.lr_decay = 0.2;
  c.config.optimizer.lr_min = 0.02;
  RunCampaign(c);
}

// ---------------------------------------------------------------------------
// Bounded poisoning, Theorem 9.

Campaign PoisoningCampaign(const std::string& name, const ModelSpec& model, LossKind loss,
                           Data data, int batch_size, int epochs, double lr) {
  Campaign c{"poisoning", name, Config(model, loss, batch_size, epochs, lr), std::move(data)};
  c.config.perturbation.kind = PerturbationKind::kBoundedPoisoning;
  return c;
}

void FeaturesOnly(Campaign* c, double epsilon) {
  c->config.perturbation.epsilon = epsilon;
  c->config.budgets = {{0, 0}, {1, 0}, {2, 0}, {5, 0}};
}

void LabelsOnly(Campaign* c, int target_class, double nu) {
  c->config.perturbation.label = agt::LabelPerturbation{true, target_class, nu};
  c->config.budgets = {{0, 0}, {0, 1}, {0, 3}};
}

void FeaturesAndLabels(Campaign* c, double epsilon, int target_class, double nu, bool paired) {
  c->config.perturbation.epsilon = epsilon;
  c->config.perturbation.label = agt::LabelPerturbation{true, target_class, nu};
  c->config.perturbation.paired = paired;
  c->config.budgets = paired ? std::vector<Budget>{{1, 1}, {2, 2}, {2, 3}}
                             : std::vector<Budget>{{1, 1}, {2, 1}, {2, 2}};
}

TEST(PoisoningSoundness, FeaturePoisoningBoundsContainEveryRetrainingInTheBall_LinearBce) {
  Campaign c = PoisoningCampaign("features/linear-bce", Linear(9, 1), LossKind::kBinaryCrossEntropy,
                                 Moons(3), 20, 3, 0.1);
  FeaturesOnly(&c, 0.05);
  c.seeds = 5;
  RunCampaign(c);
}

TEST(PoisoningSoundness, FeaturePoisoningBoundsContainEveryRetrainingInTheBall_LinearHinge) {
  Campaign c = PoisoningCampaign("features/linear-hinge", Linear(2, 1), LossKind::kHinge, Moons(1),
                                 20, 3, 0.1);
  FeaturesOnly(&c, 0.1);
  c.config.optimizer.l2 = 0.02;
  RunCampaign(c);
}

TEST(PoisoningSoundness, FeaturePoisoningBoundsContainEveryRetrainingInTheBall_MlpCe) {
  Campaign c = PoisoningCampaign("features/mlp-ce", ModelSpec::Mlp({2, 8, 8, 3}),
                                 LossKind::kCrossEntropy, Blobs(2), 30, 2, 0.05);
  FeaturesOnly(&c, 0.05);
  RunCampaign(c);
}

TEST(PoisoningSoundness, FeaturePoisoningBoundsContainEveryRetrainingInTheBall_MlpMse) {
  Campaign c = PoisoningCampaign("features/mlp-mse", ModelSpec::Mlp({3, 8, 8, 1}), LossKind::kMse,
                                 Regression(), 20, 2, 0.05);
  FeaturesOnly(&c, 0.05);
  c.config.optimizer.l2 = 0.01;
  c.config.optimizer.lr_decay = 0.1;
  RunCampaign(c);
}

TEST(PoisoningSoundness, FeaturePoisoningBoundsContainEveryRetrainingWithExactMatMul_MlpBce) {
  Campaign c = PoisoningCampaign("features/mlp-bce-exact", ModelSpec::Mlp({2, 8, 8, 1}),
                                 LossKind::kBinaryCrossEntropy, Moons(1), 20, 2, 0.1);
  FeaturesOnly(&c, 0.05);
  c.config.bounds.interval.product = agt::MatMulMethod::kExact;
  RunCampaign(c);
}

TEST(PoisoningSoundness, LabelFlipBoundsContainEveryRetrainingWithFlippedLabels_LinearBce) {
  Campaign c = PoisoningCampaign("labels-flip/linear-bce", Linear(9, 1),
                                 LossKind::kBinaryCrossEntropy, Moons(3), 20, 3, 0.1);
  LabelsOnly(&c, -1, 0.0);
  c.seeds = 5;
  RunCampaign(c);
}

TEST(PoisoningSoundness, LabelFlipBoundsContainEveryRetrainingWithStrongL1AcrossZero) {
  Campaign c = PoisoningCampaign("labels-flip/linear-hinge-strong-l1", Linear(9, 1),
                                 LossKind::kHinge, Moons(3), 10, 4, 0.1);
  LabelsOnly(&c, -1, 0.0);
  c.config.optimizer.l1 = 0.3;
  c.seeds = 5;
  RunCampaign(c);
}

TEST(PoisoningSoundness, LabelFlipBoundsContainEveryRetrainingWithFlippedLabels_LinearHinge) {
  Campaign c = PoisoningCampaign("labels-flip/linear-hinge", Linear(9, 1), LossKind::kHinge,
                                 Moons(3), 20, 3, 0.05);
  LabelsOnly(&c, -1, 0.0);
  c.config.optimizer.l2 = 0.01;
  RunCampaign(c);
}

TEST(PoisoningSoundness, LabelFlipBoundsContainEveryRetrainingWithFlippedLabels_LinearCe) {
  Campaign c = PoisoningCampaign("labels-flip/linear-ce", Linear(2, 3), LossKind::kCrossEntropy,
                                 Blobs(2), 30, 3, 0.1);
  LabelsOnly(&c, -1, 0.0);
  c.config.optimizer.lr_decay = 0.1;
  RunCampaign(c);
}

TEST(PoisoningSoundness, TargetedFlipBoundsContainEveryRetrainingWithLabelsMovedToTarget_MlpCe) {
  Campaign c = PoisoningCampaign("labels-targeted/mlp-ce", ModelSpec::Mlp({2, 8, 8, 3}),
                                 LossKind::kCrossEntropy, Blobs(2), 30, 2, 0.05);
  LabelsOnly(&c, 2, 0.0);
  RunCampaign(c);
}

TEST(PoisoningSoundness, TargetedFlipBoundsContainEveryRetrainingWithLabelsMovedToTarget_LinearCe) {
  Campaign c = PoisoningCampaign("labels-targeted/linear-ce", Linear(4, 3), LossKind::kCrossEntropy,
                                 Blobs(4), 30, 3, 0.1);
  LabelsOnly(&c, 0, 0.0);
  c.config.optimizer.l2 = 0.01;
  RunCampaign(c);
}

TEST(PoisoningSoundness, RegressionLabelBoundsContainEveryRetrainingWithTargetsMovedByNu_Linear) {
  Campaign c = PoisoningCampaign("labels-nu/linear-mse", Linear(3, 1), LossKind::kMse, Regression(),
                                 20, 3, 0.1);
  LabelsOnly(&c, -1, 0.1);
  c.seeds = 5;
  RunCampaign(c);
}

TEST(PoisoningSoundness, RegressionLabelBoundsContainEveryRetrainingWithTargetsMovedByNu_Mlp) {
  Campaign c = PoisoningCampaign("labels-nu/mlp-mse", ModelSpec::Mlp({3, 8, 8, 1}), LossKind::kMse,
                                 Regression(), 20, 2, 0.05);
  LabelsOnly(&c, -1, 0.1);
  RunCampaign(c);
}

TEST(PoisoningSoundness, AddedFeatureAndLabelBoundsContainEveryRetrainingOnSeparateRows_Bce) {
  Campaign c = PoisoningCampaign("both-added/linear-bce", Linear(2, 1),
                                 LossKind::kBinaryCrossEntropy, Moons(1), 20, 3, 0.1);
  FeaturesAndLabels(&c, 0.05, -1, 0.0, false);
  c.seeds = 5;
  RunCampaign(c);
}

TEST(PoisoningSoundness, AddedFeatureAndLabelBoundsContainEveryRetrainingOnSeparateRows_MlpCe) {
  Campaign c = PoisoningCampaign("both-added/mlp-ce", ModelSpec::Mlp({2, 8, 8, 3}),
                                 LossKind::kCrossEntropy, Blobs(2), 30, 2, 0.05);
  FeaturesAndLabels(&c, 0.05, -1, 0.0, false);
  RunCampaign(c);
}

TEST(PoisoningSoundness, AddedFeatureAndLabelBoundsContainEveryRetrainingOnSeparateRows_Mse) {
  Campaign c = PoisoningCampaign("both-added/linear-mse", Linear(3, 1), LossKind::kMse,
                                 Regression(), 20, 3, 0.1);
  FeaturesAndLabels(&c, 0.05, -1, 0.1, false);
  c.config.optimizer.l2 = 0.01;
  RunCampaign(c);
}

TEST(PoisoningSoundness, PairedFeatureAndLabelBoundsContainEveryRetrainingOnTheSameRows_Bce) {
  Campaign c = PoisoningCampaign("both-paired/linear-bce", Linear(9, 1),
                                 LossKind::kBinaryCrossEntropy, Moons(3), 20, 3, 0.1);
  FeaturesAndLabels(&c, 0.02, -1, 0.0, true);
  c.seeds = 5;
  RunCampaign(c);
}

TEST(PoisoningSoundness, PairedFeatureAndLabelBoundsContainEveryRetrainingOnTheSameRows_Hinge) {
  Campaign c = PoisoningCampaign("both-paired/linear-hinge", Linear(2, 1), LossKind::kHinge,
                                 Moons(1), 16, 3, 0.1);
  FeaturesAndLabels(&c, 0.05, -1, 0.0, true);
  RunCampaign(c);
}

TEST(PoisoningSoundness,
     PairedFeatureAndLabelBoundsContainEveryRetrainingOnTheSameRows_TargetedCe) {
  Campaign c = PoisoningCampaign("both-paired/linear-ce-targeted", Linear(2, 3),
                                 LossKind::kCrossEntropy, Blobs(2), 30, 3, 0.1);
  FeaturesAndLabels(&c, 0.05, 1, 0.0, true);
  RunCampaign(c);
}

TEST(PoisoningSoundness, PairedFeatureAndLabelBoundsContainEveryRetrainingOnTheSameRows_MlpMse) {
  Campaign c = PoisoningCampaign("both-paired/mlp-mse", ModelSpec::Mlp({3, 8, 8, 1}),
                                 LossKind::kMse, Regression(), 20, 2, 0.05);
  FeaturesAndLabels(&c, 0.05, -1, 0.1, true);
  c.config.optimizer.lr_decay = 0.1;
  RunCampaign(c);
}

// ---------------------------------------------------------------------------
// Inputs at least 64 wide take the CPU backend's fused kernel: 16 sample rows
// per call (a batch of 30 is a block of 16 and one of 14), a row's
// candidates re-checked after the earlier rows' inserts. 75 inputs are 9
// groups of 8 columns and a 3-column scalar tail. The same campaigns on it.

ModelSpec WideMlp() { return ModelSpec::Mlp({75, 8, 3}); }

TEST(WideInputSoundness, RemovalBoundsHoldThroughTheFusedKernel) {
  Campaign c = RemovalCampaign("wide-mlp-ce", WideMlp(), LossKind::kCrossEntropy, Blobs(75), 30, 2,
                               0.05);
  RunCampaign(c);
}

TEST(WideInputSoundness, SubstitutionBoundsHoldThroughTheFusedKernel) {
  Campaign c = SubstitutionCampaign("wide-mlp-ce", WideMlp(), LossKind::kCrossEntropy, Blobs(75),
                                    30, 2, 0.05, 0.2);
  RunCampaign(c);
}

TEST(WideInputSoundness, FeaturePoisoningBoundsHoldThroughTheFusedKernel) {
  Campaign c = PoisoningCampaign("features/wide-mlp-ce", WideMlp(), LossKind::kCrossEntropy,
                                 Blobs(75), 30, 2, 0.05);
  FeaturesOnly(&c, 0.05);
  RunCampaign(c);
}

// ---------------------------------------------------------------------------
// A negative control: the adversaries have teeth. Shrunk towards the nominal
// parameters to a quarter of its extent on each side, the final box of the
// first non-zero budget no longer holds every attacked run, so the campaigns
// above would notice a box that is too tight by that much.

bool SomeRunEscapesAShrunkBox(const Campaign& c, double keep_fraction) {
  const Vector init = agt::InitParameters(c.config.model, c.init_seed);
  const CertifiedTrajectory cert = RunCertifiedTraining(c.config, c.data.train, init);
  EXPECT_TRUE(cert.error.empty()) << cert.error;
  if (!cert.error.empty()) return false;
  size_t j = 0;
  while (c.config.budgets[j].n == 0 && c.config.budgets[j].label_n == 0) ++j;
  const Vector& nominal = cert.nominal.back();
  const agt::ParameterBox& box = cert.boxes.back()[j];
  const agt::ParameterBox shrunk{nominal - keep_fraction * (nominal - box.lower),
                                 nominal + keep_fraction * (box.upper - nominal)};
  const Threat threat = MakeThreat(c.config, c.config.budgets[j], c.data.train.num_classes);
  for (const AdversarySpec& spec : AdversariesFor(c.config.perturbation.kind)) {
    const PerturbedTraining run =
        TrainPerturbed(c.config, c.data.train, init, threat, spec.make(99));
    if (!OutsideBox(shrunk, run.after_step.back()).empty()) return true;
  }
  return false;
}

TEST(AdversaryPower, AttacksEscapeEveryBoxShrunkToAQuarterOfItsExtent) {
  Campaign removal =
      RemovalCampaign("power", Linear(9, 1), LossKind::kBinaryCrossEntropy, Moons(3), 20, 3, 0.1);
  EXPECT_TRUE(SomeRunEscapesAShrunkBox(removal, 0.25)) << "removal";
  Campaign substitution = SubstitutionCampaign("power", Linear(2, 1), LossKind::kBinaryCrossEntropy,
                                               Moons(1), 20, 3, 0.2, 0.5);
  EXPECT_TRUE(SomeRunEscapesAShrunkBox(substitution, 0.25)) << "substitution";
  Campaign features =
      PoisoningCampaign("power", Linear(9, 1), LossKind::kBinaryCrossEntropy, Moons(3), 20, 3, 0.1);
  FeaturesOnly(&features, 0.05);
  EXPECT_TRUE(SomeRunEscapesAShrunkBox(features, 0.25)) << "feature poisoning";
  Campaign labels =
      PoisoningCampaign("power", Linear(9, 1), LossKind::kBinaryCrossEntropy, Moons(3), 20, 3, 0.1);
  LabelsOnly(&labels, -1, 0.0);
  EXPECT_TRUE(SomeRunEscapesAShrunkBox(labels, 0.25)) << "label flips";
  Campaign paired = PoisoningCampaign("power", ModelSpec::Mlp({3, 8, 8, 1}), LossKind::kMse,
                                      Regression(), 20, 2, 0.05);
  FeaturesAndLabels(&paired, 0.05, -1, 0.1, true);
  EXPECT_TRUE(SomeRunEscapesAShrunkBox(paired, 0.25)) << "paired poisoning";
}

// ---------------------------------------------------------------------------
// Budget 0 and monotonicity in the budget.

// Every step, the box of each budget in `zero_width` has lower == upper ==
// nominal, bit for bit.
void ExpectZeroWidthBoxesFollowTheNominalTrajectory(const TrainConfig& config, const Data& data,
                                                    const std::vector<size_t>& zero_width) {
  const Vector init = agt::InitParameters(config.model, 7);
  const CertifiedTrajectory cert = RunCertifiedTraining(config, data.train, init);
  ASSERT_TRUE(cert.error.empty()) << cert.error;
  for (size_t t = 0; t < cert.nominal.size(); ++t) {
    for (size_t j : zero_width) {
      const agt::ParameterBox& box = cert.boxes[t][j];
      const bool exact = (box.lower.array() == cert.nominal[t].array()).all() &&
                         (box.upper.array() == cert.nominal[t].array()).all();
      ASSERT_TRUE(exact) << config.model.Describe() << " " << agt::LossKindName(config.loss)
                         << ", budget " << config.budgets[j].Describe(config.perturbation)
                         << ", after step " << t + 1 << ": width " << box.TotalWidth()
                         << ", max |lower - nominal| "
                         << (box.lower - cert.nominal[t]).cwiseAbs().maxCoeff()
                         << ", max |upper - nominal| "
                         << (box.upper - cert.nominal[t]).cwiseAbs().maxCoeff();
    }
  }
}

std::vector<std::pair<std::string, std::pair<TrainConfig, Data>>> ZeroBudgetSetups() {
  std::vector<std::pair<std::string, std::pair<TrainConfig, Data>>> setups;
  TrainConfig bce = Config(Linear(9, 1), LossKind::kBinaryCrossEntropy, 20, 3, 0.1);
  bce.optimizer.lr_decay = 0.1;
  setups.push_back({"linear-bce", {bce, Moons(3)}});
  TrainConfig hinge = Config(Linear(2, 1), LossKind::kHinge, 16, 2, 0.1);
  hinge.optimizer.l2 = 0.01;
  setups.push_back({"linear-hinge", {hinge, Moons(1)}});
  TrainConfig ce = Config(ModelSpec::Mlp({2, 8, 8, 3}), LossKind::kCrossEntropy, 30, 2, 0.05);
  setups.push_back({"mlp-ce", {ce, Blobs(2)}});
  TrainConfig mse = Config(ModelSpec::Mlp({3, 8, 8, 1}), LossKind::kMse, 20, 2, 0.05);
  mse.optimizer.l2 = 0.01;
  setups.push_back({"mlp-mse", {mse, Regression()}});
  return setups;
}

TEST(BudgetZero, RemovalBoxOfBudgetZeroIsTheNominalTrajectoryAtEveryStep) {
  for (auto [name, setup] : ZeroBudgetSetups()) {
    SCOPED_TRACE(name);
    setup.first.perturbation.kind = PerturbationKind::kRemoval;
    setup.first.budgets = {{0, 0}, {2, 0}};
    ExpectZeroWidthBoxesFollowTheNominalTrajectory(setup.first, setup.second, {0});
  }
}

TEST(BudgetZero, SubstitutionBoxOfBudgetZeroIsTheNominalTrajectoryAtEveryStep) {
  for (auto [name, setup] : ZeroBudgetSetups()) {
    SCOPED_TRACE(name);
    setup.first.perturbation.kind = PerturbationKind::kSubstitution;
    setup.first.clip_gamma = 0.5;
    setup.first.budgets = {{0, 0}, {2, 0}};
    ExpectZeroWidthBoxesFollowTheNominalTrajectory(setup.first, setup.second, {0});
  }
}

// With epsilon 0 and labels fixed there is nothing to perturb, so every
// budget's box stays a point.
TEST(BudgetZero, PoisoningBoxWithZeroRadiusAndFixedLabelsIsTheNominalTrajectoryAtEveryStep) {
  for (auto [name, setup] : ZeroBudgetSetups()) {
    SCOPED_TRACE(name);
    setup.first.perturbation.kind = PerturbationKind::kBoundedPoisoning;
    setup.first.perturbation.epsilon = 0.0;
    setup.first.budgets = {{0, 0}, {3, 0}};
    ExpectZeroWidthBoxesFollowTheNominalTrajectory(setup.first, setup.second, {0, 1});
  }
}

// Checks, at every step, that the total width does not decrease as the budget
// grows (budgets listed in increasing order); reports whether the boxes are
// also nested, which is not claimed.
void ExpectTotalWidthNonDecreasingInBudget(const std::string& name, const TrainConfig& config,
                                           const Data& data) {
  SCOPED_TRACE(name);
  const Vector init = agt::InitParameters(config.model, 7);
  const CertifiedTrajectory cert = RunCertifiedTraining(config, data.train, init);
  ASSERT_TRUE(cert.error.empty()) << cert.error;
  bool nested = true;
  for (size_t t = 0; t < cert.nominal.size(); ++t) {
    for (size_t j = 0; j + 1 < config.budgets.size(); ++j) {
      const agt::ParameterBox& small = cert.boxes[t][j];
      const agt::ParameterBox& large = cert.boxes[t][j + 1];
      const double w_small = small.TotalWidth();
      const double w_large = large.TotalWidth();
      EXPECT_LE(w_small, w_large + 1e-12 * (1.0 + w_large))
          << "after step " << t + 1 << ": budget "
          << config.budgets[j].Describe(config.perturbation) << " width " << w_small
          << " exceeds budget " << config.budgets[j + 1].Describe(config.perturbation) << " width "
          << w_large;
      nested = nested && OutsideBox(large, small.lower).empty() &&
               OutsideBox(large, small.upper).empty();
    }
  }
  std::printf(
      "[soundness] %-28s boxes of smaller budgets nested in larger ones at every "
      "step: %s\n",
      name.c_str(), nested ? "yes" : "no (not claimed)");
}

TEST(BudgetMonotonicity, TotalWidthIsNonDecreasingInTheBudgetAtEveryStep) {
  for (auto [name, setup] : ZeroBudgetSetups()) {
    TrainConfig removal = setup.first;
    removal.perturbation.kind = PerturbationKind::kRemoval;
    removal.budgets = {{0, 0}, {1, 0}, {2, 0}, {4, 0}, {8, 0}};
    ExpectTotalWidthNonDecreasingInBudget("removal/" + name, removal, setup.second);

    TrainConfig substitution = setup.first;
    substitution.perturbation.kind = PerturbationKind::kSubstitution;
    substitution.clip_gamma = 0.5;
    substitution.budgets = {{0, 0}, {1, 0}, {2, 0}, {4, 0}, {8, 0}};
    ExpectTotalWidthNonDecreasingInBudget("substitution/" + name, substitution, setup.second);

    TrainConfig features = setup.first;
    features.perturbation.kind = PerturbationKind::kBoundedPoisoning;
    features.perturbation.epsilon = 0.05;
    features.budgets = {{0, 0}, {1, 0}, {2, 0}, {4, 0}, {8, 0}};
    ExpectTotalWidthNonDecreasingInBudget("features/" + name, features, setup.second);

    TrainConfig labels = setup.first;
    labels.perturbation.kind = PerturbationKind::kBoundedPoisoning;
    labels.perturbation.label = agt::LabelPerturbation{true, -1, 0.1};
    labels.budgets = {{0, 0}, {0, 1}, {0, 2}, {0, 4}, {0, 8}};
    ExpectTotalWidthNonDecreasingInBudget("labels/" + name, labels, setup.second);

    TrainConfig paired = labels;
    paired.perturbation.epsilon = 0.05;
    paired.perturbation.paired = true;
    paired.budgets = {{0, 0}, {1, 1}, {2, 2}, {4, 4}};
    ExpectTotalWidthNonDecreasingInBudget("paired/" + name, paired, setup.second);
  }
}

}  // namespace
}  // namespace agt_test
