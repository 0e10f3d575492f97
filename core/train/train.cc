#include "core/train/train.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace agt {
namespace {

absl::Status Invalid(const std::string& msg) { return absl::InvalidArgumentError(msg); }

}  // namespace

Trainer::Trainer(const TrainConfig& config, const Dataset& data, BatchPlan plan,
                 std::unique_ptr<ComputeBackend> backend)
    : config_(config), data_(data), plan_(std::move(plan)), backend_(std::move(backend)) {}

Trainer::~Trainer() = default;

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const TrainConfig& config,
                                                         const Dataset& data, const Vector& init,
                                                         std::unique_ptr<ComputeBackend> backend) {
  if (absl::Status s = data.Validate(); !s.ok()) return s;
  if (absl::Status s = config.Validate(data.dim(), data.num_classes, data.size()); !s.ok()) {
    return s;
  }
  if (init.size() != config.model.NumParameters()) {
    return Invalid(absl::StrCat("initial parameters have ", init.size(), " values, the model ",
                                config.model.NumParameters()));
  }
  if (!init.allFinite()) return Invalid("initial parameters contain NaN or Inf");
  absl::StatusOr<BatchPlan> plan =
      BatchPlan::Create(data.size(), config.batch_size, config.removed_rows);
  if (!plan.ok()) return plan.status();  // Validate checked it already
  if (backend == nullptr) backend = MakeCpuBackend(config.threads);
  std::unique_ptr<Trainer> t(new Trainer(config, data, *std::move(plan), std::move(backend)));
  if (absl::Status s = t->backend_->Prepare(t->config_); !s.ok()) return s;
  t->batches_per_epoch_ = data.size() / config.batch_size;
  t->dropped_rows_ = data.size() % config.batch_size;
  t->total_steps_ = t->batches_per_epoch_ * config.epochs;
  t->state_.nominal = init;
  for (size_t i = 0; i < config.budgets.size(); ++i) {
    t->state_.boxes.push_back(ParameterBox::Point(init));
  }
  t->state_.velocity_lower.resize(config.budgets.size());
  t->state_.velocity_upper.resize(config.budgets.size());
  return t;
}

absl::Status Trainer::Restore(const TrainState& state) {
  const Index p = config_.model.NumParameters();
  if (state.step < 0 || state.step > total_steps_) {
    return Invalid(absl::StrCat("checkpoint step ", state.step, " is outside 0..", total_steps_));
  }
  if (state.nominal.size() != p || state.boxes.size() != config_.budgets.size()) {
    return Invalid("checkpoint does not match the model or the budget set");
  }
  for (const ParameterBox& b : state.boxes) {
    if (b.lower.size() != p || b.upper.size() != p) {
      return Invalid("checkpoint box does not match the model");
    }
  }
  state_ = state;
  state_.velocity_lower.resize(config_.budgets.size());
  state_.velocity_upper.resize(config_.budgets.size());
  return absl::OkStatus();
}

absl::StatusOr<ProgressEvent> Trainer::Step() {
  if (done()) return absl::FailedPreconditionError("training is already complete");
  const TrainConfig& cfg = config_;
  const int64_t t = state_.step;
  const int b = cfg.batch_size;
  // The fixed data order (section 5.2): batch t mod (batches per epoch).
  const int64_t k = t % batches_per_epoch_;
  const Index first_row = k * b;
  if (plan_.changes_batches() && plan_.RemovedFrom(k) > 0) {
    // Rows removed in place (batches.h): the batch keeps its other rows.
    const std::vector<Index> rows = plan_.Rows(k);
    if (rows.empty()) return SkipEmptyBatch();
    batch_x_.resize(static_cast<Index>(rows.size()), data_.dim());
    batch_y_.resize(static_cast<Index>(rows.size()));
    for (size_t r = 0; r < rows.size(); ++r) {
      batch_x_.row(static_cast<Index>(r)) = data_.x.row(rows[r]);
      batch_y_(static_cast<Index>(r)) = data_.y(rows[r]);
    }
    // Per-sample gradient bounds of the batch: nominal at theta_t, and for
    // every budget n over Theta_t(n) (and the perturbed inputs and labels).
    backend_->ComputeFactors(batch_x_, batch_y_, state_.nominal, state_.boxes);
  } else {
    const auto x = data_.x.middleRows(first_row, b);
    const Vector y = data_.y.segment(first_row, b);
    backend_->ComputeFactors(x, y, state_.nominal, state_.boxes);
  }
  // Clip and aggregate by the perturbation model (Theorems 6, 8, 9).
  StepDirections d;
  backend_->Aggregate(&d);
  if (absl::Status s = backend_->status(); !s.ok()) return s;
  // Theta_{t+1}(n) = [thetaL - lr DeltaU, thetaU - lr DeltaL]; theta_{t+1}.
  backend_->UpdateParameters(cfg.optimizer, t, d, &state_);

  ProgressEvent ev;
  for (size_t j = 0; j < state_.boxes.size(); ++j) {
    if (!state_.boxes[j].lower.allFinite() || !state_.boxes[j].upper.allFinite()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the bounds for budget ", cfg.budgets[j].Describe(cfg.perturbation),
                       " became non-finite at step ", t + 1,
                       ": training diverged; lower the learning rate or the budget"));
    }
    ev.total_width.push_back(state_.boxes[j].TotalWidth());
  }
  if (!state_.nominal.allFinite()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the nominal parameters became non-finite at step ", t + 1,
                     ": training diverged; lower the learning rate"));
  }
  state_.step = t + 1;
  ev.iteration = state_.step;
  ev.total_iterations = total_steps_;
  ev.epoch = static_cast<int>(t / batches_per_epoch_);
  ev.nominal_loss = d.nominal_loss;
  ev.learning_rate = cfg.optimizer.LearningRate(t);
  return ev;
}

ProgressEvent Trainer::SkipEmptyBatch() {
  // No rows, no gradient: the parameters, boxes and velocities stay; the
  // step still counts, so later steps keep their learning rates.
  const int64_t t = state_.step;
  ProgressEvent ev;
  for (const ParameterBox& box : state_.boxes) ev.total_width.push_back(box.TotalWidth());
  state_.step = t + 1;
  ev.iteration = state_.step;
  ev.total_iterations = total_steps_;
  ev.epoch = static_cast<int>(t / batches_per_epoch_);
  ev.nominal_loss = 0.0;
  ev.learning_rate = config_.optimizer.LearningRate(t);
  return ev;
}

absl::StatusOr<TrainResult> Trainer::Run(const TrainCallbacks& callbacks) {
  while (!done()) {
    if (callbacks.cancel && callbacks.cancel->load()) {
      return absl::CancelledError(absl::StrCat("training cancelled after step ", state_.step));
    }
    absl::StatusOr<ProgressEvent> ev = Step();
    if (!ev.ok()) return ev.status();
    if (callbacks.progress) callbacks.progress(*ev);
  }
  TrainResult r;
  r.state = state_;
  r.iterations = state_.step;
  r.batches_per_epoch = batches_per_epoch_;
  r.dropped_rows_per_epoch = dropped_rows_;
  return r;
}

absl::StatusOr<TrainResult> Train(const TrainConfig& config, const Dataset& data,
                                  const Vector& init, const TrainCallbacks& callbacks) {
  absl::StatusOr<std::unique_ptr<Trainer>> t = Trainer::Create(config, data, init);
  if (!t.ok()) return t.status();
  return (*t)->Run(callbacks);
}

}  // namespace agt
