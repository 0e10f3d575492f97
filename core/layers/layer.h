// The operator interface: one unit per layer type (ARCHITECTURE.md section 3,
// "Operators"). An operator knows its shapes and parameter layout, its nominal
// forward and backward pass, and, bound to a parameter box, its interval
// forward bound (IBP, eq. 21) and interval backward bound (eq. 25-26), with the
// per-sample parameter-gradient bounds in factored form.
//
// Parameter layout of a layer with parameters: a weight of weight_rows() x
// weight_cols() values, row-major, then weight_rows() biases. Dense: W is
// out x in. Conv2d: W is O x (C kh kw), i.e. torch's O x C x kh x kw.
//
// Soundness claim of every BoxedLayer: for every parameter vector in the box
// it was bound to, every input in the input interval and every output
// gradient in the given interval, the outputs / input gradients / parameter
// gradients lie in the returned intervals, up to the rounding of the bound
// computation (interval/interval.h, RoundingMode).
//
// Thread-safety: Layer, BoxedLayer and GradientFactors are immutable after
// construction; their const methods may run concurrently.
#ifndef AGT_CORE_LAYERS_LAYER_H_
#define AGT_CORE_LAYERS_LAYER_H_

#include <memory>

#include "core/backend/simd/kernels.h"
#include "core/common/rng.h"
#include "core/common/types.h"
#include "core/interval/interval.h"
#include "core/layers/layer_spec.h"

namespace agt {

// The factor matrices of a run of rows of a dense layer's per-sample
// gradients (row-major, contiguous): the gradient of W(o, i) for sample r is
// [m(r, o) +- rad(r, o)] * [mz(r, i) +- rz(r, i)] under Rump's rule, or
// m(r, o) * mz(r, i) for nominal factors.
struct DenseFactorRows {
  Index rows = 0;
  int out = 0, in = 0;
  const double* m = nullptr;    // output gradients' midpoints, rows x out
  const double* rad = nullptr;  // their radii; null for nominal factors
  const double* mz = nullptr;   // inputs' midpoints, rows x in
  const double* amz = nullptr;  // |mz|; null for nominal factors
  const double* rz = nullptr;   // inputs' radii; null for point inputs
  // The bias gradients' bounds as ExpandBias writes them, rows x out:
  // d_lower / d_upper for interval factors; for nominal factors d_lower is
  // m and d_upper null.
  const double* d_lower = nullptr;
  const double* d_upper = nullptr;
};

// Factored per-sample gradients of one layer's parameters for a fragment of
// a batch (rows = samples): enough to produce any block of the per-sample
// gradient bounds on demand, so that the N x P matrix is never materialised.
class GradientFactors {
 public:
  virtual ~GradientFactors() = default;
  // Writes the bounds of the gradients of weight rows [o0, o1) for samples
  // [r0, r0 + rows): sample i's (o1 - o0) * weight_cols() values, in the flat
  // layout, at lower + i * ld (and upper + i * ld). Point factors (nominal)
  // write the exact gradient into `lower` and leave `upper` alone (may be
  // null).
  virtual void ExpandWeightRows(int o0, int o1, Index r0, Index rows, double* lower, double* upper,
                                Index ld) const = 0;
  // The same for the weight_rows() biases.
  virtual void ExpandBias(Index r0, Index rows, double* lower, double* upper, Index ld) const = 0;
  // Point factors (nominal) only: sum[j] += the gradients of weight rows
  // [o0, o1) (width = (o1 - o0) * weight_cols() values) of samples
  // [r0, r0 + rows), sample after sample in row order, each value first
  // clamped to [-gamma, gamma] when clip. The same doubles as expanding,
  // clamping and adding row by row; this default does exactly that in
  // *scratch, layers that can fold without storing override it.
  virtual void AccumulateNominalWeightRows(int o0, int o1, Index r0, Index rows, Index width,
                                           bool clip, double gamma, double* sum,
                                           Matrix* scratch) const;
  // Where the bounds of weight row o for sample r are Rump's product of one
  // output-gradient interval and a row of input intervals (dense interval
  // factors under Rump's rule): those factors, valid while these factors
  // live, and true; ExpandWeightRows gives exactly RumpScaleRow of them.
  // False otherwise (the default): then ExpandWeightRows is the only way.
  virtual bool RumpWeightRow(int /*o*/, Index /*r*/, simd::RumpRow* /*out*/) const { return false; }
  // Nominal dense factors, or interval ones under Rump's rule (where
  // RumpWeightRow answers): the factor matrices of rows [r0, r0 + out->rows),
  // the longest run of at most `rows` rows held contiguously from r0 (at
  // least one), valid while these factors live, and true; ExpandWeightRows
  // gives exactly their products (RumpScaleRow, or scale_row for nominal
  // factors). False otherwise (the default).
  virtual bool DenseRows(Index /*r0*/, Index /*rows*/, DenseFactorRows* /*out*/) const {
    return false;
  }
};

// A layer whose parameters lie in a box, prepared once (midpoints, radii) for
// the interval passes of many fragments.
class BoxedLayer {
 public:
  virtual ~BoxedLayer() = default;
  // Forward IBP: the output interval for inputs in x.
  virtual IntervalMatrix Forward(const IntervalMatrix& x) const = 0;
  // Backward: bounds on dL/d(input) from bounds on dL/d(output), for inputs
  // in x (the forward pass's input interval of this layer).
  virtual IntervalMatrix Backward(const IntervalMatrix& x, const IntervalMatrix& dy) const = 0;
  // The same, overwriting *dy (layers that can update in place avoid a copy).
  virtual void BackwardInPlace(const IntervalMatrix& x, IntervalMatrix* dy) const {
    *dy = Backward(x, *dy);
  }
  // Factored bounds on the per-sample parameter gradients from the input
  // interval and the output-gradient interval (layers with parameters only).
  // Takes both by value: callers move what they no longer need.
  virtual std::unique_ptr<GradientFactors> Factors(IntervalMatrix x, IntervalMatrix dy) const;
};

class Layer {
 public:
  Layer(LayerSpec spec, Shape input, Shape output)
      : spec_(spec), input_(std::move(input)), output_(std::move(output)) {}
  virtual ~Layer() = default;

  const LayerSpec& spec() const { return spec_; }
  const Shape& input_shape() const { return input_; }
  const Shape& output_shape() const { return output_; }
  virtual int weight_rows() const { return 0; }
  virtual int weight_cols() const { return 0; }
  Index num_params() const {
    return static_cast<Index>(weight_rows()) * weight_cols() + weight_rows();
  }
  bool has_params() const { return weight_rows() > 0; }

  // Writes num_params() initial values: U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
  // torch's default range, weights then biases, from `rng`.
  void Initialize(Rng* rng, double* params) const;

  // Nominal passes at point parameters (params: this layer's num_params()).
  virtual Matrix Forward(const double* params, const Matrix& x) const = 0;
  // dL/d(input) from dL/d(output) at input x.
  virtual Matrix Backward(const double* params, const Matrix& x, const Matrix& dy) const = 0;
  // Point factors of the per-sample parameter gradients (layers with
  // parameters only); by value, as Factors.
  virtual std::unique_ptr<GradientFactors> NominalFactors(Matrix x, Matrix dy) const;
  // True when the layer only reshapes (its values are its input's, in the
  // same order, as for flatten): runners pass the matrix through untouched.
  virtual bool reshapes_only() const { return false; }

  // Binds the box [lower, upper] (this layer's num_params() values each;
  // unused for layers without parameters).
  virtual std::unique_ptr<BoxedLayer> Bind(const double* lower, const double* upper,
                                           const IntervalOptions& options) const = 0;

 private:
  LayerSpec spec_;
  Shape input_;
  Shape output_;
};

}  // namespace agt

#endif  // AGT_CORE_LAYERS_LAYER_H_
