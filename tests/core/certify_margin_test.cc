// The margin stability rule (StabilityRule::kMargin) is an option tighter than
// the reference's softmax rule. These tests check the two claims it makes:
// it never certifies less than the softmax rule, and everything it certifies
// holds for models really retrained on perturbed data and for parameters
// sampled from the box.
#include <gtest/gtest.h>

#include <iostream>

#include "core/certify/certify.h"
#include "core/common/rng.h"
#include "tests/core/perturbed_sgd.h"

namespace agt {
namespace {

struct Problem {
  Dataset train;
  Dataset test;
  TrainConfig config;
  Vector init;
};

Problem MultiClass(PerturbationModel perturbation, std::vector<Budget> budgets, uint64_t seed) {
  Problem s;
  const Dataset all = MakeBlobs(600, 2, 4, 1.0, 5.0, seed);
  s.train = all.Slice(0, 480);
  s.test = all.Slice(480, 600);
  s.config.model = ModelSpec::Mlp({2, 12, 4});
  s.config.loss = LossKind::kCrossEntropy;
  s.config.batch_size = 240;
  s.config.epochs = 10;
  s.config.optimizer.learning_rate = 0.02;
  s.config.perturbation = perturbation;
  s.config.budgets = std::move(budgets);
  s.init = InitParameters(s.config.model, seed);
  return s;
}

// Random removal or label flips, chosen anew at every step, within the threat.
agt_test::Adversary RandomAdversary(const PerturbationModel& p, uint64_t seed) {
  auto rng = std::make_shared<Rng>(seed);
  return [p, rng](const agt_test::AttackContext& ctx, agt_test::EditableBatch* batch) {
    const int k = ctx.threat->budget.EffectiveK(p);
    for (int i = 0; i < k; ++i) {
      const Index r = static_cast<Index>(rng->UniformInt(batch->y.size()));
      if (p.kind == PerturbationKind::kRemoval) {
        batch->keep[r] = false;
      } else if (ctx.threat->budget.label_n > i) {
        const double from = (*ctx.y)[r];
        double to = from;
        while (to == from) to = static_cast<double>(rng->UniformInt(4));
        if ((*ctx.y - batch->y).cwiseAbs().sum() == 0.0 || batch->y[r] == from) batch->y[r] = to;
      }
    }
  };
}

void CheckRule(PerturbationModel perturbation, std::vector<Budget> budgets, uint64_t seed) {
  const Problem s = MultiClass(perturbation, budgets, seed);
  auto trained = Train(s.config, s.train, s.init);
  ASSERT_TRUE(trained.ok()) << trained.status();
  int softmax_total = 0, margin_total = 0;
  for (size_t j = 0; j < budgets.size(); ++j) {
    const ParameterBox& box = trained->state.boxes[j];
    const LogitBounds lb = ComputeLogitBounds(s.config.model, trained->state.nominal, box, s.test.x,
                                              0.0, MatMulMethod::kRump, true);
    const std::vector<bool> soft = Stable(lb, StabilityRule::kSoftmax);
    const std::vector<bool> margin = Stable(lb, StabilityRule::kMargin);
    const std::vector<int> nominal = PredictClasses(lb.nominal);
    for (size_t i = 0; i < soft.size(); ++i) {
      EXPECT_TRUE(!soft[i] || margin[i]) << "row " << i << " budget " << j;
      softmax_total += soft[i];
      margin_total += margin[i];
    }
    // Certified rows keep their prediction under real retraining on perturbed data.
    const agt_test::Threat threat = agt_test::MakeThreat(s.config, budgets[j], 4);
    for (uint64_t run = 0; run < 12; ++run) {
      const agt_test::PerturbedTraining pt = agt_test::TrainPerturbed(
          s.config, s.train, s.init, threat, RandomAdversary(perturbation, seed * 100 + run));
      ASSERT_TRUE(pt.violation.empty()) << pt.violation;
      const std::vector<int> pred =
          PredictClasses(Forward(s.config.model, pt.after_step.back(), s.test.x));
      for (size_t i = 0; i < margin.size(); ++i) {
        if (margin[i]) {
          EXPECT_EQ(pred[i], nominal[i]) << "row " << i << " run " << run;
        }
      }
    }
    // And for parameters sampled from the box (uniformly and at its corners).
    Rng rng(seed + 7);
    for (int draw = 0; draw < 60; ++draw) {
      Vector theta(box.size());
      for (Index q = 0; q < box.size(); ++q) {
        const double u = draw % 2 ? rng.Uniform() : static_cast<double>(rng.UniformInt(2));
        theta[q] = box.lower[q] + u * (box.upper[q] - box.lower[q]);
      }
      const std::vector<int> pred = PredictClasses(Forward(s.config.model, theta, s.test.x));
      for (size_t i = 0; i < margin.size(); ++i) {
        if (margin[i]) {
          EXPECT_EQ(pred[i], nominal[i]) << "row " << i << " draw " << draw;
        }
      }
    }
  }
  EXPECT_GE(margin_total, softmax_total);
  std::cout << "stable rows over all budgets: softmax rule " << softmax_total << ", margin rule "
            << margin_total << "\n";
}

TEST(MarginRuleTest, NeverLooserThanSoftmaxRuleAndSoundUnderRemoval) {
  PerturbationModel p;
  p.kind = PerturbationKind::kRemoval;
  for (uint64_t seed = 1; seed <= 3; ++seed) CheckRule(p, {{1, 0}, {3, 0}}, seed);
}

TEST(MarginRuleTest, NeverLooserThanSoftmaxRuleAndSoundUnderLabelFlips) {
  PerturbationModel p;
  p.kind = PerturbationKind::kBoundedPoisoning;
  p.label.enabled = true;
  for (uint64_t seed = 4; seed <= 6; ++seed) CheckRule(p, {{0, 1}, {0, 2}}, seed);
}

TEST(MarginRuleTest, CertifiesStrictlyMoreThanSoftmaxRuleOnTrainedModels) {
  // The softmax rule implies l_c > u_j; the margin rule shares the last
  // layer's input between the two logits, so on trained models it should
  // certify rows the softmax rule cannot.
  PerturbationModel p;
  p.kind = PerturbationKind::kRemoval;
  double soft_stable = 0, margin_stable = 0, soft_acc = 0, margin_acc = 0;
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    const Problem s = MultiClass(p, {{1, 0}}, seed);
    auto trained = Train(s.config, s.train, s.init);
    ASSERT_TRUE(trained.ok());
    const LogitBounds lb =
        ComputeLogitBounds(s.config.model, trained->state.nominal, trained->state.boxes[0],
                           s.test.x, 0.0, MatMulMethod::kRump, true);
    const ClassificationCertificate soft =
        CertifyClassification(lb, s.test.y, StabilityRule::kSoftmax);
    const ClassificationCertificate margin =
        CertifyClassification(lb, s.test.y, StabilityRule::kMargin);
    soft_stable += soft.stable_fraction;
    margin_stable += margin.stable_fraction;
    soft_acc += soft.accuracy_worst;
    margin_acc += margin.accuracy_worst;
    EXPECT_GE(margin.accuracy_worst, soft.accuracy_worst);
  }
  std::cout << "mean stable fraction: softmax " << soft_stable / 3 << ", margin "
            << margin_stable / 3 << "; mean certified accuracy: softmax " << soft_acc / 3
            << ", margin " << margin_acc / 3 << "\n";
  EXPECT_GT(margin_stable, soft_stable);
  EXPECT_GT(margin_acc, soft_acc);
}

TEST(MarginRuleTest, BinaryModelsGetTheSameAnswerFromBothRules) {
  PerturbationModel p;
  p.kind = PerturbationKind::kRemoval;
  Dataset d = MakeMoons(200, 0.1, 3);
  TrainConfig c;
  c.model = ModelSpec::Mlp({2, 8, 1});
  c.batch_size = 50;
  c.epochs = 2;
  c.optimizer.learning_rate = 0.5;
  c.perturbation = p;
  c.budgets = {{2, 0}};
  auto r = Train(c, d, InitParameters(c.model, 1));
  ASSERT_TRUE(r.ok());
  const LogitBounds lb = ComputeLogitBounds(c.model, r->state.nominal, r->state.boxes[0], d.x, 0.0,
                                            MatMulMethod::kRump, true);
  EXPECT_EQ(lb.margin_lower.size(), 0);
  EXPECT_EQ(Stable(lb, StabilityRule::kMargin), Stable(lb, StabilityRule::kSoftmax));
}

}  // namespace
}  // namespace agt
