// The 2-D convolution operator: a cross-correlation as in torch (zero
// padding, dilation 1, bias), weight O x C x kh x kw, input [C, H, W], output
// [O, Ho, Wo] with Ho = (H + 2 ph - kh) / sh + 1 (and the same for Wo).
//
// Every pass is the dense rule on the patch matrix (im2col): per sample the
// P = Ho Wo patches of C kh kw inputs (zeros where the window leaves the
// padded image). The patch extraction is exact (it copies inputs and
// zeros), so the interval forward bound is the chosen interval product of the
// patches with [W]^T (goldens README, "Convolutions"), the backward bound the
// product of [delta] with [W] scattered back onto the input (the transposed
// conv), and the per-sample weight gradient of sample r is the product of its
// delta (O x P) with its patches (P x C kh kw): the factored form that keeps
// the hot loop a small GEMM per sample. The bias gradient sums delta over the
// P positions. The product is IntervalOptions::conv_product (Rump by
// default, as in the reference).
#ifndef AGT_CORE_LAYERS_CONV2D_H_
#define AGT_CORE_LAYERS_CONV2D_H_

#include <memory>
#include <vector>

#include "core/layers/layer.h"

namespace agt {

class Conv2dLayer : public Layer {
 public:
  // Preconditions (checked by the registry): input is [C, H, W] with C ==
  // in_channels and the kernel fits the padded image.
  Conv2dLayer(const LayerSpec& spec, const Shape& input);
  int weight_rows() const override { return spec().conv.out_channels; }
  int weight_cols() const override { return patch_size_; }
  Matrix Forward(const double* params, const Matrix& x) const override;
  Matrix Backward(const double* params, const Matrix& x, const Matrix& dy) const override;
  std::unique_ptr<GradientFactors> NominalFactors(Matrix x, Matrix dy) const override;
  std::unique_ptr<BoxedLayer> Bind(const double* lower, const double* upper,
                                   const IntervalOptions& options) const override;

  int positions() const { return positions_; }
  // (N P) x (C kh kw) patch matrix of x (N x C H W); row n P + p is the
  // window of output position p of sample n.
  Matrix Im2Col(const Matrix& x) const;
  // The adjoint: sums the (N P) x (C kh kw) patch gradients back onto the
  // N x C H W inputs.
  Matrix Col2Im(const Matrix& patches, Index n) const;
  // N x (O P) (channel-major output) <-> (N P) x O (one row per position).
  Matrix PositionsToChannels(const Matrix& by_position, Index n) const;
  Matrix ChannelsToPositions(const Matrix& by_channel) const;

 private:
  static Shape OutputShape(const LayerSpec& spec, const Shape& input);
  int positions_ = 0;   // P = Ho Wo
  int patch_size_ = 0;  // C kh kw
  // For position p and patch element k, the input index (c H + i) W + j, or
  // -1 for padding; gather_[p * patch_size_ + k].
  std::vector<int> gather_;
};

}  // namespace agt

#endif  // AGT_CORE_LAYERS_CONV2D_H_
