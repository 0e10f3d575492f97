#include "server/domain/job_spec.h"

#include <algorithm>
#include <optional>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/common/status_details.h"
#include "core/data/dataset.h"
#include "server/domain/model_convert.h"

namespace agt::server {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return WithField(absl::InvalidArgumentError(absl::StrCat(field, ": ", what)), field);
}

std::string Indexed(absl::string_view field, int i) { return absl::StrCat(field, "[", i, "]"); }

absl::Status CheckNonNegative(absl::string_view field, double v) {
  if (v >= 0.0 && std::isfinite(v)) return absl::OkStatus();
  return Invalid(field, absl::StrCat("must be a finite number >= 0, got ", v));
}

int EffectiveDegree(const agt::v1::TrainingJobSpec& spec) {
  return spec.polynomial_degree() == 0 ? 1 : spec.polynomial_degree();
}

std::string LossName(agt::v1::Loss loss) { return agt::v1::Loss_Name(loss); }
bool IsClassificationLoss(agt::v1::Loss loss) {
  return loss == agt::v1::LOSS_BINARY_CROSS_ENTROPY || loss == agt::v1::LOSS_CROSS_ENTROPY ||
         loss == agt::v1::LOSS_HINGE;
}

// Model input width after expanding `features` to degree `degree`, or -1 when
// it exceeds kMaxInputWidth (computed without overflow).
int64_t ExpandedWidth(int64_t features, int degree) {
  // C(features + degree, degree) - 1, built up term by term.
  int64_t binomial = 1;
  for (int k = 1; k <= degree; ++k) {
    binomial = binomial * (features + k) / k;
    if (binomial - 1 > kMaxInputWidth) return -1;
  }
  return binomial - 1;
}

absl::Status ValidateName(const agt::v1::TrainingJobSpec& spec) {
  if (static_cast<int64_t>(spec.name().size()) > kMaxJobNameLength) {
    return Invalid("spec.name", absl::StrCat(spec.name().size(), " characters exceed the limit ",
                                             kMaxJobNameLength));
  }
  if (spec.dataset_id().empty()) return Invalid("spec.dataset_id", "is required");
  const int degree = spec.polynomial_degree();
  if (degree < 0 || degree > kMaxPolynomialDegree) {
    return Invalid("spec.polynomial_degree",
                   absl::StrCat(degree, " must be in [1, ", kMaxPolynomialDegree, "]"));
  }
  return absl::OkStatus();
}

absl::Status ValidateHiddenWidths(const agt::v1::TrainingJobSpec& spec) {
  if (spec.hidden_widths_size() > kMaxDenseLayers - 1) {
    return Invalid("spec.hidden_widths",
                   absl::StrCat(spec.hidden_widths_size(), " hidden layers exceed the limit ",
                                kMaxDenseLayers - 1));
  }
  for (int i = 0; i < spec.hidden_widths_size(); ++i) {
    const int w = spec.hidden_widths(i);
    if (w < 1 || w > kMaxLayerWidth) {
      return Invalid(Indexed("spec.hidden_widths", i),
                     absl::StrCat(w, " must be in [1, ", kMaxLayerWidth, "]"));
    }
  }
  return absl::OkStatus();
}

// Every value a layer produces per sample is bounded, so that a conv layer
// with padding cannot blow one sample up beyond what admission can reason
// about (and no shape arithmetic overflows). Precondition: Validate passed.
absl::Status CheckActivationSizes(const agt::ModelSpec& model) {
  const auto check = [](const agt::Network& net, absl::string_view field) -> absl::Status {
    for (size_t i = 0; i < net.size(); ++i) {
      const agt::Shape& out = net.layer(i).output_shape();
      if (out.size() > kMaxActivationValues) {
        return Invalid(Indexed(field, static_cast<int>(i)),
                       absl::StrCat("produces ", out.ToString(), " = ", out.size(),
                                    " values per sample, above the limit ", kMaxActivationValues));
      }
    }
    return absl::OkStatus();
  };
  if (!model.frozen.empty()) {
    if (absl::Status s = check(model.FrozenNetwork(), "spec.architecture.frozen.layers"); !s.ok()) {
      return s;
    }
  }
  return check(model.TrainedNetwork(), "spec.architecture.layers");
}

absl::Status ValidateArchitecture(const agt::v1::ModelArchitecture& arch) {
  const std::string field = "spec.architecture.layers";
  if (arch.layers_size() == 0) return Invalid(field, "at least one dense layer is required");
  if (arch.layers_size() > kMaxArchitectureLayers) {
    return Invalid(field, absl::StrCat(arch.layers_size(), " layers exceed the limit ",
                                       kMaxArchitectureLayers));
  }
  int dense = 0;
  for (int i = 0; i < arch.layers_size(); ++i) {
    const agt::v1::Layer& layer = arch.layers(i);
    if (layer.kind_case() == agt::v1::Layer::KIND_NOT_SET) {
      return Invalid(Indexed(field, i), "set dense, conv2d, relu or flatten");
    }
    if (layer.kind_case() != agt::v1::Layer::kDense) continue;
    const int in_limit = dense == 0 ? kMaxInputWidth : kMaxLayerWidth;
    if (layer.dense().in() < 1 || layer.dense().in() > in_limit) {
      return Invalid(absl::StrCat(Indexed(field, i), ".dense.in"),
                     absl::StrCat(layer.dense().in(), " must be in [1, ", in_limit, "]"));
    }
    if (layer.dense().out() < 1 || layer.dense().out() > kMaxLayerWidth) {
      return Invalid(absl::StrCat(Indexed(field, i), ".dense.out"),
                     absl::StrCat(layer.dense().out(), " must be in [1, ", kMaxLayerWidth, "]"));
    }
    ++dense;
  }
  if (dense > kMaxDenseLayers) {
    return Invalid(field, absl::StrCat(dense, " dense layers exceed the limit ", kMaxDenseLayers));
  }
  if (arch.frozen().layers_size() > kMaxArchitectureLayers) {
    return Invalid("spec.architecture.frozen.layers",
                   absl::StrCat(arch.frozen().layers_size(), " layers exceed the limit ",
                                kMaxArchitectureLayers));
  }
  if (arch.frozen().parameters_size() > kMaxParameters) {
    return Invalid(
        "spec.architecture.frozen.parameters",
        absl::StrCat(arch.frozen().parameters_size(), " values exceed the limit ", kMaxParameters));
  }
  absl::StatusOr<agt::ModelSpec> model = ArchitectureFromProto(arch, "spec.architecture");
  if (!model.ok()) return model.status();
  if (model->NumParameters() > kMaxParameters) {
    return Invalid("spec.architecture",
                   absl::StrCat("the model has ", model->NumParameters(),
                                " parameters, above the limit ", kMaxParameters));
  }
  return CheckActivationSizes(*model);
}

absl::Status ValidateModelShape(const agt::v1::TrainingJobSpec& spec) {
  const bool has_arch = spec.has_architecture();
  const bool has_hidden = spec.hidden_widths_size() > 0;
  if (has_arch && has_hidden) {
    return Invalid("spec.architecture", "give either architecture or hidden_widths, not both");
  }
  // Neither: a linear model (one dense layer sized by the data and the loss).
  return has_arch ? ValidateArchitecture(spec.architecture()) : ValidateHiddenWidths(spec);
}

absl::Status ValidateLabelPerturbation(const agt::v1::TrainingJobSpec& spec) {
  const agt::v1::LabelPerturbation& labels = spec.perturbation().labels();
  const std::string field = "spec.perturbation.labels";
  const bool classification = IsClassificationLoss(spec.loss());
  switch (labels.kind_case()) {
    case agt::v1::LabelPerturbation::KIND_NOT_SET:
      return Invalid(field, "set one of flip, target_class or nu (or omit labels)");
    case agt::v1::LabelPerturbation::kNu:
      if (spec.loss() != agt::v1::LOSS_MSE) {
        return Invalid(field + ".nu", absl::StrCat("applies to LOSS_MSE only, the loss is ",
                                                   LossName(spec.loss())));
      }
      return absl::OkStatus();
    default:
      break;
  }
  const bool flip = labels.kind_case() == agt::v1::LabelPerturbation::kFlip;
  const std::string sub = field + (flip ? ".flip" : ".target_class");
  if (!classification) {
    return Invalid(sub, absl::StrCat("applies to classification losses, the loss is ",
                                     LossName(spec.loss()), " (use nu for regression)"));
  }
  if (flip) {
    if (!labels.flip())
      return Invalid(sub, "must be true (omit labels to leave labels unpoisoned)");
    return absl::OkStatus();
  }
  // The core reads -1 as "any class"; here a class is always explicit.
  if (labels.target_class() < 0) {
    return Invalid(sub, absl::StrCat(labels.target_class(), " must be >= 0"));
  }
  return absl::OkStatus();
}

// What the proto's form needs beyond the core's rules: a known kind, one
// label kind set per oneof and legal for the loss; and a poisoning job must
// poison something (the core allows the degenerate case, the API does not).
absl::Status ValidatePerturbation(const agt::v1::TrainingJobSpec& spec) {
  const agt::v1::Perturbation& p = spec.perturbation();
  absl::StatusOr<agt::PerturbationKind> kind =
      PerturbationKindFromProto(p.kind(), "spec.perturbation.kind");
  if (!kind.ok()) return kind.status();
  if (*kind != agt::PerturbationKind::kBoundedPoisoning) return absl::OkStatus();
  if (p.epsilon() == 0.0 && !p.has_labels()) {
    return Invalid("spec.perturbation", "PERTURBATION_KIND_POISONING needs epsilon > 0 or labels");
  }
  // Budget.n counts feature-poisoned rows: with epsilon 0 they move nothing,
  // and a label-flipping job whose budgets set only n (label_n 0) would be
  // certified against no perturbation at all under the labels it names.
  if (p.has_labels()) {
    if (absl::Status s = ValidateLabelPerturbation(spec); !s.ok()) return s;
  }
  if (p.epsilon() == 0.0) {
    for (int i = 0; i < spec.budgets_size(); ++i) {
      if (spec.budgets(i).n() > 0) {
        return Invalid(absl::StrCat("spec.budgets[", i, "].n"),
                       absl::StrCat(spec.budgets(i).n(),
                                    " feature-poisoned rows with perturbation.epsilon 0 move "
                                    "nothing: give label-poisoned rows as label_n, or set "
                                    "epsilon > 0"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateBudgetCount(const agt::v1::TrainingJobSpec& spec) {
  if (spec.budgets_size() > kMaxBudgets) {
    return Invalid("spec.budgets",
                   absl::StrCat(spec.budgets_size(), " budgets exceed the limit ", kMaxBudgets));
  }
  return absl::OkStatus();
}

absl::Status ValidateTraining(const agt::v1::TrainingJobSpec& spec) {
  if (absl::StatusOr<agt::LossKind> loss = LossFromProto(spec.loss(), "spec.loss"); !loss.ok()) {
    return loss.status();
  }
  if (spec.epochs() < 1 || spec.epochs() > kMaxEpochs) {
    return Invalid("spec.epochs", absl::StrCat(spec.epochs(), " must be in [1, ", kMaxEpochs, "]"));
  }
  // 0 means no clipping here; the core sees an absent clip_gamma.
  if (absl::Status s = CheckNonNegative("spec.clip_gamma", spec.clip_gamma()); !s.ok()) return s;
  return BoundOptionsFromProto(spec).status();
}

// The dataset-dependent part: classes, widths, sizes; builds the ModelSpec.
absl::StatusOr<agt::ModelSpec> ResolveModel(const agt::v1::TrainingJobSpec& spec,
                                            const DatasetRecord& dataset, int64_t input_width,
                                            int outputs) {
  agt::ModelSpec model;
  const std::string why_in =
      absl::StrCat("the model input width ", input_width, " (", dataset.num_features,
                   " dataset features at "
                   "polynomial_degree ",
                   EffectiveDegree(spec), ")");
  if (spec.has_architecture()) {
    absl::StatusOr<agt::ModelSpec> m =
        ArchitectureFromProto(spec.architecture(), "spec.architecture");
    if (!m.ok()) return m.status();
    model = *std::move(m);
    const agt::Shape data_shape = dataset.sample_shape.empty()
                                      ? agt::Shape::Flat(dataset.num_features)
                                      : agt::Shape{dataset.sample_shape};
    const bool shaped = model.InputShape().is_image() || !model.frozen.empty();
    if (shaped && EffectiveDegree(spec) != 1) {
      return Invalid("spec.polynomial_degree",
                     absl::StrCat(spec.polynomial_degree(),
                                  ": polynomial features apply to flat models only; this model "
                                  "has input shape ",
                                  model.InputShape().ToString(),
                                  model.frozen.empty() ? "" : " and a frozen prefix"));
    }
    if (model.InputShape().is_image() && model.InputShape() != data_shape) {
      return Invalid(
          "spec.architecture.input_shape",
          absl::StrCat(model.InputShape().ToString(), " does not match the sample shape ",
                       data_shape.ToString(), " of dataset ", dataset.id));
    }
    if (model.InputDim() != input_width) {
      return Invalid(spec.architecture().input_shape_size() > 0
                         ? "spec.architecture.input_shape"
                         : "spec.architecture.layers[0].dense.in",
                     absl::StrCat(model.InputDim(), " must equal ", why_in));
    }
    if (model.OutputDim() != outputs) {
      int last = spec.architecture().layers_size() - 1;
      return Invalid(absl::StrCat("spec.architecture.layers[", last, "].dense.out"),
                     absl::StrCat(model.OutputDim(), " must equal ", outputs, ", ",
                                  spec.loss() == agt::v1::LOSS_CROSS_ENTROPY
                                      ? "one output per class of the dataset"
                                      : absl::StrCat("the outputs of ", LossName(spec.loss()))));
    }
  } else {
    std::vector<int> widths = {static_cast<int>(input_width)};
    widths.insert(widths.end(), spec.hidden_widths().begin(), spec.hidden_widths().end());
    widths.push_back(outputs);
    model = agt::ModelSpec::Mlp(widths);
  }
  if (model.NumParameters() > kMaxParameters) {
    return Invalid(spec.has_architecture() ? "spec.architecture" : "spec.hidden_widths",
                   absl::StrCat("the model has ", model.NumParameters(), " parameters (", why_in,
                                "), above the limit ", kMaxParameters));
  }
  return model;
}

// Loss against the dataset's labels; returns the model's classes.
absl::StatusOr<int> ResolveClasses(const agt::v1::TrainingJobSpec& spec,
                                   const DatasetRecord& dataset) {
  const std::string has = dataset.num_classes == 0 ? std::string("real-valued targets")
                                                   : absl::StrCat(dataset.num_classes, " classes");
  switch (spec.loss()) {
    case agt::v1::LOSS_MSE:
      return 0;
    case agt::v1::LOSS_BINARY_CROSS_ENTROPY:
    case agt::v1::LOSS_HINGE:
      if (dataset.num_classes != 2) {
        return Invalid("spec.loss",
                       absl::StrCat(LossName(spec.loss()), " needs binary labels 0/1, dataset ",
                                    dataset.id, " has ", has));
      }
      return 2;
    case agt::v1::LOSS_CROSS_ENTROPY:
      if (dataset.num_classes < 2) {
        return Invalid("spec.loss", absl::StrCat("LOSS_CROSS_ENTROPY needs class labels "
                                                 "0..C-1, dataset ",
                                                 dataset.id, " has ", has));
      }
      if (dataset.num_classes > kMaxLayerWidth) {
        return Invalid("spec.loss",
                       absl::StrCat("dataset ", dataset.id, " has ", dataset.num_classes,
                                    " classes, above the output limit ", kMaxLayerWidth));
      }
      return dataset.num_classes;
    default:
      return LossFromProto(spec.loss(), "spec.loss").status();
  }
}

agt::PerturbationModel MapPerturbation(const agt::v1::Perturbation& p) {
  agt::PerturbationModel out;
  out.kind = *PerturbationKindFromProto(p.kind(), "spec.perturbation.kind");
  out.epsilon = p.epsilon();
  out.paired = p.paired();
  if (p.has_labels()) {
    out.label.enabled = true;
    switch (p.labels().kind_case()) {
      case agt::v1::LabelPerturbation::kTargetClass:
        out.label.target_class = p.labels().target_class();
        break;
      case agt::v1::LabelPerturbation::kNu:
        out.label.nu = p.labels().nu();
        break;
      default:
        break;
    }
  }
  return out;
}

agt::OptimizerConfig MapOptimizer(const agt::v1::Optimizer& o) {
  agt::OptimizerConfig out;
  out.learning_rate = o.learning_rate();
  out.lr_decay = o.lr_decay();
  out.lr_min = o.lr_min();
  out.l1 = o.l1();
  out.l2 = o.l2();
  out.momentum_enabled = o.momentum() > 0.0;
  out.momentum = o.momentum();
  out.dampening = o.dampening();
  out.nesterov = o.nesterov();
  return out;
}

// The spec as the core's TrainConfig, all but the model. Preconditions: the
// enum fields were checked (ValidateTraining, ValidatePerturbation).
agt::TrainConfig MapTraining(const agt::v1::TrainingJobSpec& spec) {
  agt::TrainConfig c;
  c.loss = *LossFromProto(spec.loss(), "spec.loss");
  c.batch_size = spec.batch_size();
  c.epochs = spec.epochs();
  c.optimizer = MapOptimizer(spec.optimizer());
  if (spec.clip_gamma() > 0.0) c.clip_gamma = spec.clip_gamma();
  c.perturbation = MapPerturbation(spec.perturbation());
  for (const agt::v1::Budget& b : spec.budgets()) c.budgets.push_back({b.n(), b.label_n()});
  c.bounds = *BoundOptionsFromProto(spec);
  // Checked by the core against the dataset (TrainConfig::Validate).
  c.removed_rows.assign(spec.removed_rows().begin(), spec.removed_rows().end());
  return c;
}

// The core's messages name its fields ("optimizer.l2: ..."), which are the
// spec's fields under "spec.".
absl::Status InSpec(const absl::Status& core) {
  if (core.ok()) return core;
  return WithMessage(core, absl::StrCat("spec.", core.message()));
}

}  // namespace

absl::Status ValidateJobSpecShape(const agt::v1::TrainingJobSpec& spec) {
  if (absl::Status s = ValidateName(spec); !s.ok()) return s;
  if (absl::Status s = ValidateModelShape(spec); !s.ok()) return s;
  if (absl::Status s = ValidateTraining(spec); !s.ok()) return s;
  if (absl::Status s = ValidatePerturbation(spec); !s.ok()) return s;
  if (absl::Status s = ValidateBudgetCount(spec); !s.ok()) return s;
  if (!agt::v1::ComputeBackend_IsValid(spec.backend())) {
    return Invalid("spec.backend", absl::StrCat(static_cast<int>(spec.backend()),
                                                " is not a ComputeBackend (0-3)"));
  }
  // Every rule of the training configuration itself is the core's.
  return InSpec(MapTraining(spec).ValidateTraining());
}

agt::BackendChoice BackendChoiceOf(agt::v1::ComputeBackend backend,
                                   agt::BackendChoice server_default) {
  switch (backend) {
    case agt::v1::COMPUTE_BACKEND_AUTO:
      return agt::BackendChoice::kAuto;
    case agt::v1::COMPUTE_BACKEND_CPU:
      return agt::BackendChoice::kCpu;
    case agt::v1::COMPUTE_BACKEND_CUDA:
      return agt::BackendChoice::kCuda;
    default:
      return server_default;
  }
}

absl::StatusOr<ResolvedJob> ResolveJobSpec(const agt::v1::TrainingJobSpec& spec,
                                           const DatasetRecord& dataset) {
  if (absl::Status s = ValidateJobSpecShape(spec); !s.ok()) return s;
  if (spec.dataset_id() != dataset.id) {
    return Invalid("spec.dataset_id",
                   absl::StrCat("\"", spec.dataset_id(), "\" does not match the dataset \"",
                                dataset.id, "\""));
  }
  if (dataset.num_rows < 1 || dataset.num_features < 1) {
    return Invalid("spec.dataset_id",
                   absl::StrCat("dataset ", dataset.id, " has ", dataset.num_rows, " rows and ",
                                dataset.num_features,
                                " features; training needs at least one "
                                "of each"));
  }
  absl::StatusOr<int> classes = ResolveClasses(spec, dataset);
  if (!classes.ok()) return classes.status();

  const int degree = EffectiveDegree(spec);
  const int64_t input_width = ExpandedWidth(dataset.num_features, degree);
  if (input_width < 0) {
    return Invalid("spec.polynomial_degree",
                   absl::StrCat(degree, " expands the dataset's ", dataset.num_features,
                                " features beyond the input width limit ", kMaxInputWidth));
  }
  const int outputs = spec.loss() == agt::v1::LOSS_CROSS_ENTROPY ? *classes : 1;
  absl::StatusOr<agt::ModelSpec> model = ResolveModel(spec, dataset, input_width, outputs);
  if (!model.ok()) return model.status();

  if (spec.batch_size() > dataset.num_rows) {
    return Invalid("spec.batch_size",
                   absl::StrCat(spec.batch_size(), " exceeds the ", dataset.num_rows,
                                " rows of dataset ", dataset.id));
  }
  const int64_t steps = (dataset.num_rows / spec.batch_size()) * spec.epochs();
  if (steps > kMaxTotalSteps) {
    return Invalid(
        "spec.epochs",
        absl::StrCat(spec.epochs(), " epochs of ", dataset.num_rows / spec.batch_size(),
                     " batches are ", steps, " steps, above the limit ", kMaxTotalSteps));
  }

  ResolvedJob job;
  job.polynomial_degree = degree;
  job.input_features = dataset.num_features;
  job.num_classes = *classes;
  job.momentum_caveat = spec.optimizer().momentum() > 0.0;
  job.config = MapTraining(spec);
  job.config.model = *std::move(model);
  if (spec.architecture().has_initial_parameters()) {
    absl::StatusOr<agt::Vector> init =
        ParametersFromProto(job.config.model, spec.architecture().initial_parameters(),
                            "spec.architecture.initial_parameters");
    if (!init.ok()) return init.status();
    job.initial_parameters = *std::move(init);
  }
  if (absl::Status s =
          InSpec(job.config.Validate(input_width, dataset.num_classes, dataset.num_rows));
      !s.ok()) {
    return s;
  }
  return job;
}

}  // namespace agt::server
