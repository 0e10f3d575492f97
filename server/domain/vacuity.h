// Flags a trained model whose certificates are likely vacuous, so that a job
// whose bounds exploded does not end as a plain success. Run by the job
// runner once per finished job; the warnings are stored with the job and its
// model (Store::CompleteJob) and shown by GetJob, WatchJob, GetModel and
// agtctl.
//
// A budget's box gets a warning when
// - any bound, or its total or widest width, is not finite
//   (JobWarningCode::kBoundsNonFinite); or
// - its widest parameter interval exceeds kVacuousWidthRatio x max(1, the
//   largest nominal |parameter|) (kBoundsTooWide). Why this threshold: a box
//   that wide contains parameter vectors that differ from the nominal ones by
//   a thousand times their own scale in some coordinate, so any input that
//   touches that parameter gets logit bounds a thousand times wider than its
//   nominal logits: nothing it affects can be certified. The max(1, .) keeps
//   a model with tiny weights from being flagged for ordinary widths.
// and a classification model gets one warning (kNothingCertified, no
// budget) when no row of a sample of its training data (up to
// kVacuitySampleRows, evenly spread) is certified stable at any trained
// budget n > 0: every certificate it would give on data like its own is
// "not certified". Regression models get only the width checks (they have
// no stability).
//
// These are heuristics about usefulness, not about soundness: the bounds stay
// sound; a job without warnings may still certify little.
//
// Thread-safety: pure functions.
#ifndef AGT_SERVER_DOMAIN_VACUITY_H_
#define AGT_SERVER_DOMAIN_VACUITY_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/dataset.h"
#include "server/domain/certifier.h"
#include "server/store/store.h"

namespace agt::server {

inline constexpr double kVacuousWidthRatio = 1e3;
inline constexpr int64_t kVacuitySampleRows = 1024;

// Up to kVacuitySampleRows rows of `data`, evenly spread (all rows when it
// has no more), with their labels.
agt::Dataset VacuitySample(const agt::Dataset& data);

// The warnings for `model` (nominal and boxes filled in; spec, num_classes
// and input_features as stored), in box order, then the stability warning.
// `sample`: raw training rows (before polynomial expansion) with labels, as
// VacuitySample makes; empty = no stability check. Errors are the
// certifier's (the caller may treat them as "not checked").
absl::StatusOr<std::vector<JobWarningRecord>> VacuityWarnings(const ModelRecord& model,
                                                              const agt::Dataset& sample,
                                                              const CertifyOptions& options = {});

}  // namespace agt::server

#endif  // AGT_SERVER_DOMAIN_VACUITY_H_
