// What a layer is, as data: its kind and its hyper-parameters, and the shape
// of the values flowing between layers. The behaviour of each kind lives in
// its operator unit (dense.h, conv2d.h, relu.h, flatten.h), found through the
// registry (registry.h).
//
// Conventions: a batch of activations is a Matrix with one row per sample;
// a sample of shape [C, H, W] is stored channel-major, then row-major
// (torch's reshape(N, C, H, W)), a flat sample of shape [D] as D values.
#ifndef AGT_CORE_LAYERS_LAYER_SPEC_H_
#define AGT_CORE_LAYERS_LAYER_SPEC_H_

#include <string>
#include <vector>

#include "core/common/types.h"

namespace agt {

// The shape of one sample: [D] or [C, H, W].
struct Shape {
  std::vector<int> dims;

  static Shape Flat(int d) { return Shape{{d}}; }
  static Shape Image(int c, int h, int w) { return Shape{{c, h, w}}; }
  bool empty() const { return dims.empty(); }
  bool is_flat() const { return dims.size() == 1; }
  bool is_image() const { return dims.size() == 3; }
  // The number of values of one sample (0 for an empty shape).
  Index size() const;
  // "[1, 28, 28]".
  std::string ToString() const;
  bool operator==(const Shape& other) const { return dims == other.dims; }
  bool operator!=(const Shape& other) const { return dims != other.dims; }
};

enum class LayerKind { kDense, kRelu, kConv2d, kFlatten };

// Conv2d hyper-parameters: a cross-correlation as in torch, zero padding,
// dilation 1, with bias.
struct Conv2dParams {
  int in_channels = 0;
  int out_channels = 0;
  int kernel_h = 0, kernel_w = 0;
  int stride_h = 1, stride_w = 1;
  int pad_h = 0, pad_w = 0;
};

struct LayerSpec {
  LayerKind kind = LayerKind::kDense;
  int in = 0;   // dense only
  int out = 0;  // dense only
  Conv2dParams conv;  // conv2d only

  static LayerSpec Dense(int in, int out) { return {LayerKind::kDense, in, out, {}}; }
  static LayerSpec Relu() { return {LayerKind::kRelu, 0, 0, {}}; }
  static LayerSpec Flatten() { return {LayerKind::kFlatten, 0, 0, {}}; }
  static LayerSpec Conv2d(const Conv2dParams& p) { return {LayerKind::kConv2d, 0, 0, p}; }
  bool operator==(const LayerSpec& o) const;
};

}  // namespace agt

#endif  // AGT_CORE_LAYERS_LAYER_SPEC_H_
