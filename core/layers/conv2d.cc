#include "core/layers/conv2d.h"

#include <algorithm>

#include "core/interval/rump.h"
#include "core/layers/weight_box.h"

namespace agt {
namespace {

using RowVector = Eigen::Matrix<double, 1, Eigen::Dynamic>;

// Factored per-sample gradients of a conv layer: delta (R x O P) and the
// patches ((R P) x K), K = C kh kw.
class ConvFactors : public GradientFactors {
 public:
  // Interval factors (moved in).
  ConvFactors(IntervalMatrix patches, IntervalMatrix delta, int positions,
              const IntervalOptions& options)
      : positions_(positions), nominal_(false), options_(options) {
    d_sum_lower_ = SumPositions(delta.lower);
    d_sum_upper_ = SumPositions(delta.upper);
    if (options.conv_product == MatMulMethod::kRump) {
      d_ = MidRad::FromEndpoints(std::move(delta.lower), std::move(delta.upper),
                                 /*with_mag=*/false);
      z_ = MidRad::FromEndpoints(std::move(patches.lower), std::move(patches.upper));
    } else {
      d_lower_ = std::move(delta.lower);
      d_upper_ = std::move(delta.upper);
      z_lower_ = std::move(patches.lower);
      z_upper_ = std::move(patches.upper);
    }
  }
  // Point factors: only the midpoints are kept.
  ConvFactors(Matrix patches, Matrix delta, int positions)
      : positions_(positions), nominal_(true) {
    d_sum_lower_ = SumPositions(delta);
    d_.mid = std::move(delta);
    z_.mid = std::move(patches);
  }

  void ExpandWeightRows(int o0, int o1, Index r0, Index rows, double* lower, double* upper,
                        Index ld) const override {
    const Index p = positions_;
    const Index channels = d_sum_lower_.cols();
    const Index k = nominal_ || options_.conv_product == MatMulMethod::kRump ? z_.mid.cols()
                                                                              : z_lower_.cols();
    const Index width = static_cast<Index>(o1 - o0);
    thread_local Matrix scratch;
    for (Index i = 0; i < rows; ++i) {
      const Index r = r0 + i;
      const Index d_off = r * channels * p + o0 * p;
      if (nominal_) {
        // The product RumpMatMul takes at point factors (the budget-0
        // bounds are exactly these).
        FixedOrderProduct(ConstMatrixMap(d_.mid.data() + d_off, width, p),
                          ConstMatrixMap(z_.mid.data() + r * p * k, p, k), lower + i * ld,
                          /*accumulate=*/false);
        continue;
      }
      switch (options_.conv_product) {
        case MatMulMethod::kRump:
          RumpMatMul(d_.Block(d_off, width, p), z_.Block(r * p * k, p, k), lower + i * ld,
                     upper + i * ld, &scratch, options_.rounding);
          break;
        case MatMulMethod::kExact:
        case MatMulMethod::kNguyen: {
          const IntervalMatrix a(ConstMatrixMap(d_lower_.data() + d_off, width, p),
                                 ConstMatrixMap(d_upper_.data() + d_off, width, p));
          const IntervalMatrix b(ConstMatrixMap(z_lower_.data() + r * p * k, p, k),
                                 ConstMatrixMap(z_upper_.data() + r * p * k, p, k));
          const IntervalMatrix g = MatMul(a, b, options_.conv_product, options_.rounding);
          MatrixMap(lower + i * ld, width, k) = g.lower;
          MatrixMap(upper + i * ld, width, k) = g.upper;
          break;
        }
      }
    }
  }

  void ExpandBias(Index r0, Index rows, double* lower, double* upper, Index ld) const override {
    const Index channels = d_sum_lower_.cols();
    for (Index i = 0; i < rows; ++i) {
      Eigen::Map<RowVector>(lower + i * ld, channels) = d_sum_lower_.row(r0 + i);
      if (!nominal_) Eigen::Map<RowVector>(upper + i * ld, channels) = d_sum_upper_.row(r0 + i);
    }
  }

 private:
  // Per sample and channel, the sum over positions (the bias gradient; an
  // interval sum is exact, so lower and upper sum separately).
  Matrix SumPositions(const Matrix& delta) const {
    const Index channels = delta.cols() / positions_;
    Matrix out(delta.rows(), channels);
    for (Index r = 0; r < delta.rows(); ++r) {
      for (Index o = 0; o < channels; ++o) {
        out(r, o) = delta.row(r).segment(o * positions_, positions_).sum();
      }
    }
    return out;
  }

  int positions_;
  bool nominal_;
  IntervalOptions options_;
  MidRad d_, z_;
  Matrix d_lower_, d_upper_, z_lower_, z_upper_;
  Matrix d_sum_lower_, d_sum_upper_;
};

class BoxedConv2d : public BoxedLayer {
 public:
  BoxedConv2d(const Conv2dLayer& layer, const double* lower, const double* upper,
              const IntervalOptions& options)
      : layer_(layer),
        options_(options),
        w_(lower, upper, layer.weight_rows(), layer.weight_cols(), options.conv_product,
           options.rounding) {}

  // The patches times [W]^T plus [b], one row per position.
  IntervalMatrix Forward(const IntervalMatrix& x) const override {
    const IntervalMatrix y =
        w_.Apply(IntervalMatrix(layer_.Im2Col(x.lower), layer_.Im2Col(x.upper)));
    return IntervalMatrix(layer_.PositionsToChannels(y.lower, x.rows()),
                          layer_.PositionsToChannels(y.upper, x.rows()));
  }

  // The transposed conv: [delta] [W] per position, scattered onto the input.
  IntervalMatrix Backward(const IntervalMatrix& x, const IntervalMatrix& dy) const override {
    const IntervalMatrix dp = w_.Backward(
        IntervalMatrix(layer_.ChannelsToPositions(dy.lower), layer_.ChannelsToPositions(dy.upper)));
    return IntervalMatrix(layer_.Col2Im(dp.lower, x.rows()), layer_.Col2Im(dp.upper, x.rows()));
  }

  std::unique_ptr<GradientFactors> Factors(IntervalMatrix x, IntervalMatrix dy) const override {
    IntervalMatrix patches(layer_.Im2Col(x.lower), layer_.Im2Col(x.upper));
    x = IntervalMatrix();  // no longer needed
    return std::make_unique<ConvFactors>(std::move(patches), std::move(dy), layer_.positions(),
                                         options_);
  }

 private:
  const Conv2dLayer& layer_;
  IntervalOptions options_;
  WeightBox w_;
};

}  // namespace

Shape Conv2dLayer::OutputShape(const LayerSpec& spec, const Shape& input) {
  const Conv2dParams& c = spec.conv;
  const int h = input.dims[1], w = input.dims[2];
  return Shape::Image(c.out_channels, (h + 2 * c.pad_h - c.kernel_h) / c.stride_h + 1,
                      (w + 2 * c.pad_w - c.kernel_w) / c.stride_w + 1);
}

Conv2dLayer::Conv2dLayer(const LayerSpec& spec, const Shape& input)
    : Layer(spec, input, OutputShape(spec, input)) {
  const Conv2dParams& c = spec.conv;
  const int h = input.dims[1], w = input.dims[2];
  const int ho = output_shape().dims[1], wo = output_shape().dims[2];
  positions_ = ho * wo;
  patch_size_ = c.in_channels * c.kernel_h * c.kernel_w;
  gather_.assign(static_cast<size_t>(positions_) * patch_size_, -1);
  for (int oi = 0; oi < ho; ++oi) {
    for (int oj = 0; oj < wo; ++oj) {
      const int p = oi * wo + oj;
      for (int ch = 0; ch < c.in_channels; ++ch) {
        for (int a = 0; a < c.kernel_h; ++a) {
          for (int b = 0; b < c.kernel_w; ++b) {
            const int i = oi * c.stride_h - c.pad_h + a;
            const int j = oj * c.stride_w - c.pad_w + b;
            const int k = (ch * c.kernel_h + a) * c.kernel_w + b;
            if (i >= 0 && i < h && j >= 0 && j < w) {
              gather_[static_cast<size_t>(p) * patch_size_ + k] = (ch * h + i) * w + j;
            }
          }
        }
      }
    }
  }
}

Matrix Conv2dLayer::Im2Col(const Matrix& x) const {
  const Index n = x.rows();
  Matrix out(n * positions_, patch_size_);
  const Index pk = static_cast<Index>(positions_) * patch_size_;
  for (Index r = 0; r < n; ++r) {
    const double* src = x.row(r).data();
    double* dst = out.data() + r * pk;
    for (Index e = 0; e < pk; ++e) {
      const int g = gather_[e];
      dst[e] = g >= 0 ? src[g] : 0.0;
    }
  }
  return out;
}

Matrix Conv2dLayer::Col2Im(const Matrix& patches, Index n) const {
  Matrix out = Matrix::Zero(n, input_shape().size());
  const Index pk = static_cast<Index>(positions_) * patch_size_;
  for (Index r = 0; r < n; ++r) {
    const double* src = patches.data() + r * pk;
    double* dst = out.row(r).data();
    for (Index e = 0; e < pk; ++e) {
      const int g = gather_[e];
      if (g >= 0) dst[g] += src[e];
    }
  }
  return out;
}

Matrix Conv2dLayer::PositionsToChannels(const Matrix& by_position, Index n) const {
  const Index o = by_position.cols();
  Matrix out(n, o * positions_);
  for (Index r = 0; r < n; ++r) {
    MatrixMap(out.row(r).data(), o, positions_) =
        by_position.middleRows(r * positions_, positions_).transpose();
  }
  return out;
}

Matrix Conv2dLayer::ChannelsToPositions(const Matrix& by_channel) const {
  const Index n = by_channel.rows();
  const Index o = by_channel.cols() / positions_;
  Matrix out(n * positions_, o);
  for (Index r = 0; r < n; ++r) {
    out.middleRows(r * positions_, positions_) =
        ConstMatrixMap(by_channel.row(r).data(), o, positions_).transpose();
  }
  return out;
}

Matrix Conv2dLayer::Forward(const double* params, const Matrix& x) const {
  // The fixed-order product, as the boxed layer's (so that budget-0 bounds
  // are exactly the nominal values); it reads W^T row-major.
  const Matrix wt = ConstMatrixMap(params, weight_rows(), weight_cols()).transpose();
  Matrix y = FixedOrderProduct(Im2Col(x), wt);
  y.rowwise() += Eigen::Map<const RowVector>(params + wt.size(), weight_rows());
  return PositionsToChannels(y, x.rows());
}

Matrix Conv2dLayer::Backward(const double* params, const Matrix& x, const Matrix& dy) const {
  const Matrix dp = ChannelsToPositions(dy);
  Matrix dx(dp.rows(), weight_cols());
  FixedOrderProduct(dp.data(), params, dp.rows(), weight_rows(), weight_cols(), dx.data(),
                    /*accumulate=*/false);
  return Col2Im(dx, x.rows());
}

std::unique_ptr<GradientFactors> Conv2dLayer::NominalFactors(Matrix x, Matrix dy) const {
  Matrix patches = Im2Col(x);
  x = Matrix();
  return std::make_unique<ConvFactors>(std::move(patches), std::move(dy), positions_);
}

std::unique_ptr<BoxedLayer> Conv2dLayer::Bind(const double* lower, const double* upper,
                                              const IntervalOptions& options) const {
  return std::make_unique<BoxedConv2d>(*this, lower, upper, options);
}

}  // namespace agt
