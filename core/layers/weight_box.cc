#include "core/layers/weight_box.h"

namespace agt {

WeightBox::WeightBox(const double* lower, const double* upper, int rows, int cols,
                     MatMulMethod product, RoundingMode rounding)
    : product_(product), rounding_(rounding) {
  const ConstMatrixMap wl(lower, rows, cols), wu(upper, rows, cols);
  using RowVector = Eigen::Matrix<double, 1, Eigen::Dynamic>;
  b_lower_ = Eigen::Map<const RowVector>(lower + wl.size(), rows);
  b_upper_ = Eigen::Map<const RowVector>(upper + wl.size(), rows);
  if (product == MatMulMethod::kRump) {
    w_ = MidRad(wl, wu);
    wt_ = MidRad(wl.transpose(), wu.transpose());
  } else {
    w_lower_ = wl;
    w_upper_ = wu;
  }
}

IntervalMatrix WeightBox::Apply(const IntervalMatrix& x) const {
  if (product_ == MatMulMethod::kRump) {
    // The product and the bias by blocks of rows (RumpMatMulRows).
    return RumpMatMulRows(x.lower, x.upper, wt_, b_lower_.data(), b_upper_.data());
  }
  IntervalMatrix z =
      MatMul(x, IntervalMatrix(w_lower_.transpose(), w_upper_.transpose()), product_, rounding_);
  z.lower.rowwise() += b_lower_;
  z.upper.rowwise() += b_upper_;
  return z;
}

IntervalMatrix WeightBox::Backward(const IntervalMatrix& d) const {
  if (product_ == MatMulMethod::kRump) {
    return RumpMatMulRows(d.lower, d.upper, w_, /*bias_lower=*/nullptr, /*bias_upper=*/nullptr);
  }
  return MatMul(d, IntervalMatrix(w_lower_, w_upper_), product_, rounding_);
}

}  // namespace agt
