// Unit tests of server/observability: the log record format, the Metrics
// class (width gauges of running jobs, their growth and removal, counters)
// and the audit log file.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "server/observability/audit_log.h"
#include "server/observability/log.h"
#include "server/observability/metrics.h"
#include "server/observability/rpc_observer.h"

namespace agt::server {
namespace {

using json = nlohmann::json;

TEST(LogRecordTest, JsonRecordStartsWithTimeLevelEventAndKeepsFields) {
  const std::string line =
      FormatLogRecord(LogFormat::kJson, LogLevel::kWarn, "rpc",
                      {{"code", "NOT_FOUND"}, {"latency_ms", 1.5}}, "2026-01-02T03:04:05.678Z");
  EXPECT_TRUE(
      absl::StartsWith(line, R"({"time":"2026-01-02T03:04:05.678Z","level":"warn","event":"rpc",)"))
      << line;
  const json parsed = json::parse(line);
  EXPECT_EQ(parsed["code"], "NOT_FOUND");
  EXPECT_EQ(parsed["latency_ms"], 1.5);
  EXPECT_EQ(parsed.size(), 5u);
}

TEST(LogRecordTest, FieldsCannotOverrideTheHeadAndBadUtf8DoesNotThrow) {
  const std::string line = FormatLogRecord(
      LogFormat::kJson, LogLevel::kInfo, "x",
      {{"event", "forged"}, {"level", "error"}, {"peer", std::string("\xff\xfe")}}, "t");
  const json parsed = json::parse(line);
  EXPECT_EQ(parsed["event"], "x");
  EXPECT_EQ(parsed["level"], "info");
  EXPECT_TRUE(parsed["peer"].is_string());
  EXPECT_EQ(FormatLogRecord(LogFormat::kJson, LogLevel::kInfo, "stopped", nullptr, "t"),
            R"({"time":"t","level":"info","event":"stopped"})");
}

TEST(LogRecordTest, TextRecordQuotesOnlyValuesThatNeedIt) {
  EXPECT_EQ(FormatLogRecord(LogFormat::kText, LogLevel::kError, "job_failed",
                            {{"job", "job-1"}, {"error", "out of memory"}, {"step", 3}}, "t"),
            R"(t error job_failed error="out of memory" job=job-1 step=3)");
}

TEST(LogRecordTest, ParseLogFormatNamesTheBadValue) {
  EXPECT_EQ(*ParseLogFormat("json"), LogFormat::kJson);
  EXPECT_EQ(*ParseLogFormat("text"), LogFormat::kText);
  const absl::StatusOr<LogFormat> bad = ParseLogFormat("xml");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "'xml'"));
}

// The value of the one series of `name` with exactly `labels` ("" for
// none) in `text`; NaN when absent.
double SeriesValue(const std::string& text, const std::string& name, const std::string& labels) {
  const std::string prefix = labels.empty() ? name + " " : name + "{" + labels + "} ";
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, prefix)) return std::stod(std::string(line.substr(prefix.size())));
  }
  return std::nan("");
}

TEST(MetricsTest, WidthGrowthIsRelativeToTheFirstIterationSeenAndEndsWithTheJob) {
  Metrics metrics;
  metrics.TrainingIteration("job-a", 0.01, {{1, 0}, {4, 0}}, {2.0, 8.0});
  metrics.TrainingIteration("job-a", 0.03, {{1, 0}, {4, 0}}, {3.0, 40.0});
  metrics.TrainingIteration("job-b", 0.02, {{0, 0}}, {0.0});
  std::string text = metrics.Scrape();
  EXPECT_EQ(SeriesValue(text, "agt_job_bound_width", R"(job="job-a",label_n="0",n="4")"), 40.0)
      << text;
  EXPECT_EQ(SeriesValue(text, "agt_job_bound_width_growth", R"(job="job-a",label_n="0",n="4")"),
            5.0);
  EXPECT_EQ(SeriesValue(text, "agt_job_bound_width_growth", R"(job="job-a",label_n="0",n="1")"),
            1.5);
  // A budget-0 box of width 0 has not grown.
  EXPECT_EQ(SeriesValue(text, "agt_job_bound_width_growth", R"(job="job-b",label_n="0",n="0")"),
            1.0);
  EXPECT_EQ(SeriesValue(text, "agt_training_iterations_total", ""), 3.0);
  EXPECT_EQ(SeriesValue(text, "agt_certified_step_seconds_count", ""), 3.0);
  EXPECT_NEAR(SeriesValue(text, "agt_certified_step_seconds_sum", ""), 0.06, 1e-12);

  metrics.JobEnded("job-a");
  metrics.JobEnded("job-unknown");  // harmless
  text = metrics.Scrape();
  EXPECT_FALSE(absl::StrContains(text, "job-a")) << text;
  EXPECT_TRUE(absl::StrContains(text, "job-b"));
}

TEST(MetricsTest, CountersAndTheJobStateCounter) {
  Metrics metrics;
  metrics.RpcFinished("/agt.v1.ModelService/GetModel", "OK", 0.001);
  metrics.RpcFinished("/agt.v1.ModelService/GetModel", "OK", 0.002);
  metrics.RpcFinished("/agt.v1.ModelService/GetModel", "NOT_FOUND", 0.001);
  metrics.PrivacyEpsilonSpent("acme", 0.25);
  metrics.PrivacyEpsilonSpent("acme", 0.5);
  metrics.PrivacyEpsilonSpent("acme", -1);  // never subtracts
  metrics.DeletionsAccepted(3);
  metrics.DeletionsAccepted(0);
  metrics.JobVacuous();
  metrics.SetJobStateCounter([]() -> absl::StatusOr<std::map<std::string, int64_t>> {
    return std::map<std::string, int64_t>{{"QUEUED", 2}, {"RUNNING", 1}};
  });
  std::string text = metrics.Scrape();
  EXPECT_EQ(SeriesValue(text, "agt_rpc_requests_total",
                        R"(code="OK",method="/agt.v1.ModelService/GetModel")"),
            2.0)
      << text;
  EXPECT_EQ(SeriesValue(text, "agt_rpc_requests_total",
                        R"(code="NOT_FOUND",method="/agt.v1.ModelService/GetModel")"),
            1.0);
  EXPECT_EQ(SeriesValue(text, "agt_rpc_latency_seconds_count",
                        R"(method="/agt.v1.ModelService/GetModel")"),
            3.0);
  EXPECT_EQ(SeriesValue(text, "agt_privacy_epsilon_spent_total", R"(tenant="acme")"), 0.75);
  EXPECT_EQ(SeriesValue(text, "agt_deletions_accepted_total", ""), 3.0);
  EXPECT_EQ(SeriesValue(text, "agt_jobs_vacuous_total", ""), 1.0);
  EXPECT_EQ(SeriesValue(text, "agt_jobs", R"(state="QUEUED")"), 2.0);
  EXPECT_EQ(SeriesValue(text, "agt_jobs", R"(state="RUNNING")"), 1.0);
  metrics.SetJobStateCounter(nullptr);
  EXPECT_FALSE(absl::StrContains(metrics.Scrape(), "agt_jobs{"));
}

TEST(MetricsTest, ServeRefusesAnAddressInUse) {
  Metrics first;
  ASSERT_TRUE(first.Serve("127.0.0.1:0").ok());
  ASSERT_GT(first.port(), 0);
  Metrics second;
  const absl::Status s = second.Serve("127.0.0.1:" + std::to_string(first.port()));
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "--metrics-listen")) << s;
}

TEST(AuditLogTest, AppendsOneFlushedJsonLinePerRecord) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("agt_audit_" + std::to_string(getpid()))).string();
  std::filesystem::remove(path);
  {
    absl::StatusOr<std::unique_ptr<AuditLog>> log = AuditLog::Open(path);
    ASSERT_TRUE(log.ok()) << log.status();
    (*log)->Append({{"event", "certificate"}, {"model", "m1"}});
    // Flushed per record: readable before the log is closed.
    std::ifstream in(path);
    std::string line;
    ASSERT_TRUE(std::getline(in, line));
    EXPECT_EQ(json::parse(line)["model"], "m1");
  }
  {
    absl::StatusOr<std::unique_ptr<AuditLog>> log = AuditLog::Open(path);  // appends
    ASSERT_TRUE(log.ok());
    (*log)->Append({{"event", "privacy_release"}, {"time", "forged"}});
  }
  std::ifstream in(path);
  std::string a, b, c;
  ASSERT_TRUE(std::getline(in, a) && std::getline(in, b));
  EXPECT_FALSE(std::getline(in, c));
  EXPECT_EQ(json::parse(a)["event"], "certificate");
  EXPECT_EQ(json::parse(b)["event"], "privacy_release");
  EXPECT_NE(json::parse(b)["time"], "forged");
  std::filesystem::remove(path);
  EXPECT_FALSE(AuditLog::Open("/nonexistent-dir/audit.jsonl").ok());
}

TEST(RequestIdTest, OnlyPlainTokensUpTo128Characters) {
  EXPECT_TRUE(IsValidRequestId("req-1.a_b:c"));
  EXPECT_TRUE(IsValidRequestId(std::string(128, 'a')));
  EXPECT_FALSE(IsValidRequestId(std::string(129, 'a')));
  EXPECT_FALSE(IsValidRequestId(""));
  EXPECT_FALSE(IsValidRequestId("has space"));
  EXPECT_FALSE(IsValidRequestId("quote\""));
  EXPECT_STREQ(StatusCodeName(0), "OK");
  EXPECT_STREQ(StatusCodeName(16), "UNAUTHENTICATED");
  EXPECT_STREQ(StatusCodeName(99), "UNKNOWN");
}

}  // namespace
}  // namespace agt::server
