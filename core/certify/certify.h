// Certificates from a parameter box (paper sections 8-9; ARCHITECTURE.md
// section 3, "Certificate semantics"): logit bounds per input (optionally with
// a test-time input radius for backdoor certificates), stability and
// correctness per point, certified accuracy, worst/best-case MSE, and the
// largest budget of a set at which each point is stable.
//
// Soundness claim: if the box contains every parameter vector reachable under
// the perturbation model (train/train.h), a point certified stable gets the
// nominal prediction from every such model (and, with test_epsilon, for every
// input within that l-infinity radius); worst-case accuracy/MSE are lower /
// upper bounds over all of them. Decision rules follow the reference
// (goldens README, semantics 8).
#ifndef AGT_CORE_CERTIFY_CERTIFY_H_
#define AGT_CORE_CERTIFY_CERTIFY_H_

#include <vector>

#include "core/common/types.h"
#include "core/interval/interval.h"
#include "core/loss/loss.h"
#include "core/model/model.h"

namespace agt {

struct LogitBounds {
  Matrix nominal;         // N x C, at the nominal parameters and the unperturbed input
  IntervalMatrix bounds;  // N x C, over the box and the input interval
  // Multi-class, when asked for: N x C sound lower bounds on the margin
  // z_c - z_j between the nominal prediction c and every class j (+inf at
  // j = c). Empty otherwise.
  Matrix margin_lower;
};

// How stability is decided for multi-class models.
enum class StabilityRule {
  // The reference's rule on softmax bounds (eq. 63): golden-compatible.
  kSoftmax,
  // Every margin z_c - z_j of the nominal prediction c has a positive lower
  // bound, where the margin is bounded through the last dense layer as one
  // interval dot product (W_c - W_j) . h + (b_c - b_j), h the interval input
  // of that layer. Sound, and never looser than kSoftmax (which implies
  // l_c > u_j); needs LogitBounds::margin_lower.
  kMargin,
};

// With margins = true (multi-class only), also fills margin_lower. Rows are
// bounded in fixed chunks of kLogitChunkRows (the chunks on up to `threads`
// threads; 0 = one per core), so the result does not depend on the thread
// count, and the intermediate matrices grow with the chunk, not with the
// rows.
inline constexpr Index kLogitChunkRows = 256;
LogitBounds ComputeLogitBounds(const ModelSpec& spec, const Vector& nominal,
                               const ParameterBox& box, const Eigen::Ref<const Matrix>& x,
                               double test_epsilon = 0.0, MatMulMethod method = MatMulMethod::kRump,
                               bool margins = false, int threads = 1);

// Predicted class per row from logits: binary (one column) = 1 iff logit > 0;
// multi-class = arg-max, first index on ties.
std::vector<int> PredictClasses(const Matrix& logits);

// Stable per row. Binary: the logit interval lies strictly on one side of 0
// ((l > 0) == (u > 0)). Multi-class: the class with the largest softmax lower
// bound has a lower bound strictly above every other class's softmax upper
// bound (eq. 63).
std::vector<bool> Stable(const IntervalMatrix& logits);
// Stability under `rule`; kMargin needs logits.margin_lower (binary models
// have one logit, where both rules coincide).
std::vector<bool> Stable(const LogitBounds& logits, StabilityRule rule);

struct ClassificationCertificate {
  double accuracy_nominal = 0.0;
  double accuracy_worst = 0.0;  // certified accuracy
  double accuracy_best = 0.0;
  double stable_fraction = 0.0;
  std::vector<bool> stable;
  std::vector<bool> correct;  // stable and nominal prediction == label
};

// Under kMargin a row counts as worst-case correct iff it is stable and its
// nominal prediction is the label (the margin certificate of the label).
ClassificationCertificate CertifyClassification(const LogitBounds& logits, const Vector& labels,
                                                StabilityRule rule = StabilityRule::kSoftmax);

struct RegressionCertificate {
  double mse_nominal = 0.0;
  double mse_worst = 0.0;  // upper bound on the MSE of any reachable model
  double mse_best = 0.0;   // lower bound
};

RegressionCertificate CertifyRegression(const LogitBounds& logits, const Vector& targets);

// For each row, the largest budget index j at which it is stable
// (stable_per_budget[j] holds the flags at budget j; budgets sorted so that a
// larger j is a larger budget), or -1 if it is stable at none. Each box is
// sound for every perturbation of up to its budget, so stability at budget n
// certifies the prediction against any n' <= n perturbed rows per batch.
std::vector<int> LargestStableBudget(const std::vector<std::vector<bool>>& stable_per_budget);

}  // namespace agt

#endif  // AGT_CORE_CERTIFY_CERTIFY_H_
