// Benchmark of one AGT training step against plain SGD steps on the same
// model and batch, measured in the same run.
//
// For each model and perturbation model it prints:
//   plain     - a standard mini-batch SGD step (batched forward/backward, GEMMs)
//   per-sample - an SGD step that materialises per-sample gradients (what
//                per-sample clipping needs; the same work pattern as AGT)
//   certified - one Trainer::Step with one budget (nominal + bounds + update)
// and the ratios certified/plain and certified/per-sample, plus certified
// samples per second. Models: 11-50-1 MLP (MSE, random regression data),
// 784-128-10 MLP (cross-entropy, random data) and the conv network of issue 14
// on Fashion-MNIST (random data of the same shape if the IDX files are
// absent; the output says which). Run with --help for the options.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#ifdef AGT_BENCH_HAVE_ZLIB
#include <zlib.h>
#endif

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "core/backend/simd/isa.h"
#include "core/bounds/ibp.h"
#include "core/common/allocator.h"
#include "core/common/rng.h"
#include "core/cuda/backends.h"
#include "core/data/dataset.h"
#include "core/layers/conv2d.h"
#include "core/layers/registry.h"
#include "core/train/train.h"

namespace agt {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Column sums of a row-major matrix, row by row (Eigen's colwise().sum()
// walks each column with a stride of a whole row).
void SumRows(const Matrix& m, Eigen::Map<Eigen::VectorXd>* out) {
  out->setZero();
  for (Index r = 0; r < m.rows(); ++r) *out += m.row(r).transpose();
}

// A standard SGD step through the model's operators: batched nominal forward
// (Layer::Forward), batched backward (Layer::Backward), the mean parameter
// gradient as one GEMM per layer (dense: delta^T * input; conv2d: the same on
// positions and patches, ChannelsToPositions(delta)^T * Im2Col(input), which
// sums over samples and positions; biases: column sums), update. Input
// gradients below the first layer with parameters are not computed; Flatten
// is a view. Single-threaded: Layer::Forward/Backward run the kernels'
// fixed-order product (as the certified passes do), the weight gradients
// Eigen's product.
struct PlainSgd {
  explicit PlainSgd(const ModelSpec& spec) : spec(spec), net(spec.TrainedNetwork()) {
    for (size_t i = 0; i < net.size(); ++i) {
      if (net.layer(i).has_params()) {
        first_param_layer = i;
        break;
      }
    }
  }

  void Step(LossKind loss, const Matrix& x, const Vector& y, double lr, Vector* theta) {
    const size_t n_layers = net.size();
    outputs.resize(n_layers);
    inputs.resize(n_layers + 1);
    if (spec.frozen.empty()) {
      inputs[0] = &x;
    } else {
      features = FrozenFeatures(spec, x);
      inputs[0] = &features;
    }
    for (size_t i = 0; i < n_layers; ++i) {
      const Layer& layer = net.layer(i);
      if (layer.spec().kind == LayerKind::kFlatten) {
        // The identity on the stored values (flatten.h): a view, as in torch.
        inputs[i + 1] = inputs[i];
        continue;
      }
      outputs[i] = layer.Forward(theta->data() + net.param_offset(i), *inputs[i]);
      inputs[i + 1] = &outputs[i];
    }
    Matrix delta = LossGradient(loss, *inputs[n_layers], y) / static_cast<double>(x.rows());
    grad.resize(theta->size());
    for (size_t li = n_layers; li-- > first_param_layer;) {
      const Layer& layer = net.layer(li);
      const Matrix& input = *inputs[li];
      if (layer.has_params()) {
        const int rows = layer.weight_rows(), cols = layer.weight_cols();
        double* g = grad.data() + net.param_offset(li);
        Eigen::Map<Matrix> gw(g, rows, cols);
        Eigen::Map<Eigen::VectorXd> gb(g + static_cast<Index>(rows) * cols, rows);
        if (layer.spec().kind == LayerKind::kConv2d) {
          const auto& conv = static_cast<const Conv2dLayer&>(layer);
          const Matrix d = conv.ChannelsToPositions(delta);  // (N P) x O
          gw.noalias() = d.transpose() * conv.Im2Col(input);
          SumRows(d, &gb);
        } else {
          gw.noalias() = delta.transpose() * input;
          SumRows(delta, &gb);
        }
      }
      if (li == first_param_layer) break;
      if (layer.spec().kind == LayerKind::kFlatten) continue;  // delta unchanged
      Matrix next = layer.Backward(theta->data() + net.param_offset(li), input, delta);
      delta = std::move(next);
    }
    *theta -= lr * grad;
  }

  const ModelSpec& spec;
  Network net;
  size_t first_param_layer = 0;
  Matrix features;                     // the frozen prefix's output, if any
  std::vector<const Matrix*> inputs;   // inputs[i]: input of layer i; back(): logits
  std::vector<Matrix> outputs;         // storage of the layers' outputs
  Vector grad;
};

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

// --cases: the certified cases to time (empty: all).
std::vector<std::string> g_cases;

std::vector<Case> StandardCases() {
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
  return cases;
}

// The variants timed for every certified case: a kernel variant of the CPU
// backend (--isa) or another backend (--backends: cuda, host-engine), one
// after the other within a case so that the machine's load hits them alike.
struct Variant {
  simd::Isa isa;
  BackendChoice backend = BackendChoice::kCpu;
  std::string Name() const {
    return backend == BackendChoice::kCpu ? std::string(simd::IsaName(isa)) : BackendChoiceName(backend);
  }
};
std::vector<Variant> g_variants;

void RunModel(const std::string& title, const ModelSpec& spec, LossKind loss, int batch,
              const Dataset& data, const std::vector<Case>& cases, int repeats, int threads) {
  std::printf("\n%s, batch %d, %ld parameters\n", title.c_str(), batch,
              static_cast<long>(spec.NumParameters()));
  const Vector init = InitParameters(spec, 1);
  const Matrix x = data.x.topRows(batch);
  const Vector y = data.y.head(batch);
  PlainSgd plain_sgd(spec);
  Matrix scratch;
  {
    // The two baselines must take the same step.
    Vector a = init, b = init;
    plain_sgd.Step(loss, x, y, 1.0, &a);
    PerSampleSgdStep(spec, loss, x, y, 1.0, &scratch, &b);
    std::printf("(check: plain and per-sample steps agree to %.1e, step norm %.3e)\n",
                (a - b).cwiseAbs().maxCoeff(), (a - init).norm());
  }
  std::printf("%-37s %12s %12s %12s %10s %10s %14s\n", "perturbation", "plain [s]", "per-sample",
              "certified", "cert/plain", "cert/p-s", "cert samples/s");
  std::fflush(stdout);
  Vector theta = init;
  const double plain = TimeIt(repeats, [&] { plain_sgd.Step(loss, x, y, 1e-3, &theta); });
  theta = init;
  const double per_sample =
      TimeIt(repeats, [&] { PerSampleSgdStep(spec, loss, x, y, 1e-3, &scratch, &theta); });
  scratch = Matrix();  // the conv model's N x P matrix is 218 MB

  for (const Case& c : cases) {
    if (!g_cases.empty() &&
        std::none_of(g_cases.begin(), g_cases.end(),
                     [&](const std::string& w) { return c.name.rfind(w, 0) == 0; })) {
      continue;
    }
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
    // One trainer per kernel variant; the variants take turns, one step
    // each per round, so that the machine's load hits them alike.
    std::vector<std::unique_ptr<Trainer>> trainers;
    absl::Status error;
    for (const Variant& v : g_variants) {
      absl::StatusOr<std::unique_ptr<ComputeBackend>> backend = MakeBackend(v.backend, threads);
      if (!backend.ok()) {
        error = backend.status();
        break;
      }
      auto trainer = Trainer::Create(cfg, data, init, *std::move(backend));
      if (!trainer.ok()) {
        error = trainer.status();
        break;
      }
      trainers.push_back(std::move(*trainer));
    }
    if (!error.ok()) {
      std::printf("%-37s error: %s\n", c.name.c_str(), error.ToString().c_str());
      continue;
    }
    std::vector<double> best(g_variants.size(), 1e300);
    for (int round = 0; round <= repeats; ++round) {  // round 0 warms up
      for (size_t v = 0; v < g_variants.size(); ++v) {
        (void)simd::SetIsaForTesting(g_variants[v].isa);  // main kept only supported variants
        const auto t0 = Clock::now();
        absl::StatusOr<ProgressEvent> ev = trainers[v]->Step();
        const double t = Seconds(t0, Clock::now());
        if (!ev.ok()) {
          std::printf("%-37s error: %s\n", c.name.c_str(), ev.status().ToString().c_str());
          return;
        }
        if (round > 0) best[v] = std::min(best[v], t);
      }
    }
    for (size_t v = 0; v < g_variants.size(); ++v) {
      std::string name = c.name;
      if (g_variants.size() > 1) name.append(" [").append(g_variants[v].Name()).append("]");
      const double cert = best[v];
      std::printf("%-37s %12.5f %12.5f %12.5f %10.1f %10.2f %14.0f\n", name.c_str(), plain,
                  per_sample, cert, cert / plain, cert / per_sample, batch / cert);
    }
    std::fflush(stdout);
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

// Fashion-MNIST (or any MNIST-format set) from IDX files, gzipped or not.
// Debian's dataset-fashion-mnist ships them gzipped in kFashionMnistDir.
constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

class IdxFile {
 public:
  ~IdxFile() { Close(); }
  bool Open(const std::string& path) {
#ifdef AGT_BENCH_HAVE_ZLIB
    gz_ = gzopen(path.c_str(), "rb");  // reads uncompressed files as they are
    return gz_ != nullptr;
#else
    if (path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0) return false;
    f_ = std::fopen(path.c_str(), "rb");
    return f_ != nullptr;
#endif
  }
  bool Read(void* buf, size_t n) {
#ifdef AGT_BENCH_HAVE_ZLIB
    size_t done = 0;
    while (done < n) {
      const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - done, 1u << 30));
      const int got = gzread(gz_, static_cast<char*>(buf) + done, chunk);
      if (got <= 0) return false;
      done += static_cast<size_t>(got);
    }
    return true;
#else
    return std::fread(buf, 1, n, f_) == n;
#endif
  }
  // The header of an unsigned-byte IDX file: its dimensions.
  bool Header(std::vector<uint32_t>* dims) {
    unsigned char magic[4];
    if (!Read(magic, 4) || magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08) return false;
    dims->resize(magic[3]);
    for (uint32_t& d : *dims) {
      unsigned char b[4];
      if (!Read(b, 4)) return false;
      d = (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
    }
    return true;
  }

 private:
  void Close() {
#ifdef AGT_BENCH_HAVE_ZLIB
    if (gz_ != nullptr) gzclose(gz_);
    gz_ = nullptr;
#else
    if (f_ != nullptr) std::fclose(f_);
    f_ = nullptr;
#endif
  }
#ifdef AGT_BENCH_HAVE_ZLIB
  gzFile gz_ = nullptr;
#else
  std::FILE* f_ = nullptr;
#endif
};

bool OpenIdx(const std::string& dir, const std::string& name, IdxFile* file, std::string* path) {
  for (const std::string& p : {dir + "/" + name, dir + "/" + name + ".gz"}) {
    if (file->Open(p)) {
      *path = p;
      return true;
    }
  }
  return false;
}

// The first n training images (pixels scaled to [0, 1]) and labels, or an
// error message.
std::optional<Dataset> LoadMnistFormat(const std::string& dir, int n, std::string* error) {
  IdxFile images, labels;
  std::string images_path, labels_path;
  std::vector<uint32_t> idims, ldims;
  if (!OpenIdx(dir, "train-images-idx3-ubyte", &images, &images_path) ||
      !OpenIdx(dir, "train-labels-idx1-ubyte", &labels, &labels_path)) {
#ifdef AGT_BENCH_HAVE_ZLIB
    *error = "no train-{images-idx3,labels-idx1}-ubyte[.gz] in " + dir;
#else
    *error = "no train-{images-idx3,labels-idx1}-ubyte in " + dir + " (built without zlib: .gz unreadable)";
#endif
    return std::nullopt;
  }
  if (!images.Header(&idims) || idims.size() != 3 || idims[1] != 28 || idims[2] != 28 ||
      !labels.Header(&ldims) || ldims.size() != 1 || idims[0] != ldims[0] ||
      idims[0] < static_cast<uint32_t>(n)) {
    *error = "unexpected IDX headers in " + images_path + " / " + labels_path;
    return std::nullopt;
  }
  std::vector<unsigned char> pix(static_cast<size_t>(n) * 784), lab(n);
  if (!images.Read(pix.data(), pix.size()) || !labels.Read(lab.data(), lab.size())) {
    *error = "truncated " + images_path + " / " + labels_path;
    return std::nullopt;
  }
  Dataset d;
  d.x.resize(n, 784);
  d.y.resize(n);
  d.num_classes = 10;
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < 784; ++j) d.x(i, j) = pix[static_cast<size_t>(i) * 784 + j] / 255.0;
    if (lab[i] > 9) {
      *error = "label out of range in " + labels_path;
      return std::nullopt;
    }
    d.y[i] = lab[i];
  }
  *error = images_path;
  return d;
}

// The issue-14 network: [1, 28, 28] -> conv 16@3x3 stride 2 -> ReLU ->
// flatten (16 x 13 x 13 = 2704) -> dense 10.
ModelSpec FashionCnn() {
  Conv2dParams c;
  c.in_channels = 1;
  c.out_channels = 16;
  c.kernel_h = c.kernel_w = 3;
  c.stride_h = c.stride_w = 2;
  ModelSpec spec;
  spec.input_shape = Shape::Image(1, 28, 28);
  spec.layers = {LayerSpec::Conv2d(c), LayerSpec::Relu(), LayerSpec::Flatten(),
                 LayerSpec::Dense(2704, 10)};
  return spec;
}

}  // namespace
}  // namespace agt

int main(int argc, char** argv) {
  // The allocator as agt sets it (core/common/allocator.h; agt-server keeps
  // glibc's defaults),
  // for every step timed here, plain SGD included; --default-malloc keeps
  // glibc's defaults (every large block mapped and unmapped per step), for
  // comparison with figures measured before agt set it.
  bool default_malloc = false;
  for (int i = 1; i < argc; ++i) default_malloc |= std::strcmp(argv[i], "--default-malloc") == 0;
  if (!default_malloc) agt::KeepFreedMemoryForReuse();
  int repeats = 5, threads = 0;
  std::string models = "11-50-1,784-128-10,conv";
  std::string data_dir = agt::kFashionMnistDir;
  std::string isa_list;  // empty: the variant chosen at start-up
  std::string backend_list = "cpu";
  std::vector<int> batches = {1000};
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--repeats") && i + 1 < argc) {
      repeats = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--quick")) {
      models = "11-50-1";
    } else if (!std::strcmp(argv[i], "--models") && i + 1 < argc) {
      models = argv[++i];
    } else if (!std::strcmp(argv[i], "--fashion-mnist") && i + 1 < argc) {
      data_dir = argv[++i];
    } else if (!std::strcmp(argv[i], "--isa") && i + 1 < argc) {
      isa_list = argv[++i];
    } else if (!std::strcmp(argv[i], "--default-malloc")) {
      // read above, before the first allocation of any size
    } else if (!std::strcmp(argv[i], "--cases") && i + 1 < argc) {
      for (absl::string_view c : absl::StrSplit(argv[++i], ',')) {
        if (c != "removal" && c != "substitution" && c != "features" && c != "labels") {
          std::fprintf(stderr,
                       "agt_bench: --cases: unknown case '%s' (removal, substitution, features, "
                       "labels)\n",
                       std::string(c).c_str());
          return 2;
        }
        agt::g_cases.emplace_back(c);
      }
    } else if (!std::strcmp(argv[i], "--backends") && i + 1 < argc) {
      backend_list = argv[++i];
    } else if (!std::strcmp(argv[i], "--batches") && i + 1 < argc) {
      batches.clear();
      for (absl::string_view b : absl::StrSplit(argv[++i], ',')) {
        int n = 0;
        if (!absl::SimpleAtoi(b, &n) || n < 20) {
          std::fprintf(stderr, "agt_bench: --batches: '%s' is not a batch size >= 20\n",
                       std::string(b).c_str());
          return 2;
        }
        batches.push_back(n);
      }
    } else {
      std::printf(
          "usage: agt_bench [--repeats N] [--threads N] [--quick] [--models LIST]\n"
          "                 [--fashion-mnist DIR] [--isa ISAS] [--backends LIST]\n"
          "                 [--batches LIST] [--cases CASES] [--default-malloc]\n"
          "Times plain SGD, per-sample SGD and certified AGT steps (best of N).\n"
          "LIST: comma-separated from 11-50-1, 784-128-10, conv (default: all;\n"
          "--quick: 11-50-1). DIR: the Fashion-MNIST IDX files (train-*-ubyte[.gz])\n"
          "for the conv model, default %s; random data of\n"
          "the same shape if they are absent. ISAS: comma-separated kernel variants\n"
          "from baseline, avx2, avx512, or all (those this CPU supports), each certified\n"
          "case timed under each; default: the one chosen at start-up (AGT_ISA).\n"
          "--backends: comma-separated from cpu, cuda, host-engine (default cpu), each\n"
          "certified case timed on each (the CPU under every ISA asked for).\n"
          "--batches: comma-separated batch sizes (default 1000); the datasets hold\n"
          "twice the largest. cert samples/s = batch / certified step.\n"
          "CASES: comma-separated from removal, substitution, features, labels\n"
          "(default: all; the plain and per-sample baselines are always timed).\n"
          "--default-malloc: glibc's allocator defaults instead of agt's (freed large\n"
          "blocks kept for reuse, core/common/allocator.h), for every step timed.\n",
          agt::kFashionMnistDir);
      return std::strcmp(argv[i], "--help") == 0 ? 0 : 2;
    }
  }
  repeats = std::max(1, repeats);
  auto wanted = [&](const std::string& name) {
    return ("," + models + ",").find("," + name + ",") != std::string::npos;
  };
  for (size_t b = 0; b <= models.size();) {
    const size_t e = std::min(models.find(',', b), models.size());
    const std::string m = models.substr(b, e - b);
    if (m != "11-50-1" && m != "784-128-10" && m != "conv") {
      std::fprintf(stderr, "agt_bench: unknown model '%s' (11-50-1, 784-128-10, conv)\n",
                   m.c_str());
      return 2;
    }
    b = e + 1;
  }
  namespace simd = agt::simd;
  std::vector<simd::Isa> isas;
  if (isa_list.empty()) {
    isas = {simd::ActiveIsa()};
  } else if (isa_list == "all") {
    isas = simd::SupportedIsas();
  } else {
    for (size_t b = 0; b <= isa_list.size();) {
      const size_t e = std::min(isa_list.find(',', b), isa_list.size());
      const std::string name = isa_list.substr(b, e - b);
      const std::optional<simd::Isa> isa = simd::ParseIsa(name);
      if (!isa || !simd::IsaSupported(*isa)) {
        std::fprintf(stderr, "agt_bench: kernel variant '%s' is %s\n", name.c_str(),
                     isa ? "not supported by this CPU" : "unknown (baseline, avx2, avx512, all)");
        return 2;
      }
      isas.push_back(*isa);
      b = e + 1;
    }
  }
  for (absl::string_view name : absl::StrSplit(backend_list, ',')) {
    absl::StatusOr<agt::BackendChoice> choice = agt::ParseBackendChoice(std::string(name));
    if (!choice.ok()) {
      std::fprintf(stderr, "agt_bench: --backends: %s\n", std::string(choice.status().message()).c_str());
      return 2;
    }
    if (absl::StatusOr<std::string> usable = agt::ResolveBackend(*choice); !usable.ok()) {
      std::fprintf(stderr, "agt_bench: --backends: %s\n", std::string(usable.status().message()).c_str());
      return 2;
    }
    if (*choice == agt::BackendChoice::kCpu) {
      for (simd::Isa isa : isas) agt::g_variants.push_back({isa, *choice});
    } else {
      agt::g_variants.push_back({simd::ActiveIsa(), *choice});
    }
  }
  std::printf("%s\n", agt::ProbeCuda().description.c_str());
  std::string isa_names;
  for (simd::Isa isa : isas) {
    if (!isa_names.empty()) isa_names += ',';
    isa_names.append(simd::IsaName(isa));
  }
  using agt::ModelSpec;
  std::printf("allocator: %s\n", default_malloc ? "glibc defaults (--default-malloc)"
                                               : "freed blocks kept for reuse, as agt sets it");
  std::printf("AGT step benchmark (float64, best of %d, threads %s, kernels %s)\n", repeats,
              threads ? std::to_string(threads).c_str() : "auto", isa_names.c_str());
  for (const int batch : batches) {
  const int rows = 2 * batch;
  if (wanted("11-50-1")) {
    agt::RunModel("11-50-1 ReLU MLP, MSE", ModelSpec::Mlp({11, 50, 1}), agt::LossKind::kMse, batch,
                  agt::RandomRegression(rows, 11, 1), agt::StandardCases(), repeats, threads);
  }
  if (wanted("784-128-10")) {
    agt::RunModel("784-128-10 ReLU MLP, cross-entropy", ModelSpec::Mlp({784, 128, 10}),
                  agt::LossKind::kCrossEntropy, batch, agt::RandomClassification(rows, 784, 10, 2),
                  agt::StandardCases(), repeats, threads);
  }
  if (wanted("conv")) {
    std::string source;
    std::optional<agt::Dataset> data = agt::LoadMnistFormat(data_dir, rows, &source);
    std::string title = "[1, 28, 28] conv 16@3x3 stride 2, ReLU, flatten, dense 2704->10, CE, ";
    if (data) {
      title += "Fashion-MNIST (" + source + ", first " + std::to_string(rows) + ")";
    } else {
      std::printf("\nFashion-MNIST not loaded (%s): RANDOM data of the same shape instead\n",
                  source.c_str());
      data = agt::RandomClassification(rows, 784, 10, 3);
      title += "random data";
    }
    std::vector<agt::Case> cases;
    for (const agt::Case& c : agt::StandardCases()) {
      if (c.name.rfind("removal", 0) == 0 || c.name.rfind("features", 0) == 0) cases.push_back(c);
    }
    agt::RunModel(title, agt::FashionCnn(), agt::LossKind::kCrossEntropy, batch, *data, cases,
                  repeats, threads);
  }
  }
  return 0;
}
