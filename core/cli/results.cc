#include "core/cli/results.h"

#include <algorithm>
#include <limits>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "core/cli/config.h"

namespace agt::cli {

using nlohmann::json;

namespace {

absl::Status Invalid(const std::string& path, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", problem));
}

json BoolArray(const std::vector<bool>& v) {
  json out = json::array();
  for (bool b : v) out.push_back(b);
  return out;
}

}  // namespace

json MatrixToJson(const Matrix& m) {
  json out = json::array();
  for (Index i = 0; i < m.rows(); ++i) {
    json row = json::array();
    for (Index j = 0; j < m.cols(); ++j) row.push_back(JsonNumber(m(i, j)));
    out.push_back(std::move(row));
  }
  return out;
}

LogitBounds LogitBoundsWidened(const ModelSpec& spec, const Vector& nominal,
                               const ParameterBox& box, const Eigen::Ref<const Matrix>& x,
                               double test_epsilon, MatMulMethod matmul, bool margins,
                               int threads) {
  LogitBounds logits =
      ComputeLogitBounds(spec, nominal, box, x, test_epsilon, matmul, margins, threads);
  constexpr double kInf = std::numeric_limits<double>::infinity();
  logits.bounds.lower = logits.bounds.lower.unaryExpr([](double v) { return v != v ? -kInf : v; });
  logits.bounds.upper = logits.bounds.upper.unaryExpr([](double v) { return v != v ? kInf : v; });
  return logits;
}

std::string StabilityRuleName(StabilityRule rule) {
  return rule == StabilityRule::kMargin ? "margin" : "softmax";
}

json CertificateJson(const ModelSpec& spec, LossKind loss, const Vector& nominal,
                     const ParameterBox& box, const Dataset& data, MatMulMethod matmul,
                     double test_epsilon, bool rows, StabilityRule rule, int threads) {
  const bool multi_class = spec.OutputDim() > 1;
  const LogitBounds logits =
      LogitBoundsWidened(spec, nominal, box, data.x, test_epsilon, matmul,
                         multi_class && rule == StabilityRule::kMargin, threads);
  json out = json::object();
  if (test_epsilon > 0) out["epsilon"] = test_epsilon;
  if (IsClassification(loss)) {
    if (multi_class) out["stability_rule"] = StabilityRuleName(rule);
    const ClassificationCertificate c = CertifyClassification(logits, data.y, rule);
    out["accuracy_nominal"] = c.accuracy_nominal;
    out["accuracy_worst"] = c.accuracy_worst;
    out["accuracy_best"] = c.accuracy_best;
    out["stable_fraction"] = c.stable_fraction;
    if (rows) out["stable"] = BoolArray(c.stable);
  } else {
    const RegressionCertificate r = CertifyRegression(logits, data.y);
    out["mse_nominal"] = JsonNumber(r.mse_nominal);
    out["mse_worst"] = JsonNumber(r.mse_worst);
    out["mse_best"] = JsonNumber(r.mse_best);
  }
  if (rows) {
    out["logits_nominal"] = MatrixToJson(logits.nominal);
    out["logits_lower"] = MatrixToJson(logits.bounds.lower);
    out["logits_upper"] = MatrixToJson(logits.bounds.upper);
  }
  return out;
}

std::string BudgetLabel(const Budget& budget, const PerturbationModel& perturbation) {
  if (perturbation.kind != PerturbationKind::kBoundedPoisoning) return absl::StrCat("n=", budget.n);
  if (budget.label_n == 0) return absl::StrCat("features=", budget.n);
  if (budget.n == 0) return absl::StrCat("labels=", budget.label_n);
  return absl::StrCat("features=", budget.n, " labels=", budget.label_n,
                      perturbation.paired ? " paired" : "");
}

json BudgetToJson(const Budget& budget, const PerturbationModel& perturbation) {
  json out = {{"n", budget.n},
              {"label", BudgetLabel(budget, perturbation)},
              {"k", budget.EffectiveK(perturbation)}};
  if (perturbation.kind == PerturbationKind::kBoundedPoisoning) out["label_n"] = budget.label_n;
  return out;
}

json PerturbationToJson(const PerturbationModel& p) {
  json out = {{"kind", PerturbationKindName(p.kind)}};
  if (p.kind == PerturbationKind::kBoundedPoisoning) {
    out["epsilon"] = p.epsilon;
    out["paired"] = p.paired;
    out["labels"] = {
        {"enabled", p.label.enabled}, {"target_class", p.label.target_class}, {"nu", p.label.nu}};
  }
  return out;
}

std::vector<int> BudgetOrder(const std::vector<Budget>& budgets,
                             const PerturbationModel& perturbation) {
  std::vector<int> order(budgets.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    const Budget& x = budgets[a];
    const Budget& y = budgets[b];
    const int kx = x.EffectiveK(perturbation), ky = y.EffectiveK(perturbation);
    if (kx != ky) return kx < ky;
    if (x.n != y.n) return x.n < y.n;
    return x.label_n < y.label_n;
  });
  return order;
}

json MakeResultsJson(const ResultsInput& in) {
  const TrainConfig& t = in.train;
  const TrainResult& r = *in.result;
  json out;
  out["format"] = kResultsFormat;
  out["version"] = kResultsVersion;
  out["config_path"] = in.config_path;
  out["config"] = in.config;
  out["loss"] = LossKindName(t.loss);
  out["num_classes"] = in.num_classes;
  out["input_dim"] = in.input_dim;
  out["polynomial_degree"] = in.polynomial_degree;
  out["model"] = ModelToJson(t.model);
  out["model"]["describe"] = t.model.Describe();
  out["model"]["num_parameters"] = t.model.NumParameters();
  out["matmul"] = MatMulMethodName(t.bounds.interval.product);
  out["conv_matmul"] = MatMulMethodName(t.bounds.interval.conv_product);
  out["bound_method"] = BoundMethodName(t.bounds.method);
  out["rounding"] = RoundingModeName(t.bounds.interval.rounding);
  out["clip_gamma"] = t.clip_gamma.has_value() ? json(*t.clip_gamma) : json(nullptr);
  out["perturbation"] = PerturbationToJson(t.perturbation);
  out["training"] = {{"steps", r.iterations},
                     {"batches_per_epoch", r.batches_per_epoch},
                     {"dropped_rows_per_epoch", r.dropped_rows_per_epoch},
                     {"train_rows", in.train_rows},
                     {"seconds", in.seconds},
                     {"backend", in.backend}};
  if (in.test != nullptr) {
    out["test_set"] = {{"rows", in.test->size()}, {"source", in.test_source}};
  }
  out["nominal"] = ParametersToJson(t.model, r.state.nominal);
  json budgets = json::array();
  for (size_t j = 0; j < t.budgets.size(); ++j) {
    const ParameterBox& box = r.state.boxes[j];
    json b = BudgetToJson(t.budgets[j], t.perturbation);
    b["total_width"] = JsonNumber(box.TotalWidth());
    b["max_width"] = JsonNumber(box.MaxWidth());
    b["finite"] = box.lower.allFinite() && box.upper.allFinite();
    b["lower"] = ParametersToJson(t.model, box.lower);
    b["upper"] = ParametersToJson(t.model, box.upper);
    if (in.test != nullptr) {
      b["test"] = CertificateJson(t.model, t.loss, r.state.nominal, box, *in.test,
                                  t.bounds.interval.product, 0.0,
                                  /*rows=*/false, StabilityRule::kMargin);
      if (t.perturbation.kind == PerturbationKind::kBoundedPoisoning &&
          t.perturbation.epsilon > 0) {
        b["test_backdoor"] = CertificateJson(t.model, t.loss, r.state.nominal, box, *in.test,
                                             t.bounds.interval.product, t.perturbation.epsilon,
                                             /*rows=*/false, StabilityRule::kMargin);
      }
    }
    budgets.push_back(std::move(b));
  }
  out["budgets"] = std::move(budgets);
  return out;
}

namespace {

absl::StatusOr<PerturbationModel> PerturbationFromJson(const json& value) {
  absl::StatusOr<FieldReader> r = FieldReader::Make(value, "perturbation");
  if (!r.ok()) return r.status();
  PerturbationModel p;
  std::string kind;
  if (absl::Status s = r->RequireString("kind", &kind); !s.ok()) return s;
  absl::StatusOr<PerturbationKind> k = ParsePerturbationKind(kind);
  if (!k.ok()) return Invalid("perturbation.kind", k.status().message());
  p.kind = *k;
  if (absl::Status s = r->ReadDouble("epsilon", &p.epsilon); !s.ok()) return s;
  if (absl::Status s = r->ReadBool("paired", &p.paired); !s.ok()) return s;
  if (const json* labels = r->Get("labels"); labels != nullptr) {
    absl::StatusOr<FieldReader> lr = FieldReader::Make(*labels, "perturbation.labels");
    if (!lr.ok()) return lr.status();
    if (absl::Status s = lr->ReadBool("enabled", &p.label.enabled); !s.ok()) return s;
    if (absl::Status s = lr->ReadInt("target_class", &p.label.target_class); !s.ok()) return s;
    if (absl::Status s = lr->ReadDouble("nu", &p.label.nu); !s.ok()) return s;
  }
  return p;
}

}  // namespace

absl::StatusOr<TrainedModel> TrainedModelFromJson(const json& results) {
  absl::StatusOr<FieldReader> r = FieldReader::Make(results, "");
  if (!r.ok()) return r.status();
  std::string format;
  if (absl::Status s = r->RequireString("format", &format); !s.ok()) return s;
  if (format != kResultsFormat) {
    return Invalid("format", absl::StrCat("expected \"", kResultsFormat, "\", got \"", format,
                                          "\" (not a results file of agt train)"));
  }
  int version = 0;
  if (absl::Status s = r->RequireInt("version", &version); !s.ok()) return s;
  if (version != kResultsVersion) {
    return Invalid("version", absl::StrCat("unsupported version ", version, " (this tool reads ",
                                           kResultsVersion, ")"));
  }
  TrainedModel m;
  std::string loss;
  if (absl::Status s = r->RequireString("loss", &loss); !s.ok()) return s;
  absl::StatusOr<LossKind> lk = ParseLossKind(loss);
  if (!lk.ok()) return Invalid("loss", lk.status().message());
  m.loss = *lk;
  if (absl::Status s = r->RequireInt("num_classes", &m.num_classes); !s.ok()) return s;
  if (absl::Status s = r->RequireInt("input_dim", &m.input_dim); !s.ok()) return s;
  if (absl::Status s = r->RequireInt("polynomial_degree", &m.polynomial_degree); !s.ok()) return s;
  if (m.polynomial_degree < 1) return Invalid("polynomial_degree", "must be >= 1");
  const json* model = r->Get("model");
  if (model == nullptr || !model->is_object() || !model->contains("layers")) {
    return Invalid("model.layers", "required");
  }
  absl::StatusOr<ModelSpec> spec = ModelFromJson(*model, "model");
  if (!spec.ok()) return spec.status();
  m.spec = *std::move(spec);
  if (PolynomialFeatureCount(m.input_dim, m.polynomial_degree) != m.spec.InputDim()) {
    return Invalid("model.layers",
                   absl::StrCat("input width ", m.spec.InputDim(), " does not match input_dim ",
                                m.input_dim, " expanded to degree ", m.polynomial_degree));
  }
  std::string matmul = "rump";
  if (absl::Status s = r->ReadString("matmul", &matmul); !s.ok()) return s;
  absl::StatusOr<MatMulMethod> mm = ParseMatMulMethod(matmul);
  if (!mm.ok()) return Invalid("matmul", mm.status().message());
  m.bounds.interval.product = *mm;
  std::string conv = "rump";
  if (absl::Status s = r->ReadString("conv_matmul", &conv); !s.ok()) return s;
  absl::StatusOr<MatMulMethod> cm = ParseMatMulMethod(conv);
  if (!cm.ok()) return Invalid("conv_matmul", cm.status().message());
  m.bounds.interval.conv_product = *cm;
  r->Get("bound_method");  // "ibp", the only method
  r->Get("rounding");      // "nearest", the only mode
  const json* perturbation = r->Get("perturbation");
  if (perturbation == nullptr) return Invalid("perturbation", "required");
  absl::StatusOr<PerturbationModel> p = PerturbationFromJson(*perturbation);
  if (!p.ok()) return p.status();
  m.perturbation = *p;

  const json* nominal = r->Get("nominal");
  if (nominal == nullptr) return Invalid("nominal", "required");
  absl::StatusOr<Vector> theta = ParametersFromJson(m.spec, *nominal, "nominal");
  if (!theta.ok()) return theta.status();
  m.nominal = *std::move(theta);

  const json* budgets = r->Get("budgets");
  if (budgets == nullptr || !budgets->is_array() || budgets->empty()) {
    return Invalid("budgets", "required (a non-empty array)");
  }
  for (size_t j = 0; j < budgets->size(); ++j) {
    const std::string path = IndexPath("budgets", j);
    absl::StatusOr<FieldReader> br = FieldReader::Make((*budgets)[j], path);
    if (!br.ok()) return br.status();
    Budget b;
    if (absl::Status s = br->RequireInt("n", &b.n); !s.ok()) return s;
    if (absl::Status s = br->ReadInt("label_n", &b.label_n); !s.ok()) return s;
    const json* lower = br->Get("lower");
    const json* upper = br->Get("upper");
    if (lower == nullptr) return Invalid(br->PathOf("lower"), "required");
    if (upper == nullptr) return Invalid(br->PathOf("upper"), "required");
    ParameterBox box;
    absl::StatusOr<Vector> lo = ParametersFromJson(m.spec, *lower, br->PathOf("lower"));
    if (!lo.ok()) return lo.status();
    absl::StatusOr<Vector> hi = ParametersFromJson(m.spec, *upper, br->PathOf("upper"));
    if (!hi.ok()) return hi.status();
    box.lower = *std::move(lo);
    box.upper = *std::move(hi);
    if (!(box.lower.array() <= box.upper.array()).all()) {
      return Invalid(path, "lower exceeds upper (or is NaN) somewhere: not a valid parameter box");
    }
    m.budgets.push_back(b);
    m.boxes.push_back(std::move(box));
  }
  return m;
}

absl::StatusOr<TrainedModel> ReadResults(const std::string& path) {
  absl::StatusOr<json> value = ReadJsonFile(path);
  if (!value.ok()) return value.status();
  absl::StatusOr<TrainedModel> m = TrainedModelFromJson(*value);
  if (!m.ok()) {
    return absl::Status(m.status().code(), absl::StrCat(path, ": ", m.status().message()));
  }
  return m;
}

}  // namespace agt::cli
