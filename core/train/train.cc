#include "core/train/train.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/aggregate/aggregate.h"
#include "core/bounds/ibp.h"

namespace agt {
namespace {

absl::Status Invalid(const std::string& msg) { return absl::InvalidArgumentError(msg); }

void L1Step(double s, Vector* theta) {
  for (Index i = 0; i < theta->size(); ++i) {
    const double v = (*theta)[i];
    (*theta)[i] = v - s * static_cast<double>((v > 0) - (v < 0));
  }
}

}  // namespace

void ClampInPlace(Matrix* m, double gamma) { *m = m->cwiseMax(-gamma).cwiseMin(gamma); }

void ApplyNominalUpdate(const OptimizerConfig& opt, int64_t step, const Vector& direction,
                        Vector* theta, Vector* velocity) {
  const double lr = opt.LearningRate(step);
  Vector g = direction;
  if (opt.l2 > 0.0) g += opt.l2 * *theta;
  if (opt.l1 > 0.0) L1Step(lr * opt.l1, theta);
  if (opt.momentum_enabled) {
    if (velocity->size() == 0) {
      *velocity = g;
    } else {
      *velocity = opt.momentum * *velocity + (1.0 - opt.dampening) * g;
    }
    if (opt.nesterov) {
      g += opt.momentum * *velocity;
    } else {
      g = *velocity;
    }
  }
  *theta -= lr * g;
}

void ApplyBoxUpdate(const OptimizerConfig& opt, int64_t step, const Vector& direction_lower,
                    const Vector& direction_upper, ParameterBox* box, Vector* velocity_lower,
                    Vector* velocity_upper) {
  const double lr = opt.LearningRate(step);
  // g_lo bounds the direction that moves the upper end, g_hi the lower end:
  // theta - lr (g + l2 theta) is increasing in theta while lr * l2 < 1.
  Vector g_lo = direction_lower;
  Vector g_hi = direction_upper;
  if (opt.l2 > 0.0) {
    g_lo += opt.l2 * box->upper;
    g_hi += opt.l2 * box->lower;
  }
  if (opt.l1 > 0.0) {
    // theta - s sign(theta) over [l, u]; across zero the image is
    // [min(l + s, -s), max(u - s, s)].
    const double s = lr * opt.l1;
    for (Index i = 0; i < box->size(); ++i) {
      const double l = box->lower[i], u = box->upper[i];
      if (l <= 0.0 && u >= 0.0) {
        box->lower[i] = std::min(l + s, -s);
        box->upper[i] = std::max(u - s, s);
      } else {
        box->lower[i] = l - s * static_cast<double>((l > 0) - (l < 0));
        box->upper[i] = u - s * static_cast<double>((u > 0) - (u < 0));
      }
    }
  }
  if (opt.momentum_enabled) {
    // The reference's rule: momentum on each bound separately (not established as sound).
    if (velocity_lower->size() == 0) {
      *velocity_lower = g_lo;
      *velocity_upper = g_hi;
    } else {
      *velocity_lower = opt.momentum * *velocity_lower + (1.0 - opt.dampening) * g_lo;
      *velocity_upper = opt.momentum * *velocity_upper + (1.0 - opt.dampening) * g_hi;
    }
    if (opt.nesterov) {
      g_lo += opt.momentum * *velocity_lower;
      g_hi += opt.momentum * *velocity_upper;
    } else {
      g_lo = *velocity_lower;
      g_hi = *velocity_upper;
    }
  }
  box->lower -= lr * g_hi;
  box->upper -= lr * g_lo;
}

// Per-thread scratch, reused across fragments and steps (no allocation in the
// steady state).
struct Trainer::Impl {
  // Per-thread buffers for the expanded blocks (rows x in).
  struct Scratch {
    Matrix lower, upper, perturbed_lower, perturbed_upper;
  };
  int threads = 1;
  int block_rows = 0;  // rows per expanded block (cache size only); 0 = automatic
  std::vector<Scratch> scratch;
  std::vector<Aggregator> aggregators;  // one per budget
  std::optional<NominalAggregator> nominal_aggregator;
  // Factored per-sample gradients of the current batch (phase 1 of a step).
  std::vector<DenseFactors> nominal_factors;
  std::vector<std::vector<DenseFactors>> factors;            // per budget
  std::vector<std::vector<DenseFactors>> perturbed_factors;  // per budget (poisoning)
  Vector losses;
};

// Runs fn(task, thread) for task in [0, num_tasks) on up to `threads`
// threads; which thread runs which task does not affect results.
template <typename Fn>
void ParallelFor(size_t num_tasks, int threads, Fn&& fn) {
  threads = static_cast<int>(std::min<size_t>(threads, num_tasks));
  if (threads <= 1) {
    for (size_t task = 0; task < num_tasks; ++task) fn(task, 0);
    return;
  }
  std::atomic<size_t> next{0};
  auto worker = [&](int w) {
    for (size_t task; (task = next.fetch_add(1)) < num_tasks;) fn(task, w);
  };
  std::vector<std::thread> pool;
  for (int w = 1; w < threads; ++w) pool.emplace_back(worker, w);
  worker(0);
  for (std::thread& th : pool) th.join();
}

Trainer::Trainer(const TrainConfig& config, const Dataset& data)
    : config_(config), data_(data), impl_(std::make_unique<Impl>()) {}

Trainer::~Trainer() = default;

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const TrainConfig& config,
                                                         const Dataset& data, const Vector& init) {
  if (absl::Status s = data.Validate(); !s.ok()) return s;
  if (absl::Status s = config.Validate(data.dim(), data.num_classes, data.size()); !s.ok()) {
    return s;
  }
  if (init.size() != config.model.NumParameters()) {
    return Invalid(absl::StrCat("initial parameters have ", init.size(), " values, the model ",
                                config.model.NumParameters()));
  }
  if (!init.allFinite()) return Invalid("initial parameters contain NaN or Inf");
  std::unique_ptr<Trainer> t(new Trainer(config, data));
  t->batches_per_epoch_ = data.size() / config.batch_size;
  t->dropped_rows_ = data.size() % config.batch_size;
  t->total_steps_ = t->batches_per_epoch_ * config.epochs;
  t->state_.nominal = init;
  for (size_t i = 0; i < config.budgets.size(); ++i) {
    t->state_.boxes.push_back(ParameterBox::Point(init));
  }
  t->state_.velocity_lower.resize(config.budgets.size());
  t->state_.velocity_upper.resize(config.budgets.size());

  Impl& impl = *t->impl_;
  const Index p = config.model.NumParameters();
  // 0: chosen per block so that it fits the cache (see Step).
  impl.block_rows = config.fragment_size;
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  impl.threads = config.threads > 0 ? config.threads : hw;
  // Small steps are not worth a thread hand-off.
  if (p * config.batch_size < 200000) impl.threads = 1;
  impl.scratch.resize(impl.threads);
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
  Impl& impl = *impl_;
  const int64_t t = state_.step;
  const int b = cfg.batch_size;
  const Index first_row = (t % batches_per_epoch_) * b;
  const Index p = cfg.model.NumParameters();
  const size_t nb = cfg.budgets.size();
  const bool poisoning = cfg.perturbation.kind == PerturbationKind::kBoundedPoisoning;
  const double gamma = cfg.clip_gamma.value_or(0.0);
  const std::vector<DenseSlice> layout = cfg.model.Layout();
  const auto x = data_.x.middleRows(first_row, b);
  const Vector y = data_.y.segment(first_row, b);

  // Aggregators persist across steps (their memory is large: reallocating it
  // every step costs page faults). The trainer uses one lane: threads split
  // the parameters, not the rows, so every column sums its rows in order.
  if (impl.aggregators.empty()) {
    const AggregationKind kind = cfg.perturbation.kind == PerturbationKind::kRemoval
                                     ? AggregationKind::kRemoval
                                 : cfg.perturbation.kind == PerturbationKind::kSubstitution
                                     ? AggregationKind::kSubstitution
                                     : AggregationKind::kBoundedPoisoning;
    impl.aggregators.reserve(nb);
    for (size_t j = 0; j < nb; ++j) {
      impl.aggregators.emplace_back(kind, p, b, cfg.budgets[j].EffectiveK(cfg.perturbation), gamma,
                                    /*num_lanes=*/1);
    }
    impl.nominal_aggregator.emplace(p, b, /*num_lanes=*/1);
    impl.factors.resize(nb);
    impl.perturbed_factors.resize(nb);
  }
  std::vector<BoxedModel> boxed;
  boxed.reserve(nb);
  for (size_t j = 0; j < nb; ++j) {
    boxed.emplace_back(cfg.model, state_.boxes[j], cfg.bounds.interval.product);
    impl.aggregators[j].Reset();
  }
  impl.nominal_aggregator->Reset();

  // Phase 1: factored per-sample gradients (forward and backward passes on the
  // whole batch): the nominal pass, and per budget the box-only pass and, for
  // poisoning, the pass over perturbed inputs and labels.
  const size_t passes_per_budget = poisoning ? 2 : 1;
  const LabelPerturbation no_label;
  ParallelFor(1 + nb * passes_per_budget, impl.threads, [&](size_t task, int) {
    if (task == 0) {
      NominalGradientFactors(cfg.model, state_.nominal, x, y, cfg.loss, &impl.nominal_factors,
                             &impl.losses);
      return;
    }
    const size_t j = (task - 1) / passes_per_budget;
    if ((task - 1) % passes_per_budget == 0) {
      boxed[j].GradientFactors(IntervalMatrix::Point(x), y, cfg.loss, no_label, &impl.factors[j]);
    } else {
      // Labels move only for budgets that poison labels; epsilon applies to
      // every row even with no feature budget, as in the reference (sound,
      // and golden-compatible).
      LabelPerturbation label = cfg.perturbation.label;
      label.enabled = label.enabled && cfg.budgets[j].label_n > 0;
      boxed[j].GradientFactors(IntervalMatrix::Ball(x, cfg.perturbation.epsilon), y, cfg.loss,
                               label, &impl.perturbed_factors[j]);
    }
  });

  // Phase 2: expand the factors into per-sample bounds one block (rows x a
  // few weight rows) at a time and fold each block into its aggregator while
  // it is in cache. Tasks own disjoint parameter ranges.
  struct Task {
    size_t stream;  // budget index, or nb for the nominal gradients
    size_t layer;
    int o_begin, o_end;  // weight rows; o_begin == -1: the bias
  };
  std::vector<Task> tasks;
  for (size_t stream = 0; stream <= nb; ++stream) {
    for (size_t k = 0; k < layout.size(); ++k) {
      const DenseSlice& sl = layout[k];
      tasks.push_back({stream, k, -1, -1});
      const int chunk = std::max(1, static_cast<int>(16384 / sl.in));
      for (int o = 0; o < sl.out; o += chunk) {
        tasks.push_back({stream, k, o, std::min(sl.out, o + chunk)});
      }
    }
  }
  impl.scratch.resize(impl.threads);
  auto clamp = [&](Matrix* m) {
    if (cfg.clip_gamma) ClampInPlace(m, gamma);
  };
  ParallelFor(tasks.size(), impl.threads, [&](size_t ti, int w) {
    const Task& task = tasks[ti];
    Impl::Scratch& sc = impl.scratch[w];
    const DenseSlice& sl = layout[task.layer];
    const bool nominal = task.stream == nb;
    const bool bias = task.o_begin < 0;
    const DenseFactors& f =
        nominal ? impl.nominal_factors[task.layer] : impl.factors[task.stream][task.layer];
    const DenseFactors* pf =
        !nominal && poisoning ? &impl.perturbed_factors[task.stream][task.layer] : nullptr;
    // Weight rows are contiguous in the flat layout: expand a group of them
    // side by side, so each aggregator call covers at least ~512 parameters
    // (narrow layers would otherwise pay per-call overhead for a few columns).
    const int o_first = bias ? 0 : task.o_begin;
    const int o_last = bias ? 1 : task.o_end;
    const int group = bias ? 1 : std::max(1, static_cast<int>(512 / sl.in));
    const Index full_width = bias ? sl.out : static_cast<Index>(group) * sl.in;
    // Four blocks of rows x width doubles should sit in the L2 cache. Rows
    // are the outer loop, so a block of inputs z is reused by every weight row
    // of the task while it is in cache.
    const Index block_rows =
        impl.block_rows > 0 ? impl.block_rows : std::clamp<Index>(16384 / full_width, 16, 512);
    for (Index r0 = 0; r0 < b; r0 += block_rows) {
      const Index rows = std::min<Index>(block_rows, b - r0);
      for (int o0 = o_first; o0 < o_last; o0 += group) {
        const int o1 = std::min(o_last, o0 + group);
        const Index width = bias ? sl.out : static_cast<Index>(o1 - o0) * sl.in;
        const Index offset =
            bias ? sl.bias_offset : sl.weight_offset + static_cast<Index>(o0) * sl.in;
        sc.lower.resize(rows, width);
        if (!nominal) sc.upper.resize(rows, width);
        if (pf) {
          sc.perturbed_lower.resize(rows, width);
          sc.perturbed_upper.resize(rows, width);
        }
        if (nominal) {
          if (bias) {
            sc.lower = f.d_mid.middleRows(r0, rows);
          } else {
            for (int o = o0; o < o1; ++o) {
              ExpandNominalWeightRow(f, o, r0, rows, sc.lower.data() + (o - o0) * sl.in, width);
            }
          }
          clamp(&sc.lower);
          impl.nominal_aggregator->AddBlock(0, offset, width, rows, width, sc.lower.data());
          continue;
        }
        if (bias) {
          sc.lower = f.d_lower.middleRows(r0, rows);
          sc.upper = f.d_upper.middleRows(r0, rows);
          if (pf) {
            sc.perturbed_lower = pf->d_lower.middleRows(r0, rows);
            sc.perturbed_upper = pf->d_upper.middleRows(r0, rows);
          }
        } else {
          for (int o = o0; o < o1; ++o) {
            const Index col = static_cast<Index>(o - o0) * sl.in;
            ExpandWeightRow(f, o, r0, rows, cfg.bounds.interval.product, sc.lower.data() + col,
                            sc.upper.data() + col, width);
            if (pf) {
              ExpandWeightRow(*pf, o, r0, rows, cfg.bounds.interval.product, sc.perturbed_lower.data() + col,
                              sc.perturbed_upper.data() + col, width);
            }
          }
        }
        clamp(&sc.lower);
        clamp(&sc.upper);
        if (pf) {
          clamp(&sc.perturbed_lower);
          clamp(&sc.perturbed_upper);
        }
        impl.aggregators[task.stream].AddBlock(
            0, offset, width, rows, width, sc.lower.data(), sc.upper.data(),
            pf ? sc.perturbed_lower.data() : nullptr, pf ? sc.perturbed_upper.data() : nullptr);
      }
    }
  });

  const Vector direction = impl.nominal_aggregator->Finish();
  ProgressEvent ev;
  for (size_t j = 0; j < nb; ++j) {
    const DescentBounds d = impl.aggregators[j].Finish();
    ApplyBoxUpdate(cfg.optimizer, t, d.lower, d.upper, &state_.boxes[j], &state_.velocity_lower[j],
                   &state_.velocity_upper[j]);
    if (!state_.boxes[j].lower.allFinite() || !state_.boxes[j].upper.allFinite()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the bounds for budget ", cfg.budgets[j].Describe(cfg.perturbation),
                       " became non-finite at step ", t + 1,
                       ": training diverged; lower the learning rate or the budget"));
    }
    ev.total_width.push_back(state_.boxes[j].TotalWidth());
  }
  ApplyNominalUpdate(cfg.optimizer, t, direction, &state_.nominal, &state_.velocity_nominal);
  if (!state_.nominal.allFinite()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the nominal parameters became non-finite at step ", t + 1,
                     ": training diverged; lower the learning rate"));
  }
  state_.step = t + 1;

  ev.iteration = state_.step;
  ev.total_iterations = total_steps_;
  ev.epoch = static_cast<int>(t / batches_per_epoch_);
  ev.nominal_loss = impl.losses.sum() / b;
  ev.learning_rate = cfg.optimizer.LearningRate(t);
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
