// Adversaries for the perturbed-SGD harness (perturbed_sgd.h), shared by the
// property tests that retrain for real: building blocks (random and top-score
// row choices, the greedy attack on one parameter's clipped gradient) and the
// substitution adversaries of paper section 4.2 (T^n_subs: up to n rows per
// batch replaced by arbitrary rows). Every adversary is seeded, makes its
// choices anew at every step (a greedy attack may keep its target parameter
// for the whole run), and stays within the threat it is given; the harness
// checks that anyway.
//
// Users: soundness_test.cc (parameter boxes under every perturbation model)
// and private_prediction_soundness_test.cc (n* against real retraining).
#ifndef AGT_TESTS_CORE_ADVERSARIES_H_
#define AGT_TESTS_CORE_ADVERSARIES_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "core/common/rng.h"
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
}  // namespace agt_test

#endif  // AGT_TESTS_CORE_ADVERSARIES_H_
