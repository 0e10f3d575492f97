#include "core/bounds/ibp.h"

#include <algorithm>
#include <cassert>

namespace agt {
namespace {

using ConstMatrixMap = Eigen::Map<const Matrix>;
using RowVector = Eigen::Matrix<double, 1, Eigen::Dynamic>;

bool IsPoint(const Matrix& radius) { return (radius.array() == 0.0).all(); }
// True when every radius is within a relative 1e-9 of the largest, as for
// an l-infinity ball [x - eps, x + eps] after rounding; callers then use the
// largest radius, which over-approximates every one of them (soundly).
bool IsNearlyUniform(const Matrix& radius) {
  return radius.size() > 0 && radius.minCoeff() >= radius.maxCoeff() * (1.0 - 1e-9);
}

// dL/d(input of a ReLU) from dL/d(output), through [1{l>0}, 1{u>0}] with the
// exact product rule (goldens README, semantics 4).
void ReluBackwardBounds(const IntervalMatrix& pre, Matrix* dl, Matrix* du) {
  for (Index i = 0; i < dl->rows(); ++i) {
    for (Index j = 0; j < dl->cols(); ++j) {
      if (pre.lower(i, j) > 0.0) continue;  // derivative 1 everywhere
      if (!(pre.upper(i, j) > 0.0)) {       // derivative 0 everywhere
        (*dl)(i, j) = 0.0;
        (*du)(i, j) = 0.0;
      } else {
        (*dl)(i, j) = std::min((*dl)(i, j), 0.0);
        (*du)(i, j) = std::max((*du)(i, j), 0.0);
      }
    }
  }
}

}  // namespace

struct BoxedModel::Layer {
  DenseSlice slice;
  bool point = false;              // zero-width weights and bias
  Matrix w_mid, w_rad, w_mid_abs;  // out x in
  Matrix w_lower, w_upper;         // out x in (exact / Nguyen)
  RowVector b_lower, b_upper;      // 1 x out
};

BoxedModel::BoxedModel(const ModelSpec& spec, const ParameterBox& box, MatMulMethod method)
    : spec_(spec), method_(method), num_params_(spec.NumParameters()) {
  assert(box.size() == num_params_);
  for (const DenseSlice& s : spec.Layout()) {
    Layer layer;
    layer.slice = s;
    const ConstMatrixMap wl(box.lower.data() + s.weight_offset, s.out, s.in);
    const ConstMatrixMap wu(box.upper.data() + s.weight_offset, s.out, s.in);
    layer.w_mid = (wu + wl) * 0.5;
    layer.w_rad = (wu - wl) * 0.5;
    layer.w_mid_abs = layer.w_mid.cwiseAbs();
    if (method != MatMulMethod::kRump) {
      layer.w_lower = wl;
      layer.w_upper = wu;
    }
    layer.b_lower = box.lower.segment(s.bias_offset, s.out).transpose();
    layer.b_upper = box.upper.segment(s.bias_offset, s.out).transpose();
    layer.point = IsPoint(layer.w_rad) && layer.b_lower == layer.b_upper;
    layers_.push_back(std::move(layer));
  }
}

BoxedModel::~BoxedModel() = default;
BoxedModel::BoxedModel(BoxedModel&&) noexcept = default;
BoxedModel& BoxedModel::operator=(BoxedModel&&) noexcept = default;

IntervalMatrix BoxedModel::ForwardBounds(const IntervalMatrix& input,
                                         std::vector<IntervalMatrix>* activations) const {
  if (activations) {
    activations->clear();
    activations->push_back(input);
  }
  IntervalMatrix z = input;
  size_t dense = 0;
  for (const LayerSpec& spec_layer : spec_.layers) {
    if (spec_layer.kind == LayerKind::kRelu) {
      z.lower = z.lower.cwiseMax(0.0);
      z.upper = z.upper.cwiseMax(0.0);
    } else {
      const Layer& layer = layers_[dense++];
      if (method_ == MatMulMethod::kRump) {
        // Rump: mZ mW^T +- (|mZ| rW^T + rZ |mW|^T + rZ rW^T), eq. 21.
        const Matrix mz = (z.upper + z.lower) * 0.5;
        const Matrix rz = (z.upper - z.lower) * 0.5;
        const bool z_point = IsPoint(rz);
        Matrix mid = mz * layer.w_mid.transpose();
        Matrix rad = Matrix::Zero(mid.rows(), mid.cols());
        if (!layer.point) rad.noalias() += mz.cwiseAbs() * layer.w_rad.transpose();
        if (!z_point && IsNearlyUniform(rz)) {
          // An l-infinity ball: rZ <= c everywhere, so rZ (|mW| + rW)^T is at
          // most c times the row sums: one vector instead of two GEMMs.
          const double c = rz.maxCoeff();
          RowVector sums = layer.w_mid_abs.rowwise().sum().transpose();
          if (!layer.point) sums += layer.w_rad.rowwise().sum().transpose();
          rad.rowwise() += c * sums;
        } else if (!z_point) {
          rad.noalias() += rz * layer.w_mid_abs.transpose();
          if (!layer.point) rad.noalias() += rz * layer.w_rad.transpose();
        }
        z.lower = mid - rad;
        z.upper = mid + rad;
      } else {
        const IntervalMatrix wt(layer.w_lower.transpose(), layer.w_upper.transpose());
        z = MatMul(z, wt, method_);
      }
      z.lower.rowwise() += layer.b_lower;
      z.upper.rowwise() += layer.b_upper;
    }
    if (activations) activations->push_back(z);
  }
  return z;
}

void DenseFactors::Prepare() {
  d_mid = (d_upper + d_lower) * 0.5;
  d_rad = (d_upper - d_lower) * 0.5;
  z_mid = (z_upper + z_lower) * 0.5;
  z_rad = (z_upper - z_lower) * 0.5;
  z_mid_abs = z_mid.cwiseAbs();
  z_point = IsPoint(z_rad);
}

void ExpandNominalWeightRow(const DenseFactors& f, int o, Index row_begin, Index rows,
                            double* grads, Index ld) {
  const Index in = f.z_mid.cols();
  for (Index i = 0; i < rows; ++i) {
    const Index r = row_begin + i;
    Eigen::Map<RowVector>(grads + i * ld, in) = f.d_mid(r, o) * f.z_mid.row(r);
  }
}

void ExpandWeightRow(const DenseFactors& f, int o, Index row_begin, Index rows, MatMulMethod method,
                     double* lower, double* upper, Index ld) {
  const Index in = f.z_lower.cols();
  for (Index i = 0; i < rows; ++i) {
    const Index r = row_begin + i;
    Eigen::Map<RowVector> lo(lower + i * ld, in);
    Eigen::Map<RowVector> hi(upper + i * ld, in);
    switch (method) {
      case MatMulMethod::kExact: {
        const double a = f.d_lower(r, o), b = f.d_upper(r, o);
        const auto zl = f.z_lower.row(r).array();
        const auto zu = f.z_upper.row(r).array();
        lo = (a * zl).min(a * zu).min((b * zl).min(b * zu)).matrix();
        hi = (a * zl).max(a * zu).max((b * zl).max(b * zu)).matrix();
        break;
      }
      case MatMulMethod::kNguyen: {
        const Matrix dl = Matrix::Constant(1, 1, f.d_lower(r, o));
        const Matrix du = Matrix::Constant(1, 1, f.d_upper(r, o));
        const IntervalMatrix g = MatMulNguyen(IntervalMatrix(dl, du),
                                              IntervalMatrix(f.z_lower.row(r), f.z_upper.row(r)));
        lo = g.lower;
        hi = g.upper;
        break;
      }
      case MatMulMethod::kRump: {
        const double m = f.d_mid(r, o), rr = f.d_rad(r, o);
        const auto mz = f.z_mid.row(r).array();
        const auto amz = f.z_mid_abs.row(r).array();
        if (f.z_point) {
          // |m| rZ vanishes exactly.
          lo = (m * mz - rr * amz).matrix();
          hi = (m * mz + rr * amz).matrix();
        } else {
          const auto rz = f.z_rad.row(r).array();
          const double am = std::abs(m);
          lo = (m * mz - (am * rz + rr * amz + rr * rz)).matrix();
          hi = (m * mz + (am * rz + rr * amz + rr * rz)).matrix();
        }
        break;
      }
    }
  }
}

void BoxedModel::GradientFactors(const IntervalMatrix& input, const Vector& labels, LossKind loss,
                                 const LabelPerturbation& label_perturbation,
                                 std::vector<DenseFactors>* factors) const {
  std::vector<IntervalMatrix> acts;
  const IntervalMatrix logits = ForwardBounds(input, &acts);
  const IntervalMatrix delta0 = LossGradientBounds(loss, logits, labels, label_perturbation);
  Matrix dl = delta0.lower;
  Matrix du = delta0.upper;
  factors->resize(layers_.size());
  size_t dense = layers_.size();
  for (size_t li = spec_.layers.size(); li-- > 0;) {
    if (spec_.layers[li].kind == LayerKind::kRelu) {
      ReluBackwardBounds(acts[li], &dl, &du);
      continue;
    }
    const Layer& layer = layers_[--dense];
    DenseFactors& f = (*factors)[dense];
    f.d_lower = dl;
    f.d_upper = du;
    f.z_lower = acts[li].lower;
    f.z_upper = acts[li].upper;
    f.Prepare();
    if (li == 0) break;
    // delta <- delta (x) W, eq. 25.
    if (method_ == MatMulMethod::kRump) {
      Matrix mid = f.d_mid * layer.w_mid;
      Matrix rad = f.d_rad * layer.w_mid_abs;
      if (!layer.point) {
        rad.noalias() += f.d_mid.cwiseAbs() * layer.w_rad;
        rad.noalias() += f.d_rad * layer.w_rad;
      }
      dl = mid - rad;
      du = mid + rad;
    } else {
      const IntervalMatrix next =
          MatMul(IntervalMatrix(dl, du), IntervalMatrix(layer.w_lower, layer.w_upper), method_);
      dl = next.lower;
      du = next.upper;
    }
  }
}

void BoxedModel::PerSampleGradientBounds(const IntervalMatrix& input, const Vector& labels,
                                         LossKind loss, const LabelPerturbation& label_perturbation,
                                         Matrix* lower, Matrix* upper) const {
  const Index n = input.rows();
  assert(lower->rows() >= n && lower->cols() == num_params_);
  assert(upper->rows() >= n && upper->cols() == num_params_);
  std::vector<DenseFactors> factors;
  GradientFactors(input, labels, loss, label_perturbation, &factors);
  for (size_t k = 0; k < layers_.size(); ++k) {
    const DenseSlice& s = layers_[k].slice;
    const DenseFactors& f = factors[k];
    lower->block(0, s.bias_offset, n, s.out) = f.d_lower;
    upper->block(0, s.bias_offset, n, s.out) = f.d_upper;
    for (int o = 0; o < s.out; ++o) {
      const Index off = s.weight_offset + static_cast<Index>(o) * s.in;
      ExpandWeightRow(f, o, 0, n, method_, lower->data() + off, upper->data() + off, num_params_);
    }
  }
}

void NominalGradientFactors(const ModelSpec& spec, const Vector& theta,
                            const Eigen::Ref<const Matrix>& x, const Vector& labels, LossKind loss,
                            std::vector<DenseFactors>* factors, Vector* losses) {
  std::vector<Matrix> acts;
  const Matrix logits = Forward(spec, theta, x, &acts);
  if (losses) *losses = LossValues(loss, logits, labels);
  Matrix delta = LossGradient(loss, logits, labels);
  const std::vector<DenseSlice> layout = spec.Layout();
  factors->resize(layout.size());
  size_t dense = layout.size();
  for (size_t li = spec.layers.size(); li-- > 0;) {
    if (spec.layers[li].kind == LayerKind::kRelu) {
      delta = (acts[li].array() > 0.0).select(delta, 0.0);
      continue;
    }
    const DenseSlice& s = layout[--dense];
    DenseFactors& f = (*factors)[dense];
    f.d_lower = delta;
    f.d_upper = delta;
    f.z_lower = acts[li];
    f.z_upper = acts[li];
    f.Prepare();
    if (li == 0) break;
    const ConstMatrixMap w(theta.data() + s.weight_offset, s.out, s.in);
    Matrix next = delta * w;
    delta = std::move(next);
  }
}

Matrix Forward(const ModelSpec& spec, const Vector& theta, const Eigen::Ref<const Matrix>& x,
               std::vector<Matrix>* activations) {
  if (activations) {
    activations->clear();
    activations->push_back(x);
  }
  Matrix z = x;
  const std::vector<DenseSlice> layout = spec.Layout();
  size_t dense = 0;
  for (const LayerSpec& l : spec.layers) {
    if (l.kind == LayerKind::kRelu) {
      z = z.cwiseMax(0.0);
    } else {
      const DenseSlice& s = layout[dense++];
      const ConstMatrixMap w(theta.data() + s.weight_offset, s.out, s.in);
      Matrix next = z * w.transpose();
      next.rowwise() += theta.segment(s.bias_offset, s.out).transpose();
      z = std::move(next);
    }
    if (activations) activations->push_back(z);
  }
  return z;
}

IntervalMatrix ForwardBounds(const ModelSpec& spec, const ParameterBox& box,
                             const IntervalMatrix& input, MatMulMethod method,
                             std::vector<IntervalMatrix>* activations) {
  return BoxedModel(spec, box, method).ForwardBounds(input, activations);
}

void PerSampleGradients(const ModelSpec& spec, const Vector& theta,
                        const Eigen::Ref<const Matrix>& x, const Vector& labels, LossKind loss,
                        Matrix* grads, Vector* losses) {
  const Index n = x.rows();
  const Index p = spec.NumParameters();
  if (grads->rows() < n || grads->cols() != p) grads->resize(n, p);
  std::vector<DenseFactors> factors;
  NominalGradientFactors(spec, theta, x, labels, loss, &factors, losses);
  const std::vector<DenseSlice> layout = spec.Layout();
  for (size_t k = 0; k < layout.size(); ++k) {
    const DenseSlice& s = layout[k];
    const DenseFactors& f = factors[k];
    grads->block(0, s.bias_offset, n, s.out) = f.d_mid;
    for (int o = 0; o < s.out; ++o) {
      ExpandNominalWeightRow(f, o, 0, n, grads->data() + s.weight_offset + o * s.in, p);
    }
  }
}

void PerSampleGradientBounds(const ModelSpec& spec, const ParameterBox& box,
                             const IntervalMatrix& input, const Vector& labels, LossKind loss,
                             const LabelPerturbation& label_perturbation, MatMulMethod method,
                             Matrix* lower, Matrix* upper) {
  const Index p = spec.NumParameters();
  if (lower->rows() < input.rows() || lower->cols() != p) lower->resize(input.rows(), p);
  if (upper->rows() < input.rows() || upper->cols() != p) upper->resize(input.rows(), p);
  BoxedModel(spec, box, method)
      .PerSampleGradientBounds(input, labels, loss, label_perturbation, lower, upper);
}

}  // namespace agt
