#include "core/layers/registry.h"

#include "absl/strings/str_cat.h"
#include "core/layers/conv2d.h"
#include "core/layers/dense.h"
#include "core/layers/flatten.h"
#include "core/layers/relu.h"

namespace agt {
namespace {

absl::Status Invalid(const std::string& msg) { return absl::InvalidArgumentError(msg); }

absl::Status CheckDense(const LayerSpec& s, const Shape& input) {
  if (s.in <= 0 || s.out <= 0) {
    return Invalid(absl::StrCat("dense widths must be positive, got in=", s.in, " out=", s.out));
  }
  if (!input.is_flat()) {
    return Invalid(absl::StrCat("dense expects a flat input, got ", input.ToString(),
                                " (add a flatten layer)"));
  }
  if (input.dims[0] != s.in) {
    return Invalid(absl::StrCat("in=", s.in, " does not match the incoming width (the previous layer's out=",
                                input.dims[0], ")"));
  }
  return absl::OkStatus();
}

absl::Status CheckConv2d(const LayerSpec& s, const Shape& input) {
  const Conv2dParams& c = s.conv;
  if (c.in_channels <= 0 || c.out_channels <= 0 || c.kernel_h <= 0 || c.kernel_w <= 0) {
    return Invalid(absl::StrCat("conv2d channels and kernel_size must be positive, got in_channels=",
                                c.in_channels, " out_channels=", c.out_channels, " kernel_size=[",
                                c.kernel_h, ", ", c.kernel_w, "]"));
  }
  if (c.stride_h <= 0 || c.stride_w <= 0 || c.pad_h < 0 || c.pad_w < 0) {
    return Invalid(absl::StrCat("conv2d stride must be positive and padding >= 0, got stride=[",
                                c.stride_h, ", ", c.stride_w, "] padding=[", c.pad_h, ", ", c.pad_w,
                                "]"));
  }
  if (!input.is_image()) {
    return Invalid(absl::StrCat("conv2d expects a [C, H, W] input, got ", input.ToString()));
  }
  if (input.dims[0] != c.in_channels) {
    return Invalid(absl::StrCat("in_channels=", c.in_channels, " does not match the input's ",
                                input.dims[0], " channels (input ", input.ToString(), ")"));
  }
  if (input.dims[1] + 2 * c.pad_h < c.kernel_h || input.dims[2] + 2 * c.pad_w < c.kernel_w) {
    return Invalid(absl::StrCat("kernel_size [", c.kernel_h, ", ", c.kernel_w,
                                "] does not fit the padded input ", input.ToString()));
  }
  return absl::OkStatus();
}

absl::Status CheckAny(const LayerSpec&, const Shape& input) {
  if (input.empty() || input.size() <= 0) return Invalid("empty input shape");
  return absl::OkStatus();
}

std::string DescribeDense(const LayerSpec& l) { return absl::StrCat("dense ", l.in, "->", l.out); }

std::string DescribeConv2d(const LayerSpec& l) {
  const Conv2dParams& c = l.conv;
  std::string s = absl::StrCat("conv2d ", c.out_channels, "@", c.kernel_h, "x", c.kernel_w);
  if (c.stride_h != 1 || c.stride_w != 1) absl::StrAppend(&s, " stride ", c.stride_h, "x", c.stride_w);
  if (c.pad_h != 0 || c.pad_w != 0) absl::StrAppend(&s, " pad ", c.pad_h, "x", c.pad_w);
  return s;
}

std::string DescribeRelu(const LayerSpec&) { return "relu"; }
std::string DescribeFlatten(const LayerSpec&) { return "flatten"; }

template <typename L>
std::unique_ptr<Layer> Make(const LayerSpec& spec, const Shape& input) {
  return std::make_unique<L>(spec, input);
}

// The registrations: one entry per layer type.
const LayerType kLayerTypes[] = {
    {LayerKind::kDense, "dense", CheckDense, Make<DenseLayer>, DescribeDense},
    {LayerKind::kConv2d, "conv2d", CheckConv2d, Make<Conv2dLayer>, DescribeConv2d},
    {LayerKind::kRelu, "relu", CheckAny, Make<ReluLayer>, DescribeRelu},
    {LayerKind::kFlatten, "flatten", CheckAny, Make<FlattenLayer>, DescribeFlatten},
};

}  // namespace

const LayerType& LayerTypeOf(LayerKind kind) {
  for (const LayerType& t : kLayerTypes) {
    if (t.kind == kind) return t;
  }
  return kLayerTypes[0];
}

const LayerType* FindLayerType(const std::string& name) {
  for (const LayerType& t : kLayerTypes) {
    if (name == t.name) return &t;
  }
  return nullptr;
}

std::string KnownLayerTypes() {
  std::string out;
  for (const LayerType& t : kLayerTypes) absl::StrAppend(&out, out.empty() ? "" : ", ", t.name);
  return out;
}

std::string LayerKindName(LayerKind kind) { return LayerTypeOf(kind).name; }

std::string DescribeLayer(const LayerSpec& spec) { return LayerTypeOf(spec.kind).describe(spec); }

absl::StatusOr<std::unique_ptr<Layer>> MakeLayer(const LayerSpec& spec, const Shape& input) {
  const LayerType& t = LayerTypeOf(spec.kind);
  if (absl::Status s = t.check(spec, input); !s.ok()) return s;
  return t.make(spec, input);
}

absl::StatusOr<Network> Network::Build(const std::vector<LayerSpec>& layers, const Shape& input) {
  Network net;
  net.input_ = input;
  Shape shape = input;
  for (size_t i = 0; i < layers.size(); ++i) {
    absl::StatusOr<std::unique_ptr<Layer>> layer = MakeLayer(layers[i], shape);
    if (!layer.ok()) {
      return Invalid(absl::StrCat("layer ", i, " (", LayerKindName(layers[i].kind),
                                  "): ", layer.status().message()));
    }
    shape = (*layer)->output_shape();
    net.offsets_.push_back(net.num_params_);
    net.num_params_ += (*layer)->num_params();
    net.layers_.push_back(*std::move(layer));
  }
  return net;
}

}  // namespace agt
