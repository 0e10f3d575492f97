// Phase 1 of a certified step (backend.h, ComputeFactors): the batch through
// the frozen prefix once, then the factored forward and backward passes of
// every pass of the step (the nominal pass at theta_t and, per budget, the
// pass over Theta_t(n), plus for bounded poisoning the pass over the
// perturbed inputs and labels), on fixed chunks of kChunkRows rows over a
// thread pool. Shared by every backend whose phase 1 runs on the host (the
// CPU backend; the CUDA backend, which runs phase 2 on the device).
//
// Determinism: rows are independent in the forward and backward passes and
// the chunk size is fixed (never derived from the thread count), so a row's
// factors do not depend on the threads or on the grouping.
//
// Lifetime: Begin binds a step's batch; with a whole-batch group (the
// default) it builds every factor at once and releases the batch (nothing is
// kept by pointer past Begin); otherwise it copies what later groups need and
// Build(g0, rows) makes the factors of one group at a time, until Release.
// Not thread-safe: one step at a time.
#ifndef AGT_CORE_BACKEND_FACTOR_PASSES_H_
#define AGT_CORE_BACKEND_FACTOR_PASSES_H_

#include <vector>

#include "core/backend/thread_pool.h"
#include "core/bounds/ibp.h"
#include "core/train/config.h"
#include "core/train/update.h"

namespace agt {

class FactorPasses {
 public:
  // Rows per chunk of the factored passes (a fixed number: see above).
  static constexpr Index kChunkRows = 256;

  // The job; config and pool must outlive this object.
  void Prepare(const TrainConfig& config, ThreadPool* pool);
  // Binds the step's batch (backend.h, ComputeFactors).
  void Begin(const Eigen::Ref<const Matrix>& x, const Vector& y, const Vector& nominal,
             const std::vector<ParameterBox>& boxes);
  // Rows of the current batch.
  int batch_rows() const { return batch_rows_; }
  // Rows whose factors are held at once: config.factor_rows rounded up to
  // whole chunks, or the whole batch.
  Index GroupRows() const;
  // True when Begin built the whole batch's factors.
  bool whole_batch() const { return GroupRows() >= batch_rows_; }
  // The factors of every pass for batch rows [g0, g0 + rows).
  void Build(Index g0, Index rows);
  // Drops the batch's copies (after the last group).
  void Release();

  // The factors built last (one entry per layer with parameters, Layout()
  // order), over rows [0, group_rows()) of the group.
  Index group_rows() const { return group_rows_; }
  const FactorList& nominal_factors() const { return nominal_factors_; }
  const FactorList& bound_factors(size_t budget) const { return factors_[budget]; }
  // Bounded poisoning only.
  const FactorList& perturbed_factors(size_t budget) const { return perturbed_factors_[budget]; }
  // Mean loss of the batch at theta_t (after every row was built).
  double mean_loss() const { return losses_.sum() / batch_rows_; }

 private:
  const TrainConfig* config_ = nullptr;
  ThreadPool* pool_ = nullptr;
  int batch_rows_ = 0;
  Index group_rows_ = 0;
  FactorList nominal_factors_;
  std::vector<FactorList> factors_;            // per budget
  std::vector<FactorList> perturbed_factors_;  // per budget (poisoning)
  Vector losses_;
  // The batch's features: the caller's x itself while Begin builds a whole
  // batch with no frozen prefix (no copy), else features_, which is kept from
  // Begin to the last group only when factors are built group by group
  // (config.factor_rows).
  using FeatureView = Eigen::Map<const Matrix, 0, Eigen::OuterStride<>>;
  FeatureView Features() const {
    return FeatureView(view_data_, view_rows_, view_cols_, Eigen::OuterStride<>(view_stride_));
  }
  const double* view_data_ = nullptr;
  Index view_rows_ = 0, view_cols_ = 0, view_stride_ = 0;
  Matrix features_;
  IntervalMatrix perturbed_;
  std::vector<BoxedModel> boxed_;
  const Vector* labels_ = nullptr;  // the caller's, or the copies below
  const Vector* nominal_ = nullptr;
  Vector labels_copy_, nominal_copy_;
};

}  // namespace agt

#endif  // AGT_CORE_BACKEND_FACTOR_PASSES_H_
