#include "server/observability/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace agt::server {
namespace {

std::atomic<LogFormat> g_format{LogFormat::kJson};
constexpr auto kReplace = nlohmann::json::error_handler_t::replace;

std::mutex& WriteMutex() {
  static std::mutex* mu = new std::mutex;  // never destroyed: logging at exit stays safe
  return *mu;
}

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

// Text form of one field's value: strings bare unless they hold spaces,
// quotes or '=' (then JSON-quoted), everything else as JSON.
std::string TextValue(const nlohmann::json& value) {
  if (!value.is_string()) return value.dump(-1, ' ', false, kReplace);
  const std::string& s = value.get_ref<const std::string&>();
  const bool plain = !s.empty() && s.find_first_of(" \t\n\"=") == std::string::npos;
  return plain ? s : value.dump(-1, ' ', false, kReplace);
}

}  // namespace

absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view name) {
  if (name == "json") return LogFormat::kJson;
  if (name == "text") return LogFormat::kText;
  return absl::InvalidArgumentError(
      absl::StrCat("--log-format: '", name, "' must be json or text"));
}

void SetLogFormat(LogFormat format) { g_format.store(format, std::memory_order_relaxed); }

std::string LogTimeNow() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const int64_t ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  return absl::StrFormat("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                         utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(ms));
}

std::string FormatLogRecord(LogFormat format, LogLevel level, absl::string_view event,
                            const nlohmann::json& fields, absl::string_view time) {
  if (format == LogFormat::kJson) {
    // time, level and event first, for people reading the raw lines; the
    // event's fields follow in key order.
    nlohmann::json head = nlohmann::json::object();
    head["time"] = std::string(time);
    std::string line = head.dump();
    line.pop_back();
    absl::StrAppend(&line, ",\"level\":\"", LevelName(level), "\",\"event\":",
                    nlohmann::json(std::string(event)).dump(-1, ' ', false, kReplace));
    if (fields.is_object()) {
      nlohmann::json rest = fields;
      rest.erase("time");
      rest.erase("level");
      rest.erase("event");
      // Invalid UTF-8 (a client's metadata, say) is replaced, never thrown on.
      const std::string tail = rest.dump(-1, ' ', false, kReplace);
      if (tail.size() > 2) absl::StrAppend(&line, ",", tail.substr(1, tail.size() - 2));
    }
    line.push_back('}');
    return line;
  }
  std::string line = absl::StrCat(time, " ", LevelName(level), " ", event);
  if (fields.is_object()) {
    for (const auto& [key, value] : fields.items()) {
      if (key == "time" || key == "level" || key == "event") continue;
      absl::StrAppend(&line, " ", key, "=", TextValue(value));
    }
  }
  return line;
}

void Log(LogLevel level, absl::string_view event, nlohmann::json fields) {
  std::string line =
      FormatLogRecord(g_format.load(std::memory_order_relaxed), level, event, fields, LogTimeNow());
  line.push_back('\n');
  std::lock_guard<std::mutex> lock(WriteMutex());
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace agt::server
