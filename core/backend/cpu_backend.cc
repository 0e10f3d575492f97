// The CPU backend: the kernels' fixed-order GEMM for the factored passes
// (FixedOrderProduct, interval/rump.h: the same bits under every variant, a
// row's values independent of its batch), the streaming
// aggregators of aggregate/, and a persistent thread pool. Scheduling, block
// sizes and scratch buffers live here and nowhere else. The element loops
// (expansion, clipping, sums, the selection's filter) run in the vector
// kernels of simd/, chosen at start-up; every variant gives the same bits.
// Dense interval factors under Rump's rule skip the stored block: each sample
// row is expanded, clamped, summed and filtered in registers
// (Aggregator::AddRumpRows, RunFusedTask), with the same bits as the block.
//
// Determinism: phase 1 tasks are whole passes (independent); phase 2 tasks
// own disjoint parameter ranges and feed each parameter its rows in order
// (one aggregation lane), so results do not depend on the thread count.

#include <algorithm>
#include <optional>
#include <thread>

#include "core/aggregate/aggregate.h"
#include "core/backend/backend.h"
#include "core/backend/factor_passes.h"
#include "core/backend/simd/isa.h"
#include "core/backend/thread_pool.h"

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
    passes_.Prepare(config, pool_.get());
    BuildTasks();
    return absl::OkStatus();
  }

  void ComputeFactors(const Eigen::Ref<const Matrix>& x, const Vector& y, const Vector& nominal,
                      const std::vector<ParameterBox>& boxes) override {
    passes_.Begin(x, y, nominal, boxes);
  }

  void Aggregate(StepDirections* out) override {
    const TrainConfig& cfg = *config_;
    const size_t nb = cfg.budgets.size();
    // A batch with rows removed in place has fewer rows than batch_size;
    // every aggregation normalises by the rows the step actually has.
    const int batch_rows = passes_.batch_rows();
    for (Aggregator& a : aggregators_) a.Reset(batch_rows);
    nominal_aggregator_->Reset(batch_rows);
    const auto run_tasks = [&] {
      pool_->ParallelFor(tasks_.size(),
                         [&](size_t ti, int w) { RunTask(tasks_[ti], &scratch_[w]); });
    };
    const Index group = passes_.GroupRows();
    if (passes_.whole_batch()) {
      run_tasks();  // ComputeFactors built the whole batch's factors
    } else {
      // Group by group in row order: every parameter still sees the batch's
      // rows in order, so the aggregation is the same, bit for bit.
      for (Index g0 = 0; g0 < batch_rows; g0 += group) {
        passes_.Build(g0, std::min<Index>(group, batch_rows - g0));
        run_tasks();
      }
      passes_.Release();
    }
    out->nominal = nominal_aggregator_->Finish();
    out->lower.resize(nb);
    out->upper.resize(nb);
    for (size_t j = 0; j < nb; ++j) {
      DescentBounds d = aggregators_[j].Finish();
      out->lower[j] = std::move(d.lower);
      out->upper[j] = std::move(d.upper);
    }
    out->nominal_loss = passes_.mean_loss();
  }

  void UpdateParameters(const OptimizerConfig& opt, int64_t step, const StepDirections& d,
                        TrainState* state) override {
    ApplyDirections(opt, step, d, state);
  }

 private:
  // One unit of phase 2: the rows of one stream (a budget, or the nominal
  // gradients) for a range of weight rows (or the bias) of one layer.
  struct Task {
    size_t stream;       // budget index, or budgets.size() for the nominal gradients
    size_t layer;        // index into layout_
    int o_begin, o_end;  // weight rows; o_begin == -1: the bias
  };
  // One per worker, each on cache lines of its own: the matrices' headers
  // are written as blocks are resized, and two workers' headers on one line
  // would pass it back and forth.
  struct alignas(64) Scratch {
    Matrix lower, upper, perturbed_lower, perturbed_upper;
  };

  void BuildTasks() {
    tasks_.clear();
    const size_t nb = config_->budgets.size();
    const int threads = pool_->size();
    const bool poisoning = config_->perturbation.kind == PerturbationKind::kBoundedPoisoning;
    // A task's work, roughly: its parameters times the streams of bounds it
    // expands (the nominal stream one, a budget's two, four when poisoning).
    std::vector<double> cost;
    for (size_t stream = 0; stream <= nb; ++stream) {
      const double per_param = stream == nb ? 1.0 : poisoning ? 4.0 : 2.0;
      for (size_t k = 0; k < layout_.size(); ++k) {
        const ParamSlice& sl = layout_[k];
        tasks_.push_back({stream, k, -1, -1});
        cost.push_back(per_param * sl.out);
        // Weight rows of about 16384 parameters per task, and a layer in at
        // least two tasks per thread, so that a narrow model's one large
        // layer does not leave the other threads idle.
        int chunk = std::max(1, static_cast<int>(16384 / sl.in));
        if (threads > 1) {
          chunk = std::min(chunk, std::max(1, (sl.out + 2 * threads - 1) / (2 * threads)));
        }
        for (int o = 0; o < sl.out; o += chunk) {
          const int o_end = std::min(sl.out, o + chunk);
          tasks_.push_back({stream, k, o, o_end});
          cost.push_back(per_param * (o_end - o) * sl.in);
        }
      }
    }
    // Largest first (the pool hands tasks out in order, so the threads end
    // close together). Tasks own disjoint parameters: their order changes
    // no result.
    std::vector<size_t> order(tasks_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return cost[a] > cost[b]; });
    std::vector<Task> sorted;
    sorted.reserve(tasks_.size());
    for (size_t i : order) sorted.push_back(tasks_[i]);
    tasks_ = std::move(sorted);
  }

  void Clamp(Matrix* m) const {
    // The kernel is ClampInPlace's rule (train/update.h) in the vector unit
    // chosen for this CPU.
    if (config_->clip_gamma)
      simd::ActiveKernels().clamp(m->data(), m->size(), *config_->clip_gamma);
  }

  // Expands the task's factors one block (rows x a few weight rows) at a
  // time and folds each block into its aggregator while it is in cache.
  void RunTask(const Task& task, Scratch* sc) {
    const TrainConfig& cfg = *config_;
    const Index b = passes_.group_rows();  // rows of the factors held now
    const size_t nb = cfg.budgets.size();
    const bool poisoning = cfg.perturbation.kind == PerturbationKind::kBoundedPoisoning;
    const ParamSlice& sl = layout_[task.layer];
    const bool nominal = task.stream == nb;
    const bool bias = task.o_begin < 0;
    const GradientFactors& f = nominal ? *passes_.nominal_factors()[task.layer]
                                       : *passes_.bound_factors(task.stream)[task.layer];
    const GradientFactors* pf =
        !nominal && poisoning ? passes_.perturbed_factors(task.stream)[task.layer].get() : nullptr;
    if (!nominal && !bias && sl.in >= kFusedMinWidth) {
      simd::RumpRow row, prow;
      if (f.RumpWeightRow(task.o_begin, 0, &row) &&
          (pf == nullptr || pf->RumpWeightRow(task.o_begin, 0, &prow))) {
        RunFusedTask(task, f, pf);
        return;
      }
    }
    if (bias && !cfg.clip_gamma.has_value() && pf == nullptr) {
      // Dense factors hold the bias gradients' bounds as rows already
      // (ExpandBias copies them): with nothing to clamp, the aggregator
      // reads them where they are, run after run of contiguous rows.
      DenseFactorRows dense;
      if (f.DenseRows(0, 1, &dense)) {
        for (Index r0 = 0; r0 < b; r0 += dense.rows) {
          f.DenseRows(r0, b - r0, &dense);
          if (nominal) {
            nominal_aggregator_->AddBlock(0, sl.bias_offset, sl.out, dense.rows, sl.out,
                                          dense.d_lower);
          } else {
            aggregators_[task.stream].AddBlock(0, sl.bias_offset, sl.out, dense.rows, sl.out,
                                               dense.d_lower, dense.d_upper, nullptr, nullptr);
          }
        }
        return;
      }
    }
    if (nominal && !bias) {
      DenseFactorRows dense;
      if (f.DenseRows(0, 1, &dense)) {
        // Dense factors fold the task's weight rows over all the rows at
        // once (a product whose sums see the rows in order), without
        // storing the per-sample gradients.
        f.AccumulateNominalWeightRows(task.o_begin, task.o_end, 0, b,
                                      static_cast<Index>(task.o_end - task.o_begin) * sl.in,
                                      cfg.clip_gamma.has_value(), cfg.clip_gamma.value_or(0.0),
                                      nominal_aggregator_->LaneSum(0) + sl.weight_offset +
                                          static_cast<Index>(task.o_begin) * sl.in,
                                      &sc->lower);
        return;
      }
    }
    // Weight rows are contiguous in the flat layout: expand a group of them
    // side by side, so each aggregator call covers at least ~512 parameters
    // (narrow layers would otherwise pay per-call overhead for a few columns).
    const int o_first = bias ? 0 : task.o_begin;
    const int o_last = bias ? 1 : task.o_end;
    const int group = bias ? 1 : std::max(1, static_cast<int>(512 / sl.in));
    const Index full_width = bias ? sl.out : static_cast<Index>(group) * sl.in;
    // Four blocks of rows x width doubles should sit in the L2 cache. Rows
    // are the outer loop, so a block of inputs is reused by every weight row
    // of the task while it is in cache. A fragment size (the reference's
    // memory knob, e.g. the goldens' fragsize 10000) only caps the block:
    // blocks past the cache size are slower and use more memory, and no
    // block size changes a result (every parameter sees its rows in order).
    const Index cache_rows = std::clamp<Index>(16384 / full_width, 16, 512);
    const Index block_rows =
        cfg.fragment_size > 0 ? std::min<Index>(cfg.fragment_size, cache_rows) : cache_rows;
    for (Index r0 = 0; r0 < b; r0 += block_rows) {
      const Index rows = std::min<Index>(block_rows, b - r0);
      for (int o0 = o_first; o0 < o_last; o0 += group) {
        const int o1 = std::min(o_last, o0 + group);
        const Index width = bias ? sl.out : static_cast<Index>(o1 - o0) * sl.in;
        const Index offset =
            bias ? sl.bias_offset : sl.weight_offset + static_cast<Index>(o0) * sl.in;
        if (nominal && !bias) {
          // Folded into the sum without storing the per-sample gradients.
          f.AccumulateNominalWeightRows(o0, o1, r0, rows, width, cfg.clip_gamma.has_value(),
                                        cfg.clip_gamma.value_or(0.0),
                                        nominal_aggregator_->LaneSum(0) + offset, &sc->lower);
          continue;
        }
        sc->lower.resize(rows, width);
        if (!nominal) sc->upper.resize(rows, width);
        if (pf) {
          sc->perturbed_lower.resize(rows, width);
          sc->perturbed_upper.resize(rows, width);
        }
        if (bias) {
          f.ExpandBias(r0, rows, sc->lower.data(), nominal ? nullptr : sc->upper.data(), width);
          if (pf) {
            pf->ExpandBias(r0, rows, sc->perturbed_lower.data(), sc->perturbed_upper.data(), width);
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

  // The task's weight rows through the fused kernel (Aggregator::AddRumpRows):
  // no block of bounds is stored. Rows are taken in blocks, weight row after
  // weight row, so that a block's input rows are reused from cache by every
  // weight row of the task; each kernel call takes kFusedRows of them and
  // keeps each column's sums and thresholds in registers while they pass;
  // every parameter still sees its rows in order.
  void RunFusedTask(const Task& task, const GradientFactors& f, const GradientFactors* pf) {
    const TrainConfig& cfg = *config_;
    const ParamSlice& sl = layout_[task.layer];
    Aggregator& agg = aggregators_[task.stream];
    const bool clip = cfg.clip_gamma.has_value();
    const double gamma = cfg.clip_gamma.value_or(0.0);
    const Index b = passes_.group_rows();
    simd::RumpRow rows[kFusedRows], prows[kFusedRows];
    for (Index b0 = 0; b0 < b; b0 += kFusedBlockRows) {
      const Index b1 = std::min<Index>(b, b0 + kFusedBlockRows);
      for (int o = task.o_begin; o < task.o_end; ++o) {
        const Index offset = sl.weight_offset + static_cast<Index>(o) * sl.in;
        for (Index r0 = b0; r0 < b1; r0 += kFusedRows) {
          const Index r1 = std::min<Index>(b1, r0 + kFusedRows);
          for (Index r = r0; r < r1; ++r) {
            f.RumpWeightRow(o, r, &rows[r - r0]);
            if (pf) pf->RumpWeightRow(o, r, &prows[r - r0]);
          }
          agg.AddRumpRows(0, offset, sl.in, rows, pf ? prows : nullptr, r1 - r0, clip, gamma);
        }
      }
    }
  }

  // Layers at least this wide take the fused path (narrower ones group
  // weight rows side by side in blocks instead: one fused call per sample
  // and weight row would cost more in calls than it saves).
  static constexpr Index kFusedMinWidth = 64;
  // Sample rows per kernel call of the fused path.
  static constexpr Index kFusedRows = simd::kSelectRows;
  // Sample rows per block: a weight row takes the block's calls one after
  // another, so its selection slots are fetched once a block, from cache
  // after the first call (784-128-10, batch 1000, AVX-512: removal 0.062 s
  // and feature poisoning 0.101 s against 0.068 s and 0.105 s with blocks of
  // one call, means of five alternating runs). The block's input rows are
  // read again by each of the task's weight rows (64 x 784 x 3 doubles per
  // pass, 1.2 MB: about an L2 cache).
  static constexpr Index kFusedBlockRows = 4 * kFusedRows;

  int requested_threads_;
  const TrainConfig* config_ = nullptr;
  std::vector<ParamSlice> layout_;
  std::unique_ptr<ThreadPool> pool_;
  std::vector<Scratch> scratch_;
  std::vector<Task> tasks_;
  std::vector<Aggregator> aggregators_;  // one per budget
  std::optional<NominalAggregator> nominal_aggregator_;
  FactorPasses passes_;
};

}  // namespace

std::unique_ptr<ComputeBackend> MakeCpuBackend(int threads) {
  return std::make_unique<CpuBackend>(threads);
}

}  // namespace agt
