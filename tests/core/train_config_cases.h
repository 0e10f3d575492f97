// Training configurations the core's validation (core/train/config.h) accepts
// or rejects, shared by the tests of every front end so that one table shows
// the rules are the core's alone: tests/core/train_config_test.cc checks each
// verdict against the core, tests/server/job_spec_test.cc sends each case as
// a job spec and tests/cli/config_test.cc as an `agt` config, expecting the
// core's verdict and, where the front end's form allows, its very message
// under the front end's root ("spec." for the API).
//
// Every case is a change to one base configuration, valid in all three forms:
// a binary cross-entropy MLP on 2 features, batch_size 20, learning rate 0.1,
// removal with budgets {1, 5} (see BaseConfig).
#ifndef AGT_TESTS_CORE_TRAIN_CONFIG_CASES_H_
#define AGT_TESTS_CORE_TRAIN_CONFIG_CASES_H_

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/model/model.h"
#include "core/train/config.h"

namespace agt::train_config_cases {

// Optimizer settings as both front ends read them: momentum_enabled is
// momentum > 0 (neither has a separate switch).
inline OptimizerConfig Optimizer(double learning_rate, double lr_decay = 0.0, double lr_min = 0.0,
                                 double l1 = 0.0, double l2 = 0.0, double momentum = 0.0,
                                 double dampening = 0.0, bool nesterov = false) {
  OptimizerConfig o;
  o.learning_rate = learning_rate;
  o.lr_decay = lr_decay;
  o.lr_min = lr_min;
  o.l1 = l1;
  o.l2 = l2;
  o.momentum_enabled = momentum > 0.0;
  o.momentum = momentum;
  o.dampening = dampening;
  o.nesterov = nesterov;
  return o;
}

inline bool AllFinite(const OptimizerConfig& o) {
  for (double v : {o.learning_rate, o.lr_decay, o.lr_min, o.l1, o.l2, o.momentum, o.dampening}) {
    if (!std::isfinite(v)) return false;
  }
  return true;
}

struct OptimizerCase {
  std::string name;
  OptimizerConfig optimizer;
  // Empty: accepted. Otherwise the field the core names: its message starts
  // with "<field>: ".
  std::string rejected_field;
};

// The rules where the three copies had drifted apart come first.
inline std::vector<OptimizerCase> OptimizerCases() {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  return {
      // l2 * max(learning_rate, lr_min) < 1: the floor counts when above the rate.
      {"l2 times lr_min reaches 1", Optimizer(0.1, 0, 0.5, 0, 2.0), "optimizer.l2"},
      {"l2 times lr reaches 1", Optimizer(0.1, 0, 0, 0, 10.0), "optimizer.l2"},
      {"l2 times both below 1", Optimizer(0.1, 0, 0.4, 0, 2.0), ""},
      // Nesterov needs momentum > 0 and dampening 0 (PyTorch's rule).
      {"nesterov with momentum", Optimizer(0.1, 0, 0, 0, 0, 0.9, 0, true), ""},
      {"nesterov with dampening", Optimizer(0.1, 0, 0, 0, 0, 0.9, 0.1, true), "optimizer.nesterov"},
      {"nesterov without momentum", Optimizer(0.1, 0, 0, 0, 0, 0, 0, true), "optimizer.nesterov"},
      {"dampening without momentum", Optimizer(0.1, 0, 0, 0, 0, 0, 0.5), "optimizer.dampening"},
      {"dampening with momentum", Optimizer(0.1, 0, 0, 0, 0, 0.5, 1.0), ""},
      // Ranges.
      {"plain sgd", Optimizer(0.1), ""},
      {"decay to a floor", Optimizer(0.1, 0.5, 0.01, 0, 0.01), ""},
      {"learning rate zero", Optimizer(0.0), "optimizer.learning_rate"},
      {"learning rate negative", Optimizer(-1.0), "optimizer.learning_rate"},
      {"learning rate nan", Optimizer(nan), "optimizer.learning_rate"},
      {"learning rate inf", Optimizer(inf), "optimizer.learning_rate"},
      {"negative lr_decay", Optimizer(0.1, -0.5), "optimizer.lr_decay"},
      {"infinite lr_min", Optimizer(0.1, 0, inf), "optimizer.lr_min"},
      {"negative l1", Optimizer(0.1, 0, 0, -2.0), "optimizer.l1"},
      {"negative l2", Optimizer(0.1, 0, 0, 0, -0.1), "optimizer.l2"},
      {"momentum 1", Optimizer(0.1, 0, 0, 0, 0, 1.0), "optimizer.momentum"},
      {"momentum negative", Optimizer(0.1, 0, 0, 0, 0, -0.1), "optimizer.momentum"},
      {"dampening above 1", Optimizer(0.1, 0, 0, 0, 0, 0.5, 2.0), "optimizer.dampening"},
      // l1 with plain SGD only.
      {"l1 with plain sgd", Optimizer(0.1, 0, 0, 0.01), ""},
      {"l1 with momentum", Optimizer(0.1, 0, 0, 0.01, 0, 0.5), "optimizer.l1"},
  };
}

// The base configuration of every case (model for a dataset of 2 features).
inline TrainConfig BaseConfig() {
  TrainConfig c;
  c.model = ModelSpec::Mlp({2, 16, 1});
  c.loss = LossKind::kBinaryCrossEntropy;
  c.batch_size = 20;
  c.epochs = 2;
  c.optimizer = Optimizer(0.1);
  c.perturbation.kind = PerturbationKind::kRemoval;
  c.budgets = {{1, 0}, {5, 0}};
  return c;
}

// Perturbation, clipping and budgets. Each case stays expressible in both
// front ends' forms: poisoning always poisons something (epsilon > 0 or
// labels), labels are flips or a target class, and a feature budget comes
// with epsilon > 0.
struct TrainingCase {
  std::string name;
  std::function<void(TrainConfig*)> change;
  std::string rejected_field;  // as in OptimizerCase
};

inline void Poisoning(TrainConfig* c, double epsilon, bool flip_labels, bool paired = false) {
  c->perturbation.kind = PerturbationKind::kBoundedPoisoning;
  c->perturbation.epsilon = epsilon;
  c->perturbation.label.enabled = flip_labels;
  c->perturbation.paired = paired;
}

inline std::vector<TrainingCase> TrainingCases() {
  using C = TrainConfig;
  return {
      // Poisoning may hit every row of a batch; removal must leave one.
      {"poisoning every row of the batch",
       [](C* c) {
         Poisoning(c, 0.1, false);
         c->budgets = {{20, 0}};
       },
       ""},
      {"poisoning more rows than the batch",
       [](C* c) {
         Poisoning(c, 0.1, true);
         c->budgets = {{1, 0}, {15, 10}};
       },
       "budgets[1]"},
      {"paired poisoning counts the larger budget",
       [](C* c) {
         Poisoning(c, 0.1, true, true);
         c->budgets = {{15, 10}};
       },
       ""},
      {"removal of the whole batch",
       [](C* c) {
         c->budgets = {{1, 0}, {20, 0}};
       },
       "budgets[1].n"},
      {"removal of all but one row",
       [](C* c) {
         c->budgets = {{19, 0}};
       },
       ""},
      {"negative budget",
       [](C* c) {
         c->budgets = {{-1, 0}};
       },
       "budgets[0].n"},
      {"label budget without labels",
       [](C* c) {
         Poisoning(c, 0.1, false);
         c->budgets = {{1, 2}};
       },
       "budgets[0].label_n"},
      {"label budget with labels",
       [](C* c) {
         Poisoning(c, 0.0, true);
         c->budgets = {{0, 2}};
       },
       ""},
      {"target class of a binary loss",
       [](C* c) {
         Poisoning(c, 0.0, true);
         c->perturbation.label.target_class = 1;
         c->budgets = {{0, 2}};
       },
       ""},
      {"substitution without clipping",
       [](C* c) { c->perturbation.kind = PerturbationKind::kSubstitution; }, "clip_gamma"},
      {"substitution with clipping",
       [](C* c) {
         c->perturbation.kind = PerturbationKind::kSubstitution;
         c->clip_gamma = 1.0;
       },
       ""},
      {"negative poisoning epsilon",
       [](C* c) {
         Poisoning(c, -0.1, true);
         c->budgets = {{0, 1}};
       },
       "perturbation.epsilon"},
  };
}

}  // namespace agt::train_config_cases

#endif  // AGT_TESTS_CORE_TRAIN_CONFIG_CASES_H_
