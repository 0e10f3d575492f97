// The device backend (core/cuda/device_backend.h) against the CPU backend:
// every perturbation model, loss, layer kind (dense under Rump's rule, dense
// under the exact product, conv2d, a frozen prefix), budgets on both sides of
// b/2 and k = 0, clipping, factor groups and rows removed in place give the
// same parameters and boxes bit for bit, step after step.
//
// Each case runs on two engines: the host engine (always: the per-parameter
// code the GPU runs, on the host) and the CUDA engine (only where a device
// is visible: skipped with a message otherwise, as on CI).
#include <gtest/gtest.h>

#include "core/cuda/backends.h"
#include "core/cuda/device_backend.h"
#include "core/cuda/phase2.h"
#include "core/data/dataset.h"
#include "core/train/train.h"

namespace agt {
namespace {

enum class Engine { kHost, kCuda };

std::string EngineName(Engine e) { return e == Engine::kHost ? "host" : "cuda"; }

// The device backend on `engine`, or null (with the reason) when it cannot run here.
std::unique_ptr<ComputeBackend> DeviceBackendOn(Engine engine, int threads, std::string* why) {
  if (engine == Engine::kHost) {
    return MakeDeviceBackend(cuda::MakeHostPhase2(threads), "host-engine", threads);
  }
  std::unique_ptr<cuda::Phase2Api> gpu = cuda::MakeCudaPhase2(0, why);
  if (gpu == nullptr) return nullptr;
  return MakeDeviceBackend(std::move(gpu), "cuda", threads);
}

struct Case {
  std::string name;
  TrainConfig config;
  Dataset data;
};

TrainConfig BaseConfig(ModelSpec model, LossKind loss, PerturbationKind kind, int batch) {
  TrainConfig c;
  c.model = std::move(model);
  c.loss = loss;
  c.batch_size = batch;
  c.epochs = 2;
  c.optimizer.learning_rate = 0.2;
  c.perturbation.kind = kind;
  c.budgets = {{0, 0}, {3, 0}, {40, 0}, {200, 0}};
  return c;
}

Dataset MoonsPoly(int n, uint64_t seed) {
  Dataset d = MakeMoons(n, 0.1, seed);
  d.x = PolynomialFeatures(d.x, 3);
  return d;
}

// Images of shape [1, 6, 6] from blobs (36 features), `classes` classes.
Dataset Images(int n, int classes, uint64_t seed) { return MakeBlobs(n, 36, classes, 1.0, 2.0, seed); }

ModelSpec ConvNet(int out) {
  ModelSpec m;
  m.input_shape = Shape::Image(1, 6, 6);
  m.layers = {LayerSpec::Conv2d(Conv2dParams{1, 4, 3, 3, 2, 2, 1, 1}), LayerSpec::Relu(),
              LayerSpec::Flatten(), LayerSpec::Dense(36, 70), LayerSpec::Relu(),
              LayerSpec::Dense(70, out)};
  return m;
}

ModelSpec FrozenHead(int out) {
  ModelSpec as_trained;
  as_trained.input_shape = Shape::Image(1, 6, 6);
  as_trained.layers = {LayerSpec::Conv2d(Conv2dParams{1, 4, 3, 3, 2, 2, 1, 1}), LayerSpec::Relu(),
                       LayerSpec::Flatten()};
  ModelSpec m;
  m.input_shape = as_trained.input_shape;
  m.frozen = FrozenPrefix{as_trained.layers, 2.0 * InitParameters(as_trained, 55)};
  m.layers = {LayerSpec::Dense(36, 8), LayerSpec::Relu(), LayerSpec::Dense(8, out)};
  return m;
}

std::vector<Case> Cases() {
  std::vector<Case> out;
  const ModelSpec mlp = ModelSpec::Mlp({9, 80, 16, 1});  // 80 wide: the dense path for layer 2
  {
    TrainConfig c = BaseConfig(mlp, LossKind::kBinaryCrossEntropy, PerturbationKind::kRemoval, 300);
    out.push_back({"removal_bce", c, MoonsPoly(900, 1)});
  }
  {
    TrainConfig c = BaseConfig(mlp, LossKind::kMse, PerturbationKind::kSubstitution, 300);
    c.clip_gamma = 0.5;
    out.push_back({"substitution_mse_clip", c, MoonsPoly(900, 2)});
  }
  {
    TrainConfig c = BaseConfig(ModelSpec::Mlp({9, 70, 3}), LossKind::kCrossEntropy,
                               PerturbationKind::kBoundedPoisoning, 250);
    c.perturbation.epsilon = 0.02;
    c.perturbation.label.enabled = true;
    c.budgets = {{0, 0}, {2, 1}, {5, 0}, {0, 3}, {200, 0}};
    out.push_back({"poisoning_ce_labels", c, MakeBlobs(750, 9, 3, 1.0, 3.0, 3)});
  }
  {
    TrainConfig c = BaseConfig(mlp, LossKind::kHinge, PerturbationKind::kBoundedPoisoning, 300);
    c.perturbation.epsilon = 0.05;
    c.clip_gamma = 1.0;
    c.budgets = {{1, 0}, {10, 0}};
    out.push_back({"poisoning_hinge_clip", c, MoonsPoly(900, 4)});
  }
  {
    TrainConfig c = BaseConfig(mlp, LossKind::kBinaryCrossEntropy, PerturbationKind::kRemoval, 300);
    c.bounds.interval.product = MatMulMethod::kExact;  // dense bounds expanded on the host
    out.push_back({"removal_exact_product", c, MoonsPoly(900, 5)});
  }
  {
    TrainConfig c =
        BaseConfig(ConvNet(3), LossKind::kCrossEntropy, PerturbationKind::kBoundedPoisoning, 200);
    c.perturbation.epsilon = 0.05;
    c.budgets = {{0, 0}, {4, 0}, {150, 0}};
    out.push_back({"poisoning_conv", c, Images(600, 3, 6)});
  }
  {
    TrainConfig c = BaseConfig(ConvNet(1), LossKind::kMse, PerturbationKind::kSubstitution, 200);
    c.clip_gamma = 0.3;
    c.budgets = {{1, 0}, {20, 0}};
    out.push_back({"substitution_conv_clip", c, Images(600, 2, 7)});
  }
  {
    TrainConfig c =
        BaseConfig(FrozenHead(3), LossKind::kCrossEntropy, PerturbationKind::kBoundedPoisoning, 200);
    c.perturbation.epsilon = 0.03;
    c.budgets = {{2, 0}, {30, 0}};
    out.push_back({"poisoning_frozen_prefix", c, Images(400, 3, 8)});
  }
  {
    TrainConfig c = BaseConfig(mlp, LossKind::kBinaryCrossEntropy, PerturbationKind::kRemoval, 300);
    c.factor_rows = 100;  // groups of one chunk: groups of 256 rows: two per batch
    c.removed_rows = {0, 7, 299, 300, 650};
    c.budgets = {{0, 0}, {2, 0}, {150, 0}};
    out.push_back({"removal_groups_and_removed_rows", c, MoonsPoly(900, 9)});
  }
  return out;
}

// Trains to the end, returning the state (or the first failure).
absl::StatusOr<TrainState> TrainAll(const TrainConfig& config, const Dataset& data,
                                    std::unique_ptr<ComputeBackend> backend) {
  absl::StatusOr<std::unique_ptr<Trainer>> trainer =
      Trainer::Create(config, data, InitParameters(config.model, 11), std::move(backend));
  if (!trainer.ok()) return trainer.status();
  while (!(*trainer)->done()) {
    absl::StatusOr<ProgressEvent> ev = (*trainer)->Step();
    if (!ev.ok()) return ev.status();
  }
  return (*trainer)->state();
}

void ExpectSameBits(const TrainState& a, const TrainState& b, const std::string& what) {
  ASSERT_EQ(a.boxes.size(), b.boxes.size()) << what;
  EXPECT_EQ(a.step, b.step) << what;
  EXPECT_TRUE(a.nominal == b.nominal) << what << ": nominal parameters differ, max |diff| "
                                      << (a.nominal - b.nominal).cwiseAbs().maxCoeff();
  for (size_t j = 0; j < a.boxes.size(); ++j) {
    EXPECT_TRUE(a.boxes[j].lower == b.boxes[j].lower)
        << what << ": lower bounds of budget " << j << ", max |diff| "
        << (a.boxes[j].lower - b.boxes[j].lower).cwiseAbs().maxCoeff();
    EXPECT_TRUE(a.boxes[j].upper == b.boxes[j].upper)
        << what << ": upper bounds of budget " << j << ", max |diff| "
        << (a.boxes[j].upper - b.boxes[j].upper).cwiseAbs().maxCoeff();
  }
}

class DeviceBackendTest : public ::testing::TestWithParam<Engine> {};

TEST_P(DeviceBackendTest, EveryCaseMatchesTheCpuBackendBitForBit) {
  std::string why;
  if (DeviceBackendOn(GetParam(), 1, &why) == nullptr) {
    GTEST_SKIP() << "GPU test skipped: " << why << " (runs on a machine with an NVIDIA GPU)";
  }
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    ASSERT_TRUE(c.config.Validate(c.data.dim(), c.data.num_classes, c.data.size()).ok()) << c.name;
    absl::StatusOr<TrainState> cpu = TrainAll(c.config, c.data, MakeCpuBackend(2));
    ASSERT_TRUE(cpu.ok()) << cpu.status();
    ASSERT_GT(cpu->step, 0);
    for (int threads : {1, 3}) {
      absl::StatusOr<TrainState> device =
          TrainAll(c.config, c.data, DeviceBackendOn(GetParam(), threads, &why));
      ASSERT_TRUE(device.ok()) << device.status();
      ExpectSameBits(*device, *cpu,
                     c.name + " on the " + EngineName(GetParam()) + " engine, " +
                         std::to_string(threads) + " threads");
    }
  }
}

TEST_P(DeviceBackendTest, ZeroBudgetCollapsesToTheNominalModel) {
  std::string why;
  if (DeviceBackendOn(GetParam(), 1, &why) == nullptr) {
    GTEST_SKIP() << "GPU test skipped: " << why << " (runs on a machine with an NVIDIA GPU)";
  }
  for (PerturbationKind kind : {PerturbationKind::kRemoval, PerturbationKind::kSubstitution}) {
    TrainConfig c = BaseConfig(ModelSpec::Mlp({9, 80, 1}), LossKind::kBinaryCrossEntropy, kind, 300);
    c.budgets = {{0, 0}};
    if (kind == PerturbationKind::kSubstitution) c.clip_gamma = 1.0;
    absl::StatusOr<TrainState> s = TrainAll(c, MoonsPoly(600, 12), DeviceBackendOn(GetParam(), 2, &why));
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_TRUE(s->boxes[0].lower == s->nominal);
    EXPECT_TRUE(s->boxes[0].upper == s->nominal);
  }
}

INSTANTIATE_TEST_SUITE_P(Engines, DeviceBackendTest, ::testing::Values(Engine::kHost, Engine::kCuda),
                         [](const auto& info) { return EngineName(info.param); });

// An engine that fails on a chosen call, as a CUDA fault would: the step
// fails with the engine's message and the state stays where it was.
class FailingEngine : public cuda::Phase2Api {
 public:
  explicit FailingEngine(int fail_at, bool full = false)
      : inner_(cuda::MakeHostPhase2(1)), fail_at_(fail_at), full_(full) {}
  std::string Describe() const override { return "failing"; }
  std::string Prepare(const cuda::Phase2Job& job) override {
    if (full_) return std::string(cuda::kOutOfDeviceMemory) + "an injected shortage";
    return inner_->Prepare(job);
  }
  std::string BeginBatch(int32_t rows) override { return inner_->BeginBatch(rows); }
  std::string AddDense(size_t stream, int64_t offset, const cuda::DenseBlock& b,
                       const cuda::DenseBlock* p) override {
    if (++calls_ == fail_at_) return "an injected device fault";
    return inner_->AddDense(stream, offset, b, p);
  }
  std::string AddExpanded(size_t stream, int64_t offset, int64_t width, int64_t rows,
                          const double* lo, const double* hi, const double* plo,
                          const double* phi) override {
    return inner_->AddExpanded(stream, offset, width, rows, lo, hi, plo, phi);
  }
  std::string Finish(const std::vector<double*>& lower, const std::vector<double*>& upper,
                     double* nominal) override {
    return inner_->Finish(lower, upper, nominal);
  }

 private:
  std::unique_ptr<cuda::Phase2Api> inner_;
  int fail_at_;
  bool full_;
  int calls_ = 0;
};

TEST(DeviceBackendErrors, AJobThatDoesNotFitTheDeviceIsResourceExhaustedAtCreation) {
  TrainConfig c = BaseConfig(ModelSpec::Mlp({9, 80, 1}), LossKind::kBinaryCrossEntropy,
                             PerturbationKind::kRemoval, 300);
  auto trainer =
      Trainer::Create(c, MoonsPoly(600, 14), InitParameters(c.model, 1),
                      MakeDeviceBackend(std::make_unique<FailingEngine>(0, true), "test", 1));
  ASSERT_FALSE(trainer.ok());
  EXPECT_EQ(trainer.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(trainer.status().message().find("an injected shortage"), absl::string_view::npos)
      << trainer.status();
}

TEST(DeviceBackendErrors, AnEngineFaultFailsTheStepAndLeavesTheState) {
  TrainConfig c = BaseConfig(ModelSpec::Mlp({9, 80, 1}), LossKind::kBinaryCrossEntropy,
                             PerturbationKind::kRemoval, 300);
  const Dataset data = MoonsPoly(600, 13);
  // Two dense layers x (4 budgets + nominal) x two runs of rows (the chunks
  // of 256 and 44 rows) = 20 dense calls per step: the 25th is in the second.
  auto trainer = Trainer::Create(c, data, InitParameters(c.model, 1),
                                 MakeDeviceBackend(std::make_unique<FailingEngine>(25), "test", 1));
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  ASSERT_TRUE((*trainer)->Step().ok());
  const TrainState before = (*trainer)->state();
  absl::StatusOr<ProgressEvent> ev = (*trainer)->Step();
  ASSERT_FALSE(ev.ok());
  EXPECT_EQ(ev.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(ev.status().message().find("an injected device fault"), absl::string_view::npos)
      << ev.status();
  EXPECT_EQ((*trainer)->state().step, before.step);
  ExpectSameBits((*trainer)->state(), before, "after the failed step");
}

TEST(BackendChoice, ParsesTheThreeNamesAndRefusesOthers) {
  EXPECT_EQ(*ParseBackendChoice("cpu"), BackendChoice::kCpu);
  EXPECT_EQ(*ParseBackendChoice("cuda"), BackendChoice::kCuda);
  EXPECT_EQ(*ParseBackendChoice("auto"), BackendChoice::kAuto);
  const absl::Status s = ParseBackendChoice("gpu").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("\"gpu\""), absl::string_view::npos) << s;
}

TEST(BackendChoice, CudaWithoutADeviceIsAFailedPreconditionAndAutoFallsBackToTheCpu) {
  const CudaAvailability a = ProbeCuda();
  EXPECT_EQ(a.compiled, cuda::CudaCompiled());
  EXPECT_FALSE(a.description.empty());
  if (a.devices > 0) GTEST_SKIP() << "a CUDA device is visible: " << a.description;
  absl::StatusOr<std::unique_ptr<ComputeBackend>> cuda = MakeBackend(BackendChoice::kCuda, 1);
  ASSERT_FALSE(cuda.ok());
  EXPECT_EQ(cuda.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(cuda.status().message().find("CUDA"), absl::string_view::npos) << cuda.status();
  absl::StatusOr<std::unique_ptr<ComputeBackend>> automatic = MakeBackend(BackendChoice::kAuto, 1);
  ASSERT_TRUE(automatic.ok()) << automatic.status();
  EXPECT_EQ((*automatic)->name(), "cpu");
  EXPECT_EQ(*ResolveBackend(BackendChoice::kAuto), "cpu");
}

TEST(BackendChoice, AutoTakesTheGpuWhenOneIsVisible) {
  const CudaAvailability a = ProbeCuda();
  if (a.devices == 0) GTEST_SKIP() << "GPU test skipped: " << a.description;
  absl::StatusOr<std::unique_ptr<ComputeBackend>> b = MakeBackend(BackendChoice::kAuto, 1);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*b)->name(), "cuda");
}

}  // namespace
}  // namespace agt
