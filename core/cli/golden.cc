#include "core/cli/golden.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <future>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/cli/config.h"
#include "core/cli/results.h"
#include "core/data/dataset.h"
#include "core/loss/loss.h"

namespace agt::cli {

using nlohmann::json;

namespace {

// Keys of case.json and of its runs that this runner understands (or knows to
// be descriptive only).
// clang-format off
const std::set<std::string> kKnownKeys = {
    "name", "description", "n_train", "n_test", "runs", "trace_runs",
    "model", "loss", "batch_size", "n_epochs",
    "learning_rate", "lr_decay", "lr_min", "l1_reg", "l2_reg", "optimizer", "optimizer_kwargs",
    "clip_gamma", "clip_method", "fragsize", "bound_model",
    "mode", "k_unlearn", "k_private", "k_poison", "label_k_poison", "epsilon", "label_epsilon",
    "paired_poison", "poison_target_idx", "input_shape", "frozen"};
// clang-format on

absl::Status RunError(const std::string& run, const std::string& key, absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat("case.json: run ", run, ": ", key.empty() ? "" : key + ": ", problem));
}

}  // namespace

absl::StatusOr<GoldenRun> ResolveGoldenRun(const json& case_json, size_t index,
                                           std::vector<std::string>* warnings,
                                           const json* init_json) {
  if (!case_json.is_object()) return absl::InvalidArgumentError("case.json: expected an object");
  const auto runs_it = case_json.find("runs");
  if (runs_it == case_json.end() || !runs_it->is_array()) {
    return absl::InvalidArgumentError("case.json: runs: required (an array of runs)");
  }
  if (index >= runs_it->size()) {
    return absl::OutOfRangeError(absl::StrCat("case.json: no run ", index));
  }
  const json& run = (*runs_it)[index];
  if (!run.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("case.json: runs[", index, "]: expected an object"));
  }
  // The run's keys override the case's keys.
  json merged = case_json;
  merged.erase("runs");
  merged.erase("trace_runs");
  for (auto it = run.begin(); it != run.end(); ++it) merged[it.key()] = it.value();

  GoldenRun out;
  out.name = absl::StrCat("#", index);
  if (run.contains("name") && run["name"].is_string()) out.name = run["name"].get<std::string>();
  const std::string& name = out.name;
  for (auto it = run.begin(); it != run.end(); ++it) {
    if (kKnownKeys.count(it.key()) == 0 && warnings != nullptr) {
      warnings->push_back(absl::StrCat("run ", name, ": unknown key \"", it.key(), "\" ignored"));
    }
  }

  absl::StatusOr<FieldReader> r = FieldReader::Make(merged, "");
  if (!r.ok()) return r.status();
  auto fail = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat("case.json: run ", name, ": ", s.message()));
  };
  TrainConfig& c = out.config;

  const json* model = r->Get("model");
  if (model == nullptr) return RunError(name, "model", "required");
  absl::StatusOr<std::vector<LayerSpec>> layers = LayersFromJson(*model, "model");
  if (!layers.ok()) return fail(layers.status());
  c.model.layers = *std::move(layers);
  if (absl::Status s = ReadModelShapeAndFrozen(&*r, &c.model); !s.ok()) return fail(s);
  if (!c.model.frozen.empty() && init_json != nullptr) {
    const auto frozen = init_json->find("frozen");
    if (frozen == init_json->end()) {
      return absl::InvalidArgumentError(
          "init.json: frozen: required (the parameters of the case's frozen layers)");
    }
    if (absl::Status s = ReadFrozenParameters(*frozen, "init.json: frozen", &c.model); !s.ok()) {
      return s;
    }
  }
  if (c.model.frozen.empty() || init_json != nullptr) {
    if (absl::Status s = c.model.Validate(); !s.ok()) {
      return RunError(name, "model", s.message());
    }
  }

  std::string loss = "binary_cross_entropy";
  if (absl::Status s = r->RequireString("loss", &loss); !s.ok()) return fail(s);
  absl::StatusOr<LossKind> lk = ParseLossKind(loss);
  if (!lk.ok()) return RunError(name, "loss", lk.status().message());
  c.loss = *lk;
  out.num_classes = ClassesForLoss(c.loss, c.model.OutputDim());

  if (absl::Status s = r->RequireInt("batch_size", &c.batch_size); !s.ok()) return fail(s);
  if (absl::Status s = r->RequireInt("n_epochs", &c.epochs); !s.ok()) return fail(s);

  OptimizerConfig& o = c.optimizer;
  if (absl::Status s = r->RequireDouble("learning_rate", &o.learning_rate); !s.ok()) return fail(s);
  o.lr_decay = 0.0;
  o.lr_min = 0.0;
  if (absl::Status s = r->ReadDouble("lr_decay", &o.lr_decay); !s.ok()) return fail(s);
  if (absl::Status s = r->ReadDouble("lr_min", &o.lr_min); !s.ok()) return fail(s);
  if (absl::Status s = r->ReadDouble("l1_reg", &o.l1); !s.ok()) return fail(s);
  if (absl::Status s = r->ReadDouble("l2_reg", &o.l2); !s.ok()) return fail(s);
  std::string optimizer = "SGD";
  if (absl::Status s = r->ReadString("optimizer", &optimizer); !s.ok()) return fail(s);
  const json* kwargs = r->Get("optimizer_kwargs");
  const std::string opt_upper = absl::AsciiStrToUpper(optimizer);
  if (opt_upper == "SGDM") {
    o.momentum_enabled = true;
    if (kwargs != nullptr) {
      absl::StatusOr<FieldReader> kr = FieldReader::Make(*kwargs, "optimizer_kwargs");
      if (!kr.ok()) return fail(kr.status());
      if (absl::Status s = kr->ReadDouble("momentum", &o.momentum); !s.ok()) return fail(s);
      if (absl::Status s = kr->ReadDouble("dampening", &o.dampening); !s.ok()) return fail(s);
      if (absl::Status s = kr->ReadBool("nesterov", &o.nesterov); !s.ok()) return fail(s);
      if (absl::Status s = kr->CheckNoUnknownKeys({"momentum", "dampening", "nesterov"}); !s.ok()) {
        return fail(s);
      }
    }
  } else if (opt_upper == "SGD") {
    if (kwargs != nullptr && kwargs->is_object() && !kwargs->empty() && warnings != nullptr) {
      warnings->push_back(absl::StrCat("run ", name, ": optimizer_kwargs ignored for SGD"));
    }
  } else {
    return absl::UnimplementedError(absl::StrCat("case.json: run ", name, ": optimizer \"",
                                                 optimizer, "\" is not supported (SGD or SGDM)"));
  }

  if (absl::Status s = r->ReadOptionalDouble("clip_gamma", &c.clip_gamma); !s.ok()) return fail(s);
  std::string clip_method = "clamp";
  if (absl::Status s = r->ReadString("clip_method", &clip_method); !s.ok()) return fail(s);
  if (clip_method != "clamp" && c.clip_gamma.has_value()) {
    return absl::UnimplementedError(absl::StrCat("case.json: run ", name, ": clip_method \"",
                                                 clip_method, "\" is not supported (clamp)"));
  }
  if (absl::Status s = r->ReadInt("fragsize", &c.fragment_size); !s.ok()) return fail(s);
  if (const json* bound = r->Get("bound_model"); bound != nullptr) {
    absl::StatusOr<FieldReader> br = FieldReader::Make(*bound, "bound_model");
    if (!br.ok()) return fail(br.status());
    std::string type = "interval";
    std::string matmul = "rump";
    if (absl::Status s = br->ReadString("type", &type); !s.ok()) return fail(s);
    if (absl::Status s = br->ReadString("interval_matmul", &matmul); !s.ok()) return fail(s);
    if (type != "interval") {
      return absl::UnimplementedError(absl::StrCat("case.json: run ", name, ": bound_model.type \"",
                                                   type, "\" is not supported (interval)"));
    }
    absl::StatusOr<MatMulMethod> mm = ParseMatMulMethod(matmul);
    if (!mm.ok()) return RunError(name, "bound_model.interval_matmul", mm.status().message());
    c.bounds.interval.product = *mm;
    // The reference bounds conv layers by Rump whatever interval_matmul says
    // (IntervalOptions::conv_product keeps its default).
  }

  std::string mode;
  if (absl::Status s = r->RequireString("mode", &mode); !s.ok()) return fail(s);
  PerturbationModel& p = c.perturbation;
  Budget budget;
  if (mode == "unlearning") {
    p.kind = PerturbationKind::kRemoval;
    if (absl::Status s = r->ReadInt("k_unlearn", &budget.n); !s.ok()) return fail(s);
  } else if (mode == "privacy") {
    p.kind = PerturbationKind::kSubstitution;
    if (absl::Status s = r->ReadInt("k_private", &budget.n); !s.ok()) return fail(s);
    if (!c.clip_gamma.has_value()) {
      return RunError(name, "clip_gamma", "required by mode privacy (substitution)");
    }
  } else if (mode == "poisoning") {
    p.kind = PerturbationKind::kBoundedPoisoning;
    if (absl::Status s = r->ReadInt("k_poison", &budget.n); !s.ok()) return fail(s);
    if (absl::Status s = r->ReadInt("label_k_poison", &budget.label_n); !s.ok()) return fail(s);
    if (absl::Status s = r->ReadDouble("epsilon", &p.epsilon); !s.ok()) return fail(s);
    if (absl::Status s = r->ReadBool("paired_poison", &p.paired); !s.ok()) return fail(s);
    p.label.enabled = budget.label_n > 0;
    int target = -1;
    if (absl::Status s = r->ReadInt("poison_target_idx", &target); !s.ok()) return fail(s);
    p.label.target_class = target >= 0 ? target : -1;
    if (p.label.enabled && c.loss == LossKind::kMse) {
      if (absl::Status s = r->ReadDouble("label_epsilon", &p.label.nu); !s.ok()) return fail(s);
    }
  } else {
    return RunError(name, "mode",
                    absl::StrCat("unknown mode \"", mode, "\" (unlearning, privacy or poisoning)"));
  }
  c.budgets = {budget};
  return out;
}

namespace {

// Loads a case's CSV with labels checked against `num_classes` (0 = regression),
// parsed on `threads` threads (CsvOptions::threads).
absl::StatusOr<Dataset> LoadCaseCsv(const std::string& dir, const std::string& file,
                                    int num_classes, int threads) {
  CsvOptions options;
  options.num_classes = num_classes;
  options.threads = threads;
  return ReadCsv((std::filesystem::path(dir) / file).string(), options);
}

// Per-tensor widths in the order W1, b1, W2, b2, ...
json WidthPerTensor(const ModelSpec& spec, const ParameterBox& box) {
  json out = json::array();
  const Vector w = box.upper - box.lower;
  for (const DenseSlice& s : spec.Layout()) {
    out.push_back(w.segment(s.weight_offset, static_cast<Index>(s.in) * s.out).sum());
    out.push_back(w.segment(s.bias_offset, s.out).sum());
  }
  return out;
}

json TraceEntry(const ModelSpec& spec, const TrainState& state) {
  return {{"nominal", ParametersToJson(spec, state.nominal)["layers"]},
          {"lower", ParametersToJson(spec, state.boxes[0].lower)["layers"]},
          {"upper", ParametersToJson(spec, state.boxes[0].upper)["layers"]}};
}

}  // namespace

absl::StatusOr<json> RunGoldenCase(const std::string& dir, const GoldenOptions& options) {
  namespace fs = std::filesystem;
  // Phase timings: each call reports the time since the previous one.
  auto phase_start = std::chrono::steady_clock::now();
  const auto phase_done = [&](const std::string& phase) {
    const auto now = std::chrono::steady_clock::now();
    if (options.timing)
      options.timing(phase, std::chrono::duration<double>(now - phase_start).count());
    phase_start = now;
  };
  absl::StatusOr<json> case_json = ReadJsonFile((fs::path(dir) / "case.json").string());
  if (!case_json.ok()) return case_json.status();
  if (!case_json->is_object() || !case_json->contains("runs") || !(*case_json)["runs"].is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(dir, "/case.json: runs: required (an array)"));
  }
  json result;
  result["case"] = case_json->value("name", fs::path(dir).filename().string());
  std::vector<std::string> warnings;
  for (auto it = case_json->begin(); it != case_json->end(); ++it) {
    if (kKnownKeys.count(it.key()) == 0) {
      warnings.push_back(absl::StrCat("case.json: unknown key \"", it.key(), "\" ignored"));
    }
  }
  absl::StatusOr<json> init_json = ReadJsonFile((fs::path(dir) / "init.json").string());
  if (!init_json.ok()) return init_json.status();
  phase_done("read case.json and init.json");

  // Independent work (test.csv beside train.csv, the backdoor certificate
  // beside the plain one) runs on a second thread unless one thread is asked
  // for; the results are the same either way.
  const bool beside = options.threads != 1 && std::thread::hardware_concurrency() > 1;
  // The CSVs, read once per label interpretation.
  std::map<int, std::pair<Dataset, Dataset>> data_cache;
  struct InitCacheEntry {
    Shape features;
    std::vector<LayerSpec> layers;
    Vector theta;
  };
  std::vector<InitCacheEntry> init_cache;
  const size_t num_runs = (*case_json)["runs"].size();
  bool found = options.run.empty();
  result["runs"] = json::object();
  for (size_t i = 0; i < num_runs; ++i) {
    absl::StatusOr<GoldenRun> run = ResolveGoldenRun(*case_json, i, &warnings, &*init_json);
    if (!run.ok()) return run.status();
    if (!options.run.empty() && run->name != options.run) continue;
    found = true;
    TrainConfig& config = run->config;
    config.threads = options.threads;

    auto cached = data_cache.find(run->num_classes);
    if (cached == data_cache.end()) {
      // test.csv is read beside train.csv when more than one thread is
      // allowed; train.csv's error, if any, still comes first.
      const int classes = run->num_classes;
      std::future<absl::StatusOr<Dataset>> test_beside;
      if (beside) {
        test_beside = std::async(std::launch::async, [&dir, classes] {
          return LoadCaseCsv(dir, "test.csv", classes, /*threads=*/1);
        });
      }
      absl::StatusOr<Dataset> train = LoadCaseCsv(dir, "train.csv", classes, options.threads);
      absl::StatusOr<Dataset> test =
          beside ? test_beside.get() : LoadCaseCsv(dir, "test.csv", classes, options.threads);
      if (!train.ok()) return train.status();
      if (!test.ok()) return test.status();
      for (const auto& [key, rows] : {std::pair<const char*, Index>{"n_train", train->size()},
                                      std::pair<const char*, Index>{"n_test", test->size()}}) {
        if (case_json->contains(key) && (*case_json)[key].is_number_integer() &&
            (*case_json)[key].get<int64_t>() != rows) {
          warnings.push_back(absl::StrCat("case.json: ", key, " is ", (*case_json)[key].dump(),
                                          " but the CSV has ", rows, " rows"));
        }
      }
      cached =
          data_cache.emplace(run->num_classes, std::make_pair(*std::move(train), *std::move(test)))
              .first;
      phase_done("load train.csv and test.csv");
    }
    const Dataset& train = cached->second.first;
    const Dataset& test = cached->second.second;

    // init.json's parameters, read once per trained network (runs that
    // share the model share them; the function is pure in that network).
    const Shape features = config.model.FeatureShape();
    auto same_network = [&](const InitCacheEntry& e) {
      return e.features == features && e.layers == config.model.layers;
    };
    auto init_it = std::find_if(init_cache.begin(), init_cache.end(), same_network);
    if (init_it == init_cache.end()) {
      absl::StatusOr<Vector> parsed = ParametersFromJson(config.model, *init_json, "init.json");
      if (!parsed.ok()) return parsed.status();
      init_cache.push_back({features, config.model.layers, *std::move(parsed)});
      init_it = std::prev(init_cache.end());
    }
    const Vector& init = init_it->theta;
    absl::StatusOr<std::unique_ptr<ComputeBackend>> backend =
        MakeBackend(options.backend, config.threads);
    if (!backend.ok()) return backend.status();
    absl::StatusOr<std::unique_ptr<Trainer>> trainer =
        Trainer::Create(config, train, init, *std::move(backend));
    if (!trainer.ok()) {
      return absl::Status(trainer.status().code(),
                          absl::StrCat("run ", run->name, ": ", trainer.status().message()));
    }
    phase_done(absl::StrCat(run->name, ": setup"));
    const auto start = std::chrono::steady_clock::now();
    json trace = json::array();
    while (!(*trainer)->done()) {
      absl::StatusOr<ProgressEvent> ev = (*trainer)->Step();
      if (!ev.ok()) {
        return absl::Status(ev.status().code(),
                            absl::StrCat("run ", run->name, ": ", ev.status().message()));
      }
      if (options.trace) trace.push_back(TraceEntry(config.model, (*trainer)->state()));
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    phase_done(absl::StrCat(run->name, ": training"));
    const TrainState& state = (*trainer)->state();
    const ParameterBox& box = state.boxes[0];
    // The certificates bound the test rows in fixed chunks on the worker
    // threads (ComputeLogitBounds), and the backdoor certificate starts first
    // on a thread of its own, beside the parameters' JSON and the plain
    // certificate: the same bits on any thread.
    auto backdoor_certificate = [&] {
      return CertificateJson(config.model, config.loss, state.nominal, box, test,
                             config.bounds.interval.product, config.perturbation.epsilon,
                             /*rows=*/true, StabilityRule::kSoftmax, options.threads);
    };
    const bool backdoor = config.perturbation.kind == PerturbationKind::kBoundedPoisoning &&
                          config.perturbation.epsilon > 0;
    std::future<json> backdoor_beside;
    if (backdoor && beside) backdoor_beside = std::async(std::launch::async, backdoor_certificate);
    json out;
    out["nominal"] = ParametersToJson(config.model, state.nominal)["layers"];
    out["lower"] = ParametersToJson(config.model, box.lower)["layers"];
    out["upper"] = ParametersToJson(config.model, box.upper)["layers"];
    out["total_width"] = box.TotalWidth();
    out["width_per_tensor"] = WidthPerTensor(config.model, box);
    out["max_width"] = box.MaxWidth();
    out["steps"] = state.step;
    out["seconds"] = seconds;
    out["test"] = CertificateJson(config.model, config.loss, state.nominal, box, test,
                                  config.bounds.interval.product, 0.0, /*rows=*/true,
                                  StabilityRule::kSoftmax, options.threads);
    if (backdoor) {
      out["test_backdoor"] = beside ? backdoor_beside.get() : backdoor_certificate();
    }
    if (options.trace) out["trace"] = std::move(trace);
    phase_done(absl::StrCat(run->name, ": parameters and certificates"));
    if (options.log) {
      options.log(absl::StrFormat("%s: %d steps, total width %.6g, %.2fs", run->name, state.step,
                                  box.TotalWidth(), seconds));
    }
    result["runs"][run->name] = std::move(out);
  }
  if (!found) {
    return absl::NotFoundError(absl::StrCat(dir, "/case.json: no run named \"", options.run, "\""));
  }
  result["warnings"] = warnings;
  return result;
}

// ---------------------------------------------------------------------------
// Comparison.

namespace {

void Flatten(const json& v, std::vector<double>* out) {
  if (v.is_number()) {
    out->push_back(v.get<double>());
  } else if (v.is_array() || v.is_object()) {
    for (const json& e : v) Flatten(e, out);
  }
}

// Largest |a - b| / max(|a|, |b|) (0 where both are 0) and whether every
// entry is within rtol * max(|a|, |b|) + atol. False on a shape mismatch.
struct Diff {
  bool same_shape = true;
  bool within = true;
  double max_rel = 0.0;
  double max_abs = 0.0;
};

Diff CompareNumbers(const json& got, const json& want, const GoldenTolerances& tol) {
  std::vector<double> a, b;
  Flatten(got, &a);
  Flatten(want, &b);
  Diff d;
  if (a.size() != b.size()) {
    d.same_shape = d.within = false;
    return d;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    const double diff = std::abs(a[i] - b[i]);
    const double scale = std::max(std::abs(a[i]), std::abs(b[i]));
    if (!(diff <= tol.rtol * scale + tol.atol)) d.within = false;
    if (scale > 0) d.max_rel = std::max(d.max_rel, diff / scale);
    d.max_abs = std::max(d.max_abs, diff);
  }
  return d;
}

Matrix JsonToMatrix(const json& v) {
  if (!v.is_array() || v.empty() || !v[0].is_array()) return Matrix();
  Matrix m(static_cast<Index>(v.size()), static_cast<Index>(v[0].size()));
  for (Index i = 0; i < m.rows(); ++i) {
    if (!v[i].is_array() || static_cast<Index>(v[i].size()) != m.cols()) return Matrix();
    for (Index j = 0; j < m.cols(); ++j) m(i, j) = v[i][j].get<double>();
  }
  return m;
}

// Rows whose certificate decisions hinge on a quantity within `eps` of 0.
std::vector<bool> AmbiguousRows(const json& cert, double eps) {
  const Matrix nominal = JsonToMatrix(cert.value("logits_nominal", json()));
  const Matrix lower = JsonToMatrix(cert.value("logits_lower", json()));
  const Matrix upper = JsonToMatrix(cert.value("logits_upper", json()));
  std::vector<bool> out(lower.rows(), false);
  if (lower.size() == 0 || upper.rows() != lower.rows() || upper.cols() != lower.cols()) return out;
  const Index c = lower.cols();
  auto near = [&](double v) { return std::abs(v) <= eps; };
  const IntervalMatrix p = c > 1 ? SoftmaxBounds(IntervalMatrix(lower, upper)) : IntervalMatrix();
  for (Index i = 0; i < lower.rows(); ++i) {
    bool amb = false;
    if (c == 1) {
      amb = near(lower(i, 0)) || near(upper(i, 0)) ||
            (nominal.rows() == lower.rows() && near(nominal(i, 0)));
    } else {
      for (Index a = 0; a < c && !amb; ++a) {
        for (Index b = 0; b < c && !amb; ++b) {
          if (a == b) continue;
          amb = near(lower(i, a) - upper(i, b)) || near(p.lower(i, a) - p.upper(i, b)) ||
                (nominal.rows() == lower.rows() && near(nominal(i, a) - nominal(i, b)));
        }
      }
    }
    out[i] = amb;
  }
  return out;
}

void Fail(RunComparison* rc, std::string message) {
  rc->pass = false;
  rc->failures.push_back(absl::StrCat(rc->name, ": ", message));
}

void CompareCertificate(const std::string& label, const json& got, const json& want,
                        const GoldenTolerances& tol, RunComparison* rc) {
  // Ambiguous rows by either side's logits.
  std::vector<bool> amb = AmbiguousRows(got, tol.ambiguous);
  const std::vector<bool> amb_want = AmbiguousRows(want, tol.ambiguous);
  if (amb.size() < amb_want.size()) amb.resize(amb_want.size(), false);
  for (size_t i = 0; i < amb_want.size(); ++i) amb[i] = amb[i] || amb_want[i];
  const int num_amb = static_cast<int>(std::count(amb.begin(), amb.end(), true));
  rc->ambiguous_rows = std::max(rc->ambiguous_rows, num_amb);
  size_t rows = amb.size();
  if (want.contains("stable") && want["stable"].is_array()) rows = want["stable"].size();
  const double slack = rows > 0 ? static_cast<double>(num_amb) / static_cast<double>(rows) : 0.0;

  for (const char* key : {"accuracy_nominal", "accuracy_worst", "accuracy_best"}) {
    if (!want.contains(key)) continue;
    if (!got.contains(key)) {
      Fail(rc, absl::StrCat(label, ".", key, " missing"));
      continue;
    }
    const double d = std::abs(got[key].get<double>() - want[key].get<double>());
    rc->max_accuracy_diff = std::max(rc->max_accuracy_diff, d);
    if (d > tol.accuracy + slack) {
      Fail(rc, absl::StrFormat("%s.%s: %.9g, expected %.9g", label, key, got[key].get<double>(),
                               want[key].get<double>()));
    }
  }
  if (want.contains("stable_fraction")) {
    const double g = got.value("stable_fraction", -1.0);
    const double w = want["stable_fraction"].get<double>();
    if (std::abs(g - w) > 1e-12 + slack) {
      Fail(rc, absl::StrFormat("%s.stable_fraction: %.9g, expected %.9g", label, g, w));
    }
  }
  if (want.contains("stable")) {
    const json& ws = want["stable"];
    const json gs = got.value("stable", json::array());
    if (gs.size() != ws.size()) {
      Fail(rc, absl::StrCat(label, ".stable: ", gs.size(), " rows, expected ", ws.size()));
    } else {
      int mismatches = 0;
      for (size_t i = 0; i < ws.size(); ++i) {
        if (gs[i].get<bool>() != ws[i].get<bool>() && !(i < amb.size() && amb[i])) ++mismatches;
      }
      rc->stable_mismatches += mismatches;
      if (mismatches > 0) {
        Fail(rc, absl::StrCat(label, ".stable: ", mismatches, " unambiguous rows differ"));
      }
    }
  }
  for (const char* key : {"logits_nominal", "logits_lower", "logits_upper"}) {
    if (!want.contains(key)) continue;
    const Diff d = CompareNumbers(got.value(key, json()), want[key], tol);
    rc->max_rel_logits = std::max(rc->max_rel_logits, d.max_rel);
    if (!d.same_shape)
      Fail(rc, absl::StrCat(label, ".", key, ": shape differs"));
    else if (!d.within) {
      Fail(rc, absl::StrFormat("%s.%s: max rel diff %.3g, max abs diff %.3g", label, key, d.max_rel,
                               d.max_abs));
    }
  }
  for (const char* key : {"mse_nominal", "mse_worst", "mse_best"}) {
    if (!want.contains(key)) continue;
    const Diff d = CompareNumbers(got.value(key, json()), want[key], tol);
    rc->max_rel_mse = std::max(rc->max_rel_mse, d.max_rel);
    if (!d.same_shape || !d.within) {
      Fail(rc, absl::StrFormat("%s.%s: %.12g, expected %.12g", label, key,
                               got.value(key, std::nan("")), want[key].get<double>()));
    }
  }
}

void CompareTrace(const json& got, const json& want, const GoldenTolerances& tol,
                  RunComparison* rc) {
  rc->trace_steps = static_cast<int>(want.size());
  rc->first_trace_divergence = 0;
  for (size_t t = 0; t < want.size(); ++t) {
    if (t >= got.size()) {
      rc->first_trace_divergence = static_cast<int>(t + 1);
      Fail(rc, absl::StrCat("trace: only ", got.size(), " steps, expected ", want.size()));
      return;
    }
    std::vector<std::string> bad;
    double worst = 0.0;
    for (const char* key : {"nominal", "lower", "upper"}) {
      const Diff d = CompareNumbers(got[t].value(key, json()), want[t].value(key, json()), tol);
      if (!d.within) bad.push_back(key);
      worst = std::max(worst, d.max_rel);
    }
    if (!bad.empty()) {
      rc->first_trace_divergence = static_cast<int>(t + 1);
      Fail(rc, absl::StrFormat("trace: first divergence at step %d in %s (max rel diff %.3g)",
                               t + 1, absl::StrJoin(bad, ", "), worst));
      return;
    }
  }
}

}  // namespace

GoldenReport CompareGolden(const json& result, const json& expected, const json* trace,
                           const GoldenTolerances& tol) {
  GoldenReport report;
  const json& want_runs = expected.contains("runs") ? expected["runs"] : json::object();
  const json& got_runs = result.contains("runs") ? result["runs"] : json::object();
  for (auto it = want_runs.begin(); it != want_runs.end(); ++it) {
    RunComparison rc;
    rc.name = it.key();
    const json& want = it.value();
    if (!got_runs.contains(rc.name)) {
      Fail(&rc, "missing from the result");
      report.pass = false;
      report.runs.push_back(std::move(rc));
      continue;
    }
    const json& got = got_runs[rc.name];
    for (const char* key : {"nominal", "lower", "upper"}) {
      if (!want.contains(key)) continue;
      const Diff d = CompareNumbers(got.value(key, json()), want[key], tol);
      rc.max_rel_parameters = std::max(rc.max_rel_parameters, d.max_rel);
      if (!d.same_shape)
        Fail(&rc, absl::StrCat(key, ": shape differs"));
      else if (!d.within) {
        Fail(&rc, absl::StrFormat("%s: max rel diff %.3g, max abs diff %.3g", key, d.max_rel,
                                  d.max_abs));
      }
    }
    for (const char* key : {"total_width", "width_per_tensor", "max_width"}) {
      if (!want.contains(key)) continue;
      const Diff d = CompareNumbers(got.value(key, json()), want[key], tol);
      rc.max_rel_widths = std::max(rc.max_rel_widths, d.max_rel);
      if (!d.same_shape || !d.within) {
        Fail(&rc, absl::StrFormat("%s: %s, expected %s (max rel diff %.3g)", key,
                                  got.value(key, json()).dump(), want[key].dump(), d.max_rel));
      }
    }
    if (want.contains("steps") && got.value("steps", -1) != want["steps"].get<int>()) {
      Fail(&rc, absl::StrCat("steps: ", got.value("steps", -1), ", expected ",
                             want["steps"].get<int>()));
    }
    if (want.contains("test")) {
      CompareCertificate("test", got.value("test", json::object()), want["test"], tol, &rc);
    }
    if (want.contains("test_backdoor")) {
      CompareCertificate("test_backdoor", got.value("test_backdoor", json::object()),
                         want["test_backdoor"], tol, &rc);
    }
    if (trace != nullptr && trace->contains("runs") && (*trace)["runs"].contains(rc.name) &&
        got.contains("trace")) {
      CompareTrace(got["trace"], (*trace)["runs"][rc.name], tol, &rc);
    }
    report.pass = report.pass && rc.pass;
    report.runs.push_back(std::move(rc));
  }
  return report;
}

std::string GoldenReport::Format() const {
  std::string out = absl::StrFormat("%-4s %-36s %9s %9s %9s %9s %9s %7s %s\n", "", "run", "params",
                                    "widths", "logits", "mse", "accuracy", "stable", "trace");
  std::vector<std::string> failures;
  for (const RunComparison& r : runs) {
    std::string trace = "-";
    if (r.first_trace_divergence == 0) trace = absl::StrCat("ok (", r.trace_steps, " steps)");
    if (r.first_trace_divergence > 0) {
      trace = absl::StrCat("diverges at step ", r.first_trace_divergence);
    }
    std::string stable = absl::StrCat(r.stable_mismatches);
    if (r.ambiguous_rows > 0) absl::StrAppend(&stable, " (", r.ambiguous_rows, "?)");
    absl::StrAppendFormat(&out, "%-4s %-36s %9.2g %9.2g %9.2g %9.2g %9.2g %7s %s\n",
                          r.pass ? "PASS" : "FAIL", r.name, r.max_rel_parameters, r.max_rel_widths,
                          r.max_rel_logits, r.max_rel_mse, r.max_accuracy_diff, stable, trace);
    failures.insert(failures.end(), r.failures.begin(), r.failures.end());
  }
  absl::StrAppend(&out,
                  "columns: max relative differences; accuracy: max absolute difference; "
                  "stable: flags that differ (ambiguous rows)\n");
  for (const std::string& f : failures) absl::StrAppend(&out, "  ", f, "\n");
  absl::StrAppend(&out, pass ? "PASS\n" : "FAIL\n");
  return out;
}

}  // namespace agt::cli
