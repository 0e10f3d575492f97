// The audit log (`agt-server --audit-log PATH`): one JSON object per line,
// appended to PATH and flushed to the operating system after every record,
// for every answer that releases something about the training data or
// decides about it: private predictions (PrivatePredict), deletion decisions
// (RequestDeletion, CheckUnlearning, RetrainInPlace) and certificates served
// (CertifyPredictions, CertifyDataset), refusals of them included. Each
// record says who (tenant, client, role), when, which model, what was asked
// and what was answered (or the gRPC code and message of the refusal); the
// fields of each method are listed in server/README.md ("Audit log").
// Records are written by the RPC observer (rpc_observer.h), which sees every
// request and response, so the services themselves do not know the log.
//
// Thread-safety: Append may be called from any thread; records never
// interleave.
#ifndef AGT_SERVER_OBSERVABILITY_AUDIT_LOG_H_
#define AGT_SERVER_OBSERVABILITY_AUDIT_LOG_H_

#include <cstdio>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace agt::server {

class AuditLog {
 public:
  // Opens `path` for appending (created 0600 if missing); NotFound /
  // PermissionDenied naming the path when it cannot be opened.
  static absl::StatusOr<std::unique_ptr<AuditLog>> Open(const std::string& path);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Writes `record` (a JSON object; "time" is added) as one line and
  // flushes it. A failed write is reported on the server log, once per
  // failure streak, and does not fail the call being audited.
  void Append(nlohmann::json record);

  const std::string& path() const { return path_; }

 private:
  AuditLog(std::string path, std::FILE* file) : path_(std::move(path)), file_(file) {}

  const std::string path_;
  std::mutex mu_;
  std::FILE* const file_;  // guarded by mu_
  bool failing_ = false;   // guarded by mu_
};

}  // namespace agt::server

#endif  // AGT_SERVER_OBSERVABILITY_AUDIT_LOG_H_
