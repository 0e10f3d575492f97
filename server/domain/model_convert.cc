#include "server/domain/model_convert.h"

#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_details.h"
#include "server/store/blob.h"

namespace agt::server {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return WithField(absl::InvalidArgumentError(absl::StrCat(field, ": ", what)), field);
}

absl::Status UnknownEnum(absl::string_view field, int value, absl::string_view expected) {
  if (value == 0) return Invalid(field, absl::StrCat("must be set (", expected, ")"));
  return Invalid(field, absl::StrCat("unknown value ", value, " (expected ", expected, ")"));
}

// Sets the field (through its mutable accessor) only for a set time, so that
// an unset time stays an absent field.
template <typename MutableField>
void SetTimestamp(int64_t unix_ms, MutableField mutable_field) {
  if (unix_ms == 0) return;
  *mutable_field() = MillisToTimestamp(unix_ms);
}

absl::StatusOr<agt::v1::TrainingJobSpec> ParseSpec(const std::string& bytes,
                                                   absl::string_view owner) {
  agt::v1::TrainingJobSpec spec;
  if (!spec.ParseFromString(bytes)) {
    return absl::DataLossError(absl::StrCat(owner, ": the stored job spec does not parse"));
  }
  return spec;
}

}  // namespace

namespace {

void LayerToProto(const agt::LayerSpec& l, agt::v1::Layer* layer) {
  switch (l.kind) {
    case agt::LayerKind::kDense:
      layer->mutable_dense()->set_in(l.in);
      layer->mutable_dense()->set_out(l.out);
      return;
    case agt::LayerKind::kRelu:
      layer->mutable_relu();
      return;
    case agt::LayerKind::kFlatten:
      layer->mutable_flatten();
      return;
    case agt::LayerKind::kConv2d: {
      agt::v1::Conv2dLayer* c = layer->mutable_conv2d();
      c->set_in_channels(l.conv.in_channels);
      c->set_out_channels(l.conv.out_channels);
      c->set_kernel_h(l.conv.kernel_h);
      c->set_kernel_w(l.conv.kernel_w);
      c->set_stride_h(l.conv.stride_h);
      c->set_stride_w(l.conv.stride_w);
      c->set_pad_h(l.conv.pad_h);
      c->set_pad_w(l.conv.pad_w);
      return;
    }
  }
}

// Hyper-parameters are checked against shapes by ModelSpec::Validate; here
// only what the proto can hold that the core cannot (an unset kind).
absl::StatusOr<agt::LayerSpec> LayerFromProto(const agt::v1::Layer& layer,
                                              absl::string_view field) {
  switch (layer.kind_case()) {
    case agt::v1::Layer::kDense:
      return agt::LayerSpec::Dense(layer.dense().in(), layer.dense().out());
    case agt::v1::Layer::kRelu:
      return agt::LayerSpec::Relu();
    case agt::v1::Layer::kFlatten:
      return agt::LayerSpec::Flatten();
    case agt::v1::Layer::kConv2D: {
      const agt::v1::Conv2dLayer& c = layer.conv2d();
      // Bounded here so that no shape arithmetic downstream can overflow.
      const struct {
        const char* name;
        int value;
        int min;
      } fields[] = {{"in_channels", c.in_channels(), 1},
                    {"out_channels", c.out_channels(), 1},
                    {"kernel_h", c.kernel_h(), 1},
                    {"kernel_w", c.kernel_w(), 1},
                    {"stride_h", c.stride_h(), 0},
                    {"stride_w", c.stride_w(), 0},
                    {"pad_h", c.pad_h(), 0},
                    {"pad_w", c.pad_w(), 0}};
      for (const auto& f : fields) {
        if (f.value < f.min || f.value > kMaxConvHyperParameter) {
          return Invalid(
              absl::StrCat(field, ".conv2d.", f.name),
              absl::StrCat(f.value, " must be in [", f.min, ", ", kMaxConvHyperParameter, "]"));
        }
      }
      agt::Conv2dParams p;
      p.in_channels = c.in_channels();
      p.out_channels = c.out_channels();
      p.kernel_h = c.kernel_h();
      p.kernel_w = c.kernel_w();
      p.stride_h = c.stride_h() == 0 ? 1 : c.stride_h();
      p.stride_w = c.stride_w() == 0 ? 1 : c.stride_w();
      p.pad_h = c.pad_h();
      p.pad_w = c.pad_w();
      return agt::LayerSpec::Conv2d(p);
    }
    default:
      return Invalid(field, "set dense, conv2d, relu or flatten");
  }
}

}  // namespace

absl::StatusOr<agt::v1::ModelArchitecture> ArchitectureToProto(const agt::ModelSpec& spec) {
  if (absl::Status s = CheckServedModelSpec(spec); !s.ok()) return s;
  agt::v1::ModelArchitecture out;
  for (const agt::LayerSpec& l : spec.layers) LayerToProto(l, out.add_layers());
  for (int d : spec.input_shape.dims) out.add_input_shape(d);
  if (!spec.frozen.empty()) {
    agt::v1::FrozenPrefix* frozen = out.mutable_frozen();
    for (const agt::LayerSpec& l : spec.frozen.layers) LayerToProto(l, frozen->add_layers());
    frozen->mutable_parameters()->Reserve(static_cast<int>(spec.frozen.parameters.size()));
    for (agt::Index k = 0; k < spec.frozen.parameters.size(); ++k) {
      frozen->add_parameters(spec.frozen.parameters[k]);
    }
  }
  return out;
}

absl::StatusOr<agt::ModelSpec> ArchitectureFromProto(const agt::v1::ModelArchitecture& arch,
                                                     absl::string_view field) {
  agt::ModelSpec spec;
  for (int i = 0; i < arch.layers_size(); ++i) {
    absl::StatusOr<agt::LayerSpec> l =
        LayerFromProto(arch.layers(i), absl::StrCat(field, ".layers[", i, "]"));
    if (!l.ok()) return l.status();
    spec.layers.push_back(*l);
  }
  const std::string shape_field = absl::StrCat(field, ".input_shape");
  if (arch.input_shape_size() != 0 && arch.input_shape_size() != 1 &&
      arch.input_shape_size() != 3) {
    return Invalid(shape_field,
                   absl::StrCat(arch.input_shape_size(), " dimensions; give [D] or [C, H, W]"));
  }
  for (int i = 0; i < arch.input_shape_size(); ++i) {
    const int d = arch.input_shape(i);
    if (d < 1 || d > kMaxShapeDimension) {
      return Invalid(absl::StrCat(shape_field, "[", i, "]"),
                     absl::StrCat(d, " must be in [1, ", kMaxShapeDimension, "]"));
    }
    spec.input_shape.dims.push_back(d);
  }
  if (spec.input_shape.size() > kMaxShapeValues) {
    return Invalid(shape_field,
                   absl::StrCat(spec.input_shape.ToString(), " has ", spec.input_shape.size(),
                                " values per sample, above the limit ", kMaxShapeValues));
  }
  if (arch.has_frozen()) {
    const agt::v1::FrozenPrefix& frozen = arch.frozen();
    const std::string frozen_field = absl::StrCat(field, ".frozen");
    if (frozen.layers_size() == 0) {
      return Invalid(absl::StrCat(frozen_field, ".layers"),
                     "a frozen prefix needs at least one layer (or leave frozen unset)");
    }
    for (int i = 0; i < frozen.layers_size(); ++i) {
      absl::StatusOr<agt::LayerSpec> l =
          LayerFromProto(frozen.layers(i), absl::StrCat(frozen_field, ".layers[", i, "]"));
      if (!l.ok()) return l.status();
      spec.frozen.layers.push_back(*l);
    }
    spec.frozen.parameters.resize(frozen.parameters_size());
    for (int k = 0; k < frozen.parameters_size(); ++k) {
      const double v = frozen.parameters(k);
      if (!std::isfinite(v)) {
        return Invalid(absl::StrCat(frozen_field, ".parameters[", k, "]"),
                       absl::StrCat("must be finite, got ", v));
      }
      spec.frozen.parameters[k] = v;
    }
  }
  if (absl::Status s = spec.Validate(); !s.ok()) return Invalid(field, s.message());
  return spec;
}

agt::v1::Parameters ParametersToProto(const agt::ModelSpec& spec, const agt::Vector& flat) {
  if (flat.size() != spec.NumParameters()) {
    std::abort();  // programmer error: the contract requires matching sizes
  }
  agt::v1::Parameters out;
  for (const agt::DenseSlice& s : spec.Layout()) {
    agt::v1::DenseParameters* layer = out.add_layers();
    agt::v1::Matrix* w = layer->mutable_weight();
    w->set_rows(s.out);
    w->set_cols(s.in);
    const agt::Index nw = static_cast<agt::Index>(s.in) * s.out;
    w->mutable_values()->Reserve(static_cast<int>(nw));
    for (agt::Index k = 0; k < nw; ++k) w->add_values(flat[s.weight_offset + k]);
    layer->mutable_bias()->Reserve(s.out);
    for (int k = 0; k < s.out; ++k) layer->add_bias(flat[s.bias_offset + k]);
  }
  return out;
}

absl::StatusOr<agt::Vector> ParametersFromProto(const agt::ModelSpec& spec,
                                                const agt::v1::Parameters& params,
                                                absl::string_view field) {
  const std::vector<agt::DenseSlice> layout = spec.Layout();
  if (params.layers_size() != static_cast<int>(layout.size())) {
    return Invalid(absl::StrCat(field, ".layers"),
                   absl::StrCat(params.layers_size(), " entries, the model has ", layout.size(),
                                " dense and conv2d layers"));
  }
  agt::Vector flat(spec.NumParameters());
  for (size_t i = 0; i < layout.size(); ++i) {
    const agt::DenseSlice& s = layout[i];
    const agt::v1::DenseParameters& layer = params.layers(static_cast<int>(i));
    const std::string path = absl::StrCat(field, ".layers[", i, "]");
    const agt::v1::Matrix& w = layer.weight();
    if (w.rows() != s.out || w.cols() != s.in) {
      return Invalid(absl::StrCat(path, ".weight"),
                     absl::StrCat("shape ", w.rows(), "x", w.cols(), " must be ", s.out, "x", s.in,
                                  " (out x in)"));
    }
    const agt::Index nw = static_cast<agt::Index>(s.in) * s.out;
    if (w.values_size() != nw) {
      return Invalid(absl::StrCat(path, ".weight.values"),
                     absl::StrCat(w.values_size(), " values, expected ", nw));
    }
    if (layer.bias_size() != s.out) {
      return Invalid(absl::StrCat(path, ".bias"),
                     absl::StrCat(layer.bias_size(), " values, expected ", s.out));
    }
    for (agt::Index k = 0; k < nw; ++k) {
      const double v = w.values(static_cast<int>(k));
      if (!std::isfinite(v)) {
        return Invalid(absl::StrCat(path, ".weight.values[", k, "]"),
                       absl::StrCat("must be finite, got ", v));
      }
      flat[s.weight_offset + k] = v;
    }
    for (int k = 0; k < s.out; ++k) {
      const double v = layer.bias(k);
      if (!std::isfinite(v)) {
        return Invalid(absl::StrCat(path, ".bias[", k, "]"),
                       absl::StrCat("must be finite, got ", v));
      }
      flat[s.bias_offset + k] = v;
    }
  }
  return flat;
}

agt::v1::Loss LossToProto(agt::LossKind loss) {
  switch (loss) {
    case agt::LossKind::kMse:
      return agt::v1::LOSS_MSE;
    case agt::LossKind::kBinaryCrossEntropy:
      return agt::v1::LOSS_BINARY_CROSS_ENTROPY;
    case agt::LossKind::kCrossEntropy:
      return agt::v1::LOSS_CROSS_ENTROPY;
    case agt::LossKind::kHinge:
      return agt::v1::LOSS_HINGE;
  }
  return agt::v1::LOSS_UNSPECIFIED;
}

absl::StatusOr<agt::LossKind> LossFromProto(agt::v1::Loss loss, absl::string_view field) {
  switch (loss) {
    case agt::v1::LOSS_MSE:
      return agt::LossKind::kMse;
    case agt::v1::LOSS_BINARY_CROSS_ENTROPY:
      return agt::LossKind::kBinaryCrossEntropy;
    case agt::v1::LOSS_CROSS_ENTROPY:
      return agt::LossKind::kCrossEntropy;
    case agt::v1::LOSS_HINGE:
      return agt::LossKind::kHinge;
    default:
      return UnknownEnum(field, static_cast<int>(loss),
                         "LOSS_MSE, LOSS_BINARY_CROSS_ENTROPY, LOSS_CROSS_ENTROPY or LOSS_HINGE");
  }
}

agt::v1::PerturbationKind PerturbationKindToProto(agt::PerturbationKind kind) {
  switch (kind) {
    case agt::PerturbationKind::kRemoval:
      return agt::v1::PERTURBATION_KIND_REMOVAL;
    case agt::PerturbationKind::kSubstitution:
      return agt::v1::PERTURBATION_KIND_SUBSTITUTION;
    case agt::PerturbationKind::kBoundedPoisoning:
      return agt::v1::PERTURBATION_KIND_POISONING;
  }
  return agt::v1::PERTURBATION_KIND_UNSPECIFIED;
}

absl::StatusOr<agt::PerturbationKind> PerturbationKindFromProto(agt::v1::PerturbationKind kind,
                                                                absl::string_view field) {
  switch (kind) {
    case agt::v1::PERTURBATION_KIND_REMOVAL:
      return agt::PerturbationKind::kRemoval;
    case agt::v1::PERTURBATION_KIND_SUBSTITUTION:
      return agt::PerturbationKind::kSubstitution;
    case agt::v1::PERTURBATION_KIND_POISONING:
      return agt::PerturbationKind::kBoundedPoisoning;
    default:
      return UnknownEnum(field, static_cast<int>(kind),
                         "PERTURBATION_KIND_REMOVAL, PERTURBATION_KIND_SUBSTITUTION or "
                         "PERTURBATION_KIND_POISONING");
  }
}

agt::v1::BoundMethod BoundMethodToProto(agt::BoundMethod method) {
  switch (method) {
    case agt::BoundMethod::kIbp:
      return agt::v1::BOUND_METHOD_IBP;
  }
  return agt::v1::BOUND_METHOD_UNSPECIFIED;
}

agt::v1::IntervalProduct IntervalProductToProto(agt::MatMulMethod product) {
  switch (product) {
    case agt::MatMulMethod::kRump:
      return agt::v1::INTERVAL_PRODUCT_RUMP;
    case agt::MatMulMethod::kExact:
      return agt::v1::INTERVAL_PRODUCT_EXACT;
    case agt::MatMulMethod::kNguyen:
      return agt::v1::INTERVAL_PRODUCT_NGUYEN;
  }
  return agt::v1::INTERVAL_PRODUCT_UNSPECIFIED;
}

absl::StatusOr<agt::MatMulMethod> IntervalProductFromProto(agt::v1::IntervalProduct product,
                                                           absl::string_view field) {
  switch (product) {
    case agt::v1::INTERVAL_PRODUCT_UNSPECIFIED:
    case agt::v1::INTERVAL_PRODUCT_RUMP:
      return agt::MatMulMethod::kRump;
    case agt::v1::INTERVAL_PRODUCT_EXACT:
      return agt::MatMulMethod::kExact;
    case agt::v1::INTERVAL_PRODUCT_NGUYEN:
      return agt::MatMulMethod::kNguyen;
    default:
      return UnknownEnum(field, static_cast<int>(product),
                         "INTERVAL_PRODUCT_RUMP, INTERVAL_PRODUCT_EXACT or "
                         "INTERVAL_PRODUCT_NGUYEN");
  }
}

agt::v1::RoundingMode RoundingModeToProto(agt::RoundingMode mode) {
  switch (mode) {
    case agt::RoundingMode::kNearest:
      return agt::v1::ROUNDING_MODE_NEAREST;
  }
  return agt::v1::ROUNDING_MODE_UNSPECIFIED;
}

absl::StatusOr<agt::RoundingMode> RoundingModeFromProto(agt::v1::RoundingMode mode,
                                                        absl::string_view field) {
  switch (mode) {
    case agt::v1::ROUNDING_MODE_UNSPECIFIED:
    case agt::v1::ROUNDING_MODE_NEAREST:
      return agt::RoundingMode::kNearest;
    default:
      return UnknownEnum(field, static_cast<int>(mode), "ROUNDING_MODE_NEAREST");
  }
}

namespace {

// The product a legacy bound_method value stands for, if it is one.
std::optional<agt::v1::IntervalProduct> LegacyProduct(agt::v1::BoundMethod method) {
  switch (static_cast<int>(method)) {
    case 2:  // BOUND_METHOD_INTERVAL_EXACT
      return agt::v1::INTERVAL_PRODUCT_EXACT;
    case 3:  // BOUND_METHOD_INTERVAL_NGUYEN
      return agt::v1::INTERVAL_PRODUCT_NGUYEN;
    default:
      return std::nullopt;
  }
}

}  // namespace

absl::StatusOr<agt::BoundOptions> BoundOptionsFromProto(const agt::v1::TrainingJobSpec& spec,
                                                        absl::string_view root) {
  const std::string method_field = absl::StrCat(root, ".bound_method");
  const std::string product_field = absl::StrCat(root, ".interval_product");
  agt::v1::IntervalProduct product = spec.interval_product();
  if (std::optional<agt::v1::IntervalProduct> legacy = LegacyProduct(spec.bound_method())) {
    if (product != agt::v1::INTERVAL_PRODUCT_UNSPECIFIED && product != *legacy) {
      return Invalid(method_field,
                     absl::StrCat(agt::v1::BoundMethod_Name(spec.bound_method()),
                                  " (deprecated: BOUND_METHOD_IBP with ",
                                  agt::v1::IntervalProduct_Name(*legacy), ") conflicts with ",
                                  product_field, " ", agt::v1::IntervalProduct_Name(product),
                                  "; set bound_method BOUND_METHOD_IBP"));
    }
    product = *legacy;
  } else if (spec.bound_method() != agt::v1::BOUND_METHOD_UNSPECIFIED &&
             spec.bound_method() != agt::v1::BOUND_METHOD_IBP) {
    return UnknownEnum(method_field, static_cast<int>(spec.bound_method()), "BOUND_METHOD_IBP");
  }
  agt::BoundOptions out;
  out.method = agt::BoundMethod::kIbp;
  absl::StatusOr<agt::MatMulMethod> m = IntervalProductFromProto(product, product_field);
  if (!m.ok()) return m.status();
  out.interval.product = *m;
  absl::StatusOr<agt::RoundingMode> r =
      RoundingModeFromProto(spec.rounding(), absl::StrCat(root, ".rounding"));
  if (!r.ok()) return r.status();
  out.interval.rounding = *r;
  return out;
}

void UpgradeLegacyBoundMethod(agt::v1::TrainingJobSpec* spec) {
  std::optional<agt::v1::IntervalProduct> legacy = LegacyProduct(spec->bound_method());
  if (!legacy.has_value()) return;
  spec->set_bound_method(agt::v1::BOUND_METHOD_IBP);
  spec->set_interval_product(*legacy);
}

agt::v1::StabilityRule StabilityRuleToProto(agt::StabilityRule rule) {
  switch (rule) {
    case agt::StabilityRule::kMargin:
      return agt::v1::STABILITY_RULE_MARGIN;
    case agt::StabilityRule::kSoftmax:
      return agt::v1::STABILITY_RULE_SOFTMAX;
  }
  return agt::v1::STABILITY_RULE_UNSPECIFIED;
}

absl::StatusOr<agt::StabilityRule> StabilityRuleFromProto(agt::v1::StabilityRule rule,
                                                          absl::string_view field) {
  switch (rule) {
    case agt::v1::STABILITY_RULE_UNSPECIFIED:
    case agt::v1::STABILITY_RULE_MARGIN:
      return agt::StabilityRule::kMargin;
    case agt::v1::STABILITY_RULE_SOFTMAX:
      return agt::StabilityRule::kSoftmax;
    default:
      return UnknownEnum(field, static_cast<int>(rule),
                         "STABILITY_RULE_MARGIN or STABILITY_RULE_SOFTMAX");
  }
}

agt::v1::JobState JobStateToProto(JobState state) {
  switch (state) {
    case JobState::kQueued:
      return agt::v1::JOB_STATE_QUEUED;
    case JobState::kRunning:
      return agt::v1::JOB_STATE_RUNNING;
    case JobState::kSucceeded:
      return agt::v1::JOB_STATE_SUCCEEDED;
    case JobState::kFailed:
      return agt::v1::JOB_STATE_FAILED;
    case JobState::kCancelled:
      return agt::v1::JOB_STATE_CANCELLED;
  }
  return agt::v1::JOB_STATE_UNSPECIFIED;
}

absl::StatusOr<JobState> JobStateFromProto(agt::v1::JobState state, absl::string_view field) {
  switch (state) {
    case agt::v1::JOB_STATE_QUEUED:
      return JobState::kQueued;
    case agt::v1::JOB_STATE_RUNNING:
      return JobState::kRunning;
    case agt::v1::JOB_STATE_SUCCEEDED:
      return JobState::kSucceeded;
    case agt::v1::JOB_STATE_FAILED:
      return JobState::kFailed;
    case agt::v1::JOB_STATE_CANCELLED:
      return JobState::kCancelled;
    default:
      return UnknownEnum(field, static_cast<int>(state),
                         "JOB_STATE_QUEUED, JOB_STATE_RUNNING, JOB_STATE_SUCCEEDED, "
                         "JOB_STATE_FAILED or JOB_STATE_CANCELLED");
  }
}

google::protobuf::Timestamp MillisToTimestamp(int64_t unix_ms) {
  google::protobuf::Timestamp ts;
  int64_t seconds = unix_ms / 1000;
  int64_t millis = unix_ms % 1000;
  if (millis < 0) {  // floor division for times before 1970
    millis += 1000;
    seconds -= 1;
  }
  ts.set_seconds(seconds);
  ts.set_nanos(static_cast<int32_t>(millis * 1'000'000));
  return ts;
}

agt::v1::Budget BudgetToProto(const agt::Budget& budget) {
  agt::v1::Budget out;
  out.set_n(budget.n);
  out.set_label_n(budget.label_n);
  return out;
}

agt::v1::JobProgress ProgressToProto(const JobProgressRecord& progress) {
  agt::v1::JobProgress out;
  out.set_iteration(progress.iteration);
  out.set_total_iterations(progress.total_iterations);
  out.set_epoch(progress.epoch);
  out.set_nominal_loss(progress.nominal_loss);
  for (double w : progress.total_width) out.add_total_width(w);
  out.set_eta_seconds(progress.eta_seconds);
  return out;
}

agt::v1::Dataset DatasetToProto(const DatasetRecord& record) {
  agt::v1::Dataset out;
  out.set_id(record.id);
  out.set_name(record.name);
  out.set_num_rows(record.num_rows);
  out.set_num_features(record.num_features);
  out.set_num_classes(record.num_classes);
  out.set_checksum(record.checksum);
  out.set_size_bytes(record.size_bytes);
  for (int d : record.sample_shape) out.add_sample_shape(d);
  SetTimestamp(record.created_ms, [&] { return out.mutable_created(); });
  return out;
}

agt::v1::JobWarning JobWarningToProto(const JobWarningRecord& warning) {
  agt::v1::JobWarning out;
  out.set_code(static_cast<agt::v1::JobWarningCode>(static_cast<int>(warning.code)));
  if (warning.budget.has_value()) *out.mutable_budget() = BudgetToProto(*warning.budget);
  out.set_message(warning.message);
  return out;
}

void WidthHistoryToProto(const WidthHistoryRecord& history,
                         agt::v1::GetTrainingHistoryResponse* out) {
  out->set_stride(history.stride);
  for (const WidthPointRecord& p : history.points) {
    agt::v1::TrainingHistoryPoint* point = out->add_points();
    point->set_iteration(p.iteration);
    point->set_epoch(p.epoch);
    point->set_nominal_loss(p.nominal_loss);
    for (double w : p.total_width) point->add_total_width(w);
  }
}

absl::StatusOr<agt::v1::Job> JobToProto(const JobRecord& record) {
  absl::StatusOr<agt::v1::TrainingJobSpec> spec =
      ParseSpec(record.spec, absl::StrCat("job ", record.id));
  if (!spec.ok()) return spec.status();
  agt::v1::Job out;
  out.set_id(record.id);
  *out.mutable_spec() = *std::move(spec);
  out.set_state(JobStateToProto(record.state));
  *out.mutable_progress() = ProgressToProto(record.progress);
  out.set_error(record.error);
  out.set_model_id(record.model_id);
  out.set_dropped_rows_per_epoch(record.dropped_rows_per_epoch);
  out.set_cancel_requested(record.cancel_requested && !IsFinal(record.state));
  SetTimestamp(record.created_ms, [&] { return out.mutable_created(); });
  SetTimestamp(record.started_ms, [&] { return out.mutable_started(); });
  SetTimestamp(record.finished_ms, [&] { return out.mutable_finished(); });
  for (const JobWarningRecord& w : record.warnings) *out.add_warnings() = JobWarningToProto(w);
  out.set_backend(record.progress.backend);
  return out;
}

agt::v1::JobEvent JobEventFromRecord(const JobRecord& record) {
  agt::v1::JobEvent out;
  out.set_state(JobStateToProto(record.state));
  *out.mutable_progress() = ProgressToProto(record.progress);
  out.set_error(record.error);
  out.set_model_id(record.model_id);
  for (const JobWarningRecord& w : record.warnings) *out.add_warnings() = JobWarningToProto(w);
  return out;
}

absl::StatusOr<agt::v1::Model> ModelToProto(const ModelRecord& record) {
  absl::StatusOr<agt::v1::TrainingJobSpec> spec =
      ParseSpec(record.spec, absl::StrCat("model ", record.id));
  if (!spec.ok()) return spec.status();
  agt::v1::Model out;
  out.set_id(record.id);
  out.set_job_id(record.job_id);
  out.set_dataset_id(record.dataset_id);
  out.set_name(record.name);
  absl::StatusOr<agt::v1::ModelArchitecture> architecture =
      ArchitectureToProto(record.architecture);
  if (!architecture.ok()) return architecture.status();
  *out.mutable_architecture() = *std::move(architecture);
  out.set_polynomial_degree(record.polynomial_degree);
  out.set_input_features(record.input_features);
  out.set_loss(spec->loss());
  out.set_num_classes(record.num_classes);
  *out.mutable_perturbation() = spec->perturbation();
  for (const BoxRecord& box : record.boxes) {
    agt::v1::BudgetSummary* summary = out.add_budgets();
    *summary->mutable_budget() = BudgetToProto(box.budget);
    summary->set_total_width(box.total_width);
    summary->set_max_width(box.max_width);
  }
  if (record.nominal.size() == record.architecture.NumParameters()) {
    *out.mutable_nominal() = ParametersToProto(record.architecture, record.nominal);
  } else {
    return absl::DataLossError(absl::StrCat("model ", record.id, ": ", record.nominal.size(),
                                            " stored parameters, the architecture has ",
                                            record.architecture.NumParameters()));
  }
  out.set_momentum_caveat(spec->optimizer().momentum() > 0.0);
  SetTimestamp(record.created_ms, [&] { return out.mutable_created(); });
  absl::StatusOr<agt::BoundOptions> bounds = BoundOptionsFromProto(*spec);
  if (!bounds.ok()) {
    return absl::DataLossError(
        absl::StrCat("model ", record.id, ": the stored job spec: ", bounds.status().message()));
  }
  out.set_bound_method(BoundMethodToProto(bounds->method));
  out.set_interval_product(IntervalProductToProto(bounds->interval.product));
  out.set_rounding(RoundingModeToProto(bounds->interval.rounding));
  for (const JobWarningRecord& w : record.warnings) *out.add_warnings() = JobWarningToProto(w);
  out.set_backend(record.backend);
  return out;
}

absl::StatusOr<agt::v1::ExportModelResponse> ExportModelToProto(const ModelRecord& record) {
  absl::StatusOr<agt::v1::Model> model = ModelToProto(record);
  if (!model.ok()) return model.status();
  agt::v1::ExportModelResponse out;
  *out.mutable_model() = *std::move(model);
  const agt::Index p = record.architecture.NumParameters();
  for (size_t j = 0; j < record.boxes.size(); ++j) {
    const BoxRecord& box = record.boxes[j];
    if (box.box.lower.size() != p || box.box.upper.size() != p) {
      return absl::DataLossError(
          absl::StrCat("model ", record.id, ": box ", j, " does not match the architecture"));
    }
    agt::v1::BudgetBox* b = out.add_boxes();
    *b->mutable_budget() = BudgetToProto(box.budget);
    *b->mutable_lower() = ParametersToProto(record.architecture, box.box.lower);
    *b->mutable_upper() = ParametersToProto(record.architecture, box.box.upper);
  }
  return out;
}

}  // namespace agt::server
