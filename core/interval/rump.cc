#include "core/interval/rump.h"

#include <algorithm>

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

IntervalMatrix RumpMatMulRows(const Matrix& a_lower, const Matrix& a_upper, const MidRad& b,
                              const double* bias_lower, const double* bias_upper) {
  const Index n = a_lower.rows(), k = a_lower.cols(), c = b.cols();
  const simd::Kernels& kern = simd::ActiveKernels();
  // MidRad's point and uniform rules, from the radii's range over all of a.
  double lo, hi;
  bool nan;
  kern.radius_range(a_lower.data(), a_upper.data(), a_lower.size(), &lo, &hi, &nan);
  const bool a_point = hi == 0.0 && lo >= 0.0 && !nan;
  const bool a_uniform = !a_point && a_lower.size() > 0 && lo >= hi * (1.0 - 1e-9);
  IntervalMatrix out(Matrix(n, c), Matrix(n, c));
  if (n == 0 || c == 0) return out;
  // RumpMatMul's rA (|mB| + rB) term, for a non-point a.
  Matrix computed_mag;
  if (!a_point && !b.point && b.mag.size() == 0) computed_mag = b.mid_abs + b.rad;
  const Matrix& b_mag = b.point ? b.mid_abs : b.mag.size() > 0 ? b.mag : computed_mag;
  Eigen::Matrix<double, 1, Eigen::Dynamic> uniform_term;
  if (!a_point && a_uniform) uniform_term = hi * b_mag.colwise().sum();
  // Blocks of rows whose midpoints, radii and |midpoints| (3 k doubles a
  // row) fit the L1 cache with room to spare: stores that leave it cost
  // several times more (mid_rad on an AVX-512 machine: 0.44 ns a value in
  // L1, 1.4 ns in L2). Multiples of 12 rows, whole tiles of every variant's
  // GEMM (6 or 4 rows). But a large b is read again for every block: past
  // 4096 values, blocks of 96 rows, the GEMM's own row block (784-128-10's
  // first layer: with 12-row blocks its 800 kB b would be read 22 times a
  // chunk of 256 rows, against 3).
  const Index fit = std::max<Index>(1, 1536 / std::max<Index>(k, 1)) / 12 * 12;
  const Index rows_per_block = k * c > 4096 ? 96 : std::clamp<Index>(fit, 12, 96);
  const Index block = std::min(n, rows_per_block);
  // What the products read: |mA| only when b has radii, rA only when no
  // point or uniform rule stands in for it.
  const bool need_abs = !b.point;
  const bool need_rad = !a_point && !a_uniform;
  Matrix mid(block, k), rad(need_rad ? block : 1, k), mid_abs(need_abs ? block : 1, k);
  Matrix mid_out(block, c), rad_out(block, c);
  const double* bl = bias_lower;
  const double* bu = bias_upper;
  for (Index r0 = 0; r0 < n; r0 += block) {
    const Index rows = std::min(block, n - r0);
    double r_min, r_max;
    bool r_nan;
    kern.mid_rad(a_lower.data() + r0 * k, a_upper.data() + r0 * k, rows * k, mid.data(),
                 need_rad ? rad.data() : nullptr, need_abs ? mid_abs.data() : nullptr, &r_min,
                 &r_max, &r_nan);
    double* lower = out.lower.data() + r0 * c;
    double* upper = out.upper.data() + r0 * c;
    double* m = mid_out.data();
    double* r = rad_out.data();
    FixedOrderProduct(mid.data(), b.mid.data(), rows, k, c, m, /*accumulate=*/false);
    const bool point = a_point && b.point;
    if (!point) {
      // RumpMatMul's radius: from zero, |mA| rB, then rA |B| (or its
      // uniform form), in that order.
      if (!b.point) {
        FixedOrderProduct(mid_abs.data(), b.rad.data(), rows, k, c, r, /*accumulate=*/false);
      } else {
        std::fill(r, r + rows * c, 0.0);
      }
      if (!a_point) {
        if (a_uniform) {
          MatrixMap(r, rows, c).rowwise() += uniform_term;
        } else {
          FixedOrderProduct(rad.data(), b_mag.data(), rows, k, c, r, /*accumulate=*/true);
        }
      }
    }
    // The bounds, each written once: mid -+ rad, then the bias (the order
    // of RumpMatMul's result and WeightBox's row-wise bias addition).
    for (Index i = 0; i < rows; ++i) {
      const double* mi = m + i * c;
      const double* ri = r + i * c;
      double* li = lower + i * c;
      double* ui = upper + i * c;
      if (point) {
        if (bl) {
          for (Index j = 0; j < c; ++j) {
            li[j] = mi[j] + bl[j];
            ui[j] = mi[j] + bu[j];
          }
        } else {
          std::copy(mi, mi + c, li);
          std::copy(mi, mi + c, ui);
        }
      } else if (bl) {
        for (Index j = 0; j < c; ++j) {
          li[j] = (mi[j] - ri[j]) + bl[j];
          ui[j] = (mi[j] + ri[j]) + bu[j];
        }
      } else {
        for (Index j = 0; j < c; ++j) {
          li[j] = mi[j] - ri[j];
          ui[j] = mi[j] + ri[j];
        }
      }
    }
  }
  return out;
}

}  // namespace agt
