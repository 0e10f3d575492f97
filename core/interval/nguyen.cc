// Nguyen's interval matrix product (H. D. Nguyen, "Efficient algorithms for
// verified scientific computing: numerical linear algebra using interval
// arithmetic", PhD thesis, ENS Lyon, 2011), in the form the reference
// implementation uses (goldens README, semantics 1).
//
// Every entry of A is split as [a] = [-r, r] + [s] with a zero-centred part
// [-r, r] and a sign-definite part [s] (entirely >= 0 or entirely <= 0):
//   l >= 0:          r = 0,  [s] = [l, u]
//   u <= 0:          r = 0,  [s] = [l, u]
//   l < 0, u >= -l:  r = -l, [s] = [0, l + u]
//   l < 0, u < -l:   r = u,  [s] = [l + u, 0]
// and every entry of B as b = b+ + b- with b+ = max(b, 0) in [B+] and
// b- = min(b, 0) in [B-]. Then every point product a b equals a0 b + s b+ +
// s b- for some a0 in [-r, r] and s in [s]: the first term lies in
// +-r * mag([b]), and the other two are products of sign-definite intervals,
// whose extremes are known endpoint products. Summing over the inner index
// turns each bound into a point GEMM, so the whole product costs nine GEMMs of
// the original shapes and encloses every A B with A in [A], B in [B].

#include <utility>

#include "core/interval/interval.h"

namespace agt {
namespace {

// The split of A into a zero-centred radius and sign-definite parts. Each
// entry is nonzero in at most one of the positive and negative parts.
struct SplitA {
  Matrix radius;     // r >= 0: the zero-centred part is [-r, r]
  Matrix pos_lower;  // the part that is >= 0
  Matrix pos_upper;
  Matrix neg_lower;  // the part that is <= 0
  Matrix neg_upper;
};

SplitA SplitLeftFactor(const IntervalMatrix& a) {
  const Index rows = a.rows();
  const Index cols = a.cols();
  SplitA s{Matrix::Zero(rows, cols), Matrix::Zero(rows, cols), Matrix::Zero(rows, cols),
           Matrix::Zero(rows, cols), Matrix::Zero(rows, cols)};
  for (Index i = 0; i < rows; ++i) {
    for (Index j = 0; j < cols; ++j) {
      const double l = a.lower(i, j);
      const double u = a.upper(i, j);
      if (l >= 0.0) {
        s.pos_lower(i, j) = l;
        s.pos_upper(i, j) = u;
      } else if (u <= 0.0) {
        s.neg_lower(i, j) = l;
        s.neg_upper(i, j) = u;
      } else if (u >= -l) {
        // Straddles zero, leaning positive: [l, u] = [l, -l] + [0, l + u].
        s.radius(i, j) = -l;
        s.pos_upper(i, j) = l + u;
      } else {
        // Straddles zero, leaning negative: [l, u] = [-u, u] + [l + u, 0].
        s.radius(i, j) = u;
        s.neg_lower(i, j) = l + u;
      }
    }
  }
  return s;
}

}  // namespace

IntervalMatrix MatMulNguyen(const IntervalMatrix& a, const IntervalMatrix& b, RoundingMode) {
  const SplitA s = SplitLeftFactor(a);

  // B's magnitude and its positive / negative parts, B = B+ + B-.
  const Matrix b_mag = b.lower.cwiseAbs().cwiseMax(b.upper.cwiseAbs());
  const Matrix b_pos_lower = b.lower.cwiseMax(0.0);
  const Matrix b_pos_upper = b.upper.cwiseMax(0.0);
  const Matrix b_neg_lower = b.lower.cwiseMin(0.0);
  const Matrix b_neg_upper = b.upper.cwiseMin(0.0);

  // Zero-centred part: [-r, r] * [b] = +-r * mag([b]).
  Matrix upper = s.radius * b_mag;
  Matrix lower = -upper;

  // Nonnegative a in [pl, pu]: a b+ in [pl b+l, pu b+u], a b- in [pu b-l, pl b-u].
  lower.noalias() += s.pos_lower * b_pos_lower;
  lower.noalias() += s.pos_upper * b_neg_lower;
  upper.noalias() += s.pos_upper * b_pos_upper;
  upper.noalias() += s.pos_lower * b_neg_upper;

  // Nonpositive a in [nl, nu]: a b+ in [nl b+u, nu b+l], a b- in [nu b-u, nl b-l].
  lower.noalias() += s.neg_lower * b_pos_upper;
  lower.noalias() += s.neg_upper * b_neg_upper;
  upper.noalias() += s.neg_upper * b_pos_lower;
  upper.noalias() += s.neg_lower * b_neg_lower;

  return IntervalMatrix(std::move(lower), std::move(upper));
}

}  // namespace agt
