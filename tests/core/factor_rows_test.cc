// TrainConfig::factor_rows (the CPU backend builds and aggregates a batch's
// factored bounds group by group instead of all at once, so that a job whose
// passes would not fit in memory can still run): the results are bit for bit
// those of the whole-batch default, for every perturbation model, several
// group sizes (a group smaller than a chunk, uneven last groups, larger than
// the batch), several threads, and rows removed in place.
#include <gtest/gtest.h>

#include "core/data/dataset.h"
#include "core/train/train.h"

namespace agt {
namespace {

TrainConfig Config(PerturbationKind kind) {
  TrainConfig c;
  c.model = ModelSpec::Mlp({9, 16, 8, 1});
  c.loss = LossKind::kBinaryCrossEntropy;
  c.batch_size = 700;  // 3 chunks of 256 rows, the last one short
  c.epochs = 2;
  c.optimizer.learning_rate = 0.3;
  c.perturbation.kind = kind;
  if (kind == PerturbationKind::kSubstitution) c.clip_gamma = 1.0;
  if (kind == PerturbationKind::kBoundedPoisoning) {
    c.perturbation.epsilon = 0.01;
    c.perturbation.label.enabled = true;
  }
  c.budgets = {{0, 0}, {3, kind == PerturbationKind::kBoundedPoisoning ? 2 : 0}, {40, 0}};
  return c;
}

TrainState TrainAll(const TrainConfig& config, const Dataset& data) {
  auto trainer = Trainer::Create(config, data, InitParameters(config.model, 5));
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  if (!trainer.ok()) return {};
  while (!(*trainer)->done()) {
    absl::StatusOr<ProgressEvent> ev = (*trainer)->Step();
    EXPECT_TRUE(ev.ok()) << ev.status();
    if (!ev.ok()) break;
  }
  return (*trainer)->state();
}

void ExpectSameBits(const TrainState& a, const TrainState& b, const std::string& what) {
  ASSERT_EQ(a.boxes.size(), b.boxes.size()) << what;
  EXPECT_EQ(a.step, b.step) << what;
  EXPECT_TRUE(a.nominal == b.nominal) << what << ": nominal parameters differ";
  for (size_t j = 0; j < a.boxes.size(); ++j) {
    EXPECT_TRUE(a.boxes[j].lower == b.boxes[j].lower) << what << ": lower bounds of budget " << j;
    EXPECT_TRUE(a.boxes[j].upper == b.boxes[j].upper) << what << ": upper bounds of budget " << j;
  }
}

class FactorRowsTest : public ::testing::TestWithParam<PerturbationKind> {};

TEST_P(FactorRowsTest, GroupedFactorsGiveTheWholeBatchResultBitForBit) {
  Dataset data = MakeMoons(1400, 0.1, 3);
  data.x = PolynomialFeatures(data.x, 3);
  const TrainConfig whole = Config(GetParam());
  for (int threads : {1, 3}) {
    TrainConfig base = whole;
    base.threads = threads;
    const TrainState expected = TrainAll(base, data);
    ASSERT_GT(expected.step, 0);
    for (int rows : {1, 256, 300, 512, 699, 700, 5000}) {
      TrainConfig grouped = base;
      grouped.factor_rows = rows;
      ExpectSameBits(TrainAll(grouped, data), expected,
                     "factor_rows " + std::to_string(rows) + ", " + std::to_string(threads) +
                         " threads");
    }
  }
}

TEST_P(FactorRowsTest, GroupedFactorsAgreeWithRowsRemovedInPlace) {
  Dataset data = MakeMoons(1400, 0.1, 4);
  data.x = PolynomialFeatures(data.x, 3);
  TrainConfig base = Config(GetParam());
  base.budgets = {{0, 0}, {2, 0}};
  base.removed_rows = {0, 5, 300, 699, 701, 1000};
  const TrainState expected = TrainAll(base, data);
  TrainConfig grouped = base;
  grouped.factor_rows = 256;
  ExpectSameBits(TrainAll(grouped, data), expected, "removed rows, factor_rows 256");
}

TEST(FactorRowsTest, ANegativeValueIsRefused) {
  TrainConfig c = Config(PerturbationKind::kRemoval);
  c.factor_rows = -1;
  const absl::Status s = c.ValidateTraining();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("factor_rows"), absl::string_view::npos) << s;
}

INSTANTIATE_TEST_SUITE_P(AllKinds, FactorRowsTest,
                         ::testing::Values(PerturbationKind::kRemoval,
                                           PerturbationKind::kSubstitution,
                                           PerturbationKind::kBoundedPoisoning));

}  // namespace
}  // namespace agt
