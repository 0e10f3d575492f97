// n*(x) against real retraining (paper section 10.2, Theorem 11;
// ARCHITECTURE.md section 3, "Private prediction"). n*(x) is the largest
// trained substitution budget at which x is certified stable (agt::NStar).
// The smooth-sensitivity release is only as private as n* is sound: every
// model trained with up to n*(x) rows per batch substituted must predict the
// nominal label at x.
//
// On small binary problems (half-moons and blobs, linear models and ReLU
// MLPs, BCE and hinge, clamp clipping) trained with AGT under T^n_subs for
// the budgets {0, 1, 2, 3, 4} at once, these tests check
//  - monotonicity: stability at a budget implies stability at every smaller
//    trained budget (observed on these problems, where the boxes are nested;
//    the trainer does not promise nested boxes), and n* from any subset of
//    the budgets is at most n* from all of them; budget 0 alone gives n* = 0;
//  - budget 0: its box is the nominal trajectory and certifies every point;
//  - soundness: many real retrainings (perturbed_sgd.h: same initialisation,
//    order, learning rate and clipping as the trainer) in which every batch
//    has up to m rows substituted, by random and adversarial rows chosen anew
//    at every step, stay in the box of every budget >= m at every step, and
//    give every test point with n*(x) >= m its nominal label.
// The adversaries include a greedy attack on the prediction at one test
// point; a negative control, aiming it at points whose n* is below m, shows
// that the attacks do flip predictions that are not certified.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/bounds/ibp.h"
#include "core/certify/certify.h"
#include "core/common/rng.h"
#include "core/data/dataset.h"
#include "core/loss/loss.h"
#include "core/model/model.h"
#include "core/privacy/privacy.h"
#include "core/train/train.h"
#include "tests/core/adversaries.h"
#include "tests/core/perturbed_sgd.h"
#include "tests/core/soundness_harness.h"

namespace agt_test {
namespace {

using agt::Dataset;
using agt::LossKind;
using agt::ModelSpec;
using agt::TrainConfig;

constexpr int kMaxBudget = 4;
constexpr int kSeedsPerAdversary = 20;

// ---------------------------------------------------------------------------
// Totals over the whole binary, printed at the end.

struct Totals {
  int problems = 0;
  int test_points = 0;
  int points_with_n_star_at_least_1 = 0;
  int retrainings = 0;
  int64_t label_checks = 0;  // (point with n* >= m, retraining with m) pairs
  int64_t box_checks = 0;    // (step, box of a budget >= m) pairs
  int64_t uncertified_flips = 0;
};

Totals& GlobalTotals() {
  static Totals totals;
  return totals;
}

class TotalsReporter : public ::testing::Environment {
 public:
  void TearDown() override {
    const Totals& t = GlobalTotals();
    std::printf(
        "[n* soundness] total: %d problems, %d test points, %d with n* >= 1; %d retrainings, "
        "%lld label checks, %lld box checks, all passed unless reported; %lld label flips "
        "among points with n* < m (allowed)\n",
        t.problems, t.test_points, t.points_with_n_star_at_least_1, t.retrainings,
        static_cast<long long>(t.label_checks), static_cast<long long>(t.box_checks),
        static_cast<long long>(t.uncertified_flips));
  }
};

[[maybe_unused]] ::testing::Environment* const kReporter =
    ::testing::AddGlobalTestEnvironment(new TotalsReporter);

// ---------------------------------------------------------------------------
// Problems: a training set, held-out points to certify, and an AGT config.

struct Problem {
  std::string name;
  TrainConfig config;
  Dataset train;
  Dataset test;
  uint64_t init_seed = 7;
};

ModelSpec Linear(int in) { return agt::ModelSpec::Mlp({in, 1}); }

TrainConfig SubstitutionConfig(const ModelSpec& model, LossKind loss, int batch_size, int epochs,
                               double learning_rate, double gamma) {
  TrainConfig config = Config(model, loss, batch_size, epochs, learning_rate);
  config.clip_gamma = gamma;
  config.perturbation.kind = agt::PerturbationKind::kSubstitution;
  for (int n = 0; n <= kMaxBudget; ++n) config.budgets.push_back(agt::Budget{n, 0});
  return config;
}

// The first n_train rows train, the rest are certified.
Problem MakeProblem(std::string name, const Dataset& all, int n_train, TrainConfig config) {
  return Problem{std::move(name), std::move(config), all.Slice(0, n_train),
                 all.Slice(n_train, all.size())};
}

std::vector<Problem> Problems() {
  std::vector<Problem> problems;
  const Dataset moons = agt::MakeMoons(200, 0.1, 11);
  problems.push_back(
      MakeProblem("moons-2d/linear-bce", moons, 80,
                  SubstitutionConfig(Linear(2), LossKind::kBinaryCrossEntropy, 20, 3, 0.2, 0.5)));
  problems.push_back(MakeProblem(
      "moons-2d/mlp-hinge", moons, 80,
      SubstitutionConfig(ModelSpec::Mlp({2, 8, 1}), LossKind::kHinge, 20, 3, 0.05, 0.5)));
  const Dataset blobs = agt::MakeBlobs(250, 4, 2, 1.0, 3.0, 21);
  Problem linear_hinge =
      MakeProblem("blobs-4d/linear-hinge", blobs, 100,
                  SubstitutionConfig(Linear(4), LossKind::kHinge, 25, 4, 0.1, 1.0));
  linear_hinge.config.optimizer.l2 = 0.01;
  problems.push_back(std::move(linear_hinge));
  problems.push_back(MakeProblem(
      "blobs-4d/mlp-hinge", blobs, 80,
      SubstitutionConfig(ModelSpec::Mlp({4, 16, 1}), LossKind::kHinge, 40, 2, 0.1, 0.5)));
  problems.push_back(
      MakeProblem("blobs-4d/mlp-bce", blobs, 80,
                  SubstitutionConfig(ModelSpec::Mlp({4, 16, 1}), LossKind::kBinaryCrossEntropy, 40,
                                     3, 0.1, 0.5)));
  const Dataset poly = [] {
    Dataset d = agt::MakeMoons(160, 0.1, 5);
    d.x = agt::PolynomialFeatures(d.x, 3);
    return d;
  }();
  Problem small_batch =
      MakeProblem("moons-poly3-9d/linear-bce", poly, 40,
                  SubstitutionConfig(Linear(9), LossKind::kBinaryCrossEntropy, 10, 4, 0.1, 0.5));
  small_batch.config.optimizer.lr_decay = 0.1;
  problems.push_back(std::move(small_batch));
  return problems;
}

// ---------------------------------------------------------------------------
// AGT training and certification.

struct Certified {
  CertifiedTrajectory trajectory;         // nominal and boxes after every step
  std::vector<int> budgets;               // the trained n, increasing
  std::vector<std::vector<bool>> stable;  // [budget][point], final boxes
  Matrix nominal_logits;                  // test points x 1
  std::vector<int> predicted;             // nominal label per test point
  std::vector<int> n_star;                // per test point
};

// Trains, checks that the harness reproduces the trainer's nominal
// trajectory, and certifies the test points at every budget.
void TrainAndCertify(const Problem& p, Certified* out) {
  const Vector init = agt::InitParameters(p.config.model, p.init_seed);
  out->trajectory = RunCertifiedTraining(p.config, p.train, init);
  ASSERT_TRUE(out->trajectory.error.empty()) << out->trajectory.error;
  const std::vector<Vector>& nominal = out->trajectory.nominal;
  ASSERT_FALSE(nominal.empty());

  const Threat none = MakeThreat(p.config, agt::Budget{}, p.train.num_classes);
  const PerturbedTraining plain = TrainPerturbed(p.config, p.train, init, none, nullptr);
  ASSERT_EQ(plain.after_step.size(), nominal.size());
  for (size_t t = 0; t < nominal.size(); ++t) {
    ASSERT_LE((plain.after_step[t] - nominal[t]).cwiseAbs().maxCoeff(),
              1e-12 * (1.0 + nominal[t].cwiseAbs().maxCoeff()))
        << "the harness differs from the trainer's nominal trajectory at step " << t + 1;
  }

  out->budgets.clear();
  out->stable.clear();
  for (size_t j = 0; j < p.config.budgets.size(); ++j) {
    out->budgets.push_back(p.config.budgets[j].n);
    const agt::LogitBounds logits = agt::ComputeLogitBounds(
        p.config.model, nominal.back(), out->trajectory.boxes.back()[j], p.test.x);
    out->stable.push_back(agt::Stable(logits.bounds));
    if (j == 0) {
      out->nominal_logits = logits.nominal;
      out->predicted = agt::PredictClasses(logits.nominal);
    }
  }
  absl::StatusOr<std::vector<int>> n_star = agt::NStar(out->budgets, out->stable);
  ASSERT_TRUE(n_star.ok()) << n_star.status();
  out->n_star = *std::move(n_star);
}

// ---------------------------------------------------------------------------
// Substitution adversaries beyond the shared ones (adversaries.h). Labels are
// binary here.

// Up to m rows keep their features and get the other label.
Adversary LabelFlipSubstitution(uint64_t seed) {
  auto rng = std::make_shared<agt::Rng>(seed);
  return [rng](const AttackContext& c, EditableBatch* batch) {
    const int m = RandomCount(*rng, c.threat->budget.n);
    for (Index i : RandomRows(*rng, batch->x.rows(), m)) batch->y(i) = 1.0 - batch->y(i);
  };
}

// Up to m rows become copies of random training rows (anywhere in the
// dataset), with their label or the other one.
Adversary CopySubstitution(uint64_t seed, std::shared_ptr<const Dataset> train) {
  auto rng = std::make_shared<agt::Rng>(seed);
  return [rng, train](const AttackContext& c, EditableBatch* batch) {
    const int m = RandomCount(*rng, c.threat->budget.n);
    for (Index i : RandomRows(*rng, batch->x.rows(), m)) {
      const Index source =
          static_cast<Index>(rng->UniformInt(static_cast<uint64_t>(train->size())));
      batch->x.row(i) = train->x.row(source);
      const double label = train->y(source);
      batch->y(i) = rng->Uniform() < 0.5 ? label : 1.0 - label;
    }
  };
}

// Up to m rows move to random corners of the data's bounding box, blown up
// 1 to 3 times about its centre, with random labels.
Adversary DataCornerSubstitution(uint64_t seed, std::shared_ptr<const Dataset> train) {
  auto rng = std::make_shared<agt::Rng>(seed);
  const Vector lo = train->x.colwise().minCoeff().transpose();
  const Vector hi = train->x.colwise().maxCoeff().transpose();
  return [rng, lo, hi](const AttackContext& c, EditableBatch* batch) {
    const int m = RandomCount(*rng, c.threat->budget.n);
    for (Index i : RandomRows(*rng, batch->x.rows(), m)) {
      const double blow_up = rng->Uniform(1.0, 3.0);
      for (Index j = 0; j < batch->x.cols(); ++j) {
        const double sign = rng->Uniform() < 0.5 ? -1.0 : 1.0;
        batch->x(i, j) = 0.5 * (lo(j) + hi(j)) + sign * blow_up * 0.5 * (hi(j) - lo(j));
      }
      batch->y(i) = rng->Uniform() < 0.5 ? 0.0 : 1.0;
    }
  };
}

// A test point whose prediction an attack tries to flip.
struct PredictionTarget {
  Vector x;           // the input
  double push = 1.0;  // +1: raise the logit (nominal label 0), -1: lower it
};

// Greedy attack on the prediction at one target: the next step moves theta
// by -lr times the mean clipped gradient, which changes the target's logit
// by about -lr / b * sum_i g_i . grad_theta f(x*). Each step replaces the
// (up to m) batch rows that resist the push most by the candidate row that
// helps it most (far and data-scale corners, the target itself, training-row
// copies and batch rows, each with both labels), while that helps. The
// target is drawn from `targets` once per run (fixed) or every step.
Adversary PredictionFlipSubstitution(uint64_t seed, bool fixed_target,
                                     std::shared_ptr<const std::vector<PredictionTarget>> targets,
                                     std::shared_ptr<const Dataset> train) {
  auto rng = std::make_shared<agt::Rng>(seed);
  auto chosen = std::make_shared<size_t>(targets->size());  // size() = none yet
  const double data_scale = 1.0 + train->x.cwiseAbs().maxCoeff();
  return [=](const AttackContext& c, EditableBatch* batch) {
    if (targets->empty()) return;
    if (!fixed_target || *chosen == targets->size()) {
      *chosen = static_cast<size_t>(rng->UniformInt(targets->size()));
    }
    const PredictionTarget& target = (*targets)[*chosen];
    // A positive multiple of grad_theta f(x*): the BCE gradient with label 0
    // is sigmoid(f) grad f, whatever loss the model trains with.
    Matrix target_grad;
    agt::PerSampleGradients(c.config->model, *c.theta, target.x.transpose(), Vector::Zero(1),
                            LossKind::kBinaryCrossEntropy, &target_grad);
    const Vector direction = target.push * target_grad.row(0).transpose();

    const Index d = c.x->cols();
    const Index b = c.x->rows();
    constexpr int kCorners = 8;
    constexpr int kCopies = 8;
    Matrix cand_x(kCorners + 1 + kCopies + b, d);
    for (int k = 0; k < kCorners; ++k) {
      const double scale = k < kCorners / 2 ? 1e3 : data_scale * rng->Uniform(1.0, 3.0);
      for (Index j = 0; j < d; ++j) cand_x(k, j) = (rng->Uniform() < 0.5 ? -1.0 : 1.0) * scale;
    }
    cand_x.row(kCorners) = target.x.transpose();
    for (int k = 0; k < kCopies; ++k) {
      cand_x.row(kCorners + 1 + k) =
          train->x.row(static_cast<Index>(rng->UniformInt(static_cast<uint64_t>(train->size()))));
    }
    cand_x.bottomRows(b) = *c.x;
    Matrix both_x(2 * cand_x.rows(), d);
    both_x << cand_x, cand_x;
    Vector both_y(both_x.rows());
    both_y << Vector::Zero(cand_x.rows()), Vector::Ones(cand_x.rows());

    // direction . g per row: the attack wants the batch's sum as small as possible.
    const Vector cand_score = StepGradients(*c.config, *c.theta, both_x, both_y) * direction;
    Index best = 0;
    cand_score.minCoeff(&best);
    const Vector score = StepGradients(*c.config, *c.theta, *c.x, *c.y) * direction;
    for (Index i : TopRows(score, c.threat->budget.n)) {
      if (score(i) <= cand_score(best)) break;
      batch->x.row(i) = both_x.row(best);
      batch->y(i) = both_y(best);
    }
  };
}

// The attacks run against budget m: the targets are the test points certified
// at m (n* >= m) or, for the negative control, those that are not.
std::vector<AdversarySpec> SubstitutionAdversaries(
    std::shared_ptr<const Dataset> train,
    std::shared_ptr<const std::vector<PredictionTarget>> targets) {
  return {
      {"random", RandomSubstitution},
      {"extreme", ExtremeSubstitution},
      {"greedy-param", [](uint64_t s) { return GreedySubstitution(s, false); }},
      {"label-flip", LabelFlipSubstitution},
      {"copies", [train](uint64_t s) { return CopySubstitution(s, train); }},
      {"data-corners", [train](uint64_t s) { return DataCornerSubstitution(s, train); }},
      {"flip-fixed",
       [=](uint64_t s) { return PredictionFlipSubstitution(s, true, targets, train); }},
      {"flip-varying",
       [=](uint64_t s) { return PredictionFlipSubstitution(s, false, targets, train); }},
      {"mixed",
       [=](uint64_t s) {
         return Mixed(s, {RandomSubstitution(s + 1), ExtremeSubstitution(s + 2),
                          GreedySubstitution(s + 3, false), LabelFlipSubstitution(s + 4),
                          CopySubstitution(s + 5, train), DataCornerSubstitution(s + 6, train),
                          PredictionFlipSubstitution(s + 7, false, targets, train)});
       }},
  };
}

// The test points whose n* is at least m (certified) or below m, with the
// push that would flip each.
std::vector<PredictionTarget> Targets(const Problem& p, const Certified& cert, int m,
                                      bool certified) {
  std::vector<PredictionTarget> targets;
  for (Index i = 0; i < p.test.size(); ++i) {
    if ((cert.n_star[i] >= m) != certified) continue;
    targets.push_back({p.test.x.row(i).transpose(), cert.predicted[i] == 1 ? -1.0 : 1.0});
  }
  return targets;
}

// ---------------------------------------------------------------------------
// Monotonicity of the flags and of n*.

TEST(NStarMonotonicity, StableAtABudgetImpliesStableAtEverySmallerTrainedBudget) {
  for (const Problem& p : Problems()) {
    SCOPED_TRACE(p.name);
    Certified cert;
    ASSERT_NO_FATAL_FAILURE(TrainAndCertify(p, &cert));
    int violations = 0;
    for (size_t j = 1; j < cert.stable.size(); ++j) {
      for (size_t i = 0; i < cert.n_star.size(); ++i) {
        if (cert.stable[j][i] && !cert.stable[j - 1][i] && ++violations <= 5) {
          ADD_FAILURE() << "test point " << i << " stable at budget " << cert.budgets[j]
                        << " but not at " << cert.budgets[j - 1];
        }
      }
    }
    EXPECT_EQ(violations, 0);
    // Equivalently, here: the stable budgets of each point are exactly those
    // up to n*.
    for (size_t i = 0; i < cert.n_star.size(); ++i) {
      for (size_t j = 0; j < cert.budgets.size(); ++j) {
        EXPECT_EQ(cert.stable[j][i], cert.budgets[j] <= cert.n_star[i])
            << "point " << i << " budget " << cert.budgets[j] << " n* " << cert.n_star[i];
      }
    }
  }
}

TEST(NStarMonotonicity, NStarFromASubsetOfTheBudgetsIsAtMostNStarFromAll) {
  for (const Problem& p : Problems()) {
    SCOPED_TRACE(p.name);
    Certified cert;
    ASSERT_NO_FATAL_FAILURE(TrainAndCertify(p, &cert));
    const size_t k = cert.budgets.size();
    int subsets = 0;
    for (uint32_t mask = 1; mask < (1u << k); ++mask) {
      std::vector<int> budgets;
      std::vector<std::vector<bool>> stable;
      for (size_t j = 0; j < k; ++j) {
        if ((mask >> j) & 1u) {
          budgets.push_back(cert.budgets[j]);
          stable.push_back(cert.stable[j]);
        }
      }
      absl::StatusOr<std::vector<int>> n_star = agt::NStar(budgets, stable);
      ASSERT_TRUE(n_star.ok()) << n_star.status();
      ++subsets;
      for (size_t i = 0; i < cert.n_star.size(); ++i) {
        ASSERT_LE((*n_star)[i], cert.n_star[i]) << "subset mask " << mask << ", point " << i;
        // n* is a trained budget of the subset at which the point is stable, or 0.
        const auto at = std::find(budgets.begin(), budgets.end(), (*n_star)[i]);
        if ((*n_star)[i] > 0) {
          ASSERT_NE(at, budgets.end());
          ASSERT_TRUE(stable[static_cast<size_t>(at - budgets.begin())][i]);
        }
      }
    }
    EXPECT_EQ(subsets, (1 << k) - 1);
  }
}

TEST(NStarMonotonicity, BudgetZeroAloneOrNoStableBudgetGivesNStarZero) {
  for (const Problem& p : Problems()) {
    SCOPED_TRACE(p.name);
    Certified cert;
    ASSERT_NO_FATAL_FAILURE(TrainAndCertify(p, &cert));
    ASSERT_EQ(cert.budgets.front(), 0);
    absl::StatusOr<std::vector<int>> zero_only = agt::NStar({0}, {cert.stable.front()});
    ASSERT_TRUE(zero_only.ok()) << zero_only.status();
    for (int n : *zero_only) EXPECT_EQ(n, 0);
    // Without budget 0 in the set: a point stable at no positive budget gets 0.
    const std::vector<int> positive(cert.budgets.begin() + 1, cert.budgets.end());
    const std::vector<std::vector<bool>> positive_stable(cert.stable.begin() + 1,
                                                         cert.stable.end());
    absl::StatusOr<std::vector<int>> n_star = agt::NStar(positive, positive_stable);
    ASSERT_TRUE(n_star.ok()) << n_star.status();
    int unstable_everywhere = 0;
    for (size_t i = 0; i < n_star->size(); ++i) {
      bool any = false;
      for (const std::vector<bool>& flags : positive_stable) any = any || flags[i];
      if (!any) {
        ++unstable_everywhere;
        EXPECT_EQ((*n_star)[i], 0) << "point " << i;
      }
      EXPECT_EQ((*n_star)[i], cert.n_star[i]) << "point " << i;
    }
    std::printf("[n* soundness] %-26s points stable at no positive budget: %d of %d\n",
                p.name.c_str(), unstable_everywhere, static_cast<int>(n_star->size()));
  }
}

// ---------------------------------------------------------------------------
// Budget 0.

TEST(NStarBudgetZero, BoxOfBudgetZeroIsTheNominalModelAndCertifiesEveryPoint) {
  for (const Problem& p : Problems()) {
    SCOPED_TRACE(p.name);
    Certified cert;
    ASSERT_NO_FATAL_FAILURE(TrainAndCertify(p, &cert));
    ASSERT_EQ(cert.budgets.front(), 0);
    const CertifiedTrajectory& tr = cert.trajectory;
    for (size_t t = 0; t < tr.nominal.size(); ++t) {
      const agt::ParameterBox& box = tr.boxes[t].front();
      ASSERT_TRUE((box.lower.array() == tr.nominal[t].array()).all() &&
                  (box.upper.array() == tr.nominal[t].array()).all())
          << "after step " << t + 1 << ": width " << box.TotalWidth();
    }
    // A point box certifies the nominal prediction of every point.
    for (size_t i = 0; i < cert.stable.front().size(); ++i) {
      EXPECT_TRUE(cert.stable.front()[i]) << "point " << i;
    }
  }
}

// ---------------------------------------------------------------------------
// Soundness against real retraining.

struct SoundnessCounts {
  int retrainings = 0;
  int64_t label_checks = 0;
  int64_t box_checks = 0;
  int64_t uncertified_flips = 0;  // points with n* < m that changed label
  // How far any retraining moved the logit of a point with n* >= m towards
  // the decision threshold 0, as a fraction of its nominal distance (1 would
  // reach it).
  double max_reach = 0.0;
  int failures = 0;
};

// Retrains under every adversary with up to m rows substituted per batch and
// checks boxes and certified labels; counts into `counts`.
void RetrainAndCheck(const Problem& p, const Certified& cert, int m, bool target_certified,
                     SoundnessCounts* counts) {
  const Vector init = agt::InitParameters(p.config.model, p.init_seed);
  const Threat threat = MakeThreat(p.config, agt::Budget{m, 0}, p.train.num_classes);
  auto train = std::make_shared<const Dataset>(p.train);
  auto targets =
      std::make_shared<const std::vector<PredictionTarget>>(Targets(p, cert, m, target_certified));
  const std::vector<AdversarySpec> adversaries = SubstitutionAdversaries(train, targets);
  const CertifiedTrajectory& tr = cert.trajectory;
  for (size_t a = 0; a < adversaries.size(); ++a) {
    for (int s = 0; s < kSeedsPerAdversary; ++s) {
      const uint64_t seed =
          10000 * static_cast<uint64_t>(m) + 100 * a + s + (target_certified ? 0 : 500000);
      const PerturbedTraining run =
          TrainPerturbed(p.config, p.train, init, threat, adversaries[a].make(seed));
      const std::string where = p.name + ", m " + std::to_string(m) + ", adversary " +
                                adversaries[a].name + " seed " + std::to_string(seed);
      ASSERT_TRUE(run.violation.empty()) << where << ": harness bug: " << run.violation;
      ASSERT_EQ(run.after_step.size(), tr.nominal.size()) << where;
      ++counts->retrainings;
      std::string failure;
      for (size_t t = 0; t < tr.nominal.size() && failure.empty(); ++t) {
        for (size_t j = 0; j < cert.budgets.size() && failure.empty(); ++j) {
          if (cert.budgets[j] < m) continue;
          ++counts->box_checks;
          const std::string outside = OutsideBox(tr.boxes[t][j], run.after_step[t]);
          if (!outside.empty()) {
            failure = "after step " + std::to_string(t + 1) + ", box of budget " +
                      std::to_string(cert.budgets[j]) + ": " + outside;
          }
        }
      }
      const Matrix logits = agt::Forward(p.config.model, run.after_step.back(), p.test.x);
      const std::vector<int> labels = agt::PredictClasses(logits);
      for (size_t i = 0; i < labels.size(); ++i) {
        if (cert.n_star[i] < m) {
          counts->uncertified_flips += labels[i] != cert.predicted[i];
          continue;
        }
        ++counts->label_checks;
        const double nominal_logit = cert.nominal_logits(static_cast<Index>(i), 0);
        if (nominal_logit != 0.0) {
          const double reach = 1.0 - logits(static_cast<Index>(i), 0) / nominal_logit;
          counts->max_reach = std::max(counts->max_reach, reach);
        }
        if (labels[i] != cert.predicted[i] && failure.empty()) {
          failure = "test point " + std::to_string(i) + " with n* " +
                    std::to_string(cert.n_star[i]) + " (nominal logit " +
                    std::to_string(cert.nominal_logits(static_cast<Index>(i), 0)) +
                    ") changed label from " + std::to_string(cert.predicted[i]) + " to " +
                    std::to_string(labels[i]);
        }
      }
      if (!failure.empty() && ++counts->failures <= 5) ADD_FAILURE() << where << ": " << failure;
    }
  }
}

TEST(NStarSoundness,
     PointsWithNStarAtLeastMKeepTheirLabelUnderEveryRetrainingWithMRowsSubstituted) {
  int points_certified = 0;
  int64_t all_label_checks = 0;
  for (const Problem& p : Problems()) {
    SCOPED_TRACE(p.name);
    Certified cert;
    ASSERT_NO_FATAL_FAILURE(TrainAndCertify(p, &cert));
    std::vector<int> histogram(kMaxBudget + 1, 0);
    for (int n : cert.n_star) ++histogram[static_cast<size_t>(n)];
    const int certified = static_cast<int>(cert.n_star.size()) - histogram[0];
    // Non-vacuity: every problem certifies some points at budget 1 or more.
    EXPECT_GT(certified, 0) << "no test point has n* >= 1";

    SoundnessCounts counts;
    for (int m = 1; m <= kMaxBudget; ++m) {
      ASSERT_NO_FATAL_FAILURE(RetrainAndCheck(p, cert, m, /*target_certified=*/true, &counts));
    }
    EXPECT_EQ(counts.failures, 0) << "retrainings that broke a certificate";
    EXPECT_GE(counts.label_checks, 1000) << "too few (point, retraining) checks to mean much";

    std::printf("[n* soundness] %-26s n* histogram 0..%d:", p.name.c_str(), kMaxBudget);
    for (int h : histogram) std::printf(" %3d", h);
    std::printf(
        "  | %d retrainings, %lld label checks (closest: %.0f%% of the way to 0), %lld box "
        "checks, %lld flips with n* < m\n",
        counts.retrainings, static_cast<long long>(counts.label_checks), 100.0 * counts.max_reach,
        static_cast<long long>(counts.box_checks),
        static_cast<long long>(counts.uncertified_flips));

    Totals& totals = GlobalTotals();
    ++totals.problems;
    totals.test_points += static_cast<int>(cert.n_star.size());
    totals.points_with_n_star_at_least_1 += certified;
    totals.retrainings += counts.retrainings;
    totals.label_checks += counts.label_checks;
    totals.box_checks += counts.box_checks;
    totals.uncertified_flips += counts.uncertified_flips;
    points_certified += certified;
    all_label_checks += counts.label_checks;
  }
  EXPECT_GT(points_certified, 0);
  EXPECT_GE(all_label_checks, 10000);
}

// A negative control: aimed at points NOT certified at m, the same attacks
// do flip predictions, so the check above could fail if n* were too large.
TEST(NStarSoundness, AttacksFlipSomePointsWhoseNStarIsBelowM) {
  int64_t flips = 0;
  for (const Problem& p : Problems()) {
    SCOPED_TRACE(p.name);
    Certified cert;
    ASSERT_NO_FATAL_FAILURE(TrainAndCertify(p, &cert));
    SoundnessCounts counts;
    for (int m = 1; m <= kMaxBudget; ++m) {
      ASSERT_NO_FATAL_FAILURE(RetrainAndCheck(p, cert, m, /*target_certified=*/false, &counts));
    }
    EXPECT_EQ(counts.failures, 0);
    std::printf("[n* soundness] %-26s aimed at uncertified points: %lld flips in %d retrainings\n",
                p.name.c_str(), static_cast<long long>(counts.uncertified_flips),
                counts.retrainings);
    flips += counts.uncertified_flips;
  }
  EXPECT_GT(flips, 0) << "the attacks never changed any prediction: they have no teeth";
}

}  // namespace
}  // namespace agt_test
