// Trains a small certified model through the installed AGT core: half-moons,
// cubic features, an MLP under removal budgets 0 and 3. Exits non-zero unless
// the budget-0 box is exactly the nominal model and the budget-3 box is a
// proper box around it.
#include <cstdio>

#include "core/data/dataset.h"
#include "core/model/model.h"
#include "core/train/train.h"

int main() {
  agt::Dataset data = agt::MakeMoons(200, 0.1, 3);
  data.x = agt::PolynomialFeatures(data.x, 3);
  agt::TrainConfig config;
  config.model = agt::ModelSpec::Mlp({9, 8, 1});
  config.loss = agt::LossKind::kBinaryCrossEntropy;
  config.batch_size = 50;
  config.epochs = 2;
  config.optimizer.learning_rate = 0.5;
  config.perturbation.kind = agt::PerturbationKind::kRemoval;
  config.budgets = {{0, 0}, {3, 0}};
  absl::StatusOr<agt::TrainResult> result =
      agt::Train(config, data, agt::InitParameters(config.model, 1));
  if (!result.ok()) {
    std::fprintf(stderr, "training failed: %s\n", result.status().ToString().c_str());
    return 1;
  }
  const agt::TrainState& state = result->state;
  if (state.boxes[0].lower != state.nominal || state.boxes[0].upper != state.nominal) {
    std::fprintf(stderr, "budget 0 is not the nominal model\n");
    return 1;
  }
  if (!state.boxes[1].Contains(state.nominal) || !(state.boxes[1].TotalWidth() > 0.0)) {
    std::fprintf(stderr, "budget 3's box does not hold the nominal model\n");
    return 1;
  }
  std::printf("agt consumer: %lld steps, total width at n=3: %.6g\n",
              static_cast<long long>(result->iterations), state.boxes[1].TotalWidth());
  return 0;
}
