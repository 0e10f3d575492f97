// Differentially private predictions from stored models (paper section
// 10.2; ARCHITECTURE.md section 3, "Private prediction"): which mechanism a
// model admits, the certified n* per input, and the noisy release. The maths
// is the core's (core/privacy/privacy.h); this layer reads the stored model
// (its perturbation model, classes and substitution budgets), certifies the
// inputs (domain/certifier.h) and phrases the guarantee.
//
// A request is served in steps so that the budget is charged only for a
// release that is returned: PreparePrivatePrediction validates, computes the
// exact charge and certifies (every error is raised here, nothing random is
// drawn); ReleasePrivatePrediction draws the noise, which cannot fail; the
// service then charges the budget and stores the answer in one transaction
// (SpendPrivacyBudget, domain/ledgers.h) and returns it. Noise drawn for an answer that
// is not committed (refused, cancelled, a crash) is never shown to anyone,
// so it costs no privacy.
//
// Resources: rows are certified in chunks that fit kCertifyWorkingBytes
// (domain/certifier.h, CertifyChunkRows), so memory does not grow with the
// row count; a model whose single expanded row does not fit is refused
// (ResourceExhausted naming the figure and the limit). `keep_going` is asked
// before every chunk: a cancelled call or one past its deadline stops there.
// `memory` (optional): the server-wide budget the chunks reserve from, shared
// with the certify calls (domain/working_memory.h).
//
// Mechanisms (agt.v1.PrivacyMechanism):
// - smooth sensitivity (the default): binary classifiers trained under
//   PERTURBATION_KIND_SUBSTITUTION with clamp clipping and plain SGD. n*(x)
//   is the largest trained substitution budget at which x is certified
//   stable (0 if none). Refused for other models (FailedPrecondition naming
//   the model, why, and the mechanism that does apply): never a fallback.
// - global Laplace: binary classifiers, any training; no certificate used.
// - report-noisy-argmax: any classifier, one-hot of the nominal prediction
//   plus Laplace(2 / epsilon) per class.
// Regression models are refused for every mechanism.
//
// The smooth-sensitivity guarantee is the paper's (Theorem 11 with eq.
// 58-59), with n* certified by AGT on the actual training set. Caveat, as in
// the paper: n* is computed on that dataset only, so how exp(-beta n*) moves
// between neighbouring datasets (the smoothness the Cauchy mechanism of
// Nissim et al. asks of an upper bound) is assumed rather than certified.
//
// Thread-safety: pure functions; the UniformSource passed to the release
// must not be used concurrently (the service guards it).
#ifndef AGT_SERVER_DOMAIN_PRIVATE_PREDICTION_H_
#define AGT_SERVER_DOMAIN_PRIVATE_PREDICTION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agt/v1/common.pb.h"
#include "agt/v1/privacy.pb.h"
#include "core/privacy/noise.h"
#include "server/domain/certifier.h"
#include "server/store/store.h"

namespace agt::server {

// The most input rows one PrivatePredict may carry.
inline constexpr int64_t kMaxPrivateRows = 10'000;


// A validated, certified request, ready to be released.
struct PreparedRelease {
  agt::v1::PrivacyMechanism mechanism = agt::v1::PRIVACY_MECHANISM_SMOOTH_SENSITIVITY;
  double epsilon = 0.0;  // per label
  int num_classes = 0;
  std::vector<int> predicted;  // nominal prediction per input
  std::vector<int> n_star;     // smooth sensitivity: n* per input; else zeros
  // rows x ceil(epsilon / 2^-40) (agt::ChargeQuanta): the exact charge.
  int64_t quanta = 0;
};

// The mechanism a request gets: UNSPECIFIED means smooth sensitivity.
// FailedPrecondition when the model does not admit it (see above), naming the
// model and the reason; InvalidArgument for an unknown enum value; DataLoss
// if the stored spec does not parse.
absl::StatusOr<agt::v1::PrivacyMechanism> ResolveMechanism(const ModelRecord& model,
                                                           agt::v1::PrivacyMechanism requested);

// Validates epsilon (finite, in [2^-40, 2^22], and rows x epsilon a
// chargeable number of quanta: agt::ChargeQuanta, whose errors name epsilon
// and the quantum) and the inputs (1..kMaxPrivateRows rows, as
// CertifyPredictions checks them: the errors name "inputs..."), resolves the
// mechanism and, for smooth sensitivity, certifies every input against the
// model's substitution boxes for n* (the global mechanisms need the nominal
// prediction only). ResourceExhausted if one row does not fit the working
// memory; whatever keep_going returns (Cancelled, DeadlineExceeded).
absl::StatusOr<PreparedRelease> PreparePrivatePrediction(const ModelRecord& model,
                                                         const agt::v1::Matrix& inputs,
                                                         double epsilon,
                                                         agt::v1::PrivacyMechanism requested,
                                                         const KeepGoing& keep_going = {},
                                                         WorkingMemory* memory = nullptr);

// Draws the noise and fills labels, mechanism, epsilons and the charge of a
// response (budget and guarantee are the caller's). show_n_star: report n*, the
// sensitivity bound and the noise scale per label; otherwise they are -1
// (they depend on the training data).
agt::v1::PrivatePredictResponse ReleasePrivatePrediction(const PreparedRelease& prepared,
                                                         bool show_n_star,
                                                         agt::UniformSource& noise);

// The guarantee of a release in words: the mechanism and its epsilon, the
// composition over labels, requests, models and tokens (one budget per
// tenant and training dataset), and the assumptions the smooth-sensitivity
// bound rests on (the model's certificate assumptions).
std::string PrivacyGuaranteeText(const ModelRecord& model, const PreparedRelease& prepared,
                                 bool show_n_star);

}  // namespace agt::server

#endif  // AGT_SERVER_DOMAIN_PRIVATE_PREDICTION_H_
