// Losses: value, gradient w.r.t. the logits, and sound interval bounds on that
// gradient given logit intervals and a label perturbation (paper section 6.3,
// eq. 22; Appendix A, eq. 60-65).
//
// Conventions: logits are N x C (C = 1 for MSE, binary cross-entropy and
// hinge); labels are one double per row: class indices 0..C-1 for cross-entropy,
// 0/1 for binary cross-entropy and hinge (hinge uses s = 2y - 1 in {-1, +1}),
// real targets for MSE.
//
// Soundness claim of LossGradientBounds: for every logit row z in [l, u] and
// every label the perturbation allows for that row, dL/dz lies in the bounds.
#ifndef AGT_CORE_LOSS_LOSS_H_
#define AGT_CORE_LOSS_LOSS_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/common/types.h"
#include "core/interval/interval.h"

namespace agt {

enum class LossKind {
  kMse,                 // (z - y)^2, gradient 2(z - y) (not divided by C)
  kBinaryCrossEntropy,  // with logits: sigmoid inside
  kCrossEntropy,        // softmax inside
  kHinge,               // max(0, 1 - s z), s = 2y - 1
};

absl::StatusOr<LossKind> ParseLossKind(const std::string& name);  // "mse", ...
std::string LossKindName(LossKind kind);
bool IsClassification(LossKind kind);

// What an adversary may do to a row's label.
struct LabelPerturbation {
  // Classification: the label may be changed to any other class (or, with
  // target_class >= 0, only to that class). Regression: moved by up to +-nu.
  bool enabled = false;
  int target_class = -1;
  double nu = 0.0;
};

// Per-row loss values (N).
Vector LossValues(LossKind kind, const Matrix& logits, const Vector& labels);
// Gradient of each row's loss w.r.t. its logits (N x C).
Matrix LossGradient(LossKind kind, const Matrix& logits, const Vector& labels);
// Sound bounds on the gradient for logits in [logits] and labels as allowed.
// Semantics match the reference (goldens README, semantics 3).
IntervalMatrix LossGradientBounds(LossKind kind, const IntervalMatrix& logits, const Vector& labels,
                                  const LabelPerturbation& perturbation);
// Softmax bounds of eq. 63: p_j^L at z_j = l_j, z_m = u_m; p_j^U the reverse.
IntervalMatrix SoftmaxBounds(const IntervalMatrix& logits);
// Row-wise softmax, numerically stable.
Matrix Softmax(const Matrix& logits);

}  // namespace agt

#endif  // AGT_CORE_LOSS_LOSS_H_
