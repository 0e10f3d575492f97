// The CPU backend: Eigen GEMMs for the factored passes, the streaming
// aggregators of aggregate/, and a persistent thread pool. Scheduling, block
// sizes and scratch buffers live here and nowhere else. The element loops
// (expansion, clipping, sums, the selection's filter) run in the vector
// kernels of simd/, chosen at start-up; every variant gives the same bits.
// Dense interval factors under Rump's rule skip the stored block: each sample
// row is expanded, clamped, summed and filtered in registers
// (Aggregator::AddRumpRow, RunFusedTask), with the same bits as the block.
//
// Determinism: phase 1 tasks are whole passes (independent); phase 2 tasks
// own disjoint parameter ranges and feed each parameter its rows in order
// (one aggregation lane), so results do not depend on the thread count.

#include <algorithm>
#include <optional>
#include <thread>

#include "core/aggregate/aggregate.h"
#include "core/backend/backend.h"
#include "core/backend/simd/isa.h"
#include "core/backend/thread_pool.h"
#include "core/bounds/ibp.h"

namespace agt {
namespace {

// Rows per chunk of the factored passes (a fixed number: see ComputeFactors).
constexpr Index kChunkRows = 256;

// The factors of consecutive row chunks of a batch, seen as one: a block of
// rows is expanded by the chunks it overlaps.
class ChunkedFactors : public GradientFactors {
 public:
  explicit ChunkedFactors(std::vector<std::unique_ptr<GradientFactors>> chunks)
      : chunks_(std::move(chunks)) {}

  void ExpandWeightRows(int o0, int o1, Index r0, Index rows, double* lower, double* upper,
                        Index ld) const override {
    ForEachChunk(r0, rows, [&](const GradientFactors& f, Index local, Index n, Index done) {
      f.ExpandWeightRows(o0, o1, local, n, lower + done * ld, upper ? upper + done * ld : nullptr,
                         ld);
    });
  }
  void ExpandBias(Index r0, Index rows, double* lower, double* upper, Index ld) const override {
    ForEachChunk(r0, rows, [&](const GradientFactors& f, Index local, Index n, Index done) {
      f.ExpandBias(local, n, lower + done * ld, upper ? upper + done * ld : nullptr, ld);
    });
  }
  bool RumpWeightRow(int o, Index r, simd::RumpRow* out) const override {
    const size_t c = static_cast<size_t>(r / kChunkRows);
    return chunks_[c]->RumpWeightRow(o, r - static_cast<Index>(c) * kChunkRows, out);
  }
  void AccumulateNominalWeightRows(int o0, int o1, Index r0, Index rows, Index width, bool clip,
                                   double gamma, double* sum, Matrix* scratch) const override {
    // Chunk after chunk: the rows still reach the sum in order.
    ForEachChunk(r0, rows, [&](const GradientFactors& f, Index local, Index n, Index) {
      f.AccumulateNominalWeightRows(o0, o1, local, n, width, clip, gamma, sum, scratch);
    });
  }

 private:
  template <typename Fn>
  void ForEachChunk(Index r0, Index rows, Fn&& fn) const {
    Index done = 0;
    while (done < rows) {
      const Index r = r0 + done;
      const size_t c = static_cast<size_t>(r / kChunkRows);
      const Index local = r - static_cast<Index>(c) * kChunkRows;
      const Index n = std::min(rows - done, kChunkRows - local);
      fn(*chunks_[c], local, n, done);
      done += n;
    }
  }

  std::vector<std::unique_ptr<GradientFactors>> chunks_;
};

// Per layer, the chunks' factors joined (a single chunk is used as it is).
FactorList JoinChunks(std::vector<FactorList> chunks) {
  FactorList out(chunks.front().size());
  for (size_t k = 0; k < out.size(); ++k) {
    if (chunks.size() == 1) {
      out[k] = std::move(chunks[0][k]);
      continue;
    }
    std::vector<std::unique_ptr<GradientFactors>> per_chunk;
    for (FactorList& c : chunks) per_chunk.push_back(std::move(c[k]));
    out[k] = std::make_unique<ChunkedFactors>(std::move(per_chunk));
  }
  return out;
}

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
    features_ = FrozenFeatures(cfg.model, x);
    if (poisoning) {
      perturbed_ = FrozenFeatureBounds(cfg.model, IntervalMatrix::Ball(x, cfg.perturbation.epsilon),
                                       cfg.bounds.interval);
    }
    boxed_.clear();
    boxed_.reserve(nb);
    for (size_t j = 0; j < nb; ++j) boxed_.emplace_back(cfg.model, boxes[j], cfg.bounds);
    const Index b = features_.rows();
    batch_rows_ = static_cast<int>(b);
    losses_.resize(b);
    // Whole batch (the default): every pass's factors now, reading the
    // caller's labels and parameters, and the batch's copies released.
    // Otherwise Aggregate builds them group by group from copies.
    if (GroupRows() >= b) {
      labels_ = &y;
      nominal_ = &nominal;
      BuildFactors(0, b);
      ReleaseBatch();
    } else {
      labels_copy_ = y;
      nominal_copy_ = nominal;
      labels_ = &labels_copy_;
      nominal_ = &nominal_copy_;
    }
  }

  // Rows whose factors are held at once: config.factor_rows rounded up to
  // whole chunks, or the whole batch.
  Index GroupRows() const {
    const Index b = batch_rows_;
    if (config_->factor_rows <= 0) return b;
    const Index rows = (config_->factor_rows + kChunkRows - 1) / kChunkRows * kChunkRows;
    return std::min(b, rows);
  }

  void ReleaseBatch() {
    features_.resize(0, 0);
    perturbed_ = IntervalMatrix();
    boxed_.clear();
    labels_ = nullptr;
    nominal_ = nullptr;
    labels_copy_.resize(0);
    nominal_copy_.resize(0);
  }

  // The factors of every pass for batch rows [g0, g0 + rows), as consecutive
  // row chunks of kChunkRows. Rows are independent in the forward and
  // backward passes, so a row's factors do not depend on the grouping.
  void BuildFactors(Index g0, Index rows) {
    const TrainConfig& cfg = *config_;
    const size_t nb = cfg.budgets.size();
    const bool poisoning = cfg.perturbation.kind == PerturbationKind::kBoundedPoisoning;
    // Every pass runs on chunks of kChunkRows rows, so that the threads share
    // the work even with one budget. The chunk size is fixed, never derived
    // from the thread count: results do not depend on the threads.
    group_rows_ = rows;
    const size_t chunks = static_cast<size_t>((rows + kChunkRows - 1) / kChunkRows);
    const size_t passes_per_budget = poisoning ? 2 : 1;
    const size_t passes = 1 + nb * passes_per_budget;
    std::vector<std::vector<FactorList>> parts(passes);
    for (std::vector<FactorList>& p : parts) p.resize(chunks);
    std::vector<Vector> chunk_losses(chunks);
    const LabelPerturbation no_label;
    pool_->ParallelFor(passes * chunks, [&](size_t task, int) {
      const size_t pass = task / chunks, c = task % chunks;
      const Index r0 = g0 + static_cast<Index>(c) * kChunkRows;
      const Index n = std::min<Index>(kChunkRows, g0 + rows - r0);
      const Vector yc = labels_->segment(r0, n);
      if (pass == 0) {
        NominalGradientFactors(cfg.model, *nominal_, features_.middleRows(r0, n), yc, cfg.loss,
                               &parts[0][c], &chunk_losses[c]);
        return;
      }
      const size_t j = (pass - 1) / passes_per_budget;
      if ((pass - 1) % passes_per_budget == 0) {
        boxed_[j].GradientFactors(IntervalMatrix::Point(features_.middleRows(r0, n)), yc,
                                  cfg.loss, no_label, &parts[pass][c]);
      } else {
        // Labels move only for budgets that poison labels; epsilon applies to
        // every row even with no feature budget, as in the reference (sound,
        // and golden-compatible).
        LabelPerturbation label = cfg.perturbation.label;
        label.enabled = label.enabled && cfg.budgets[j].label_n > 0;
        boxed_[j].GradientFactors(IntervalMatrix(perturbed_.lower.middleRows(r0, n),
                                                 perturbed_.upper.middleRows(r0, n)),
                                  yc, cfg.loss, label, &parts[pass][c]);
      }
    });
    for (size_t c = 0; c < chunks; ++c) {
      losses_.segment(g0 + static_cast<Index>(c) * kChunkRows, chunk_losses[c].size()) =
          chunk_losses[c];
    }
    nominal_factors_ = JoinChunks(std::move(parts[0]));
    for (size_t j = 0; j < nb; ++j) {
      factors_[j] = JoinChunks(std::move(parts[1 + j * passes_per_budget]));
      if (poisoning) perturbed_factors_[j] = JoinChunks(std::move(parts[2 + j * passes_per_budget]));
    }
  }

  void Aggregate(StepDirections* out) override {
    const TrainConfig& cfg = *config_;
    const size_t nb = cfg.budgets.size();
    // A batch with rows removed in place has fewer rows than batch_size;
    // every aggregation normalises by the rows the step actually has.
    for (Aggregator& a : aggregators_) a.Reset(batch_rows_);
    nominal_aggregator_->Reset(batch_rows_);
    const auto run_tasks = [&] {
      pool_->ParallelFor(tasks_.size(),
                         [&](size_t ti, int w) { RunTask(tasks_[ti], &scratch_[w]); });
    };
    const Index group = GroupRows();
    if (group >= batch_rows_) {
      run_tasks();  // ComputeFactors built the whole batch's factors
    } else {
      // Group by group in row order: every parameter still sees the batch's
      // rows in order, so the aggregation is the same, bit for bit.
      for (Index g0 = 0; g0 < batch_rows_; g0 += group) {
        BuildFactors(g0, std::min<Index>(group, batch_rows_ - g0));
        run_tasks();
      }
      ReleaseBatch();
    }
    out->nominal = nominal_aggregator_->Finish();
    out->lower.resize(nb);
    out->upper.resize(nb);
    for (size_t j = 0; j < nb; ++j) {
      DescentBounds d = aggregators_[j].Finish();
      out->lower[j] = std::move(d.lower);
      out->upper[j] = std::move(d.upper);
    }
    out->nominal_loss = losses_.sum() / batch_rows_;
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
    // The kernel is ClampInPlace's rule (train/update.h) in the vector unit
    // chosen for this CPU.
    if (config_->clip_gamma)
      simd::ActiveKernels().clamp(m->data(), m->size(), *config_->clip_gamma);
  }

  // Expands the task's factors one block (rows x a few weight rows) at a
  // time and folds each block into its aggregator while it is in cache.
  void RunTask(const Task& task, Scratch* sc) {
    const TrainConfig& cfg = *config_;
    const Index b = group_rows_;  // rows of the factors held now
    const size_t nb = cfg.budgets.size();
    const bool poisoning = cfg.perturbation.kind == PerturbationKind::kBoundedPoisoning;
    const ParamSlice& sl = layout_[task.layer];
    const bool nominal = task.stream == nb;
    const bool bias = task.o_begin < 0;
    const GradientFactors& f =
        nominal ? *nominal_factors_[task.layer] : *factors_[task.stream][task.layer];
    const GradientFactors* pf =
        !nominal && poisoning ? perturbed_factors_[task.stream][task.layer].get() : nullptr;
    if (!nominal && !bias && sl.in >= kFusedMinWidth) {
      simd::RumpRow row, prow;
      if (f.RumpWeightRow(task.o_begin, 0, &row) &&
          (pf == nullptr || pf->RumpWeightRow(task.o_begin, 0, &prow))) {
        RunFusedTask(task, f, pf);
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

  // The task's weight rows through the fused kernel (Aggregator::AddRumpRow):
  // no block of bounds is stored. Rows are taken in blocks, weight row after
  // weight row, so that a block's input rows are reused from cache by every
  // weight row of the task; every parameter still sees its rows in order.
  void RunFusedTask(const Task& task, const GradientFactors& f, const GradientFactors* pf) {
    const TrainConfig& cfg = *config_;
    const ParamSlice& sl = layout_[task.layer];
    Aggregator& agg = aggregators_[task.stream];
    const bool clip = cfg.clip_gamma.has_value();
    const double gamma = cfg.clip_gamma.value_or(0.0);
    const Index b = group_rows_;
    simd::RumpRow row, prow;
    for (Index r0 = 0; r0 < b; r0 += kFusedRows) {
      const Index r1 = std::min<Index>(b, r0 + kFusedRows);
      for (int o = task.o_begin; o < task.o_end; ++o) {
        const Index offset = sl.weight_offset + static_cast<Index>(o) * sl.in;
        for (Index r = r0; r < r1; ++r) {
          f.RumpWeightRow(o, r, &row);
          if (pf) pf->RumpWeightRow(o, r, &prow);
          agg.AddRumpRow(0, offset, sl.in, row, pf ? &prow : nullptr, clip, gamma);
        }
      }
    }
  }

  // Layers at least this wide take the fused path (narrower ones group
  // weight rows side by side in blocks instead: one fused call per sample
  // and weight row would cost more in calls than it saves).
  static constexpr Index kFusedMinWidth = 64;
  // Sample rows per block of the fused path.
  static constexpr Index kFusedRows = 16;

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
  int batch_rows_ = 0;  // rows of the current batch (ComputeFactors)
  Index group_rows_ = 0;  // rows of the factors held now (all, or a group)
  // The batch, kept from ComputeFactors to Aggregate only when factors are
  // built group by group (config.factor_rows); released otherwise.
  Matrix features_;
  IntervalMatrix perturbed_;
  std::vector<BoxedModel> boxed_;
  const Vector* labels_ = nullptr;   // the caller's, or the copies below
  const Vector* nominal_ = nullptr;
  Vector labels_copy_, nominal_copy_;
};

}  // namespace

std::unique_ptr<ComputeBackend> MakeCpuBackend(int threads) {
  return std::make_unique<CpuBackend>(threads);
}

}  // namespace agt
