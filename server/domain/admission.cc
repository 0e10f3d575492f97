#include "server/domain/admission.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/common/status_details.h"
#include "core/layers/registry.h"

namespace agt::server {
namespace {

constexpr double kDouble = sizeof(double);
// The CPU backend's fixed chunk of the factored passes (cpu_backend.cc).
constexpr double kChunkRows = 256;
// Share of the machine's memory the default limit gives to jobs.
constexpr double kDefaultMemoryShare = 0.75;
// A job's threads (stacks) and allocator arenas.
constexpr double kRuntimeBytes = 32.0 * 1000 * 1000;
// Per tensor in a blob (store/blob.h: shape, checksum): generous.
constexpr double kBlobTensorOverhead = 64;

int EffectiveThreads(const agt::TrainConfig& config, int threads_per_job) {
  int threads = threads_per_job > 0
                    ? threads_per_job
                    : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // The CPU backend's rule: small steps run on one thread.
  if (static_cast<double>(config.model.NumParameters()) * config.batch_size < 200000) threads = 1;
  return threads;
}

// Values one sample holds entering and leaving each trained layer with
// parameters, as the factored passes store them.
struct LayerWidths {
  double in = 0;   // stored per sample for the input side of the factors
  double out = 0;  // per sample for the output-gradient side
  double weight_in = 0;  // ParamSlice::in (phase-2 block width)
};

std::vector<LayerWidths> FactorWidths(const agt::ModelSpec& model) {
  std::vector<LayerWidths> widths;
  absl::StatusOr<agt::Network> net = agt::Network::Build(model.layers, model.FeatureShape());
  if (!net.ok()) return widths;
  for (size_t i = 0; i < net->size(); ++i) {
    const agt::Layer& layer = net->layer(i);
    const agt::LayerSpec& spec = model.layers[i];
    LayerWidths w;
    w.in = static_cast<double>(layer.input_shape().size());
    w.out = static_cast<double>(layer.output_shape().size());
    if (spec.kind == agt::LayerKind::kDense) {
      w.weight_in = spec.in;
    } else if (spec.kind == agt::LayerKind::kConv2d) {
      // Conv factors hold the patch matrix (im2col): one row of
      // in_channels x kh x kw values per output position, so every input
      // value up to kh x kw times (once when the stride equals the kernel).
      w.weight_in = static_cast<double>(spec.conv.in_channels) * spec.conv.kernel_h *
                    spec.conv.kernel_w;
      const double positions = w.out / std::max(1, spec.conv.out_channels);
      w.in = std::max(w.in, positions * w.weight_in);
    } else {
      continue;  // no parameters: its values are the next layer's input
    }
    widths.push_back(w);
  }
  return widths;
}

// Values per sample the frozen prefix needs at its widest layer (by IBP with
// point parameters: a lower and an upper copy of the layer's input, its patch
// matrix for a conv2d, and its output), and the features it hands on.
struct FrozenWidths {
  double widest = 0;
  double features = 0;
};

FrozenWidths FrozenPrefixWidths(const agt::ModelSpec& model) {
  FrozenWidths f;
  if (model.frozen.empty()) return f;
  absl::StatusOr<agt::Network> net = agt::Network::Build(model.frozen.layers, model.InputShape());
  if (!net.ok()) return f;
  for (size_t i = 0; i < net->size(); ++i) {
    const agt::LayerSpec& spec = model.frozen.layers[i];
    double in = static_cast<double>(net->layer(i).input_shape().size());
    const double out = static_cast<double>(net->layer(i).output_shape().size());
    if (spec.kind == agt::LayerKind::kConv2d) {
      in += static_cast<double>(out / std::max(1, spec.conv.out_channels)) * spec.conv.in_channels *
            spec.conv.kernel_h * spec.conv.kernel_w;
    }
    f.widest = std::max(f.widest, 2.0 * (in + out));
  }
  f.features = static_cast<double>(net->output_shape().size());
  return f;
}

int64_t ToBytes(double bytes) {
  if (!(bytes < 9e18)) return std::numeric_limits<int64_t>::max();
  return static_cast<int64_t>(std::ceil(bytes));
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

JobEstimate EstimateJob(const agt::TrainConfig& config, int64_t num_rows, int raw_features,
                        int threads_per_job) {
  const double p = static_cast<double>(config.model.NumParameters());
  const double b = config.batch_size;
  const double nb = static_cast<double>(config.budgets.size());
  const double width = config.model.InputDim();
  const bool poisoning = config.perturbation.kind == agt::PerturbationKind::kBoundedPoisoning;
  const bool momentum = config.optimizer.momentum_enabled || config.optimizer.momentum > 0.0;
  const double threads = EffectiveThreads(config, threads_per_job);

  JobEstimate e;
  e.threads = static_cast<int>(threads);
  // Aggregators: both sides keep min(k, b - k) extremes per parameter
  // (StreamingExtremeSum), plus thresholds (2 P) and four lane sums (4 P).
  double aggregator_values = p;  // the nominal aggregator's sum
  for (const agt::Budget& budget : config.budgets) {
    const double k = budget.EffectiveK(config.perturbation);
    const double keep = std::max(0.0, std::min(k, b - k));
    aggregator_values += p * (2.0 * keep + 6.0);
  }
  e.aggregator_bytes = ToBytes(aggregator_values * kDouble);

  // Passes: every pass's factors of the whole batch live until Aggregate.
  const double passes = 1.0 + nb * (poisoning ? 2.0 : 1.0);
  double per_sample = 0, chunk_per_sample = 0, block_values = 0;
  for (const LayerWidths& w : FactorWidths(config.model)) {
    per_sample += 4.0 * w.out + 3.0 * w.in;
    // In flight per chunk: interval activations, Rump's mid/rad/mag of the
    // input and the products' outputs (a generous 8 copies per width).
    chunk_per_sample += 8.0 * (w.in + w.out);
    // Phase 2 (cpu_backend.cc RunTask): rows x (group of weight rows) per
    // thread, four matrices.
    const double group = std::max(1.0, std::floor(512.0 / std::max(1.0, w.weight_in)));
    const double full = std::max(group * w.weight_in, w.out);
    const double rows = config.fragment_size > 0 ? config.fragment_size
                                                 : std::clamp(std::floor(16384.0 / full), 16.0,
                                                              512.0);
    block_values = std::max(block_values, 4.0 * rows * full);
  }
  // The batch (nominal, and lower/upper under feature poisoning), and through
  // a frozen prefix its widest layer and the features it hands on.
  const FrozenWidths frozen = FrozenPrefixWidths(config.model);
  const double copies = poisoning ? 3.0 : 1.0;
  const double features = b * copies * (width + frozen.widest + frozen.features);
  const double boxed_weights = 6.0 * p * nb;
  const double in_flight = threads * (std::min(b, kChunkRows) * chunk_per_sample + block_values);
  // The factors held at once: the whole batch, or groups of factor_rows
  // rounded up to whole chunks (the batch itself is then kept until the
  // groups are done: `features`).
  double held_rows = b;
  if (config.factor_rows > 0) {
    held_rows = std::min(b, std::ceil(config.factor_rows / kChunkRows) * kChunkRows);
  }
  e.factor_rows = config.factor_rows;
  e.pass_bytes = ToBytes(
      (passes * held_rows * per_sample + features + boxed_weights + in_flight + 3.0 * b) *
      kDouble);

  // State: nominal + boxes (+ velocities), the step's directions and
  // temporaries (Finish, the box update), and at a checkpoint its encoding
  // plus SQLite's copy of the bound blob.
  const double state_vectors = (1.0 + 2.0 * nb) * (momentum ? 2.0 : 1.0);
  const double tensors = state_vectors;
  e.checkpoint_bytes = ToBytes(state_vectors * p * kDouble + tensors * kBlobTensorOverhead + 64);
  const double directions = 1.0 + 2.0 * nb;
  e.state_bytes = ToBytes((state_vectors + directions + 6.0) * p * kDouble +
                          2.0 * static_cast<double>(e.checkpoint_bytes));

  // Dataset: the stored blob and its decoded matrix, then the expansion.
  const double rows = static_cast<double>(num_rows);
  e.dataset_bytes = ToBytes(rows * (2.0 * raw_features + width + 3.0) * kDouble);

  // What the parts above do not see: the passes' many short-lived
  // temporaries leave freed memory that the allocator keeps (measured up to
  // about as much again as the passes' live data), rounding of the
  // aggregators' and state's allocations, and the trainer's threads and
  // arenas.
  e.slack_bytes = ToBytes(0.05 * static_cast<double>(e.aggregator_bytes) + 1.0 * e.pass_bytes +
                          0.25 * (static_cast<double>(e.state_bytes) + e.dataset_bytes) +
                          kRuntimeBytes);
  e.peak_bytes = ToBytes(static_cast<double>(e.aggregator_bytes) + e.pass_bytes + e.state_bytes +
                         e.dataset_bytes + e.slack_bytes);
  e.total_steps = config.batch_size > 0 ? (num_rows / config.batch_size) * config.epochs : 0;
  // Per step: forward and backward interval products for every pass (about
  // 8 operations per parameter and row), expanding and aggregating every
  // budget's bounds and the nominal gradients (about 6).
  e.work_ops = static_cast<double>(e.total_steps) * b * p * (8.0 * passes + 6.0 * (nb + 1.0));
  return e;
}

std::string JobEstimate::Describe() const {
  return absl::StrCat(FormatBytes(peak_bytes), " (aggregators ", FormatBytes(aggregator_bytes),
                      ", passes ", FormatBytes(pass_bytes), ", parameter state ",
                      FormatBytes(state_bytes), ", dataset ", FormatBytes(dataset_bytes),
                      ", allocator and runtime slack ", FormatBytes(slack_bytes), ")");
}

absl::Status CheckJobFits(const JobEstimate& estimate, const JobLimits& limits) {
  if (limits.max_job_memory_bytes > 0 && estimate.peak_bytes > limits.max_job_memory_bytes) {
    return WithQuota(
        WithReason(absl::ResourceExhaustedError(absl::StrCat(
                       "job needs an estimated ", estimate.Describe(), "; the server's ",
                       limits.max_job_memory_source, " is ",
                       FormatBytes(limits.max_job_memory_bytes),
                       ". The aggregators keep min(n, batch_size - n) values per parameter for "
                       "each budget: lower the budgets, the batch size or the model size")),
                   kReasonJobMemoryLimit),
        "server/job_memory");
  }
  if (limits.max_blob_bytes > 0 && estimate.checkpoint_bytes > limits.max_blob_bytes) {
    return WithQuota(
        WithReason(absl::ResourceExhaustedError(absl::StrCat(
                       "job's checkpoint (nominal parameters, a box per budget and velocities) "
                       "would be an estimated ",
                       FormatBytes(estimate.checkpoint_bytes), ", above the store's blob limit of ",
                       FormatBytes(limits.max_blob_bytes),
                       " (SQLite's SQLITE_LIMIT_LENGTH): use fewer budgets or a smaller model")),
                   kReasonCheckpointSizeLimit),
        "server/blob_size");
  }
  return absl::OkStatus();
}

absl::StatusOr<JobEstimate> AdmitJob(const ResolvedJob& job, const DatasetRecord& dataset,
                                     const JobLimits& limits) {
  const JobEstimate estimate =
      EstimateJob(job.config, dataset.num_rows, job.input_features, limits.threads_per_job);
  const absl::Status fits = CheckJobFits(estimate, limits);
  if (fits.ok()) return estimate;
  // Made to fit, cheapest first: one thread (no other thread's scratch),
  // then factors held kChunkRows x threads rows at a time (the passes'
  // memory no longer grows with the batch), then both.
  agt::TrainConfig grouped = job.config;
  grouped.factor_rows = static_cast<int>(kChunkRows) * std::max(1, estimate.threads);
  const agt::TrainConfig* configs[] = {&job.config, &grouped, &grouped};
  const int threads[] = {1, limits.threads_per_job, 1};
  for (int i = 0; i < 3; ++i) {
    if (i == 0 && estimate.threads <= 1) continue;
    if (i == 2) grouped.factor_rows = static_cast<int>(kChunkRows);
    const JobEstimate e =
        EstimateJob(*configs[i], dataset.num_rows, job.input_features, threads[i]);
    if (e.factor_rows > 0 && e.factor_rows >= job.config.batch_size) continue;
    if (CheckJobFits(e, limits).ok()) return e;
  }
  return fits;
}

absl::StatusOr<int64_t> MachineMemoryBytes() {
  int64_t total = 0;
  {
    std::istringstream meminfo(ReadFile("/proc/meminfo"));
    std::string key, unit;
    int64_t kib = 0;
    while (meminfo >> key >> kib) {
      std::getline(meminfo, unit);
      if (key == "MemTotal:") {
        total = kib * 1024;
        break;
      }
    }
  }
  if (total <= 0) {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    if (pages > 0 && page > 0) total = static_cast<int64_t>(pages) * page;
  }
  // A container's limit (cgroup v2, then v1) when lower.
  for (const char* path :
       {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    const std::string text(absl::StripAsciiWhitespace(ReadFile(path)));
    int64_t limit = 0;
    if (absl::SimpleAtoi(text, &limit) && limit > 0 && (total <= 0 || limit < total)) {
      total = limit;
    }
  }
  if (total <= 0) return absl::UnavailableError("cannot read the machine's memory size");
  return total;
}

int64_t DefaultMaxJobMemory(int64_t machine_bytes, int workers, std::string* source) {
  workers = std::max(1, workers);
  const int64_t limit =
      static_cast<int64_t>(static_cast<double>(machine_bytes) * kDefaultMemoryShare / workers);
  if (source != nullptr) {
    *source = absl::StrCat("--max-job-memory (default: 75% of the machine's ",
                           FormatBytes(machine_bytes), " / ", workers,
                           workers == 1 ? " worker)" : " workers)");
  }
  return limit;
}

std::string FormatBytes(int64_t bytes) {
  const double v = static_cast<double>(bytes);
  if (v >= 1e12) return absl::StrFormat("%.1f TB", v / 1e12);
  if (v >= 1e9) return absl::StrFormat("%.1f GB", v / 1e9);
  if (v >= 1e6) return absl::StrFormat("%.1f MB", v / 1e6);
  if (v >= 1e3) return absl::StrFormat("%.1f KB", v / 1e3);
  return absl::StrCat(bytes, " B");
}

absl::StatusOr<int64_t> ParseByteSize(const std::string& text) {
  const std::string t(absl::StripAsciiWhitespace(text));
  size_t end = 0;
  while (end < t.size() && (absl::ascii_isdigit(static_cast<unsigned char>(t[end])) ||
                            t[end] == '.')) {
    ++end;
  }
  double number = 0;
  const std::string unit = absl::AsciiStrToUpper(t.substr(end));
  if (end == 0 || !absl::SimpleAtod(t.substr(0, end), &number)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", text, "' is not a memory size (bytes, or a number with K, M, G, T, KiB, MiB, GiB)"));
  }
  double scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  if (unit == "K" || unit == "KB") scale = 1e3;
  if (unit == "M" || unit == "MB") scale = 1e6;
  if (unit == "G" || unit == "GB") scale = 1e9;
  if (unit == "T" || unit == "TB") scale = 1e12;
  if (unit == "KIB") scale = 1024.0;
  if (unit == "MIB") scale = 1024.0 * 1024;
  if (unit == "GIB") scale = 1024.0 * 1024 * 1024;
  if (unit == "TIB") scale = 1024.0 * 1024 * 1024 * 1024;
  if (scale == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "': unknown unit '", unit, "' (K, M, G, T, KiB, MiB, GiB, TiB)"));
  }
  const double bytes = number * scale;
  if (!(bytes >= 1) || bytes > 9e18) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' must be at least 1 byte and at most 9 EB"));
  }
  return static_cast<int64_t>(bytes);
}

}  // namespace agt::server
