// The dense (fully connected) operator: y = W x + b, W out x in.
//
// Interval forward: [x] [W]^T + [b] by the chosen interval product (eq. 21).
// Backward: [dy] [W]. Per-sample parameter gradients in factored form: the
// bias gradient of sample r is dy_r, the weight gradient the outer product
// dy_r x_r^T, expanded one weight row at a time so that the hot loop of a
// certified step stays in cache (DenseFactors).
#ifndef AGT_CORE_LAYERS_DENSE_H_
#define AGT_CORE_LAYERS_DENSE_H_

#include <memory>

#include "core/layers/layer.h"

namespace agt {

// The factors of one fragment's per-sample gradients for one dense layer:
// the loss gradient w.r.t. the layer's output (delta, R x out) and the
// layer's input (z, R x in), as intervals (lower == upper for nominal
// factors, which may leave d_upper empty). Fill d_lower/d_upper/z_lower/
// z_upper, set nominal and method, then Prepare(): it keeps what the
// expansion rule reads (nominal: z_mid and d_mid; Rump: z_mid, z_rad,
// z_mid_abs, computed in the endpoints' storage; exact and Nguyen: z_lower,
// z_upper), and d_* in every form.
struct DenseFactors : GradientFactors {
  Matrix d_lower, d_upper;  // R x out
  Matrix z_lower, z_upper;  // R x in
  // Derived by Prepare(): midpoints and radii.
  Matrix d_mid, d_rad, z_mid, z_rad, z_mid_abs;
  bool z_point = false;
  bool nominal = false;  // point factors: ExpandWeightRows writes the gradient
  MatMulMethod method = MatMulMethod::kRump;
  RoundingMode rounding = RoundingMode::kNearest;
  void Prepare();
  // The layer's input width (in).
  Index width() const { return z_mid.size() > 0 ? z_mid.cols() : z_lower.cols(); }

  void ExpandWeightRows(int o0, int o1, Index r0, Index rows, double* lower, double* upper,
                        Index ld) const override;
  void ExpandBias(Index r0, Index rows, double* lower, double* upper, Index ld) const override;
  // Interval factors under Rump's rule: d_mid/d_rad(r, o) and row r of
  // z_mid, z_mid_abs and z_rad (null for point inputs).
  bool RumpWeightRow(int o, Index r, simd::RumpRow* out) const override;
  // Nominal factors, or interval factors under Rump's rule: the matrices.
  bool DenseRows(Index r0, Index rows, DenseFactorRows* out) const override;
  // Nominal factors fold delta_ro * z_r into the sum directly (no scratch).
  void AccumulateNominalWeightRows(int o0, int o1, Index r0, Index rows, Index width, bool clip,
                                   double gamma, double* sum, Matrix* scratch) const override;
};

// Writes the per-sample bounds of weight row o (parameters W(o, 0..in-1)) for
// rows [row_begin, row_begin + rows) of `f` into lower/upper (rows x in, row
// stride ld), using the outer product rule of `method`.
void ExpandWeightRow(const DenseFactors& f, int o, Index row_begin, Index rows, MatMulMethod method,
                     double* lower, double* upper, Index ld);
// The nominal version: grads = delta_ro * z_r.
void ExpandNominalWeightRow(const DenseFactors& f, int o, Index row_begin, Index rows,
                            double* grads, Index ld);

class DenseLayer : public Layer {
 public:
  DenseLayer(const LayerSpec& spec, const Shape& input);
  int weight_rows() const override { return spec().out; }
  int weight_cols() const override { return spec().in; }
  Matrix Forward(const double* params, const Matrix& x) const override;
  Matrix Backward(const double* params, const Matrix& x, const Matrix& dy) const override;
  std::unique_ptr<GradientFactors> NominalFactors(Matrix x, Matrix dy) const override;
  std::unique_ptr<BoxedLayer> Bind(const double* lower, const double* upper,
                                   const IntervalOptions& options) const override;
};

}  // namespace agt

#endif  // AGT_CORE_LAYERS_DENSE_H_
