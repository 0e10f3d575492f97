// The agtctl binary: help, usage errors and exit codes, and every command's
// output (table, --quiet, --json) against the fake services of
// fake_server.h on 127.0.0.1:0. The real server is exercised by
// agtctl_e2e_test.cc.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tests/client/fake_server.h"
#include "tests/client/process.h"

namespace agt::client {
namespace {

using testing::CommandResult;
using testing::FakeServer;
using testing::RunCommand;

#ifdef AGTCTL_BINARY

class AgtctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.ok());
    dir_ = std::filesystem::temp_directory_path() /
           ("agtctl_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // agtctl --server <fake> ARGS...
  CommandResult Run(std::vector<std::string> args,
                    const std::map<std::string, std::string>& env = {}) {
    std::vector<std::string> argv = {AGTCTL_BINARY, "--server", server_.target()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, env, std::chrono::seconds(30));
  }

  std::string WriteFile(const std::string& name, const std::string& text) {
    std::filesystem::path path = dir_ / name;
    std::ofstream out(path, std::ios::binary);
    out << text;
    return path.string();
  }

  FakeServer server_;
  std::filesystem::path dir_;
};

#define EXPECT_EXIT_CODE(result, code) \
  EXPECT_EQ((result).exit_code, code) << "stdout:\n" << (result).out << "stderr:\n" << (result).err

TEST_F(AgtctlTest, HelpAtEveryLevelExitsZeroAndDocumentsExitCodes) {
  CommandResult top = RunCommand({AGTCTL_BINARY, "--help"});
  EXPECT_EXIT_CODE(top, 0);
  EXPECT_TRUE(absl::StrContains(top.out, "Exit codes:"));
  EXPECT_TRUE(absl::StrContains(top.out, "5  the job ended FAILED or CANCELLED"));
  for (const char* group : {"dataset", "jobs", "model"}) {
    CommandResult help = RunCommand({AGTCTL_BINARY, group, "--help"});
    EXPECT_EXIT_CODE(help, 0);
    EXPECT_TRUE(absl::StrContains(help.out, std::string("agtctl ") + group + " "));
  }
  for (std::vector<std::string> command : {std::vector<std::string>{"dataset", "upload"},
                                           {"dataset", "list"},
                                           {"train"},
                                           {"jobs", "watch"},
                                           {"model", "export"},
                                           {"certify"},
                                           {"health"}}) {
    std::vector<std::string> argv = {AGTCTL_BINARY};
    argv.insert(argv.end(), command.begin(), command.end());
    argv.push_back("--help");
    CommandResult help = RunCommand(argv);
    EXPECT_EXIT_CODE(help, 0);
    EXPECT_TRUE(absl::StrContains(help.out, "Usage: agtctl " + absl::StrJoin(command, " ")))
        << help.out;
  }
  CommandResult via_help_word = RunCommand({AGTCTL_BINARY, "help", "certify"});
  EXPECT_EXIT_CODE(via_help_word, 0);
  EXPECT_TRUE(absl::StrContains(via_help_word.out, "--stability"));
}

TEST_F(AgtctlTest, UsageErrorsExitTwoAndSayWhat) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::string csv = WriteFile("q.csv", "1,2\n");
  const std::string bad_job = WriteFile("job.json", R"({"dataset_id": "ds-1", "lr": 1})");
  const std::vector<Case> cases = {
      {{}, "no command given"},
      {{"frobnicate"}, "unknown command 'frobnicate'"},
      {{"dataset"}, "Usage: agtctl dataset SUBCOMMAND"},
      {{"dataset", "frob"}, "unknown subcommand 'dataset frob'"},
      {{"dataset", "upload"}, "missing arguments for 'dataset upload'"},
      {{"dataset", "get", "a", "b"}, "unexpected argument 'b'"},
      {{"--frob", "health"}, "unknown flag --frob"},
      {{"health", "--timeout"}, "flag --timeout needs a value"},
      {{"health", "--timeout", "soon"}, "--timeout 'soon' is not a finite number"},
      {{"health", "--json", "--quiet"}, "--json and --quiet exclude each other"},
      {{"dataset", "upload", "/nonexistent/x.csv"}, "cannot read dataset file /nonexistent/x.csv"},
      {{"dataset", "upload", csv, "--format", "parquet"},
       "--format 'parquet' is not csv or "
       "float64"},
      {{"dataset", "upload", csv, "--format", "float64"}, "--features K is required"},
      {{"dataset", "upload", csv, "--classes", "-3"}, "--classes -3 is out of range"},
      {{"train"}, "no dataset"},
      {{"train", bad_job}, "job.json: not a valid agt.v1.TrainingJobSpec"},
      {{"train", "/nonexistent/job.json"}, "cannot read /nonexistent/job.json"},
      {{"train", "--dataset", "ds-1", "--loss", "l1"},
       "--loss 'l1' is not one of mse, "
       "binary_cross_entropy"},
      {{"train", "--dataset", "ds-1", "--budgets", "1,x"}, "--budgets 'x' is not an integer"},
      {{"jobs", "list", "--state", "done"}, "job state 'done'"},
      {{"certify", "m-1"}, "give either INPUTS.csv or --dataset"},
      {{"certify", "m-1", csv, "--dataset", "ds-1"}, "give either INPUTS.csv or --dataset"},
      {{"certify", "m-1", csv, "--stability", "vibes"}, "--stability 'vibes'"},
      {{"certify", "m-1", "/nonexistent/q.csv"}, "cannot read /nonexistent/q.csv"},
      {{"--tls-ca", "/nonexistent/ca.pem", "health"}, "/nonexistent/ca.pem"},
  };
  for (const Case& c : cases) {
    CommandResult result = Run(c.args);
    EXPECT_EXIT_CODE(result, 2) << "args: " << absl::StrJoin(c.args, " ");
    EXPECT_TRUE(absl::StrContains(result.err, c.message))
        << "args: " << absl::StrJoin(c.args, " ") << "\nstderr: " << result.err;
  }
  std::lock_guard<std::mutex> lock(server_.state.mu);
  // Only the --tls-ca case might have tried to connect, and it cannot have.
  EXPECT_TRUE(server_.state.authorizations.empty());
}

TEST_F(AgtctlTest, UploadPrintsTheDatasetInEveryMode) {
  const std::string csv = WriteFile("moons.csv", "x0,x1,y\n0.5,0.25,1\n-1,0.5,0\n");
  CommandResult table = Run({"dataset", "upload", csv});
  EXPECT_EXIT_CODE(table, 0);
  EXPECT_TRUE(absl::StrContains(table.out, "id:")) << table.out;
  EXPECT_TRUE(absl::StrContains(table.out, "ds-1"));
  {
    std::lock_guard<std::mutex> lock(server_.state.mu);
    EXPECT_EQ(server_.state.upload_metadata.name(), "moons");  // from the file name
    EXPECT_EQ(server_.state.upload_metadata.format(), agt::v1::DATASET_FORMAT_CSV);
    EXPECT_EQ(server_.state.upload_metadata.num_classes(), -1);
  }
  CommandResult quiet = Run({"dataset", "upload", csv, "-q", "--name", "m2", "--classes", "2"});
  EXPECT_EXIT_CODE(quiet, 0);
  EXPECT_EQ(quiet.out, "ds-1\n");
  {
    std::lock_guard<std::mutex> lock(server_.state.mu);
    EXPECT_EQ(server_.state.upload_metadata.name(), "m2");
    EXPECT_EQ(server_.state.upload_metadata.num_classes(), 2);
  }
  CommandResult json = Run({"--json", "dataset", "upload", csv});
  EXPECT_EXIT_CODE(json, 0);
  nlohmann::json doc = nlohmann::json::parse(json.out);
  EXPECT_EQ(doc["dataset"]["id"], "ds-1");
  EXPECT_EQ(doc["dataset"]["num_rows"], "3");

  const std::string raw = WriteFile("rows.f64", std::string(48, '\0'));
  CommandResult f64 = Run({"dataset", "upload", raw, "--features", "2", "-q"});
  EXPECT_EXIT_CODE(f64, 0);
  std::lock_guard<std::mutex> lock(server_.state.mu);
  EXPECT_EQ(server_.state.upload_metadata.format(), agt::v1::DATASET_FORMAT_FLOAT64);
  EXPECT_EQ(server_.state.upload_metadata.num_features(), 2);
  EXPECT_EQ(server_.state.upload_bytes.size(), 48u);
}

TEST_F(AgtctlTest, ServerRejectionsMapToDocumentedExitCodes) {
  CommandResult missing = Run({"dataset", "get", "missing-3"});
  EXPECT_EXIT_CODE(missing, 3);
  EXPECT_TRUE(absl::StrContains(missing.err, "dataset missing-3 not found"));
  EXPECT_EXIT_CODE(Run({"jobs", "get", "missing-1"}), 3);
  EXPECT_EXIT_CODE(Run({"jobs", "cancel", "missing-1"}), 3);
  EXPECT_EXIT_CODE(Run({"jobs", "watch", "missing-1"}), 3);
  EXPECT_EXIT_CODE(Run({"model", "get", "missing-1"}), 3);
  EXPECT_EXIT_CODE(Run({"model", "export", "missing-1"}), 3);
  EXPECT_EXIT_CODE(Run({"dataset", "rm", "missing-1"}), 3);
  const std::string csv = WriteFile("q.csv", "1,2\n");
  EXPECT_EXIT_CODE(Run({"certify", "missing-1", csv}), 3);

  const std::string reject = WriteFile("r.csv", "x,1\n");
  CommandResult invalid = Run({"dataset", "upload", reject, "--name", "reject"});
  EXPECT_EXIT_CODE(invalid, 2);
  EXPECT_TRUE(absl::StrContains(invalid.err, "data.csv:2: column 1"));
  CommandResult budget =
      Run({"train", "--dataset", "ds-1", "--batch-size", "10", "--budgets", "1,10"});
  EXPECT_EXIT_CODE(budget, 2);
  EXPECT_TRUE(absl::StrContains(budget.err, "budgets[].n 10 must be below batch_size 10"));

  CommandResult timeout = Run({"--timeout", "0.3", "jobs", "get", "slow-1"});
  EXPECT_EXIT_CODE(timeout, 1);
  EXPECT_TRUE(absl::StrContains(timeout.err, "raise --timeout"));
  CommandResult unreachable =
      RunCommand({AGTCTL_BINARY, "--server", "127.0.0.1:1", "--timeout", "5", "dataset", "list"});
  EXPECT_EXIT_CODE(unreachable, 1);
  EXPECT_TRUE(absl::StrContains(unreachable.err, "is agt-server running at 127.0.0.1:1?"));
}

TEST_F(AgtctlTest, TokenFromFlagEnvironmentOrFile) {
  server_.state.required_token = "tok-123";
  EXPECT_EXIT_CODE(Run({"dataset", "list"}), 4);
  EXPECT_EXIT_CODE(Run({"dataset", "list", "--token", "nope"}), 4);
  EXPECT_EXIT_CODE(Run({"dataset", "list", "--token", "tok-123"}), 0);
  EXPECT_EXIT_CODE(Run({"dataset", "list"}, {{"AGT_TOKEN", "tok-123"}}), 0);
  const std::string file = WriteFile("token", "tok-123\n");
  EXPECT_EXIT_CODE(Run({"dataset", "list", "--token-file", file}), 0);
  // The flag wins over the environment.
  EXPECT_EXIT_CODE(Run({"dataset", "list", "--token", "nope"}, {{"AGT_TOKEN", "tok-123"}}), 4);
  // Health needs none.
  EXPECT_EXIT_CODE(Run({"health"}), 0);
}

TEST_F(AgtctlTest, ServerFromEnvironment) {
  CommandResult result =
      RunCommand({AGTCTL_BINARY, "health", "--json"}, {{"AGT_SERVER", server_.target()}});
  EXPECT_EXIT_CODE(result, 0);
  EXPECT_EQ(nlohmann::json::parse(result.out)["status"], "SERVING");
}

TEST_F(AgtctlTest, ListsFollowEveryPage) {
  CommandResult table = Run({"dataset", "list"});
  EXPECT_EXIT_CODE(table, 0);
  std::vector<std::string> lines = absl::StrSplit(table.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 6u) << table.out;  // header + 5 datasets over 3 pages
  EXPECT_TRUE(absl::StartsWith(lines[0], "ID"));
  EXPECT_TRUE(absl::StartsWith(lines[5], "ds-5"));
  CommandResult json = Run({"dataset", "list", "--json"});
  EXPECT_EQ(nlohmann::json::parse(json.out)["datasets"].size(), 5u);
  CommandResult quiet = Run({"dataset", "list", "-q"});
  EXPECT_EQ(quiet.out, "ds-1\nds-2\nds-3\nds-4\nds-5\n");
  EXPECT_EQ(Run({"jobs", "list", "-q", "--state", "succeeded"}).out, "job-1\n");
  EXPECT_EQ(Run({"jobs", "list", "-q", "--state", "failed"}).out, "");
  EXPECT_EQ(Run({"model", "list", "-q"}).out, "m-1\n");
}

TEST_F(AgtctlTest, TrainFromFileWithOverridesAndWait) {
  const std::string job = WriteFile("job.json", R"({
      "name": "moons", "dataset_id": "ds-old", "polynomial_degree": 3,
      "loss": "LOSS_BINARY_CROSS_ENTROPY", "batch_size": 100, "epochs": 4,
      "optimizer": {"learning_rate": 2.0},
      "perturbation": {"kind": "PERTURBATION_KIND_REMOVAL"},
      "budgets": [{"n": 1}]})");
  CommandResult result = Run({"train", job, "--dataset", "ds-1", "--budgets", "1,2,5", "--epochs",
                              "2", "--hidden", "8,4", "--wait"});
  EXPECT_EXIT_CODE(result, 0);
  {
    std::lock_guard<std::mutex> lock(server_.state.mu);
    const agt::v1::TrainingJobSpec& spec = server_.state.submitted;
    EXPECT_EQ(spec.dataset_id(), "ds-1");
    EXPECT_EQ(spec.epochs(), 2);
    EXPECT_EQ(spec.polynomial_degree(), 3);
    ASSERT_EQ(spec.budgets_size(), 3);
    EXPECT_EQ(spec.budgets(2).n(), 5);
    EXPECT_EQ(spec.hidden_widths_size(), 2);
    EXPECT_DOUBLE_EQ(spec.optimizer().learning_rate(), 2.0);
  }
  // Progress on stderr (not a TTY: whole lines), the final job on stdout.
  EXPECT_TRUE(absl::StrContains(result.err, "submitted job job-1")) << result.err;
  EXPECT_TRUE(absl::StrContains(result.err, "iter 5/5")) << result.err;
  EXPECT_TRUE(absl::StrContains(result.err, "width n=1 ")) << result.err;
  EXPECT_FALSE(absl::StrContains(result.err, "\r"));
  EXPECT_TRUE(absl::StrContains(result.out, "SUCCEEDED")) << result.out;
  EXPECT_TRUE(absl::StrContains(result.out, "trained model:")) << result.out;
  EXPECT_TRUE(absl::StrContains(result.out, "m-1"));

  CommandResult quiet = Run({"train", job, "--dataset", "ds-1", "--wait", "-q"});
  EXPECT_EXIT_CODE(quiet, 0);
  EXPECT_EQ(quiet.out, "m-1\n");
  EXPECT_EQ(quiet.err, "");

  CommandResult json = Run({"train", job, "--dataset", "ds-1", "--wait", "--json"});
  EXPECT_EXIT_CODE(json, 0);
  nlohmann::json doc = nlohmann::json::parse(json.out);
  EXPECT_EQ(doc["job"]["state"], "JOB_STATE_SUCCEEDED");
  EXPECT_EQ(doc["job"]["model_id"], "m-1");

  CommandResult no_wait = Run({"train", job, "--dataset", "ds-1", "-q"});
  EXPECT_EXIT_CODE(no_wait, 0);
  EXPECT_EQ(no_wait.out, "job-1\n");
}

TEST_F(AgtctlTest, TrainSendsBoundOptionsInTheCurrentForm) {
  struct Case {
    std::vector<std::string> flags;
    agt::v1::IntervalProduct product;
    agt::v1::BoundMethod method = agt::v1::BOUND_METHOD_IBP;
  };
  const std::vector<Case> cases = {
      // No --bound-method: left UNSPECIFIED, which is IBP.
      {{"--interval-product", "nguyen"},
       agt::v1::INTERVAL_PRODUCT_NGUYEN,
       agt::v1::BOUND_METHOD_UNSPECIFIED},
      {{"--bound-method", "ibp", "--interval-product", "EXACT"}, agt::v1::INTERVAL_PRODUCT_EXACT},
      // Deprecated aliases of the old enum: IBP with that product.
      {{"--bound-method", "interval_exact"}, agt::v1::INTERVAL_PRODUCT_EXACT},
      {{"--bound-method", "nguyen"}, agt::v1::INTERVAL_PRODUCT_NGUYEN},
      {{"--bound-method", "interval_rump", "--interval-product", "rump"},
       agt::v1::INTERVAL_PRODUCT_RUMP},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"train", "--dataset", "ds-1", "-q"};
    args.insert(args.end(), c.flags.begin(), c.flags.end());
    CommandResult result = Run(args);
    EXPECT_EXIT_CODE(result, 0) << absl::StrJoin(c.flags, " ");
    std::lock_guard<std::mutex> lock(server_.state.mu);
    EXPECT_EQ(server_.state.submitted.bound_method(), c.method) << absl::StrJoin(c.flags, " ");
    EXPECT_EQ(server_.state.submitted.interval_product(), c.product) << absl::StrJoin(c.flags, " ");
  }
  // A legacy value in a spec file is sent in the current form too.
  const std::string job = WriteFile("legacy.json", R"({"dataset_id": "ds-1",
      "bound_method": "BOUND_METHOD_INTERVAL_NGUYEN"})");
  EXPECT_EXIT_CODE(Run({"train", job, "-q"}), 0);
  {
    std::lock_guard<std::mutex> lock(server_.state.mu);
    EXPECT_EQ(server_.state.submitted.bound_method(), agt::v1::BOUND_METHOD_IBP);
    EXPECT_EQ(server_.state.submitted.interval_product(), agt::v1::INTERVAL_PRODUCT_NGUYEN);
  }
  CommandResult conflict = Run({"train", "--dataset", "ds-1", "--bound-method", "interval_exact",
                                "--interval-product", "nguyen"});
  EXPECT_EXIT_CODE(conflict, 2);
  EXPECT_TRUE(absl::StrContains(conflict.err,
                                "--bound-method interval_exact conflicts with "
                                "--interval-product nguyen"))
      << conflict.err;
  CommandResult unknown = Run({"train", "--dataset", "ds-1", "--bound-method", "crown"});
  EXPECT_EXIT_CODE(unknown, 2);
  EXPECT_TRUE(absl::StrContains(unknown.err, "--bound-method 'crown' is not one of ibp"))
      << unknown.err;
  CommandResult bad_product = Run({"train", "--dataset", "ds-1", "--interval-product", "fast"});
  EXPECT_EXIT_CODE(bad_product, 2);
  EXPECT_TRUE(absl::StrContains(bad_product.err,
                                "--interval-product 'fast' is not one of rump, "
                                "exact, nguyen"))
      << bad_product.err;
}

TEST_F(AgtctlTest, FailedJobExitsFiveWithTheReason) {
  CommandResult result = Run({"train", "--dataset", "ds-1", "--name", "fail", "--wait"});
  EXPECT_EXIT_CODE(result, 5);
  EXPECT_TRUE(absl::StrContains(result.err, "ended FAILED: training diverged")) << result.err;
  CommandResult watch = Run({"jobs", "watch", "job-1"});
  EXPECT_EXIT_CODE(watch, 5);
}

TEST_F(AgtctlTest, JobsGetCancelWatch) {
  CommandResult get = Run({"jobs", "get", "job-1"});
  EXPECT_EXIT_CODE(get, 0);
  EXPECT_TRUE(absl::StrContains(get.out, "state:")) << get.out;
  EXPECT_TRUE(absl::StrContains(get.out, "budgets:"));
  EXPECT_TRUE(absl::StrContains(get.out, "bounds:")) << get.out;
  EXPECT_TRUE(absl::StrContains(get.out, "ibp, interval product")) << get.out;
  CommandResult cancel = Run({"jobs", "cancel", "job-1"});
  EXPECT_EXIT_CODE(cancel, 0);
  EXPECT_EQ(cancel.out, "job job-1: CANCELLED\n");
  CommandResult watch = Run({"jobs", "watch", "job-1", "--json"});
  EXPECT_EXIT_CODE(watch, 0);
  EXPECT_EQ(nlohmann::json::parse(watch.out)["job"]["state"], "JOB_STATE_SUCCEEDED");
}

TEST_F(AgtctlTest, ModelGetAndExport) {
  CommandResult get = Run({"model", "get", "m-1"});
  EXPECT_EXIT_CODE(get, 0);
  EXPECT_TRUE(absl::StrContains(get.out, "dense 2->1")) << get.out;
  EXPECT_TRUE(absl::StrContains(get.out, "BUDGET")) << get.out;
  EXPECT_TRUE(absl::StrContains(get.out, "n=5"));
  EXPECT_TRUE(absl::StrContains(get.out, "bounds:")) << get.out;
  const std::string path = (dir_ / "model.json").string();
  CommandResult exported = Run({"model", "export", "m-1", "--out", path});
  EXPECT_EXIT_CODE(exported, 0);
  std::ifstream in(path);
  nlohmann::json doc = nlohmann::json::parse(in);
  EXPECT_EQ(doc["model"]["id"], "m-1");
  EXPECT_EQ(doc["boxes"].size(), 3u);
  CommandResult to_stdout = Run({"model", "export", "m-1"});
  EXPECT_EQ(nlohmann::json::parse(to_stdout.out)["boxes"].size(), 3u);
  EXPECT_EXIT_CODE(Run({"model", "export", "m-1", "--out", "/nonexistent/dir/m.json"}), 2);
}

TEST_F(AgtctlTest, CertifyTableJsonAndQuiet) {
  const std::string csv = WriteFile("q.csv", "x0,x1,y\n0.35,0,1\n-0.05,0,0\n-0.8,1,1\n");
  CommandResult table = Run({"certify", "m-1", csv, "--labels"});
  EXPECT_EXIT_CODE(table, 0);
  std::vector<std::string> lines = absl::StrSplit(table.out, '\n');
  ASSERT_GE(lines.size(), 4u);
  EXPECT_TRUE(absl::StrContains(lines[0], "LARGEST STABLE")) << table.out;
  // Row 0: class 1, label 1, stable at n=1 and n=2 -> correct; largest n=2.
  EXPECT_TRUE(absl::StrContains(lines[1], "correct")) << lines[1];
  EXPECT_TRUE(absl::EndsWith(lines[1], "n=2")) << lines[1];
  // Row 1: |x0| = 0.05 stable nowhere.
  EXPECT_TRUE(absl::EndsWith(lines[2], "none")) << lines[2];
  // Row 2: class 0 but label 1: stable, never correct.
  EXPECT_TRUE(absl::StrContains(lines[3], "stable")) << lines[3];
  EXPECT_FALSE(absl::StrContains(lines[3], "correct")) << lines[3];
  EXPECT_TRUE(absl::StrContains(table.out, "fake guarantee"));
  {
    std::lock_guard<std::mutex> lock(server_.state.mu);
    EXPECT_EQ(server_.state.certify_request.labels_size(), 3);
    EXPECT_EQ(server_.state.certify_request.inputs().cols(), 2);
  }

  CommandResult json = Run(
      {"certify", "m-1", csv, "--labels", "--json", "--epsilon", "0.01", "--stability", "softmax"});
  EXPECT_EXIT_CODE(json, 0);
  nlohmann::json doc = nlohmann::json::parse(json.out);
  ASSERT_EQ(doc["points"].size(), 3u);
  EXPECT_EQ(doc["budgets"].size(), 3u);
  // The response proto's JSON: n values as the server sent them, -1 for none.
  EXPECT_EQ(doc["points"][0]["largest_stable_n"], 2);
  EXPECT_EQ(doc["points"][1]["largest_stable_n"], -1);
  EXPECT_EQ(doc["points"][1]["largest_stable_budget"], -1);
  EXPECT_EQ(doc["points"][0]["stable"].size(), 3u);
  EXPECT_EQ(doc["budgets"][2]["n"], 5);
  EXPECT_EQ(doc["guarantee"], "fake guarantee: per batch");
  // Row 2 (label 1, predicted 0) is stable but never correct.
  EXPECT_EQ(doc["points"][2]["correct"], nlohmann::json::array({false, false, false}));
  EXPECT_FALSE(doc.contains("model_id")) << "only CertifyPredictionsResponse fields";
  {
    std::lock_guard<std::mutex> lock(server_.state.mu);
    EXPECT_DOUBLE_EQ(server_.state.certify_request.test_epsilon(), 0.01);
    EXPECT_EQ(server_.state.certify_request.stability_rule(), agt::v1::STABILITY_RULE_SOFTMAX);
  }
  CommandResult quiet = Run({"certify", "m-1", csv, "--labels", "-q"});
  EXPECT_EQ(quiet.out, "2\nnone\n5\n");
}

TEST_F(AgtctlTest, CertifySplitsLargeInputsIntoBatches) {
  std::string text;
  for (int i = 0; i < 25; ++i) text += std::to_string(0.01 * i) + ",0\n";
  const std::string csv = WriteFile("many.csv", text);
  CommandResult result = Run({"certify", "m-1", csv, "--batch", "10", "--json"});
  EXPECT_EXIT_CODE(result, 0);
  EXPECT_EQ(nlohmann::json::parse(result.out)["points"].size(), 25u);
  std::lock_guard<std::mutex> lock(server_.state.mu);
  EXPECT_EQ(server_.state.certify_calls, 3);
}

TEST_F(AgtctlTest, CertifyChecksColumnsAgainstTheModel) {
  const std::string csv = WriteFile("q.csv", "x0,x1,y\n0.35,0,1\n");
  CommandResult result = Run({"certify", "m-1", csv});
  EXPECT_EXIT_CODE(result, 2);
  EXPECT_TRUE(absl::StrContains(result.err, "3 input columns, but model m-1 takes 2"));
  EXPECT_TRUE(absl::StrContains(result.err, "pass --labels"));
}

TEST_F(AgtctlTest, CertifyStoredDataset) {
  CommandResult result = Run({"certify", "m-1", "--dataset", "ds-1"});
  EXPECT_EXIT_CODE(result, 0);
  EXPECT_TRUE(absl::StrContains(result.out, "ACC WORST")) << result.out;
  EXPECT_TRUE(absl::StrContains(result.out, "100 rows of dataset ds-1"));
  CommandResult json = Run({"certify", "m-1", "--dataset", "ds-1", "--json"});
  EXPECT_EQ(nlohmann::json::parse(json.out)["budgets"].size(), 3u);
  EXPECT_EXIT_CODE(Run({"certify", "m-1", "--dataset", "missing-ds"}), 3);
}

#else
TEST(AgtctlTest, SkippedWithoutBinary) { GTEST_SKIP() << "agtctl is not built in this tree"; }
#endif

}  // namespace
}  // namespace agt::client
