// Fine-tuning an imported network on its frozen prefix with the core: the
// imported frozen extractor and trained head train for a few certified steps
// under removal budgets; the budget-0 box is the nominal trajectory bit for
// bit at every step, the n > 0 box contains it, and retraining for real
// without rows of each batch (removed in place) ends inside the n = 2 box.
// A small sanity check on imported models; tests/core/soundness_conv_test.cc
// covers soundness at large.
#include <gtest/gtest.h>

#include "core/bounds/ibp.h"
#include "core/common/rng.h"
#include "core/data/dataset.h"
#include "core/onnx/export.h"
#include "core/onnx/import.h"
#include "core/train/train.h"
#include "tests/onnx/onnx_test_util.h"

namespace agt::onnx {
namespace {

// Random inputs labelled by the imported model's own nominal argmax, with
// every fifth label shifted (so that training has a gradient).
Dataset TeacherData(const ImportedModel& m, int rows, uint64_t seed) {
  Rng rng(seed);
  Dataset d;
  d.x.resize(rows, m.spec.InputDim());
  for (Index k = 0; k < d.x.size(); ++k) d.x.data()[k] = rng.Uniform(-1, 1);
  const Matrix logits = Forward(m.spec, m.trained_parameters, d.x);
  d.num_classes = static_cast<int>(logits.cols());
  d.y.resize(rows);
  for (int r = 0; r < rows; ++r) {
    Index best = 0;
    logits.row(r).maxCoeff(&best);
    d.y[r] = static_cast<double>((best + (r % 5 == 0 ? 1 : 0)) % d.num_classes);
  }
  return d;
}

TrainConfig FineTuneConfig(const ImportedModel& m) {
  TrainConfig c;
  c.model = m.spec;
  c.loss = LossKind::kCrossEntropy;
  c.batch_size = 30;
  c.epochs = 2;
  c.optimizer.learning_rate = 0.05;
  c.perturbation.kind = PerturbationKind::kRemoval;
  c.budgets = {{0, 0}, {2, 0}};
  return c;
}

void CheckFineTuning(const ImportedModel& m, const std::string& what) {
  ASSERT_FALSE(m.spec.frozen.empty()) << what;
  const Dataset data = TeacherData(m, 90, 4);
  const TrainConfig cfg = FineTuneConfig(m);
  auto trainer = Trainer::Create(cfg, data, m.trained_parameters);
  ASSERT_TRUE(trainer.ok()) << what << ": " << trainer.status();
  while (!(*trainer)->done()) {
    ASSERT_TRUE((*trainer)->Step().ok());
    const TrainState& s = (*trainer)->state();
    EXPECT_EQ(s.boxes[0].lower, s.nominal) << what << " step " << s.step;
    EXPECT_EQ(s.boxes[0].upper, s.nominal) << what << " step " << s.step;
    EXPECT_TRUE(s.boxes[1].Contains(s.nominal)) << what << " step " << s.step;
  }
  const TrainState& final_state = (*trainer)->state();
  EXPECT_NE(final_state.nominal, m.trained_parameters) << what << ": training moved nothing";
  EXPECT_GT(final_state.boxes[1].TotalWidth(), 0.0) << what;
  // The frozen extractor's parameters are the imported ones, untouched.
  EXPECT_EQ((*trainer)->config().model.frozen.parameters, m.spec.frozen.parameters);

  // Real retraining without 2 rows of every batch (rows 0, 7 of batch k =
  // rows 30k, 30k + 7), in place, ends inside the n = 2 box.
  TrainConfig removed = cfg;
  removed.budgets = {{0, 0}};
  for (int64_t b = 0; b < 3; ++b) {
    removed.removed_rows.push_back(30 * b);
    removed.removed_rows.push_back(30 * b + 7);
  }
  auto retrain = Trainer::Create(removed, data, m.trained_parameters);
  ASSERT_TRUE(retrain.ok()) << retrain.status();
  ASSERT_TRUE((*retrain)->Run().ok());
  const Vector& theta = (*retrain)->state().nominal;
  EXPECT_NE(theta, final_state.nominal);
  EXPECT_TRUE(final_state.boxes[1].Contains(theta)) << what;

  // The fine-tuned model exports with its frozen prefix and imports back.
  absl::StatusOr<std::string> bytes = ExportOnnx(m.spec, final_state.nominal);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  ImportOptions o;
  o.frozen_layers = static_cast<int>(m.spec.frozen.layers.size());
  absl::StatusOr<ImportedModel> back = ImportOnnx(*bytes, o);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->trained_parameters, final_state.nominal);
  EXPECT_EQ(back->spec.frozen.parameters, m.spec.frozen.parameters);
}

TEST(OnnxFineTune, ImportedFrozenPrefixTrainsWithBudgetZeroEqualToNominal) {
  // A model the exporter wrote: frozen conv + relu + flatten, dense head.
  ModelSpec spec;
  spec.input_shape = Shape::Image(1, 6, 6);
  Conv2dParams c;
  c.in_channels = 1;
  c.out_channels = 3;
  c.kernel_h = c.kernel_w = 3;
  c.stride_h = c.stride_w = 1;
  spec.frozen.layers = {LayerSpec::Conv2d(c), LayerSpec::Relu(), LayerSpec::Flatten()};
  spec.frozen.parameters = Vector::LinSpaced(3 * 9 + 3, -0.5, 0.6);
  spec.layers = {LayerSpec::Dense(48, 8), LayerSpec::Relu(), LayerSpec::Dense(8, 3)};
  absl::StatusOr<std::string> bytes = ExportOnnx(spec, InitParameters(spec, 2));
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  ImportOptions o;
  o.frozen_until = "frozen.2.flatten";
  absl::StatusOr<ImportedModel> m = ImportOnnx(*bytes, o);
  ASSERT_TRUE(m.ok()) << m.status();
  CheckFineTuning(*m, "exported conv model");
}

TEST(OnnxFineTune, TorchNetworksFineTuneOnTheirFrozenPrefix) {
  const test::TorchCases& t = test::GetTorchCases();
  if (!t.skip.empty()) GTEST_SKIP() << t.skip;
  for (const char* name : {"conv", "mixed"}) {
    for (const auto& c : t.cases["models"]) {
      if (c["name"] != name) continue;
      ImportOptions o;
      o.frozen_layers = c["frozen"].get<int>();
      absl::StatusOr<ImportedModel> m =
          ImportOnnx(test::ReadBytes(t.dir / c["file"].get<std::string>()), o);
      ASSERT_TRUE(m.ok()) << name << ": " << m.status();
      CheckFineTuning(*m, name);
    }
  }
}

}  // namespace
}  // namespace agt::onnx
