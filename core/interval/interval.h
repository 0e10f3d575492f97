// Interval matrices [lower, upper] over Eigen, with sound elementary operations.
//
// Soundness claim: for every operation f below and every point matrices
// A in [A], B in [B], f(A, B) lies in the returned interval, up to the
// floating-point rounding of the bound computation itself (a few ulps; the
// FP-sound mode of ARCHITECTURE.md section 7 will remove that caveat).
// All functions are pure and thread-compatible.
#ifndef AGT_CORE_INTERVAL_INTERVAL_H_
#define AGT_CORE_INTERVAL_INTERVAL_H_

#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "core/common/types.h"

namespace agt {

// How an interval matrix product is enclosed (goldens README, semantics 1).
enum class MatMulMethod {
  // Rump's midpoint-radius product: mA*mB +- (|mA|rB + rA|mB| + rA rB).
  // Exact when one factor is a point, up to 1.5x wider otherwise; four GEMMs.
  kRump,
  // The tightest interval product: per term min/max of the four endpoint
  // products, then summed. Slow (no BLAS) but tightest.
  kExact,
  // Nguyen's split of each factor into a zero-centred and a sign-definite
  // part; tighter than Rump in many cases, a few GEMMs.
  kNguyen,
};

// How the bound computation rounds. Every interval primitive takes it, so
// that a floating-point-sound mode (lower bounds rounded down, upper bounds
// up, ARCHITECTURE.md section 7) plugs in without touching callers.
enum class RoundingMode {
  // Round to nearest (the hardware default): bounds are exact up to a few
  // ulps of rounding in the bound computation itself. Golden-compatible.
  kNearest,
};

// The arithmetic options shared by every interval operation of the core.
struct IntervalOptions {
  MatMulMethod product = MatMulMethod::kRump;
  RoundingMode rounding = RoundingMode::kNearest;
  // The product used by convolutions. The reference bounds every conv with
  // Rump's product whatever `product` says (its propagate_conv2d ignores the
  // setting), so kRump is the golden-compatible default; kExact / kNguyen
  // here give tighter, still sound conv bounds (about 24% narrower gradient
  // bounds on the goldens' conv_passes units).
  MatMulMethod conv_product = MatMulMethod::kRump;
};

// "rump", "exact", "nguyen".
absl::StatusOr<MatMulMethod> ParseMatMulMethod(const std::string& name);
std::string MatMulMethodName(MatMulMethod method);
std::string RoundingModeName(RoundingMode mode);

// An interval matrix. Invariant (checked by IsValid): lower <= upper elementwise.
struct IntervalMatrix {
  Matrix lower;
  Matrix upper;

  IntervalMatrix() = default;
  IntervalMatrix(Matrix l, Matrix u) : lower(std::move(l)), upper(std::move(u)) {}
  // The zero-width interval [m, m].
  static IntervalMatrix Point(Matrix m) {
    IntervalMatrix out;
    out.lower = m;
    out.upper = std::move(m);
    return out;
  }
  // [c - radius, c + radius].
  static IntervalMatrix Ball(const Eigen::Ref<const Matrix>& center, double radius);

  Index rows() const { return lower.rows(); }
  Index cols() const { return lower.cols(); }
  Matrix Mid() const { return (lower + upper) * 0.5; }
  Matrix Rad() const { return (upper - lower) * 0.5; }
  bool IsValid() const;
  // True iff every entry of m lies in [lower - tol, upper + tol].
  bool Contains(const Matrix& m, double tol = 0.0) const;
};

IntervalMatrix Add(const IntervalMatrix& a, const IntervalMatrix& b,
                   RoundingMode rounding = RoundingMode::kNearest);
IntervalMatrix Sub(const IntervalMatrix& a, const IntervalMatrix& b,
                   RoundingMode rounding = RoundingMode::kNearest);
IntervalMatrix Scale(const IntervalMatrix& a, double s,
                     RoundingMode rounding = RoundingMode::kNearest);
// Encloses {A B : A in a, B in b}; a is m x k, b is k x n.
IntervalMatrix MatMul(const IntervalMatrix& a, const IntervalMatrix& b,
                      MatMulMethod method = MatMulMethod::kRump,
                      RoundingMode rounding = RoundingMode::kNearest);
// Nguyen's method on its own (what MatMul(.., kNguyen) calls); nguyen.cc.
IntervalMatrix MatMulNguyen(const IntervalMatrix& a, const IntervalMatrix& b,
                            RoundingMode rounding = RoundingMode::kNearest);

// Replaces NaN bounds (what an overflowed bound computation gives, e.g.
// inf - inf in Rump's midpoint) by -inf (lower) / +inf (upper): the widest
// interval, which encloses every value, so later layers stay sound.
void WidenNaNsToInfinity(IntervalMatrix* m);

// Every primitive that rounds takes the core-wide RoundingMode (only
// kNearest today); ReLU, Heaviside and the NaN widening do not round.

// Elementwise product, exact (min/max of the four endpoint products).
IntervalMatrix ElementwiseProduct(const IntervalMatrix& a, const IntervalMatrix& b,
                                  RoundingMode rounding = RoundingMode::kNearest);
// ReLU applied to both ends (monotone, so exact).
IntervalMatrix Relu(const IntervalMatrix& a);
// Heaviside (ReLU derivative) on both ends: [1{l > 0}, 1{u > 0}], strict >.
IntervalMatrix Heaviside(const IntervalMatrix& a);

}  // namespace agt

#endif  // AGT_CORE_INTERVAL_INTERVAL_H_
