#include "core/interval/rump.h"

namespace agt {

MidRad::MidRad(const Matrix& lower, const Matrix& upper) {
  mid = (upper + lower) * 0.5;
  rad = (upper - lower) * 0.5;
  mid_abs = mid.cwiseAbs();
  point = (rad.array() == 0.0).all();
  if (!point) {
    mag = mid_abs + rad;
    const double hi = rad.maxCoeff();
    uniform = rad.size() > 0 && rad.minCoeff() >= hi * (1.0 - 1e-9);
    uniform_radius = hi;
  }
}

MidRad MidRad::Point(const Matrix& m) {
  MidRad out;
  out.mid = m;
  out.mid_abs = m.cwiseAbs();
  out.point = true;
  return out;
}

MidRadView MidRad::Block(Index offset, Index view_rows, Index view_cols) const {
  // rad and mag are empty for a point; a view of them is never read.
  const double* r = point ? mid.data() : rad.data();
  const double* g = point ? mid.data() : mag.data();
  return MidRadView{ConstMatrixMap(mid.data() + offset, view_rows, view_cols),
                    ConstMatrixMap(mid_abs.data() + offset, view_rows, view_cols),
                    ConstMatrixMap(r + offset, view_rows, view_cols),
                    ConstMatrixMap(g + offset, view_rows, view_cols), point};
}

void RumpMatMul(const MidRadView& a, const MidRadView& b, double* lower, double* upper,
                Matrix* scratch, RoundingMode /*rounding: kNearest is the only mode*/) {
  MatrixMap lo(lower, a.rows(), b.cols());
  MatrixMap hi(upper, a.rows(), b.cols());
  lo.noalias() = a.mid * b.mid;
  if (a.point && b.point) {
    hi = lo;
    return;
  }
  Matrix& rad = *scratch;
  if (!b.point) {
    rad.noalias() = a.mid_abs * b.rad;
    if (!a.point) rad.noalias() += a.rad * b.mag;
  } else {
    rad.noalias() = a.rad * b.mid_abs;
  }
  hi = lo + rad;
  lo -= rad;
}

IntervalMatrix RumpMatMul(const MidRad& a, const MidRad& b, RoundingMode rounding) {
  Matrix mid = a.mid * b.mid;
  if (a.point && b.point) return IntervalMatrix(mid, mid);
  Matrix rad = Matrix::Zero(mid.rows(), mid.cols());
  if (!b.point) rad.noalias() += a.mid_abs * b.rad;
  if (!a.point) {
    const Matrix& b_mag = b.point ? b.mid_abs : b.mag;
    if (a.uniform) {
      rad.rowwise() += a.uniform_radius * b_mag.colwise().sum();
    } else {
      rad.noalias() += a.rad * b_mag;
    }
  }
  (void)rounding;
  return IntervalMatrix(mid - rad, mid + rad);
}

}  // namespace agt
