#include "core/layers/flatten.h"

namespace agt {
namespace {

class BoxedFlatten : public BoxedLayer {
 public:
  IntervalMatrix Forward(const IntervalMatrix& x) const override { return x; }
  IntervalMatrix Backward(const IntervalMatrix&, const IntervalMatrix& dy) const override {
    return dy;
  }
};

}  // namespace

std::unique_ptr<BoxedLayer> FlattenLayer::Bind(const double*, const double*,
                                               const IntervalOptions&) const {
  return std::make_unique<BoxedFlatten>();
}

}  // namespace agt
