// The retraining campaigns of the soundness property tests (paper section 5.2,
// eq. 13; Theorems 6, 8, 9), shared by soundness_test.cc (dense models) and
// soundness_conv_test.cc (conv models and frozen feature extractors): one
// certified training, many perturbed retrainings (perturbed_sgd.h) by the
// online adversaries of adversaries.h, and every step's parameters, and the
// final model's test logits, must lie in the trainer's box of that budget and
// of every larger budget of the same training.
//
// What differs between the two files (the bounds on the final test logits,
// the adversary families, what they tally and print) is a HarnessOptions.
#ifndef AGT_TESTS_CORE_SOUNDNESS_HARNESS_H_
#define AGT_TESTS_CORE_SOUNDNESS_HARNESS_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "core/certify/certify.h"
#include "core/data/dataset.h"
#include "core/loss/loss.h"
#include "core/model/model.h"
#include "core/train/train.h"
#include "tests/core/adversaries.h"
#include "tests/core/perturbed_sgd.h"

namespace agt_test {

// ---------------------------------------------------------------------------
// Data and configurations.

// A small dataset, training rows first, test rows after.
struct Data {
  agt::Dataset train;
  agt::Dataset test;
};

// Plain training on one thread; perturbation, budgets and the rest are the
// caller's.
inline agt::TrainConfig Config(const agt::ModelSpec& model, agt::LossKind loss, int batch_size,
                               int epochs, double learning_rate) {
  agt::TrainConfig config;
  config.model = model;
  config.loss = loss;
  config.batch_size = batch_size;
  config.epochs = epochs;
  config.optimizer.learning_rate = learning_rate;
  config.threads = 1;
  return config;
}

// ---------------------------------------------------------------------------
// The campaign: one certified training, many perturbed retrainings.

struct Campaign {
  std::string group;  // for the tallies: "removal", "features", ...
  std::string name;   // model and loss
  agt::TrainConfig config;
  Data data;
  uint64_t init_seed = 7;
  int seeds = 3;  // perturbed runs per (budget, adversary)
  // A negative control where set: some attack must get at least this far
  // towards the edge of the final box of the first non-zero budget (see
  // Reach), i.e. escape that box shrunk towards the nominal parameters to
  // this fraction of its extent, so the adversaries have teeth against this
  // model and the campaign would notice a box too tight by that much.
  double min_reach = 0.0;
};

inline std::string Describe(const Campaign& c, const agt::Budget& budget) {
  return c.group + "/" + c.name + " [" + c.config.model.Describe() + ", " +
         agt::LossKindName(c.config.loss) + ", budget " + budget.Describe(c.config.perturbation) +
         "]";
}

// How far one run got towards the box edge, as a fraction of the box's extent
// on that side of the nominal parameters (1 = on the edge).
inline double Reach(const agt::ParameterBox& box, const Vector& nominal, const Vector& theta) {
  double reach = 0.0;
  for (Index i = 0; i < theta.size(); ++i) {
    const double d = theta(i) - nominal(i);
    const double room = d > 0.0 ? box.upper(i) - nominal(i) : nominal(i) - box.lower(i);
    if (room > 0.0) reach = std::max(reach, std::fabs(d) / room);
  }
  return reach;
}

inline bool IsZero(const agt::Budget& b) { return b.n == 0 && b.label_n == 0; }

// Empty iff every margin z_p - z_j (p the nominal prediction) of the logits
// is at least its certified lower bound, up to Tolerance (always empty when
// the bounds have no margins).
inline std::string BelowMargin(const agt::LogitBounds& bounds, const Matrix& logits) {
  if (bounds.margin_lower.size() == 0) return "";
  const std::vector<int> predicted = agt::PredictClasses(bounds.nominal);
  for (Index i = 0; i < logits.rows(); ++i) {
    const int p = predicted[i];
    for (Index j = 0; j < logits.cols(); ++j) {
      if (j == p) continue;
      const double margin = logits(i, p) - logits(i, j);
      if (!(margin >= bounds.margin_lower(i, j) - Tolerance(margin))) {
        char text[256];
        std::snprintf(text, sizeof(text), "row %ld margin z_%d - z_%ld = %.17g below bound %.17g",
                      static_cast<long>(i), p, static_cast<long>(j), margin,
                      bounds.margin_lower(i, j));
        return text;
      }
    }
  }
  return "";
}

// How the final test logits of every budget are bound.
enum class LogitCheck {
  kRump,  // by Rump's product, no margins
  // By the campaign's interval product, with the logit margins of multi-class
  // models (BelowMargin).
  kProductAndMargins,
};

// The retrainings of one non-zero budget.
struct BudgetOutcome {
  int runs = 0;
  int failed_runs = 0;         // runs with a step or the final logits outside
  int64_t checks = 0;          // containments checked
  double max_reach = 0.0;      // over the runs, in the final box (Reach)
  double max_deviation = 0.0;  // max |theta - nominal| of the final parameters
  double width = 0.0;          // of the final box
};

struct HarnessOptions {
  LogitCheck logits = LogitCheck::kRump;
  AdversaryOptions adversaries;
  // Called once the certified trajectory has passed the plain-SGD check, with
  // the final test-logit bounds of every budget.
  std::function<void(const CertifiedTrajectory&, const std::vector<agt::LogitBounds>&)> certified;
  // Called after the retrainings of the non-zero budget config.budgets[j].
  std::function<void(size_t j, const BudgetOutcome&)> budget_done;
};

inline void RunCampaignWith(const Campaign& c, const HarnessOptions& options) {
  SCOPED_TRACE(c.group + "/" + c.name);
  ASSERT_EQ(c.data.train.dim(), c.config.model.InputDim()) << "test data and model disagree";
  const Vector init = agt::InitParameters(c.config.model, c.init_seed);
  const CertifiedTrajectory cert = RunCertifiedTraining(c.config, c.data.train, init);
  ASSERT_TRUE(cert.error.empty()) << cert.error;
  ASSERT_FALSE(cert.nominal.empty());
  const size_t steps = cert.nominal.size();
  const std::vector<agt::Budget>& budgets = c.config.budgets;

  // Plain SGD (the harness without an adversary) must be the trainer's
  // nominal trajectory, or nothing below means anything.
  const Threat none = MakeThreat(c.config, agt::Budget{}, c.data.train.num_classes);
  const PerturbedTraining plain = TrainPerturbed(c.config, c.data.train, init, none, nullptr);
  ASSERT_EQ(plain.after_step.size(), steps) << "harness and trainer disagree on the step count";
  for (size_t t = 0; t < steps; ++t) {
    const double diff = (plain.after_step[t] - cert.nominal[t]).cwiseAbs().maxCoeff();
    ASSERT_LE(diff, 1e-12 * (1.0 + cert.nominal[t].cwiseAbs().maxCoeff()))
        << "plain SGD differs from the trainer's nominal trajectory at step " << t + 1;
  }

  const Matrix& test_x = c.data.test.x;
  std::vector<agt::LogitBounds> final_logits;
  for (size_t j = 0; j < budgets.size(); ++j) {
    if (options.logits == LogitCheck::kRump) {
      final_logits.push_back(agt::ComputeLogitBounds(c.config.model, cert.nominal.back(),
                                                     cert.boxes.back()[j], test_x));
    } else {
      final_logits.push_back(agt::ComputeLogitBounds(
          c.config.model, cert.nominal.back(), cert.boxes.back()[j], test_x, 0.0,
          c.config.bounds.interval.product, c.config.model.OutputDim() > 1));
    }
  }
  if (options.certified) options.certified(cert, final_logits);
  size_t first_nonzero = 0;
  while (first_nonzero < budgets.size() && IsZero(budgets[first_nonzero])) ++first_nonzero;

  const std::vector<AdversarySpec> adversaries =
      AdversariesFor(c.config.perturbation.kind, options.adversaries);
  for (size_t j = 0; j < budgets.size(); ++j) {
    if (IsZero(budgets[j])) continue;
    const Threat threat = MakeThreat(c.config, budgets[j], c.data.train.num_classes);
    BudgetOutcome outcome;
    outcome.width = cert.boxes.back()[j].TotalWidth();
    for (size_t a = 0; a < adversaries.size(); ++a) {
      const AdversarySpec& spec = adversaries[a];
      for (int s = 0; s < c.seeds; ++s) {
        const uint64_t seed = 1000 * (j + 1) + 100 * a + s;
        const PerturbedTraining run =
            TrainPerturbed(c.config, c.data.train, init, threat, spec.make(seed));
        const std::string where =
            Describe(c, budgets[j]) + ", adversary " + spec.name + " seed " + std::to_string(seed);
        ASSERT_TRUE(run.violation.empty()) << where << ": harness bug: " << run.violation;
        ASSERT_EQ(run.after_step.size(), steps) << where;
        ++outcome.runs;
        // Every step, every covering budget; the first violation of a run is
        // reported, at most five runs per budget.
        std::string violation;
        for (size_t t = 0; t < steps; ++t) {
          for (size_t k = 0; k < budgets.size(); ++k) {
            if (!Covers(budgets[k], budgets[j])) continue;
            ++outcome.checks;
            const std::string outside = OutsideBox(cert.boxes[t][k], run.after_step[t]);
            if (!outside.empty() && violation.empty()) {
              violation = "after step " + std::to_string(t + 1) + " of " + std::to_string(steps) +
                          ", box of budget " + budgets[k].Describe(c.config.perturbation) + ": " +
                          outside;
            }
          }
        }
        const Matrix logits = agt::Forward(c.config.model, run.after_step.back(), test_x);
        for (size_t k = 0; k < budgets.size(); ++k) {
          if (!Covers(budgets[k], budgets[j])) continue;
          ++outcome.checks;
          std::string outside = OutsideInterval(final_logits[k].bounds, logits);
          if (outside.empty()) outside = BelowMargin(final_logits[k], logits);
          if (!outside.empty() && violation.empty()) {
            violation = "final test logits outside the logit bounds of budget " +
                        budgets[k].Describe(c.config.perturbation) + ": " + outside;
          }
        }
        if (!violation.empty() && ++outcome.failed_runs <= 5) {
          ADD_FAILURE() << where << ": " << violation;
        }
        outcome.max_reach =
            std::max(outcome.max_reach,
                     Reach(cert.boxes.back()[j], cert.nominal.back(), run.after_step.back()));
        outcome.max_deviation =
            std::max(outcome.max_deviation,
                     (run.after_step.back() - cert.nominal.back()).cwiseAbs().maxCoeff());
      }
    }
    EXPECT_EQ(outcome.failed_runs, 0)
        << Describe(c, budgets[j]) << ": runs outside the certified box";
    // Non-vacuity: the adversaries must actually have moved the parameters.
    EXPECT_GT(outcome.max_deviation, 0.0)
        << Describe(c, budgets[j]) << ": no adversary changed anything";
    if (j == first_nonzero && c.min_reach > 0.0) {
      EXPECT_GE(outcome.max_reach, c.min_reach)
          << Describe(c, budgets[j]) << ": the attacks stayed well inside the box";
    }
    if (options.budget_done) options.budget_done(j, outcome);
  }
}

}  // namespace agt_test

#endif  // AGT_TESTS_CORE_SOUNDNESS_HARNESS_H_
