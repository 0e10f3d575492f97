#include "core/bounds/ibp.h"

#include <cassert>
#include <utility>

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

IntervalMatrix FrozenFeatureBounds(const ModelSpec& spec, IntervalMatrix input,
                                   const IntervalOptions& options) {
  if (spec.frozen.empty()) return input;
  const Network net = spec.FrozenNetwork();
  IntervalMatrix z = std::move(input);
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

IntervalMatrix BoxedModel::ForwardBounds(IntervalMatrix features,
                                         std::vector<IntervalMatrix>* activations) const {
  if (activations) {
    activations->clear();
    activations->push_back(features);
  }
  IntervalMatrix z = std::move(features);
  for (const std::unique_ptr<BoxedLayer>& layer : layers_) {
    z = layer->Forward(z);
    // Overflow (huge boxes) must widen the bound, not turn it into NaN.
    WidenNaNsToInfinity(&z);
    if (activations) activations->push_back(z);
  }
  return z;
}

void BoxedModel::GradientFactors(IntervalMatrix features, const Vector& labels, LossKind loss,
                                 const LabelPerturbation& label_perturbation,
                                 FactorList* factors) const {
  // values[input[li]] is layer li's input; layers that only reshape share
  // their input's matrix. Each value is read by one layer with arithmetic
  // (the next one), so the backward pass moves it into that layer's factors.
  const size_t n = layers_.size();
  std::vector<IntervalMatrix> values;
  values.reserve(n + 1);
  values.push_back(std::move(features));
  std::vector<size_t> input(n);
  for (size_t li = 0; li < n; ++li) {
    input[li] = values.size() - 1;
    if (network_.layer(li).reshapes_only()) continue;
    IntervalMatrix z = layers_[li]->Forward(values.back());
    WidenNaNsToInfinity(&z);
    values.push_back(std::move(z));
  }
  IntervalMatrix delta = LossGradientBounds(loss, values.back(), labels, label_perturbation);
  size_t with_params = 0;
  for (size_t i = 0; i < n; ++i) with_params += network_.layer(i).has_params();
  factors->resize(with_params);
  for (size_t li = n; li-- > 0;) {
    const Layer& layer = network_.layer(li);
    if (layer.reshapes_only()) continue;
    IntervalMatrix& x = values[input[li]];
    if (!layer.has_params()) {
      layers_[li]->BackwardInPlace(x, &delta);
      continue;
    }
    // The features need no gradient.
    IntervalMatrix next = li > 0 ? layers_[li]->Backward(x, delta) : IntervalMatrix();
    (*factors)[--with_params] = layers_[li]->Factors(std::move(x), std::move(delta));
    delta = std::move(next);
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
  // As BoxedModel::GradientFactors, at point parameters.
  const Network net = spec.TrainedNetwork();
  const size_t n = net.size();
  std::vector<Matrix> values;
  values.reserve(n + 1);
  values.push_back(features);
  std::vector<size_t> input(n);
  for (size_t i = 0; i < n; ++i) {
    input[i] = values.size() - 1;
    if (net.layer(i).reshapes_only()) continue;
    values.push_back(net.layer(i).Forward(theta.data() + net.param_offset(i), values.back()));
  }
  if (losses) *losses = LossValues(loss, values.back(), labels);
  Matrix delta = LossGradient(loss, values.back(), labels);
  size_t with_params = 0;
  for (size_t i = 0; i < n; ++i) with_params += net.layer(i).has_params();
  factors->resize(with_params);
  for (size_t li = n; li-- > 0;) {
    const Layer& layer = net.layer(li);
    if (layer.reshapes_only()) continue;
    Matrix& x = values[input[li]];
    const double* params = theta.data() + net.param_offset(li);
    if (!layer.has_params()) {
      delta = layer.Backward(params, x, delta);
      continue;
    }
    Matrix next = li > 0 ? layer.Backward(params, x, delta) : Matrix();
    (*factors)[--with_params] = layer.NominalFactors(std::move(x), std::move(delta));
    delta = std::move(next);
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
