// Rump's midpoint-radius interval product (S. M. Rump, "Fast and parallel
// interval arithmetic", BIT 1999; goldens README, semantics 1): the one place
// in the core where the rule is written. With mA, rA the midpoint and radius
// of [A] (and the same for [B]),
//   [A][B] is enclosed by mA mB +- (|mA| rB + rA (|mB| + rB)),
// which equals the reference's mA mB +- (|mA| rB + rA |mB| + rA rB) in exact
// arithmetic and costs one GEMM less. It is exact when one factor is a point
// (its radius terms vanish and are skipped) and at most 1.5x wider than the
// exact interval product otherwise.
//
// Soundness: every A B with A in [A], B in [B] lies in the returned interval,
// up to rounding (RoundingMode::kNearest: a few ulps).
#ifndef AGT_CORE_INTERVAL_RUMP_H_
#define AGT_CORE_INTERVAL_RUMP_H_

#include <cmath>

#include "core/backend/simd/isa.h"
#include "core/common/types.h"
#include "core/interval/interval.h"

namespace agt {

using ConstMatrixMap = Eigen::Map<const Matrix>;
using MatrixMap = Eigen::Map<Matrix>;

// Non-owning midpoint-radius view of an interval matrix (row-major,
// contiguous): mid, |mid|, rad and mag = |mid| + rad. When point is true the
// radius is exactly zero and rad/mag may not be read; a view of a MidRad made
// without mag must not be the right factor of a non-point left factor.
struct MidRadView {
  ConstMatrixMap mid, mid_abs, rad, mag;
  bool point;
  Index rows() const { return mid.rows(); }
  Index cols() const { return mid.cols(); }
};

// An interval matrix prepared for Rump products.
struct MidRad {
  Matrix mid, mid_abs, rad, mag;
  bool point = true;
  // True when every radius is within a relative 1e-9 of the largest, as for
  // an l-infinity ball [x - eps, x + eps] after rounding; uniform_radius is
  // then the largest radius (an over-approximation of each, so sound).
  bool uniform = false;
  double uniform_radius = 0.0;

  MidRad() = default;
  // with_mag: also compute mag, which only a right-hand factor of
  // RumpMatMul with a non-point left factor reads.
  MidRad(const Matrix& lower, const Matrix& upper, bool with_mag = true);
  explicit MidRad(const IntervalMatrix& m, bool with_mag = true)
      : MidRad(m.lower, m.upper, with_mag) {}
  // The same, computed in the endpoints' storage (no new matrices but |mid|
  // and, with with_mag, mag).
  static MidRad FromEndpoints(Matrix&& lower, Matrix&& upper, bool with_mag = true);
  // A point matrix (zero radius).
  static MidRad Point(const Matrix& m);
  Index rows() const { return mid.rows(); }
  Index cols() const { return mid.cols(); }
  MidRadView View() const { return Block(0, rows(), cols()); }
  // The view_rows x view_cols matrix whose row-major elements start at flat
  // element `offset` of the (row-major, contiguous) storage.
  MidRadView Block(Index offset, Index view_rows, Index view_cols) const;
};

// c = a * b (accumulate: c += a * b) for row-major contiguous a (m x k), b
// (k x n) and c (m x n), by the kernels' fixed-order product (simd gemm):
// each element one running sum over k in order, so the same doubles under
// every kernel variant, and a row's result does not depend on the other
// rows of its batch. Rump's products and the nominal dense and conv layers'
// go through it; the exact product (its own k-ordered loop, which at point
// factors gives these same sums) and Nguyen's (Eigen GEMMs, compiled once
// for the baseline, so also the same under every variant) do not.
void FixedOrderProduct(const double* a, const double* b, Index m, Index k, Index n, double* c,
                       bool accumulate);
inline void FixedOrderProduct(const ConstMatrixMap& a, const ConstMatrixMap& b, double* c,
                              bool accumulate) {
  FixedOrderProduct(a.data(), b.data(), a.rows(), a.cols(), b.cols(), c, accumulate);
}
// a * b into a new matrix.
Matrix FixedOrderProduct(const Matrix& a, const Matrix& b);

// out = Rump enclosure of a * b (a: m x k, b: k x n), written to lower/upper
// (m x n each, row-major, contiguous); scratch holds the radius (reused
// across calls, no allocation once large enough). `rounding` is the
// core-wide mode.
void RumpMatMul(const MidRadView& a, const MidRadView& b, double* lower, double* upper,
                Matrix* scratch, RoundingMode rounding);
// The same on whole prepared matrices; uses a's uniform radius when it has one
// (rA (|mB| + rB) <= c 1 (|mB| + rB): a row vector instead of a GEMM).
IntervalMatrix RumpMatMul(const MidRad& a, const MidRad& b, RoundingMode rounding);

// The same enclosure as RumpMatMul(MidRad(a_lower, a_upper, false), b),
// then bias_lower / bias_upper (b.cols() values each, or null: none) added to
// every row's lower / upper bound, bit for bit; but a's midpoints and radii
// are made a block of rows at a time, in cache, and never stored whole, and
// the bounds are written once (a layer's pass over a batch, where the whole
// matrices cost more in memory traffic than their arithmetic). a's point and
// uniform-radius cases are decided on the whole matrix, as MidRad does.
IntervalMatrix RumpMatMulRows(const Matrix& a_lower, const Matrix& a_upper, const MidRad& b,
                              const double* bias_lower, const double* bias_upper);

// The rule for a 1 x 1 times 1 x n product, the per-sample outer product of
// the factored gradients: [m +- r] * [mz +- rz] for n values, where amz =
// |mz| and rz may be null (a point row). The hot loop of a certified step:
// it runs in the vector kernel chosen for this CPU (backend/simd/isa.h),
// the same doubles bit for bit on every variant.
inline void RumpScaleRow(double m, double r, const double* mz, const double* amz,
                         const double* rz, Index n, double* lower, double* upper,
                         RoundingMode /*rounding: kNearest is the only mode*/ =
                             RoundingMode::kNearest) {
  simd::ActiveKernels().rump_scale_row(m, r, mz, amz, rz, n, lower, upper);
}

}  // namespace agt

#endif  // AGT_CORE_INTERVAL_RUMP_H_
