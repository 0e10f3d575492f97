// The layer registry: for every LayerKind its name (as in case.json and the
// config), the check of its hyper-parameters against an input shape, and the
// factory of its operator. Adding a layer type is one operator unit plus one
// entry in registry.cc.
#ifndef AGT_CORE_LAYERS_REGISTRY_H_
#define AGT_CORE_LAYERS_REGISTRY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/layers/layer.h"

namespace agt {

struct LayerType {
  LayerKind kind;
  const char* name;
  // InvalidArgument naming the problem if `spec` cannot follow `input`.
  absl::Status (*check)(const LayerSpec& spec, const Shape& input);
  // Precondition: check passed.
  std::unique_ptr<Layer> (*make)(const LayerSpec& spec, const Shape& input);
  // For people: "dense 784->128", "conv2d 16@3x3 stride 2".
  std::string (*describe)(const LayerSpec& spec);
};

const LayerType& LayerTypeOf(LayerKind kind);
// nullptr for an unknown name.
const LayerType* FindLayerType(const std::string& name);
// "dense, conv2d, relu, flatten".
std::string KnownLayerTypes();
std::string LayerKindName(LayerKind kind);
std::string DescribeLayer(const LayerSpec& spec);

// Checks and builds one operator.
absl::StatusOr<std::unique_ptr<Layer>> MakeLayer(const LayerSpec& spec, const Shape& input);

// A sequence of operators with a known input shape; each layer's parameters
// follow the previous layer's in one flat vector (layer.h for the layout of
// one layer). Immutable; movable.
class Network {
 public:
  // Messages name the layer index: "layer 2 (conv2d): ...".
  static absl::StatusOr<Network> Build(const std::vector<LayerSpec>& layers, const Shape& input);

  size_t size() const { return layers_.size(); }
  const Layer& layer(size_t i) const { return *layers_[i]; }
  const Shape& input_shape() const { return input_; }
  const Shape& output_shape() const { return layers_.empty() ? input_ : layers_.back()->output_shape(); }
  Index num_params() const { return num_params_; }
  // Offset of layer i's parameters in the flat vector.
  Index param_offset(size_t i) const { return offsets_[i]; }

 private:
  Shape input_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<Index> offsets_;
  Index num_params_ = 0;
};

}  // namespace agt

#endif  // AGT_CORE_LAYERS_REGISTRY_H_
