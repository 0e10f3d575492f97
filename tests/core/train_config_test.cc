// TrainConfig::Validate / ValidateTraining / OptimizerConfig::Validate, the
// one validation of a training configuration: the verdict of every shared case
// (train_config_cases.h, which the server's and the cli's tests replay in
// their own forms), the "FIELD: PROBLEM" form of every message, and the
// split between the rules that need data and those that do not.
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/match.h"
#include "core/model/model.h"
#include "core/train/config.h"
#include "tests/core/train_config_cases.h"

namespace agt {
namespace {

using train_config_cases::BaseConfig;

// The dataset of the base configuration: 2 features, binary labels, 200 rows.
absl::Status ValidateOnBaseData(const TrainConfig& c) { return c.Validate(2, 2, 200); }

void ExpectVerdict(const absl::Status& status, const std::string& rejected_field) {
  if (rejected_field.empty()) {
    EXPECT_TRUE(status.ok()) << status;
    return;
  }
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(status.message(), rejected_field + ": ")) << status;
}

TEST(TrainConfigTest, TheBaseConfigurationIsValid) {
  EXPECT_TRUE(ValidateOnBaseData(BaseConfig()).ok());
  EXPECT_TRUE(BaseConfig().ValidateTraining().ok());
}

TEST(TrainConfigTest, EveryOptimizerCaseGetsItsVerdictFromEveryEntryPoint) {
  for (const auto& c : train_config_cases::OptimizerCases()) {
    SCOPED_TRACE(c.name);
    const absl::Status own = c.optimizer.Validate();
    ExpectVerdict(own, c.rejected_field);
    // The whole configuration says exactly what the optimizer says.
    TrainConfig config = BaseConfig();
    config.optimizer = c.optimizer;
    EXPECT_EQ(config.ValidateTraining(), own);
    EXPECT_EQ(ValidateOnBaseData(config), own);
  }
}

TEST(TrainConfigTest, EveryTrainingCaseGetsItsVerdictWithAndWithoutData) {
  for (const auto& c : train_config_cases::TrainingCases()) {
    SCOPED_TRACE(c.name);
    TrainConfig config = BaseConfig();
    c.change(&config);
    ExpectVerdict(config.ValidateTraining(), c.rejected_field);
    EXPECT_EQ(ValidateOnBaseData(config), config.ValidateTraining());
  }
}

TEST(TrainConfigTest, TheLearningRateFloorCountsInTheL2Rule) {
  // The step size is max(alpha / (1 + eta t), lr_min): when lr_min is above
  // alpha it is the step size, and lr * l2 < 1 must hold for it.
  OptimizerConfig o = train_config_cases::Optimizer(0.1, 0, 0.5, 0, 2.0);
  EXPECT_EQ(o.LearningRate(0), 0.5);
  EXPECT_EQ(o.Validate().message(),
            "optimizer.l2: 2 times the largest learning rate 0.5 must be < 1 (the bounded L2 "
            "step is sound only then)");
}

TEST(TrainConfigTest, NesterovMessagesNameTheMissingCondition) {
  EXPECT_EQ(train_config_cases::Optimizer(0.1, 0, 0, 0, 0, 0.9, 0.25, true).Validate().message(),
            "optimizer.nesterov: needs dampening 0, got 0.25");
  EXPECT_EQ(train_config_cases::Optimizer(0.1, 0, 0, 0, 0, 0, 0, true).Validate().message(),
            "optimizer.nesterov: needs momentum > 0");
  // An explicit switch without a momentum is still no momentum.
  OptimizerConfig o = train_config_cases::Optimizer(0.1, 0, 0, 0, 0, 0, 0, true);
  o.momentum_enabled = true;
  EXPECT_EQ(o.Validate().message(), "optimizer.nesterov: needs momentum > 0");
}

TEST(TrainConfigTest, BudgetMessagesNameTheBudgetAndTheBatch) {
  TrainConfig c = BaseConfig();
  c.budgets = {{1, 0}, {20, 0}};
  EXPECT_EQ(c.ValidateTraining().message(),
            "budgets[1].n: batch_size 20 must exceed the removal budget 20");
  train_config_cases::Poisoning(&c, 0.1, true);
  c.budgets = {{15, 10}};
  EXPECT_EQ(c.ValidateTraining().message(),
            "budgets[0]: n 15 + label_n 10 = 25 poisoned rows per batch exceed batch_size 20");
  c.batch_size = 12;
  c.perturbation.paired = true;
  EXPECT_EQ(c.ValidateTraining().message(),
            "budgets[0]: max(n 15, label_n 10) = 15 poisoned rows per batch exceed batch_size 12");
  c.budgets.clear();
  EXPECT_EQ(c.ValidateTraining().message(), "budgets: at least one budget is required");
}

TEST(TrainConfigTest, PoisoningOnlyFieldsAreRefusedForOtherKinds) {
  for (PerturbationKind kind : {PerturbationKind::kRemoval, PerturbationKind::kSubstitution}) {
    TrainConfig c = BaseConfig();
    c.perturbation.kind = kind;
    c.clip_gamma = 1.0;
    const std::string only =
        ": applies to poisoning only, the kind is " + PerturbationKindName(kind);
    c.perturbation.epsilon = 0.1;
    EXPECT_EQ(c.ValidateTraining().message(), "perturbation.epsilon" + only);
    c.perturbation.epsilon = 0.0;
    c.perturbation.label.enabled = true;
    EXPECT_EQ(c.ValidateTraining().message(), "perturbation.labels" + only);
    c.perturbation.label.enabled = false;
    c.perturbation.paired = true;
    EXPECT_EQ(c.ValidateTraining().message(), "perturbation.paired" + only);
    c.perturbation.paired = false;
    c.budgets = {{1, 1}};
    EXPECT_EQ(c.ValidateTraining().message(), "budgets[0].label_n" + only);
  }
}

TEST(TrainConfigTest, TargetClassesAreCheckedAgainstTheLossAndTheData) {
  TrainConfig c = BaseConfig();
  train_config_cases::Poisoning(&c, 0.0, true);
  c.budgets = {{0, 1}};
  c.perturbation.label.target_class = 2;
  EXPECT_EQ(c.ValidateTraining().message(),
            "perturbation.labels.target_class: 2 is not a class of binary_cross_entropy (0..1)");
  // Cross-entropy's classes are the data's: only Validate knows them.
  c.loss = LossKind::kCrossEntropy;
  c.model = ModelSpec::Mlp({2, 16, 3});
  c.perturbation.label.target_class = 3;
  EXPECT_TRUE(c.ValidateTraining().ok());
  EXPECT_EQ(c.Validate(2, 3, 200).message(),
            "perturbation.labels.target_class: 3 is not a class of the dataset's 3 classes (0..2)");
  c.perturbation.label.target_class = 2;
  EXPECT_TRUE(c.Validate(2, 3, 200).ok());
}

TEST(TrainConfigTest, DataRulesAreOnlyInValidate) {
  TrainConfig c = BaseConfig();
  c.batch_size = 500;
  EXPECT_TRUE(c.ValidateTraining().ok());
  EXPECT_EQ(c.Validate(2, 2, 200).message(), "batch_size: 500 exceeds the dataset's 200 rows");
  c = BaseConfig();
  EXPECT_EQ(c.Validate(3, 2, 200).message(),
            "model: input width 2 does not match the dataset's 3 features");
  EXPECT_EQ(c.Validate(2, 0, 200).message(),
            "loss: binary_cross_entropy needs binary labels 0/1, the dataset has real-valued "
            "targets");
}

TEST(TrainConfigTest, EveryMessageStartsWithTheFieldItNames) {
  TrainConfig c = BaseConfig();
  c.batch_size = 0;
  EXPECT_EQ(c.ValidateTraining().message(), "batch_size: 0 must be >= 1");
  c = BaseConfig();
  c.epochs = 0;
  EXPECT_EQ(c.ValidateTraining().message(), "epochs: 0 must be >= 1");
  c = BaseConfig();
  c.clip_gamma = -1.0;
  EXPECT_EQ(c.ValidateTraining().message(), "clip_gamma: must be > 0, got -1");
  c = BaseConfig();
  c.fragment_size = -1;
  EXPECT_EQ(c.ValidateTraining().message(), "fragment_size: -1 must be >= 0");
  c = BaseConfig();
  c.threads = -2;
  EXPECT_EQ(c.ValidateTraining().message(), "threads: -2 must be >= 0");
  c = BaseConfig();
  c.loss = LossKind::kMse;
  train_config_cases::Poisoning(&c, 0.0, true);
  c.perturbation.label.nu = -0.5;
  c.budgets = {{0, 1}};
  EXPECT_EQ(c.ValidateTraining().message(),
            "perturbation.labels.nu: must be a finite number >= 0, got -0.5");
}

}  // namespace
}  // namespace agt
