#include "core/backend/backend.h"

namespace agt {

void ApplyDirections(const OptimizerConfig& optimizer, int64_t step,
                     const StepDirections& directions, TrainState* state) {
  for (size_t j = 0; j < state->boxes.size(); ++j) {
    ApplyBoxUpdate(optimizer, step, directions.lower[j], directions.upper[j], &state->boxes[j],
                   &state->velocity_lower[j], &state->velocity_upper[j]);
  }
  ApplyNominalUpdate(optimizer, step, directions.nominal, &state->nominal,
                     &state->velocity_nominal);
}

}  // namespace agt
