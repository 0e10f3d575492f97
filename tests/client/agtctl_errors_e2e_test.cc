// agtctl's errors against the real agt-server: the server's google.rpc
// details (reason, metadata, field and quota violations) reach the user on
// stderr and, with --json, as one JSON document on stdout whose shape is
// the same for every error (client/README.md, "Errors as JSON").
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "tests/client/agtctl_fixture.h"
#include "tests/client/process.h"

namespace agt::client {
namespace {

#if defined(AGT_SERVER_BINARY) && defined(AGTCTL_BINARY)

using testing::CommandResult;
using testing::RunCommand;

// 40 points of two separated blobs, label last.
std::string BlobsCsv() {
  std::string csv = "x0,x1,y\n";
  for (int i = 0; i < 40; ++i) {
    const double shift = i % 2 == 0 ? -2.0 : 2.0;
    absl::StrAppend(&csv, shift + 0.01 * (i % 7), ",", shift - 0.02 * (i % 5), ",", i % 2, "\n");
  }
  return csv;
}

constexpr char kSubstitutionJob[] = R"({
  "architecture": {"layers": [{"dense": {"in": 2, "out": 1}}]},
  "loss": "LOSS_BINARY_CROSS_ENTROPY", "batch_size": 20, "epochs": 1,
  "optimizer": {"learning_rate": 0.5}, "clip_gamma": 1.0,
  "perturbation": {"kind": "PERTURBATION_KIND_SUBSTITUTION"},
  "budgets": [{"n": 1}, {"n": 2}], "seed": 1
})";

// Every key of the documented error shape, with its JSON type.
void ExpectErrorShape(const nlohmann::json& doc) {
  ASSERT_TRUE(doc.contains("error")) << doc.dump();
  const nlohmann::json& e = doc["error"];
  EXPECT_TRUE(e["code"].is_string()) << doc.dump();
  EXPECT_TRUE(e["grpc_code"].is_number_integer()) << doc.dump();
  EXPECT_TRUE(e["message"].is_string()) << doc.dump();
  EXPECT_TRUE(e["exit_code"].is_number_integer()) << doc.dump();
  EXPECT_TRUE(e["reason"].is_string()) << doc.dump();
  EXPECT_TRUE(e["domain"].is_string()) << doc.dump();
  EXPECT_TRUE(e["metadata"].is_object()) << doc.dump();
  EXPECT_TRUE(e["field_violations"].is_array()) << doc.dump();
  EXPECT_TRUE(e["quota_violations"].is_array()) << doc.dump();
}

class AgtctlErrorsE2eTest : public testing::AgtctlServerTest {};

TEST_F(AgtctlErrorsE2eTest, InvalidJobSpecPrintsTheFieldViolation) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string dataset =
      Line(Ctl({"dataset", "upload", Write("b.csv", BlobsCsv()), "-q"}).out);
  // A negative learning rate: agtctl sends the file as it is; the server refuses it.
  const std::string job = Write("job.json", R"({
    "architecture": {"layers": [{"dense": {"in": 2, "out": 1}}]},
    "loss": "LOSS_BINARY_CROSS_ENTROPY", "batch_size": 20, "epochs": 1,
    "optimizer": {"learning_rate": -0.5},
    "perturbation": {"kind": "PERTURBATION_KIND_REMOVAL"}, "budgets": [{"n": 1}]})");
  CommandResult text = Ctl({"train", job, "--dataset", dataset});
  EXPECT_EXIT_CODE(text, 2);
  EXPECT_TRUE(absl::StrContains(text.err, "agtctl: spec.optimizer.learning_rate: ")) << text.err;
  EXPECT_TRUE(absl::StrContains(text.err, "\n  reason: INVALID_FIELD\n")) << text.err;
  EXPECT_TRUE(absl::StrContains(text.err, "\n  field: spec.optimizer.learning_rate\n")) << text.err;

  CommandResult json = Ctl({"--json", "train", job, "--dataset", dataset});
  EXPECT_EXIT_CODE(json, 2);
  const nlohmann::json doc = nlohmann::json::parse(json.out);
  ExpectErrorShape(doc);
  const nlohmann::json& e = doc["error"];
  EXPECT_EQ(e["code"], "INVALID_ARGUMENT");
  EXPECT_EQ(e["grpc_code"], 3);
  EXPECT_EQ(e["reason"], "INVALID_FIELD");
  EXPECT_EQ(e["domain"], "agt.v1");
  EXPECT_EQ(e["metadata"]["method"], "/agt.v1.TrainingService/SubmitTrainingJob");
  ASSERT_EQ(e["field_violations"].size(), 1u) << json.out;
  EXPECT_EQ(e["field_violations"][0]["field"], "spec.optimizer.learning_rate");
  EXPECT_EQ(e["field_violations"][0]["description"], e["message"]);
  EXPECT_TRUE(e["quota_violations"].empty());
}

TEST_F(AgtctlErrorsE2eTest, UnknownModelHasItsIdInTheMetadata) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  CommandResult json = Ctl({"--json", "model", "get", "mdl-00000000000000000000"});
  EXPECT_EXIT_CODE(json, 3);
  const nlohmann::json doc = nlohmann::json::parse(json.out);
  ExpectErrorShape(doc);
  EXPECT_EQ(doc["error"]["reason"], "NOT_FOUND");
  EXPECT_EQ(doc["error"]["grpc_code"], 5);
  EXPECT_EQ(doc["error"]["metadata"]["model_id"], "mdl-00000000000000000000");
  EXPECT_TRUE(doc["error"]["field_violations"].empty());
}

TEST_F(AgtctlErrorsE2eTest, UnauthenticatedAndLocalErrorsKeepTheShape) {
  CommandResult line =
      RunCommand({AGT_SERVER_BINARY, "hash-token", "--role", "admin", "--tenant", "acme"}, {},
                 std::chrono::seconds(10), "tok-admin");
  ASSERT_EQ(line.exit_code, 0) << line.err;
  ASSERT_NO_FATAL_FAILURE(StartServer({"--tokens", Write("tokens.txt", line.out)}));
  CommandResult json = Ctl({"--json", "dataset", "list"}, "tok-wrong");
  EXPECT_EXIT_CODE(json, 4);
  nlohmann::json doc = nlohmann::json::parse(json.out);
  ExpectErrorShape(doc);
  EXPECT_EQ(doc["error"]["code"], "UNAUTHENTICATED");
  EXPECT_EQ(doc["error"]["reason"], "UNAUTHENTICATED");
  EXPECT_EQ(doc["error"]["metadata"]["method"], "/agt.v1.DatasetService/ListDatasets");
  // agtctl's own usage errors have no server details: empty, same keys.
  CommandResult usage = Ctl({"--json", "dataset", "upload", (dir_ / "absent.csv").string()});
  EXPECT_EXIT_CODE(usage, 2);
  doc = nlohmann::json::parse(usage.out);
  ExpectErrorShape(doc);
  EXPECT_EQ(doc["error"]["reason"], "");
  EXPECT_TRUE(doc["error"]["metadata"].empty());
}

TEST_F(AgtctlErrorsE2eTest, PrivacyBudgetRefusalPrintsTheQuotaViolation) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--privacy-budget", "1"}));
  const std::string model = TrainModel("blobs", BlobsCsv(), kSubstitutionJob);
  ASSERT_TRUE(absl::StartsWith(model, "mdl-")) << model;
  const std::string dataset = Line(Ctl({"dataset", "list", "-q"}).out);
  const std::string queries = Write("q.csv", "x0,x1\n-2,-2\n2,2\n");
  // Two rows at epsilon 0.75: 1.5 of a total of 1.
  CommandResult text = Ctl({"predict", model, queries, "--private", "--epsilon", "0.75"});
  EXPECT_EXIT_CODE(text, 1);
  EXPECT_TRUE(absl::StrContains(text.err, "\n  reason: PRIVACY_BUDGET_EXHAUSTED\n")) << text.err;
  EXPECT_TRUE(absl::StrContains(text.err, "\n  quota: tenant:")) << text.err;

  CommandResult json = Ctl({"--json", "predict", model, queries, "--private", "--epsilon", "0.75"});
  EXPECT_EXIT_CODE(json, 1);
  const nlohmann::json doc = nlohmann::json::parse(json.out);
  ExpectErrorShape(doc);
  const nlohmann::json& e = doc["error"];
  EXPECT_EQ(e["code"], "RESOURCE_EXHAUSTED");
  EXPECT_EQ(e["grpc_code"], 8);
  EXPECT_EQ(e["reason"], "PRIVACY_BUDGET_EXHAUSTED");
  EXPECT_EQ(e["metadata"]["model_id"], model);
  EXPECT_EQ(e["metadata"]["dataset_id"], dataset);
  ASSERT_EQ(e["quota_violations"].size(), 1u) << json.out;
  EXPECT_TRUE(
      absl::EndsWith(e["quota_violations"][0]["subject"].get<std::string>(), "/dataset:" + dataset))
      << json.out;
  EXPECT_TRUE(absl::StrContains(e["quota_violations"][0]["description"].get<std::string>(),
                                "nothing was spent"));
}

#endif  // AGT_SERVER_BINARY && AGTCTL_BINARY

}  // namespace
}  // namespace agt::client
