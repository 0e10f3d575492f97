// The CPU backend: Eigen GEMMs for the factored passes, the streaming
// aggregators of aggregate/, and a persistent thread pool. Scheduling, block
// sizes and scratch buffers live here and nowhere else.
//
// Determinism: phase 1 tasks are whole passes (independent); phase 2 tasks
// own disjoint parameter ranges and feed each parameter its rows in order
// (one aggregation lane), so results do not depend on the thread count.

#include <algorithm>
#include <optional>
#include <thread>

#include "core/aggregate/aggregate.h"
#include "core/backend/backend.h"
#include "core/backend/thread_pool.h"
#include "core/bounds/ibp.h"

namespace agt {
namespace {

AggregationKind AggregationOf(PerturbationKind kind) {
  switch (kind) {
    case PerturbationKind::kRemoval:
      return AggregationKind::kRemoval;
    case PerturbationKind::kSubstitution:
      return AggregationKind::kSubstitution;
    case PerturbationKind::kBoundedPoisoning:
      return AggregationKind::kBoundedPoisoning;
  }
  return AggregationKind::kRemoval;
}

class CpuBackend : public ComputeBackend {
 public:
  explicit CpuBackend(int threads) : requested_threads_(threads) {}

  std::string name() const override { return "cpu"; }

  absl::Status Prepare(const TrainConfig& config) override {
    config_ = &config;
    layout_ = config.model.Layout();
    const Index p = config.model.NumParameters();
    const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    int threads = requested_threads_ > 0 ? requested_threads_ : hw;
    // Small steps are not worth a thread hand-off.
    if (p * config.batch_size < 200000) threads = 1;
    pool_ = std::make_unique<ThreadPool>(threads);
    scratch_.resize(pool_->size());
    // Aggregators persist across steps (their memory is large: reallocating
    // it every step costs page faults).
    const size_t nb = config.budgets.size();
    const double gamma = config.clip_gamma.value_or(0.0);
    aggregators_.clear();
    aggregators_.reserve(nb);
    for (size_t j = 0; j < nb; ++j) {
      aggregators_.emplace_back(AggregationOf(config.perturbation.kind), p, config.batch_size,
                                config.budgets[j].EffectiveK(config.perturbation), gamma,
                                /*num_lanes=*/1);
    }
    nominal_aggregator_.emplace(p, config.batch_size, /*num_lanes=*/1);
    factors_.clear();
    factors_.resize(nb);
    perturbed_factors_.clear();
    perturbed_factors_.resize(nb);
    BuildTasks();
    return absl::OkStatus();
  }

  void ComputeFactors(const Eigen::Ref<const Matrix>& x, const Vector& y, const Vector& nominal,
                      const std::vector<ParameterBox>& boxes) override {
    const TrainConfig& cfg = *config_;
    const size_t nb = cfg.budgets.size();
    const bool poisoning = cfg.perturbation.kind == PerturbationKind::kBoundedPoisoning;
    // The batch through the frozen prefix, once for every budget.
    const Matrix features = FrozenFeatures(cfg.model, x);
    const IntervalMatrix point = IntervalMatrix::Point(features);
    IntervalMatrix perturbed;
    if (poisoning) {
      perturbed = FrozenFeatureBounds(cfg.model, IntervalMatrix::Ball(x, cfg.perturbation.epsilon),
                                      cfg.bounds.interval);
    }
    std::vector<BoxedModel> boxed;
    boxed.reserve(nb);
    for (size_t j = 0; j < nb; ++j) boxed.emplace_back(cfg.model, boxes[j], cfg.bounds);
    const size_t passes_per_budget = poisoning ? 2 : 1;
    const LabelPerturbation no_label;
    pool_->ParallelFor(1 + nb * passes_per_budget, [&](size_t task, int) {
      if (task == 0) {
        NominalGradientFactors(cfg.model, nominal, features, y, cfg.loss, &nominal_factors_,
                               &losses_);
        return;
      }
      const size_t j = (task - 1) / passes_per_budget;
      if ((task - 1) % passes_per_budget == 0) {
        boxed[j].GradientFactors(point, y, cfg.loss, no_label, &factors_[j]);
      } else {
        // Labels move only for budgets that poison labels; epsilon applies to
        // every row even with no feature budget, as in the reference (sound,
        // and golden-compatible).
        LabelPerturbation label = cfg.perturbation.label;
        label.enabled = label.enabled && cfg.budgets[j].label_n > 0;
        boxed[j].GradientFactors(perturbed, y, cfg.loss, label, &perturbed_factors_[j]);
      }
    });
  }

  void Aggregate(StepDirections* out) override {
    const TrainConfig& cfg = *config_;
    const size_t nb = cfg.budgets.size();
    for (Aggregator& a : aggregators_) a.Reset();
    nominal_aggregator_->Reset();
    pool_->ParallelFor(tasks_.size(), [&](size_t ti, int w) { RunTask(tasks_[ti], &scratch_[w]); });
    out->nominal = nominal_aggregator_->Finish();
    out->lower.resize(nb);
    out->upper.resize(nb);
    for (size_t j = 0; j < nb; ++j) {
      DescentBounds d = aggregators_[j].Finish();
      out->lower[j] = std::move(d.lower);
      out->upper[j] = std::move(d.upper);
    }
    out->nominal_loss = losses_.sum() / cfg.batch_size;
  }

  void UpdateParameters(const OptimizerConfig& opt, int64_t step, const StepDirections& d,
                        TrainState* state) override {
    for (size_t j = 0; j < state->boxes.size(); ++j) {
      ApplyBoxUpdate(opt, step, d.lower[j], d.upper[j], &state->boxes[j],
                     &state->velocity_lower[j], &state->velocity_upper[j]);
    }
    ApplyNominalUpdate(opt, step, d.nominal, &state->nominal, &state->velocity_nominal);
  }

 private:
  // One unit of phase 2: the rows of one stream (a budget, or the nominal
  // gradients) for a range of weight rows (or the bias) of one layer.
  struct Task {
    size_t stream;  // budget index, or budgets.size() for the nominal gradients
    size_t layer;   // index into layout_
    int o_begin, o_end;  // weight rows; o_begin == -1: the bias
  };
  struct Scratch {
    Matrix lower, upper, perturbed_lower, perturbed_upper;
  };

  void BuildTasks() {
    tasks_.clear();
    const size_t nb = config_->budgets.size();
    for (size_t stream = 0; stream <= nb; ++stream) {
      for (size_t k = 0; k < layout_.size(); ++k) {
        const ParamSlice& sl = layout_[k];
        tasks_.push_back({stream, k, -1, -1});
        const int chunk = std::max(1, static_cast<int>(16384 / sl.in));
        for (int o = 0; o < sl.out; o += chunk) {
          tasks_.push_back({stream, k, o, std::min(sl.out, o + chunk)});
        }
      }
    }
  }

  void Clamp(Matrix* m) const {
    if (config_->clip_gamma) ClampInPlace(m, *config_->clip_gamma);
  }

  // Expands the task's factors one block (rows x a few weight rows) at a
  // time and folds each block into its aggregator while it is in cache.
  void RunTask(const Task& task, Scratch* sc) {
    const TrainConfig& cfg = *config_;
    const int b = cfg.batch_size;
    const size_t nb = cfg.budgets.size();
    const bool poisoning = cfg.perturbation.kind == PerturbationKind::kBoundedPoisoning;
    const ParamSlice& sl = layout_[task.layer];
    const bool nominal = task.stream == nb;
    const bool bias = task.o_begin < 0;
    const GradientFactors& f =
        nominal ? *nominal_factors_[task.layer] : *factors_[task.stream][task.layer];
    const GradientFactors* pf =
        !nominal && poisoning ? perturbed_factors_[task.stream][task.layer].get() : nullptr;
    // Weight rows are contiguous in the flat layout: expand a group of them
    // side by side, so each aggregator call covers at least ~512 parameters
    // (narrow layers would otherwise pay per-call overhead for a few columns).
    const int o_first = bias ? 0 : task.o_begin;
    const int o_last = bias ? 1 : task.o_end;
    const int group = bias ? 1 : std::max(1, static_cast<int>(512 / sl.in));
    const Index full_width = bias ? sl.out : static_cast<Index>(group) * sl.in;
    // Four blocks of rows x width doubles should sit in the L2 cache. Rows
    // are the outer loop, so a block of inputs is reused by every weight row
    // of the task while it is in cache.
    const Index block_rows = cfg.fragment_size > 0
                                 ? cfg.fragment_size
                                 : std::clamp<Index>(16384 / full_width, 16, 512);
    for (Index r0 = 0; r0 < b; r0 += block_rows) {
      const Index rows = std::min<Index>(block_rows, b - r0);
      for (int o0 = o_first; o0 < o_last; o0 += group) {
        const int o1 = std::min(o_last, o0 + group);
        const Index width = bias ? sl.out : static_cast<Index>(o1 - o0) * sl.in;
        const Index offset =
            bias ? sl.bias_offset : sl.weight_offset + static_cast<Index>(o0) * sl.in;
        sc->lower.resize(rows, width);
        if (!nominal) sc->upper.resize(rows, width);
        if (pf) {
          sc->perturbed_lower.resize(rows, width);
          sc->perturbed_upper.resize(rows, width);
        }
        if (bias) {
          f.ExpandBias(r0, rows, sc->lower.data(), nominal ? nullptr : sc->upper.data(), width);
          if (pf) {
            pf->ExpandBias(r0, rows, sc->perturbed_lower.data(), sc->perturbed_upper.data(),
                           width);
          }
        } else {
          f.ExpandWeightRows(o0, o1, r0, rows, sc->lower.data(),
                             nominal ? nullptr : sc->upper.data(), width);
          if (pf) {
            pf->ExpandWeightRows(o0, o1, r0, rows, sc->perturbed_lower.data(),
                                 sc->perturbed_upper.data(), width);
          }
        }
        Clamp(&sc->lower);
        if (nominal) {
          nominal_aggregator_->AddBlock(0, offset, width, rows, width, sc->lower.data());
          continue;
        }
        Clamp(&sc->upper);
        if (pf) {
          Clamp(&sc->perturbed_lower);
          Clamp(&sc->perturbed_upper);
        }
        aggregators_[task.stream].AddBlock(
            0, offset, width, rows, width, sc->lower.data(), sc->upper.data(),
            pf ? sc->perturbed_lower.data() : nullptr, pf ? sc->perturbed_upper.data() : nullptr);
      }
    }
  }

  int requested_threads_;
  const TrainConfig* config_ = nullptr;
  std::vector<ParamSlice> layout_;
  std::unique_ptr<ThreadPool> pool_;
  std::vector<Scratch> scratch_;
  std::vector<Task> tasks_;
  std::vector<Aggregator> aggregators_;  // one per budget
  std::optional<NominalAggregator> nominal_aggregator_;
  FactorList nominal_factors_;
  std::vector<FactorList> factors_;            // per budget
  std::vector<FactorList> perturbed_factors_;  // per budget (poisoning)
  Vector losses_;
};

}  // namespace

std::unique_ptr<ComputeBackend> MakeCpuBackend(int threads) {
  return std::make_unique<CpuBackend>(threads);
}

}  // namespace agt
