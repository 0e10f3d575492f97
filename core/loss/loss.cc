#include "core/loss/loss.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace agt {
namespace {

double Sigmoid(double z) {
  if (z >= 0) return 1.0 / (1.0 + std::exp(-z));
  const double e = std::exp(z);
  return e / (1.0 + e);
}

int ClassOf(double label) { return static_cast<int>(std::lround(label)); }

// Hinge gradient -s * 1{1 - s z > 0} over z in [l, u] for one sign s:
// widens [lo, hi] by every value it can take.
void HingeRange(double s, double l, double u, double* lo, double* hi) {
  // The active set {z : s z < 1} meets [l, u] iff min over the interval of s z < 1.
  const double min_sz = s > 0 ? l : -u;
  const double max_sz = s > 0 ? u : -l;
  if (min_sz < 1.0) {  // active somewhere: gradient -s
    *lo = std::min(*lo, -s);
    *hi = std::max(*hi, -s);
  }
  if (max_sz >= 1.0) {  // inactive somewhere: gradient 0
    *lo = std::min(*lo, 0.0);
    *hi = std::max(*hi, 0.0);
  }
}

}  // namespace

absl::StatusOr<LossKind> ParseLossKind(const std::string& name) {
  if (name == "mse") return LossKind::kMse;
  if (name == "binary_cross_entropy" || name == "bce") return LossKind::kBinaryCrossEntropy;
  if (name == "cross_entropy" || name == "ce") return LossKind::kCrossEntropy;
  if (name == "hinge") return LossKind::kHinge;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown loss \"", name, "\" (expected mse, binary_cross_entropy, cross_entropy or hinge)"));
}

std::string LossKindName(LossKind kind) {
  switch (kind) {
    case LossKind::kMse:
      return "mse";
    case LossKind::kBinaryCrossEntropy:
      return "binary_cross_entropy";
    case LossKind::kCrossEntropy:
      return "cross_entropy";
    case LossKind::kHinge:
      return "hinge";
  }
  return "unknown";
}

bool IsClassification(LossKind kind) { return kind != LossKind::kMse; }

Matrix Softmax(const Matrix& logits) {
  Matrix p(logits.rows(), logits.cols());
  for (Index i = 0; i < logits.rows(); ++i) {
    const double mx = logits.row(i).maxCoeff();
    p.row(i) = (logits.row(i).array() - mx).exp();
    p.row(i) /= p.row(i).sum();
  }
  return p;
}

IntervalMatrix SoftmaxBounds(const IntervalMatrix& logits) {
  const Index n = logits.rows(), c = logits.cols();
  Matrix lo(n, c), hi(n, c);
  for (Index i = 0; i < n; ++i) {
    for (Index j = 0; j < c; ++j) {
      double s_lo = 0.0, s_hi = 0.0;
      for (Index m = 0; m < c; ++m) {
        if (m == j) continue;
        s_lo += std::exp(logits.upper(i, m) - logits.lower(i, j));
        s_hi += std::exp(logits.lower(i, m) - logits.upper(i, j));
      }
      lo(i, j) = 1.0 / (1.0 + s_lo);
      hi(i, j) = 1.0 / (1.0 + s_hi);
    }
  }
  return {std::move(lo), std::move(hi)};
}

Vector LossValues(LossKind kind, const Matrix& logits, const Vector& labels) {
  const Index n = logits.rows();
  Vector out(n);
  for (Index i = 0; i < n; ++i) {
    const double y = labels[i];
    switch (kind) {
      case LossKind::kMse:
        out[i] = (logits.row(i).array() - y).square().sum();
        break;
      case LossKind::kBinaryCrossEntropy: {
        const double z = logits(i, 0);
        out[i] = std::max(z, 0.0) - z * y + std::log1p(std::exp(-std::abs(z)));
        break;
      }
      case LossKind::kCrossEntropy: {
        const double mx = logits.row(i).maxCoeff();
        const double lse = mx + std::log((logits.row(i).array() - mx).exp().sum());
        out[i] = lse - logits(i, ClassOf(y));
        break;
      }
      case LossKind::kHinge:
        out[i] = std::max(0.0, 1.0 - (2.0 * y - 1.0) * logits(i, 0));
        break;
    }
  }
  return out;
}

Matrix LossGradient(LossKind kind, const Matrix& logits, const Vector& labels) {
  const Index n = logits.rows();
  Matrix g(n, logits.cols());
  switch (kind) {
    case LossKind::kMse:
      g = 2.0 * (logits.colwise() - labels);
      break;
    case LossKind::kBinaryCrossEntropy:
      for (Index i = 0; i < n; ++i) g(i, 0) = Sigmoid(logits(i, 0)) - labels[i];
      break;
    case LossKind::kCrossEntropy:
      // The same formula as SoftmaxBounds at a point (eq. 62), so a
      // zero-width logit interval gives bit-identical bounds.
      g = SoftmaxBounds(IntervalMatrix::Point(logits)).lower;
      for (Index i = 0; i < n; ++i) g(i, ClassOf(labels[i])) -= 1.0;
      break;
    case LossKind::kHinge:
      for (Index i = 0; i < n; ++i) {
        const double s = 2.0 * labels[i] - 1.0;
        g(i, 0) = (1.0 - s * logits(i, 0) > 0.0) ? -s : 0.0;
      }
      break;
  }
  return g;
}

IntervalMatrix LossGradientBounds(LossKind kind, const IntervalMatrix& logits, const Vector& labels,
                                  const LabelPerturbation& perturbation) {
  const Index n = logits.rows(), c = logits.cols();
  Matrix lo(n, c), hi(n, c);
  switch (kind) {
    case LossKind::kMse: {
      // eq. 22 with y in [y - nu, y + nu].
      const double nu = perturbation.enabled ? perturbation.nu : 0.0;
      lo = 2.0 * ((logits.lower.colwise() - labels).array() - nu).matrix();
      hi = 2.0 * ((logits.upper.colwise() - labels).array() + nu).matrix();
      break;
    }
    case LossKind::kBinaryCrossEntropy:
      for (Index i = 0; i < n; ++i) {
        const double sl = Sigmoid(logits.lower(i, 0)), su = Sigmoid(logits.upper(i, 0));
        if (perturbation.enabled) {  // the label may be either class
          lo(i, 0) = sl - 1.0;
          hi(i, 0) = su;
        } else {
          lo(i, 0) = sl - labels[i];
          hi(i, 0) = su - labels[i];
        }
      }
      break;
    case LossKind::kCrossEntropy: {
      // eq. 63-64: p in [pL, pU], one-hot label interval.
      const IntervalMatrix p = SoftmaxBounds(logits);
      lo = p.lower;
      hi = p.upper;
      for (Index i = 0; i < n; ++i) {
        const int y = ClassOf(labels[i]);
        if (!perturbation.enabled) {
          lo(i, y) -= 1.0;
          hi(i, y) -= 1.0;
        } else if (perturbation.target_class < 0) {
          lo.row(i).array() -= 1.0;  // any class may be the label
        } else {
          lo(i, y) -= 1.0;
          if (perturbation.target_class != y) lo(i, perturbation.target_class) -= 1.0;
        }
      }
      break;
    }
    case LossKind::kHinge:
      for (Index i = 0; i < n; ++i) {
        double l = std::numeric_limits<double>::infinity(), h = -l;
        const double s = 2.0 * labels[i] - 1.0;
        HingeRange(s, logits.lower(i, 0), logits.upper(i, 0), &l, &h);
        if (perturbation.enabled) HingeRange(-s, logits.lower(i, 0), logits.upper(i, 0), &l, &h);
        lo(i, 0) = l;
        hi(i, 0) = h;
      }
      break;
  }
  return {std::move(lo), std::move(hi)};
}

}  // namespace agt
