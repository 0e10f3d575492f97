#include "core/layers/relu.h"

#include <algorithm>

namespace agt {
namespace {

class BoxedRelu : public BoxedLayer {
 public:
  IntervalMatrix Forward(const IntervalMatrix& x) const override {
    return IntervalMatrix(x.lower.cwiseMax(0.0), x.upper.cwiseMax(0.0));
  }

  IntervalMatrix Backward(const IntervalMatrix& x, const IntervalMatrix& dy) const override {
    IntervalMatrix d = dy;
    for (Index i = 0; i < d.rows(); ++i) {
      for (Index j = 0; j < d.cols(); ++j) {
        if (x.lower(i, j) > 0.0) continue;  // derivative 1 everywhere
        if (!(x.upper(i, j) > 0.0)) {       // derivative 0 everywhere
          d.lower(i, j) = 0.0;
          d.upper(i, j) = 0.0;
        } else {
          d.lower(i, j) = std::min(d.lower(i, j), 0.0);
          d.upper(i, j) = std::max(d.upper(i, j), 0.0);
        }
      }
    }
    return d;
  }
};

}  // namespace

Matrix ReluLayer::Forward(const double*, const Matrix& x) const { return x.cwiseMax(0.0); }

Matrix ReluLayer::Backward(const double*, const Matrix& x, const Matrix& dy) const {
  return (x.array() > 0.0).select(dy, 0.0);
}

std::unique_ptr<BoxedLayer> ReluLayer::Bind(const double*, const double*,
                                            const IntervalOptions&) const {
  return std::make_unique<BoxedRelu>();
}

}  // namespace agt
