#include "core/model/model.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/rng.h"

namespace agt {

absl::Status ModelSpec::Validate() const {
  if (layers.empty()) return absl::InvalidArgumentError("model has no layers");
  if (layers.front().kind != LayerKind::kDense) {
    return absl::InvalidArgumentError("model must start with a dense layer");
  }
  if (layers.back().kind != LayerKind::kDense) {
    return absl::InvalidArgumentError("model must end with a dense layer (the logits)");
  }
  int prev_out = -1;
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerSpec& l = layers[i];
    if (l.kind == LayerKind::kRelu) {
      if (layers[i - 1].kind == LayerKind::kRelu) {
        return absl::InvalidArgumentError(absl::StrCat("layer ", i, ": two relu layers in a row"));
      }
      continue;
    }
    if (l.in <= 0 || l.out <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "layer ", i, ": dense widths must be positive, got in=", l.in, " out=", l.out));
    }
    if (prev_out >= 0 && l.in != prev_out) {
      return absl::InvalidArgumentError(absl::StrCat(
          "layer ", i, ": in=", l.in, " does not match the previous dense layer's out=", prev_out));
    }
    prev_out = l.out;
  }
  return absl::OkStatus();
}

int ModelSpec::InputDim() const { return layers.empty() ? 0 : layers.front().in; }

int ModelSpec::OutputDim() const {
  for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
    if (it->kind == LayerKind::kDense) return it->out;
  }
  return 0;
}

std::vector<DenseSlice> ModelSpec::Layout() const {
  std::vector<DenseSlice> out;
  Index offset = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (layers[i].kind != LayerKind::kDense) continue;
    DenseSlice s;
    s.layer = static_cast<int>(i);
    s.in = layers[i].in;
    s.out = layers[i].out;
    s.weight_offset = offset;
    s.bias_offset = offset + static_cast<Index>(s.in) * s.out;
    offset += s.size();
    out.push_back(s);
  }
  return out;
}

Index ModelSpec::NumParameters() const {
  Index total = 0;
  for (const DenseSlice& s : Layout()) total += s.size();
  return total;
}

std::string ModelSpec::Describe() const {
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
  Vector theta(spec.NumParameters());
  for (const DenseSlice& s : spec.Layout()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(s.in));
    for (Index j = 0; j < s.size(); ++j) theta[s.weight_offset + j] = rng.Uniform(-bound, bound);
  }
  return theta;
}

bool ParameterBox::Contains(const Vector& theta, double tol) const {
  return theta.size() == size() && (theta.array() >= lower.array() - tol).all() &&
         (theta.array() <= upper.array() + tol).all();
}

}  // namespace agt
