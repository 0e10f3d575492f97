// agtctl predict --private and agtctl budget against the real agt-server:
// models trained through agtctl (binary under substitution, binary under
// removal, three classes), private labels with n* and the budget line,
// --json and --quiet, epsilons adding up across requests, a request past
// --privacy-budget refused without spending, mechanisms refused for models
// they do not apply to, a private-querier token that sees n* withheld and
// nothing else of the model, usage errors and --help.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/client/agtctl_fixture.h"
#include "tests/client/process.h"

namespace agt::client {
namespace {

#if defined(AGT_SERVER_BINARY) && defined(AGTCTL_BINARY)

using testing::BackgroundProcess;
using testing::CommandResult;
using testing::RunCommand;

constexpr int kExitError = 1;  // RESOURCE_EXHAUSTED, FAILED_PRECONDITION
constexpr int kExitUsage = 2;
constexpr int kExitNotAllowed = 4;

// 60 points of two well-separated blobs, label last.
std::string BinaryBlobsCsv() {
  std::string csv = "x0,x1,y\n";
  for (int i = 0; i < 60; ++i) {
    const int label = i % 2;
    const double shift = label == 0 ? -2.0 : 2.0;
    absl::StrAppend(&csv, shift + 0.01 * (i % 7), ",", shift - 0.02 * (i % 5), ",", label, "\n");
  }
  return csv;
}

// 60 points of three separated blobs (classes 0, 1, 2), label last.
std::string ThreeBlobsCsv() {
  const double centres[3][2] = {{-3.0, 0.0}, {3.0, 0.0}, {0.0, 3.0}};
  std::string csv = "x0,x1,y\n";
  for (int i = 0; i < 60; ++i) {
    const int label = i % 3;
    absl::StrAppend(&csv, centres[label][0] + 0.01 * (i % 7), ",",
                    centres[label][1] - 0.02 * (i % 5), ",", label, "\n");
  }
  return csv;
}

// Binary, substitution budgets, clamp clipping: what smooth sensitivity needs.
constexpr char kSubstitutionJob[] = R"({
  "name": "blobs-substitution",
  "architecture": {"layers": [{"dense": {"in": 2, "out": 1}}]},
  "loss": "LOSS_BINARY_CROSS_ENTROPY",
  "batch_size": 20,
  "epochs": 2,
  "optimizer": {"learning_rate": 0.5},
  "clip_gamma": 1.0,
  "perturbation": {"kind": "PERTURBATION_KIND_SUBSTITUTION"},
  "budgets": [{"n": 1}, {"n": 2}, {"n": 4}, {"n": 8}],
  "seed": 1
})";

constexpr char kRemovalJob[] = R"({
  "name": "blobs-removal",
  "architecture": {"layers": [{"dense": {"in": 2, "out": 1}}]},
  "loss": "LOSS_BINARY_CROSS_ENTROPY",
  "batch_size": 20,
  "epochs": 2,
  "optimizer": {"learning_rate": 0.5},
  "perturbation": {"kind": "PERTURBATION_KIND_REMOVAL"},
  "budgets": [{"n": 1}, {"n": 2}],
  "seed": 1
})";

constexpr char kThreeClassJob[] = R"({
  "name": "blobs-three-classes",
  "architecture": {"layers": [{"dense": {"in": 2, "out": 3}}]},
  "loss": "LOSS_CROSS_ENTROPY",
  "batch_size": 20,
  "epochs": 2,
  "optimizer": {"learning_rate": 0.5},
  "perturbation": {"kind": "PERTURBATION_KIND_REMOVAL"},
  "budgets": [{"n": 1}],
  "seed": 1
})";

// Four query points, clearly on one side or the other (or in a third blob).
constexpr char kQueries[] = "x0,x1\n-2,-2\n2,2\n-2.1,-1.9\n1.9,2.1\n";
constexpr int kQueryRows = 4;

class PrivatePredictE2eTest : public testing::AgtctlServerTest {
 protected:
  std::string Queries() { return Write("queries.csv", kQueries); }
};

TEST_F(PrivatePredictE2eTest, SmoothSensitivityReleasesLabelsAndSpendsRowsTimesEpsilon) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string model = TrainModel("binary", BinaryBlobsCsv(), kSubstitutionJob);
  ASSERT_TRUE(absl::StartsWith(model, "mdl-")) << model;
  const std::string queries = Queries();

  CommandResult table = Ctl({"predict", model, queries, "--private", "--epsilon", "0.5"});
  EXPECT_EXIT_CODE(table, 0);
  EXPECT_TRUE(absl::StrContains(table.out, "LABEL")) << table.out;
  EXPECT_TRUE(absl::StrContains(table.out, "n*")) << table.out;
  EXPECT_TRUE(absl::StrContains(table.out, "NOISE SCALE")) << table.out;
  EXPECT_TRUE(absl::StrContains(table.out, "smooth sensitivity")) << table.out;
  EXPECT_TRUE(absl::StrContains(table.out, "0.5 per label, 2 spent by this request")) << table.out;
  EXPECT_TRUE(absl::StrContains(table.out, "spent 2 of 10, remaining 8 (4 releases)")) << table.out;
  EXPECT_FALSE(absl::StrContains(table.out, "withheld")) << table.out;  // local mode: admin

  CommandResult json = Ctl({"--json", "predict", model, queries, "--private", "--epsilon", "0.25"});
  EXPECT_EXIT_CODE(json, 0);
  const nlohmann::json released = nlohmann::json::parse(json.out);
  ASSERT_EQ(released["labels"].size(), static_cast<size_t>(kQueryRows)) << json.out;
  EXPECT_EQ(released["mechanism"], "PRIVACY_MECHANISM_SMOOTH_SENSITIVITY");
  EXPECT_DOUBLE_EQ(released["epsilon_per_label"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(released["epsilon_spent"].get<double>(), kQueryRows * 0.25);
  int certified = 0;
  for (const nlohmann::json& label : released["labels"]) {
    const int value = label["label"];
    EXPECT_TRUE(value == 0 || value == 1) << label.dump();
    EXPECT_GE(label["n_star"].get<int>(), 0) << label.dump();
    EXPECT_GT(label["noise_scale"].get<double>(), 0) << label.dump();
    certified += label["n_star"].get<int>() >= 1;
  }
  // Well-separated blobs: the points are stable at some substitution budget.
  EXPECT_GE(certified, kQueryRows / 2) << json.out;
  EXPECT_TRUE(absl::StrContains(std::string(released["guarantee"]), "differentially private"));

  // Budgets add up over requests: 4 x 0.5 + 4 x 0.25.
  CommandResult budget = Ctl({"--json", "budget", model});
  EXPECT_EXIT_CODE(budget, 0);
  const nlohmann::json spent = nlohmann::json::parse(budget.out)["budget"];
  EXPECT_DOUBLE_EQ(spent["spent_epsilon"].get<double>(), 4 * 0.5 + 4 * 0.25);
  EXPECT_DOUBLE_EQ(spent["total_epsilon"].get<double>(), 10.0);
  EXPECT_DOUBLE_EQ(spent["remaining_epsilon"].get<double>(), 7.0);
  EXPECT_EQ(spent["releases"], "8");  // proto3 JSON int64
  EXPECT_EQ(spent["client"], "local");

  CommandResult shown = Ctl({"budget", model});
  EXPECT_EXIT_CODE(shown, 0);
  for (const char* key : {"client", "total", "spent", "remaining", "releases"}) {
    EXPECT_TRUE(absl::StrContains(shown.out, key)) << shown.out;
  }
  EXPECT_EQ(Line(Ctl({"-q", "budget", model}).out), "7");

  CommandResult quiet = Ctl({"-q", "predict", model, queries, "--private", "--epsilon", "1"});
  EXPECT_EXIT_CODE(quiet, 0);
  std::vector<std::string> labels = absl::StrSplit(Line(quiet.out), '\n');
  ASSERT_EQ(labels.size(), static_cast<size_t>(kQueryRows)) << quiet.out;
  for (const std::string& label : labels) EXPECT_TRUE(label == "0" || label == "1") << label;
  EXPECT_EQ(Line(Ctl({"-q", "budget", model}).out), "3");
}

TEST_F(PrivatePredictE2eTest, RequestPastTheBudgetIsRefusedAndSpendsNothing) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--privacy-budget", "1.0"}));
  const std::string model = TrainModel("binary", BinaryBlobsCsv(), kSubstitutionJob);
  ASSERT_TRUE(absl::StartsWith(model, "mdl-")) << model;
  const std::string queries = Queries();

  EXPECT_EXIT_CODE(Ctl({"predict", model, queries, "--private", "--epsilon", "0.125"}), 0);
  // 4 x 0.25 = 1 more would pass the total of 1 (0.5 spent).
  CommandResult refused = Ctl({"predict", model, queries, "--private", "--epsilon", "0.25"});
  EXPECT_EXIT_CODE(refused, kExitError);
  EXPECT_TRUE(absl::StrContains(refused.err, "privacy budget")) << refused.err;
  EXPECT_TRUE(absl::StrContains(refused.err, "nothing was spent")) << refused.err;
  EXPECT_TRUE(absl::StrContains(refused.err, "agtctl budget " + model)) << refused.err;
  EXPECT_EQ(refused.out, "");

  CommandResult after = Ctl({"--json", "budget", model});
  EXPECT_EXIT_CODE(after, 0);
  const nlohmann::json budget = nlohmann::json::parse(after.out)["budget"];
  EXPECT_DOUBLE_EQ(budget["spent_epsilon"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(budget["remaining_epsilon"].get<double>(), 0.5);
  EXPECT_EQ(budget["releases"], "4");
  // What remains can still be spent, exactly.
  EXPECT_EXIT_CODE(Ctl({"predict", model, queries, "--private", "--epsilon", "0.125"}), 0);
  EXPECT_EQ(Line(Ctl({"-q", "budget", model}).out), "0");
  EXPECT_EXIT_CODE(Ctl({"-q", "predict", model, queries, "--private", "--epsilon", "0.001"}),
                   kExitError);
}

TEST_F(PrivatePredictE2eTest, MechanismIsRefusedForModelsItDoesNotApplyTo) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string three = TrainModel("three", ThreeBlobsCsv(), kThreeClassJob);
  const std::string removal = TrainModel("removal", BinaryBlobsCsv(), kRemovalJob);
  ASSERT_TRUE(absl::StartsWith(three, "mdl-")) << three;
  ASSERT_TRUE(absl::StartsWith(removal, "mdl-")) << removal;
  const std::string queries = Queries();

  CommandResult multi = Ctl({"predict", three, queries, "--private", "--epsilon", "0.5"});
  EXPECT_EXIT_CODE(multi, kExitError);  // FAILED_PRECONDITION
  EXPECT_TRUE(absl::StrContains(multi.err, "REPORT_NOISY_ARGMAX")) << multi.err;
  CommandResult argmax = Ctl({"--json", "predict", three, queries, "--private", "--epsilon", "0.5",
                              "--mechanism", "argmax"});
  EXPECT_EXIT_CODE(argmax, 0);
  const nlohmann::json noisy = nlohmann::json::parse(argmax.out);
  EXPECT_EQ(noisy["mechanism"], "PRIVACY_MECHANISM_REPORT_NOISY_ARGMAX");
  ASSERT_EQ(noisy["labels"].size(), static_cast<size_t>(kQueryRows));
  for (const nlohmann::json& label : noisy["labels"]) {
    EXPECT_GE(label["label"].get<int>(), 0);
    EXPECT_LE(label["label"].get<int>(), 2);
  }
  // Laplace releases binary labels only.
  EXPECT_EXIT_CODE(
      Ctl({"predict", three, queries, "--private", "--epsilon", "0.5", "--mechanism", "laplace"}),
      kExitError);

  CommandResult smooth =
      Ctl({"predict", removal, queries, "--private", "--epsilon", "0.5", "--mechanism", "smooth"});
  EXPECT_EXIT_CODE(smooth, kExitError);
  EXPECT_TRUE(absl::StrContains(smooth.err, "GLOBAL_LAPLACE")) << smooth.err;
  CommandResult laplace =
      Ctl({"predict", removal, queries, "--private", "--epsilon", "0.5", "--mechanism", "laplace"});
  EXPECT_EXIT_CODE(laplace, 0);
  EXPECT_TRUE(absl::StrContains(laplace.out, "global Laplace")) << laplace.out;
  // Refusals spent nothing: only the two releases count.
  CommandResult three_budget = Ctl({"--json", "budget", three});
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(three_budget.out)["budget"]["spent_epsilon"].get<double>(),
                   2.0);
  EXPECT_EQ(Line(Ctl({"-q", "budget", removal}).out), "8");
}

TEST_F(PrivatePredictE2eTest, PrivateQuerierSeesNStarWithheldAndNothingElse) {
  std::string tokens;
  for (auto [token, role, label] :
       {std::tuple<std::string, std::string, std::string>{"tok-train", "trainer", "lab"},
        {"tok-private", "private-querier", "analyst"}}) {
    CommandResult line = RunCommand(
        {AGT_SERVER_BINARY, "hash-token", "--role", role, "--tenant", "acme", "--label", label}, {},
        std::chrono::seconds(10), token);
    ASSERT_EQ(line.exit_code, 0) << line.err;
    tokens += line.out;
  }
  ASSERT_NO_FATAL_FAILURE(StartServer({"--tokens", Write("tokens.txt", tokens)}));
  const std::string model =
      TrainModel("binary", BinaryBlobsCsv(), kSubstitutionJob, /*token=*/"tok-train");
  ASSERT_TRUE(absl::StartsWith(model, "mdl-")) << model;
  const std::string queries = Queries();

  CommandResult table =
      Ctl({"predict", model, queries, "--private", "--epsilon", "0.5"}, "tok-private");
  EXPECT_EXIT_CODE(table, 0);
  EXPECT_TRUE(absl::StrContains(table.out, "withheld")) << table.out;
  EXPECT_TRUE(absl::StrContains(table.out, "spent 2 of 10")) << table.out;
  CommandResult json =
      Ctl({"--json", "predict", model, queries, "--private", "--epsilon", "0.5"}, "tok-private");
  EXPECT_EXIT_CODE(json, 0);
  const nlohmann::json withheld = nlohmann::json::parse(json.out);
  ASSERT_EQ(withheld["labels"].size(), static_cast<size_t>(kQueryRows)) << json.out;
  for (const nlohmann::json& label : withheld["labels"]) {
    EXPECT_EQ(label["n_star"], -1) << label.dump();
    EXPECT_EQ(label["noise_scale"].get<double>(), -1.0) << label.dump();
  }
  // The trainer sees n*; the budget is the tenant's dataset's, one for both
  // tokens (10 - 3 x 2 = 4 remains), with each one's share reported.
  CommandResult trainer =
      Ctl({"predict", model, queries, "--private", "--epsilon", "0.5"}, "tok-train");
  EXPECT_EXIT_CODE(trainer, 0);
  EXPECT_FALSE(absl::StrContains(trainer.out, "withheld")) << trainer.out;
  CommandResult budget = Ctl({"budget", model}, "tok-private");
  EXPECT_EXIT_CODE(budget, 0);
  EXPECT_TRUE(absl::StrContains(budget.out, "analyst")) << budget.out;
  EXPECT_TRUE(absl::StrContains(budget.out, "4 in 8 releases")) << budget.out;  // its share
  EXPECT_EQ(Line(Ctl({"-q", "budget", model}, "tok-private").out), "4");
  EXPECT_EQ(Line(Ctl({"-q", "budget", model}, "tok-train").out), "4");

  EXPECT_EXIT_CODE(Ctl({"model", "get", model}, "tok-private"), kExitNotAllowed);
  EXPECT_EXIT_CODE(Ctl({"certify", model, queries}, "tok-private"), kExitNotAllowed);
  EXPECT_EXIT_CODE(Ctl({"predict", model, queries, "--private", "--epsilon", "0.5"}),
                   kExitNotAllowed);  // no token
}

TEST_F(PrivatePredictE2eTest, UsageErrorsAndHelp) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string queries = Queries();

  CommandResult not_private = Ctl({"predict", "mdl-x", queries, "--epsilon", "0.5"});
  EXPECT_EXIT_CODE(not_private, kExitUsage);
  EXPECT_TRUE(absl::StrContains(not_private.err, "--private")) << not_private.err;
  EXPECT_TRUE(absl::StrContains(not_private.err, "agtctl certify")) << not_private.err;

  CommandResult no_epsilon = Ctl({"predict", "mdl-x", queries, "--private"});
  EXPECT_EXIT_CODE(no_epsilon, kExitUsage);
  EXPECT_TRUE(absl::StrContains(no_epsilon.err, "--epsilon")) << no_epsilon.err;
  for (const char* bad : {"-1", "0", "nan", "inf", "abc"}) {
    CommandResult r = Ctl({"predict", "mdl-x", queries, "--private", "--epsilon", bad});
    EXPECT_EXIT_CODE(r, kExitUsage);
    EXPECT_TRUE(absl::StrContains(r.err, bad)) << bad << ": " << r.err;
  }
  CommandResult mechanism = Ctl(
      {"predict", "mdl-x", queries, "--private", "--epsilon", "0.5", "--mechanism", "gaussian"});
  EXPECT_EXIT_CODE(mechanism, kExitUsage);
  EXPECT_TRUE(absl::StrContains(mechanism.err, "gaussian")) << mechanism.err;
  CommandResult missing =
      Ctl({"predict", "mdl-x", (dir_ / "missing.csv").string(), "--private", "--epsilon", "0.5"});
  EXPECT_EXIT_CODE(missing, kExitUsage);
  EXPECT_TRUE(absl::StrContains(missing.err, "missing.csv")) << missing.err;
  EXPECT_EXIT_CODE(Ctl({"predict", "mdl-x", "--private", "--epsilon", "0.5"}), kExitUsage);
  EXPECT_EXIT_CODE(Ctl({"budget"}), kExitUsage);
  EXPECT_EXIT_CODE(Ctl({"predict", "mdl-unknown", queries, "--private", "--epsilon", "0.5"}), 3);

  CommandResult help = Ctl({"predict", "--help"});
  EXPECT_EXIT_CODE(help, 0);
  EXPECT_TRUE(absl::StrContains(help.out, "epsilon")) << help.out;
  EXPECT_TRUE(absl::StrContains(help.out, "budget")) << help.out;
  EXPECT_TRUE(absl::StrContains(help.out, "withheld")) << help.out;
  EXPECT_TRUE(absl::StrContains(help.out, "RESOURCE_EXHAUSTED")) << help.out;
  CommandResult budget_help = Ctl({"budget", "--help"});
  EXPECT_EXIT_CODE(budget_help, 0);
  EXPECT_TRUE(absl::StrContains(budget_help.out, "remaining")) << budget_help.out;
  CommandResult top = Ctl({"--help"});
  EXPECT_TRUE(absl::StrContains(top.out, "predict")) << top.out;
  EXPECT_TRUE(absl::StrContains(top.out, "budget")) << top.out;
}

#endif

}  // namespace
}  // namespace agt::client
