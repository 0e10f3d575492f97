// Model specifications (a sequence of Dense and ReLU layers), the flat
// parameter layout, deterministic initialisation, and parameter boxes.
//
// Layout of the flat parameter vector: for every dense layer in order, its
// weight W (out x in, row-major: W(o, i) at offset + o * in + i) and then its
// bias b (out). A dense layer computes y = W x + b. This is the order of the
// goldens' init.json.
#ifndef AGT_CORE_MODEL_MODEL_H_
#define AGT_CORE_MODEL_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/common/types.h"

namespace agt {

enum class LayerKind { kDense, kRelu };

struct LayerSpec {
  LayerKind kind = LayerKind::kDense;
  int in = 0;   // dense only
  int out = 0;  // dense only

  static LayerSpec Dense(int in, int out) { return {LayerKind::kDense, in, out}; }
  static LayerSpec Relu() { return {LayerKind::kRelu, 0, 0}; }
};

// Where one dense layer's parameters live in the flat vector.
struct DenseSlice {
  int layer = 0;  // index into ModelSpec::layers
  int in = 0;
  int out = 0;
  Index weight_offset = 0;
  Index bias_offset = 0;
  Index size() const { return static_cast<Index>(in) * out + out; }
};

struct ModelSpec {
  std::vector<LayerSpec> layers;

  // Valid iff non-empty, starts and ends with a dense layer, widths chain
  // (each dense layer's in equals the previous dense layer's out), all
  // widths positive, and no two ReLUs in a row.
  absl::Status Validate() const;
  int InputDim() const;
  int OutputDim() const;
  Index NumParameters() const;
  std::vector<DenseSlice> Layout() const;
  // Human-readable, e.g. "784-128-10 (ReLU)".
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
