#include "core/bounds/ibp.h"

#include <cassert>

namespace agt {

Matrix FrozenFeatures(const ModelSpec& spec, const Eigen::Ref<const Matrix>& x) {
  Matrix z = x;
  if (spec.frozen.empty()) return z;
  const Network net = spec.FrozenNetwork();
  for (size_t i = 0; i < net.size(); ++i) {
    z = net.layer(i).Forward(spec.frozen.parameters.data() + net.param_offset(i), z);
  }
  return z;
}

IntervalMatrix FrozenFeatureBounds(const ModelSpec& spec, const IntervalMatrix& input,
                                   const IntervalOptions& options) {
  if (spec.frozen.empty()) return input;
  const Network net = spec.FrozenNetwork();
  IntervalMatrix z = input;
  for (size_t i = 0; i < net.size(); ++i) {
    const double* p = spec.frozen.parameters.data() + net.param_offset(i);
    z = net.layer(i).Bind(p, p, options)->Forward(z);
    WidenNaNsToInfinity(&z);
  }
  return z;
}

BoxedModel::BoxedModel(const ModelSpec& spec, const ParameterBox& box, const BoundOptions& options)
    : spec_(spec), options_(options), network_(spec.TrainedNetwork()) {
  assert(box.size() == network_.num_params());
  for (size_t i = 0; i < network_.size(); ++i) {
    const Index off = network_.param_offset(i);
    layers_.push_back(
        network_.layer(i).Bind(box.lower.data() + off, box.upper.data() + off, options.interval));
  }
}

BoxedModel::~BoxedModel() = default;
BoxedModel::BoxedModel(BoxedModel&&) noexcept = default;
BoxedModel& BoxedModel::operator=(BoxedModel&&) noexcept = default;

IntervalMatrix BoxedModel::ForwardBounds(const IntervalMatrix& features,
                                         std::vector<IntervalMatrix>* activations) const {
  if (activations) {
    activations->clear();
    activations->push_back(features);
  }
  IntervalMatrix z = features;
  for (const std::unique_ptr<BoxedLayer>& layer : layers_) {
    z = layer->Forward(z);
    // Overflow (huge boxes) must widen the bound, not turn it into NaN.
    WidenNaNsToInfinity(&z);
    if (activations) activations->push_back(z);
  }
  return z;
}

void BoxedModel::GradientFactors(const IntervalMatrix& features, const Vector& labels,
                                 LossKind loss, const LabelPerturbation& label_perturbation,
                                 FactorList* factors) const {
  std::vector<IntervalMatrix> acts;
  const IntervalMatrix logits = ForwardBounds(features, &acts);
  IntervalMatrix delta = LossGradientBounds(loss, logits, labels, label_perturbation);
  size_t with_params = 0;
  for (size_t i = 0; i < network_.size(); ++i) with_params += network_.layer(i).has_params();
  factors->resize(with_params);
  for (size_t li = layers_.size(); li-- > 0;) {
    if (network_.layer(li).has_params()) {
      (*factors)[--with_params] = layers_[li]->Factors(acts[li], delta);
    }
    if (li == 0) break;  // the features need no gradient
    delta = layers_[li]->Backward(acts[li], delta);
  }
}

void BoxedModel::PerSampleGradientBounds(const IntervalMatrix& features, const Vector& labels,
                                         LossKind loss, const LabelPerturbation& label_perturbation,
                                         Matrix* lower, Matrix* upper) const {
  assert(lower->rows() >= features.rows() && lower->cols() == num_params());
  assert(upper->rows() >= features.rows() && upper->cols() == num_params());
  FactorList factors;
  GradientFactors(features, labels, loss, label_perturbation, &factors);
  ExpandFactors(spec_, factors, features.rows(), lower, upper);
}

void ExpandFactors(const ModelSpec& spec, const FactorList& factors, Index n, Matrix* lower,
                   Matrix* upper) {
  const std::vector<ParamSlice> layout = spec.Layout();
  const Index p = lower->cols();
  for (size_t k = 0; k < layout.size(); ++k) {
    const ParamSlice& s = layout[k];
    factors[k]->ExpandBias(0, n, lower->data() + s.bias_offset,
                           upper ? upper->data() + s.bias_offset : nullptr, p);
    for (int o = 0; o < s.out; ++o) {
      const Index off = s.weight_offset + static_cast<Index>(o) * s.in;
      factors[k]->ExpandWeightRows(o, o + 1, 0, n, lower->data() + off,
                                   upper ? upper->data() + off : nullptr, p);
    }
  }
}

void NominalGradientFactors(const ModelSpec& spec, const Vector& theta,
                            const Eigen::Ref<const Matrix>& features, const Vector& labels,
                            LossKind loss, FactorList* factors, Vector* losses) {
  const Network net = spec.TrainedNetwork();
  std::vector<Matrix> acts;
  acts.reserve(net.size() + 1);
  acts.push_back(features);
  for (size_t i = 0; i < net.size(); ++i) {
    acts.push_back(net.layer(i).Forward(theta.data() + net.param_offset(i), acts.back()));
  }
  if (losses) *losses = LossValues(loss, acts.back(), labels);
  Matrix delta = LossGradient(loss, acts.back(), labels);
  size_t with_params = 0;
  for (size_t i = 0; i < net.size(); ++i) with_params += net.layer(i).has_params();
  factors->resize(with_params);
  for (size_t li = net.size(); li-- > 0;) {
    const Layer& layer = net.layer(li);
    if (layer.has_params()) (*factors)[--with_params] = layer.NominalFactors(acts[li], delta);
    if (li == 0) break;
    delta = layer.Backward(theta.data() + net.param_offset(li), acts[li], delta);
  }
}

Matrix Forward(const ModelSpec& spec, const Vector& theta, const Eigen::Ref<const Matrix>& x,
               std::vector<Matrix>* activations) {
  Matrix z = FrozenFeatures(spec, x);
  if (activations) {
    activations->clear();
    activations->push_back(z);
  }
  const Network net = spec.TrainedNetwork();
  for (size_t i = 0; i < net.size(); ++i) {
    z = net.layer(i).Forward(theta.data() + net.param_offset(i), z);
    if (activations) activations->push_back(z);
  }
  return z;
}

IntervalMatrix ForwardBounds(const ModelSpec& spec, const ParameterBox& box,
                             const IntervalMatrix& input, const BoundOptions& options,
                             std::vector<IntervalMatrix>* activations) {
  return BoxedModel(spec, box, options)
      .ForwardBounds(FrozenFeatureBounds(spec, input, options.interval), activations);
}

IntervalMatrix ForwardBounds(const ModelSpec& spec, const ParameterBox& box,
                             const IntervalMatrix& input, MatMulMethod method,
                             std::vector<IntervalMatrix>* activations) {
  return ForwardBounds(spec, box, input, BoundOptions{BoundMethod::kIbp, IntervalOptions{method}},
                       activations);
}

void PerSampleGradients(const ModelSpec& spec, const Vector& theta,
                        const Eigen::Ref<const Matrix>& x, const Vector& labels, LossKind loss,
                        Matrix* grads, Vector* losses) {
  const Index n = x.rows();
  const Index p = spec.NumParameters();
  if (grads->rows() < n || grads->cols() != p) grads->resize(n, p);
  FactorList factors;
  NominalGradientFactors(spec, theta, FrozenFeatures(spec, x), labels, loss, &factors, losses);
  ExpandFactors(spec, factors, n, grads, nullptr);
}

void PerSampleGradientBounds(const ModelSpec& spec, const ParameterBox& box,
                             const IntervalMatrix& input, const Vector& labels, LossKind loss,
                             const LabelPerturbation& label_perturbation, MatMulMethod method,
                             Matrix* lower, Matrix* upper) {
  const Index p = spec.NumParameters();
  if (lower->rows() < input.rows() || lower->cols() != p) lower->resize(input.rows(), p);
  if (upper->rows() < input.rows() || upper->cols() != p) upper->resize(input.rows(), p);
  const IntervalOptions options{method};
  BoxedModel(spec, box, method)
      .PerSampleGradientBounds(FrozenFeatureBounds(spec, input, options), labels, loss,
                               label_perturbation, lower, upper);
}

}  // namespace agt
