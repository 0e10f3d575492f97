// Differentially private prediction for binary classifiers (paper section
// 10.2; ARCHITECTURE.md section 3, "Private prediction"), and a
// global-sensitivity mechanism for multi-class classifiers
// (ReportNoisyArgmaxRelease).
//
// f(x) in eq. 56-58 is the classifier's prediction, the hard label in {0, 1}:
// Theorem 11 bounds the smooth sensitivity (eq. 54) through stability of that
// label, which says nothing about how a probability or logit moves. Hence the
// smooth-sensitivity release takes the nominal label and refuses any other
// value; the global-sensitivity baseline is sound for any f in [0, 1] (its
// sensitivity is at most 1) and accepts that range.
//
// Soundness assumptions: n* comes from parameter boxes trained under the
// substitution perturbation model (Theorem 11 is stated for T^n_subs) and the
// stability flags are sound certificates (core/certify/certify.h). Every
// release is epsilon-DP for that query (delta = 0); composing queries is the
// caller's job (budget.h).
#ifndef AGT_CORE_PRIVACY_PRIVACY_H_
#define AGT_CORE_PRIVACY_PRIVACY_H_

#include <vector>

#include "absl/status/statusor.h"
#include "core/privacy/noise.h"

namespace agt {

// Upper bound on the beta-smooth sensitivity with beta = epsilon / 6 for a
// prediction stable at substitution distance n_star (Theorem 11, eq. 57):
// exp(-beta * n_star). n_star = 0 gives 1, the global sensitivity of a binary
// label. Preconditions: n_star >= 0, epsilon > 0 and finite (not checked here;
// the releases below check them).
double SmoothSensitivityBound(int n_star, double epsilon);

// n*(x) per input: the largest trained budget at which the input is stable,
// 0 if none. budgets_sorted: the substitution budgets of the model, strictly
// increasing and >= 0; stable_per_budget[j][i]: input i is stable at
// budgets_sorted[j]. InvalidArgument if the budgets are not strictly
// increasing or negative, or the flag table's shape does not match.
absl::StatusOr<std::vector<int>> NStar(const std::vector<int>& budgets_sorted,
                                       const std::vector<std::vector<bool>>& stable_per_budget);

enum class PrivacyMechanism {
  kSmoothSensitivityCauchy,   // eq. 58-59 with SS bounded by Theorem 11
  kGlobalSensitivityLaplace,  // eq. 58 with Lap(1/epsilon)
  // Multi-class, global sensitivity: the arg-max of the one-hot prediction
  // plus Lap(2/epsilon) per class (ReportNoisyArgmaxRelease).
  kReportNoisyArgmaxLaplace,
};

// One released prediction and the guarantee it was released under.
struct PrivateRelease {
  // Binary: R(x) = 1[f(x) + z > 1/2], eq. 58. Report-noisy-argmax: the
  // released class index in [0, num_classes).
  int label = 0;
  PrivacyMechanism mechanism = PrivacyMechanism::kSmoothSensitivityCauchy;
  // Cauchy: 6 SS / epsilon; Laplace: 1 / epsilon; report-noisy-argmax:
  // 2 / epsilon per class.
  double noise_scale = 0.0;
  double sensitivity = 1.0;  // the SS bound used (1, global, for Laplace)
  int n_star = 0;            // 0 for the Laplace mechanisms
  double epsilon = 0.0;
};

// Smooth-sensitivity release (eq. 58-59): z ~ Cauchy(6 SS / epsilon) with
// SS = SmoothSensitivityBound(n_star, epsilon). f_label is the nominal
// predicted label, 0 or 1. InvalidArgument if f_label is not 0 or 1,
// n_star < 0, or epsilon is not positive and finite; then nothing is drawn.
absl::StatusOr<PrivateRelease> SmoothSensitivityRelease(double f_label, int n_star, double epsilon,
                                                        UniformSource& noise);

// Global-sensitivity baseline (eq. 58): z ~ Laplace(1 / epsilon). f in [0, 1]
// (a label or a probability). InvalidArgument if f is outside [0, 1] or
// epsilon is not positive and finite; then nothing is drawn.
absl::StatusOr<PrivateRelease> GlobalSensitivityRelease(double f, double epsilon,
                                                        UniformSource& noise);

// Multi-class global-sensitivity release (report noisy max): f(x) is the
// one-hot vector of the nominal predicted class among K = num_classes >= 2;
// each of its K coordinates gets independent Laplace(2 / epsilon) noise and
// the index of the largest noisy coordinate is released (ties, which have
// probability 0, go to the lowest index).
//
// Why this is epsilon-DP (delta = 0) for one query: replacing one training
// row can change the predicted class from a to b, which moves coordinate a
// down by 1 and coordinate b up by 1, so every coordinate changes by at most
// 1 (l-infinity sensitivity 1) but not all in the same direction. Fix the
// noise of every class other than j: class j wins iff its noise exceeds a
// threshold set by its own score and the largest competing noisy score, and
// each of those two moves by at most 1, so the threshold moves by at most 2.
// A Laplace(2 / epsilon) density changes by at most a factor e^epsilon under
// a shift of 2, hence so does P(release = j) (Dwork & Roth, The Algorithmic
// Foundations of Differential Privacy, section 3.3, report noisy max for
// scores that need not move together). Laplace(1 / epsilon) noise, enough
// for scores that all move the same way, is not enough here once K >= 3.
//
// noise_scale = 2 / epsilon (+inf if that overflows, which the computation
// never needs), sensitivity = 1, n_star = 0. Draws exactly K uniforms per
// call, in class order 0..K-1. InvalidArgument if num_classes < 2,
// predicted_class is outside [0, num_classes), or epsilon is not positive and
// finite; then nothing is drawn.
absl::StatusOr<PrivateRelease> ReportNoisyArgmaxRelease(int predicted_class, int num_classes,
                                                        double epsilon, UniformSource& noise);

}  // namespace agt

#endif  // AGT_CORE_PRIVACY_PRIVACY_H_
