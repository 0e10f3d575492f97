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
    // Without branches (which of the three cases holds is close to random
    // across a batch, so a branch mispredicted often), in the rule's order:
    // derivative 1 everywhere (x > 0) keeps the bounds, 0 everywhere
    // (!(upper > 0), NaN included) zeroes them, and otherwise the bounds
    // take in 0: std::min(l, 0.0) is 0.0 < l ? 0.0 : l, std::max(u, 0.0) is
    // u < 0.0 ? 0.0 : u.
    for (Index i = 0; i < n; ++i) {
      const double l = dl[i], u = du[i];
      const bool one = xl[i] > 0.0;
      const bool zero = !(xu[i] > 0.0);
      const double lo = zero ? 0.0 : (0.0 < l ? 0.0 : l);
      const double hi = zero ? 0.0 : (u < 0.0 ? 0.0 : u);
      dl[i] = one ? l : lo;
      du[i] = one ? u : hi;
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
