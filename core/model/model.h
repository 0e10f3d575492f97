// Model specifications (an input shape, an optional frozen prefix and a
// sequence of trained layers: dense, conv2d, relu, flatten), the flat
// parameter layout, deterministic initialisation, and parameter boxes.
//
// Layout of the flat parameter vector: for every trained layer with
// parameters in order, its weight (out x in, row-major: W(o, i) at offset +
// o * in + i) and then its bias (out). A dense layer computes y = W x + b.
// This is the order of the goldens' init.json.
#ifndef AGT_CORE_MODEL_MODEL_H_
#define AGT_CORE_MODEL_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/common/types.h"
#include "core/layers/layer_spec.h"
#include "core/layers/registry.h"

namespace agt {

// Where one layer's parameters live in the flat vector: a weight of out x in
// values (row-major) and out biases. Dense: W is out x in. Conv2d: out =
// out_channels, in = in_channels * kh * kw (torch's O x C x kh x kw).
struct ParamSlice {
  int layer = 0;  // index into ModelSpec::layers
  int in = 0;
  int out = 0;
  Index weight_offset = 0;
  Index bias_offset = 0;
  LayerKind kind = LayerKind::kDense;
  Index size() const { return static_cast<Index>(in) * out + out; }
};
// The name from the dense-only days.
using DenseSlice = ParamSlice;

// A frozen feature extractor (the reference's `transform`): layers with fixed
// parameters applied before the trained ones. Inputs, and under feature
// poisoning their epsilon-boxes, pass through it (by IBP with point
// parameters); it gets no gradient and no bounds.
struct FrozenPrefix {
  std::vector<LayerSpec> layers;
  Vector parameters;  // flat, the same per-layer layout as trained layers
  bool empty() const { return layers.empty(); }
};

struct ModelSpec {
  std::vector<LayerSpec> layers;  // the trained layers
  // The shape of one input sample. Empty: [in] of the first layer, which must
  // then be dense (dense-only models).
  Shape input_shape;
  FrozenPrefix frozen;

  // Valid iff the frozen prefix (if any) and the trained layers chain by
  // shape from the input shape (each layer's check in layers/registry.cc),
  // the trained layers are non-empty, start with a layer with parameters
  // (dense or conv2d), end with a dense layer (the logits), have no two ReLUs
  // in a row, and the frozen parameters have the right count and are finite.
  absl::Status Validate() const;
  // The input shape with the default applied.
  Shape InputShape() const;
  // Values per input sample (the dataset's feature count).
  int InputDim() const;
  // The shape entering the trained layers (after the frozen prefix).
  Shape FeatureShape() const;
  int OutputDim() const;
  // Trained parameters only.
  Index NumParameters() const;
  std::vector<ParamSlice> Layout() const;
  // The operators; preconditions: Validate() passed.
  Network TrainedNetwork() const;
  Network FrozenNetwork() const;
  // Human-readable, e.g. "784-128-10 (ReLU)", or for other models the layers
  // in order: "[1, 8, 8] frozen(conv2d 6@3x3, relu, flatten) dense 216->16, relu, dense 16->10".
  std::string Describe() const;

  // An MLP with ReLU between dense layers: widths {784, 128, 10}.
  static ModelSpec Mlp(const std::vector<int>& widths);
};

// Deterministic initialisation: W, b ~ U(-1/sqrt(in), 1/sqrt(in)) (PyTorch's
// default range) from Rng(seed). Same seed, same spec, same parameters.
Vector InitParameters(const ModelSpec& spec, uint64_t seed);

// A box [lower, upper] in parameter space. Soundness claims about training say
// which parameter vectors a box contains.
struct ParameterBox {
  Vector lower;
  Vector upper;

  static ParameterBox Point(const Vector& theta) { return {theta, theta}; }
  Index size() const { return lower.size(); }
  bool Contains(const Vector& theta, double tol = 0.0) const;
  double TotalWidth() const { return (upper - lower).sum(); }
  double MaxWidth() const { return size() == 0 ? 0.0 : (upper - lower).maxCoeff(); }
};

}  // namespace agt

#endif  // AGT_CORE_MODEL_MODEL_H_
