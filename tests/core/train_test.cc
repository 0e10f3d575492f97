// Tests of the training loop's contracts: budget 0 collapses to the nominal
// trajectory, results do not depend on threads, checkpoint/resume continues
// exactly, progress and cancellation work, and bad configs are rejected with
// messages that name the problem.
#include "core/train/train.h"

#include <gtest/gtest.h>

#include <atomic>

#include "core/common/rng.h"
#include "core/data/dataset.h"

namespace agt {
namespace {

Dataset Moons(int n, uint64_t seed) {
  Dataset d = MakeMoons(n, 0.1, seed);
  d.x = PolynomialFeatures(d.x, 3);
  return d;
}

TrainConfig MlpConfig(PerturbationKind kind) {
  TrainConfig c;
  c.model = ModelSpec::Mlp({9, 8, 1});
  c.loss = LossKind::kBinaryCrossEntropy;
  c.batch_size = 40;
  c.epochs = 3;
  c.optimizer.learning_rate = 0.5;
  c.optimizer.lr_decay = 0.1;
  c.perturbation.kind = kind;
  if (kind == PerturbationKind::kSubstitution) c.clip_gamma = 1.0;
  if (kind == PerturbationKind::kBoundedPoisoning) c.perturbation.epsilon = 0.01;
  c.budgets = {{0, 0}, {2, 0}};
  return c;
}

class BudgetZeroTest : public ::testing::TestWithParam<PerturbationKind> {};

TEST_P(BudgetZeroTest, ZeroBudgetBoxIsExactlyTheNominalTrajectoryAtEveryStep) {
  const Dataset data = Moons(200, 1);
  const TrainConfig cfg = MlpConfig(GetParam());
  const Vector init = InitParameters(cfg.model, 7);
  auto trainer = Trainer::Create(cfg, data, init);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  while (!(*trainer)->done()) {
    ASSERT_TRUE((*trainer)->Step().ok());
    const TrainState& s = (*trainer)->state();
    EXPECT_EQ(s.boxes[0].lower, s.nominal) << "step " << s.step;
    EXPECT_EQ(s.boxes[0].upper, s.nominal) << "step " << s.step;
    EXPECT_EQ(s.boxes[0].TotalWidth(), 0.0);
    EXPECT_TRUE(s.boxes[1].Contains(s.nominal));
    EXPECT_GT(s.boxes[1].TotalWidth(), 0.0);
  }
}

INSTANTIATE_TEST_SUITE_P(AllKinds, BudgetZeroTest,
                         ::testing::Values(PerturbationKind::kRemoval,
                                           PerturbationKind::kSubstitution,
                                           PerturbationKind::kBoundedPoisoning));

TEST(TrainTest, ResultsDoNotDependOnThreadCountOrFragmentSize) {
  const Dataset data = Moons(600, 2);
  TrainConfig cfg = MlpConfig(PerturbationKind::kRemoval);
  cfg.model = ModelSpec::Mlp({9, 64, 64, 1});
  cfg.batch_size = 200;
  cfg.epochs = 1;
  cfg.budgets = {{3, 0}};
  const Vector init = InitParameters(cfg.model, 3);
  cfg.threads = 1;
  auto one = Train(cfg, data, init);
  cfg.threads = 2;
  auto two = Train(cfg, data, init);
  ASSERT_TRUE(one.ok() && two.ok());
  EXPECT_EQ(one->state.nominal, two->state.nominal);
  EXPECT_EQ(one->state.boxes[0].lower, two->state.boxes[0].lower);
  EXPECT_EQ(one->state.boxes[0].upper, two->state.boxes[0].upper);
  cfg.fragment_size = 7;
  auto frag = Train(cfg, data, init);
  ASSERT_TRUE(frag.ok());
  // Every parameter sums its rows in row order, whatever the block size.
  EXPECT_EQ(frag->state.nominal, one->state.nominal);
  EXPECT_EQ(frag->state.boxes[0].lower, one->state.boxes[0].lower);
  EXPECT_EQ(frag->state.boxes[0].upper, one->state.boxes[0].upper);
}

// A small CNN on random 1x8x8 "images" with 10 classes: conv with padding,
// conv with stride 2, flatten, dense (the goldens' digits_cnn shape).
ModelSpec SmallCnn() {
  ModelSpec m;
  m.input_shape = Shape::Image(1, 8, 8);
  m.layers = {LayerSpec::Conv2d({1, 4, 3, 3, 1, 1, 1, 1}), LayerSpec::Relu(),
              LayerSpec::Conv2d({4, 6, 3, 3, 2, 2, 0, 0}), LayerSpec::Relu(),
              LayerSpec::Flatten(), LayerSpec::Dense(54, 10)};
  return m;
}

Dataset RandomImages(int n, int classes, uint64_t seed) {
  Rng rng(seed);
  Dataset d;
  d.x.resize(n, 64);
  d.y.resize(n);
  for (int i = 0; i < n; ++i) {
    d.y[i] = static_cast<double>(i % classes);
    for (int j = 0; j < 64; ++j) d.x(i, j) = rng.Uniform(0.0, 1.0) + 0.05 * (i % classes);
  }
  d.num_classes = classes;
  return d;
}

TEST(TrainTest, ConvResultsDoNotDependOnThreadCountOrFragmentSize) {
  const Dataset data = RandomImages(600, 10, 4);
  for (PerturbationKind kind : {PerturbationKind::kRemoval, PerturbationKind::kBoundedPoisoning}) {
    TrainConfig cfg;
    cfg.model = SmallCnn();
    cfg.loss = LossKind::kCrossEntropy;
    cfg.batch_size = 300;  // 812 parameters x 300 rows: the threaded path
    cfg.epochs = 2;
    cfg.optimizer.learning_rate = 0.05;
    cfg.perturbation.kind = kind;
    if (kind == PerturbationKind::kBoundedPoisoning) cfg.perturbation.epsilon = 0.01;
    cfg.budgets = {{2, 0}};
    const Vector init = InitParameters(cfg.model, 5);
    cfg.threads = 1;
    auto one = Train(cfg, data, init);
    ASSERT_TRUE(one.ok()) << one.status();
    for (int threads : {2, 3}) {
      cfg.threads = threads;
      auto many = Train(cfg, data, init);
      ASSERT_TRUE(many.ok()) << many.status();
      EXPECT_EQ(one->state.nominal, many->state.nominal) << threads;
      EXPECT_EQ(one->state.boxes[0].lower, many->state.boxes[0].lower) << threads;
      EXPECT_EQ(one->state.boxes[0].upper, many->state.boxes[0].upper) << threads;
    }
    cfg.fragment_size = 7;
    auto frag = Train(cfg, data, init);
    ASSERT_TRUE(frag.ok());
    EXPECT_EQ(frag->state.boxes[0].lower, one->state.boxes[0].lower);
    EXPECT_EQ(frag->state.boxes[0].upper, one->state.boxes[0].upper);
    EXPECT_GT(one->state.boxes[0].TotalWidth(), 0.0);
  }
}

TEST(TrainTest, ConvAndFrozenZeroBudgetBoxesAreExactlyTheNominalTrajectory) {
  const Dataset data = RandomImages(120, 3, 6);
  ModelSpec frozen_model;
  frozen_model.input_shape = Shape::Image(1, 8, 8);
  frozen_model.frozen.layers = {LayerSpec::Conv2d({1, 2, 3, 3, 1, 1, 0, 0}), LayerSpec::Relu(),
                                LayerSpec::Flatten()};
  {
    ModelSpec prefix;
    prefix.layers = {LayerSpec::Conv2d({1, 2, 3, 3, 1, 1, 0, 0}), LayerSpec::Flatten(),
                     LayerSpec::Dense(72, 1)};
    prefix.input_shape = frozen_model.input_shape;
    frozen_model.frozen.parameters = InitParameters(prefix, 9).head(20);
  }
  frozen_model.layers = {LayerSpec::Dense(72, 8), LayerSpec::Relu(), LayerSpec::Dense(8, 3)};
  ModelSpec cnn = SmallCnn();
  cnn.layers.back() = LayerSpec::Dense(54, 3);
  for (const ModelSpec& model : {cnn, frozen_model}) {
    ASSERT_TRUE(model.Validate().ok()) << model.Validate();
    for (PerturbationKind kind : {PerturbationKind::kRemoval, PerturbationKind::kSubstitution,
                                  PerturbationKind::kBoundedPoisoning}) {
      TrainConfig cfg;
      cfg.model = model;
      cfg.loss = LossKind::kCrossEntropy;
      cfg.batch_size = 40;
      cfg.epochs = 2;
      cfg.optimizer.learning_rate = 0.1;
      cfg.perturbation.kind = kind;
      if (kind == PerturbationKind::kSubstitution) cfg.clip_gamma = 1.0;
      // Through the frozen prefix too, the epsilon-box widens the bounds.
      if (kind == PerturbationKind::kBoundedPoisoning) cfg.perturbation.epsilon = 0.01;
      cfg.budgets = {{0, 0}, {2, 0}};
      auto trainer = Trainer::Create(cfg, data, InitParameters(model, 2));
      ASSERT_TRUE(trainer.ok()) << trainer.status();
      while (!(*trainer)->done()) {
        ASSERT_TRUE((*trainer)->Step().ok());
        const TrainState& s = (*trainer)->state();
        EXPECT_EQ(s.boxes[0].lower, s.nominal) << model.Describe() << " step " << s.step;
        EXPECT_EQ(s.boxes[0].upper, s.nominal) << model.Describe() << " step " << s.step;
        EXPECT_TRUE(s.boxes[1].Contains(s.nominal));
        EXPECT_GT(s.boxes[1].TotalWidth(), 0.0);
      }
    }
  }
}

// A backend that forwards to the CPU backend and counts the calls: the
// training loop reaches the hardware only through the interface, three calls
// per step, in Algorithm 1's order.
class CountingBackend : public ComputeBackend {
 public:
  explicit CountingBackend(std::string* log) : inner_(MakeCpuBackend(1)), log_(log) {}
  std::string name() const override { return "counting"; }
  absl::Status Prepare(const TrainConfig& config) override {
    *log_ += "P";
    return inner_->Prepare(config);
  }
  void ComputeFactors(const Eigen::Ref<const Matrix>& x, const Vector& y, const Vector& nominal,
                      const std::vector<ParameterBox>& boxes) override {
    *log_ += "F";
    inner_->ComputeFactors(x, y, nominal, boxes);
  }
  void Aggregate(StepDirections* out) override {
    *log_ += "A";
    inner_->Aggregate(out);
  }
  void UpdateParameters(const OptimizerConfig& opt, int64_t step, const StepDirections& d,
                        TrainState* state) override {
    *log_ += "U";
    inner_->UpdateParameters(opt, step, d, state);
  }

 private:
  std::unique_ptr<ComputeBackend> inner_;
  std::string* log_;
};

TEST(TrainTest, TheLoopRunsOnTheBackendItIsGiven) {
  const Dataset data = Moons(200, 1);
  const TrainConfig cfg = MlpConfig(PerturbationKind::kBoundedPoisoning);
  const Vector init = InitParameters(cfg.model, 7);
  std::string log;
  auto trainer = Trainer::Create(cfg, data, init, std::make_unique<CountingBackend>(&log));
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  auto counted = (*trainer)->Run();
  ASSERT_TRUE(counted.ok());
  std::string expected = "P";
  for (int64_t t = 0; t < counted->iterations; ++t) expected += "FAU";
  EXPECT_EQ(log, expected);
  auto plain = Train(cfg, data, init);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->state.boxes[1].lower, counted->state.boxes[1].lower);
  EXPECT_EQ(plain->state.boxes[1].upper, counted->state.boxes[1].upper);
}

TEST(TrainTest, ResumingFromACheckpointGivesTheUninterruptedResult) {
  const Dataset data = Moons(200, 3);
  TrainConfig cfg = MlpConfig(PerturbationKind::kBoundedPoisoning);
  cfg.perturbation.epsilon = 0.01;
  cfg.perturbation.label.enabled = true;
  cfg.budgets = {{1, 1}, {2, 2}};
  cfg.optimizer.momentum_enabled = true;
  cfg.optimizer.momentum = 0.5;
  const Vector init = InitParameters(cfg.model, 4);
  auto full = Train(cfg, data, init);
  ASSERT_TRUE(full.ok()) << full.status();

  auto first = Trainer::Create(cfg, data, init);
  ASSERT_TRUE(first.ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE((*first)->Step().ok());
  const TrainState checkpoint = (*first)->state();
  auto second = Trainer::Create(cfg, data, init);
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE((*second)->Restore(checkpoint).ok());
  auto resumed = (*second)->Run();
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(resumed->state.nominal, full->state.nominal);
  for (size_t j = 0; j < cfg.budgets.size(); ++j) {
    EXPECT_EQ(resumed->state.boxes[j].lower, full->state.boxes[j].lower);
    EXPECT_EQ(resumed->state.boxes[j].upper, full->state.boxes[j].upper);
  }
}

TEST(TrainTest, ProgressIsReportedEveryStepAndTheIncompleteBatchIsDropped) {
  const Dataset data = Moons(210, 4);  // 5 batches of 40, 10 rows dropped
  TrainConfig cfg = MlpConfig(PerturbationKind::kRemoval);
  std::vector<ProgressEvent> events;
  TrainCallbacks cb;
  cb.progress = [&](const ProgressEvent& e) { events.push_back(e); };
  auto r = Train(cfg, data, InitParameters(cfg.model, 1), cb);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->batches_per_epoch, 5);
  EXPECT_EQ(r->dropped_rows_per_epoch, 10);
  ASSERT_EQ(events.size(), 15u);
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].iteration, static_cast<int64_t>(i + 1));
    EXPECT_EQ(events[i].total_iterations, 15);
    EXPECT_EQ(events[i].epoch, static_cast<int>(i / 5));
    ASSERT_EQ(events[i].total_width.size(), 2u);
    EXPECT_GT(events[i].nominal_loss, 0.0);
  }
  EXPECT_EQ(events.back().total_width[1], r->state.boxes[1].TotalWidth());
}

TEST(TrainTest, CancellationStopsBeforeTheNextStep) {
  const Dataset data = Moons(200, 5);
  TrainConfig cfg = MlpConfig(PerturbationKind::kRemoval);
  std::atomic<bool> cancel{false};
  int steps = 0;
  TrainCallbacks cb;
  cb.cancel = &cancel;
  cb.progress = [&](const ProgressEvent&) {
    if (++steps == 2) cancel = true;
  };
  auto r = Train(cfg, data, InitParameters(cfg.model, 1), cb);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(steps, 2);
}

TEST(TrainTest, LearningRateScheduleDecaysToTheFloor) {
  OptimizerConfig o;
  o.learning_rate = 1.0;
  o.lr_decay = 0.2;
  o.lr_min = 0.3;
  EXPECT_DOUBLE_EQ(o.LearningRate(0), 1.0);
  EXPECT_DOUBLE_EQ(o.LearningRate(1), 1.0 / 1.2);
  EXPECT_DOUBLE_EQ(o.LearningRate(100), 0.3);
}

struct BadConfig {
  const char* name;
  std::function<void(TrainConfig*)> mutate;
  const char* message_part;
};

TEST(TrainTest, InvalidConfigsAreRejectedWithMessagesThatNameTheProblem) {
  const Dataset data = Moons(100, 6);
  const std::vector<BadConfig> cases = {
      {"budget >= batch",
       [](TrainConfig* c) {
         c->budgets = {{40, 0}};
       },
       "batch_size 40 must exceed the removal budget 40"},
      {"negative lr", [](TrainConfig* c) { c->optimizer.learning_rate = -1; },
       "optimizer.learning_rate"},
      {"batch too large", [](TrainConfig* c) { c->batch_size = 101; }, "exceeds the dataset"},
      {"wrong input width",
       [](TrainConfig* c) {
         c->model = ModelSpec::Mlp({3, 1});
       },
       "does not match the dataset's 9 features"},
      {"substitution without clip",
       [](TrainConfig* c) { c->perturbation.kind = PerturbationKind::kSubstitution; },
       "needs clip_gamma"},
      {"no budgets", [](TrainConfig* c) { c->budgets.clear(); }, "at least one budget"},
      {"ce on binary", [](TrainConfig* c) { c->loss = LossKind::kCrossEntropy; },
       "one output per class"},
      {"l2 too big", [](TrainConfig* c) { c->optimizer.l2 = 5.0; }, "must be < 1"},
      {"negative clip", [](TrainConfig* c) { c->clip_gamma = -1.0; }, "clip_gamma"},
      {"label budget without labels",
       [](TrainConfig* c) {
         c->perturbation.kind = PerturbationKind::kBoundedPoisoning;
         c->budgets = {{0, 2}};
       },
       "perturbation.labels is not set"},
  };
  for (const BadConfig& bc : cases) {
    TrainConfig cfg = MlpConfig(PerturbationKind::kRemoval);
    bc.mutate(&cfg);
    auto t = Trainer::Create(cfg, data, InitParameters(ModelSpec::Mlp({9, 8, 1}), 1));
    ASSERT_FALSE(t.ok()) << bc.name;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << bc.name;
    EXPECT_NE(std::string(t.status().message()).find(bc.message_part), std::string::npos)
        << bc.name << ": " << t.status().message();
  }
}

TEST(TrainTest, NonFiniteInitialParametersAreRejected) {
  const Dataset data = Moons(100, 6);
  TrainConfig cfg = MlpConfig(PerturbationKind::kRemoval);
  Vector init = InitParameters(cfg.model, 1);
  init[3] = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(Trainer::Create(cfg, data, init).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace agt
