#include "core/model/model.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/rng.h"

namespace agt {
namespace {

absl::Status Invalid(const std::string& msg) { return absl::InvalidArgumentError(msg); }

std::string DescribeLayers(const std::vector<LayerSpec>& layers) {
  std::vector<std::string> parts;
  for (const LayerSpec& l : layers) parts.push_back(DescribeLayer(l));
  return absl::StrJoin(parts, ", ");
}

}  // namespace

Shape ModelSpec::InputShape() const {
  if (!input_shape.empty()) return input_shape;
  const std::vector<LayerSpec>& first = frozen.empty() ? layers : frozen.layers;
  if (!first.empty() && first.front().kind == LayerKind::kDense) {
    return Shape::Flat(first.front().in);
  }
  return Shape{};
}

absl::Status ModelSpec::Validate() const {
  if (layers.empty()) return Invalid("model has no layers");
  // The first trained layer must have parameters (the features get no
  // gradient); only layers without parameters can be told by their spec alone.
  if (layers.front().kind == LayerKind::kRelu || layers.front().kind == LayerKind::kFlatten) {
    return Invalid("model must start with a dense or conv2d layer (a layer with parameters), not " +
                   LayerKindName(layers.front().kind));
  }
  const Shape input = InputShape();
  if (input.empty()) {
    return Invalid("model needs an input_shape: its first layer is not dense");
  }
  for (int d : input_shape.dims) {
    if (d <= 0) return Invalid(absl::StrCat("input_shape ", input.ToString(), " must be positive"));
  }
  if (!input.is_flat() && !input.is_image()) {
    return Invalid(absl::StrCat("input_shape ", input.ToString(), " must be [D] or [C, H, W]"));
  }
  Shape features = input;
  if (!frozen.empty()) {
    absl::StatusOr<Network> net = Network::Build(frozen.layers, input);
    if (!net.ok()) return Invalid(absl::StrCat("frozen ", net.status().message()));
    if (frozen.parameters.size() != net->num_params()) {
      return Invalid(absl::StrCat("frozen layers have ", net->num_params(),
                                  " parameters, got ", frozen.parameters.size()));
    }
    if (!frozen.parameters.allFinite()) return Invalid("frozen parameters contain NaN or Inf");
    features = net->output_shape();
  }
  if (layers.back().kind != LayerKind::kDense) {
    return Invalid("model must end with a dense layer (the logits)");
  }
  for (size_t i = 1; i < layers.size(); ++i) {
    if (layers[i].kind == LayerKind::kRelu && layers[i - 1].kind == LayerKind::kRelu) {
      return Invalid(absl::StrCat("layer ", i, ": two relu layers in a row"));
    }
  }
  absl::StatusOr<Network> net = Network::Build(layers, features);
  if (!net.ok()) return net.status();
  return absl::OkStatus();
}

int ModelSpec::InputDim() const { return static_cast<int>(InputShape().size()); }

Shape ModelSpec::FeatureShape() const {
  if (frozen.empty()) return InputShape();
  absl::StatusOr<Network> net = Network::Build(frozen.layers, InputShape());
  return net.ok() ? net->output_shape() : Shape{};
}

int ModelSpec::OutputDim() const {
  for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
    if (it->kind == LayerKind::kDense) return it->out;
  }
  return 0;
}

Network ModelSpec::TrainedNetwork() const {
  absl::StatusOr<Network> net = Network::Build(layers, FeatureShape());
  return net.ok() ? *std::move(net) : Network();
}

Network ModelSpec::FrozenNetwork() const {
  absl::StatusOr<Network> net = Network::Build(frozen.layers, InputShape());
  return net.ok() ? *std::move(net) : Network();
}

std::vector<ParamSlice> ModelSpec::Layout() const {
  std::vector<ParamSlice> out;
  const Network net = TrainedNetwork();
  for (size_t i = 0; i < net.size(); ++i) {
    const Layer& l = net.layer(i);
    if (!l.has_params()) continue;
    ParamSlice s;
    s.layer = static_cast<int>(i);
    s.in = l.weight_cols();
    s.out = l.weight_rows();
    s.kind = l.spec().kind;
    s.weight_offset = net.param_offset(i);
    s.bias_offset = s.weight_offset + static_cast<Index>(s.in) * s.out;
    out.push_back(s);
  }
  return out;
}

Index ModelSpec::NumParameters() const { return TrainedNetwork().num_params(); }

std::string ModelSpec::Describe() const {
  bool dense_only = frozen.empty() && (input_shape.empty() || input_shape.is_flat());
  for (const LayerSpec& l : layers) {
    dense_only = dense_only && (l.kind == LayerKind::kDense || l.kind == LayerKind::kRelu);
  }
  if (dense_only) {
    std::vector<int> widths;
    bool relu = false;
    for (const LayerSpec& l : layers) {
      if (l.kind == LayerKind::kRelu) {
        relu = true;
        continue;
      }
      if (widths.empty()) widths.push_back(l.in);
      widths.push_back(l.out);
    }
    return absl::StrCat(absl::StrJoin(widths, "-"), relu ? " (ReLU)" : " (linear)");
  }
  std::string s = InputShape().ToString();
  if (!frozen.empty()) absl::StrAppend(&s, " frozen(", DescribeLayers(frozen.layers), ")");
  absl::StrAppend(&s, " ", DescribeLayers(layers));
  return s;
}

ModelSpec ModelSpec::Mlp(const std::vector<int>& widths) {
  ModelSpec spec;
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    if (i > 0) spec.layers.push_back(LayerSpec::Relu());
    spec.layers.push_back(LayerSpec::Dense(widths[i], widths[i + 1]));
  }
  return spec;
}

Vector InitParameters(const ModelSpec& spec, uint64_t seed) {
  Rng rng(seed);
  const Network net = spec.TrainedNetwork();
  Vector theta(net.num_params());
  for (size_t i = 0; i < net.size(); ++i) {
    net.layer(i).Initialize(&rng, theta.data() + net.param_offset(i));
  }
  return theta;
}

bool ParameterBox::Contains(const Vector& theta, double tol) const {
  return theta.size() == size() && (theta.array() >= lower.array() - tol).all() &&
         (theta.array() <= upper.array() + tol).all();
}

}  // namespace agt
