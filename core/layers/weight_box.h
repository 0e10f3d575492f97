// The interval weight of a linear layer (dense, or conv2d on its patch
// matrix): [W] (rows x cols, row-major in the flat parameter vector) and its
// bias [b] (rows), prepared once per box for one interval product. What the
// dense and conv operators share; every product goes through
// interval/interval.h (Rump's rule: interval/rump.h).
#ifndef AGT_CORE_LAYERS_WEIGHT_BOX_H_
#define AGT_CORE_LAYERS_WEIGHT_BOX_H_

#include "core/common/types.h"
#include "core/interval/interval.h"
#include "core/interval/rump.h"

namespace agt {

class WeightBox {
 public:
  // lower/upper: rows * cols weights, then rows biases.
  WeightBox(const double* lower, const double* upper, int rows, int cols, MatMulMethod product,
            RoundingMode rounding);
  // [x] [W]^T + [b]: x is N x cols, the result N x rows (the forward map).
  IntervalMatrix Apply(const IntervalMatrix& x) const;
  // [d] [W]: d is N x rows, the result N x cols (the backward map).
  IntervalMatrix Backward(const IntervalMatrix& d) const;

 private:
  MatMulMethod product_;
  RoundingMode rounding_;
  MidRad w_, wt_;             // Rump: W and W^T
  Matrix w_lower_, w_upper_;  // exact / Nguyen
  Eigen::Matrix<double, 1, Eigen::Dynamic> b_lower_, b_upper_;
};

}  // namespace agt

#endif  // AGT_CORE_LAYERS_WEIGHT_BOX_H_
