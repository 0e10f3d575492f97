// Adversaries for the perturbed-SGD harness (perturbed_sgd.h), shared by the
// property tests that retrain for real: building blocks (random and top-score
// row choices, the greedy attack on one parameter's clipped gradient), the
// substitution adversaries of paper section 4.2 (T^n_subs: up to n rows per
// batch replaced by arbitrary rows), and the removal and bounded-poisoning
// adversaries with their families per perturbation model (AdversariesFor).
// Every adversary is seeded, makes its choices anew at every step (a greedy
// attack may keep its target parameter for the whole run), and stays within
// the threat it is given; the harness checks that anyway.
//
// Users: soundness_test.cc and soundness_conv_test.cc (parameter boxes under
// every perturbation model, through soundness_harness.h) and
// private_prediction_soundness_test.cc (n* against real retraining).
#ifndef AGT_TESTS_CORE_ADVERSARIES_H_
#define AGT_TESTS_CORE_ADVERSARIES_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "core/common/rng.h"
#include "core/loss/loss.h"
#include "core/model/model.h"
#include "tests/core/perturbed_sgd.h"

namespace agt_test {

// ---------------------------------------------------------------------------
// Building blocks.

// m distinct rows of [0, b), uniformly at random.
inline std::vector<Index> RandomRows(agt::Rng& rng, Index b, int m) {
  std::vector<Index> rows(static_cast<size_t>(b));
  std::iota(rows.begin(), rows.end(), Index{0});
  m = std::min<int>(m, static_cast<int>(b));
  for (int r = 0; r < m; ++r) {
    const Index pick = r + static_cast<Index>(rng.UniformInt(static_cast<uint64_t>(b - r)));
    std::swap(rows[r], rows[pick]);
  }
  rows.resize(static_cast<size_t>(m));
  return rows;
}

// Mostly the full budget, sometimes fewer rows ("up to n").
inline int RandomCount(agt::Rng& rng, int n) {
  if (rng.Uniform() < 0.7) return n;
  return static_cast<int>(rng.UniformInt(static_cast<uint64_t>(n) + 1));
}

// The m rows with the largest scores (ties: lower index first).
inline std::vector<Index> TopRows(const Vector& score, int m) {
  std::vector<Index> rows(static_cast<size_t>(score.size()));
  std::iota(rows.begin(), rows.end(), Index{0});
  std::stable_sort(rows.begin(), rows.end(), [&](Index a, Index b) { return score(a) > score(b); });
  rows.resize(static_cast<size_t>(std::min<Index>(m, score.size())));
  return rows;
}

inline double RandomValidLabel(agt::Rng& rng, int num_classes) {
  if (num_classes == 0) return rng.Uniform(-5.0, 5.0);
  return static_cast<double>(rng.UniformInt(static_cast<uint64_t>(num_classes)));
}

// The parameter a greedy attack moves, and in which direction (+1: push the
// parameter up, i.e. make its mean gradient as small as possible).
struct Target {
  Index param = 0;
  double dir = 1.0;
};

inline Target RandomTarget(agt::Rng& rng, Index num_params) {
  return Target{static_cast<Index>(rng.UniformInt(static_cast<uint64_t>(num_params))),
                rng.Uniform() < 0.5 ? 1.0 : -1.0};
}

// Where the greedy attack aims: one target for the whole run, or a new one
// every step.
class TargetChooser {
 public:
  TargetChooser(uint64_t seed, bool fixed) : rng_(seed), fixed_(fixed) {}
  Target Next(Index num_params) {
    if (!fixed_ || !chosen_) target_ = RandomTarget(rng_, num_params);
    chosen_ = true;
    return target_;
  }
  agt::Rng& rng() { return rng_; }

 private:
  agt::Rng rng_;
  bool fixed_;
  bool chosen_ = false;
  Target target_;
};

// dir * (clipped per-sample gradient of the target parameter); the attack
// wants this small.
inline Vector TargetScore(const AttackContext& c, const Target& target, const Matrix& x,
                          const Vector& y) {
  return target.dir * StepGradients(*c.config, *c.theta, x, y).col(target.param);
}

// A named family of adversaries: make(seed) gives one member.
struct AdversarySpec {
  std::string name;
  std::function<Adversary(uint64_t seed)> make;
};

// Every step one of `parts`, chosen at random.
inline Adversary Mixed(uint64_t seed, std::vector<Adversary> parts) {
  auto rng = std::make_shared<agt::Rng>(seed);
  return [rng, parts](const AttackContext& c, EditableBatch* batch) {
    parts[rng->UniformInt(parts.size())](c, batch);
  };
}

// ---------------------------------------------------------------------------
// Substitution adversaries (replace up to n rows by arbitrary rows).

inline Adversary RandomSubstitution(uint64_t seed) {
  auto rng = std::make_shared<agt::Rng>(seed);
  return [rng](const AttackContext& c, EditableBatch* batch) {
    const double scale = 1.0 + c.x->cwiseAbs().maxCoeff();
    const int m = RandomCount(*rng, c.threat->budget.n);
    for (Index i : RandomRows(*rng, batch->x.rows(), m)) {
      for (Index j = 0; j < batch->x.cols(); ++j) batch->x(i, j) = rng->Uniform(-3, 3) * scale;
      batch->y(i) = RandomValidLabel(*rng, c.threat->num_classes);
    }
  };
}

// Extreme points far outside the data: every feature +-1e3, random labels.
inline Adversary ExtremeSubstitution(uint64_t seed) {
  auto rng = std::make_shared<agt::Rng>(seed);
  return [rng](const AttackContext& c, EditableBatch* batch) {
    const int m = RandomCount(*rng, c.threat->budget.n);
    for (Index i : RandomRows(*rng, batch->x.rows(), m)) {
      for (Index j = 0; j < batch->x.cols(); ++j) {
        batch->x(i, j) = rng->Uniform() < 0.5 ? -1e3 : 1e3;
      }
      batch->y(i) = c.threat->num_classes == 0 ? (rng->Uniform() < 0.5 ? -1e3 : 1e3)
                                               : RandomValidLabel(*rng, c.threat->num_classes);
    }
  };
}

// Every class, or a spread of regression targets from far below to far above.
inline std::vector<double> CandidateLabels(int num_classes) {
  if (num_classes == 0) return {-1e3, -10.0, 0.0, 10.0, 1e3};
  std::vector<double> labels;
  for (int k = 0; k < num_classes; ++k) labels.push_back(k);
  return labels;
}

// Replaces the rows of largest target score by the candidate (extreme points
// with every label, and batch rows relabelled) of smallest score.
inline Adversary GreedySubstitution(uint64_t seed, bool fixed_target) {
  auto chooser = std::make_shared<TargetChooser>(seed, fixed_target);
  return [chooser](const AttackContext& c, EditableBatch* batch) {
    const Target target = chooser->Next(c.theta->size());
    agt::Rng& rng = chooser->rng();
    const Index d = c.x->cols();
    const Index b = c.x->rows();
    const std::vector<double> labels = CandidateLabels(c.threat->num_classes);
    const int num_points = 8;
    Matrix cand_x(static_cast<Index>(num_points * labels.size()) + b, d);
    Vector cand_y(cand_x.rows());
    Index row = 0;
    for (int p = 0; p < num_points; ++p) {
      const double scale = p < 4 ? 1e3 : 10.0;
      Vector point(d);
      for (Index j = 0; j < d; ++j) point(j) = (rng.Uniform() < 0.5 ? -1.0 : 1.0) * scale;
      for (double label : labels) {
        cand_x.row(row) = point.transpose();
        cand_y(row++) = label;
      }
    }
    for (Index i = 0; i < b; ++i) {
      cand_x.row(row) = c.x->row(i);
      cand_y(row++) = RandomValidLabel(rng, c.threat->num_classes);
    }
    const Vector cand_score = TargetScore(c, target, cand_x, cand_y);
    Index best = 0;
    cand_score.minCoeff(&best);
    const Vector score = TargetScore(c, target, *c.x, *c.y);
    for (Index i : TopRows(score, c.threat->budget.n)) {
      if (score(i) <= cand_score(best)) break;
      batch->x.row(i) = cand_x.row(best);
      batch->y(i) = cand_y(best);
    }
  };
}

// ---------------------------------------------------------------------------
// Building blocks for removal and poisoning, on the raw inputs of the model
// (agt::Forward and agt::PerSampleGradients apply a frozen prefix, if any).

inline Vector RowLosses(const AttackContext& c, const Matrix& x, const Vector& y) {
  return agt::LossValues(c.config->loss, agt::Forward(c.config->model, *c.theta, x), y);
}

// Central finite-difference gradient of a per-row function w.r.t. each row's
// raw inputs (N x d); only its signs are used. Independent of the core's
// backward pass, so a wrong backward pass cannot blunt the attack.
inline Matrix InputGradient(const std::function<Vector(const Matrix&)>& f, const Matrix& x) {
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

inline Matrix Signs(const Matrix& m) {
  return m.unaryExpr([](double v) { return v < 0.0 ? -1.0 : 1.0; });
}

// x + epsilon * signs, row by row (signs in {-1, +1}).
inline Matrix Corner(const Matrix& x, const Matrix& signs, double epsilon) {
  return x + epsilon * signs;
}

// The labels a poisoned row may take (classification: other classes or the
// target; regression: the two ends y -+ nu). Empty if labels are fixed.
inline std::vector<double> LabelOptions(const Threat& threat, double y) {
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

// A random allowed label; a regression target uniformly in [y - nu, y + nu],
// or (regression_ends) mostly at its ends, sometimes inside.
inline double RandomLabelChange(agt::Rng& rng, const Threat& threat, double y,
                                bool regression_ends) {
  if (threat.num_classes == 0) {
    if (!regression_ends) return y + threat.model.label.nu * rng.Uniform(-1.0, 1.0);
    // Mostly the ends of [y - nu, y + nu], sometimes inside.
    const double u = rng.Uniform() < 0.6 ? (rng.Uniform() < 0.5 ? -1.0 : 1.0) : rng.Uniform(-1, 1);
    return y + threat.model.label.nu * u;
  }
  const std::vector<double> options = LabelOptions(threat, y);
  if (options.empty()) return y;
  return options[rng.UniformInt(options.size())];
}

// ---------------------------------------------------------------------------
// Removal adversaries (drop up to n rows of the batch, chosen anew every
// step).

inline Adversary RandomRemoval(uint64_t seed) {
  auto rng = std::make_shared<agt::Rng>(seed);
  return [rng](const AttackContext& c, EditableBatch* batch) {
    const int m = RandomCount(*rng, c.threat->budget.n);
    for (Index i : RandomRows(*rng, batch->x.rows(), m)) batch->keep[i] = false;
  };
}

// Drops the rows of largest loss, or of smallest loss, chosen per step.
inline Adversary LossRemoval(uint64_t seed) {
  auto rng = std::make_shared<agt::Rng>(seed);
  return [rng](const AttackContext& c, EditableBatch* batch) {
    Vector score = RowLosses(c, *c.x, *c.y);
    if (rng->Uniform() < 0.5) score = -score;
    for (Index i : TopRows(score, c.threat->budget.n)) batch->keep[i] = false;
  };
}

// Drops the m <= n rows that minimise dir * (mean target gradient of the rest).
inline Adversary GreedyRemoval(uint64_t seed, bool fixed_target) {
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
inline void ChoosePoisonRows(const Threat& threat, const Vector& feature_score,
                             const Vector& label_score, bool positive_only,
                             std::vector<Index>* feature_rows, std::vector<Index>* label_rows) {
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

// Random rows, random corners of the ball or interior points, random allowed
// labels (RandomLabelChange).
inline Adversary RandomPoisoning(uint64_t seed, bool regression_ends) {
  auto rng = std::make_shared<agt::Rng>(seed);
  return [rng, regression_ends](const AttackContext& c, EditableBatch* batch) {
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
    for (Index i : label_rows) {
      batch->y(i) = RandomLabelChange(*rng, *c.threat, (*c.y)(i), regression_ends);
    }
  };
}

// Gradient-sign corners on random rows (FGSM): every step, random rows move to
// the corner along the sign of the loss's input gradient at the current
// parameters (or, on some steps, against it); labels change at random.
inline Adversary GradientSignPoisoning(uint64_t seed, bool regression_ends) {
  auto rng = std::make_shared<agt::Rng>(seed);
  return [rng, regression_ends](const AttackContext& c, EditableBatch* batch) {
    const Index b = c.x->rows();
    Vector score(b);
    for (Index i = 0; i < b; ++i) score(i) = rng->Uniform();
    std::vector<Index> feature_rows;
    std::vector<Index> label_rows;
    ChoosePoisonRows(*c.threat, score, score, false, &feature_rows, &label_rows);
    const double sign = rng->Uniform() < 0.75 ? 1.0 : -1.0;
    const Matrix grad = InputGradient([&](const Matrix& x) { return RowLosses(c, x, *c.y); }, *c.x);
    const Matrix corner = Corner(*c.x, sign * Signs(grad), c.threat->model.epsilon);
    for (Index i : feature_rows) batch->x.row(i) = corner.row(i);
    for (Index i : label_rows) {
      batch->y(i) = RandomLabelChange(*rng, *c.threat, (*c.y)(i), regression_ends);
    }
  };
}

// Loss ascent: the rows of largest loss (or, on other steps, smallest loss)
// move to the corner along the sign of the loss's input gradient and take the
// allowed label of largest loss there.
inline Adversary LossAscentPoisoning(uint64_t seed) {
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
inline Adversary GreedyPoisoning(uint64_t seed, bool fixed_target) {
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

// ---------------------------------------------------------------------------
// The adversary families of each perturbation model.

// What a test file's poisoning families include beyond the common ones.
struct AdversaryOptions {
  // Random label changes move a regression target mostly to the ends of
  // [y - nu, y + nu] (else uniformly inside).
  bool regression_label_ends = false;
  // The gradient-sign (FGSM) poisoner, alone and among the mixed ones.
  bool gradient_sign = false;
};

inline std::vector<AdversarySpec> AdversariesFor(agt::PerturbationKind kind,
                                                 const AdversaryOptions& options = {}) {
  switch (kind) {
    case agt::PerturbationKind::kRemoval:
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
    case agt::PerturbationKind::kSubstitution:
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
    case agt::PerturbationKind::kBoundedPoisoning: {
      const bool ends = options.regression_label_ends;
      const bool gradient_sign = options.gradient_sign;
      std::vector<AdversarySpec> specs = {
          {"random", [ends](uint64_t s) { return RandomPoisoning(s, ends); }}};
      if (gradient_sign) {
        specs.push_back(
            {"gradient-sign", [ends](uint64_t s) { return GradientSignPoisoning(s, ends); }});
      }
      specs.push_back({"loss-ascent", LossAscentPoisoning});
      specs.push_back({"greedy-fixed", [](uint64_t s) { return GreedyPoisoning(s, true); }});
      specs.push_back({"greedy-varying", [](uint64_t s) { return GreedyPoisoning(s, false); }});
      // The parts are seeded s + 1, s + 2, ... in order.
      specs.push_back({"mixed", [ends, gradient_sign](uint64_t s) {
                         std::vector<Adversary> parts = {RandomPoisoning(s + 1, ends)};
                         if (gradient_sign) parts.push_back(GradientSignPoisoning(s + 2, ends));
                         parts.push_back(LossAscentPoisoning(s + parts.size() + 1));
                         parts.push_back(GreedyPoisoning(s + parts.size() + 1, false));
                         return Mixed(s, std::move(parts));
                       }});
      return specs;
    }
  }
  return {};
}

}  // namespace agt_test

#endif  // AGT_TESTS_CORE_ADVERSARIES_H_
