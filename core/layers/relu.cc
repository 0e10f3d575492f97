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
    BackwardInPlace(x, &d);
    return d;
  }

  void BackwardInPlace(const IntervalMatrix& x, IntervalMatrix* dy) const override {
    const Index n = dy->lower.size();
    const double* xl = x.lower.data();
    const double* xu = x.upper.data();
    double* dl = dy->lower.data();
    double* du = dy->upper.data();
    for (Index i = 0; i < n; ++i) {
      if (xl[i] > 0.0) continue;  // derivative 1 everywhere
      if (!(xu[i] > 0.0)) {       // derivative 0 everywhere
        dl[i] = 0.0;
        du[i] = 0.0;
      } else {
        dl[i] = std::min(dl[i], 0.0);
        du[i] = std::max(du[i], 0.0);
      }
    }
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
