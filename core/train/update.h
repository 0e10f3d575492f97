// The state of an AGT run and the parameter update of one step (Algorithm 1's
// last line; goldens README, semantics 7): the nominal SGD update and the box
// update Theta_{t+1} = [thetaL - lr DeltaU, thetaU - lr DeltaL], with L1, L2,
// momentum and learning-rate decay.
#ifndef AGT_CORE_TRAIN_UPDATE_H_
#define AGT_CORE_TRAIN_UPDATE_H_

#include <cstdint>
#include <vector>

#include "core/common/types.h"
#include "core/model/model.h"
#include "core/train/config.h"

namespace agt {

// Everything needed to continue training exactly where it stopped.
struct TrainState {
  int64_t step = 0;
  Vector nominal;
  std::vector<ParameterBox> boxes;  // one per budget
  // SGDM velocities (empty until the first step with momentum).
  Vector velocity_nominal;
  std::vector<Vector> velocity_lower;
  std::vector<Vector> velocity_upper;
};

// The optimizer update of one step (goldens README, semantics 7), exposed for
// tests. The nominal update applies L1 (before the gradient step), L2,
// momentum and the step's learning rate; the box update does the same on
// [lower, upper] with the descent bounds, so that a zero-width box with equal
// bounds moves exactly as the nominal parameters. Velocities start empty and
// are created on first use.
void ApplyNominalUpdate(const OptimizerConfig& opt, int64_t step, const Vector& direction,
                        Vector* theta, Vector* velocity);
void ApplyBoxUpdate(const OptimizerConfig& opt, int64_t step, const Vector& direction_lower,
                    const Vector& direction_upper, ParameterBox* box, Vector* velocity_lower,
                    Vector* velocity_upper);

// Clamps every entry to [-gamma, gamma] in place.
void ClampInPlace(Matrix* m, double gamma);

}  // namespace agt

#endif  // AGT_CORE_TRAIN_UPDATE_H_
