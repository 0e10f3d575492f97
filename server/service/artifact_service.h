// agt.v1.ModelArtifactService: upload, get, list and delete model artifacts
// (pre-trained networks as ONNX files) of the caller's tenant. A thin
// adapter: authenticate and authorize (CallAuth; uploads and deletes need
// the write role, as for datasets), receive the stream within the limits,
// check the checksum, parse the file (domain/model_artifacts.h), call the
// ArtifactStore and map statuses.
//
// UploadModelArtifact is served by the callback API, as dataset uploads are
// (no thread waits on a slow stream): each upload holds a slot of its own
// UploadAdmission (the same per-tenant and total counts and idle timeout as
// dataset uploads, counted apart from them), is ended with DEADLINE_EXCEEDED
// when no message arrives for the idle timeout or the call passes its
// deadline (the caller's, or default_deadline), and with CANCELLED when the
// call is cancelled. Hashing, parsing and storing the finished upload run on
// a thread of their own.
//
// Ownership: the store and auth must outlive the service.
// Thread-safety: gRPC calls the methods concurrently; the admission is
// thread-safe and the service holds no other mutable state.
#ifndef AGT_SERVER_SERVICE_ARTIFACT_SERVICE_H_
#define AGT_SERVER_SERVICE_ARTIFACT_SERVICE_H_

#include <chrono>
#include <cstdint>

#include "agt/v1/artifacts.grpc.pb.h"
#include "server/service/call_auth.h"
#include "server/service/upload_admission.h"
#include "server/store/artifact_store.h"

namespace agt::server {

inline constexpr int kMaxArtifactNameLength = 128;
// ErrorInfo reasons of this service's refusals.
inline constexpr char kReasonArtifactSizeLimit[] = "ARTIFACT_SIZE_LIMIT";
inline constexpr char kReasonArtifactChecksum[] = "ARTIFACT_CHECKSUM_MISMATCH";

struct ArtifactLimits {
  int64_t max_bytes = int64_t{64} << 20;       // --max-artifact-mib
  int64_t max_chunk_bytes = int64_t{1} << 20;  // as for datasets
};

class ModelArtifactServiceImpl final
    : public agt::v1::ModelArtifactService::WithCallbackMethod_UploadModelArtifact<
          agt::v1::ModelArtifactService::Service> {
 public:
  ModelArtifactServiceImpl(
      ArtifactStore* store, const CallAuth* auth, ArtifactLimits limits,
      UploadAdmissionOptions admission = {},
      std::chrono::milliseconds default_deadline = std::chrono::milliseconds(0))
      : store_(store),
        auth_(auth),
        limits_(limits),
        admission_(admission),
        default_deadline_(default_deadline) {}

  grpc::ServerReadReactor<agt::v1::UploadModelArtifactRequest>* UploadModelArtifact(
      grpc::CallbackServerContext* context,
      agt::v1::UploadModelArtifactResponse* response) override;
  grpc::Status GetModelArtifact(grpc::ServerContext* context,
                                const agt::v1::GetModelArtifactRequest* request,
                                agt::v1::GetModelArtifactResponse* response) override;
  grpc::Status ListModelArtifacts(grpc::ServerContext* context,
                                  const agt::v1::ListModelArtifactsRequest* request,
                                  agt::v1::ListModelArtifactsResponse* response) override;
  grpc::Status DeleteModelArtifact(grpc::ServerContext* context,
                                   const agt::v1::DeleteModelArtifactRequest* request,
                                   agt::v1::DeleteModelArtifactResponse* response) override;

 private:
  class UploadReactor;
  // Checks a complete upload (size, SHA-256), parses it and stores it.
  absl::StatusOr<agt::v1::ModelArtifact> StoreUpload(const Principal& caller,
                                                     const agt::v1::ModelArtifactMetadata& metadata,
                                                     const std::string& content);

  ArtifactStore* const store_;
  const CallAuth* const auth_;
  const ArtifactLimits limits_;
  UploadAdmission admission_;
  const std::chrono::milliseconds default_deadline_;
};

// The artifact as the API shows it: the record's fields over its stored
// summary (a serialized agt.v1.ModelArtifact of the parsed network).
// DataLoss when the summary does not parse.
absl::StatusOr<agt::v1::ModelArtifact> ArtifactToProto(const ArtifactRecord& record);

}  // namespace agt::server

#endif  // AGT_SERVER_SERVICE_ARTIFACT_SERVICE_H_
