// Interval bound propagation (IBP) through a model whose parameters lie in a
// box: forward bounds (paper eq. 21) and per-sample gradient bounds by the
// interval backward pass (eq. 25-26), plus the nominal (point) passes.
//
// Soundness claim: for every theta in the box, every input row in the input
// interval and every label the perturbation allows, the per-sample gradient of
// the loss lies in [lower, upper] (row i = sample i, columns = flat parameter
// layout of model/model.h), up to floating-point rounding of the bound
// computation (see interval/interval.h).
//
// Semantics follow the reference (goldens README, semantics 2-4): dense layers
// use the chosen interval matmul, ReLU acts on both ends, the weight gradient
// is the interval outer product of delta with the layer's input interval, and
// ReLU's derivative enters through the exact product with [1{l>0}, 1{u>0}].
//
// Functions here are pure; they allocate per call (per fragment, not per row).
// BoxedModel prepares a box once (midpoints, radii) for many fragments.
#ifndef AGT_CORE_BOUNDS_IBP_H_
#define AGT_CORE_BOUNDS_IBP_H_

#include <memory>
#include <vector>

#include "core/common/types.h"
#include "core/interval/interval.h"
#include "core/loss/loss.h"
#include "core/model/model.h"

namespace agt {

// Nominal forward pass; returns the logits (N x OutputDim). If activations is
// non-null it receives the input and the output of every layer (layers + 1).
Matrix Forward(const ModelSpec& spec, const Vector& theta, const Eigen::Ref<const Matrix>& x,
               std::vector<Matrix>* activations = nullptr);

// Forward IBP: sound logit bounds for theta in box and inputs in `input`. If
// activations is non-null it receives the input interval and the interval
// after every layer (the reference's "intermediates").
IntervalMatrix ForwardBounds(const ModelSpec& spec, const ParameterBox& box,
                             const IntervalMatrix& input, MatMulMethod method,
                             std::vector<IntervalMatrix>* activations = nullptr);

// Per-sample nominal gradients (N x P). If losses is non-null it receives the
// per-row loss values.
void PerSampleGradients(const ModelSpec& spec, const Vector& theta,
                        const Eigen::Ref<const Matrix>& x, const Vector& labels, LossKind loss,
                        Matrix* grads, Vector* losses = nullptr);

// Per-sample gradient bounds (each N x P) over the box, the input interval
// and the label perturbation.
void PerSampleGradientBounds(const ModelSpec& spec, const ParameterBox& box,
                             const IntervalMatrix& input, const Vector& labels, LossKind loss,
                             const LabelPerturbation& label_perturbation, MatMulMethod method,
                             Matrix* lower, Matrix* upper);

// The factors of one fragment's per-sample gradients for one dense layer:
// the loss gradient w.r.t. the layer's output (delta, R x out) and the layer's
// input (z, R x in), as intervals (lower == upper for nominal factors). The
// bias gradient of row r is delta_r; the weight gradient is the outer product
// delta_r z_r^T, which ExpandWeightRow materialises one weight row at a time
// so that the hot loop stays in cache (see train.cc).
struct DenseFactors {
  Matrix d_lower, d_upper;  // R x out
  Matrix z_lower, z_upper;  // R x in
  // Derived by Prepare(): midpoints and radii.
  Matrix d_mid, d_rad, z_mid, z_rad, z_mid_abs;
  bool z_point = false;
  void Prepare();
};

// Writes the per-sample bounds of weight row o (parameters W(o, 0..in-1)) for
// rows [row_begin, row_begin + rows) of `f` into lower/upper (rows x in, row
// stride ld), using the outer product rule of `method` (Rump:
// m m' +- (|m| r' + r |m'| + r r')).
void ExpandWeightRow(const DenseFactors& f, int o, Index row_begin, Index rows, MatMulMethod method,
                     double* lower, double* upper, Index ld);
// The nominal version: grads = delta_ro * z_r (exactly what ExpandWeightRow
// gives for point factors).
void ExpandNominalWeightRow(const DenseFactors& f, int o, Index row_begin, Index rows,
                            double* grads, Index ld);

// Nominal factors (point intervals) of a fragment; per-row losses if asked.
void NominalGradientFactors(const ModelSpec& spec, const Vector& theta,
                            const Eigen::Ref<const Matrix>& x, const Vector& labels, LossKind loss,
                            std::vector<DenseFactors>* factors, Vector* losses = nullptr);

// A model with parameters in a box, prepared once for repeated bounding of
// fragments (what one training step does for every budget). Holds copies of
// what it needs; const methods are thread-safe.
class BoxedModel {
 public:
  BoxedModel(const ModelSpec& spec, const ParameterBox& box, MatMulMethod method);
  ~BoxedModel();
  BoxedModel(BoxedModel&&) noexcept;
  BoxedModel& operator=(BoxedModel&&) noexcept;

  const ModelSpec& spec() const { return spec_; }
  Index num_params() const { return num_params_; }

  IntervalMatrix ForwardBounds(const IntervalMatrix& input,
                               std::vector<IntervalMatrix>* activations = nullptr) const;
  // Writes rows [0, N) of lower/upper (which must be at least N x P; extra
  // rows are left alone, so callers can reuse buffers).
  void PerSampleGradientBounds(const IntervalMatrix& input, const Vector& labels, LossKind loss,
                               const LabelPerturbation& label_perturbation, Matrix* lower,
                               Matrix* upper) const;
  // The same bounds in factored form, one entry per dense layer (in layer order).
  void GradientFactors(const IntervalMatrix& input, const Vector& labels, LossKind loss,
                       const LabelPerturbation& label_perturbation,
                       std::vector<DenseFactors>* factors) const;
  MatMulMethod method() const { return method_; }

 private:
  struct Layer;
  ModelSpec spec_;
  MatMulMethod method_;
  Index num_params_;
  std::vector<Layer> layers_;  // one per dense layer
};

}  // namespace agt

#endif  // AGT_CORE_BOUNDS_IBP_H_
