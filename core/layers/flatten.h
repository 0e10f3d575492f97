// The flatten operator: [C, H, W] -> [C H W] in the same (channel-major)
// order. Samples are already stored flat in that order, so every pass is the
// identity on the values; only the shape changes.
#ifndef AGT_CORE_LAYERS_FLATTEN_H_
#define AGT_CORE_LAYERS_FLATTEN_H_

#include "core/layers/layer.h"

namespace agt {

class FlattenLayer : public Layer {
 public:
  FlattenLayer(const LayerSpec& spec, const Shape& input)
      : Layer(spec, input, Shape::Flat(static_cast<int>(input.size()))) {}
  Matrix Forward(const double*, const Matrix& x) const override { return x; }
  Matrix Backward(const double*, const Matrix&, const Matrix& dy) const override { return dy; }
  bool reshapes_only() const override { return true; }
  std::unique_ptr<BoxedLayer> Bind(const double* lower, const double* upper,
                                   const IntervalOptions& options) const override;
};

}  // namespace agt

#endif  // AGT_CORE_LAYERS_FLATTEN_H_
