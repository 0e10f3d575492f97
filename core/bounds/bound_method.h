// Which bound algorithm turns a parameter box (and an input box) into bounds
// on a network's intermediate values and logits, kept apart from the interval
// arithmetic underneath it (ARCHITECTURE.md section 3, "Three seams").
//
// A bound method is how a forward bound is obtained: IBP today (eq. 21); CROWN
// with interval parameters (App. B), alpha-CROWN and optimisation-based
// methods (section 7) are future values. The interval product (Rump, exact,
// Nguyen) and the rounding mode are options of the arithmetic every method
// uses (interval/interval.h), never folded into this enum.
#ifndef AGT_CORE_BOUNDS_BOUND_METHOD_H_
#define AGT_CORE_BOUNDS_BOUND_METHOD_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/interval/interval.h"

namespace agt {

enum class BoundMethod {
  // Interval bound propagation: every layer maps an input box to an output
  // box (eq. 21); the per-sample gradient bounds come from the interval
  // backward pass (eq. 25-26). Sound; golden-compatible.
  kIbp,
};

// Everything that decides how bounds are computed: the algorithm and the
// arithmetic it runs on.
struct BoundOptions {
  BoundMethod method = BoundMethod::kIbp;
  IntervalOptions interval;
};

// "ibp".
absl::StatusOr<BoundMethod> ParseBoundMethod(const std::string& name);
std::string BoundMethodName(BoundMethod method);

}  // namespace agt

#endif  // AGT_CORE_BOUNDS_BOUND_METHOD_H_
