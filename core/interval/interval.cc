#include "core/interval/interval.h"

#include "core/interval/rump.h"

#include "absl/strings/str_cat.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace agt {
namespace {

// Tightest interval product: each term's exact range, summed.
IntervalMatrix MatMulExact(const IntervalMatrix& a, const IntervalMatrix& b) {
  const Index m = a.rows(), k = a.cols(), n = b.cols();
  Matrix lo = Matrix::Zero(m, n), hi = Matrix::Zero(m, n);
  for (Index i = 0; i < m; ++i) {
    for (Index p = 0; p < k; ++p) {
      const double al = a.lower(i, p), au = a.upper(i, p);
      for (Index j = 0; j < n; ++j) {
        const double bl = b.lower(p, j), bu = b.upper(p, j);
        const double p1 = al * bl, p2 = al * bu, p3 = au * bl, p4 = au * bu;
        lo(i, j) += std::min(std::min(p1, p2), std::min(p3, p4));
        hi(i, j) += std::max(std::max(p1, p2), std::max(p3, p4));
      }
    }
  }
  return {std::move(lo), std::move(hi)};
}

}  // namespace

absl::StatusOr<MatMulMethod> ParseMatMulMethod(const std::string& name) {
  if (name == "rump") return MatMulMethod::kRump;
  if (name == "exact") return MatMulMethod::kExact;
  if (name == "nguyen") return MatMulMethod::kNguyen;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown interval matmul \"", name, "\" (expected rump, exact or nguyen)"));
}

std::string MatMulMethodName(MatMulMethod method) {
  switch (method) {
    case MatMulMethod::kRump:
      return "rump";
    case MatMulMethod::kExact:
      return "exact";
    case MatMulMethod::kNguyen:
      return "nguyen";
  }
  return "unknown";
}

std::string RoundingModeName(RoundingMode mode) {
  switch (mode) {
    case RoundingMode::kNearest:
      return "nearest";
  }
  return "unknown";
}

void WidenNaNsToInfinity(IntervalMatrix* m) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  // A sum is NaN when any term is (or when +inf meets -inf, which then takes
  // the full check): one vectorised pass in the common case.
  if (!std::isnan(m->lower.sum()) && !std::isnan(m->upper.sum())) return;
  m->lower = m->lower.array().isNaN().select(-kInf, m->lower);
  m->upper = m->upper.array().isNaN().select(kInf, m->upper);
}

IntervalMatrix IntervalMatrix::Ball(const Eigen::Ref<const Matrix>& center, double radius) {
  return {center.array() - radius, center.array() + radius};
}

bool IntervalMatrix::IsValid() const {
  return lower.rows() == upper.rows() && lower.cols() == upper.cols() &&
         (lower.array() <= upper.array()).all();
}

bool IntervalMatrix::Contains(const Matrix& m, double tol) const {
  return m.rows() == rows() && m.cols() == cols() && (m.array() >= lower.array() - tol).all() &&
         (m.array() <= upper.array() + tol).all();
}

IntervalMatrix Add(const IntervalMatrix& a, const IntervalMatrix& b, RoundingMode) {
  return {a.lower + b.lower, a.upper + b.upper};
}

IntervalMatrix Sub(const IntervalMatrix& a, const IntervalMatrix& b, RoundingMode) {
  return {a.lower - b.upper, a.upper - b.lower};
}

IntervalMatrix Scale(const IntervalMatrix& a, double s, RoundingMode) {
  if (s >= 0) return {a.lower * s, a.upper * s};
  return {a.upper * s, a.lower * s};
}

IntervalMatrix MatMul(const IntervalMatrix& a, const IntervalMatrix& b, MatMulMethod method,
                      RoundingMode rounding) {
  switch (method) {
    case MatMulMethod::kRump:
      return RumpMatMul(MidRad(a), MidRad(b), rounding);
    case MatMulMethod::kExact:
      return MatMulExact(a, b);
    case MatMulMethod::kNguyen:
      return MatMulNguyen(a, b, rounding);
  }
  return RumpMatMul(MidRad(a), MidRad(b), rounding);
}

IntervalMatrix ElementwiseProduct(const IntervalMatrix& a, const IntervalMatrix& b,
                                  RoundingMode) {
  const auto p1 = a.lower.array() * b.lower.array();
  const auto p2 = a.lower.array() * b.upper.array();
  const auto p3 = a.upper.array() * b.lower.array();
  const auto p4 = a.upper.array() * b.upper.array();
  Matrix lo = p1.min(p2).min(p3.min(p4));
  Matrix hi = p1.max(p2).max(p3.max(p4));
  return {std::move(lo), std::move(hi)};
}

IntervalMatrix Relu(const IntervalMatrix& a) {
  return {a.lower.cwiseMax(0.0), a.upper.cwiseMax(0.0)};
}

IntervalMatrix Heaviside(const IntervalMatrix& a) {
  return {(a.lower.array() > 0.0).cast<double>().matrix(),
          (a.upper.array() > 0.0).cast<double>().matrix()};
}

}  // namespace agt
