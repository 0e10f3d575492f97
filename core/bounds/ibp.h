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
Matrix Forward(const ModelSpec& spec, const Vector& theta,
               const Eigen::Ref<const Matrix>& x,
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
                        const Eigen::Ref<const Matrix>& x, const Vector& labels,
                        LossKind loss, Matrix* grads, Vector* losses = nullptr);

// Per-sample gradient bounds (each N x P) over the box, the input interval
// and the label perturbation.
void PerSampleGradientBounds(const ModelSpec& spec, const ParameterBox& box,
                             const IntervalMatrix& input, const Vector& labels,
                             LossKind loss, const LabelPerturbation& label_perturbation,
                             MatMulMethod method, Matrix* lower, Matrix* upper);

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

 private:
  struct Layer;
  ModelSpec spec_;
  MatMulMethod method_;
  Index num_params_;
  std::vector<Layer> layers_;  // one per dense layer
};

}  // namespace agt

#endif  // AGT_CORE_BOUNDS_IBP_H_
