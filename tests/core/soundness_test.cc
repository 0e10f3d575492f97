// Property tests that try to break the certified parameter boxes by training
// for real (paper section 5.2, eq. 13; Theorems 6, 8, 9): for every
// perturbation model, loss and model kind, a perturbed-SGD harness
// (perturbed_sgd.h) retrains with online adversaries that change every batch
// within the budget, and every step's parameters, and the final model's test
// logits, must lie in the trainer's box for that budget (and for every larger
// budget of the same training).
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
#include <functional>
#include <map>
#include <memory>
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

struct Data {
  Dataset train;
  Dataset test;
};

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

TrainConfig Config(const ModelSpec& model, LossKind loss, int batch_size, int epochs,
                   double learning_rate) {
  TrainConfig config;
  config.model = model;
  config.loss = loss;
  config.batch_size = batch_size;
  config.epochs = epochs;
  config.optimizer.learning_rate = learning_rate;
  config.threads = 1;
  return config;
}

ModelSpec Linear(int in, int out) { return agt::ModelSpec::Mlp({in, out}); }

// ---------------------------------------------------------------------------
// Adversary building blocks for removal and poisoning (more, and the
// substitution adversaries, in adversaries.h).

Vector RowLosses(const AttackContext& c, const Matrix& x, const Vector& y) {
  return agt::LossValues(c.config->loss, agt::Forward(c.config->model, *c.theta, x), y);
}

// Central finite-difference gradient of a per-row function w.r.t. each row's
// inputs (N x d); only its signs are used.
Matrix InputGradient(const std::function<Vector(const Matrix&)>& f, const Matrix& x) {
  Matrix grad(x.rows(), x.cols());
  for (Index j = 0; j < x.cols(); ++j) {
    Matrix plus = x;
    Matrix minus = x;
    const double h = 1e-6;
    plus.col(j).array() += h;
    minus.col(j).array() -= h;
    grad.col(j) = (f(plus) - f(minus)) / (2.0 * h);
  }
  return grad;
}

Matrix Signs(const Matrix& m) {
  return m.unaryExpr([](double v) { return v < 0.0 ? -1.0 : 1.0; });
}

// x + epsilon * signs, row by row (signs in {-1, +1}).
Matrix Corner(const Matrix& x, const Matrix& signs, double epsilon) { return x + epsilon * signs; }

// The labels a poisoned row may take (classification: other classes or the
// target; regression: the two ends y -+ nu). Empty if labels are fixed.
std::vector<double> LabelOptions(const Threat& threat, double y) {
  std::vector<double> options;
  const agt::LabelPerturbation& label = threat.model.label;
  if (!label.enabled) return options;
  if (threat.num_classes == 0) {
    options = {y - label.nu, y + label.nu};
  } else {
    for (int c = 0; c < threat.num_classes; ++c) {
      if (c != y && IsAllowedLabelChange(label, threat.num_classes, y, c)) options.push_back(c);
    }
  }
  return options;
}

double RandomLabelChange(agt::Rng& rng, const Threat& threat, double y) {
  if (threat.num_classes == 0) return y + threat.model.label.nu * rng.Uniform(-1.0, 1.0);
  const std::vector<double> options = LabelOptions(threat, y);
  if (options.empty()) return y;
  return options[rng.UniformInt(options.size())];
}

// ---------------------------------------------------------------------------
// Removal adversaries (drop up to n rows of the batch).

Adversary RandomRemoval(uint64_t seed) {
  auto rng = std::make_shared<agt::Rng>(seed);
  return [rng](const AttackContext& c, EditableBatch* batch) {
    const int m = RandomCount(*rng, c.threat->budget.n);
    for (Index i : RandomRows(*rng, batch->x.rows(), m)) batch->keep[i] = false;
  };
}

// Drops the rows of largest loss, or of smallest loss, chosen per step.
Adversary LossRemoval(uint64_t seed) {
  auto rng = std::make_shared<agt::Rng>(seed);
  return [rng](const AttackContext& c, EditableBatch* batch) {
    Vector score = RowLosses(c, *c.x, *c.y);
    if (rng->Uniform() < 0.5) score = -score;
    for (Index i : TopRows(score, c.threat->budget.n)) batch->keep[i] = false;
  };
}

// Drops the m <= n rows that minimise dir * (mean target gradient of the rest).
Adversary GreedyRemoval(uint64_t seed, bool fixed_target) {
  auto chooser = std::make_shared<TargetChooser>(seed, fixed_target);
  return [chooser](const AttackContext& c, EditableBatch* batch) {
    const Target target = chooser->Next(c.theta->size());
    const Vector score = TargetScore(c, target, *c.x, *c.y);
    const std::vector<Index> order = TopRows(score, static_cast<int>(score.size()));
    const Index b = score.size();
    double rest = score.sum();
    double best_mean = rest / static_cast<double>(b);
    int best_m = 0;
    for (int m = 1; m <= c.threat->budget.n; ++m) {
      rest -= score(order[m - 1]);
      const double mean = rest / static_cast<double>(b - m);
      if (mean < best_mean) {
        best_mean = mean;
        best_m = m;
      }
    }
    for (int m = 0; m < best_m; ++m) batch->keep[order[m]] = false;
  };
}

// ---------------------------------------------------------------------------
// Bounded-poisoning adversaries (features of up to n rows within the
// l-infinity ball, labels of up to label_n rows as the model allows; paired:
// the same rows).

// Picks feature rows and label rows in order of decreasing score; a row with
// a non-positive score is never picked when positive_only.
void ChoosePoisonRows(const Threat& threat, const Vector& feature_score, const Vector& label_score,
                      bool positive_only, std::vector<Index>* feature_rows,
                      std::vector<Index>* label_rows) {
  const int n = threat.model.epsilon > 0.0 ? threat.budget.n : 0;
  const int label_n = threat.model.label.enabled ? threat.budget.label_n : 0;
  auto keep = [&](const std::vector<Index>& rows, const Vector& score, int m) {
    std::vector<Index> out;
    for (Index i : rows) {
      if (static_cast<int>(out.size()) == m) break;
      if (!positive_only || score(i) > 0.0) out.push_back(i);
    }
    return out;
  };
  if (threat.model.paired) {
    const Vector combined = feature_score + label_score;
    const std::vector<Index> rows = TopRows(combined, std::max(n, label_n));
    *feature_rows = keep(rows, combined, n);
    *label_rows = keep(rows, combined, label_n);
  } else {
    *feature_rows = keep(TopRows(feature_score, n), feature_score, n);
    *label_rows = keep(TopRows(label_score, label_n), label_score, label_n);
  }
}

// Random rows, random corners or interior points, random allowed labels.
Adversary RandomPoisoning(uint64_t seed) {
  auto rng = std::make_shared<agt::Rng>(seed);
  return [rng](const AttackContext& c, EditableBatch* batch) {
    const Index b = c.x->rows();
    Vector feature_score(b);
    Vector label_score(b);
    for (Index i = 0; i < b; ++i) {
      feature_score(i) = rng->Uniform();
      label_score(i) = rng->Uniform();
    }
    Threat limited = *c.threat;
    limited.budget.n = RandomCount(*rng, c.threat->budget.n);
    limited.budget.label_n = RandomCount(*rng, c.threat->budget.label_n);
    std::vector<Index> feature_rows;
    std::vector<Index> label_rows;
    ChoosePoisonRows(limited, feature_score, label_score, false, &feature_rows, &label_rows);
    const double eps = c.threat->model.epsilon;
    const bool corners = rng->Uniform() < 0.6;
    for (Index i : feature_rows) {
      for (Index j = 0; j < c.x->cols(); ++j) {
        const double u = corners ? (rng->Uniform() < 0.5 ? -1.0 : 1.0) : rng->Uniform(-1, 1);
        batch->x(i, j) = (*c.x)(i, j) + eps * u;
      }
    }
    for (Index i : label_rows) batch->y(i) = RandomLabelChange(*rng, *c.threat, (*c.y)(i));
  };
}

// Loss ascent: the rows of largest loss (or, on other steps, smallest loss)
// move to the corner along the sign of the loss's input gradient and take the
// allowed label of largest loss there.
Adversary LossAscentPoisoning(uint64_t seed) {
  auto rng = std::make_shared<agt::Rng>(seed);
  return [rng](const AttackContext& c, EditableBatch* batch) {
    Vector score = RowLosses(c, *c.x, *c.y);
    if (rng->Uniform() < 0.4) score = -score;
    std::vector<Index> feature_rows;
    std::vector<Index> label_rows;
    ChoosePoisonRows(*c.threat, score, score, false, &feature_rows, &label_rows);
    const Matrix grad = InputGradient([&](const Matrix& x) { return RowLosses(c, x, *c.y); }, *c.x);
    const Matrix ascent = Corner(*c.x, Signs(grad), c.threat->model.epsilon);
    for (Index i : feature_rows) batch->x.row(i) = ascent.row(i);
    for (Index i : label_rows) {
      double best_label = (*c.y)(i);
      double best_loss = -1.0;
      for (double label : LabelOptions(*c.threat, (*c.y)(i))) {
        const Matrix row = batch->x.row(i);
        const Vector loss = RowLosses(c, row, Vector::Constant(1, label));
        if (loss(0) > best_loss) {
          best_loss = loss(0);
          best_label = label;
        }
      }
      batch->y(i) = best_label;
    }
  };
}

// Greedy on one parameter: per row the corner (along the sign of the target
// gradient's input derivative, or its opposite) and the allowed label that
// lower dir * (target gradient) the most, applied to the rows that gain most.
Adversary GreedyPoisoning(uint64_t seed, bool fixed_target) {
  auto chooser = std::make_shared<TargetChooser>(seed, fixed_target);
  return [chooser](const AttackContext& c, EditableBatch* batch) {
    const Target target = chooser->Next(c.theta->size());
    const Threat& threat = *c.threat;
    const Matrix& x = *c.x;
    const Vector& y = *c.y;
    const Index b = x.rows();
    const Vector base = TargetScore(c, target, x, y);
    // Feature candidates: the two opposite corners along the derivative.
    Matrix best_x = x;
    Vector feature_gain = Vector::Zero(b);
    if (threat.model.epsilon > 0.0 && threat.budget.n > 0) {
      const Matrix grad =
          InputGradient([&](const Matrix& z) { return TargetScore(c, target, z, y); }, x);
      const Matrix down = Corner(x, -Signs(grad), threat.model.epsilon);
      const Matrix up = Corner(x, Signs(grad), threat.model.epsilon);
      const Vector down_score = TargetScore(c, target, down, y);
      const Vector up_score = TargetScore(c, target, up, y);
      for (Index i = 0; i < b; ++i) {
        const bool use_down = down_score(i) <= up_score(i);
        const double gain = base(i) - std::min(down_score(i), up_score(i));
        if (gain <= 0.0) continue;  // moving the features would not help
        best_x.row(i) = use_down ? down.row(i) : up.row(i);
        feature_gain(i) = gain;
      }
    }
    // Label candidates, alone and with the best corner.
    Vector label_gain = Vector::Zero(b);
    Vector both_gain = feature_gain;
    Vector best_label = y;
    Vector best_both_label = y;
    if (threat.model.label.enabled && threat.budget.label_n > 0) {
      const int options = threat.num_classes == 0 ? 2 : threat.num_classes;
      for (int k = 0; k < options; ++k) {
        Vector labels = y;
        for (Index i = 0; i < b; ++i) {
          const std::vector<double> allowed = LabelOptions(threat, y(i));
          if (threat.num_classes == 0) {
            labels(i) = allowed[static_cast<size_t>(k)];
          } else if (std::find(allowed.begin(), allowed.end(), k) != allowed.end()) {
            labels(i) = k;
          }
        }
        const Vector alone = base - TargetScore(c, target, x, labels);
        const Vector both = base - TargetScore(c, target, best_x, labels);
        for (Index i = 0; i < b; ++i) {
          if (alone(i) > label_gain(i)) {
            label_gain(i) = alone(i);
            best_label(i) = labels(i);
          }
          if (both(i) > both_gain(i)) {
            both_gain(i) = both(i);
            best_both_label(i) = labels(i);
          }
        }
      }
    }
    std::vector<Index> feature_rows;
    std::vector<Index> label_rows;
    if (threat.model.paired) {
      ChoosePoisonRows(threat, both_gain, Vector::Zero(b), true, &feature_rows, &label_rows);
    } else {
      ChoosePoisonRows(threat, feature_gain, label_gain, true, &feature_rows, &label_rows);
    }
    for (Index i : feature_rows) batch->x.row(i) = best_x.row(i);
    for (Index i : label_rows) {
      const bool with_features =
          std::find(feature_rows.begin(), feature_rows.end(), i) != feature_rows.end();
      batch->y(i) = with_features ? best_both_label(i) : best_label(i);
    }
  };
}

std::vector<AdversarySpec> AdversariesFor(PerturbationKind kind) {
  switch (kind) {
    case PerturbationKind::kRemoval:
      return {
          {"random", RandomRemoval},
          {"loss", LossRemoval},
          {"greedy-fixed", [](uint64_t s) { return GreedyRemoval(s, true); }},
          {"greedy-varying", [](uint64_t s) { return GreedyRemoval(s, false); }},
          {"mixed",
           [](uint64_t s) {
             return Mixed(s,
                          {RandomRemoval(s + 1), LossRemoval(s + 2), GreedyRemoval(s + 3, false)});
           }},
      };
    case PerturbationKind::kSubstitution:
      return {
          {"random", RandomSubstitution},
          {"extreme", ExtremeSubstitution},
          {"greedy-fixed", [](uint64_t s) { return GreedySubstitution(s, true); }},
          {"greedy-varying", [](uint64_t s) { return GreedySubstitution(s, false); }},
          {"mixed",
           [](uint64_t s) {
             return Mixed(s, {RandomSubstitution(s + 1), ExtremeSubstitution(s + 2),
                              GreedySubstitution(s + 3, false)});
           }},
      };
    case PerturbationKind::kBoundedPoisoning:
      return {
          {"random", RandomPoisoning},
          {"loss-ascent", LossAscentPoisoning},
          {"greedy-fixed", [](uint64_t s) { return GreedyPoisoning(s, true); }},
          {"greedy-varying", [](uint64_t s) { return GreedyPoisoning(s, false); }},
          {"mixed",
           [](uint64_t s) {
             return Mixed(s, {RandomPoisoning(s + 1), LossAscentPoisoning(s + 2),
                              GreedyPoisoning(s + 3, false)});
           }},
      };
  }
  return {};
}

// ---------------------------------------------------------------------------
// The campaign: one certified training, many perturbed retrainings.

struct Campaign {
  std::string category;  // for the run counts
  TrainConfig config;
  Data data;
  uint64_t init_seed = 7;
  int seeds = 3;  // perturbed runs per (budget, adversary)
};

std::string Describe(const Campaign& c, const Budget& budget) {
  return c.category + " [" + c.config.model.Describe() + ", " + agt::LossKindName(c.config.loss) +
         ", budget " + budget.Describe(c.config.perturbation) + "]";
}

// How far one run got towards the box edge, as a fraction of the box's extent
// on that side of the nominal parameters (1 = on the edge).
double Reach(const agt::ParameterBox& box, const Vector& nominal, const Vector& theta) {
  double reach = 0.0;
  for (Index i = 0; i < theta.size(); ++i) {
    const double d = theta(i) - nominal(i);
    const double room = d > 0.0 ? box.upper(i) - nominal(i) : nominal(i) - box.lower(i);
    if (room > 0.0) reach = std::max(reach, std::fabs(d) / room);
  }
  return reach;
}

void RunCampaign(const Campaign& c) {
  SCOPED_TRACE(c.category);
  const Vector init = agt::InitParameters(c.config.model, c.init_seed);
  const CertifiedTrajectory cert = RunCertifiedTraining(c.config, c.data.train, init);
  ASSERT_TRUE(cert.error.empty()) << cert.error;
  ASSERT_FALSE(cert.nominal.empty());
  const size_t steps = cert.nominal.size();
  const std::vector<Budget>& budgets = c.config.budgets;

  // The harness must reproduce the trainer's nominal trajectory, or nothing
  // below means anything.
  const Threat none = MakeThreat(c.config, Budget{}, c.data.train.num_classes);
  const PerturbedTraining plain = TrainPerturbed(c.config, c.data.train, init, none, nullptr);
  ASSERT_EQ(plain.after_step.size(), steps) << "harness and trainer disagree on the step count";
  for (size_t t = 0; t < steps; ++t) {
    const double diff = (plain.after_step[t] - cert.nominal[t]).cwiseAbs().maxCoeff();
    ASSERT_LE(diff, 1e-12 * (1.0 + cert.nominal[t].cwiseAbs().maxCoeff()))
        << "harness differs from the trainer's nominal trajectory at step " << t + 1;
  }

  const Matrix& test_x = c.data.test.x;
  std::vector<agt::IntervalMatrix> final_logits;
  for (size_t j = 0; j < budgets.size(); ++j) {
    final_logits.push_back(
        agt::ComputeLogitBounds(c.config.model, cert.nominal.back(), cert.boxes.back()[j], test_x)
            .bounds);
  }

  for (size_t j = 0; j < budgets.size(); ++j) {
    if (budgets[j].n == 0 && budgets[j].label_n == 0) continue;
    const Threat threat = MakeThreat(c.config, budgets[j], c.data.train.num_classes);
    double max_reach = 0.0;
    double max_deviation = 0.0;
    int runs = 0;
    int failed_runs = 0;
    const std::vector<AdversarySpec> adversaries = AdversariesFor(c.config.perturbation.kind);
    for (size_t a = 0; a < adversaries.size(); ++a) {
      const AdversarySpec& spec = adversaries[a];
      for (int s = 0; s < c.seeds; ++s) {
        const uint64_t seed = 1000 * (j + 1) + 100 * a + s;
        const PerturbedTraining run =
            TrainPerturbed(c.config, c.data.train, init, threat, spec.make(seed));
        const std::string where =
            Describe(c, budgets[j]) + ", adversary " + spec.name + " seed " + std::to_string(seed);
        ASSERT_TRUE(run.violation.empty()) << where << ": harness bug: " << run.violation;
        ++runs;
        ++RunCounts()[c.category];
        // The first violation of each run is reported, at most five runs per budget.
        std::string violation;
        for (size_t t = 0; t < steps && violation.empty(); ++t) {
          for (size_t k = 0; k < budgets.size() && violation.empty(); ++k) {
            if (!Covers(budgets[k], budgets[j])) continue;
            const std::string outside = OutsideBox(cert.boxes[t][k], run.after_step[t]);
            if (!outside.empty()) {
              violation = "after step " + std::to_string(t + 1) + " of " + std::to_string(steps) +
                          ", box of budget " + budgets[k].Describe(c.config.perturbation) + ": " +
                          outside;
            }
          }
        }
        const Matrix logits = agt::Forward(c.config.model, run.after_step.back(), test_x);
        for (size_t k = 0; k < budgets.size() && violation.empty(); ++k) {
          if (!Covers(budgets[k], budgets[j])) continue;
          const std::string outside = OutsideInterval(final_logits[k], logits);
          if (!outside.empty()) {
            violation = "final test logits outside the logit bounds of budget " +
                        budgets[k].Describe(c.config.perturbation) + ": " + outside;
          }
        }
        if (!violation.empty() && ++failed_runs <= 5) ADD_FAILURE() << where << ": " << violation;
        max_reach = std::max(
            max_reach, Reach(cert.boxes.back()[j], cert.nominal.back(), run.after_step.back()));
        max_deviation = std::max(
            max_deviation, (run.after_step.back() - cert.nominal.back()).cwiseAbs().maxCoeff());
      }
    }
    EXPECT_EQ(failed_runs, 0) << Describe(c, budgets[j]) << ": runs outside the certified box";
    // Non-vacuity: the adversaries must actually have moved the parameters.
    EXPECT_GT(max_deviation, 0.0) << Describe(c, budgets[j]) << ": no adversary changed anything";
    std::printf("[soundness] %-70s runs %3d  width %10.4g  attacks reached %5.1f%% of the box\n",
                Describe(c, budgets[j]).c_str(), runs, cert.boxes.back()[j].TotalWidth(),
                100.0 * max_reach);
  }
}

// ---------------------------------------------------------------------------
// Removal (unlearning), Theorem 6.

Campaign RemovalCampaign(const std::string& name, const ModelSpec& model, LossKind loss, Data data,
                         int batch_size, int epochs, double lr) {
  Campaign c{"removal/" + name, Config(model, loss, batch_size, epochs, lr), std::move(data)};
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
  Campaign c{"substitution/" + name, Config(model, loss, batch_size, epochs, lr), std::move(data)};
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
  Campaign c{"poisoning/" + name, Config(model, loss, batch_size, epochs, lr), std::move(data)};
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
