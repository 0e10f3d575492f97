// Convolutional and frozen-prefix models through the real agt-server: image
// datasets uploaded with a sample shape, conv models and a frozen conv
// extractor with a trained dense head under removal and bounded poisoning,
// GetModel / ExportModel carrying the shapes and the frozen parameters,
// CertifyPredictions, CheckUnlearning and PrivatePredict on rows of the
// model's input shape, and the shape mismatches (dataset vs spec, inputs vs
// model, sample shape vs features) as precise errors.
//
// Soundness: the frozen-prefix head trained by the service is retrained for
// real in the test with the core (tests/core/perturbed_sgd.h), with up to n
// rows per batch removed by random and adversarial choices made anew per
// batch; every retrained parameter vector must lie in the box ExportModel
// returns for n, its logits inside the bounds CertifyPredictions returns, and
// budget 0 must be the nominal model itself.
//
// The images are synthetic (each class a bright 6x6 patch at its own place
// on a noisy 28x28 background) so the test needs no download; a 2 000-image
// slice of Fashion-MNIST is used as well when Debian's dataset-fashion-mnist
// is installed (skipped with a message otherwise).
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agt/v1/privacy.grpc.pb.h"
#include "agt/v1/unlearning.grpc.pb.h"
#include "core/bounds/ibp.h"
#include "server/domain/job_spec.h"
#include "server/domain/model_convert.h"
#include "tests/core/adversaries.h"
#include "tests/core/perturbed_sgd.h"
#include "tests/server/e2e_util.h"

namespace agt::e2e {
namespace {

constexpr int kSide = 28;
constexpr int kPixels = kSide * kSide;
constexpr int kClasses = 10;
constexpr int kRows = 200;
constexpr int kBatch = 50;

// Synthetic labelled images, row-major [1, 28, 28] per row.
agt::Dataset SyntheticImages(int rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> noise(0.0, 0.3);
  agt::Dataset data;
  data.x.resize(rows, kPixels);
  data.y.resize(rows);
  data.num_classes = kClasses;
  for (int r = 0; r < rows; ++r) {
    const int label = r % kClasses;
    for (int p = 0; p < kPixels; ++p) data.x(r, p) = noise(rng);
    const int top = 2 + 8 * (label / 4), left = 2 + 6 * (label % 4);
    for (int i = 0; i < 6; ++i) {
      for (int j = 0; j < 6; ++j) data.x(r, (top + i) * kSide + left + j) += 0.7;
    }
    data.y(r) = label;
  }
  return data;
}

// FLOAT64 bytes: features then the label, per row.
std::string Float64Bytes(const agt::Dataset& data) {
  std::string bytes;
  bytes.reserve(static_cast<size_t>(data.size() * (data.dim() + 1) * 8));
  auto put = [&](double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
  };
  for (agt::Index r = 0; r < data.size(); ++r) {
    for (agt::Index c = 0; c < data.dim(); ++c) put(data.x(r, c));
    put(data.y(r));
  }
  return bytes;
}

agt::v1::DatasetMetadata ImageMetadata(const std::string& name, int64_t bytes,
                                       std::vector<int> shape = {1, kSide, kSide}) {
  agt::v1::DatasetMetadata m;
  m.set_name(name);
  m.set_format(agt::v1::DATASET_FORMAT_FLOAT64);
  m.set_num_features(kPixels);
  m.set_num_classes(kClasses);
  m.set_size_bytes(bytes);
  for (int d : shape) m.add_sample_shape(d);
  return m;
}

agt::v1::Conv2dLayer Conv(int in, int out, int kernel, int stride) {
  agt::v1::Conv2dLayer c;
  c.set_in_channels(in);
  c.set_out_channels(out);
  c.set_kernel_h(kernel);
  c.set_kernel_w(kernel);
  c.set_stride_h(stride);
  c.set_stride_w(stride);
  return c;
}

// [1, 28, 28] -> conv 4@5x5 stride 3 -> [4, 8, 8] -> relu -> flatten -> 10;
// with `frozen` the conv, relu and flatten are a frozen extractor with fixed
// parameters and only the dense head trains.
agt::v1::TrainingJobSpec ConvSpec(const std::string& dataset_id, bool frozen,
                                  agt::v1::PerturbationKind kind, std::vector<int> budgets) {
  agt::v1::TrainingJobSpec spec;
  spec.set_name(frozen ? "frozen-head" : "conv");
  spec.set_dataset_id(dataset_id);
  spec.set_loss(agt::v1::LOSS_CROSS_ENTROPY);
  spec.set_batch_size(kBatch);
  spec.set_epochs(2);
  spec.mutable_optimizer()->set_learning_rate(0.1);
  spec.mutable_perturbation()->set_kind(kind);
  if (kind == agt::v1::PERTURBATION_KIND_POISONING) spec.mutable_perturbation()->set_epsilon(0.01);
  for (int n : budgets) spec.add_budgets()->set_n(n);
  spec.set_seed(11);
  agt::v1::ModelArchitecture* arch = spec.mutable_architecture();
  for (int d : {1, kSide, kSide}) arch->add_input_shape(d);
  auto* prefix = frozen ? arch->mutable_frozen()->mutable_layers() : arch->mutable_layers();
  *prefix->Add()->mutable_conv2d() = Conv(1, 4, 5, 3);
  prefix->Add()->mutable_relu();
  if (frozen) {
    // A fixed extractor: edge-like kernels, small biases.
    std::mt19937_64 rng(5);
    std::normal_distribution<double> w(0.0, 0.3);
    for (int k = 0; k < 4 * 25; ++k) arch->mutable_frozen()->add_parameters(w(rng));
    for (int k = 0; k < 4; ++k) arch->mutable_frozen()->add_parameters(0.05);
  }
  prefix->Add()->mutable_flatten();  // trained layers start with parameters
  arch->add_layers()->mutable_dense()->set_in(4 * 8 * 8);
  arch->mutable_layers(arch->layers_size() - 1)->mutable_dense()->set_out(kClasses);
  return spec;
}

agt::v1::Matrix Rows(const agt::Dataset& data, int rows, int cols = kPixels) {
  agt::v1::Matrix m;
  m.set_rows(rows);
  m.set_cols(cols);
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) m.add_values(data.x(r, c % kPixels));
  }
  return m;
}

agt::Vector ToVector(const std::vector<double>& v) {
  return Eigen::Map<const agt::Vector>(v.data(), static_cast<agt::Index>(v.size()));
}

class ShapedModelsE2eTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    server_ = new ServerProcess();
    ASSERT_TRUE(server_->Start(ServerArgs(dir_->File("s.db"), {"--privacy-budget", "100"}),
                               dir_->File("server.err")))
        << ReadFileText(dir_->File("server.err"));
    client_ = new Client(server_->address());
    data_ = new agt::Dataset(SyntheticImages(kRows, 3));
    const std::string bytes = Float64Bytes(*data_);
    dataset_ = new agt::v1::Dataset();
    const grpc::Status s = Upload(*client_, ImageMetadata("images", bytes.size()), bytes, dataset_);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  static void TearDownTestSuite() {
    delete dataset_;
    delete data_;
    delete client_;
    delete server_;
    delete dir_;
  }

  static grpc::Status Certify(const std::string& model_id, const agt::v1::Matrix& inputs,
                              agt::v1::CertifyPredictionsResponse* out) {
    agt::v1::CertifyPredictionsRequest request;
    request.set_model_id(model_id);
    *request.mutable_inputs() = inputs;
    return client_->models->CertifyPredictions(Ctx().get(), request, out);
  }

  static agt::v1::ExportModelResponse Export(const std::string& model_id) {
    agt::v1::ExportModelRequest request;
    request.set_model_id(model_id);
    agt::v1::ExportModelResponse response;
    const grpc::Status s = client_->models->ExportModel(Ctx().get(), request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response;
  }

  // The server's dataset record as the job resolution sees it.
  static agt::server::DatasetRecord Record() {
    agt::server::DatasetRecord r;
    r.id = dataset_->id();
    r.num_rows = dataset_->num_rows();
    r.num_features = dataset_->num_features();
    r.num_classes = dataset_->num_classes();
    r.sample_shape.assign(dataset_->sample_shape().begin(), dataset_->sample_shape().end());
    return r;
  }

  static TempDir* dir_;
  static ServerProcess* server_;
  static Client* client_;
  static agt::Dataset* data_;
  static agt::v1::Dataset* dataset_;
};

TempDir* ShapedModelsE2eTest::dir_ = nullptr;
ServerProcess* ShapedModelsE2eTest::server_ = nullptr;
Client* ShapedModelsE2eTest::client_ = nullptr;
agt::Dataset* ShapedModelsE2eTest::data_ = nullptr;
agt::v1::Dataset* ShapedModelsE2eTest::dataset_ = nullptr;

TEST_F(ShapedModelsE2eTest, DatasetsKeepTheirSampleShape) {
  ASSERT_EQ(dataset_->sample_shape_size(), 3);
  EXPECT_EQ(dataset_->sample_shape(1), kSide);
  agt::v1::GetDatasetRequest get;
  get.set_dataset_id(dataset_->id());
  agt::v1::GetDatasetResponse got;
  ASSERT_TRUE(client_->datasets->GetDataset(Ctx().get(), get, &got).ok());
  EXPECT_EQ(
      std::vector<int>(got.dataset().sample_shape().begin(), got.dataset().sample_shape().end()),
      (std::vector<int>{1, kSide, kSide}));
  // A CSV upload without a shape is flat.
  agt::v1::Dataset moons;
  ASSERT_TRUE(Upload(*client_, CsvMetadata("moons"), MoonsCsv(20, 1), &moons).ok());
  ASSERT_EQ(moons.sample_shape_size(), 1);
  EXPECT_EQ(moons.sample_shape(0), 2);
}

TEST_F(ShapedModelsE2eTest, SampleShapesThatDoNotHoldTheFeaturesAreRefused) {
  const std::string bytes = Float64Bytes(SyntheticImages(10, 1));
  agt::v1::Dataset out;
  grpc::Status s = Upload(*client_, ImageMetadata("bad", bytes.size(), {1, 28, 27}), bytes, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(s.error_message(),
                                "metadata.sample_shape: [1, 28, 27] has 756 values per sample, "
                                "metadata.num_features is 784"))
      << s.error_message();
  s = Upload(*client_, ImageMetadata("bad", bytes.size(), {28, 28}), bytes, &out);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "2 dimensions; give [D] or [C, H, W]"))
      << s.error_message();
  s = Upload(*client_, ImageMetadata("bad", bytes.size(), {0, 28, 28}), bytes, &out);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "dimension 0 is 0, must be in [1, 65535]"))
      << s.error_message();
}

TEST_F(ShapedModelsE2eTest, ConvModelTrainsCertifiesUnlearnsAndPredictsPrivately) {
  const std::string model_id = TrainModel(
      *client_, ConvSpec(dataset_->id(), false, agt::v1::PERTURBATION_KIND_REMOVAL, {1, 2}));
  ASSERT_FALSE(model_id.empty());
  const agt::v1::ExportModelResponse exported = Export(model_id);
  const agt::v1::ModelArchitecture& arch = exported.model().architecture();
  ASSERT_EQ(arch.input_shape_size(), 3);
  ASSERT_TRUE(arch.layers(0).has_conv2d());
  EXPECT_EQ(arch.layers(0).conv2d().stride_h(), 3);
  EXPECT_TRUE(arch.layers(2).has_flatten());
  // Conv weights as out_channels x (in_channels * 5 * 5).
  EXPECT_EQ(exported.model().nominal().layers(0).weight().rows(), 4);
  EXPECT_EQ(exported.model().nominal().layers(0).weight().cols(), 25);

  // The service's logits are the core's forward pass of the exported model.
  absl::StatusOr<agt::ModelSpec> spec = agt::server::ArchitectureFromProto(arch);
  ASSERT_TRUE(spec.ok()) << spec.status();
  const agt::Vector nominal = ToVector(Flatten(exported.model().nominal()));
  const agt::Matrix logits = agt::Forward(*spec, nominal, data_->x.topRows(6));
  agt::v1::CertifyPredictionsResponse certified;
  grpc::Status s = Certify(model_id, Rows(*data_, 6), &certified);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(certified.points_size(), 6);
  for (int i = 0; i < 6; ++i) {
    const agt::v1::PointCertificate& p = certified.points(i);
    for (int c = 0; c < kClasses; ++c) {
      EXPECT_NEAR(p.nominal_logits(c), logits(i, c), 1e-9 * (1 + std::fabs(logits(i, c))));
      for (const agt::v1::LogitBounds& b : p.bounds()) {
        EXPECT_LE(b.lower(c), p.nominal_logits(c));
        EXPECT_GE(b.upper(c), p.nominal_logits(c));
      }
    }
  }

  auto unlearning = agt::v1::UnlearningService::NewStub(client_->channel);
  agt::v1::CheckUnlearningRequest check;
  check.set_model_id(model_id);
  *check.mutable_inputs() = Rows(*data_, 3);
  agt::v1::CheckUnlearningResponse checked;
  s = unlearning->CheckUnlearning(Ctx().get(), check, &checked);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(checked.points_size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(checked.points(i).predicted_class(), certified.points(i).predicted_class());
    // No deletions yet: nothing to be unchanged by.
    EXPECT_TRUE(checked.points(i).certified_unchanged());
  }

  auto privacy = agt::v1::PrivacyService::NewStub(client_->channel);
  agt::v1::PrivatePredictRequest predict;
  predict.set_model_id(model_id);
  *predict.mutable_inputs() = Rows(*data_, 2);
  predict.set_epsilon(1.0);
  // Smooth sensitivity needs a binary model under substitution; report-noisy-
  // argmax serves any classifier.
  predict.set_mechanism(agt::v1::PRIVACY_MECHANISM_REPORT_NOISY_ARGMAX);
  agt::v1::PrivatePredictResponse predicted;
  s = privacy->PrivatePredict(Ctx().get(), predict, &predicted);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(predicted.labels_size(), 2);

  // Inputs that are not rows of [1, 28, 28].
  s = Certify(model_id, Rows(*data_, 2, kPixels - 1), &certified);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "783")) << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), "784")) << s.error_message();
  *predict.mutable_inputs() = Rows(*data_, 2, kPixels + 1);
  s = privacy->PrivatePredict(Ctx().get(), predict, &predicted);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ShapedModelsE2eTest, SpecsWhoseShapeDoesNotMatchTheDatasetAreRefusedAtSubmit) {
  // The same pixels uploaded flat: the conv model needs [1, 28, 28].
  const std::string bytes = Float64Bytes(*data_);
  agt::v1::Dataset flat;
  ASSERT_TRUE(Upload(*client_, ImageMetadata("flat", bytes.size(), {kPixels}), bytes, &flat).ok());
  agt::v1::Job job;
  grpc::Status s =
      Submit(*client_, ConvSpec(flat.id(), true, agt::v1::PERTURBATION_KIND_REMOVAL, {1}), &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(s.error_message(),
                                absl::StrCat("spec.architecture.input_shape: [1, 28, 28] does not "
                                             "match the sample shape [784] of dataset ",
                                             flat.id())))
      << s.error_message();
  // A frozen prefix with the wrong number of parameters.
  agt::v1::TrainingJobSpec spec =
      ConvSpec(dataset_->id(), true, agt::v1::PERTURBATION_KIND_REMOVAL, {1});
  spec.mutable_architecture()->mutable_frozen()->add_parameters(0.0);
  s = Submit(*client_, spec, &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "frozen layers have 104 parameters, got 105"))
      << s.error_message();
}

TEST_F(ShapedModelsE2eTest, FrozenPrefixUnderPoisoningTrainsAndCertifies) {
  const std::string model_id = TrainModel(
      *client_, ConvSpec(dataset_->id(), true, agt::v1::PERTURBATION_KIND_POISONING, {0, 1, 5}));
  ASSERT_FALSE(model_id.empty());
  agt::v1::CertifyPredictionsResponse certified;
  const grpc::Status s = Certify(model_id, Rows(*data_, 4), &certified);
  ASSERT_TRUE(s.ok()) << s.error_message();
  for (const agt::v1::PointCertificate& p : certified.points()) {
    ASSERT_EQ(p.bounds_size(), 3);
    // Wider budgets, wider bounds.
    for (int c = 0; c < kClasses; ++c) {
      EXPECT_LE(p.bounds(2).lower(c), p.bounds(1).lower(c) + 1e-12);
      EXPECT_GE(p.bounds(2).upper(c), p.bounds(1).upper(c) - 1e-12);
    }
  }
}

// The service's boxes and bounds against real retraining without up to n
// rows per batch (random, loss-greedy and gradient-greedy choices per batch).
TEST_F(ShapedModelsE2eTest, FrozenPrefixRemovalBoundsContainEveryRetrainingWithoutNRows) {
  const agt::v1::TrainingJobSpec spec =
      ConvSpec(dataset_->id(), true, agt::v1::PERTURBATION_KIND_REMOVAL, {0, 1, 3});
  const std::string model_id = TrainModel(*client_, spec);
  ASSERT_FALSE(model_id.empty());
  const agt::v1::ExportModelResponse exported = Export(model_id);
  ASSERT_EQ(exported.boxes_size(), 3);
  EXPECT_EQ(exported.model().architecture().frozen().parameters_size(), 104);

  // The job as the server resolved it: the same config and initialisation.
  absl::StatusOr<agt::server::ResolvedJob> resolved = agt::server::ResolveJobSpec(spec, Record());
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  const agt::TrainConfig& config = resolved->config;
  const agt::Vector init = agt::InitParameters(config.model, spec.seed());
  const agt::Vector nominal = ToVector(Flatten(exported.model().nominal()));

  // Budget 0 is the nominal model, exactly.
  EXPECT_TRUE(
      BitIdentical(Flatten(exported.boxes(0).lower()), Flatten(exported.model().nominal())));
  EXPECT_TRUE(
      BitIdentical(Flatten(exported.boxes(0).upper()), Flatten(exported.model().nominal())));
  // And retraining on the unperturbed data reproduces it.
  const agt_test::Threat none = agt_test::MakeThreat(config, agt::Budget{0, 0}, kClasses);
  agt_test::PerturbedTraining plain = agt_test::TrainPerturbed(config, *data_, init, none, {});
  ASSERT_TRUE(plain.violation.empty()) << plain.violation;
  EXPECT_LE((plain.after_step.back() - nominal).cwiseAbs().maxCoeff(), 1e-9);

  agt::v1::CertifyPredictionsResponse certified;
  const grpc::Status s = Certify(model_id, Rows(*data_, 20), &certified);
  ASSERT_TRUE(s.ok()) << s.error_message();
  const agt::Matrix probe = data_->x.topRows(20);

  for (int j = 1; j < exported.boxes_size(); ++j) {
    const int n = exported.boxes(j).budget().n();
    agt::ParameterBox box{ToVector(Flatten(exported.boxes(j).lower())),
                          ToVector(Flatten(exported.boxes(j).upper()))};
    const agt_test::Threat threat = agt_test::MakeThreat(config, agt::Budget{n, 0}, kClasses);
    const std::vector<std::pair<std::string, agt_test::Adversary>> adversaries = {
        {"random", agt_test::RandomRemoval(17 + n)},
        {"loss", agt_test::LossRemoval(23 + n)},
        {"greedy", agt_test::GreedyRemoval(29 + n, /*fixed_target=*/false)}};
    for (const auto& [name, adversary] : adversaries) {
      SCOPED_TRACE(absl::StrCat("n=", n, " adversary ", name));
      agt_test::PerturbedTraining run =
          agt_test::TrainPerturbed(config, *data_, init, threat, adversary);
      ASSERT_TRUE(run.violation.empty()) << run.violation;
      EXPECT_GT(run.rows_touched, 0);
      const agt::Vector& theta = run.after_step.back();
      EXPECT_EQ(agt_test::OutsideBox(box, theta), "");
      const agt::Matrix logits = agt::Forward(config.model, theta, probe);
      for (int i = 0; i < probe.rows(); ++i) {
        const agt::v1::LogitBounds& b = certified.points(i).bounds(j);
        for (int c = 0; c < kClasses; ++c) {
          const double tol = agt_test::Tolerance(logits(i, c));
          EXPECT_GE(logits(i, c), b.lower(c) - tol) << "row " << i << " class " << c;
          EXPECT_LE(logits(i, c), b.upper(c) + tol) << "row " << i << " class " << c;
        }
      }
    }
  }
}

// ---- Fashion-MNIST, when Debian's dataset-fashion-mnist is installed

std::string FindFashionFile(const std::string& name) {
  for (const char* dir : {"/usr/share/datasets/fashion-mnist"}) {
    for (const std::string& suffix : {std::string(".gz"), std::string("")}) {
      const std::string path = absl::StrCat(dir, "/", name, suffix);
      if (std::filesystem::exists(path)) return path;
    }
  }
  return "";
}

// The first `rows` items of a gzipped (or plain) IDX file: its payload bytes
// after the header of `header` bytes.
std::string ReadIdxPrefix(const std::string& path, size_t header, size_t bytes) {
  gzFile f = gzopen(path.c_str(), "rb");  // reads plain files too
  if (f == nullptr) return "";
  std::string out(header + bytes, '\0');
  const int got = gzread(f, out.data(), static_cast<unsigned>(out.size()));
  gzclose(f);
  if (got != static_cast<int>(out.size())) return "";
  return out.substr(header);
}

TEST_F(ShapedModelsE2eTest, AFashionMnistSliceTrainsWithAFrozenPrefix) {
  const std::string images = FindFashionFile("train-images-idx3-ubyte");
  const std::string labels = FindFashionFile("train-labels-idx1-ubyte");
  if (images.empty() || labels.empty()) {
    GTEST_SKIP() << "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)";
  }
  constexpr int kSlice = 2000;
  const std::string pixels = ReadIdxPrefix(images, 16, size_t{kSlice} * kPixels);
  const std::string classes = ReadIdxPrefix(labels, 8, kSlice);
  ASSERT_EQ(pixels.size(), size_t{kSlice} * kPixels);
  ASSERT_EQ(classes.size(), size_t{kSlice});
  agt::Dataset data;
  data.x.resize(kSlice, kPixels);
  data.y.resize(kSlice);
  for (int r = 0; r < kSlice; ++r) {
    for (int p = 0; p < kPixels; ++p) {
      data.x(r, p) =
          static_cast<unsigned char>(pixels[static_cast<size_t>(r) * kPixels + p]) / 255.0;
    }
    data.y(r) = static_cast<unsigned char>(classes[r]);
  }
  const std::string bytes = Float64Bytes(data);
  agt::v1::Dataset uploaded;
  grpc::Status s = Upload(*client_, ImageMetadata("fashion-2000", bytes.size()), bytes, &uploaded);
  ASSERT_TRUE(s.ok()) << s.error_message();
  agt::v1::TrainingJobSpec spec =
      ConvSpec(uploaded.id(), true, agt::v1::PERTURBATION_KIND_REMOVAL, {1, 10});
  spec.set_batch_size(200);
  spec.set_epochs(6);
  spec.mutable_optimizer()->set_learning_rate(0.5);
  const std::string model_id = TrainModel(*client_, spec);
  ASSERT_FALSE(model_id.empty());
  agt::v1::CertifyDatasetRequest request;
  request.set_model_id(model_id);
  request.set_dataset_id(uploaded.id());
  agt::v1::CertifyDatasetResponse response;
  s = client_->models->CertifyDataset(Ctx().get(), request, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(response.budgets_size(), 2);
  // Better than chance nominally; certified accuracy never above nominal.
  EXPECT_GT(response.budgets(0).accuracy_nominal(), 0.3);
  EXPECT_LE(response.budgets(1).accuracy_worst(), response.budgets(0).accuracy_nominal());
}

}  // namespace
}  // namespace agt::e2e
