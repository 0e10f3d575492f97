#include "core/backend/factor_passes.h"

#include <algorithm>

namespace agt {
namespace {

constexpr Index kChunkRows = FactorPasses::kChunkRows;

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
  bool DenseRows(Index r0, Index rows, DenseFactorRows* out) const override {
    // The run ends with r0's chunk.
    const size_t c = static_cast<size_t>(r0 / kChunkRows);
    const Index local = r0 - static_cast<Index>(c) * kChunkRows;
    return chunks_[c]->DenseRows(local, rows, out);
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

}  // namespace

void FactorPasses::Prepare(const TrainConfig& config, ThreadPool* pool) {
  config_ = &config;
  pool_ = pool;
  const size_t nb = config.budgets.size();
  factors_.clear();
  factors_.resize(nb);
  perturbed_factors_.clear();
  perturbed_factors_.resize(nb);
}

void FactorPasses::Begin(const Eigen::Ref<const Matrix>& x, const Vector& y, const Vector& nominal,
                         const std::vector<ParameterBox>& boxes) {
  const TrainConfig& cfg = *config_;
  const size_t nb = cfg.budgets.size();
  const bool poisoning = cfg.perturbation.kind == PerturbationKind::kBoundedPoisoning;
  const Index b = x.rows();
  batch_rows_ = static_cast<int>(b);
  // The batch through the frozen prefix, once for every budget; with no
  // prefix and the whole batch built here, x is read where it is.
  if (cfg.model.frozen.empty() && GroupRows() >= b) {
    features_.resize(0, 0);
    view_data_ = x.data();
    view_stride_ = x.outerStride();
  } else {
    features_ = FrozenFeatures(cfg.model, x);
    view_data_ = features_.data();
    view_stride_ = features_.cols();
  }
  view_rows_ = b;
  view_cols_ = cfg.model.frozen.empty() ? x.cols() : features_.cols();
  // The perturbed inputs through the frozen prefix, once for the batch; with
  // no prefix, each chunk makes its own rows' ball (the same values, without
  // a batch-sized copy made and then copied again chunk by chunk).
  if (poisoning && !cfg.model.frozen.empty()) {
    perturbed_ = FrozenFeatureBounds(cfg.model, IntervalMatrix::Ball(x, cfg.perturbation.epsilon),
                                     cfg.bounds.interval);
  }
  boxed_.clear();
  boxed_.reserve(nb);
  for (size_t j = 0; j < nb; ++j) boxed_.emplace_back(cfg.model, boxes[j], cfg.bounds);
  losses_.resize(b);
  // Whole batch (the default): every pass's factors now, reading the
  // caller's labels and parameters, and the batch's copies released.
  // Otherwise the groups are built one by one from copies.
  if (GroupRows() >= b) {
    labels_ = &y;
    nominal_ = &nominal;
    Build(0, b);
    Release();
  } else {
    labels_copy_ = y;
    nominal_copy_ = nominal;
    labels_ = &labels_copy_;
    nominal_ = &nominal_copy_;
  }
}

Index FactorPasses::GroupRows() const {
  const Index b = batch_rows_;
  if (config_->factor_rows <= 0) return b;
  const Index rows = (config_->factor_rows + kChunkRows - 1) / kChunkRows * kChunkRows;
  return std::min(b, rows);
}

void FactorPasses::Release() {
  features_.resize(0, 0);
  view_data_ = nullptr;
  perturbed_ = IntervalMatrix();
  boxed_.clear();
  labels_ = nullptr;
  nominal_ = nullptr;
  labels_copy_.resize(0);
  nominal_copy_.resize(0);
}

void FactorPasses::Build(Index g0, Index rows) {
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
      NominalGradientFactors(cfg.model, *nominal_, Features().middleRows(r0, n), yc, cfg.loss,
                             &parts[0][c], &chunk_losses[c]);
      return;
    }
    const size_t j = (pass - 1) / passes_per_budget;
    if ((pass - 1) % passes_per_budget == 0) {
      boxed_[j].GradientFactors(IntervalMatrix::Point(Features().middleRows(r0, n)), yc,
                                cfg.loss, no_label, &parts[pass][c]);
    } else {
      // Labels move only for budgets that poison labels; epsilon applies to
      // every row even with no feature budget, as in the reference (sound,
      // and golden-compatible).
      LabelPerturbation label = cfg.perturbation.label;
      label.enabled = label.enabled && cfg.budgets[j].label_n > 0;
      boxed_[j].GradientFactors(
          cfg.model.frozen.empty()
              ? IntervalMatrix::Ball(Features().middleRows(r0, n), cfg.perturbation.epsilon)
              : IntervalMatrix(perturbed_.lower.middleRows(r0, n),
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

}  // namespace agt
