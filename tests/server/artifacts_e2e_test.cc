// Model artifacts through the real agt-server (issue 15): a pre-trained conv
// network, written as ONNX by agt::onnx::ExportOnnx in the test, uploaded
// through ModelArtifactService, fine-tuned with its conv layers frozen
// (TrainingJobSpec.model_artifact) under bounded feature and label
// poisoning, and exported back as ONNX (ExportModelOnnx).
//
// Checked: the upload's description (layers, node names, input shape,
// parameter count), the refusals (checksum, declared size past
// --max-artifact-mib, size mismatch, malformed file, unknown ids), the
// precise submit errors (unknown artifact, frozen_layers past the end, an
// unknown frozen_until, a dataset of another sample shape, architecture
// given as well); that the stored spec is self-contained (initial parameters
// = the file's, the frozen prefix = the file's; the job and its model
// outlive the artifact's deletion); that the exported file imports back to
// the served nominal parameters bit for bit.
//
// Soundness: the fine-tuned head is retrained for real in the test
// (tests/core/perturbed_sgd.h) from the file's parameters with up to n rows
// per batch poisoned (random corners and gradient-sign corners of the
// epsilon-ball, labels flipped) by choices made anew per batch; every
// retrained parameter vector must lie in the box ExportModel returns for n.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agt/v1/artifacts.grpc.pb.h"
#include "core/onnx/export.h"
#include "core/onnx/import.h"
#include "server/domain/job_spec.h"
#include "server/store/blob.h"
#include "tests/core/adversaries.h"
#include "tests/core/perturbed_sgd.h"
#include "tests/server/e2e_util.h"
#include "tests/server/rpc_error_details.h"

namespace agt::e2e {
namespace {

constexpr int kSide = 8;
constexpr int kPixels = kSide * kSide;
constexpr int kClasses = 4;
constexpr int kRows = 160;
constexpr int kBatch = 40;
constexpr double kEpsilon = 0.01;

// The "pre-trained" network: [1, 8, 8] -> conv 3@3x3 -> relu -> flatten ->
// dense 108->12 -> relu -> dense 12->4, with seeded weights.
agt::ModelSpec PretrainedSpec() {
  agt::ModelSpec spec;
  spec.input_shape = agt::Shape::Image(1, kSide, kSide);
  agt::Conv2dParams conv;
  conv.in_channels = 1;
  conv.out_channels = 3;
  conv.kernel_h = conv.kernel_w = 3;
  spec.layers = {agt::LayerSpec::Conv2d(conv), agt::LayerSpec::Relu(),
                 agt::LayerSpec::Flatten(),    agt::LayerSpec::Dense(3 * 6 * 6, 12),
                 agt::LayerSpec::Relu(),       agt::LayerSpec::Dense(12, kClasses)};
  return spec;
}

agt::Vector PretrainedParameters(const agt::ModelSpec& spec) {
  std::mt19937_64 rng(41);
  std::normal_distribution<double> w(0.0, 0.25);
  agt::Vector p(spec.NumParameters());
  for (agt::Index k = 0; k < p.size(); ++k) p(k) = w(rng);
  return p;
}

// Each class a bright 3x3 patch in its own quadrant, on noise.
agt::Dataset Images(int rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> noise(0.0, 0.2);
  agt::Dataset data;
  data.x.resize(rows, kPixels);
  data.y.resize(rows);
  data.num_classes = kClasses;
  for (int r = 0; r < rows; ++r) {
    const int label = r % kClasses;
    for (int p = 0; p < kPixels; ++p) data.x(r, p) = noise(rng);
    const int top = 1 + 4 * (label / 2), left = 1 + 4 * (label % 2);
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j) data.x(r, (top + i) * kSide + left + j) += 0.8;
    }
    data.y(r) = label;
  }
  return data;
}

std::string Float64Bytes(const agt::Dataset& data) {
  std::string bytes;
  auto put = [&](double v) { bytes.append(reinterpret_cast<const char*>(&v), 8); };
  for (agt::Index r = 0; r < data.size(); ++r) {
    for (agt::Index c = 0; c < data.dim(); ++c) put(data.x(r, c));
    put(data.y(r));
  }
  return bytes;
}

agt::v1::ModelArtifactMetadata ArtifactMetadata(const std::string& bytes) {
  agt::v1::ModelArtifactMetadata m;
  m.set_name("pretrained.onnx");
  m.set_format(agt::v1::MODEL_ARTIFACT_FORMAT_ONNX);
  m.set_size_bytes(static_cast<int64_t>(bytes.size()));
  m.set_sha256(agt::server::Sha256Hex(bytes));
  return m;
}

grpc::Status UploadArtifact(agt::v1::ModelArtifactService::Stub& stub,
                            const agt::v1::ModelArtifactMetadata& metadata,
                            const std::string& bytes, agt::v1::ModelArtifact* out,
                            size_t chunk_bytes = 4096) {
  std::unique_ptr<grpc::ClientContext> context = Ctx();
  agt::v1::UploadModelArtifactResponse response;
  auto writer = stub.UploadModelArtifact(context.get(), &response);
  agt::v1::UploadModelArtifactRequest message;
  *message.mutable_metadata() = metadata;
  bool open = writer->Write(message);
  for (size_t at = 0; open && at < bytes.size(); at += chunk_bytes) {
    agt::v1::UploadModelArtifactRequest chunk;
    chunk.set_chunk(bytes.substr(at, chunk_bytes));
    open = writer->Write(chunk);
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (status.ok() && out != nullptr) *out = response.artifact();
  return status;
}

agt::v1::TrainingJobSpec FineTuneSpec(const std::string& dataset_id,
                                      const std::string& artifact_id) {
  agt::v1::TrainingJobSpec spec;
  spec.set_name("fine-tune");
  spec.set_dataset_id(dataset_id);
  spec.set_loss(agt::v1::LOSS_CROSS_ENTROPY);
  spec.set_batch_size(kBatch);
  spec.set_epochs(2);
  spec.mutable_optimizer()->set_learning_rate(0.05);
  agt::v1::Perturbation* p = spec.mutable_perturbation();
  p->set_kind(agt::v1::PERTURBATION_KIND_POISONING);
  p->set_epsilon(kEpsilon);
  p->mutable_labels()->set_flip(true);
  for (int n : {0, 1, 2}) {
    agt::v1::Budget* b = spec.add_budgets();
    b->set_n(n);
    b->set_label_n(n);
  }
  spec.set_seed(3);
  spec.mutable_model_artifact()->set_artifact_id(artifact_id);
  spec.mutable_model_artifact()->set_frozen_layers(3);  // conv, relu, flatten
  return spec;
}

agt::Vector ToVector(const std::vector<double>& v) {
  return Eigen::Map<const agt::Vector>(v.data(), static_cast<agt::Index>(v.size()));
}

class ArtifactsE2eTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    server_ = new ServerProcess();
    ASSERT_TRUE(server_->Start(ServerArgs(dir_->File("s.db"), {"--max-artifact-mib", "1"}),
                               dir_->File("server.err")))
        << ReadFileText(dir_->File("server.err"));
    client_ = new Client(server_->address());
    artifacts_ = agt::v1::ModelArtifactService::NewStub(client_->channel).release();
    spec_ = new agt::ModelSpec(PretrainedSpec());
    params_ = new agt::Vector(PretrainedParameters(*spec_));
    absl::StatusOr<std::string> onnx = agt::onnx::ExportOnnx(*spec_, *params_);
    ASSERT_TRUE(onnx.ok()) << onnx.status();
    onnx_ = new std::string(*std::move(onnx));
    data_ = new agt::Dataset(Images(kRows, 5));
    const std::string bytes = Float64Bytes(*data_);
    agt::v1::DatasetMetadata m;
    m.set_name("images");
    m.set_format(agt::v1::DATASET_FORMAT_FLOAT64);
    m.set_num_features(kPixels);
    m.set_num_classes(kClasses);
    for (int d : {1, kSide, kSide}) m.add_sample_shape(d);
    dataset_ = new agt::v1::Dataset();
    const grpc::Status s = Upload(*client_, m, bytes, dataset_);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  static void TearDownTestSuite() {
    delete artifacts_;
    delete dataset_;
    delete data_;
    delete onnx_;
    delete params_;
    delete spec_;
    delete client_;
    delete server_;
    delete dir_;
  }

  static agt::v1::ModelArtifact UploadPretrained() {
    agt::v1::ModelArtifact artifact;
    const grpc::Status s = UploadArtifact(*artifacts_, ArtifactMetadata(*onnx_), *onnx_, &artifact);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return artifact;
  }

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
  static agt::v1::ModelArtifactService::Stub* artifacts_;
  static agt::ModelSpec* spec_;
  static agt::Vector* params_;
  static std::string* onnx_;
  static agt::Dataset* data_;
  static agt::v1::Dataset* dataset_;
};

TempDir* ArtifactsE2eTest::dir_ = nullptr;
ServerProcess* ArtifactsE2eTest::server_ = nullptr;
Client* ArtifactsE2eTest::client_ = nullptr;
agt::v1::ModelArtifactService::Stub* ArtifactsE2eTest::artifacts_ = nullptr;
agt::ModelSpec* ArtifactsE2eTest::spec_ = nullptr;
agt::Vector* ArtifactsE2eTest::params_ = nullptr;
std::string* ArtifactsE2eTest::onnx_ = nullptr;
agt::Dataset* ArtifactsE2eTest::data_ = nullptr;
agt::v1::Dataset* ArtifactsE2eTest::dataset_ = nullptr;

TEST_F(ArtifactsE2eTest, UploadDescribesTheNetworkAndGetAndListReturnIt) {
  const agt::v1::ModelArtifact artifact = UploadPretrained();
  EXPECT_TRUE(absl::StartsWith(artifact.id(), "art-")) << artifact.id();
  EXPECT_EQ(artifact.sha256(), agt::server::Sha256Hex(*onnx_));
  EXPECT_EQ(artifact.size_bytes(), static_cast<int64_t>(onnx_->size()));
  ASSERT_EQ(artifact.input_shape_size(), 3);
  EXPECT_EQ(artifact.input_shape(1), kSide);
  EXPECT_EQ(artifact.num_parameters(), params_->size());
  EXPECT_EQ(artifact.num_outputs(), kClasses);
  ASSERT_EQ(artifact.layers_size(), 6);
  EXPECT_EQ(artifact.layers(0).op_type(), "Conv");
  EXPECT_EQ(artifact.layers(0).layer().conv2d().out_channels(), 3);
  EXPECT_EQ(artifact.layers(2).op_type(), "Flatten");
  EXPECT_EQ(artifact.layers(3).op_type(), "Gemm");
  EXPECT_EQ(artifact.layers(3).layer().dense().in(), 108);
  // The exporter's node names, which frozen_until takes.
  EXPECT_EQ(artifact.layers(2).node_name(), "trained.2.flatten");

  agt::v1::GetModelArtifactRequest get;
  get.set_artifact_id(artifact.id());
  agt::v1::GetModelArtifactResponse got;
  ASSERT_TRUE(artifacts_->GetModelArtifact(Ctx().get(), get, &got).ok());
  EXPECT_EQ(got.artifact().SerializeAsString(), artifact.SerializeAsString());

  // Paginated: page_size 1 walks every artifact once.
  UploadPretrained();
  agt::v1::ListModelArtifactsRequest list;
  list.set_page_size(1);
  std::vector<std::string> ids;
  for (int page = 0; page < 100; ++page) {
    agt::v1::ListModelArtifactsResponse response;
    ASSERT_TRUE(artifacts_->ListModelArtifacts(Ctx().get(), list, &response).ok());
    for (const auto& a : response.artifacts()) ids.push_back(a.id());
    if (response.next_page_token().empty()) break;
    list.set_page_token(response.next_page_token());
  }
  EXPECT_GE(ids.size(), 2u);
  EXPECT_NE(std::find(ids.begin(), ids.end(), artifact.id()), ids.end());
}

TEST_F(ArtifactsE2eTest, ChecksumSizeAndMalformedFilesAreRefused) {
  agt::v1::ModelArtifactMetadata wrong_sha = ArtifactMetadata(*onnx_);
  wrong_sha.set_sha256(std::string(64, 'a'));
  grpc::Status s = UploadArtifact(*artifacts_, wrong_sha, *onnx_, nullptr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(s.error_message(), agt::server::Sha256Hex(*onnx_)))
      << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), std::string(64, 'a'))) << s.error_message();
  EXPECT_EQ(ReadRpcErrorDetails(s).reason, "ARTIFACT_CHECKSUM_MISMATCH");
  EXPECT_EQ(ReadRpcErrorDetails(s).field, "metadata.sha256");

  // Declared past --max-artifact-mib 1: refused before any byte.
  agt::v1::ModelArtifactMetadata big = ArtifactMetadata(*onnx_);
  big.set_size_bytes((int64_t{1} << 20) + 1);
  s = UploadArtifact(*artifacts_, big, "", nullptr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "1048577")) << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), "1048576")) << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), "--max-artifact-mib")) << s.error_message();
  const RpcErrorDetails details = ReadRpcErrorDetails(s);
  EXPECT_EQ(details.reason, "ARTIFACT_SIZE_LIMIT");
  EXPECT_EQ(details.field, "metadata.size_bytes");
  EXPECT_EQ(details.quota_subject, "server");

  // Received past the limit without a declaration that says so: the
  // declared size is within it, the stream carries more.
  agt::v1::ModelArtifactMetadata within = ArtifactMetadata(*onnx_);
  within.set_size_bytes(int64_t{1} << 20);
  s = UploadArtifact(*artifacts_, within, std::string((int64_t{1} << 20) + 10, 'x'), nullptr,
                     size_t{512} << 10);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_EQ(ReadRpcErrorDetails(s).reason, "ARTIFACT_SIZE_LIMIT");

  // More bytes than declared.
  agt::v1::ModelArtifactMetadata short_size = ArtifactMetadata(*onnx_);
  short_size.set_size_bytes(100);
  s = UploadArtifact(*artifacts_, short_size, *onnx_, nullptr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "metadata.size_bytes")) << s.error_message();

  // Not ONNX at all (its checksum matches).
  const std::string junk = "this is not an onnx file";
  s = UploadArtifact(*artifacts_, ArtifactMetadata(junk), junk, nullptr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StartsWith(s.error_message(), "ONNX: ")) << s.error_message();

  agt::v1::GetModelArtifactRequest get;
  get.set_artifact_id("art-00000000000000000000");
  agt::v1::GetModelArtifactResponse got;
  EXPECT_EQ(artifacts_->GetModelArtifact(Ctx().get(), get, &got).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(ArtifactsE2eTest, BadReferencesAreRefusedAtSubmitNamingTheField) {
  const agt::v1::ModelArtifact artifact = UploadPretrained();
  auto submit_error = [&](const agt::v1::TrainingJobSpec& spec, grpc::StatusCode code,
                          const std::string& needle) {
    agt::v1::Job job;
    const grpc::Status s = Submit(*client_, spec, &job);
    EXPECT_EQ(s.error_code(), code) << s.error_message();
    EXPECT_TRUE(absl::StrContains(s.error_message(), needle)) << s.error_message();
  };
  agt::v1::TrainingJobSpec spec = FineTuneSpec(dataset_->id(), "art-00000000000000000000");
  submit_error(spec, grpc::StatusCode::NOT_FOUND, "art-00000000000000000000");

  spec = FineTuneSpec(dataset_->id(), artifact.id());
  spec.mutable_model_artifact()->set_frozen_layers(6);
  submit_error(spec, grpc::StatusCode::INVALID_ARGUMENT,
               "spec.model_artifact.frozen_layers: frozen_layers 6 must be in [0, 5]");

  spec.mutable_model_artifact()->set_frozen_until("no.such.node");
  submit_error(spec, grpc::StatusCode::INVALID_ARGUMENT,
               "frozen_until \"no.such.node\" names no layer node");

  spec = FineTuneSpec(dataset_->id(), artifact.id());
  spec.mutable_architecture()->add_layers()->mutable_relu();
  submit_error(spec, grpc::StatusCode::INVALID_ARGUMENT, "spec.architecture: not with");

  // A flat dataset of 64 features is not the network's [1, 8, 8].
  agt::v1::DatasetMetadata flat;
  flat.set_name("flat");
  flat.set_format(agt::v1::DATASET_FORMAT_FLOAT64);
  flat.set_num_features(kPixels);
  flat.set_num_classes(kClasses);
  const std::string bytes = Float64Bytes(*data_);
  agt::v1::Dataset flat_dataset;
  ASSERT_TRUE(Upload(*client_, flat, bytes, &flat_dataset).ok());
  spec = FineTuneSpec(flat_dataset.id(), artifact.id());
  submit_error(spec, grpc::StatusCode::INVALID_ARGUMENT, "the network's input shape [1, 8, 8]");
}

TEST_F(ArtifactsE2eTest, FineTunedHeadBoundsContainEveryPoisonedRetrainingAndExportRoundTrips) {
  const agt::v1::ModelArtifact artifact = UploadPretrained();
  agt::v1::TrainingJobSpec spec = FineTuneSpec(dataset_->id(), artifact.id());
  // frozen_until names the same prefix as frozen_layers 3.
  spec.mutable_model_artifact()->set_frozen_until("trained.2.flatten");
  agt::v1::Job job;
  ASSERT_TRUE(Submit(*client_, spec, &job).ok());
  const agt::v1::Job done = WaitForFinal(*client_, job.id());
  ASSERT_EQ(done.state(), agt::v1::JOB_STATE_SUCCEEDED) << done.error();

  // The stored spec is self-contained: the file's frozen prefix and initial
  // parameters, with the reference kept.
  const agt::v1::TrainingJobSpec& stored = done.spec();
  EXPECT_EQ(stored.model_artifact().artifact_id(), artifact.id());
  ASSERT_EQ(stored.architecture().frozen().layers_size(), 3);
  const agt::Index frozen_count = 3 * 9 + 3;
  ASSERT_EQ(stored.architecture().frozen().parameters_size(), frozen_count);
  for (agt::Index k = 0; k < frozen_count; ++k) {
    ASSERT_EQ(stored.architecture().frozen().parameters(static_cast<int>(k)), (*params_)(k));
  }
  const agt::Vector init = ToVector(Flatten(stored.architecture().initial_parameters()));
  ASSERT_EQ(init.size(), params_->size() - frozen_count);
  EXPECT_TRUE(init == params_->tail(init.size()));

  // Deleting the artifact changes nothing for the job or its model.
  agt::v1::DeleteModelArtifactRequest del;
  del.set_artifact_id(artifact.id());
  agt::v1::DeleteModelArtifactResponse deleted;
  ASSERT_TRUE(artifacts_->DeleteModelArtifact(Ctx().get(), del, &deleted).ok());
  EXPECT_EQ(artifacts_->DeleteModelArtifact(Ctx().get(), del, &deleted).error_code(),
            grpc::StatusCode::NOT_FOUND);

  agt::v1::ExportModelRequest export_request;
  export_request.set_model_id(done.model_id());
  agt::v1::ExportModelResponse exported;
  ASSERT_TRUE(client_->models->ExportModel(Ctx().get(), export_request, &exported).ok());
  ASSERT_EQ(exported.boxes_size(), 3);
  const agt::Vector nominal = ToVector(Flatten(exported.model().nominal()));

  // The job as the server resolved it, retrained for real from the file's
  // parameters: budget 0 is the nominal model, and every poisoned run stays
  // in its budget's box.
  absl::StatusOr<agt::server::ResolvedJob> resolved = agt::server::ResolveJobSpec(stored, Record());
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  const agt::TrainConfig& config = resolved->config;
  agt_test::PerturbedTraining plain = agt_test::TrainPerturbed(
      config, *data_, init, agt_test::MakeThreat(config, agt::Budget{0, 0}, kClasses), {});
  ASSERT_TRUE(plain.violation.empty()) << plain.violation;
  EXPECT_LE((plain.after_step.back() - nominal).cwiseAbs().maxCoeff(), 1e-9);
  for (int j = 1; j < exported.boxes_size(); ++j) {
    const agt::v1::Budget& budget = exported.boxes(j).budget();
    const agt::ParameterBox box{ToVector(Flatten(exported.boxes(j).lower())),
                                ToVector(Flatten(exported.boxes(j).upper()))};
    const agt_test::Threat threat =
        agt_test::MakeThreat(config, agt::Budget{budget.n(), budget.label_n()}, kClasses);
    const std::vector<std::pair<std::string, agt_test::Adversary>> adversaries = {
        {"random", agt_test::RandomPoisoning(31 + j, false)},
        {"gradient-sign", agt_test::GradientSignPoisoning(37 + j, false)}};
    for (const auto& [name, adversary] : adversaries) {
      SCOPED_TRACE(absl::StrCat("n=", budget.n(), " adversary ", name));
      agt_test::PerturbedTraining run =
          agt_test::TrainPerturbed(config, *data_, init, threat, adversary);
      ASSERT_TRUE(run.violation.empty()) << run.violation;
      EXPECT_GT(run.rows_touched, 0);
      EXPECT_EQ(agt_test::OutsideBox(box, run.after_step.back()), "");
    }
  }

  // The ONNX export imports back to the served model, bit for bit.
  agt::v1::ExportModelOnnxRequest onnx_request;
  onnx_request.set_model_id(done.model_id());
  std::unique_ptr<grpc::ClientContext> context = Ctx();
  auto reader = client_->models->ExportModelOnnx(context.get(), onnx_request);
  agt::v1::ExportModelOnnxChunk chunk;
  std::string file;
  std::string sha;
  while (reader->Read(&chunk)) {
    if (sha.empty()) sha = chunk.sha256();
    file += chunk.chunk();
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(sha, agt::server::Sha256Hex(file));
  agt::onnx::ImportOptions options;
  options.frozen_layers = 3;
  absl::StatusOr<agt::onnx::ImportedModel> back = agt::onnx::ImportOnnx(file, options);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(BitIdentical(
      std::vector<double>(back->trained_parameters.data(),
                          back->trained_parameters.data() + back->trained_parameters.size()),
      Flatten(exported.model().nominal())));
  EXPECT_TRUE(back->spec.frozen.parameters == params_->head(frozen_count));
}

// A stream that stops sending is dropped after --upload-idle-timeout and
// stores nothing; the tenant's upload slot is free again.
TEST(ArtifactUploadIdleTest, AStalledUploadIsDroppedAndStoresNothing) {
  TempDir dir;
  ServerProcess server;
  ASSERT_TRUE(server.Start(ServerArgs(dir.File("s.db"), {"--upload-idle-timeout", "0.5",
                                                         "--max-uploads-per-tenant", "1"}),
                           dir.File("server.err")))
      << ReadFileText(dir.File("server.err"));
  Client client(server.address());
  auto stub = agt::v1::ModelArtifactService::NewStub(client.channel);
  const std::string bytes(1000, 'x');
  std::unique_ptr<grpc::ClientContext> context = Ctx();
  agt::v1::UploadModelArtifactResponse response;
  auto writer = stub->UploadModelArtifact(context.get(), &response);
  agt::v1::UploadModelArtifactRequest message;
  *message.mutable_metadata() = ArtifactMetadata(bytes);
  ASSERT_TRUE(writer->Write(message));
  std::this_thread::sleep_for(std::chrono::milliseconds(2000));
  writer->WritesDone();
  const grpc::Status s = writer->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << s.error_message();
  // The slot is free: another upload of the tenant is admitted (and refused
  // only for its content).
  agt::v1::ModelArtifact artifact;
  const grpc::Status next = UploadArtifact(*stub, ArtifactMetadata(bytes), bytes, &artifact);
  EXPECT_EQ(next.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << next.error_message();
  agt::v1::ListModelArtifactsResponse listed;
  ASSERT_TRUE(stub->ListModelArtifacts(Ctx().get(), {}, &listed).ok());
  EXPECT_EQ(listed.artifacts_size(), 0);
}

// A model of polynomial features cannot be written as the layers' ONNX (the
// file would take the expanded inputs); a flat MLP can, and imports back.
TEST_F(ArtifactsE2eTest, OnnxExportRefusesPolynomialModelsAndServesFlatOnes) {
  const agt::v1::Dataset moons = UploadMoons(*client_, 100, 3);
  agt::v1::TrainingJobSpec spec = MoonsSpec(moons.id(), 1);
  const std::string flat_id = TrainModel(*client_, spec);
  spec.set_polynomial_degree(2);
  const std::string poly_id = TrainModel(*client_, spec);
  ASSERT_FALSE(flat_id.empty());
  ASSERT_FALSE(poly_id.empty());
  auto export_onnx = [&](const std::string& id, std::string* file) {
    agt::v1::ExportModelOnnxRequest request;
    request.set_model_id(id);
    std::unique_ptr<grpc::ClientContext> context = Ctx();
    auto reader = client_->models->ExportModelOnnx(context.get(), request);
    agt::v1::ExportModelOnnxChunk chunk;
    while (reader->Read(&chunk)) *file += chunk.chunk();
    return reader->Finish();
  };
  std::string file;
  grpc::Status s = export_onnx(poly_id, &file);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "polynomial features of degree 2"))
      << s.error_message();
  file.clear();
  s = export_onnx(flat_id, &file);
  ASSERT_TRUE(s.ok()) << s.error_message();
  absl::StatusOr<agt::onnx::ImportedModel> back = agt::onnx::ImportOnnx(file, {});
  ASSERT_TRUE(back.ok()) << back.status();
  agt::v1::ExportModelRequest request;
  request.set_model_id(flat_id);
  agt::v1::ExportModelResponse exported;
  ASSERT_TRUE(client_->models->ExportModel(Ctx().get(), request, &exported).ok());
  EXPECT_TRUE(BitIdentical(
      std::vector<double>(back->trained_parameters.data(),
                          back->trained_parameters.data() + back->trained_parameters.size()),
      Flatten(exported.model().nominal())));
  file.clear();
  s = export_onnx("mdl-00000000000000000000", &file);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace agt::e2e
