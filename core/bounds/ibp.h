// Interval bound propagation (IBP) through a model whose parameters lie in a
// box: forward bounds (paper eq. 21) and per-sample gradient bounds by the
// interval backward pass (eq. 25-26), plus the nominal (point) passes. The
// per-layer rules live in the operator units (core/layers/); this file runs
// them in sequence.
//
// Soundness claim: for every theta in the box, every input row in the input
// interval and every label the perturbation allows, the per-sample gradient of
// the loss lies in [lower, upper] (row i = sample i, columns = flat parameter
// layout of model/model.h), up to floating-point rounding of the bound
// computation (see interval/interval.h).
//
// Frozen prefix: the free functions below take raw inputs and pass them (or
// their interval) through the model's frozen layers first, with point
// parameters, by the same operators (the reference's `transform`).
// BoxedModel and NominalGradientFactors take *features*, the values entering
// the trained layers (FrozenFeatures / FrozenFeatureBounds of the raw
// inputs; the raw inputs themselves when there is no frozen prefix), so that a
// training step transforms a batch once for all budgets.
//
// Overflow: a bound computation that overflows (boxes of 1e150 and more)
// yields infinite bounds, never NaN: every layer's output interval has its NaN
// ends widened to -inf / +inf (interval/interval.h, WidenNaNsToInfinity).
//
// Activations (the reference's "intermediates") start with the features and
// then hold the value after every trained layer (layers + 1 entries).
#ifndef AGT_CORE_BOUNDS_IBP_H_
#define AGT_CORE_BOUNDS_IBP_H_

#include <memory>
#include <vector>

#include "core/bounds/bound_method.h"
#include "core/common/types.h"
#include "core/interval/interval.h"
#include "core/layers/dense.h"
#include "core/layers/layer.h"
#include "core/loss/loss.h"
#include "core/model/model.h"

namespace agt {

using FactorList = std::vector<std::unique_ptr<GradientFactors>>;

// The features of raw inputs x: x through the frozen prefix (x itself if
// there is none).
Matrix FrozenFeatures(const ModelSpec& spec, const Eigen::Ref<const Matrix>& x);
// Sound bounds on the features of every input in `input` (IBP through the
// frozen layers with point parameters).
IntervalMatrix FrozenFeatureBounds(const ModelSpec& spec, IntervalMatrix input,
                                   const IntervalOptions& options = {});

// Nominal forward pass; returns the logits (N x OutputDim).
Matrix Forward(const ModelSpec& spec, const Vector& theta, const Eigen::Ref<const Matrix>& x,
               std::vector<Matrix>* activations = nullptr);

// Forward IBP: sound logit bounds for theta in box and raw inputs in `input`.
IntervalMatrix ForwardBounds(const ModelSpec& spec, const ParameterBox& box,
                             const IntervalMatrix& input, MatMulMethod method,
                             std::vector<IntervalMatrix>* activations = nullptr);
IntervalMatrix ForwardBounds(const ModelSpec& spec, const ParameterBox& box,
                             const IntervalMatrix& input, const BoundOptions& options,
                             std::vector<IntervalMatrix>* activations = nullptr);

// Per-sample nominal gradients (N x P) of raw inputs. If losses is non-null it
// receives the per-row loss values.
void PerSampleGradients(const ModelSpec& spec, const Vector& theta,
                        const Eigen::Ref<const Matrix>& x, const Vector& labels, LossKind loss,
                        Matrix* grads, Vector* losses = nullptr);

// Per-sample gradient bounds (each N x P) over the box, the raw input
// interval and the label perturbation.
void PerSampleGradientBounds(const ModelSpec& spec, const ParameterBox& box,
                             const IntervalMatrix& input, const Vector& labels, LossKind loss,
                             const LabelPerturbation& label_perturbation, MatMulMethod method,
                             Matrix* lower, Matrix* upper);

// Nominal factors (point) of a fragment of features, one per trained layer
// with parameters (Layout() order); per-row losses if asked.
void NominalGradientFactors(const ModelSpec& spec, const Vector& theta,
                            const Eigen::Ref<const Matrix>& features, const Vector& labels,
                            LossKind loss, FactorList* factors, Vector* losses = nullptr);

// Expands factors (one per layer with parameters, Layout() order) into rows
// [0, n) of full per-sample matrices (n x P); upper may be null for nominal
// factors.
void ExpandFactors(const ModelSpec& spec, const FactorList& factors, Index n, Matrix* lower,
                   Matrix* upper);

// A model with parameters in a box, prepared once for repeated bounding of
// fragments of features (what one training step does for every budget).
// Holds what it needs; const methods are thread-safe.
class BoxedModel {
 public:
  BoxedModel(const ModelSpec& spec, const ParameterBox& box, const BoundOptions& options);
  BoxedModel(const ModelSpec& spec, const ParameterBox& box, MatMulMethod method)
      : BoxedModel(spec, box, BoundOptions{BoundMethod::kIbp, IntervalOptions{method}}) {}
  ~BoxedModel();
  BoxedModel(BoxedModel&&) noexcept;
  BoxedModel& operator=(BoxedModel&&) noexcept;

  const ModelSpec& spec() const { return spec_; }
  Index num_params() const { return network_.num_params(); }
  const BoundOptions& options() const { return options_; }
  MatMulMethod method() const { return options_.interval.product; }

  // features by value: a temporary is moved through, not copied. Thread-safe
  // (const): threads may bound different rows with one BoxedModel.
  IntervalMatrix ForwardBounds(IntervalMatrix features,
                               std::vector<IntervalMatrix>* activations = nullptr) const;
  // Writes rows [0, N) of lower/upper (which must be at least N x P; extra
  // rows are left alone, so callers can reuse buffers).
  void PerSampleGradientBounds(const IntervalMatrix& features, const Vector& labels, LossKind loss,
                               const LabelPerturbation& label_perturbation, Matrix* lower,
                               Matrix* upper) const;
  // The same bounds in factored form, one entry per layer with parameters
  // (features by value: a temporary moves into the first layer's factors).
  void GradientFactors(IntervalMatrix features, const Vector& labels, LossKind loss,
                       const LabelPerturbation& label_perturbation, FactorList* factors) const;

 private:
  ModelSpec spec_;
  BoundOptions options_;
  Network network_;
  std::vector<std::unique_ptr<BoxedLayer>> layers_;  // one per trained layer
};

}  // namespace agt

#endif  // AGT_CORE_BOUNDS_IBP_H_
