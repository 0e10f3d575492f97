// The C++ client of the AGT certification service (package agt.v1).
//
// One Client holds one gRPC channel to one server and a stub per service. Each
// RPC of the public API is one method that takes the request message and
// returns the response message, or the server's status mapped onto
// absl::Status: the same canonical code and the server's message, unchanged
// (so a caller can branch on absl::IsNotFound and show the message as is),
// with the server's google.rpc details attached (ErrorDetailsOf).
//
// Every call sends `authorization: Bearer <token>` when a token is set, and
// runs under the per-call deadline of the options. Streaming calls: an
// upload sends the metadata first and then the bytes in chunks of at most
// kUploadChunkBytes; WatchJob hands every event to a callback and has no
// deadline (a job may train for hours) unless the options set one.
//
// Thread-safety: a Client is immutable after Create; every method may be
// called from many threads at once (gRPC channels and stubs are thread-safe).
// Ownership: the Client owns its channel; responses are plain values.
#ifndef AGT_CLIENT_LIB_CLIENT_H_
#define AGT_CLIENT_LIB_CLIENT_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agt/v1/artifacts.grpc.pb.h"
#include "agt/v1/datasets.grpc.pb.h"
#include "agt/v1/models.grpc.pb.h"
#include "agt/v1/privacy.grpc.pb.h"
#include "agt/v1/training.grpc.pb.h"
#include "agt/v1/unlearning.grpc.pb.h"

namespace grpc {
class Channel;
class ClientContext;
class Status;
}  // namespace grpc

namespace agt::client {

// Upload chunks carry at most this many bytes (the API's limit per message).
inline constexpr size_t kUploadChunkBytes = size_t{1} << 20;

struct ClientOptions {
  // "host:port" (any gRPC target string works: "dns:///host:port", "unix:/path").
  std::string target = "127.0.0.1:50051";
  // Bearer token; empty sends no authorization metadata (the server's local
  // single-user mode needs none).
  std::string token;
  // false: plaintext (fine on loopback; the server's local mode only listens
  // there). true: TLS, verifying the server against tls_ca_file (PEM), or the
  // system's roots when that is empty.
  bool tls = false;
  std::string tls_ca_file;
  // Overrides the name checked against the server's certificate (tests, or
  // addressing a server by IP); empty = the host of `target`.
  std::string tls_server_name;
  // Deadline of every unary call and of uploads; absl::InfiniteDuration() for none.
  absl::Duration deadline = absl::Seconds(30);
  // Deadline of WatchJob streams; infinite by default.
  absl::Duration watch_deadline = absl::InfiniteDuration();
  // Largest response accepted (exported models can be large); bytes.
  int max_receive_bytes = 256 << 20;
};

// Serving status of the standard gRPC health service (grpc.health.v1).
enum class HealthStatus { kUnknown = 0, kServing = 1, kNotServing = 2, kServiceUnknown = 3 };

// "SERVING", "NOT_SERVING", ...
const char* HealthStatusName(HealthStatus status);

// The gRPC status as an absl::Status with the same code and message, and
// the server's google.rpc details attached (read them with ErrorDetailsOf,
// client/lib/error_details.h).
absl::Status FromGrpcStatus(const grpc::Status& status);

class Client {
 public:
  // Builds the channel; does not connect yet (the first call does). Fails with
  // InvalidArgument on an empty target and NotFound when tls_ca_file cannot
  // be read.
  static absl::StatusOr<std::unique_ptr<Client>> Create(const ClientOptions& options);

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client();

  const ClientOptions& options() const { return options_; }

  // --- ModelArtifactService ---
  // Reads the file at `path`, fills metadata.size_bytes and .sha256 (so the
  // server refuses an oversized upload before any byte and checks the
  // bytes it receives), and streams it in chunks of kUploadChunkBytes.
  absl::StatusOr<agt::v1::UploadModelArtifactResponse> UploadModelArtifactFile(
      agt::v1::ModelArtifactMetadata metadata, const std::string& path) const;
  absl::StatusOr<agt::v1::ListModelArtifactsResponse> ListModelArtifacts(
      const agt::v1::ListModelArtifactsRequest& request) const;
  absl::StatusOr<agt::v1::GetModelArtifactResponse> GetModelArtifact(
      const agt::v1::GetModelArtifactRequest& request) const;
  absl::StatusOr<agt::v1::DeleteModelArtifactResponse> DeleteModelArtifact(
      const agt::v1::DeleteModelArtifactRequest& request) const;

  // --- DatasetService ---
  // Streams `metadata` and then `data` in chunks of at most kUploadChunkBytes.
  absl::StatusOr<agt::v1::UploadDatasetResponse> UploadDataset(
      const agt::v1::DatasetMetadata& metadata, absl::string_view data) const;
  // The same, reading the file at `path` one chunk at a time (the file is
  // never held in memory whole) and declaring its size (metadata.size_bytes,
  // unless set) so that the server can refuse an oversized file up front.
  // NotFound when it cannot be opened.
  absl::StatusOr<agt::v1::UploadDatasetResponse> UploadDatasetFile(
      const agt::v1::DatasetMetadata& metadata, const std::string& path) const;
  absl::StatusOr<agt::v1::ListDatasetsResponse> ListDatasets(
      const agt::v1::ListDatasetsRequest& request) const;
  absl::StatusOr<agt::v1::GetDatasetResponse> GetDataset(
      const agt::v1::GetDatasetRequest& request) const;
  absl::StatusOr<agt::v1::DeleteDatasetResponse> DeleteDataset(
      const agt::v1::DeleteDatasetRequest& request) const;

  // --- TrainingService ---
  absl::StatusOr<agt::v1::SubmitTrainingJobResponse> SubmitTrainingJob(
      const agt::v1::SubmitTrainingJobRequest& request) const;
  absl::StatusOr<agt::v1::GetJobResponse> GetJob(const agt::v1::GetJobRequest& request) const;
  absl::StatusOr<agt::v1::ListJobsResponse> ListJobs(const agt::v1::ListJobsRequest& request) const;
  absl::StatusOr<agt::v1::CancelJobResponse> CancelJob(
      const agt::v1::CancelJobRequest& request) const;
  absl::StatusOr<agt::v1::DeleteJobResponse> DeleteJob(
      const agt::v1::DeleteJobRequest& request) const;
  absl::StatusOr<agt::v1::GetTrainingHistoryResponse> GetTrainingHistory(
      const agt::v1::GetTrainingHistoryRequest& request) const;
  // Calls `on_event` for every event in order, on the calling thread. The
  // callback returns false to stop watching early (the stream is cancelled
  // and the call returns the last event seen). Returns the last event once
  // the server ends the stream (the job reached a final state); an error if
  // the stream failed, or ended without any event.
  using JobEventCallback = std::function<bool(const agt::v1::JobEvent&)>;
  absl::StatusOr<agt::v1::JobEvent> WatchJob(const agt::v1::WatchJobRequest& request,
                                             const JobEventCallback& on_event) const;

  // --- ModelService ---
  absl::StatusOr<agt::v1::GetModelResponse> GetModel(const agt::v1::GetModelRequest& request) const;
  absl::StatusOr<agt::v1::ListModelsResponse> ListModels(
      const agt::v1::ListModelsRequest& request) const;
  absl::StatusOr<agt::v1::ExportModelResponse> ExportModel(
      const agt::v1::ExportModelRequest& request) const;
  absl::StatusOr<agt::v1::CertifyPredictionsResponse> CertifyPredictions(
      const agt::v1::CertifyPredictionsRequest& request) const;
  absl::StatusOr<agt::v1::CertifyDatasetResponse> CertifyDataset(
      const agt::v1::CertifyDatasetRequest& request) const;
  absl::StatusOr<agt::v1::DeleteModelResponse> DeleteModel(
      const agt::v1::DeleteModelRequest& request) const;
  // The whole ONNX file of ExportModelOnnx's chunks, checked against the
  // size and SHA-256 the server sends first (DataLoss when they differ).
  absl::StatusOr<std::string> ExportModelOnnx(const agt::v1::ExportModelOnnxRequest& request) const;

  // --- UnlearningService ---
  absl::StatusOr<agt::v1::RequestDeletionResponse> RequestDeletion(
      const agt::v1::RequestDeletionRequest& request) const;
  absl::StatusOr<agt::v1::GetUnlearningStatusResponse> GetUnlearningStatus(
      const agt::v1::GetUnlearningStatusRequest& request) const;
  absl::StatusOr<agt::v1::CheckUnlearningResponse> CheckUnlearning(
      const agt::v1::CheckUnlearningRequest& request) const;
  absl::StatusOr<agt::v1::ListDeletionsResponse> ListDeletions(
      const agt::v1::ListDeletionsRequest& request) const;
  absl::StatusOr<agt::v1::RetrainInPlaceResponse> RetrainInPlace(
      const agt::v1::RetrainInPlaceRequest& request) const;

  // --- PrivacyService ---
  absl::StatusOr<agt::v1::PrivatePredictResponse> PrivatePredict(
      const agt::v1::PrivatePredictRequest& request) const;
  absl::StatusOr<agt::v1::GetPrivacyBudgetResponse> GetPrivacyBudget(
      const agt::v1::GetPrivacyBudgetRequest& request) const;

  // --- grpc.health.v1.Health/Check --- (`service` "" = the whole server).
  // Health checks carry no token (the server serves them without one).
  absl::StatusOr<HealthStatus> CheckHealth(const std::string& service = "") const;

 private:
  Client(ClientOptions options, std::shared_ptr<grpc::Channel> channel);

  // Sets the token and a deadline (`deadline` infinite = none).
  void Prepare(grpc::ClientContext& context, absl::Duration deadline) const;
  // Shared body of both uploads: `next` fills the next chunk and returns
  // false at the end (or an error).
  using ChunkSource = std::function<absl::StatusOr<bool>(std::string&)>;
  absl::StatusOr<agt::v1::UploadDatasetResponse> Upload(const agt::v1::DatasetMetadata& metadata,
                                                        const ChunkSource& next) const;

  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<agt::v1::DatasetService::Stub> datasets_;
  std::unique_ptr<agt::v1::ModelArtifactService::Stub> artifacts_;
  std::unique_ptr<agt::v1::TrainingService::Stub> training_;
  std::unique_ptr<agt::v1::ModelService::Stub> models_;
  std::unique_ptr<agt::v1::UnlearningService::Stub> unlearning_;
  std::unique_ptr<agt::v1::PrivacyService::Stub> privacy_;
};

}  // namespace agt::client

#endif  // AGT_CLIENT_LIB_CLIENT_H_
