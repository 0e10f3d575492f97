// The server's log: one record per line on stderr, either a JSON object
// (the default, for log collectors) or a line of text for people
// (`--log-format text`). Every record has a time (UTC, RFC 3339 with
// milliseconds), a level (info, warn, error) and an event name; the rest are
// the event's fields. Events and their fields are listed in server/README.md
// ("Logs").
//
// The log is process-wide because the places that write it (gRPC
// interceptors, job workers, the status mapping of internal errors) are many
// and all write to the one stderr; only its format is configured, once, at
// startup.
//
// Thread-safety: every function may be called from any thread; records are
// written whole (one write under a mutex) and never interleave.
#ifndef AGT_SERVER_OBSERVABILITY_LOG_H_
#define AGT_SERVER_OBSERVABILITY_LOG_H_

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace agt::server {

enum class LogFormat { kJson, kText };
enum class LogLevel { kInfo, kWarn, kError };

// "json" or "text"; InvalidArgument naming the value otherwise.
absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view name);

// Set once at startup, before other threads log (default kJson).
void SetLogFormat(LogFormat format);

// Writes one record: `fields` must be a JSON object (or null for none); its
// keys "time", "level" and "event" are overwritten.
void Log(LogLevel level, absl::string_view event, nlohmann::json fields = nullptr);

// One line of a record as written in `format` (for tests and for Log).
std::string FormatLogRecord(LogFormat format, LogLevel level, absl::string_view event,
                            const nlohmann::json& fields, absl::string_view time);

// The current UTC time as 2026-01-02T03:04:05.678Z.
std::string LogTimeNow();

}  // namespace agt::server

#endif  // AGT_SERVER_OBSERVABILITY_LOG_H_
