// agtctl unlearn request|status|check against the real agt-server: a model
// trained under removal budgets through agtctl, deletions accepted then past
// max N with --retrain, status tables and --json, check on a CSV, usage and
// server errors mapped to exit codes, and --help.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "tests/client/process.h"

namespace agt::client {
namespace {

#if defined(AGT_SERVER_BINARY) && defined(AGTCTL_BINARY)

using testing::BackgroundProcess;
using testing::CommandResult;
using testing::RunCommand;

#define EXPECT_EXIT_CODE(result, code) \
  EXPECT_EQ((result).exit_code, code) << "stdout:\n" << (result).out << "stderr:\n" << (result).err

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

class UnlearnE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           absl::StrCat("agtctl_unlearn_", getpid(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    std::vector<std::string> argv = {AGT_SERVER_BINARY, "--listen", "127.0.0.1:0", "--db",
                                     (dir_ / "agt.db").string()};
    target_ = server_.StartAndWaitFor(argv, "listening on ", std::chrono::seconds(30),
                                      (dir_ / "server.err").string());
    ASSERT_FALSE(target_.empty()) << "agt-server did not start";
  }
  void TearDown() override {
    server_.Stop(std::chrono::seconds(10));
    std::filesystem::remove_all(dir_);
  }

  CommandResult Ctl(std::vector<std::string> args) {
    std::vector<std::string> argv = {AGTCTL_BINARY, "--server", target_, "--timeout", "60"};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, {}, std::chrono::seconds(120));
  }

  std::string Write(const std::string& name, const std::string& text) {
    std::ofstream out(dir_ / name, std::ios::binary);
    out << text;
    return (dir_ / name).string();
  }

  static std::string Line(const std::string& out) {
    return std::string(absl::StripTrailingAsciiWhitespace(out));
  }

  // Uploads the blobs and trains; returns the model id.
  std::string TrainModel() {
    CommandResult upload =
        Ctl({"dataset", "upload", Write("blobs.csv", BlobsCsv()), "--name", "blobs", "-q"});
    EXPECT_EQ(upload.exit_code, 0) << upload.err;
    CommandResult train =
        Ctl({"train", Write("job.json", kJob), "--dataset", Line(upload.out), "--wait", "-q"});
    EXPECT_EQ(train.exit_code, 0) << train.out << train.err;
    CommandResult models = Ctl({"model", "list", "-q"});
    EXPECT_EQ(models.exit_code, 0) << models.err;
    return Line(models.out);
  }

  std::filesystem::path dir_;
  BackgroundProcess server_;
  std::string target_;
};

TEST_F(UnlearnE2eTest, RequestStatusCheckAndRetrain) {
  const std::string model = TrainModel();
  ASSERT_TRUE(absl::StartsWith(model, "mdl-")) << model;

  CommandResult status = Ctl({"unlearn", "status", model});
  EXPECT_EXIT_CODE(status, 0);
  EXPECT_TRUE(absl::StrContains(status.out, "ACTIVE")) << status.out;
  EXPECT_TRUE(absl::StrContains(status.out, "0 of max 3")) << status.out;

  CommandResult request = Ctl({"unlearn", "request", model, "4", "5,6"});
  EXPECT_EXIT_CODE(request, 0);
  EXPECT_TRUE(absl::StrContains(request.out, "3 of max 3")) << request.out;

  const std::string inputs = Write("inputs.csv", "x0,x1\n-2,-2\n2,2\n0,0\n");
  CommandResult check = Ctl({"unlearn", "check", model, inputs});
  EXPECT_EXIT_CODE(check, 0);
  EXPECT_TRUE(absl::StrContains(check.out, "d = 3")) << check.out;
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
}

TEST_F(UnlearnE2eTest, ErrorsAndHelp) {
  CommandResult help = Ctl({"unlearn", "request", "--help"});
  EXPECT_EXIT_CODE(help, 0);
  EXPECT_TRUE(absl::StrContains(help.out + help.err, "--retrain")) << help.out << help.err;
  EXPECT_EXIT_CODE(Ctl({"unlearn", "request", "mdl-x"}), 2);       // no row ids
  EXPECT_EXIT_CODE(Ctl({"unlearn", "request", "mdl-x", "a"}), 2);  // not a number
  EXPECT_EXIT_CODE(Ctl({"unlearn", "status", "mdl-unknown"}), 3);  // not found
  EXPECT_EXIT_CODE(Ctl({"unlearn", "check", "mdl-x", (dir_ / "missing.csv").string()}), 2);
  const std::string model = TrainModel();
  CommandResult bad_row = Ctl({"unlearn", "request", model, "999"});
  EXPECT_EXIT_CODE(bad_row, 2);
  EXPECT_TRUE(absl::StrContains(bad_row.err, "999")) << bad_row.err;
}

#endif

}  // namespace
}  // namespace agt::client
