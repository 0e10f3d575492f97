#include "core/layers/dense.h"

#include <algorithm>
#include <cmath>

#include "core/interval/rump.h"
#include "core/layers/weight_box.h"

namespace agt {
namespace {

using RowVector = Eigen::Matrix<double, 1, Eigen::Dynamic>;

class BoxedDense : public BoxedLayer {
 public:
  BoxedDense(const LayerSpec& spec, const double* lower, const double* upper,
             const IntervalOptions& options)
      : options_(options), w_(lower, upper, spec.out, spec.in, options.product, options.rounding) {}

  // [x] [W]^T + [b], eq. 21.
  IntervalMatrix Forward(const IntervalMatrix& x) const override { return w_.Apply(x); }

  // delta <- delta [W], eq. 25.
  IntervalMatrix Backward(const IntervalMatrix& /*x*/, const IntervalMatrix& dy) const override {
    return w_.Backward(dy);
  }

  std::unique_ptr<GradientFactors> Factors(IntervalMatrix x, IntervalMatrix dy) const override {
    auto f = std::make_unique<DenseFactors>();
    f->method = options_.product;
    f->rounding = options_.rounding;
    f->d_lower = std::move(dy.lower);
    f->d_upper = std::move(dy.upper);
    f->z_lower = std::move(x.lower);
    f->z_upper = std::move(x.upper);
    f->Prepare();
    return f;
  }

 private:
  IntervalOptions options_;
  WeightBox w_;
};

}  // namespace

void DenseFactors::Prepare() {
  // One pass for d's midpoints and radii (point factors read the midpoints
  // only; their d_upper may be left empty, meaning d_lower).
  const Matrix& dl = d_lower;
  const Matrix& du = nominal && d_upper.size() == 0 ? d_lower : d_upper;
  const simd::Kernels& k = simd::ActiveKernels();
  d_mid.resize(dl.rows(), dl.cols());
  if (!nominal) d_rad.resize(dl.rows(), dl.cols());
  if (nominal) {
    const Index n = dl.size();
    const double* l = dl.data();
    const double* u = du.data();
    double* m = d_mid.data();
    for (Index i = 0; i < n; ++i) m[i] = (u[i] + l[i]) * 0.5;
  } else {
    double r_min, r_max;
    bool r_nan;
    k.mid_rad(dl.data(), du.data(), dl.size(), d_mid.data(), d_rad.data(), /*a=*/nullptr, &r_min,
              &r_max, &r_nan);
  }
  if (nominal) {
    // Point factors: only the midpoints are read (ExpandNominalWeightRow).
    z_mid = std::move(z_lower);
    z_upper.resize(0, 0);
    z_point = true;
    return;
  }
  if (method != MatMulMethod::kRump) {
    z_point = (z_upper.array() == z_lower.array()).all();
    return;  // the exact and Nguyen rules read the endpoints only
  }
  // Rump reads midpoints and radii only: compute them in the endpoints'
  // storage (these are whole activation matrices).
  z_mid_abs.resize(z_lower.rows(), z_lower.cols());
  double r_min, r_max;
  bool r_nan;
  k.mid_rad(z_lower.data(), z_upper.data(), z_lower.size(), z_lower.data(), z_upper.data(),
            z_mid_abs.data(), &r_min, &r_max, &r_nan);
  z_mid = std::move(z_lower);
  z_rad = std::move(z_upper);
  // Every radius exactly zero (NaN radii are not).
  z_point = !r_nan && r_min >= 0.0 && r_max == 0.0;
}

void ExpandNominalWeightRow(const DenseFactors& f, int o, Index row_begin, Index rows,
                            double* grads, Index ld) {
  const Index in = f.z_mid.cols();
  const simd::Kernels& k = simd::ActiveKernels();
  for (Index i = 0; i < rows; ++i) {
    const Index r = row_begin + i;
    k.scale_row(f.d_mid(r, o), f.z_mid.row(r).data(), in, grads + i * ld);
  }
}

void ExpandWeightRow(const DenseFactors& f, int o, Index row_begin, Index rows, MatMulMethod method,
                     double* lower, double* upper, Index ld) {
  const Index in = f.width();
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
        const IntervalMatrix g = MatMulNguyen(
            IntervalMatrix(dl, du), IntervalMatrix(f.z_lower.row(r), f.z_upper.row(r)), f.rounding);
        lo = g.lower;
        hi = g.upper;
        break;
      }
      case MatMulMethod::kRump:
        RumpScaleRow(f.d_mid(r, o), f.d_rad(r, o), f.z_mid.row(r).data(), f.z_mid_abs.row(r).data(),
                     f.z_point ? nullptr : f.z_rad.row(r).data(), in, lo.data(), hi.data(),
                     f.rounding);
        break;
    }
  }
}

void DenseFactors::ExpandWeightRows(int o0, int o1, Index r0, Index rows, double* lower,
                                    double* upper, Index ld) const {
  const Index in = width();
  if (!nominal && method == MatMulMethod::kRump) {
    // A sample's weight rows o0..o1-1 are side by side in its row of the
    // block: one kernel call per sample (RumpScaleRow for each weight row).
    const simd::Kernels& k = simd::ActiveKernels();
    const Index out = d_mid.cols();
    for (Index i = 0; i < rows; ++i) {
      const Index r = r0 + i;
      k.rump_scale_rows(d_mid.data() + r * out + o0, d_rad.data() + r * out + o0, o1 - o0,
                        z_mid.row(r).data(), z_mid_abs.row(r).data(),
                        z_point ? nullptr : z_rad.row(r).data(), in, lower + i * ld,
                        upper + i * ld);
    }
    return;
  }
  for (int o = o0; o < o1; ++o) {
    const Index col = static_cast<Index>(o - o0) * in;
    if (nominal) {
      ExpandNominalWeightRow(*this, o, r0, rows, lower + col, ld);
    } else {
      ExpandWeightRow(*this, o, r0, rows, method, lower + col, upper + col, ld);
    }
  }
}

bool DenseFactors::RumpWeightRow(int o, Index r, simd::RumpRow* out) const {
  if (nominal || method != MatMulMethod::kRump) return false;
  // The arguments ExpandWeightRow passes to RumpScaleRow.
  out->m = d_mid(r, o);
  out->r = d_rad(r, o);
  out->mz = z_mid.row(r).data();
  out->amz = z_mid_abs.row(r).data();
  out->rz = z_point ? nullptr : z_rad.row(r).data();
  return true;
}

bool DenseFactors::DenseRows(Index r0, Index rows, DenseFactorRows* out) const {
  if (!nominal && method != MatMulMethod::kRump) return false;
  const Index in = z_mid.cols(), width = d_mid.cols();
  out->rows = std::min(rows, d_mid.rows() - r0);
  out->out = static_cast<int>(width);
  out->in = static_cast<int>(in);
  out->m = d_mid.data() + r0 * width;
  out->rad = nominal ? nullptr : d_rad.data() + r0 * width;
  out->mz = z_mid.data() + r0 * in;
  out->amz = nominal ? nullptr : z_mid_abs.data() + r0 * in;
  out->rz = nominal || z_point ? nullptr : z_rad.data() + r0 * in;
  out->d_lower = nominal ? out->m : d_lower.data() + r0 * width;
  out->d_upper = nominal ? nullptr : d_upper.data() + r0 * width;
  return true;
}

void DenseFactors::AccumulateNominalWeightRows(int o0, int o1, Index r0, Index rows, Index width,
                                               bool clip, double gamma, double* sum,
                                               Matrix* scratch) const {
  if (!nominal) {
    GradientFactors::AccumulateNominalWeightRows(o0, o1, r0, rows, width, clip, gamma, sum,
                                                 scratch);
    return;
  }
  const Index in = z_mid.cols();
  const simd::Kernels& k = simd::ActiveKernels();
  if (!clip) {
    // sum(o, c) += d(r, o) z(r, c) for the rows in order: a product of d's
    // columns (transposed into scratch) and z's rows, whose running sums
    // are accumulate_scaled_rows' (s = s + d z, in row order), bit for bit,
    // with each row of z read once for every weight row of the call.
    const Index n_o = o1 - o0, out = d_mid.cols();
    scratch->resize(n_o, rows);
    const double* d = d_mid.data() + r0 * out + o0;
    for (Index o = 0; o < n_o; ++o) {
      double* t = scratch->data() + o * rows;
      for (Index r = 0; r < rows; ++r) t[r] = d[r * out + o];
    }
    k.gemm(n_o, in, rows, scratch->data(), rows, z_mid.data() + r0 * in, in, sum, in,
           /*accumulate=*/true);
    return;
  }
  // Clipped products are not a GEMM: blocks of rows, each read from cache
  // by every weight row of the call (every element still sees its rows in
  // order).
  constexpr Index kBlockRows = 32;
  for (Index b0 = 0; b0 < rows; b0 += kBlockRows) {
    const Index n = std::min(kBlockRows, rows - b0);
    const Index r = r0 + b0;
    for (int o = o0; o < o1; ++o) {
      k.accumulate_scaled_rows(d_mid.data() + r * d_mid.cols() + o, d_mid.cols(),
                               z_mid.data() + r * in, in, n, in, clip, gamma,
                               sum + static_cast<Index>(o - o0) * in);
    }
  }
}

void DenseFactors::ExpandBias(Index r0, Index rows, double* lower, double* upper, Index ld) const {
  const Index out = d_mid.cols();
  for (Index i = 0; i < rows; ++i) {
    if (nominal) {
      Eigen::Map<RowVector>(lower + i * ld, out) = d_mid.row(r0 + i);
    } else {
      Eigen::Map<RowVector>(lower + i * ld, out) = d_lower.row(r0 + i);
      Eigen::Map<RowVector>(upper + i * ld, out) = d_upper.row(r0 + i);
    }
  }
}

DenseLayer::DenseLayer(const LayerSpec& spec, const Shape& input)
    : Layer(spec, input, Shape::Flat(spec.out)) {}

Matrix DenseLayer::Forward(const double* params, const Matrix& x) const {
  const ConstMatrixMap w(params, spec().out, spec().in);
  // The fixed-order product reads W^T row-major (in x out): a copy of the
  // weights, small beside the product for any batch.
  const Matrix wt = w.transpose();
  Matrix y = FixedOrderProduct(x, wt);
  y.rowwise() += Eigen::Map<const RowVector>(params + w.size(), spec().out);
  return y;
}

Matrix DenseLayer::Backward(const double* params, const Matrix& /*x*/, const Matrix& dy) const {
  Matrix dx(dy.rows(), spec().in);
  FixedOrderProduct(dy.data(), params, dy.rows(), spec().out, spec().in, dx.data(),
                    /*accumulate=*/false);
  return dx;
}

std::unique_ptr<GradientFactors> DenseLayer::NominalFactors(Matrix x, Matrix dy) const {
  auto f = std::make_unique<DenseFactors>();
  f->nominal = true;
  f->d_lower = std::move(dy);  // d_upper empty: the same (Prepare)
  f->z_lower = std::move(x);
  f->Prepare();
  return f;
}

std::unique_ptr<BoxedLayer> DenseLayer::Bind(const double* lower, const double* upper,
                                             const IntervalOptions& options) const {
  return std::make_unique<BoxedDense>(spec(), lower, upper, options);
}

}  // namespace agt
