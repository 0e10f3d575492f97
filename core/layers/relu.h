// The ReLU operator, elementwise max(0, x). Interval forward: ReLU on both
// ends (monotone, so exact). Backward: dy times the derivative interval
// [1{l > 0}, 1{u > 0}] of the pre-activation bounds by the exact product rule
// (goldens README, semantics 4; strict >).
#ifndef AGT_CORE_LAYERS_RELU_H_
#define AGT_CORE_LAYERS_RELU_H_

#include "core/layers/layer.h"

namespace agt {

class ReluLayer : public Layer {
 public:
  ReluLayer(const LayerSpec& spec, const Shape& input) : Layer(spec, input, input) {}
  Matrix Forward(const double* params, const Matrix& x) const override;
  Matrix Backward(const double* params, const Matrix& x, const Matrix& dy) const override;
  std::unique_ptr<BoxedLayer> Bind(const double* lower, const double* upper,
                                   const IntervalOptions& options) const override;
};

}  // namespace agt

#endif  // AGT_CORE_LAYERS_RELU_H_
