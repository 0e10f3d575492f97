#include "core/cuda/device_backend.h"

#include <algorithm>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/backend/factor_passes.h"
#include "core/backend/simd/isa.h"
#include "core/backend/thread_pool.h"

namespace agt {
namespace {

// Doubles per host-expanded tile and bound array (8 MB).
constexpr Index kTileValues = Index{1} << 20;

cuda::StreamKind StreamKindOf(PerturbationKind kind) {
  switch (kind) {
    case PerturbationKind::kRemoval:
      return cuda::StreamKind::kRemoval;
    case PerturbationKind::kSubstitution:
      return cuda::StreamKind::kSubstitution;
    case PerturbationKind::kBoundedPoisoning:
      return cuda::StreamKind::kBoundedPoisoning;
  }
  return cuda::StreamKind::kRemoval;
}

cuda::DenseBlock ToBlock(const DenseFactorRows& f) {
  cuda::DenseBlock b;
  b.rows = f.rows;
  b.out = f.out;
  b.in = f.in;
  b.m = f.m;
  b.rad = f.rad;
  b.mz = f.mz;
  b.amz = f.amz;
  b.rz = f.rz;
  return b;
}

class DeviceBackend : public ComputeBackend {
 public:
  DeviceBackend(std::unique_ptr<cuda::Phase2Api> engine, std::string name, int threads)
      : engine_(std::move(engine)), name_(std::move(name)), requested_threads_(threads) {}

  std::string name() const override { return name_; }

  absl::Status Prepare(const TrainConfig& config) override {
    config_ = &config;
    layout_ = config.model.Layout();
    const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    pool_ = std::make_unique<ThreadPool>(requested_threads_ > 0 ? requested_threads_ : hw);
    passes_.Prepare(config, pool_.get());
    cuda::Phase2Job job;
    job.num_params = config.model.NumParameters();
    job.batch_size = config.batch_size;
    job.kind = StreamKindOf(config.perturbation.kind);
    for (const Budget& b : config.budgets) job.k.push_back(b.EffectiveK(config.perturbation));
    job.clip = config.clip_gamma.has_value();
    job.gamma = config.clip_gamma.value_or(0.0);
    status_ = Check(engine_->Prepare(job), "preparing the job");
    return status_;
  }

  void ComputeFactors(const Eigen::Ref<const Matrix>& x, const Vector& y, const Vector& nominal,
                      const std::vector<ParameterBox>& boxes) override {
    passes_.Begin(x, y, nominal, boxes);
  }

  void Aggregate(StepDirections* out) override {
    const size_t nb = config_->budgets.size();
    const Index p = config_->model.NumParameters();
    const int rows = passes_.batch_rows();
    if (!status_.ok()) return;
    status_ = Check(engine_->BeginBatch(rows), "starting the batch");
    if (passes_.whole_batch()) {
      FeedGroup();
    } else {
      const Index group = passes_.GroupRows();
      for (Index g0 = 0; g0 < rows && status_.ok(); g0 += group) {
        passes_.Build(g0, std::min<Index>(group, rows - g0));
        FeedGroup();
      }
      passes_.Release();
    }
    if (!status_.ok()) return;
    out->nominal.resize(p);
    out->lower.assign(nb, Vector(p));
    out->upper.assign(nb, Vector(p));
    std::vector<double*> lower(nb), upper(nb);
    for (size_t j = 0; j < nb; ++j) {
      lower[j] = out->lower[j].data();
      upper[j] = out->upper[j].data();
    }
    status_ = Check(engine_->Finish(lower, upper, out->nominal.data()), "finishing the batch");
    out->nominal_loss = passes_.mean_loss();
  }

  void UpdateParameters(const OptimizerConfig& opt, int64_t step, const StepDirections& d,
                        TrainState* state) override {
    ApplyDirections(opt, step, d, state);
  }

  absl::Status status() const override { return status_; }

 private:
  absl::Status Check(const std::string& error, const char* what) const {
    if (error.empty()) return absl::OkStatus();
    const std::string message = absl::StrCat(name_, " backend, ", what, ": ", error);
    if (absl::StartsWith(error, cuda::kOutOfDeviceMemory)) {
      return absl::ResourceExhaustedError(message);
    }
    return absl::InternalError(message);
  }

  // Every stream and layer of the factors held now, rows in order.
  void FeedGroup() {
    const size_t nb = config_->budgets.size();
    for (size_t stream = 0; stream <= nb && status_.ok(); ++stream) {
      for (size_t k = 0; k < layout_.size() && status_.ok(); ++k) FeedLayer(stream, k);
    }
  }

  void FeedLayer(size_t stream, size_t layer) {
    const size_t nb = config_->budgets.size();
    const bool nominal = stream == nb;
    const bool poisoning = config_->perturbation.kind == PerturbationKind::kBoundedPoisoning;
    const GradientFactors& f = nominal ? *passes_.nominal_factors()[layer]
                                       : *passes_.bound_factors(stream)[layer];
    const GradientFactors* pf =
        !nominal && poisoning ? passes_.perturbed_factors(stream)[layer].get() : nullptr;
    const ParamSlice& sl = layout_[layer];
    const Index rows = passes_.group_rows();
    DenseFactorRows probe;
    const bool dense = f.DenseRows(0, 1, &probe) && (pf == nullptr || pf->DenseRows(0, 1, &probe));
    if (dense) {
      FeedDense(stream, sl, f, pf, rows);
    } else {
      FeedExpandedWeights(stream, sl, f, pf, rows);
    }
    if (status_.ok()) FeedExpandedBias(stream, sl, f, pf, rows);
  }

  // Runs of rows of dense factors, each held contiguously by both factors.
  void FeedDense(size_t stream, const ParamSlice& sl, const GradientFactors& f,
                 const GradientFactors* pf, Index rows) {
    for (Index r = 0; r < rows && status_.ok();) {
      DenseFactorRows a, b;
      f.DenseRows(r, rows - r, &a);
      if (pf != nullptr) {
        pf->DenseRows(r, a.rows, &b);
        if (b.rows < a.rows) f.DenseRows(r, b.rows, &a);
      }
      const cuda::DenseBlock pb = ToBlock(b);
      status_ = Check(engine_->AddDense(stream, sl.weight_offset, ToBlock(a),
                                        pf != nullptr ? &pb : nullptr),
                      "adding dense factors");
      r += a.rows;
    }
  }

  void Clamp(Matrix* m) const {
    if (config_->clip_gamma) simd::ActiveKernels().clamp(m->data(), m->size(), *config_->clip_gamma);
  }

  // Bounds expanded on the host, tile by tile: `expand(r0, n, o0, o1)` fills
  // lower_/upper_ (and the perturbed pair) for rows [r0, r0 + n) of weight
  // rows [o0, o1) (the bias when o0 < 0).
  template <typename Expand>
  void FeedTiles(size_t stream, Index offset, Index width_per_row, int units, Index rows,
                 bool poison, Expand&& expand) {
    const bool nominal = stream == config_->budgets.size();
    const int group = static_cast<int>(
        std::clamp<Index>(kTileValues / std::max<Index>(1, width_per_row * rows), 1, units));
    const Index tile_rows =
        std::clamp<Index>(kTileValues / std::max<Index>(1, width_per_row * group), 1, rows);
    for (int o0 = 0; o0 < units && status_.ok(); o0 += group) {
      const int o1 = std::min(units, o0 + group);
      const Index width = static_cast<Index>(o1 - o0) * width_per_row;
      for (Index r0 = 0; r0 < rows && status_.ok(); r0 += tile_rows) {
        const Index n = std::min(tile_rows, rows - r0);
        lower_.resize(n, width);
        if (!nominal) upper_.resize(n, width);
        if (poison) {
          perturbed_lower_.resize(n, width);
          perturbed_upper_.resize(n, width);
        }
        expand(r0, n, o0, o1);
        Clamp(&lower_);
        if (!nominal) Clamp(&upper_);
        if (poison) {
          Clamp(&perturbed_lower_);
          Clamp(&perturbed_upper_);
        }
        status_ = Check(
            engine_->AddExpanded(stream, offset + static_cast<Index>(o0) * width_per_row, width, n,
                                 lower_.data(), nominal ? nullptr : upper_.data(),
                                 poison ? perturbed_lower_.data() : nullptr,
                                 poison ? perturbed_upper_.data() : nullptr),
            "adding expanded bounds");
      }
    }
  }

  void FeedExpandedWeights(size_t stream, const ParamSlice& sl, const GradientFactors& f,
                           const GradientFactors* pf, Index rows) {
    const bool nominal = stream == config_->budgets.size();
    FeedTiles(stream, sl.weight_offset, sl.in, sl.out, rows, pf != nullptr,
              [&](Index r0, Index n, int o0, int o1) {
                const Index ld = lower_.cols();
                f.ExpandWeightRows(o0, o1, r0, n, lower_.data(), nominal ? nullptr : upper_.data(),
                                   ld);
                if (pf) {
                  pf->ExpandWeightRows(o0, o1, r0, n, perturbed_lower_.data(),
                                       perturbed_upper_.data(), ld);
                }
              });
  }

  void FeedExpandedBias(size_t stream, const ParamSlice& sl, const GradientFactors& f,
                        const GradientFactors* pf, Index rows) {
    const bool nominal = stream == config_->budgets.size();
    FeedTiles(stream, sl.bias_offset, sl.out, 1, rows, pf != nullptr,
              [&](Index r0, Index n, int, int) {
                const Index ld = lower_.cols();
                f.ExpandBias(r0, n, lower_.data(), nominal ? nullptr : upper_.data(), ld);
                if (pf) pf->ExpandBias(r0, n, perturbed_lower_.data(), perturbed_upper_.data(), ld);
              });
  }

  std::unique_ptr<cuda::Phase2Api> engine_;
  std::string name_;
  int requested_threads_;
  const TrainConfig* config_ = nullptr;
  std::vector<ParamSlice> layout_;
  std::unique_ptr<ThreadPool> pool_;
  FactorPasses passes_;
  Matrix lower_, upper_, perturbed_lower_, perturbed_upper_;  // host tiles
  absl::Status status_;
};

}  // namespace

std::unique_ptr<ComputeBackend> MakeDeviceBackend(std::unique_ptr<cuda::Phase2Api> engine,
                                                  std::string name, int threads) {
  return std::make_unique<DeviceBackend>(std::move(engine), std::move(name), threads);
}

}  // namespace agt
