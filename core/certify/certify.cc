#include "core/certify/certify.h"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cmath>
#include <limits>
#include <thread>
#include <utility>
#include <vector>

#include "core/bounds/ibp.h"

namespace agt {
namespace {

// Arg-max with the first index winning ties.
int ArgMax(const Eigen::Ref<const Eigen::Matrix<double, 1, Eigen::Dynamic>>& row) {
  int best = 0;
  for (Index j = 1; j < row.size(); ++j) {
    if (row[j] > row[best]) best = static_cast<int>(j);
  }
  return best;
}

// ComputeLogitBounds for one chunk of rows, through `boxed` (the box's
// model, shared by the chunks).
LogitBounds ChunkLogitBounds(const ModelSpec& spec, const Vector& nominal, const ParameterBox& box,
                             const BoxedModel& boxed, const Eigen::Ref<const Matrix>& x,
                             double test_epsilon, bool margins) {
  LogitBounds out;
  out.nominal = Forward(spec, nominal, x);
  IntervalMatrix input =
      test_epsilon > 0.0 ? IntervalMatrix::Ball(x, test_epsilon) : IntervalMatrix::Point(x);
  // The activations only for the margins.
  std::vector<IntervalMatrix> acts;
  out.bounds =
      boxed.ForwardBounds(FrozenFeatureBounds(spec, std::move(input), boxed.options().interval),
                          margins ? &acts : nullptr);
  const Index c = out.nominal.cols();
  if (!margins || c < 2) return out;
  // The last dense layer's interval input, and its weight/bias intervals.
  const DenseSlice last = spec.Layout().back();
  const IntervalMatrix& h = acts[last.layer];
  const Eigen::Map<const Matrix> wl(box.lower.data() + last.weight_offset, last.out, last.in);
  const Eigen::Map<const Matrix> wu(box.upper.data() + last.weight_offset, last.out, last.in);
  const std::vector<int> predicted = PredictClasses(out.nominal);
  out.margin_lower =
      Matrix::Constant(out.nominal.rows(), c, std::numeric_limits<double>::infinity());
  for (Index i = 0; i < out.nominal.rows(); ++i) {
    const int p = predicted[i];
    for (Index j = 0; j < c; ++j) {
      if (j == p) continue;
      // Exact interval dot product of [W_p - W_j] with h_i, plus [b_p - b_j].
      double lo = box.lower[last.bias_offset + p] - box.upper[last.bias_offset + j];
      for (Index k = 0; k < last.in; ++k) {
        const double dl = wl(p, k) - wu(j, k), du = wu(p, k) - wl(j, k);
        const double hl = h.lower(i, k), hu = h.upper(i, k);
        lo += std::min(std::min(dl * hl, dl * hu), std::min(du * hl, du * hu));
      }
      out.margin_lower(i, j) = lo;
    }
  }
  return out;
}

}  // namespace

LogitBounds ComputeLogitBounds(const ModelSpec& spec, const Vector& nominal,
                               const ParameterBox& box, const Eigen::Ref<const Matrix>& x,
                               double test_epsilon, MatMulMethod method, bool margins,
                               int threads) {
  const Index n = x.rows();
  const BoxedModel boxed(spec, box, BoundOptions{BoundMethod::kIbp, IntervalOptions{method}});
  if (n <= kLogitChunkRows) {
    return ChunkLogitBounds(spec, nominal, box, boxed, x, test_epsilon, margins);
  }
  const size_t chunks = static_cast<size_t>((n + kLogitChunkRows - 1) / kLogitChunkRows);
  std::vector<LogitBounds> parts(chunks);
  std::atomic<size_t> next{0};
  const auto work = [&] {
    for (size_t c = next++; c < chunks; c = next++) {
      const Index r0 = static_cast<Index>(c) * kLogitChunkRows;
      parts[c] = ChunkLogitBounds(spec, nominal, box, boxed,
                                  x.middleRows(r0, std::min(kLogitChunkRows, n - r0)), test_epsilon,
                                  margins);
    }
  };
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const size_t helpers = std::min(chunks, static_cast<size_t>(threads)) - 1;
  std::vector<std::thread> workers;
  for (size_t t = 0; t < helpers; ++t) workers.emplace_back(work);
  work();
  for (std::thread& w : workers) w.join();
  // The chunks' rows, in order.
  const Index c = parts[0].nominal.cols();
  LogitBounds out;
  out.nominal.resize(n, c);
  out.bounds.lower.resize(n, c);
  out.bounds.upper.resize(n, c);
  const bool with_margins = parts[0].margin_lower.size() > 0;
  if (with_margins) out.margin_lower.resize(n, c);
  Index r0 = 0;
  for (const LogitBounds& p : parts) {
    const Index rows = p.nominal.rows();
    out.nominal.middleRows(r0, rows) = p.nominal;
    out.bounds.lower.middleRows(r0, rows) = p.bounds.lower;
    out.bounds.upper.middleRows(r0, rows) = p.bounds.upper;
    if (with_margins) out.margin_lower.middleRows(r0, rows) = p.margin_lower;
    r0 += rows;
  }
  return out;
}

std::vector<int> PredictClasses(const Matrix& logits) {
  std::vector<int> out(logits.rows());
  for (Index i = 0; i < logits.rows(); ++i) {
    out[i] = logits.cols() == 1 ? (logits(i, 0) > 0.0 ? 1 : 0) : ArgMax(logits.row(i));
  }
  return out;
}

std::vector<bool> Stable(const IntervalMatrix& logits) {
  std::vector<bool> out(logits.rows());
  if (logits.cols() == 1) {
    for (Index i = 0; i < logits.rows(); ++i) {
      const double l = logits.lower(i, 0), u = logits.upper(i, 0);
      // NaN bounds certify nothing.
      out[i] = !std::isnan(l) && !std::isnan(u) && (l > 0.0) == (u > 0.0);
    }
    return out;
  }
  const IntervalMatrix p = SoftmaxBounds(logits);
  for (Index i = 0; i < logits.rows(); ++i) {
    const int c = ArgMax(p.lower.row(i));
    bool stable = true;
    for (Index j = 0; j < logits.cols() && stable; ++j) {
      if (j != c && !(p.lower(i, c) > p.upper(i, j))) stable = false;
    }
    out[i] = stable;
  }
  return out;
}

std::vector<bool> Stable(const LogitBounds& logits, StabilityRule rule) {
  if (rule == StabilityRule::kSoftmax || logits.nominal.cols() == 1) return Stable(logits.bounds);
  assert(logits.margin_lower.rows() == logits.nominal.rows());
  std::vector<bool> out(logits.nominal.rows());
  for (Index i = 0; i < logits.nominal.rows(); ++i) {
    // NaN compares false: never certified.
    out[i] = (logits.margin_lower.row(i).array() > 0.0).all();
  }
  return out;
}

ClassificationCertificate CertifyClassification(const LogitBounds& logits, const Vector& labels,
                                                StabilityRule rule) {
  const Index n = logits.nominal.rows();
  const Index c = logits.nominal.cols();
  ClassificationCertificate cert;
  cert.stable = Stable(logits, rule);
  const bool margin = rule == StabilityRule::kMargin && c > 1;
  cert.correct.assign(n, false);
  const std::vector<int> nominal = PredictClasses(logits.nominal);
  Index right = 0, worst = 0, best = 0, stable = 0;
  for (Index i = 0; i < n; ++i) {
    const int y = static_cast<int>(std::lround(labels[i]));
    right += nominal[i] == y;
    stable += cert.stable[i];
    cert.correct[i] = cert.stable[i] && nominal[i] == y;
    const bool nan_bounds =
        logits.bounds.lower.row(i).hasNaN() || logits.bounds.upper.row(i).hasNaN();
    if (nan_bounds) {
      // NaN bounds certify nothing: wrong in the worst case, right in the best.
      ++best;
    } else if (c == 1) {
      // Worst case: the end of the interval furthest towards the other class.
      worst += y == 1 ? logits.bounds.lower(i, 0) > 0.0 : !(logits.bounds.upper(i, 0) > 0.0);
      best += y == 1 ? logits.bounds.upper(i, 0) > 0.0 : !(logits.bounds.lower(i, 0) > 0.0);
    } else {
      Eigen::Matrix<double, 1, Eigen::Dynamic> w = logits.bounds.upper.row(i);
      w[y] = logits.bounds.lower(i, y);
      // The margin certificate of the label also proves worst-case correctness.
      worst += ArgMax(w) == y || (margin && cert.correct[i]);
      Eigen::Matrix<double, 1, Eigen::Dynamic> bst = logits.bounds.lower.row(i);
      bst[y] = logits.bounds.upper(i, y);
      best += ArgMax(bst) == y;
    }
  }
  const double dn = n > 0 ? static_cast<double>(n) : 1.0;
  cert.accuracy_nominal = right / dn;
  cert.accuracy_worst = worst / dn;
  cert.accuracy_best = best / dn;
  cert.stable_fraction = stable / dn;
  return cert;
}

RegressionCertificate CertifyRegression(const LogitBounds& logits, const Vector& targets) {
  const Index n = logits.nominal.rows();
  RegressionCertificate cert;
  double nom = 0.0, worst = 0.0, best = 0.0;
  for (Index i = 0; i < n; ++i) {
    for (Index j = 0; j < logits.nominal.cols(); ++j) {
      const double y = targets[i];
      const double l = logits.bounds.lower(i, j), u = logits.bounds.upper(i, j);
      const double e = logits.nominal(i, j) - y;
      nom += e * e;
      if (std::isnan(l) || std::isnan(u)) {
        // NaN bounds certify nothing: unbounded worst case, best case 0.
        worst = std::numeric_limits<double>::infinity();
        continue;
      }
      const double far = std::max(std::abs(l - y), std::abs(u - y));
      worst += far * far;
      const double near = (l <= y && y <= u) ? 0.0 : std::min(std::abs(l - y), std::abs(u - y));
      best += near * near;
    }
  }
  const double dn = n > 0 ? static_cast<double>(n) : 1.0;
  cert.mse_nominal = nom / dn;
  cert.mse_worst = worst / dn;
  cert.mse_best = best / dn;
  return cert;
}

std::vector<int> LargestStableBudget(const std::vector<std::vector<bool>>& stable_per_budget) {
  if (stable_per_budget.empty()) return {};
  std::vector<int> out(stable_per_budget[0].size(), -1);
  for (size_t j = 0; j < stable_per_budget.size(); ++j) {
    for (size_t i = 0; i < out.size(); ++i) {
      if (stable_per_budget[j][i]) out[i] = static_cast<int>(j);
    }
  }
  return out;
}

}  // namespace agt
