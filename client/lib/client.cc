#include "client/lib/client.h"

#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "openssl/evp.h"
#include "client/lib/error_details.h"
#include "google/protobuf/unknown_field_set.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/channel_arguments.h"
#include "grpcpp/support/status.h"

namespace agt::client {
namespace {

using agt::v1::DatasetMetadata;
using agt::v1::UploadDatasetRequest;
using agt::v1::UploadDatasetResponse;

constexpr char kHealthCheckMethod[] = "/grpc.health.v1.Health/Check";

// SHA-256 of `data`, lowercase hex (what the server checks uploads with).
std::string Sha256Hex(absl::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1) return "";
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(md), static_cast<size_t>(len)));
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// grpc.health.v1.HealthCheckRequest{service}: field 1, length-delimited.
std::string EncodeHealthCheckRequest(const std::string& service) {
  std::string out;
  if (service.empty()) return out;
  out.push_back(static_cast<char>(0x0A));
  size_t n = service.size();
  while (n >= 0x80) {
    out.push_back(static_cast<char>((n & 0x7F) | 0x80));
    n >>= 7;
  }
  out.push_back(static_cast<char>(n));
  out += service;
  return out;
}

// grpc.health.v1.HealthCheckResponse{status}: field 1, varint.
absl::StatusOr<HealthStatus> DecodeHealthCheckResponse(const std::string& bytes) {
  google::protobuf::UnknownFieldSet fields;
  if (!fields.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InternalError("malformed grpc.health.v1.HealthCheckResponse");
  }
  int64_t status = 0;  // proto3 default: UNKNOWN
  for (int i = 0; i < fields.field_count(); ++i) {
    const auto& field = fields.field(i);
    if (field.number() == 1 && field.type() == google::protobuf::UnknownField::TYPE_VARINT) {
      status = static_cast<int64_t>(field.varint());
    }
  }
  if (status < 0 || status > 3) status = 0;
  return static_cast<HealthStatus>(status);
}

template <typename Response, typename Call>
absl::StatusOr<Response> Unary(const Call& call) {
  Response response;
  grpc::Status status = call(&response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

}  // namespace

const char* HealthStatusName(HealthStatus status) {
  switch (status) {
    case HealthStatus::kServing:
      return "SERVING";
    case HealthStatus::kNotServing:
      return "NOT_SERVING";
    case HealthStatus::kServiceUnknown:
      return "SERVICE_UNKNOWN";
    case HealthStatus::kUnknown:
      break;
  }
  return "UNKNOWN";
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  // gRPC and absl share the canonical code numbers (0..16).
  // The google.rpc details travel with the status (error_details.h).
  return WithRpcStatus(
      absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message()),
      status.error_details());
}

absl::StatusOr<std::unique_ptr<Client>> Client::Create(const ClientOptions& options) {
  if (options.target.empty()) return absl::InvalidArgumentError("server target is empty");
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  grpc::ChannelArguments args;
  if (options.tls) {
    grpc::SslCredentialsOptions ssl;
    if (!options.tls_ca_file.empty()) {
      absl::StatusOr<std::string> pem = ReadWholeFile(options.tls_ca_file);
      if (!pem.ok()) {
        return absl::NotFoundError(
            absl::StrCat("TLS CA file ", options.tls_ca_file, " cannot be read"));
      }
      ssl.pem_root_certs = *std::move(pem);
    }
    credentials = grpc::SslCredentials(ssl);
    if (!options.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(options.tls_server_name);
    }
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  args.SetMaxReceiveMessageSize(options.max_receive_bytes);
  // Uploads send at most one chunk (plus framing) per message.
  args.SetMaxSendMessageSize(static_cast<int>(kUploadChunkBytes) + (64 << 10));
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(options.target, credentials, args);
  return std::unique_ptr<Client>(new Client(options, std::move(channel)));
}

Client::Client(ClientOptions options, std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      datasets_(agt::v1::DatasetService::NewStub(channel_)),
      artifacts_(agt::v1::ModelArtifactService::NewStub(channel_)),
      training_(agt::v1::TrainingService::NewStub(channel_)),
      models_(agt::v1::ModelService::NewStub(channel_)),
      unlearning_(agt::v1::UnlearningService::NewStub(channel_)),
      privacy_(agt::v1::PrivacyService::NewStub(channel_)) {}

Client::~Client() = default;

void Client::Prepare(grpc::ClientContext& context, absl::Duration deadline) const {
  if (!options_.token.empty()) {
    context.AddMetadata("authorization", absl::StrCat("Bearer ", options_.token));
  }
  if (deadline != absl::InfiniteDuration()) {
    context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  }
}

absl::StatusOr<UploadDatasetResponse> Client::Upload(const DatasetMetadata& metadata,
                                                     const ChunkSource& next) const {
  grpc::ClientContext context;
  Prepare(context, options_.deadline);
  UploadDatasetResponse response;
  std::unique_ptr<grpc::ClientWriter<UploadDatasetRequest>> writer =
      datasets_->UploadDataset(&context, &response);
  UploadDatasetRequest request;
  *request.mutable_metadata() = metadata;
  bool open = writer->Write(request);
  absl::Status local_error;
  std::string chunk;
  while (open) {
    absl::StatusOr<bool> more = next(chunk);
    if (!more.ok()) {
      local_error = more.status();
      break;
    }
    if (!*more) break;
    request.Clear();
    request.set_chunk(std::move(chunk));
    chunk.clear();
    // false: the server has ended the call (it rejected the upload); Finish
    // below says why.
    open = writer->Write(request);
  }
  if (!local_error.ok()) {
    context.TryCancel();
    writer->Finish();
    return local_error;
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<agt::v1::UploadModelArtifactResponse> Client::UploadModelArtifactFile(
    agt::v1::ModelArtifactMetadata metadata, const std::string& path) const {
  absl::StatusOr<std::string> bytes = ReadWholeFile(path);
  if (!bytes.ok()) return absl::NotFoundError(absl::StrCat("cannot read model file ", path));
  metadata.set_size_bytes(static_cast<int64_t>(bytes->size()));
  metadata.set_sha256(Sha256Hex(*bytes));
  grpc::ClientContext context;
  Prepare(context, options_.deadline);
  agt::v1::UploadModelArtifactResponse response;
  std::unique_ptr<grpc::ClientWriter<agt::v1::UploadModelArtifactRequest>> writer =
      artifacts_->UploadModelArtifact(&context, &response);
  agt::v1::UploadModelArtifactRequest request;
  *request.mutable_metadata() = metadata;
  bool open = writer->Write(request);
  for (size_t at = 0; open && at < bytes->size(); at += kUploadChunkBytes) {
    request.Clear();
    request.set_chunk(bytes->substr(at, kUploadChunkBytes));
    open = writer->Write(request);  // false: the server ended the call; Finish says why
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<agt::v1::ListModelArtifactsResponse> Client::ListModelArtifacts(
    const agt::v1::ListModelArtifactsRequest& request) const {
  return Unary<agt::v1::ListModelArtifactsResponse>([&](auto* response) {
    grpc::ClientContext context;
    Prepare(context, options_.deadline);
    return artifacts_->ListModelArtifacts(&context, request, response);
  });
}

absl::StatusOr<agt::v1::GetModelArtifactResponse> Client::GetModelArtifact(
    const agt::v1::GetModelArtifactRequest& request) const {
  return Unary<agt::v1::GetModelArtifactResponse>([&](auto* response) {
    grpc::ClientContext context;
    Prepare(context, options_.deadline);
    return artifacts_->GetModelArtifact(&context, request, response);
  });
}

absl::StatusOr<agt::v1::DeleteModelArtifactResponse> Client::DeleteModelArtifact(
    const agt::v1::DeleteModelArtifactRequest& request) const {
  return Unary<agt::v1::DeleteModelArtifactResponse>([&](auto* response) {
    grpc::ClientContext context;
    Prepare(context, options_.deadline);
    return artifacts_->DeleteModelArtifact(&context, request, response);
  });
}

absl::StatusOr<UploadDatasetResponse> Client::UploadDataset(const DatasetMetadata& metadata,
                                                            absl::string_view data) const {
  size_t offset = 0;
  return Upload(metadata, [&](std::string& chunk) -> absl::StatusOr<bool> {
    if (offset >= data.size()) return false;
    size_t n = std::min(kUploadChunkBytes, data.size() - offset);
    chunk.assign(data.data() + offset, n);
    offset += n;
    return true;
  });
}

absl::StatusOr<UploadDatasetResponse> Client::UploadDatasetFile(const DatasetMetadata& metadata,
                                                                const std::string& path) const {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open dataset file ", path));
  // Declaring the size lets the server refuse an upload over its limit before
  // any byte is sent, and decode straight into the final matrix.
  DatasetMetadata declared = metadata;
  std::error_code size_error;
  const std::uintmax_t size = std::filesystem::file_size(path, size_error);
  if (declared.size_bytes() == 0 && !size_error && size > 0) {
    declared.set_size_bytes(static_cast<int64_t>(size));
  }
  std::vector<char> buffer(kUploadChunkBytes);
  return Upload(declared, [&](std::string& chunk) -> absl::StatusOr<bool> {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    std::streamsize got = in.gcount();
    if (in.bad()) return absl::DataLossError(absl::StrCat("error reading ", path));
    if (got <= 0) return false;
    chunk.assign(buffer.data(), static_cast<size_t>(got));
    return true;
  });
}

absl::StatusOr<agt::v1::ListDatasetsResponse> Client::ListDatasets(
    const agt::v1::ListDatasetsRequest& request) const {
  return Unary<agt::v1::ListDatasetsResponse>([&](auto* response) {
    grpc::ClientContext context;
    Prepare(context, options_.deadline);
    return datasets_->ListDatasets(&context, request, response);
  });
}

absl::StatusOr<agt::v1::GetDatasetResponse> Client::GetDataset(
    const agt::v1::GetDatasetRequest& request) const {
  return Unary<agt::v1::GetDatasetResponse>([&](auto* response) {
    grpc::ClientContext context;
    Prepare(context, options_.deadline);
    return datasets_->GetDataset(&context, request, response);
  });
}

absl::StatusOr<agt::v1::DeleteDatasetResponse> Client::DeleteDataset(
    const agt::v1::DeleteDatasetRequest& request) const {
  return Unary<agt::v1::DeleteDatasetResponse>([&](auto* response) {
    grpc::ClientContext context;
    Prepare(context, options_.deadline);
    return datasets_->DeleteDataset(&context, request, response);
  });
}

absl::StatusOr<agt::v1::SubmitTrainingJobResponse> Client::SubmitTrainingJob(
    const agt::v1::SubmitTrainingJobRequest& request) const {
  return Unary<agt::v1::SubmitTrainingJobResponse>([&](auto* response) {
    grpc::ClientContext context;
    Prepare(context, options_.deadline);
    return training_->SubmitTrainingJob(&context, request, response);
  });
}

absl::StatusOr<agt::v1::GetJobResponse> Client::GetJob(
    const agt::v1::GetJobRequest& request) const {
  return Unary<agt::v1::GetJobResponse>([&](auto* response) {
    grpc::ClientContext context;
    Prepare(context, options_.deadline);
    return training_->GetJob(&context, request, response);
  });
}

absl::StatusOr<agt::v1::ListJobsResponse> Client::ListJobs(
    const agt::v1::ListJobsRequest& request) const {
  return Unary<agt::v1::ListJobsResponse>([&](auto* response) {
    grpc::ClientContext context;
    Prepare(context, options_.deadline);
    return training_->ListJobs(&context, request, response);
  });
}

absl::StatusOr<agt::v1::CancelJobResponse> Client::CancelJob(
    const agt::v1::CancelJobRequest& request) const {
  return Unary<agt::v1::CancelJobResponse>([&](auto* response) {
    grpc::ClientContext context;
    Prepare(context, options_.deadline);
    return training_->CancelJob(&context, request, response);
  });
}

absl::StatusOr<agt::v1::DeleteJobResponse> Client::DeleteJob(
    const agt::v1::DeleteJobRequest& request) const {
  return Unary<agt::v1::DeleteJobResponse>([&](auto* response) {
    grpc::ClientContext context;
    Prepare(context, options_.deadline);
    return training_->DeleteJob(&context, request, response);
  });
}

absl::StatusOr<agt::v1::GetTrainingHistoryResponse> Client::GetTrainingHistory(
    const agt::v1::GetTrainingHistoryRequest& request) const {
  return Unary<agt::v1::GetTrainingHistoryResponse>([&](auto* response) {
    grpc::ClientContext context;
    Prepare(context, options_.deadline);
    return training_->GetTrainingHistory(&context, request, response);
  });
}

absl::StatusOr<agt::v1::JobEvent> Client::WatchJob(const agt::v1::WatchJobRequest& request,
                                                   const JobEventCallback& on_event) const {
  grpc::ClientContext context;
  Prepare(context, options_.watch_deadline);
  std::unique_ptr<grpc::ClientReader<agt::v1::JobEvent>> reader =
      training_->WatchJob(&context, request);
  agt::v1::JobEvent event;
  agt::v1::JobEvent last;
  bool any = false;
  bool stopped = false;
  while (reader->Read(&event)) {
    last = event;
    any = true;
    if (on_event && !on_event(event)) {
      stopped = true;
      context.TryCancel();
      break;
    }
  }
  if (stopped) {
    // Drain what is in flight, then ignore the CANCELLED status we caused.
    while (reader->Read(&event)) {
    }
    reader->Finish();
    return last;
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return FromGrpcStatus(status);
  if (!any) {
    return absl::UnavailableError(
        absl::StrCat("watch of job ", request.job_id(), " ended without any event"));
  }
  return last;
}

absl::StatusOr<agt::v1::GetModelResponse> Client::GetModel(
    const agt::v1::GetModelRequest& request) const {
  return Unary<agt::v1::GetModelResponse>([&](auto* response) {
    grpc::ClientContext context;
    Prepare(context, options_.deadline);
    return models_->GetModel(&context, request, response);
  });
}

absl::StatusOr<agt::v1::ListModelsResponse> Client::ListModels(
    const agt::v1::ListModelsRequest& request) const {
  return Unary<agt::v1::ListModelsResponse>([&](auto* response) {
    grpc::ClientContext context;
    Prepare(context, options_.deadline);
    return models_->ListModels(&context, request, response);
  });
}

absl::StatusOr<std::string> Client::ExportModelOnnx(
    const agt::v1::ExportModelOnnxRequest& request) const {
  grpc::ClientContext context;
  Prepare(context, options_.deadline);
  std::unique_ptr<grpc::ClientReader<agt::v1::ExportModelOnnxChunk>> reader =
      models_->ExportModelOnnx(&context, request);
  agt::v1::ExportModelOnnxChunk chunk;
  std::string file;
  int64_t size = -1;
  std::string sha256;
  while (reader->Read(&chunk)) {
    if (size < 0) {
      size = chunk.size_bytes();
      sha256 = chunk.sha256();
    }
    file += chunk.chunk();
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return FromGrpcStatus(status);
  if (static_cast<int64_t>(file.size()) != size || Sha256Hex(file) != sha256) {
    return absl::DataLossError(absl::StrCat("the ONNX file arrived with ", file.size(),
                                            " bytes and SHA-256 ", Sha256Hex(file),
                                            "; the server sent ", size, " bytes, ", sha256));
  }
  return file;
}

absl::StatusOr<agt::v1::ExportModelResponse> Client::ExportModel(
    const agt::v1::ExportModelRequest& request) const {
  return Unary<agt::v1::ExportModelResponse>([&](auto* response) {
    grpc::ClientContext context;
    Prepare(context, options_.deadline);
    return models_->ExportModel(&context, request, response);
  });
}

absl::StatusOr<agt::v1::CertifyPredictionsResponse> Client::CertifyPredictions(
    const agt::v1::CertifyPredictionsRequest& request) const {
  return Unary<agt::v1::CertifyPredictionsResponse>([&](auto* response) {
    grpc::ClientContext context;
    Prepare(context, options_.deadline);
    return models_->CertifyPredictions(&context, request, response);
  });
}

absl::StatusOr<agt::v1::CertifyDatasetResponse> Client::CertifyDataset(
    const agt::v1::CertifyDatasetRequest& request) const {
  return Unary<agt::v1::CertifyDatasetResponse>([&](auto* response) {
    grpc::ClientContext context;
    Prepare(context, options_.deadline);
    return models_->CertifyDataset(&context, request, response);
  });
}

absl::StatusOr<agt::v1::DeleteModelResponse> Client::DeleteModel(
    const agt::v1::DeleteModelRequest& request) const {
  return Unary<agt::v1::DeleteModelResponse>([&](auto* response) {
    grpc::ClientContext context;
    Prepare(context, options_.deadline);
    return models_->DeleteModel(&context, request, response);
  });
}

absl::StatusOr<agt::v1::RequestDeletionResponse> Client::RequestDeletion(
    const agt::v1::RequestDeletionRequest& request) const {
  return Unary<agt::v1::RequestDeletionResponse>([&](auto* response) {
    grpc::ClientContext context;
    Prepare(context, options_.deadline);
    return unlearning_->RequestDeletion(&context, request, response);
  });
}

absl::StatusOr<agt::v1::GetUnlearningStatusResponse> Client::GetUnlearningStatus(
    const agt::v1::GetUnlearningStatusRequest& request) const {
  return Unary<agt::v1::GetUnlearningStatusResponse>([&](auto* response) {
    grpc::ClientContext context;
    Prepare(context, options_.deadline);
    return unlearning_->GetUnlearningStatus(&context, request, response);
  });
}

absl::StatusOr<agt::v1::CheckUnlearningResponse> Client::CheckUnlearning(
    const agt::v1::CheckUnlearningRequest& request) const {
  return Unary<agt::v1::CheckUnlearningResponse>([&](auto* response) {
    grpc::ClientContext context;
    Prepare(context, options_.deadline);
    return unlearning_->CheckUnlearning(&context, request, response);
  });
}

absl::StatusOr<agt::v1::ListDeletionsResponse> Client::ListDeletions(
    const agt::v1::ListDeletionsRequest& request) const {
  return Unary<agt::v1::ListDeletionsResponse>([&](auto* response) {
    grpc::ClientContext context;
    Prepare(context, options_.deadline);
    return unlearning_->ListDeletions(&context, request, response);
  });
}

absl::StatusOr<agt::v1::RetrainInPlaceResponse> Client::RetrainInPlace(
    const agt::v1::RetrainInPlaceRequest& request) const {
  return Unary<agt::v1::RetrainInPlaceResponse>([&](auto* response) {
    grpc::ClientContext context;
    Prepare(context, options_.deadline);
    return unlearning_->RetrainInPlace(&context, request, response);
  });
}

absl::StatusOr<agt::v1::PrivatePredictResponse> Client::PrivatePredict(
    const agt::v1::PrivatePredictRequest& request) const {
  return Unary<agt::v1::PrivatePredictResponse>([&](auto* response) {
    grpc::ClientContext context;
    Prepare(context, options_.deadline);
    return privacy_->PrivatePredict(&context, request, response);
  });
}

absl::StatusOr<agt::v1::GetPrivacyBudgetResponse> Client::GetPrivacyBudget(
    const agt::v1::GetPrivacyBudgetRequest& request) const {
  return Unary<agt::v1::GetPrivacyBudgetResponse>([&](auto* response) {
    grpc::ClientContext context;
    Prepare(context, options_.deadline);
    return privacy_->GetPrivacyBudget(&context, request, response);
  });
}

absl::StatusOr<HealthStatus> Client::CheckHealth(const std::string& service) const {
  grpc::ClientContext context;
  if (options_.deadline != absl::InfiniteDuration()) {
    context.set_deadline(absl::ToChronoTime(absl::Now() + options_.deadline));
  }
  std::string request_bytes = EncodeHealthCheckRequest(service);
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::GenericStub stub(channel_);
  std::promise<grpc::Status> done;
  std::future<grpc::Status> result = done.get_future();
  stub.UnaryCall(&context, kHealthCheckMethod, grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status status) { done.set_value(std::move(status)); });
  grpc::Status status = result.get();
  if (!status.ok()) return FromGrpcStatus(status);
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) {
    return absl::InternalError("unreadable health check response");
  }
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return DecodeHealthCheckResponse(bytes);
}

}  // namespace agt::client
