// Benchmark of one AGT training step against plain SGD steps on the same
// model and batch, measured in the same run.
//
// For each model and perturbation model it prints:
//   plain     - a standard mini-batch SGD step (batched forward/backward, GEMMs)
//   per-sample - an SGD step that materialises per-sample gradients (what
//                per-sample clipping needs; the same work pattern as AGT)
//   certified - one Trainer::Step with one budget (nominal + bounds + update)
// and the ratios certified/plain and certified/per-sample, plus certified
// samples per second. Usage: agt_bench [--repeats N] [--threads N] [--quick]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/bounds/ibp.h"
#include "core/common/rng.h"
#include "core/data/dataset.h"
#include "core/train/train.h"

namespace agt {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// A standard SGD step: batched backprop, mean gradient, update.
void PlainSgdStep(const ModelSpec& spec, LossKind loss, const Matrix& x, const Vector& y, double lr,
                  Vector* theta) {
  std::vector<Matrix> acts;
  const Matrix logits = Forward(spec, *theta, x, &acts);
  Matrix delta = LossGradient(loss, logits, y) / static_cast<double>(x.rows());
  const std::vector<DenseSlice> layout = spec.Layout();
  Vector grad(theta->size());
  size_t dense = layout.size();
  for (size_t li = spec.layers.size(); li-- > 0;) {
    if (spec.layers[li].kind == LayerKind::kRelu) {
      delta = (acts[li].array() > 0.0).select(delta, 0.0);
      continue;
    }
    const DenseSlice& s = layout[--dense];
    Eigen::Map<Matrix>(grad.data() + s.weight_offset, s.out, s.in).noalias() =
        delta.transpose() * acts[li];
    grad.segment(s.bias_offset, s.out) = delta.colwise().sum().transpose();
    if (li == 0) break;
    const Eigen::Map<const Matrix> w(theta->data() + s.weight_offset, s.out, s.in);
    Matrix next = delta * w;
    delta = std::move(next);
  }
  *theta -= lr * grad;
}

void PerSampleSgdStep(const ModelSpec& spec, LossKind loss, const Matrix& x, const Vector& y,
                      double lr, Matrix* scratch, Vector* theta) {
  PerSampleGradients(spec, *theta, x, y, loss, scratch);
  const Vector g = scratch->colwise().mean().transpose();
  *theta -= lr * g;
}

struct Case {
  std::string name;
  PerturbationModel perturbation;
  Budget budget;
  std::optional<double> clip;
};

template <typename F>
double TimeIt(int repeats, F&& f) {
  f();  // warm-up
  double best = 1e300;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = Clock::now();
    f();
    best = std::min(best, Seconds(t0, Clock::now()));
  }
  return best;
}

void RunModel(const std::string& title, const ModelSpec& spec, LossKind loss, int batch,
              const Dataset& data, int repeats, int threads) {
  std::printf("\n%s, batch %d, %ld parameters\n", title.c_str(), batch,
              static_cast<long>(spec.NumParameters()));
  std::printf("%-28s %12s %12s %12s %10s %10s %14s\n", "perturbation", "plain [s]", "per-sample",
              "certified", "cert/plain", "cert/p-s", "cert samples/s");
  const Vector init = InitParameters(spec, 1);
  const Matrix x = data.x.topRows(batch);
  const Vector y = data.y.head(batch);
  Vector theta = init;
  const double plain = TimeIt(repeats, [&] { PlainSgdStep(spec, loss, x, y, 1e-3, &theta); });
  Matrix scratch;
  theta = init;
  const double per_sample =
      TimeIt(repeats, [&] { PerSampleSgdStep(spec, loss, x, y, 1e-3, &scratch, &theta); });

  std::vector<Case> cases;
  PerturbationModel removal;
  removal.kind = PerturbationKind::kRemoval;
  cases.push_back({"removal k=10", removal, {10, 0}, std::nullopt});
  PerturbationModel subst;
  subst.kind = PerturbationKind::kSubstitution;
  cases.push_back({"substitution k=10 clip=1", subst, {10, 0}, 1.0});
  PerturbationModel features;
  features.kind = PerturbationKind::kBoundedPoisoning;
  features.epsilon = 0.01;
  cases.push_back({"features k=10 eps=0.01", features, {10, 0}, std::nullopt});
  PerturbationModel labels;
  labels.kind = PerturbationKind::kBoundedPoisoning;
  labels.label.enabled = true;
  labels.label.nu = 0.05;
  cases.push_back({"labels k=10", labels, {0, 10}, std::nullopt});

  for (const Case& c : cases) {
    TrainConfig cfg;
    cfg.model = spec;
    cfg.loss = loss;
    cfg.batch_size = batch;
    cfg.epochs = 1000000;
    cfg.optimizer.learning_rate = 1e-3;
    cfg.perturbation = c.perturbation;
    cfg.budgets = {c.budget};
    cfg.clip_gamma = c.clip;
    cfg.threads = threads;
    auto trainer = Trainer::Create(cfg, data, init);
    if (!trainer.ok()) {
      std::printf("%-28s error: %s\n", c.name.c_str(), trainer.status().ToString().c_str());
      continue;
    }
    const double cert = TimeIt(repeats, [&] { (void)(*trainer)->Step(); });
    std::printf("%-28s %12.5f %12.5f %12.5f %10.1f %10.2f %14.0f\n", c.name.c_str(), plain,
                per_sample, cert, cert / plain, cert / per_sample, batch / cert);
  }
}

Dataset RandomClassification(int n, int dim, int classes, uint64_t seed) {
  Rng rng(seed);
  Dataset d;
  d.x.resize(n, dim);
  d.y.resize(n);
  d.num_classes = classes;
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < dim; ++j) d.x(i, j) = rng.Uniform();
    d.y[i] = static_cast<double>(rng.UniformInt(classes));
  }
  return d;
}

Dataset RandomRegression(int n, int dim, uint64_t seed) {
  Rng rng(seed);
  Dataset d;
  d.x.resize(n, dim);
  d.y.resize(n);
  d.num_classes = 0;
  for (int i = 0; i < n; ++i) {
    double s = 0;
    for (int j = 0; j < dim; ++j) s += (d.x(i, j) = rng.Normal());
    d.y[i] = 0.1 * s + 0.1 * rng.Normal();
  }
  return d;
}

}  // namespace
}  // namespace agt

int main(int argc, char** argv) {
  int repeats = 5, threads = 0;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--repeats") && i + 1 < argc) {
      repeats = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--quick")) {
      quick = true;
    } else {
      std::printf(
          "usage: agt_bench [--repeats N] [--threads N] [--quick]\n"
          "Times plain SGD, per-sample SGD and certified AGT steps (best of N).\n");
      return std::strcmp(argv[i], "--help") == 0 ? 0 : 2;
    }
  }
  using agt::ModelSpec;
  std::printf("AGT step benchmark (float64, best of %d, threads %s)\n", repeats,
              threads ? std::to_string(threads).c_str() : "auto");
  agt::RunModel("11-50-1 ReLU MLP, MSE", ModelSpec::Mlp({11, 50, 1}), agt::LossKind::kMse, 1000,
                agt::RandomRegression(2000, 11, 1), repeats, threads);
  if (!quick) {
    agt::RunModel("784-128-10 ReLU MLP, cross-entropy", ModelSpec::Mlp({784, 128, 10}),
                  agt::LossKind::kCrossEntropy, 1000, agt::RandomClassification(2000, 784, 10, 2),
                  repeats, threads);
  }
  return 0;
}
