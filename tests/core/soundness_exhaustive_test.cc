// Exhaustive soundness checks, as in the paper's Figure 6a (section 8.2): on
// small half-moons problems, enumerate EVERY perturbation of a kind (every
// single label flip, every pair of flips, every single removed row, every
// corner of every single row's epsilon ball), retrain with each, and require
// every step's parameters to lie in the certified box. Each perturbation is
// applied for the whole training, which uses at most the budget in any batch.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "core/bounds/ibp.h"
#include "core/certify/certify.h"
#include "core/data/dataset.h"
#include "core/loss/loss.h"
#include "core/model/model.h"
#include "core/train/train.h"
#include "tests/core/perturbed_sgd.h"

namespace agt_test {
namespace {

using agt::Budget;
using agt::Dataset;
using agt::LossKind;
using agt::PerturbationKind;
using agt::TrainConfig;

// Half-moons with cubic features (9 features, a 10-parameter linear model).
Dataset CubicMoons(int n, uint64_t seed) {
  Dataset data = agt::MakeMoons(n, 0.1, seed);
  data.x = agt::PolynomialFeatures(data.x, 3);
  return data;
}

TrainConfig HingeSvmConfig(int batch_size, int epochs) {
  TrainConfig config;
  config.model = agt::ModelSpec::Mlp({9, 1});
  config.loss = LossKind::kHinge;
  config.batch_size = batch_size;
  config.epochs = epochs;
  config.optimizer.learning_rate = 0.05;
  config.optimizer.lr_decay = 0.05;
  config.threads = 1;
  config.perturbation.kind = PerturbationKind::kBoundedPoisoning;
  config.perturbation.label = agt::LabelPerturbation{true, -1, 0.0};
  return config;
}

// The same rows changed in every epoch: `change` edits (or drops) a row of
// the batch, given its index in the dataset.
Adversary EveryEpoch(const std::vector<Index>& rows,
                     std::function<void(Index batch_row, EditableBatch*)> change) {
  return [rows, change](const AttackContext& c, EditableBatch* batch) {
    const Index begin = c.batch_index * c.config->batch_size;
    for (Index row : rows) {
      if (row >= begin && row < begin + c.config->batch_size) change(row - begin, batch);
    }
  };
}

// Runs every adversary of `adversaries` against the certified training of
// `config` on `data`; each run must stay in the box of `budget_index` (and of
// every budget that covers it) at every step, and its test logits in the final
// logit bounds. Prints how much of each parameter's interval the runs reach.
void ExpectEveryRunInsideTheBoxes(const std::string& name, const TrainConfig& config,
                                  const Dataset& data, const Dataset& test, size_t budget_index,
                                  const std::vector<Adversary>& adversaries) {
  SCOPED_TRACE(name);
  const Vector init = agt::InitParameters(config.model, 3);
  const CertifiedTrajectory cert = RunCertifiedTraining(config, data, init);
  ASSERT_TRUE(cert.error.empty()) << cert.error;
  const size_t steps = cert.nominal.size();
  const std::vector<Budget>& budgets = config.budgets;
  const Threat threat = MakeThreat(config, budgets[budget_index], data.num_classes);
  const PerturbedTraining plain =
      TrainPerturbed(config, data, init, MakeThreat(config, Budget{}, data.num_classes), nullptr);
  ASSERT_EQ(plain.after_step.size(), steps);
  ASSERT_LE((plain.after_step.back() - cert.nominal.back()).cwiseAbs().maxCoeff(),
            1e-12 * (1.0 + cert.nominal.back().cwiseAbs().maxCoeff()))
      << "the harness does not reproduce the trainer's nominal trajectory";

  std::vector<agt::IntervalMatrix> logit_bounds;
  for (size_t k = 0; k < budgets.size(); ++k) {
    logit_bounds.push_back(
        agt::ComputeLogitBounds(config.model, cert.nominal.back(), cert.boxes.back()[k], test.x)
            .bounds);
  }
  const agt::ParameterBox& box = cert.boxes.back()[budget_index];
  Vector reached_low = cert.nominal.back();
  Vector reached_high = cert.nominal.back();
  int failures = 0;
  for (size_t a = 0; a < adversaries.size(); ++a) {
    const PerturbedTraining run = TrainPerturbed(config, data, init, threat, adversaries[a]);
    ASSERT_TRUE(run.violation.empty()) << "perturbation " << a << ": " << run.violation;
    ASSERT_GT(run.rows_touched, 0) << "perturbation " << a << " changed nothing";
    for (size_t t = 0; t < steps; ++t) {
      for (size_t k = 0; k < budgets.size(); ++k) {
        if (!Covers(budgets[k], budgets[budget_index])) continue;
        const std::string outside = OutsideBox(cert.boxes[t][k], run.after_step[t]);
        if (!outside.empty() && ++failures <= 5) {
          ADD_FAILURE() << "perturbation " << a << " after step " << t + 1 << " of " << steps
                        << ", box of budget " << budgets[k].Describe(config.perturbation) << ": "
                        << outside;
        }
      }
    }
    const Matrix logits = agt::Forward(config.model, run.after_step.back(), test.x);
    for (size_t k = 0; k < budgets.size(); ++k) {
      if (!Covers(budgets[k], budgets[budget_index])) continue;
      const std::string outside = OutsideInterval(logit_bounds[k], logits);
      if (!outside.empty() && ++failures <= 5) {
        ADD_FAILURE() << "perturbation " << a << ": final test logits outside the bounds of "
                      << budgets[k].Describe(config.perturbation) << ": " << outside;
      }
    }
    reached_low = reached_low.cwiseMin(run.after_step.back());
    reached_high = reached_high.cwiseMax(run.after_step.back());
  }
  EXPECT_EQ(failures, 0) << "runs outside the certified boxes";
  // How tight the box is against the enumeration (1 = a perturbation attains
  // the bound), per parameter: the fraction of the interval the runs span.
  const Vector span = reached_high - reached_low;
  const Vector width = box.upper - box.lower;
  double min_ratio = 1.0;
  double max_ratio = 0.0;
  for (Index i = 0; i < span.size(); ++i) {
    if (width(i) <= 0.0) continue;
    min_ratio = std::min(min_ratio, span(i) / width(i));
    max_ratio = std::max(max_ratio, span(i) / width(i));
  }
  std::printf(
      "[soundness] %-58s %5zu runs, width %9.4g, enumeration spans %5.1f%%..%5.1f%% "
      "of each interval\n",
      name.c_str(), adversaries.size(), box.TotalWidth(), 100.0 * min_ratio, 100.0 * max_ratio);
}

std::vector<Adversary> AllSingleFlips(const Dataset& data) {
  std::vector<Adversary> out;
  for (Index row = 0; row < data.size(); ++row) {
    out.push_back(
        EveryEpoch({row}, [](Index i, EditableBatch* batch) { batch->y(i) = 1.0 - batch->y(i); }));
  }
  return out;
}

TEST(ExhaustiveSoundness, LabelFlipBoundsContainEverySingleFlipRetraining_HingeSvmFullBatch) {
  const Dataset data = CubicMoons(128, 5);
  const Dataset test = CubicMoons(64, 6);
  TrainConfig config = HingeSvmConfig(128, 10);
  config.budgets = {{0, 1}, {0, 2}};
  ExpectEveryRunInsideTheBoxes("single flips, hinge SVM, 128 rows, full batch", config, data, test,
                               0, AllSingleFlips(data));
}

TEST(ExhaustiveSoundness, LabelFlipBoundsContainEverySingleFlipRetraining_HingeSvmFourBatches) {
  const Dataset data = CubicMoons(128, 5);
  const Dataset test = CubicMoons(64, 6);
  TrainConfig config = HingeSvmConfig(32, 3);
  config.optimizer.l2 = 0.01;
  config.budgets = {{0, 1}, {0, 3}};
  ExpectEveryRunInsideTheBoxes("single flips, hinge SVM, 128 rows, batches of 32, L2", config, data,
                               test, 0, AllSingleFlips(data));
}

TEST(ExhaustiveSoundness, LabelFlipBoundsContainEveryRetrainingWithTwoFlippedLabels) {
  const Dataset data = CubicMoons(64, 8);
  const Dataset test = CubicMoons(64, 6);
  TrainConfig config = HingeSvmConfig(64, 6);
  config.budgets = {{0, 2}};
  std::vector<Adversary> pairs;
  for (Index a = 0; a < data.size(); ++a) {
    for (Index b = a + 1; b < data.size(); ++b) {
      pairs.push_back(EveryEpoch(
          {a, b}, [](Index i, EditableBatch* batch) { batch->y(i) = 1.0 - batch->y(i); }));
    }
  }
  ExpectEveryRunInsideTheBoxes("every pair of flips, hinge SVM, 64 rows, full batch", config, data,
                               test, 0, pairs);
}

TEST(ExhaustiveSoundness, RemovalBoundsContainEveryRetrainingWithoutOneRow) {
  const Dataset data = CubicMoons(128, 5);
  const Dataset test = CubicMoons(64, 6);
  TrainConfig config = HingeSvmConfig(32, 3);
  config.perturbation = agt::PerturbationModel{};
  config.perturbation.kind = PerturbationKind::kRemoval;
  config.budgets = {{1, 0}, {2, 0}};
  std::vector<Adversary> removals;
  for (Index row = 0; row < data.size(); ++row) {
    removals.push_back(
        EveryEpoch({row}, [](Index i, EditableBatch* batch) { batch->keep[i] = false; }));
  }
  ExpectEveryRunInsideTheBoxes("every single removal, hinge SVM, 128 rows, batches of 32", config,
                               data, test, 0, removals);
}

TEST(ExhaustiveSoundness, FeaturePoisoningBoundsContainEveryCornerOfEverySingleRow) {
  const Dataset data = agt::MakeMoons(64, 0.1, 9);
  const Dataset test = agt::MakeMoons(64, 0.1, 10);
  TrainConfig config;
  config.model = agt::ModelSpec::Mlp({2, 1});
  config.loss = LossKind::kBinaryCrossEntropy;
  config.batch_size = 64;
  config.epochs = 8;
  config.optimizer.learning_rate = 0.5;
  config.threads = 1;
  config.perturbation.kind = PerturbationKind::kBoundedPoisoning;
  config.perturbation.epsilon = 0.1;
  config.budgets = {{1, 0}, {2, 0}};
  std::vector<Adversary> corners;
  for (Index row = 0; row < data.size(); ++row) {
    for (int corner = 0; corner < 4; ++corner) {
      const double eps = config.perturbation.epsilon;
      corners.push_back(EveryEpoch({row}, [corner, eps](Index i, EditableBatch* batch) {
        batch->x(i, 0) += (corner & 1) ? eps : -eps;
        batch->x(i, 1) += (corner & 2) ? eps : -eps;
      }));
    }
  }
  ExpectEveryRunInsideTheBoxes("every corner of every row, logistic, 64 rows, full batch", config,
                               data, test, 0, corners);
}

}  // namespace
}  // namespace agt_test
