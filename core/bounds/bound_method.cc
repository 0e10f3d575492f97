#include "core/bounds/bound_method.h"

#include "absl/strings/str_cat.h"

namespace agt {

absl::StatusOr<BoundMethod> ParseBoundMethod(const std::string& name) {
  if (name == "ibp" || name == "interval") return BoundMethod::kIbp;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown bound method \"", name, "\" (expected ibp)"));
}

std::string BoundMethodName(BoundMethod method) {
  switch (method) {
    case BoundMethod::kIbp:
      return "ibp";
  }
  return "unknown";
}

}  // namespace agt
