#include "server/observability/audit_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/observability/log.h"

namespace agt::server {

absl::StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(const std::string& path) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int error = errno;
    const std::string message =
        absl::StrCat("--audit-log '", path, "': cannot open for appending: ", std::strerror(error));
    if (error == EACCES || error == EPERM) return absl::PermissionDeniedError(message);
    return absl::NotFoundError(message);
  }
  std::FILE* file = fdopen(fd, "a");
  if (file == nullptr) {
    close(fd);
    return absl::InternalError(absl::StrCat("--audit-log '", path, "': fdopen failed"));
  }
  return std::unique_ptr<AuditLog>(new AuditLog(path, file));
}

AuditLog::~AuditLog() { std::fclose(file_); }

void AuditLog::Append(nlohmann::json record) {
  nlohmann::json line = nlohmann::json::object();
  line["time"] = LogTimeNow();
  if (record.is_object()) {
    for (auto& [key, value] : record.items()) {
      if (key != "time") line[key] = std::move(value);
    }
  }
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  text.push_back('\n');
  std::lock_guard<std::mutex> lock(mu_);
  const bool ok =
      std::fwrite(text.data(), 1, text.size(), file_) == text.size() && std::fflush(file_) == 0;
  if (!ok && !failing_) {
    Log(LogLevel::kError, "audit_write_failed", {{"path", path_}, {"error", std::strerror(errno)}});
  }
  failing_ = !ok;
}

}  // namespace agt::server
