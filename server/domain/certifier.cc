#include "server/domain/certifier.h"

#include <algorithm>
#include <cmath>
#include <new>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "agt/v1/training.pb.h"
#include "core/certify/certify.h"
#include "core/common/status_details.h"
#include "core/common/types.h"
#include "server/domain/model_convert.h"

namespace agt::server {
namespace {

// Logit bound values (lower + upper, all budgets) one CertifyPredictions
// response may carry: keeps responses well under gRPC message limits.
constexpr int64_t kMaxResponseBoundValues = 4'000'000;

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return WithField(absl::InvalidArgumentError(absl::StrCat(field, ": ", what)), field);
}

// What the certifier needs from a stored model beyond its parameters.
struct ModelView {
  agt::v1::TrainingJobSpec spec;
  agt::PerturbationModel perturbation;
  agt::MatMulMethod method = agt::MatMulMethod::kRump;
  // Model budget indices ordered by size (effective rows, then n, then
  // label_n), for LargestStableBudget.
  std::vector<int> by_size;
};

absl::StatusOr<ModelView> View(const ModelRecord& model) {
  ModelView v;
  if (!v.spec.ParseFromString(model.spec)) {
    return absl::DataLossError(
        absl::StrCat("model ", model.id, ": the stored job spec does not parse"));
  }
  if (absl::StatusOr<agt::PerturbationKind> k =
          PerturbationKindFromProto(v.spec.perturbation().kind(), "spec.perturbation.kind");
      k.ok()) {
    v.perturbation.kind = *k;
  }
  v.perturbation.paired = v.spec.perturbation().paired();
  // Stored specs were accepted at submission (legacy bound_method values
  // included); the model is certified with the product it was trained with.
  if (absl::StatusOr<agt::BoundOptions> b = BoundOptionsFromProto(v.spec); b.ok()) {
    v.method = b->interval.product;
  }
  const agt::Index p = model.architecture.NumParameters();
  if (model.nominal.size() != p) {
    return absl::DataLossError(absl::StrCat("model ", model.id, ": ", model.nominal.size(),
                                            " nominal parameters, the architecture has ", p));
  }
  for (size_t j = 0; j < model.boxes.size(); ++j) {
    const agt::ParameterBox& b = model.boxes[j].box;
    if (b.lower.size() != p || b.upper.size() != p) {
      return absl::DataLossError(
          absl::StrCat("model ", model.id, ": box ", j, " does not match the architecture"));
    }
  }
  v.by_size.resize(model.boxes.size());
  std::iota(v.by_size.begin(), v.by_size.end(), 0);
  std::stable_sort(v.by_size.begin(), v.by_size.end(), [&](int a, int b) {
    const agt::Budget& x = model.boxes[a].budget;
    const agt::Budget& y = model.boxes[b].budget;
    const int kx = x.EffectiveK(v.perturbation), ky = y.EffectiveK(v.perturbation);
    if (kx != ky) return kx < ky;
    if (x.n != y.n) return x.n < y.n;
    return x.label_n < y.label_n;
  });
  return v;
}

absl::Status CheckTestEpsilon(double eps) {
  if (eps >= 0.0 && eps <= kMaxTestEpsilon) return absl::OkStatus();
  return Invalid("test_epsilon",
                 absl::StrCat("must be a finite number in [0, ", kMaxTestEpsilon, "], got ", eps));
}

// A label valid for a classification model with `classes` classes.
bool IsClass(double y, int classes) {
  return std::isfinite(y) && y == std::floor(y) && y >= 0.0 && y < classes;
}

agt::Matrix ModelInput(const ModelRecord& model, agt::Matrix raw) {
  if (model.polynomial_degree <= 1) return raw;
  return agt::PolynomialFeatures(raw, model.polynomial_degree);
}

bool NeedsMargins(const ModelRecord& model, agt::StabilityRule rule) {
  return rule == agt::StabilityRule::kMargin && model.num_classes > 0 &&
         model.architecture.OutputDim() > 1;
}

absl::Status ValidatePredictionRequest(const ModelRecord& model,
                                       const agt::v1::CertifyPredictionsRequest& request) {
  const agt::v1::Matrix& in = request.inputs();
  if (in.rows() < 1 || in.rows() > kMaxCertifyRows) {
    return Invalid("inputs.rows",
                   absl::StrCat(in.rows(), " must be in [1, ", kMaxCertifyRows, "]"));
  }
  if (in.cols() != model.input_features) {
    return Invalid("inputs.cols", absl::StrCat(in.cols(), " must equal the model's ",
                                               model.input_features, " input features"));
  }
  if (in.values_size() != in.rows() * in.cols()) {
    return Invalid("inputs.values",
                   absl::StrCat(in.values_size(), " values, expected rows ", in.rows(), " x cols ",
                                in.cols(), " = ", in.rows() * in.cols()));
  }
  for (int k = 0; k < in.values_size(); ++k) {
    if (!std::isfinite(in.values(k))) {
      return Invalid(absl::StrCat("inputs.values[", k, "]"),
                     absl::StrCat("(row ", k / in.cols(), ", column ", k % in.cols(),
                                  ") must be finite, got ", in.values(k)));
    }
  }
  const int64_t bound_values =
      in.rows() * static_cast<int64_t>(model.boxes.size()) * model.architecture.OutputDim() * 2;
  if (bound_values > kMaxResponseBoundValues) {
    return Invalid("inputs.rows",
                   absl::StrCat(in.rows(), " rows x ", model.boxes.size(), " budgets x ",
                                model.architecture.OutputDim(), " logits give ", bound_values,
                                " bound values, above the per-call limit ", kMaxResponseBoundValues,
                                "; send fewer rows per call"));
  }
  if (absl::Status s = CheckTestEpsilon(request.test_epsilon()); !s.ok()) return s;
  if (request.labels_size() > 0) {
    if (model.num_classes == 0) {
      return Invalid("labels",
                     "the model is a regression model: predictions have no class to "
                     "be correct about (use CertifyDataset for MSE bounds)");
    }
    if (request.labels_size() != in.rows()) {
      return Invalid("labels", absl::StrCat(request.labels_size(), " labels for ", in.rows(),
                                            " input rows (give none or one per row)"));
    }
    for (int i = 0; i < request.labels_size(); ++i) {
      if (!IsClass(request.labels(i), model.num_classes)) {
        return Invalid(absl::StrCat("labels[", i, "]"),
                       absl::StrCat(request.labels(i), " is not a class of the model (integers 0..",
                                    model.num_classes - 1, ")"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<int> DistinctBudgets(const ModelRecord& model) {
  std::vector<int> budgets;
  for (const BoxRecord& box : model.boxes) budgets.push_back(box.budget.n);
  std::sort(budgets.begin(), budgets.end());
  budgets.erase(std::unique(budgets.begin(), budgets.end()), budgets.end());
  return budgets;
}

std::vector<std::vector<bool>> StablePerDistinctBudget(
    const ModelRecord& model, const std::vector<int>& budgets,
    const agt::v1::CertifyPredictionsResponse& certified) {
  // Per box, its position in the ascending distinct budget list.
  std::vector<int> slots;
  for (const BoxRecord& box : model.boxes) {
    slots.push_back(static_cast<int>(
        std::lower_bound(budgets.begin(), budgets.end(), box.budget.n) - budgets.begin()));
  }
  const int points = certified.points_size();
  std::vector<std::vector<bool>> stable(budgets.size(), std::vector<bool>(points, false));
  for (int i = 0; i < points; ++i) {
    const agt::v1::PointCertificate& p = certified.points(i);
    for (int j = 0; j < p.stable_size() && j < static_cast<int>(slots.size()); ++j) {
      const int slot = slots[j];
      if (p.stable(j) && slot < static_cast<int>(budgets.size()) &&
          budgets[slot] == model.boxes[j].budget.n) {
        stable[slot][i] = true;
      }
    }
  }
  return stable;
}

std::string GuaranteeText(const ModelRecord& model, double test_epsilon) {
  agt::v1::TrainingJobSpec spec;
  const bool parsed = spec.ParseFromString(model.spec);
  std::string kind = "perturbed";
  if (parsed) {
    switch (spec.perturbation().kind()) {
      case agt::v1::PERTURBATION_KIND_REMOVAL:
        kind = "removed";
        break;
      case agt::v1::PERTURBATION_KIND_SUBSTITUTION:
        kind = "replaced by arbitrary rows";
        break;
      case agt::v1::PERTURBATION_KIND_POISONING:
        kind =
            "poisoned (features within the l-infinity radius epsilon and/or labels, as "
            "trained)";
        break;
      default:
        break;
    }
  }
  std::string text = absl::StrCat(
      "Certificates hold for the model of job ", model.job_id,
      " under the assumptions of "
      "Abstract Gradient Training: the training data order, the parameter initialisation",
      parsed ? absl::StrCat(" (seed ", spec.seed(), ")") : std::string(),
      " and the hyper-parameters are fixed as trained. A budget n counts rows ", kind,
      " per batch, so a dataset-wide claim holds for up to n such rows in total. Bounds are "
      "computed in float64 without directed rounding and may be off by a few units in the last "
      "place.");
  if (parsed && spec.optimizer().momentum() > 0.0) {
    absl::StrAppend(&text,
                    " The job used momentum: its bounds follow the reference "
                    "implementation's rule, which is not established as sound.");
  }
  if (test_epsilon > 0.0) {
    absl::StrAppend(&text, " Each input may also move by up to ", test_epsilon,
                    " in l-infinity norm in the model's input space (after polynomial "
                    "expansion).");
  }
  if (model.num_classes == 0) {
    absl::StrAppend(&text,
                    " Regression model: logit bounds enclose every reachable model's "
                    "output; stability does not apply.");
  }
  return text;
}

int64_t CertifyRowBytes(const ModelRecord& model) {
  // Per row: the expanded input, its copy, its interval and their midpoint /
  // radius forms and the stored input activation (about 10 doubles per
  // expanded input, counted as 12), and per layer the nominal activation,
  // the stored interval activation and the matmul temporaries (counted as 12
  // doubles per output).
  int64_t doubles = static_cast<int64_t>(model.input_features);
  const int64_t expanded = model.polynomial_degree <= 1
                               ? model.input_features
                               : static_cast<int64_t>(agt::PolynomialFeatureCount(
                                     model.input_features, model.polynomial_degree));
  doubles += 12 * expanded;
  for (const agt::ParamSlice& layer : model.architecture.Layout()) {
    doubles += 12 * static_cast<int64_t>(layer.out);
  }
  return 8 * doubles + 256;
}

absl::StatusOr<int64_t> CertifyChunkRows(const ModelRecord& model, int64_t working_bytes) {
  const int64_t row_bytes = CertifyRowBytes(model);
  const int64_t rows = working_bytes / row_bytes;
  if (rows < 1) {
    return WithMetadata(
        WithQuota(WithReason(absl::ResourceExhaustedError(absl::StrCat(
                                 "certifying one row of model ", model.id, " needs an estimated ",
                                 row_bytes, " bytes (", model.input_features,
                                 " input features, polynomial degree ", model.polynomial_degree,
                                 "), above the working-memory limit of ", working_bytes,
                                 " bytes (per call, and --max-request-mib for all calls "
                                 "together)")),
                             kReasonRequestMemoryLimit),
                  "server/request_memory"),
        "model_id", model.id);
  }
  const int64_t parameters = std::max<int64_t>(1, model.architecture.NumParameters());
  return std::max<int64_t>(1, std::min({rows, kMaxCertifyChunkRows, kCertifyChunkWork / parameters}));
}

namespace {

absl::Status KeepGoingStatus(const CertifyOptions& options) {
  return options.keep_going ? options.keep_going() : absl::OkStatus();
}

// Rows per chunk for `rows` rows, within options.working_bytes and the
// server-wide budget's limit, and that chunk's bytes reserved from the budget
// (waiting while other calls hold it); no reservation without a budget.
absl::StatusOr<int64_t> ReserveChunks(const ModelRecord& model, int64_t rows,
                                      const CertifyOptions& options,
                                      std::unique_ptr<WorkingMemory::Reservation>* reservation) {
  const int64_t working = options.memory != nullptr
                              ? std::min(options.working_bytes, options.memory->limit())
                              : options.working_bytes;
  absl::StatusOr<int64_t> chunk = CertifyChunkRows(model, working);
  if (!chunk.ok() || options.memory == nullptr) return chunk;
  absl::StatusOr<std::unique_ptr<WorkingMemory::Reservation>> held = options.memory->Reserve(
      std::min(*chunk, rows) * CertifyRowBytes(model), options.keep_going);
  if (!held.ok()) return held.status();
  *reservation = *std::move(held);
  return chunk;
}

absl::Status OutOfMemory(const ModelRecord& model, int64_t chunk_rows) {
  return WithMetadata(
      WithReason(absl::ResourceExhaustedError(absl::StrCat(
                     "the server ran out of memory certifying model ", model.id,
                     " in chunks of ", chunk_rows, " rows (estimated ", CertifyRowBytes(model),
                     " bytes per row); try again later")),
                 kReasonServerOutOfMemory),
      "model_id", model.id);
}

// Certifies rows [begin, begin + n) of the request and appends their points.
void CertifyPredictionChunk(const ModelRecord& model, const ModelView& view,
                            const agt::v1::CertifyPredictionsRequest& request,
                            agt::StabilityRule rule, agt::Index begin, agt::Index n,
                            agt::v1::CertifyPredictionsResponse* response) {
  const agt::v1::Matrix& in = request.inputs();
  const agt::Matrix x = ModelInput(
      model, Eigen::Map<const agt::Matrix>(in.values().data() + begin * in.cols(), n, in.cols()));
  const bool classification = model.num_classes > 0;
  const bool margins = NeedsMargins(model, rule);
  const size_t nb = model.boxes.size();

  std::vector<agt::LogitBounds> bounds;
  bounds.reserve(nb);
  std::vector<std::vector<bool>> stable(nb);
  for (size_t j = 0; j < nb; ++j) {
    bounds.push_back(agt::ComputeLogitBounds(model.architecture, model.nominal, model.boxes[j].box,
                                             x, request.test_epsilon(), view.method, margins));
    if (classification) stable[j] = agt::Stable(bounds.back(), rule);
  }
  const agt::Matrix nominal =
      nb > 0 ? bounds[0].nominal
             : agt::ComputeLogitBounds(model.architecture, model.nominal,
                                       agt::ParameterBox::Point(model.nominal), x)
                   .nominal;
  const std::vector<int> predicted = agt::PredictClasses(nominal);
  std::vector<int> largest(n, -1);
  if (classification && nb > 0) {
    std::vector<std::vector<bool>> sorted;
    for (int j : view.by_size) sorted.push_back(stable[j]);
    const std::vector<int> s = agt::LargestStableBudget(sorted);
    for (agt::Index i = 0; i < n; ++i) largest[i] = s[i] < 0 ? -1 : view.by_size[s[i]];
  }

  const agt::Index c = nominal.cols();
  for (agt::Index i = 0; i < n; ++i) {
    agt::v1::PointCertificate* point = response->add_points();
    point->set_predicted_class(classification ? predicted[i] : 0);
    for (agt::Index k = 0; k < c; ++k) point->add_nominal_logits(nominal(i, k));
    for (size_t j = 0; j < nb; ++j) {
      agt::v1::LogitBounds* b = point->add_bounds();
      b->mutable_lower()->Reserve(static_cast<int>(c));
      b->mutable_upper()->Reserve(static_cast<int>(c));
      for (agt::Index k = 0; k < c; ++k) {
        b->add_lower(bounds[j].bounds.lower(i, k));
        b->add_upper(bounds[j].bounds.upper(i, k));
      }
      if (classification) {
        point->add_stable(stable[j][i]);
        if (request.labels_size() > 0) {
          const int label = static_cast<int>(request.labels(static_cast<int>(begin + i)));
          point->add_correct(stable[j][i] && predicted[i] == label);
        }
      }
    }
    point->set_largest_stable_budget(largest[i]);
    point->set_largest_stable_n(largest[i] < 0 ? -1 : model.boxes[largest[i]].budget.n);
  }
}

}  // namespace

absl::StatusOr<agt::v1::CertifyPredictionsResponse> CertifyPredictions(
    const ModelRecord& model, const agt::v1::CertifyPredictionsRequest& request,
    const CertifyOptions& options) {
  absl::StatusOr<ModelView> view = View(model);
  if (!view.ok()) return view.status();
  if (absl::Status s = ValidatePredictionRequest(model, request); !s.ok()) return s;
  absl::StatusOr<agt::StabilityRule> rule =
      StabilityRuleFromProto(request.stability_rule(), "stability_rule");
  if (!rule.ok()) return rule.status();
  const agt::Index rows = static_cast<agt::Index>(request.inputs().rows());
  std::unique_ptr<WorkingMemory::Reservation> reservation;
  absl::StatusOr<int64_t> chunk = ReserveChunks(model, rows, options, &reservation);
  if (!chunk.ok()) return chunk.status();

  agt::v1::CertifyPredictionsResponse response;
  for (const BoxRecord& box : model.boxes) *response.add_budgets() = BudgetToProto(box.budget);
  try {
    response.mutable_points()->Reserve(static_cast<int>(rows));
    for (agt::Index begin = 0; begin < rows; begin += *chunk) {
      if (absl::Status s = KeepGoingStatus(options); !s.ok()) return s;
      const agt::Index n = std::min<agt::Index>(*chunk, rows - begin);
      CertifyPredictionChunk(model, *view, request, *rule, begin, n, &response);
    }
  } catch (const std::bad_alloc&) {
    return OutOfMemory(model, *chunk);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("certifying model ", model.id, ": ", e.what()));
  }
  response.set_guarantee(GuaranteeText(model, request.test_epsilon()));
  return response;
}

absl::StatusOr<agt::v1::CertifyDatasetResponse> CertifyDataset(const ModelRecord& model,
                                                               const agt::Dataset& data,
                                                               double test_epsilon,
                                                               agt::v1::StabilityRule rule_proto,
                                                               const CertifyOptions& options) {
  absl::StatusOr<ModelView> view = View(model);
  if (!view.ok()) return view.status();
  if (absl::Status s = CheckTestEpsilon(test_epsilon); !s.ok()) return s;
  absl::StatusOr<agt::StabilityRule> rule = StabilityRuleFromProto(rule_proto, "stability_rule");
  if (!rule.ok()) return rule.status();
  if (data.size() < 1) return Invalid("dataset", "has no rows");
  if (data.dim() != model.input_features) {
    return Invalid("dataset",
                   absl::StrCat(data.dim(), " features, the model needs ", model.input_features));
  }
  if (data.y.size() != data.size()) {
    return Invalid("dataset", absl::StrCat(data.y.size(), " labels for ", data.size(), " rows"));
  }
  const bool classification = model.num_classes > 0;
  if (classification && data.num_classes != model.num_classes) {
    return Invalid("dataset",
                   absl::StrCat("num_classes ", data.num_classes, " does not match the model's ",
                                model.num_classes, " classes"));
  }
  for (agt::Index i = 0; i < data.size(); ++i) {
    const double y = data.y[i];
    if (classification ? !IsClass(y, model.num_classes) : !std::isfinite(y)) {
      return Invalid(
          absl::StrCat("dataset row ", i, " label"),
          absl::StrCat(y, classification ? " is not a class of the model" : " is not finite"));
    }
  }
  if (!data.x.allFinite()) return Invalid("dataset", "features must be finite");
  std::unique_ptr<WorkingMemory::Reservation> reservation;
  absl::StatusOr<int64_t> chunk = ReserveChunks(model, data.size(), options, &reservation);
  if (!chunk.ok()) return chunk.status();

  const bool margins = NeedsMargins(model, *rule);
  const size_t nb = model.boxes.size();
  // Per budget: counts (classification) or sums of squared errors (regression).
  struct Totals {
    double a = 0.0, b = 0.0, c = 0.0, d = 0.0;
  };
  std::vector<Totals> totals(nb);
  try {
    for (agt::Index begin = 0; begin < data.size(); begin += *chunk) {
      if (absl::Status s = KeepGoingStatus(options); !s.ok()) return s;
      const agt::Index n = std::min<agt::Index>(*chunk, data.size() - begin);
      const agt::Matrix x = ModelInput(model, data.x.middleRows(begin, n));
      const agt::Vector y = data.y.segment(begin, n);
      const double dn = static_cast<double>(n);
      for (size_t j = 0; j < nb; ++j) {
        if (j > 0) {
          if (absl::Status s = KeepGoingStatus(options); !s.ok()) return s;
        }
        const agt::LogitBounds lb =
            agt::ComputeLogitBounds(model.architecture, model.nominal, model.boxes[j].box, x,
                                    test_epsilon, view->method, margins);
        if (classification) {
          const agt::ClassificationCertificate cert = agt::CertifyClassification(lb, y, *rule);
          // Fractions of n back to exact counts.
          totals[j].a += std::round(cert.accuracy_nominal * dn);
          totals[j].b += std::round(cert.accuracy_worst * dn);
          totals[j].c += std::round(cert.accuracy_best * dn);
          totals[j].d += std::round(cert.stable_fraction * dn);
        } else {
          const agt::RegressionCertificate cert = agt::CertifyRegression(lb, y);
          totals[j].a += cert.mse_nominal * dn;
          totals[j].b += cert.mse_worst * dn;
          totals[j].c += cert.mse_best * dn;
        }
      }
    }
  } catch (const std::bad_alloc&) {
    return OutOfMemory(model, *chunk);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("certifying model ", model.id, ": ", e.what()));
  }
  agt::v1::CertifyDatasetResponse response;
  const double total = static_cast<double>(data.size());
  for (size_t j = 0; j < nb; ++j) {
    agt::v1::DatasetCertificate* cert = response.add_budgets();
    *cert->mutable_budget() = BudgetToProto(model.boxes[j].budget);
    if (classification) {
      cert->set_accuracy_nominal(totals[j].a / total);
      cert->set_accuracy_worst(totals[j].b / total);
      cert->set_accuracy_best(totals[j].c / total);
      cert->set_stable_fraction(totals[j].d / total);
    } else {
      cert->set_mse_nominal(totals[j].a / total);
      cert->set_mse_worst(totals[j].b / total);
      cert->set_mse_best(totals[j].c / total);
    }
  }
  response.set_num_rows(data.size());
  response.set_guarantee(GuaranteeText(model, test_epsilon));
  return response;
}

ModelCache::ModelCache(size_t capacity) : capacity_(std::max<size_t>(capacity, 1)) {}

absl::StatusOr<std::shared_ptr<const ModelRecord>> ModelCache::Get(Store* store,
                                                                   const std::string& tenant,
                                                                   const std::string& model_id) {
  Key key = absl::StrCat(tenant, absl::string_view("\0", 1), model_id);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = index_.find(key); it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      ++hits_;
      return it->second->model;
    }
    ++misses_;
  }
  // Read outside the lock: a slow SQLite read must not block cache hits.
  absl::StatusOr<ModelRecord> record = store->GetModel(tenant, model_id);
  if (!record.ok()) return record.status();
  auto model = std::make_shared<const ModelRecord>(*std::move(record));
  std::lock_guard<std::mutex> lock(mu_);
  // Deleted while it was being read: the caller's call began before the
  // deletion and may use it, but it is not cached.
  if (forgotten_.contains(key)) return model;
  if (auto it = index_.find(key); it != index_.end()) {
    // Another thread loaded it meanwhile; keep one copy.
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->model;
  }
  lru_.push_front(Entry{key, model});
  index_.emplace(std::move(key), lru_.begin());
  while (lru_.size() > capacity_) {
    index_.erase(lru_.back().key);
    lru_.pop_back();
  }
  return model;
}

void ModelCache::Forget(const std::string& tenant, const std::string& model_id) {
  Key key = absl::StrCat(tenant, absl::string_view("\0", 1), model_id);
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = index_.find(key); it != index_.end()) {
    lru_.erase(it->second);
    index_.erase(it);
  }
  forgotten_.insert(std::move(key));
}

size_t ModelCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lru_.size();
}

int64_t ModelCache::hits() const {
  std::lock_guard<std::mutex> lock(mu_);
  return hits_;
}

int64_t ModelCache::misses() const {
  std::lock_guard<std::mutex> lock(mu_);
  return misses_;
}

}  // namespace agt::server
