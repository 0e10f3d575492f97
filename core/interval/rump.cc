#include "core/interval/rump.h"

#include <algorithm>
#include <limits>

namespace agt {

MidRad::MidRad(const Matrix& lower, const Matrix& upper, bool with_mag) {
  mid.resize(lower.rows(), lower.cols());
  rad.resize(lower.rows(), lower.cols());
  mid_abs.resize(lower.rows(), lower.cols());
  // One pass over the operands (this runs on whole activation matrices), in
  // the vector kernel.
  const Index n = lower.size();
  double lo, hi;
  bool nan;
  simd::ActiveKernels().mid_rad(lower.data(), upper.data(), n, mid.data(), rad.data(),
                                mid_abs.data(), &lo, &hi, &nan);
  // Exactly zero radius everywhere (NaN or negative radii are not points).
  point = hi == 0.0 && lo >= 0.0 && !nan;
  if (point) {
    rad.resize(0, 0);
    return;
  }
  if (with_mag) mag = mid_abs + rad;
  uniform = n > 0 && lo >= hi * (1.0 - 1e-9);
  uniform_radius = hi;
}

MidRad MidRad::FromEndpoints(Matrix&& lower, Matrix&& upper, bool with_mag) {
  MidRad out;
  const Index n = lower.size();
  double lo, hi;
  bool nan;
  simd::ActiveKernels().mid_rad(lower.data(), upper.data(), n, lower.data(), upper.data(),
                                /*a=*/nullptr, &lo, &hi, &nan);
  out.mid = std::move(lower);
  out.mid_abs = out.mid.cwiseAbs();
  out.point = hi == 0.0 && lo >= 0.0 && !nan;
  if (out.point) return out;
  out.rad = std::move(upper);
  if (with_mag) out.mag = out.mid_abs + out.rad;
  out.uniform = n > 0 && lo >= hi * (1.0 - 1e-9);
  out.uniform_radius = hi;
  return out;
}

MidRad MidRad::Point(const Matrix& m) {
  MidRad out;
  out.mid = m;
  out.mid_abs = m.cwiseAbs();
  out.point = true;
  return out;
}

MidRadView MidRad::Block(Index offset, Index view_rows, Index view_cols) const {
  // rad and mag are empty for a point (and mag without with_mag); a view of
  // them is never read then.
  const double* r = point ? mid.data() : rad.data();
  const double* g = point || mag.size() == 0 ? mid.data() : mag.data();
  return MidRadView{ConstMatrixMap(mid.data() + offset, view_rows, view_cols),
                    ConstMatrixMap(mid_abs.data() + offset, view_rows, view_cols),
                    ConstMatrixMap(r + offset, view_rows, view_cols),
                    ConstMatrixMap(g + offset, view_rows, view_cols), point};
}

void FixedOrderProduct(const double* a, const double* b, Index m, Index k, Index n, double* c,
                       bool accumulate) {
  simd::ActiveKernels().gemm(m, n, k, a, k, b, n, c, n, accumulate);
}

Matrix FixedOrderProduct(const Matrix& a, const Matrix& b) {
  Matrix c(a.rows(), b.cols());
  FixedOrderProduct(a.data(), b.data(), a.rows(), a.cols(), b.cols(), c.data(),
                    /*accumulate=*/false);
  return c;
}

void RumpMatMul(const MidRadView& a, const MidRadView& b, double* lower, double* upper,
                Matrix* scratch, RoundingMode /*rounding: kNearest is the only mode*/) {
  MatrixMap lo(lower, a.rows(), b.cols());
  MatrixMap hi(upper, a.rows(), b.cols());
  FixedOrderProduct(a.mid, b.mid, lower, /*accumulate=*/false);
  if (a.point && b.point) {
    hi = lo;
    return;
  }
  Matrix& rad = *scratch;
  rad.resize(a.rows(), b.cols());
  if (!b.point) {
    FixedOrderProduct(a.mid_abs, b.rad, rad.data(), /*accumulate=*/false);
    if (!a.point) FixedOrderProduct(a.rad, b.mag, rad.data(), /*accumulate=*/true);
  } else {
    FixedOrderProduct(a.rad, b.mid_abs, rad.data(), /*accumulate=*/false);
  }
  hi = lo + rad;
  lo -= rad;
}

IntervalMatrix RumpMatMul(const MidRad& a, const MidRad& b, RoundingMode rounding) {
  Matrix mid = FixedOrderProduct(a.mid, b.mid);
  if (a.point && b.point) return IntervalMatrix(mid, mid);
  Matrix rad = Matrix::Zero(mid.rows(), mid.cols());
  const auto add_product = [&](const Matrix& x, const Matrix& y) {
    FixedOrderProduct(x.data(), y.data(), x.rows(), x.cols(), y.cols(), rad.data(),
                      /*accumulate=*/true);
  };
  if (!b.point) add_product(a.mid_abs, b.rad);
  if (!a.point) {
    // A right factor made without mag (with_mag = false) gets it here.
    Matrix computed_mag;
    if (!b.point && b.mag.size() == 0) computed_mag = b.mid_abs + b.rad;
    const Matrix& b_mag = b.point ? b.mid_abs : b.mag.size() > 0 ? b.mag : computed_mag;
    if (a.uniform) {
      rad.rowwise() += a.uniform_radius * b_mag.colwise().sum();
    } else {
      add_product(a.rad, b_mag);
    }
  }
  (void)rounding;
  return IntervalMatrix(mid - rad, mid + rad);
}

}  // namespace agt
