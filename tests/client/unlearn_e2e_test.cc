// agtctl unlearn request|status|check|ledger|retrain against the real
// agt-server: a model trained under removal budgets through agtctl, deletions
// counted per batch, accepted then past max N with --retrain, status tables
// and --json, check on a CSV, the in-place retraining asked for by an
// operator, usage and server errors mapped to exit codes, and --help.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "tests/client/agtctl_fixture.h"
#include "tests/client/process.h"

namespace agt::client {
namespace {

#if defined(AGT_SERVER_BINARY) && defined(AGTCTL_BINARY)

using testing::BackgroundProcess;
using testing::CommandResult;
using testing::RunCommand;

// 60 points of two separated blobs, label last.
std::string BlobsCsv() {
  std::string csv = "x0,x1,y\n";
  for (int i = 0; i < 60; ++i) {
    const int label = i % 2;
    const double shift = label == 0 ? -2.0 : 2.0;
    absl::StrAppend(&csv, shift + 0.01 * (i % 7), ",", shift - 0.02 * (i % 5), ",", label, "\n");
  }
  return csv;
}

constexpr char kJob[] = R"({
  "name": "blobs-unlearn",
  "architecture": {"layers": [{"dense": {"in": 2, "out": 1}}]},
  "loss": "LOSS_BINARY_CROSS_ENTROPY",
  "batch_size": 20,
  "epochs": 2,
  "optimizer": {"learning_rate": 0.5},
  "perturbation": {"kind": "PERTURBATION_KIND_REMOVAL"},
  "budgets": [{"n": 1}, {"n": 3}],
  "seed": 1
})";

class UnlearnE2eTest : public testing::AgtctlServerTest {
 protected:
  void SetUp() override {
    AgtctlServerTest::SetUp();
    ASSERT_NO_FATAL_FAILURE(StartServer());
  }

  // Uploads the blobs and trains kJob; returns the model id.
  std::string TrainModel() { return AgtctlServerTest::TrainModel("blobs", BlobsCsv(), kJob); }
};

TEST_F(UnlearnE2eTest, RequestStatusCheckAndRetrain) {
  const std::string model = TrainModel();
  ASSERT_TRUE(absl::StartsWith(model, "mdl-")) << model;

  CommandResult status = Ctl({"unlearn", "status", model});
  EXPECT_EXIT_CODE(status, 0);
  EXPECT_TRUE(absl::StrContains(status.out, "ACTIVE")) << status.out;
  EXPECT_TRUE(absl::StrContains(status.out, "0 (at most 0 in one batch, max 3)")) << status.out;

  CommandResult request = Ctl({"unlearn", "request", model, "4", "5,6"});
  EXPECT_EXIT_CODE(request, 0);
  // Rows 4, 5, 6 are all in batch 0 (60 rows, batches of 20).
  EXPECT_TRUE(absl::StrContains(request.out, "3 (at most 3 in one batch, max 3)")) << request.out;

  const std::string inputs = Write("inputs.csv", "x0,x1\n-2,-2\n2,2\n0,0\n");
  CommandResult check = Ctl({"unlearn", "check", model, inputs});
  EXPECT_EXIT_CODE(check, 0);
  EXPECT_TRUE(absl::StrContains(check.out, "d = 3 deletions, at most m = 3 in one batch"))
      << check.out;
  CommandResult check_json = Ctl({"--json", "unlearn", "check", model, inputs});
  EXPECT_EXIT_CODE(check_json, 0);
  const nlohmann::json checked = nlohmann::json::parse(check_json.out);
  ASSERT_EQ(checked["points"].size(), 3u);
  EXPECT_EQ(checked["deletions"].dump(), "\"3\"");  // proto3 JSON int64

  const std::string ids = Write("ids.txt", "7\n8 9\n");
  CommandResult past = Ctl({"--json", "unlearn", "request", model, "--ids-file", ids, "--retrain"});
  EXPECT_EXIT_CODE(past, 0);
  const nlohmann::json refused = nlohmann::json::parse(past.out);
  EXPECT_EQ(refused["retraining_required"], true);
  ASSERT_TRUE(refused.contains("retraining_job_id")) << past.out;
  const std::string job = refused["retraining_job_id"];
  CommandResult wait = Ctl({"jobs", "watch", job});
  EXPECT_EXIT_CODE(wait, 0);

  CommandResult after = Ctl({"--json", "unlearn", "status", model});
  EXPECT_EXIT_CODE(after, 0);
  const nlohmann::json superseded = nlohmann::json::parse(after.out);
  EXPECT_EQ(superseded["state"], "UNLEARNING_STATE_SUPERSEDED") << after.out;
  EXPECT_TRUE(absl::StartsWith(std::string(superseded["successor_model_id"]), "mdl-"));
  CommandResult quiet = Ctl({"-q", "unlearn", "status", model});
  EXPECT_EQ(Line(quiet.out), "SUPERSEDED");

  CommandResult ledger = Ctl({"unlearn", "ledger", model});
  EXPECT_EXIT_CODE(ledger, 0);
  EXPECT_TRUE(absl::StrContains(ledger.out, "6 row(s) in the ledger, 3 accepted (d)"))
      << ledger.out;
  EXPECT_TRUE(absl::StrContains(ledger.out, "past max N")) << ledger.out;
  EXPECT_TRUE(absl::StrContains(ledger.out, "local")) << ledger.out;  // who: local mode
  CommandResult ledger_ids = Ctl({"-q", "unlearn", "ledger", model});
  EXPECT_EQ(ledger_ids.out, "4\n5\n6\n7\n8\n9\n");
  CommandResult ledger_json = Ctl({"--json", "unlearn", "ledger", model});
  EXPECT_EXIT_CODE(ledger_json, 0);
  const nlohmann::json listed = nlohmann::json::parse(ledger_json.out);
  ASSERT_EQ(listed["deletions"].size(), 6u);
  EXPECT_EQ(listed["deletions"][0]["accepted"], true);
  EXPECT_EQ(listed["deletions"][5]["accepted"], false);  // row 9, past max N
  EXPECT_EQ(listed["deletions"][5]["batch"], "0");

  // The retraining succeeded without every ledger row: asking for it again
  // returns that job; a new deletion on the model makes a new one.
  CommandResult again = Ctl({"-q", "unlearn", "retrain", model});
  EXPECT_EXIT_CODE(again, 0);
  EXPECT_EQ(Line(again.out), job);
  EXPECT_EXIT_CODE(Ctl({"unlearn", "request", model, "30"}), 0);  // batch 1
  CommandResult fresh = Ctl({"unlearn", "retrain", model});
  EXPECT_EXIT_CODE(fresh, 0);
  EXPECT_TRUE(absl::StrContains(fresh.out, "removed rows")) << fresh.out;
  EXPECT_TRUE(absl::StrContains(fresh.out, "7")) << fresh.out;
  EXPECT_FALSE(absl::StrContains(fresh.out, job)) << fresh.out;
}

TEST_F(UnlearnE2eTest, ErrorsAndHelp) {
  CommandResult help = Ctl({"unlearn", "request", "--help"});
  EXPECT_EXIT_CODE(help, 0);
  EXPECT_TRUE(absl::StrContains(help.out + help.err, "--retrain")) << help.out << help.err;
  CommandResult retrain_help = Ctl({"unlearn", "retrain", "--help"});
  EXPECT_EXIT_CODE(retrain_help, 0);
  EXPECT_TRUE(absl::StrContains(retrain_help.out + retrain_help.err, "in place"));
  EXPECT_EXIT_CODE(Ctl({"unlearn", "retrain"}), 2);
  EXPECT_EXIT_CODE(Ctl({"unlearn", "retrain", "mdl-unknown"}), 3);
  EXPECT_EXIT_CODE(Ctl({"unlearn", "request", "mdl-x"}), 2);       // no row ids
  EXPECT_EXIT_CODE(Ctl({"unlearn", "request", "mdl-x", "a"}), 2);  // not a number
  EXPECT_EXIT_CODE(Ctl({"unlearn", "status", "mdl-unknown"}), 3);  // not found
  EXPECT_EXIT_CODE(Ctl({"unlearn", "ledger", "mdl-unknown"}), 3);
  EXPECT_EXIT_CODE(Ctl({"unlearn", "ledger"}), 2);
  EXPECT_EXIT_CODE(Ctl({"unlearn", "check", "mdl-x", (dir_ / "missing.csv").string()}), 2);
  const std::string model = TrainModel();
  CommandResult bad_row = Ctl({"unlearn", "request", model, "999"});
  EXPECT_EXIT_CODE(bad_row, 2);
  EXPECT_TRUE(absl::StrContains(bad_row.err, "999")) << bad_row.err;
}

#endif

}  // namespace
}  // namespace agt::client
