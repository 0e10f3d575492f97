#include "core/layers/layer.h"

#include <cassert>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/backend/simd/isa.h"

namespace agt {

Index Shape::size() const {
  if (dims.empty()) return 0;
  Index n = 1;
  for (int d : dims) n *= d;
  return n;
}

std::string Shape::ToString() const { return absl::StrCat("[", absl::StrJoin(dims, ", "), "]"); }

bool LayerSpec::operator==(const LayerSpec& o) const {
  const Conv2dParams &a = conv, &b = o.conv;
  return kind == o.kind && in == o.in && out == o.out && a.in_channels == b.in_channels &&
         a.out_channels == b.out_channels && a.kernel_h == b.kernel_h &&
         a.kernel_w == b.kernel_w && a.stride_h == b.stride_h && a.stride_w == b.stride_w &&
         a.pad_h == b.pad_h && a.pad_w == b.pad_w;
}

void Layer::Initialize(Rng* rng, double* params) const {
  if (!has_params()) return;
  const double bound = 1.0 / std::sqrt(static_cast<double>(weight_cols()));
  for (Index j = 0; j < num_params(); ++j) params[j] = rng->Uniform(-bound, bound);
}

void GradientFactors::AccumulateNominalWeightRows(int o0, int o1, Index r0, Index rows, Index width,
                                                  bool clip, double gamma, double* sum,
                                                  Matrix* scratch) const {
  scratch->resize(rows, width);
  ExpandWeightRows(o0, o1, r0, rows, scratch->data(), nullptr, width);
  const simd::Kernels& k = simd::ActiveKernels();
  if (clip) k.clamp(scratch->data(), scratch->size(), gamma);
  for (Index r = 0; r < rows; ++r) k.add_to(scratch->data() + r * width, width, sum);
}

std::unique_ptr<GradientFactors> Layer::NominalFactors(Matrix, Matrix) const {
  assert(false && "NominalFactors on a layer without parameters");
  return nullptr;
}

std::unique_ptr<GradientFactors> BoxedLayer::Factors(IntervalMatrix, IntervalMatrix) const {
  assert(false && "Factors on a layer without parameters");
  return nullptr;
}

}  // namespace agt
