// ResolveJobSpec / ValidateJobSpecShape: every field is checked with a message
// naming the field path, the value and the limit; accepted specs map onto the
// TrainConfig the core expects and are accepted by Trainer::Create.
#include "server/domain/job_spec.h"

#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "core/data/dataset.h"
#include "core/model/model.h"
#include "core/train/train.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/domain/model_convert.h"
#include "tests/core/train_config_cases.h"

namespace agt::server {
namespace {

using ::testing::HasSubstr;

DatasetRecord Moons() {
  DatasetRecord d;
  d.id = "ds-moons";
  d.tenant = "t1";
  d.name = "moons";
  d.num_rows = 200;
  d.num_features = 2;
  d.num_classes = 2;
  return d;
}

DatasetRecord Blobs() {
  DatasetRecord d = Moons();
  d.id = "ds-blobs";
  d.num_features = 4;
  d.num_classes = 3;
  return d;
}

DatasetRecord Regression() {
  DatasetRecord d = Moons();
  d.id = "ds-reg";
  d.num_features = 3;
  d.num_classes = 0;
  return d;
}

agt::v1::TrainingJobSpec ValidSpec() {
  agt::v1::TrainingJobSpec s;
  s.set_name("moons");
  s.set_dataset_id("ds-moons");
  s.set_polynomial_degree(1);
  s.add_hidden_widths(16);
  s.set_loss(agt::v1::LOSS_BINARY_CROSS_ENTROPY);
  s.set_batch_size(20);
  s.set_epochs(2);
  s.mutable_optimizer()->set_learning_rate(0.1);
  s.mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_REMOVAL);
  s.add_budgets()->set_n(1);
  s.add_budgets()->set_n(5);
  s.set_seed(7);
  return s;
}

TEST(ResolveJobSpec, MapsAValidSpecOntoTheCoreConfig) {
  agt::v1::TrainingJobSpec s = ValidSpec();
  s.set_polynomial_degree(3);
  s.mutable_optimizer()->set_lr_decay(0.5);
  s.mutable_optimizer()->set_lr_min(0.01);
  s.mutable_optimizer()->set_l2(0.01);
  s.set_clip_gamma(2.5);
  s.set_bound_method(agt::v1::BOUND_METHOD_INTERVAL_NGUYEN);
  absl::StatusOr<ResolvedJob> r = ResolveJobSpec(s, Moons());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->polynomial_degree, 3);
  EXPECT_EQ(r->input_features, 2);
  EXPECT_EQ(r->num_classes, 2);
  EXPECT_FALSE(r->momentum_caveat);
  const agt::TrainConfig& c = r->config;
  // 2 features at degree 3: 9 monomials; hidden 16; one logit.
  EXPECT_EQ(c.model.Describe(), agt::ModelSpec::Mlp({9, 16, 1}).Describe());
  EXPECT_EQ(c.model.NumParameters(), agt::ModelSpec::Mlp({9, 16, 1}).NumParameters());
  EXPECT_EQ(c.loss, agt::LossKind::kBinaryCrossEntropy);
  EXPECT_EQ(c.batch_size, 20);
  EXPECT_EQ(c.epochs, 2);
  EXPECT_EQ(c.optimizer.learning_rate, 0.1);
  EXPECT_EQ(c.optimizer.lr_decay, 0.5);
  EXPECT_EQ(c.optimizer.lr_min, 0.01);
  EXPECT_EQ(c.optimizer.l2, 0.01);
  EXPECT_FALSE(c.optimizer.momentum_enabled);
  ASSERT_TRUE(c.clip_gamma.has_value());
  EXPECT_EQ(*c.clip_gamma, 2.5);
  EXPECT_EQ(c.perturbation.kind, agt::PerturbationKind::kRemoval);
  ASSERT_EQ(c.budgets.size(), 2u);
  EXPECT_EQ(c.budgets[0].n, 1);
  EXPECT_EQ(c.budgets[1].n, 5);
  EXPECT_EQ(c.bounds.interval.product, agt::MatMulMethod::kNguyen);
  EXPECT_EQ(c.threads, 0);

  // The core accepts it on data of that shape.
  agt::Dataset data = agt::MakeMoons(200, 0.1, 1);
  data.x = agt::PolynomialFeatures(data.x, 3);
  absl::StatusOr<std::unique_ptr<agt::Trainer>> t =
      agt::Trainer::Create(c, data, agt::InitParameters(c.model, 7));
  EXPECT_TRUE(t.ok()) << t.status();
}

TEST(ResolveJobSpec, DefaultsForProto3ZeroValues) {
  agt::v1::TrainingJobSpec s = ValidSpec();
  s.set_polynomial_degree(0);
  s.set_bound_method(agt::v1::BOUND_METHOD_UNSPECIFIED);
  s.set_clip_gamma(0);
  absl::StatusOr<ResolvedJob> r = ResolveJobSpec(s, Moons());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->polynomial_degree, 1);
  EXPECT_EQ(r->config.model.InputDim(), 2);
  EXPECT_EQ(r->config.bounds.interval.product, agt::MatMulMethod::kRump);
  EXPECT_FALSE(r->config.clip_gamma.has_value());
}

TEST(ResolveJobSpec, NeitherArchitectureNorHiddenWidthsIsALinearModel) {
  agt::v1::TrainingJobSpec s = ValidSpec();
  s.set_dataset_id("ds-blobs");
  s.set_loss(agt::v1::LOSS_CROSS_ENTROPY);
  s.set_polynomial_degree(2);
  s.clear_hidden_widths();
  absl::StatusOr<ResolvedJob> r = ResolveJobSpec(s, Blobs());
  ASSERT_TRUE(r.ok()) << r.status();
  // 4 raw features expand to 4 + 10 monomials of degree <= 2.
  EXPECT_EQ(r->config.model.Describe(), agt::ModelSpec::Mlp({14, 3}).Describe());
}

TEST(ResolveJobSpec, CrossEntropyGetsOneOutputPerClass) {
  agt::v1::TrainingJobSpec s = ValidSpec();
  s.set_dataset_id("ds-blobs");
  s.set_loss(agt::v1::LOSS_CROSS_ENTROPY);
  s.clear_hidden_widths();
  s.add_hidden_widths(8);
  s.add_hidden_widths(6);
  absl::StatusOr<ResolvedJob> r = ResolveJobSpec(s, Blobs());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->num_classes, 3);
  EXPECT_EQ(r->config.model.Describe(), agt::ModelSpec::Mlp({4, 8, 6, 3}).Describe());
}

TEST(ResolveJobSpec, ExplicitArchitectureIsUsedAsGiven) {
  agt::v1::TrainingJobSpec s = ValidSpec();
  s.clear_hidden_widths();
  auto* arch = s.mutable_architecture();
  auto* d0 = arch->add_layers()->mutable_dense();
  d0->set_in(2);
  d0->set_out(5);
  arch->add_layers()->mutable_relu();
  auto* d1 = arch->add_layers()->mutable_dense();
  d1->set_in(5);
  d1->set_out(1);
  absl::StatusOr<ResolvedJob> r = ResolveJobSpec(s, Moons());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->config.model.Describe(), agt::ModelSpec::Mlp({2, 5, 1}).Describe());
}

// 28x28 one-channel images, 10 classes.
DatasetRecord Images() {
  DatasetRecord d = Moons();
  d.id = "ds-images";
  d.num_rows = 100;
  d.num_features = 784;
  d.num_classes = 10;
  d.sample_shape = {1, 28, 28};
  return d;
}

// [1, 28, 28] -> conv 4@5x5 stride 3 -> [4, 8, 8] -> relu -> flatten -> 10,
// optionally with the conv, relu and flatten frozen.
agt::v1::TrainingJobSpec ConvSpec(bool frozen) {
  agt::v1::TrainingJobSpec s = ValidSpec();
  s.clear_hidden_widths();
  s.set_dataset_id("ds-images");
  s.set_loss(agt::v1::LOSS_CROSS_ENTROPY);
  auto* arch = s.mutable_architecture();
  for (int d : {1, 28, 28}) arch->add_input_shape(d);
  google::protobuf::RepeatedPtrField<agt::v1::Layer>* prefix =
      frozen ? arch->mutable_frozen()->mutable_layers() : arch->mutable_layers();
  agt::v1::Conv2dLayer* conv = prefix->Add()->mutable_conv2d();
  conv->set_in_channels(1);
  conv->set_out_channels(4);
  conv->set_kernel_h(5);
  conv->set_kernel_w(5);
  conv->set_stride_h(3);
  conv->set_stride_w(3);
  prefix->Add()->mutable_relu();
  if (frozen) {
    for (int k = 0; k < 4 * 25 + 4; ++k) arch->mutable_frozen()->add_parameters(0.01 * k);
  }
  prefix->Add()->mutable_flatten();  // the trained layers start with parameters
  auto* dense = arch->add_layers()->mutable_dense();
  dense->set_in(256);
  dense->set_out(10);
  return s;
}

TEST(ResolveJobSpec, ConvAndFrozenPrefixModelsResolveOnImageDatasets) {
  for (bool frozen : {false, true}) {
    absl::StatusOr<ResolvedJob> r = ResolveJobSpec(ConvSpec(frozen), Images());
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->config.model.InputShape(), agt::Shape::Image(1, 28, 28));
    EXPECT_EQ(r->config.model.frozen.empty(), !frozen);
    EXPECT_EQ(r->config.model.NumParameters(), frozen ? 2570 : 2570 + 104);
    if (frozen) {
      EXPECT_EQ(r->config.model.frozen.parameters[3], 0.03);
    }
  }
}

TEST(ResolveJobSpec, ShapeMismatchesNameBothShapes) {
  // The dataset's rows have the values but not the shape.
  DatasetRecord flat = Images();
  flat.sample_shape = {784};
  absl::Status s = ResolveJobSpec(ConvSpec(false), flat).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("spec.architecture.input_shape: [1, 28, 28] does not match the sample "
                        "shape [784] of dataset ds-images"));
  DatasetRecord other = Images();
  other.num_features = 3 * 28 * 28;
  other.sample_shape = {3, 28, 28};
  EXPECT_THAT(std::string(ResolveJobSpec(ConvSpec(true), other).status().message()),
              HasSubstr("[1, 28, 28] does not match the sample shape [3, 28, 28]"));
  // A flat model reads image rows in C-order: allowed when the widths agree.
  agt::v1::TrainingJobSpec mlp = ValidSpec();
  mlp.set_dataset_id("ds-images");
  mlp.set_loss(agt::v1::LOSS_CROSS_ENTROPY);
  EXPECT_TRUE(ResolveJobSpec(mlp, Images()).ok());
  // Polynomial features and shaped models do not mix.
  agt::v1::TrainingJobSpec poly = ConvSpec(true);
  poly.set_polynomial_degree(2);
  EXPECT_THAT(std::string(ResolveJobSpec(poly, Images()).status().message()),
              HasSubstr("spec.polynomial_degree: 2: polynomial features apply to flat models"));
  // A wrong frozen parameter count.
  agt::v1::TrainingJobSpec short_prefix = ConvSpec(true);
  short_prefix.mutable_architecture()->mutable_frozen()->mutable_parameters()->RemoveLast();
  EXPECT_THAT(std::string(ResolveJobSpec(short_prefix, Images()).status().message()),
              HasSubstr("frozen layers have 104 parameters, got 103"));
}

TEST(ValidateJobSpecShape, HugeConvActivationsAreRefusedWithTheLayerAndTheLimit) {
  agt::v1::TrainingJobSpec s = ConvSpec(false);
  auto* arch = s.mutable_architecture();
  arch->clear_input_shape();
  for (int d : {1, 1024, 1024}) arch->add_input_shape(d);
  auto* conv = arch->mutable_layers(0)->mutable_conv2d();
  conv->set_out_channels(64);
  conv->set_stride_h(1);
  conv->set_stride_w(1);
  conv->set_pad_h(2);
  conv->set_pad_w(2);
  // A second conv shrinks it back so that the model itself is valid.
  agt::v1::Layer shrink;
  agt::v1::Conv2dLayer* c2 = shrink.mutable_conv2d();
  c2->set_in_channels(64);
  c2->set_out_channels(1);
  c2->set_kernel_h(64);
  c2->set_kernel_w(64);
  c2->set_stride_h(64);
  c2->set_stride_w(64);
  *arch->mutable_layers()->Add() = arch->layers(3);
  *arch->mutable_layers(3) = arch->layers(2);
  *arch->mutable_layers(2) = shrink;  // conv, relu, conv, flatten, dense
  absl::Status st = ValidateJobSpecShape(s);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()),
              HasSubstr("spec.architecture.layers[0]: produces [64, 1024, 1024] = 67108864 "
                        "values per sample, above the limit 1048576"));
}

TEST(ResolveJobSpec, RegressionWithLabelNuAndMomentum) {
  agt::v1::TrainingJobSpec s = ValidSpec();
  s.set_dataset_id("ds-reg");
  s.set_loss(agt::v1::LOSS_MSE);
  s.mutable_optimizer()->set_momentum(0.9);
  s.mutable_optimizer()->set_nesterov(true);
  auto* p = s.mutable_perturbation();
  p->set_kind(agt::v1::PERTURBATION_KIND_POISONING);
  p->set_epsilon(0.05);
  p->mutable_labels()->set_nu(0.5);
  p->set_paired(true);
  s.mutable_budgets(0)->set_label_n(1);
  absl::StatusOr<ResolvedJob> r = ResolveJobSpec(s, Regression());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->num_classes, 0);
  EXPECT_TRUE(r->momentum_caveat);
  EXPECT_TRUE(r->config.optimizer.momentum_enabled);
  EXPECT_EQ(r->config.optimizer.momentum, 0.9);
  EXPECT_TRUE(r->config.optimizer.nesterov);
  const agt::PerturbationModel& pm = r->config.perturbation;
  EXPECT_EQ(pm.kind, agt::PerturbationKind::kBoundedPoisoning);
  EXPECT_EQ(pm.epsilon, 0.05);
  EXPECT_TRUE(pm.label.enabled);
  EXPECT_EQ(pm.label.nu, 0.5);
  EXPECT_TRUE(pm.paired);
  EXPECT_EQ(r->config.budgets[0].label_n, 1);
}

TEST(ResolveJobSpec, LabelFlipAndTargetClassMapToTheCore) {
  agt::v1::TrainingJobSpec s = ValidSpec();
  auto* p = s.mutable_perturbation();
  p->set_kind(agt::v1::PERTURBATION_KIND_POISONING);
  p->mutable_labels()->set_flip(true);
  for (agt::v1::Budget& b : *s.mutable_budgets()) {
    b.set_label_n(b.n());
    b.set_n(0);
  }
  absl::StatusOr<ResolvedJob> r = ResolveJobSpec(s, Moons());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->config.perturbation.label.enabled);
  EXPECT_EQ(r->config.perturbation.label.target_class, -1);
  p->mutable_labels()->set_target_class(1);
  r = ResolveJobSpec(s, Moons());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->config.perturbation.label.target_class, 1);
}

// One bad spec: a mutation of ValidSpec (on a dataset) and the message parts.
struct BadCase {
  std::string name;
  std::function<void(agt::v1::TrainingJobSpec*)> mutate;
  std::vector<std::string> message_parts;
  DatasetRecord dataset = Moons();
};

agt::v1::DenseLayer* AddDense(agt::v1::TrainingJobSpec* s, int in, int out) {
  auto* d = s->mutable_architecture()->add_layers()->mutable_dense();
  d->set_in(in);
  d->set_out(out);
  return d;
}

std::vector<BadCase> BadCases() {
  using S = agt::v1::TrainingJobSpec;
  std::vector<BadCase> c;
  c.push_back({"budget n equals batch",
               [](S* s) { s->mutable_budgets(1)->set_n(20); },
               {"spec.budgets[1].n: batch_size 20 must exceed the removal budget 20"}});
  c.push_back({"budget n = 100 with batch 100",
               [](S* s) {
                 s->set_batch_size(100);
                 s->add_budgets()->set_n(100);
               },
               {"spec.budgets[2].n: batch_size 100 must exceed the removal budget 100"}});
  c.push_back({"negative budget",
               [](S* s) { s->mutable_budgets(0)->set_n(-1); },
               {"spec.budgets[0].n: -1 must be >= 0"}});
  c.push_back({"no budgets",
               [](S* s) { s->clear_budgets(); },
               {"spec.budgets: at least one budget is required"}});
  c.push_back({"too many budgets",
               [](S* s) {
                 for (int i = 0; i < 63; ++i) s->add_budgets()->set_n(1);
               },
               {"spec.budgets: 65 budgets exceed the limit 64"}});
  c.push_back({"label_n for removal",
               [](S* s) { s->mutable_budgets(0)->set_label_n(1); },
               {"spec.budgets[0].label_n: applies to poisoning only, the kind is removal"}});
  c.push_back({"label_n without labels",
               [](S* s) {
                 s->mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_POISONING);
                 s->mutable_perturbation()->set_epsilon(0.1);
                 s->mutable_budgets(0)->set_label_n(2);
               },
               {"spec.budgets[0].label_n: 2 poisoned labels but perturbation.labels is not set"}});
  // Label flipping asked for with budgets in n: they would count rows whose
  // features move by epsilon 0, i.e. certify against nothing.
  c.push_back({"feature budget with epsilon 0",
               [](S* s) {
                 s->mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_POISONING);
                 s->mutable_perturbation()->mutable_labels()->set_flip(true);
               },
               {"spec.budgets[0].n: 1 feature-poisoned rows with perturbation.epsilon 0 move "
                "nothing", "label_n"}});
  c.push_back({"poisoned rows exceed batch",
               [](S* s) {
                 s->mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_POISONING);
                 s->mutable_perturbation()->set_epsilon(0.01);
                 s->mutable_perturbation()->mutable_labels()->set_flip(true);
                 s->mutable_budgets(1)->set_n(15);
                 s->mutable_budgets(1)->set_label_n(10);
               },
               {"spec.budgets[1]: n 15 + label_n 10 = 25", "exceed batch_size 20"}});
  c.push_back({"negative learning rate",
               [](S* s) { s->mutable_optimizer()->set_learning_rate(-1); },
               {"spec.optimizer.learning_rate: must be > 0, got -1"}});
  c.push_back({"missing optimizer",
               [](S* s) { s->clear_optimizer(); },
               {"spec.optimizer.learning_rate: must be > 0, got 0"}});
  c.push_back({"nan learning rate",
               [](S* s) { s->mutable_optimizer()->set_learning_rate(std::nan("")); },
               {"spec.optimizer.learning_rate: must be > 0, got nan"}});
  c.push_back({"negative decay",
               [](S* s) { s->mutable_optimizer()->set_lr_decay(-0.5); },
               {"spec.optimizer.lr_decay: must be a finite number >= 0, got -0.5"}});
  c.push_back({"infinite lr_min",
               [](S* s) { s->mutable_optimizer()->set_lr_min(INFINITY); },
               {"spec.optimizer.lr_min: must be a finite number >= 0, got inf"}});
  c.push_back({"negative l1",
               [](S* s) { s->mutable_optimizer()->set_l1(-2); },
               {"spec.optimizer.l1: must be a finite number >= 0, got -2"}});
  c.push_back({"l2 times lr",
               [](S* s) { s->mutable_optimizer()->set_l2(10); },
               {"spec.optimizer.l2: 10 times the largest learning rate 0.1 must be < 1"}});
  c.push_back({"momentum 1",
               [](S* s) { s->mutable_optimizer()->set_momentum(1.0); },
               {"spec.optimizer.momentum: must be in [0, 1), got 1"}});
  c.push_back({"dampening 2",
               [](S* s) {
                 s->mutable_optimizer()->set_momentum(0.5);
                 s->mutable_optimizer()->set_dampening(2);
               },
               {"spec.optimizer.dampening: must be in [0, 1], got 2"}});
  c.push_back({"dampening without momentum",
               [](S* s) { s->mutable_optimizer()->set_dampening(0.5); },
               {"spec.optimizer.dampening: 0.5 needs momentum > 0"}});
  c.push_back({"nesterov without momentum",
               [](S* s) { s->mutable_optimizer()->set_nesterov(true); },
               {"spec.optimizer.nesterov: needs momentum > 0"}});
  c.push_back({"l1 with momentum",
               [](S* s) {
                 s->mutable_optimizer()->set_momentum(0.5);
                 s->mutable_optimizer()->set_l1(0.01);
               },
               {"spec.optimizer.l1", "plain SGD only"}});
  c.push_back({"unspecified loss",
               [](S* s) { s->set_loss(agt::v1::LOSS_UNSPECIFIED); },
               {"spec.loss: must be set (LOSS_MSE"}});
  c.push_back({"unknown loss",
               [](S* s) { s->set_loss(static_cast<agt::v1::Loss>(42)); },
               {"spec.loss: unknown value 42"}});
  c.push_back(
      {"unspecified kind",
       [](S* s) { s->mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_UNSPECIFIED); },
       {"spec.perturbation.kind: must be set"}});
  c.push_back(
      {"unknown kind",
       [](S* s) { s->mutable_perturbation()->set_kind(static_cast<agt::v1::PerturbationKind>(9)); },
       {"spec.perturbation.kind: unknown value 9"}});
  c.push_back({"unknown bound method",
               [](S* s) { s->set_bound_method(static_cast<agt::v1::BoundMethod>(77)); },
               {"spec.bound_method: unknown value 77"}});
  c.push_back({"both architecture and hidden",
               [](S* s) { AddDense(s, 2, 1); },
               {"spec.architecture: give either architecture or hidden_widths, not both"}});
  c.push_back({"hidden width zero",
               [](S* s) { s->add_hidden_widths(0); },
               {"spec.hidden_widths[1]: 0 must be in [1, 4096]"}});
  c.push_back({"hidden width too large",
               [](S* s) { s->set_hidden_widths(0, 5000); },
               {"spec.hidden_widths[0]: 5000 must be in [1, 4096]"}});
  c.push_back({"too many hidden layers",
               [](S* s) {
                 for (int i = 0; i < 15; ++i) s->add_hidden_widths(4);
               },
               {"spec.hidden_widths: 16 hidden layers exceed the limit 15"}});
  c.push_back({"architecture layer without kind",
               [](S* s) {
                 s->clear_hidden_widths();
                 AddDense(s, 2, 4);
                 s->mutable_architecture()->add_layers();
               },
               {"spec.architecture.layers[1]: set dense, conv2d, relu or flatten"}});
  c.push_back({"architecture empty",
               [](S* s) {
                 s->clear_hidden_widths();
                 s->mutable_architecture();
               },
               {"spec.architecture.layers: at least one dense layer is required"}});
  c.push_back({"architecture widths do not chain",
               [](S* s) {
                 s->clear_hidden_widths();
                 AddDense(s, 2, 4);
                 s->mutable_architecture()->add_layers()->mutable_relu();
                 AddDense(s, 5, 1);
               },
               {"spec.architecture: layer 2"}});
  c.push_back({"architecture dense out too wide",
               [](S* s) {
                 s->clear_hidden_widths();
                 AddDense(s, 2, 9000);
               },
               {"spec.architecture.layers[0].dense.out: 9000 must be in [1, 4096]"}});
  c.push_back({"architecture input mismatch",
               [](S* s) {
                 s->clear_hidden_widths();
                 s->set_polynomial_degree(2);
                 AddDense(s, 3, 1);
               },
               {"spec.architecture.layers[0].dense.in: 3 must equal the model input width 5",
                "2 dataset features at polynomial_degree 2"}});
  c.push_back(
      {"architecture output mismatch",
       [](S* s) {
         s->clear_hidden_widths();
         AddDense(s, 2, 4);
         s->mutable_architecture()->add_layers()->mutable_relu();
         AddDense(s, 4, 3);
       },
       {"spec.architecture.layers[2].dense.out: 3 must equal 1", "LOSS_BINARY_CROSS_ENTROPY"}});
  c.push_back({"too many parameters",
               [](S* s) {
                 s->set_hidden_widths(0, 4096);
                 s->add_hidden_widths(4096);
               },
               {"spec.hidden_widths: the model has", "above the limit 5000000"}});
  c.push_back({"degree 7",
               [](S* s) { s->set_polynomial_degree(7); },
               {"spec.polynomial_degree: 7 must be in [1, 6]"}});
  c.push_back({"degree negative",
               [](S* s) { s->set_polynomial_degree(-1); },
               {"spec.polynomial_degree: -1 must be in [1, 6]"}});
  c.push_back(
      {"epochs zero", [](S* s) { s->set_epochs(0); }, {"spec.epochs: 0 must be in [1, 10000]"}});
  c.push_back({"epochs too many",
               [](S* s) { s->set_epochs(10001); },
               {"spec.epochs: 10001 must be in [1, 10000]"}});
  c.push_back(
      {"batch zero", [](S* s) { s->set_batch_size(0); }, {"spec.batch_size: 0 must be >= 1"}});
  c.push_back({"batch above rows",
               [](S* s) { s->set_batch_size(500); },
               {"spec.batch_size: 500 exceeds the 200 rows of dataset ds-moons"}});
  c.push_back({"name too long",
               [](S* s) { s->set_name(std::string(300, 'x')); },
               {"spec.name: 300 characters exceed the limit 256"}});
  c.push_back(
      {"no dataset id", [](S* s) { s->clear_dataset_id(); }, {"spec.dataset_id: is required"}});
  c.push_back({"dataset id mismatch",
               [](S* s) { s->set_dataset_id("ds-other"); },
               {"spec.dataset_id: \"ds-other\" does not match the dataset \"ds-moons\""}});
  c.push_back({"negative clip",
               [](S* s) { s->set_clip_gamma(-1); },
               {"spec.clip_gamma: must be a finite number >= 0, got -1"}});
  c.push_back(
      {"substitution without clipping",
       [](S* s) { s->mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_SUBSTITUTION); },
       {"spec.clip_gamma: substitution (privacy) needs clip_gamma > 0"}});
  c.push_back({"epsilon for removal",
               [](S* s) { s->mutable_perturbation()->set_epsilon(0.1); },
               {"spec.perturbation.epsilon: applies to poisoning only, the kind is removal"}});
  c.push_back({"labels for removal",
               [](S* s) { s->mutable_perturbation()->mutable_labels()->set_flip(true); },
               {"spec.perturbation.labels: applies to poisoning only, the kind is removal"}});
  c.push_back({"paired for removal",
               [](S* s) { s->mutable_perturbation()->set_paired(true); },
               {"spec.perturbation.paired: applies to poisoning only, the kind is removal"}});
  c.push_back(
      {"poisoning with nothing",
       [](S* s) { s->mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_POISONING); },
       {"spec.perturbation: PERTURBATION_KIND_POISONING needs epsilon > 0 or labels"}});
  c.push_back({"negative epsilon",
               [](S* s) {
                 s->mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_POISONING);
                 s->mutable_perturbation()->set_epsilon(-0.1);
               },
               {"spec.perturbation.epsilon: must be a finite number >= 0, got -0.1"}});
  c.push_back({"infinite epsilon",
               [](S* s) {
                 s->mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_POISONING);
                 s->mutable_perturbation()->set_epsilon(INFINITY);
               },
               {"spec.perturbation.epsilon: must be a finite number >= 0, got inf"}});
  c.push_back({"labels with no kind",
               [](S* s) {
                 s->mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_POISONING);
                 s->mutable_perturbation()->mutable_labels();
               },
               {"spec.perturbation.labels: set one of flip, target_class or nu"}});
  c.push_back({"flip false",
               [](S* s) {
                 s->mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_POISONING);
                 s->mutable_perturbation()->mutable_labels()->set_flip(false);
               },
               {"spec.perturbation.labels.flip: must be true"}});
  c.push_back(
      {"nu for classification",
       [](S* s) {
         s->mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_POISONING);
         s->mutable_perturbation()->mutable_labels()->set_nu(0.5);
       },
       {"spec.perturbation.labels.nu: applies to LOSS_MSE only", "LOSS_BINARY_CROSS_ENTROPY"}});
  c.push_back({"target class for binary",
               [](S* s) {
                 s->mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_POISONING);
                 s->mutable_perturbation()->mutable_labels()->set_target_class(2);
                 s->mutable_perturbation()->set_epsilon(0.01);
               },
               {"spec.perturbation.labels.target_class: 2 is not a class of "
                "binary_cross_entropy (0..1)"}});
  c.push_back({"negative target class",
               [](S* s) {
                 s->mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_POISONING);
                 s->mutable_perturbation()->mutable_labels()->set_target_class(-3);
               },
               {"spec.perturbation.labels.target_class: -3 must be >= 0"}});
  BadCase target;
  target.name = "target class beyond the dataset's classes";
  target.mutate = [](S* s) {
    s->set_dataset_id("ds-blobs");
    s->set_loss(agt::v1::LOSS_CROSS_ENTROPY);
    s->mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_POISONING);
    s->mutable_perturbation()->set_epsilon(0.01);
    s->mutable_perturbation()->mutable_labels()->set_target_class(3);
  };
  target.message_parts = {
      "spec.perturbation.labels.target_class: 3 is not a class of the dataset's 3 classes "
      "(0..2)"};
  target.dataset = Blobs();
  c.push_back(target);
  BadCase flip_reg;
  flip_reg.name = "flip for regression";
  flip_reg.mutate = [](S* s) {
    s->set_dataset_id("ds-reg");
    s->set_loss(agt::v1::LOSS_MSE);
    s->mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_POISONING);
    s->mutable_perturbation()->mutable_labels()->set_flip(true);
  };
  flip_reg.message_parts = {"spec.perturbation.labels.flip: applies to classification losses",
                            "LOSS_MSE"};
  flip_reg.dataset = Regression();
  c.push_back(flip_reg);
  BadCase bce_reg;
  bce_reg.name = "binary loss on a regression dataset";
  bce_reg.mutate = [](S* s) { s->set_dataset_id("ds-reg"); };
  bce_reg.message_parts = {"spec.loss: LOSS_BINARY_CROSS_ENTROPY needs binary labels 0/1",
                           "ds-reg has real-valued targets"};
  bce_reg.dataset = Regression();
  c.push_back(bce_reg);
  BadCase hinge3;
  hinge3.name = "hinge on three classes";
  hinge3.mutate = [](S* s) {
    s->set_dataset_id("ds-blobs");
    s->set_loss(agt::v1::LOSS_HINGE);
  };
  hinge3.message_parts = {"spec.loss: LOSS_HINGE needs binary labels 0/1", "has 3 classes"};
  hinge3.dataset = Blobs();
  c.push_back(hinge3);
  BadCase ce_reg;
  ce_reg.name = "cross-entropy on regression";
  ce_reg.mutate = [](S* s) {
    s->set_dataset_id("ds-reg");
    s->set_loss(agt::v1::LOSS_CROSS_ENTROPY);
  };
  ce_reg.message_parts = {"spec.loss: LOSS_CROSS_ENTROPY needs class labels"};
  ce_reg.dataset = Regression();
  c.push_back(ce_reg);
  BadCase wide;
  wide.name = "expansion beyond the input limit";
  wide.mutate = [](S* s) {
    s->set_dataset_id("ds-wide");
    s->set_polynomial_degree(6);
  };
  wide.message_parts = {
      "spec.polynomial_degree: 6 expands the dataset's 500 features beyond "
      "the input width limit 1048576"};
  wide.dataset = Moons();
  wide.dataset.id = "ds-wide";
  wide.dataset.num_features = 500;
  c.push_back(wide);
  BadCase steps;
  steps.name = "too many steps";
  steps.mutate = [](S* s) {
    s->set_dataset_id("ds-huge");
    s->set_batch_size(2);
    s->clear_budgets();
    s->add_budgets()->set_n(1);
    s->set_epochs(10000);
  };
  steps.message_parts = {
      "spec.epochs: 10000 epochs of 50000 batches are 500000000 steps, above "
      "the limit 100000000"};
  steps.dataset = Moons();
  steps.dataset.id = "ds-huge";
  steps.dataset.num_rows = 100000;
  c.push_back(steps);
  BadCase empty;
  empty.name = "empty dataset";
  empty.mutate = [](S*) {};
  empty.message_parts = {"spec.dataset_id: dataset ds-moons has 0 rows"};
  empty.dataset = Moons();
  empty.dataset.num_rows = 0;
  c.push_back(empty);
  return c;
}

TEST(ResolveJobSpec, EveryBadFieldIsRefusedWithItsPathValueAndLimit) {
  int checked = 0;
  for (const BadCase& bad : BadCases()) {
    SCOPED_TRACE(bad.name);
    agt::v1::TrainingJobSpec s = ValidSpec();
    bad.mutate(&s);
    absl::StatusOr<ResolvedJob> r = ResolveJobSpec(s, bad.dataset);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    for (const std::string& part : bad.message_parts) {
      EXPECT_THAT(std::string(r.status().message()), HasSubstr(part));
    }
    ++checked;
  }
  EXPECT_GE(checked, 60);
}

TEST(ValidateJobSpecShape, AcceptsTheValidSpecAndRefusesShapeErrorsWithoutADataset) {
  EXPECT_TRUE(ValidateJobSpecShape(ValidSpec()).ok());
  agt::v1::TrainingJobSpec s = ValidSpec();
  s.mutable_budgets(0)->set_n(20);
  absl::Status st = ValidateJobSpecShape(s);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()),
              HasSubstr("spec.budgets[0].n: batch_size 20 must exceed the removal budget 20"));
  // Dataset-dependent problems are not its business: batch above any rows.
  s = ValidSpec();
  s.set_batch_size(1000000);
  EXPECT_TRUE(ValidateJobSpecShape(s).ok());
}

TEST(ValidateJobSpecShape, ArchitectureParameterLimitNeedsNoDataset) {
  agt::v1::TrainingJobSpec s = ValidSpec();
  s.clear_hidden_widths();
  AddDense(&s, 4096, 4096);
  s.mutable_architecture()->add_layers()->mutable_relu();
  AddDense(&s, 4096, 1);
  absl::Status st = ValidateJobSpecShape(s);
  EXPECT_THAT(std::string(st.message()), HasSubstr("spec.architecture: the model has 16785409 "
                                                   "parameters, above the limit 5000000"));
}

TEST(ValidateJobSpecShape, TooManyDenseLayersInAnArchitecture) {
  agt::v1::TrainingJobSpec s = ValidSpec();
  s.clear_hidden_widths();
  for (int i = 0; i < 17; ++i) AddDense(&s, 2, 2);
  absl::Status st = ValidateJobSpecShape(s);
  EXPECT_THAT(std::string(st.message()),
              HasSubstr("spec.architecture.layers: 17 dense layers exceed the limit 16"));
  for (int i = 0; i < 20; ++i) s.mutable_architecture()->add_layers()->mutable_relu();
  st = ValidateJobSpecShape(s);
  EXPECT_THAT(std::string(st.message()),
              HasSubstr("spec.architecture.layers: 37 layers exceed the limit 32"));
}

// ---- one validation: the core's cases (tests/core/train_config_cases.h) as
// job specs get the core's verdict and message, under "spec.".

void SetOptimizer(const agt::OptimizerConfig& o, agt::v1::TrainingJobSpec* s) {
  agt::v1::Optimizer* p = s->mutable_optimizer();
  p->set_learning_rate(o.learning_rate);
  p->set_lr_decay(o.lr_decay);
  p->set_lr_min(o.lr_min);
  p->set_l1(o.l1);
  p->set_l2(o.l2);
  p->set_momentum(o.momentum);
  p->set_dampening(o.dampening);
  p->set_nesterov(o.nesterov);
}

// The perturbation, clipping and budgets of `c` in the spec's form.
void SetTraining(const agt::TrainConfig& c, agt::v1::TrainingJobSpec* s) {
  agt::v1::Perturbation* p = s->mutable_perturbation();
  p->set_kind(PerturbationKindToProto(c.perturbation.kind));
  p->set_epsilon(c.perturbation.epsilon);
  p->set_paired(c.perturbation.paired);
  if (c.perturbation.label.enabled) {
    if (c.perturbation.label.target_class >= 0) {
      p->mutable_labels()->set_target_class(c.perturbation.label.target_class);
    } else {
      p->mutable_labels()->set_flip(true);
    }
  }
  s->set_clip_gamma(c.clip_gamma.value_or(0.0));
  s->clear_budgets();
  for (const agt::Budget& b : c.budgets) *s->add_budgets() = BudgetToProto(b);
}

void ExpectSameAsTheCore(const absl::Status& core, const absl::StatusOr<ResolvedJob>& server) {
  ASSERT_EQ(server.ok(), core.ok()) << "core: " << core << ", server: " << server.status();
  if (core.ok()) return;
  EXPECT_EQ(server.status().code(), core.code());
  EXPECT_EQ(server.status().message(), "spec." + std::string(core.message()));
}

TEST(OneValidation, OptimizerCasesGetTheCoresVerdictAndMessage) {
  for (const auto& c : agt::train_config_cases::OptimizerCases()) {
    SCOPED_TRACE(c.name);
    agt::v1::TrainingJobSpec s = ValidSpec();
    SetOptimizer(c.optimizer, &s);
    ExpectSameAsTheCore(c.optimizer.Validate(), ResolveJobSpec(s, Moons()));
    // Submission's dataset-free check says the same.
    EXPECT_EQ(ValidateJobSpecShape(s).ok(), c.rejected_field.empty());
  }
}

TEST(OneValidation, TrainingCasesGetTheCoresVerdictAndMessage) {
  for (const auto& c : agt::train_config_cases::TrainingCases()) {
    SCOPED_TRACE(c.name);
    agt::TrainConfig config = agt::train_config_cases::BaseConfig();
    c.change(&config);
    agt::v1::TrainingJobSpec s = ValidSpec();
    SetTraining(config, &s);
    ExpectSameAsTheCore(config.ValidateTraining(), ResolveJobSpec(s, Moons()));
  }
}

// ---- bound options

TEST(BoundOptions, TheNewFieldsMapOntoTheCore) {
  agt::v1::TrainingJobSpec s = ValidSpec();
  s.set_bound_method(agt::v1::BOUND_METHOD_IBP);
  s.set_interval_product(agt::v1::INTERVAL_PRODUCT_EXACT);
  s.set_rounding(agt::v1::ROUNDING_MODE_NEAREST);
  absl::StatusOr<ResolvedJob> r = ResolveJobSpec(s, Moons());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->config.bounds.method, agt::BoundMethod::kIbp);
  EXPECT_EQ(r->config.bounds.interval.product, agt::MatMulMethod::kExact);
  EXPECT_EQ(r->config.bounds.interval.rounding, agt::RoundingMode::kNearest);
}

TEST(BoundOptions, LegacyBoundMethodsMeanIbpWithTheirProduct) {
  for (auto [legacy, product, core] :
       {std::tuple{agt::v1::BOUND_METHOD_INTERVAL_RUMP, agt::v1::INTERVAL_PRODUCT_RUMP,
                   agt::MatMulMethod::kRump},
        std::tuple{agt::v1::BOUND_METHOD_INTERVAL_EXACT, agt::v1::INTERVAL_PRODUCT_EXACT,
                   agt::MatMulMethod::kExact},
        std::tuple{agt::v1::BOUND_METHOD_INTERVAL_NGUYEN, agt::v1::INTERVAL_PRODUCT_NGUYEN,
                   agt::MatMulMethod::kNguyen}}) {
    SCOPED_TRACE(agt::v1::BoundMethod_Name(legacy));
    agt::v1::TrainingJobSpec s = ValidSpec();
    s.set_bound_method(legacy);
    // Alone, and with the same product spelled out: the same options.
    for (agt::v1::IntervalProduct given : {agt::v1::INTERVAL_PRODUCT_UNSPECIFIED, product}) {
      s.set_interval_product(given);
      absl::StatusOr<agt::BoundOptions> b = BoundOptionsFromProto(s);
      ASSERT_TRUE(b.ok()) << b.status();
      EXPECT_EQ(b->method, agt::BoundMethod::kIbp);
      EXPECT_EQ(b->interval.product, core);
    }
    // Upgraded to the current form, the spec means the same.
    s.set_interval_product(agt::v1::INTERVAL_PRODUCT_UNSPECIFIED);
    UpgradeLegacyBoundMethod(&s);
    EXPECT_EQ(s.bound_method(), agt::v1::BOUND_METHOD_IBP);
    EXPECT_EQ(*IntervalProductFromProto(s.interval_product(), "p"), core);
  }
}

TEST(BoundOptions, ALegacyBoundMethodThatContradictsTheProductNamesBoth) {
  agt::v1::TrainingJobSpec s = ValidSpec();
  s.set_bound_method(agt::v1::BOUND_METHOD_INTERVAL_EXACT);
  s.set_interval_product(agt::v1::INTERVAL_PRODUCT_NGUYEN);
  absl::StatusOr<ResolvedJob> r = ResolveJobSpec(s, Moons());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("spec.bound_method: BOUND_METHOD_INTERVAL_EXACT"));
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("conflicts with spec.interval_product INTERVAL_PRODUCT_NGUYEN"));
  s.set_interval_product(agt::v1::INTERVAL_PRODUCT_RUMP);
  EXPECT_FALSE(ValidateJobSpecShape(s).ok());
}

TEST(BoundOptions, UnknownValuesAreRefused) {
  agt::v1::TrainingJobSpec s = ValidSpec();
  s.set_interval_product(static_cast<agt::v1::IntervalProduct>(9));
  EXPECT_THAT(std::string(ValidateJobSpecShape(s).message()),
              HasSubstr("spec.interval_product: unknown value 9"));
  s = ValidSpec();
  s.set_rounding(static_cast<agt::v1::RoundingMode>(5));
  EXPECT_THAT(std::string(ValidateJobSpecShape(s).message()),
              HasSubstr("spec.rounding: unknown value 5"));
}

TEST(BoundOptions, UpgradeLeavesCurrentSpecsAlone) {
  agt::v1::TrainingJobSpec s = ValidSpec();
  agt::v1::TrainingJobSpec before = s;
  UpgradeLegacyBoundMethod(&s);
  EXPECT_EQ(s.SerializeAsString(), before.SerializeAsString());
  s.set_bound_method(agt::v1::BOUND_METHOD_IBP);
  s.set_interval_product(agt::v1::INTERVAL_PRODUCT_NGUYEN);
  before = s;
  UpgradeLegacyBoundMethod(&s);
  EXPECT_EQ(s.SerializeAsString(), before.SerializeAsString());
}

}  // namespace
}  // namespace agt::server

namespace agt::server {
namespace {

TEST(ResolveJobSpec, RemovedRowsMapOntoTheCoreAndAreCheckedAgainstTheDataset) {
  agt::v1::TrainingJobSpec s = ValidSpec();  // 200 rows, batches of 20, budgets {1, 5}
  for (int64_t r : {41, 3, 199}) s.add_removed_rows(r);
  absl::StatusOr<ResolvedJob> job = ResolveJobSpec(s, Moons());
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->config.removed_rows, (std::vector<int64_t>{41, 3, 199}));

  s.add_removed_rows(200);
  job = ResolveJobSpec(s, Moons());
  ASSERT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(job.status().message()),
            "spec.removed_rows[3]: 200 is outside the dataset's 200 rows (0..199)");
  s.mutable_removed_rows()->RemoveLast();
  s.add_removed_rows(-4);
  job = ResolveJobSpec(s, Moons());
  EXPECT_EQ(std::string(job.status().message()), "spec.removed_rows[3]: -4 must be >= 0");
  // 15 of batch 2's rows go: budget 5 no longer fits it.
  s.mutable_removed_rows()->Clear();
  for (int64_t r = 40; r < 55; ++r) s.add_removed_rows(r);
  job = ResolveJobSpec(s, Moons());
  EXPECT_THAT(std::string(job.status().message()),
              HasSubstr("spec.budgets[1].n: batch 2 keeps 5 of its 20 rows after removed_rows"));
}

}  // namespace
}  // namespace agt::server
