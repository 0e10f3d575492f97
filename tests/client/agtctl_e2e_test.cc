// agtctl against the real agt-server: a fresh SQLite file in a temp dir, the
// server on 127.0.0.1 port 0, every step through the agtctl binary as a user
// would run it: upload -> train --wait -> model -> certify, exit codes of
// unknown ids and rejected requests, --json output, cancellation, tokens and
// tenants, and a clean SIGTERM shutdown.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/client/agtctl_fixture.h"
#include "tests/client/process.h"

namespace agt::client {
namespace {

#if defined(AGT_SERVER_BINARY) && defined(AGTCTL_BINARY)

using testing::BackgroundProcess;
using testing::CommandResult;
using testing::MoonsCsv;
using testing::RunCommand;

// A linear model on cubic features, removal budgets 1, 2, 5, 10 (the
// README's main job on a smaller dataset).
constexpr char kJob[] = R"({
  "name": "moons-e2e",
  "polynomial_degree": 3,
  "architecture": {"layers": [{"dense": {"in": 9, "out": 1}}]},
  "loss": "LOSS_BINARY_CROSS_ENTROPY",
  "batch_size": 200,
  "epochs": 3,
  "optimizer": {"learning_rate": 2.0, "lr_decay": 0.5},
  "perturbation": {"kind": "PERTURBATION_KIND_REMOVAL"},
  "budgets": [{"n": 1}, {"n": 2}, {"n": 5}, {"n": 10}],
  "seed": 0
})";

class AgtctlE2eTest : public testing::AgtctlServerTest {};

TEST_F(AgtctlE2eTest, UploadTrainWatchCertify) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  EXPECT_EXIT_CODE(Ctl({"health"}), 0);

  const std::string data = Write("moons.csv", MoonsCsv(1200, 7));
  CommandResult upload = Ctl({"dataset", "upload", data, "--name", "moons", "-q"});
  ASSERT_EQ(upload.exit_code, 0) << upload.err;
  const std::string dataset = Line(upload.out);
  ASSERT_TRUE(absl::StartsWith(dataset, "ds-")) << upload.out;
  CommandResult shown = Ctl({"dataset", "get", dataset});
  EXPECT_EXIT_CODE(shown, 0);
  EXPECT_TRUE(absl::StrContains(shown.out, "1200")) << shown.out;

  const std::string job = Write("job.json", kJob);
  CommandResult train = Ctl({"train", job, "--dataset", dataset, "--wait"});
  ASSERT_EQ(train.exit_code, 0) << train.out << train.err;
  EXPECT_TRUE(absl::StrContains(train.out, "SUCCEEDED")) << train.out;
  EXPECT_TRUE(absl::StrContains(train.err, "100%")) << train.err;
  EXPECT_TRUE(absl::StrContains(train.err, "width n=1 ")) << train.err;

  CommandResult models = Ctl({"model", "list", "-q"});
  ASSERT_EQ(models.exit_code, 0) << models.err;
  const std::string model = Line(models.out);
  ASSERT_TRUE(!model.empty() && !absl::StrContains(model, "\n")) << models.out;

  CommandResult get = Ctl({"model", "get", model});
  EXPECT_EXIT_CODE(get, 0);
  EXPECT_TRUE(absl::StrContains(get.out, "n=10")) << get.out;
  EXPECT_TRUE(absl::StrContains(get.out, "dense 9->1")) << get.out;

  const std::string queries = Write("q.csv", "x0,x1,y\n-0.9,0.3,0\n0,1,0\n1.5,-0.35,1\n2,0.4,1\n");
  CommandResult table = Ctl({"certify", model, queries, "--labels"});
  EXPECT_EXIT_CODE(table, 0);
  EXPECT_TRUE(absl::StrContains(table.out, "LARGEST STABLE")) << table.out;
  EXPECT_TRUE(absl::StrContains(table.out, "CORRECT")) << table.out;

  CommandResult json = Ctl({"certify", model, queries, "--labels", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  nlohmann::json doc = nlohmann::json::parse(json.out);
  ASSERT_EQ(doc["points"].size(), 4u);
  ASSERT_EQ(doc["budgets"].size(), 4u);
  for (const auto& point : doc["points"]) {
    ASSERT_EQ(point["stable"].size(), 4u);
    ASSERT_EQ(point["correct"].size(), 4u);
    // Stability is monotone in the budget: boxes nest.
    for (int b = 1; b < 4; ++b) {
      if (point["stable"][b].get<bool>()) {
        EXPECT_TRUE(point["stable"][b - 1].get<bool>());
      }
    }
    // largest_stable_budget and largest_stable_n agree with the stable flags.
    int largest = -1;
    for (int b = 0; b < 4; ++b) {
      if (point["stable"][b].get<bool>()) largest = b;
    }
    EXPECT_EQ(point["largest_stable_budget"], largest);
    if (largest < 0) {
      EXPECT_EQ(point["largest_stable_n"], -1);
    } else {
      EXPECT_EQ(point["largest_stable_n"], doc["budgets"][largest]["n"]);
    }
  }
  // The far-from-boundary points of a well-trained model are stable at n=1.
  EXPECT_TRUE(doc["points"][1]["stable"][0].get<bool>()) << json.out;

  CommandResult whole = Ctl({"certify", model, "--dataset", dataset});
  EXPECT_EXIT_CODE(whole, 0);
  EXPECT_TRUE(absl::StrContains(whole.out, "1200 rows")) << whole.out;

  const std::string exported = (dir_ / "model.json").string();
  EXPECT_EXIT_CODE(Ctl({"model", "export", model, "--out", exported}), 0);
  std::ifstream in(exported);
  nlohmann::json model_json = nlohmann::json::parse(in);
  EXPECT_EQ(model_json["boxes"].size(), 4u);
  EXPECT_EQ(model_json["model"]["id"], model);

  CommandResult jobs = Ctl({"jobs", "list", "--json"});
  ASSERT_EQ(jobs.exit_code, 0);
  nlohmann::json jobs_doc = nlohmann::json::parse(jobs.out);
  ASSERT_EQ(jobs_doc["jobs"].size(), 1u);
  EXPECT_EQ(jobs_doc["jobs"][0]["state"], "JOB_STATE_SUCCEEDED");
  EXPECT_EQ(jobs_doc["jobs"][0]["model_id"], model);
}

TEST_F(AgtctlE2eTest, ARerunWithTheSameRequestIdIsAnsweredOnce) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string data = Write("moons.csv", MoonsCsv(400, 3));
  // What a script does after a lost answer: run the same command again with
  // the same --request-id. The server answers with the first result.
  CommandResult first = Ctl({"dataset", "upload", data, "--request-id", "up-1", "-q"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  CommandResult again = Ctl({"dataset", "upload", data, "--request-id", "up-1", "-q"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(Line(again.out), Line(first.out));
  CommandResult datasets = Ctl({"dataset", "list", "-q"});
  ASSERT_EQ(datasets.exit_code, 0) << datasets.err;
  EXPECT_EQ(Line(datasets.out), Line(first.out)) << "one dataset stored";
  // The same id for other bytes is refused, not answered with the first dataset.
  const std::string other = Write("other.csv", MoonsCsv(400, 4));
  CommandResult clash = Ctl({"dataset", "upload", other, "--request-id", "up-1"});
  EXPECT_EXIT_CODE(clash, 2);
  EXPECT_TRUE(absl::StrContains(clash.err, "up-1")) << clash.err;
  // Without --request-id every run is a new request.
  CommandResult fresh = Ctl({"dataset", "upload", data, "-q"});
  ASSERT_EQ(fresh.exit_code, 0) << fresh.err;
  EXPECT_NE(Line(fresh.out), Line(first.out));

  const std::string job = Write("job.json", kJob);
  const std::string dataset = Line(first.out);
  CommandResult submitted = Ctl({"train", job, "--dataset", dataset, "--request-id", "job-1", "-q"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  CommandResult resubmitted =
      Ctl({"train", job, "--dataset", dataset, "--request-id", "job-1", "-q"});
  ASSERT_EQ(resubmitted.exit_code, 0) << resubmitted.err;
  EXPECT_EQ(Line(resubmitted.out), Line(submitted.out));
  CommandResult jobs = Ctl({"jobs", "list", "-q"});
  ASSERT_EQ(jobs.exit_code, 0) << jobs.err;
  EXPECT_EQ(Line(jobs.out), Line(submitted.out)) << "one job enqueued";
}

TEST_F(AgtctlE2eTest, ALostAnswerIsRetriedAndTheFailureNamesTheRequestId) {
  // Nothing listens on this port: every attempt is UNAVAILABLE.
  target_ = "127.0.0.1:1";
  const std::string data = Write("moons.csv", MoonsCsv(50, 3));
  const auto start = std::chrono::steady_clock::now();
  CommandResult upload =
      Ctl({"dataset", "upload", data, "--request-id", "lost-7", "--retries", "2"});
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EXIT_CODE(upload, 1);
  EXPECT_TRUE(absl::StrContains(upload.err, "rerun with --request-id lost-7")) << upload.err;
  EXPECT_GE(seconds, 1.4) << "two retries wait 0.5 s and 1 s";
  EXPECT_EXIT_CODE(Ctl({"dataset", "upload", data, "--retries", "11"}), 2);
}

TEST_F(AgtctlE2eTest, AnOversizedFileIsRefusedFromItsDeclaredSize) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--max-dataset-mib", "1"}));
  std::string csv = "x0,x1,y\n";
  while (csv.size() < (size_t{3} << 20)) csv += "0.123456789,0.987654321,1\n";
  const std::string big = Write("big.csv", csv);
  CommandResult upload = Ctl({"dataset", "upload", big});
  EXPECT_EXIT_CODE(upload, 1);
  // agtctl declares the file's size, so the server refuses it before any chunk.
  EXPECT_TRUE(absl::StrContains(upload.err, "the upload declares")) << upload.err;
}

TEST_F(AgtctlE2eTest, UnknownIdsExitThreeAndRejectedRequestsExitTwo) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string queries = Write("q.csv", "1,2\n");
  for (std::vector<std::string> args : {std::vector<std::string>{"dataset", "get", "ds-000000"},
                                        {"dataset", "rm", "ds-000000"},
                                        {"jobs", "get", "job-000000"},
                                        {"jobs", "cancel", "job-000000"},
                                        {"jobs", "watch", "job-000000"},
                                        {"model", "get", "mdl-000000"},
                                        {"model", "export", "mdl-000000"},
                                        {"certify", "mdl-000000", queries}}) {
    CommandResult result = Ctl(args);
    EXPECT_EXIT_CODE(result, 3) << absl::StrJoin(args, " ");
    EXPECT_FALSE(result.err.empty());
  }
  const std::string data = Write("moons.csv", MoonsCsv(300, 1));
  const std::string dataset = Line(Ctl({"dataset", "upload", data, "-q"}).out);
  ASSERT_FALSE(dataset.empty());
  const std::string job = Write("job.json", kJob);
  // Budget 200 is not below the batch size 200.
  CommandResult budget = Ctl({"train", job, "--dataset", dataset, "--budgets", "1,200"});
  EXPECT_EXIT_CODE(budget, 2);
  EXPECT_TRUE(absl::StrContains(budget.err, "200")) << budget.err;
  // A ragged CSV is refused by the server, naming the line.
  const std::string ragged = Write("ragged.csv", "x0,x1,y\n1,2,0\n3,1\n");
  CommandResult bad_upload = Ctl({"dataset", "upload", ragged});
  EXPECT_EXIT_CODE(bad_upload, 2);
  EXPECT_TRUE(absl::StrContains(bad_upload.err, "3")) << bad_upload.err;
  // Job referencing an unknown dataset.
  CommandResult no_dataset = Ctl({"train", job, "--dataset", "ds-000000"});
  EXPECT_TRUE(no_dataset.exit_code == 3 || no_dataset.exit_code == 2) << no_dataset.err;
  // The server is still serving.
  EXPECT_EXIT_CODE(Ctl({"health"}), 0);
}

TEST_F(AgtctlE2eTest, JsonOutputOfEveryReadCommandParses) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string data = Write("moons.csv", MoonsCsv(400, 2));
  CommandResult upload = Ctl({"--json", "dataset", "upload", data});
  ASSERT_EQ(upload.exit_code, 0) << upload.err;
  const std::string dataset = nlohmann::json::parse(upload.out)["dataset"]["id"];
  CommandResult train = Ctl({"--json", "train", Write("job.json", kJob), "--dataset", dataset,
                             "--wait", "--budgets", "1,2"});
  ASSERT_EQ(train.exit_code, 0) << train.err;
  nlohmann::json job = nlohmann::json::parse(train.out)["job"];
  const std::string job_id = job["id"];
  const std::string model = job["model_id"];
  for (std::vector<std::string> args : {std::vector<std::string>{"dataset", "list"},
                                        {"dataset", "get", dataset},
                                        {"jobs", "list"},
                                        {"jobs", "get", job_id},
                                        {"jobs", "watch", job_id},
                                        {"model", "list"},
                                        {"model", "get", model},
                                        {"certify", model, "--dataset", dataset},
                                        {"health"}}) {
    args.push_back("--json");
    CommandResult result = Ctl(args);
    EXPECT_EXIT_CODE(result, 0) << absl::StrJoin(args, " ");
    EXPECT_TRUE(nlohmann::json::accept(result.out)) << absl::StrJoin(args, " ") << "\n"
                                                    << result.out;
  }
}

TEST_F(AgtctlE2eTest, CancelledJobMakesWatchExitFive) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--workers", "1"}));
  const std::string data = Write("moons.csv", MoonsCsv(2000, 3));
  const std::string dataset = Line(Ctl({"dataset", "upload", data, "-q"}).out);
  ASSERT_FALSE(dataset.empty());
  // Long enough not to finish before the cancel arrives (200000 steps), and
  // too gentle to diverge first: a linear model, a small learning rate.
  const std::string spec = Write("long.json", R"({
    "architecture": {"layers": [{"dense": {"in": 2, "out": 1}}]},
    "loss": "LOSS_BINARY_CROSS_ENTROPY", "batch_size": 100, "epochs": 10000,
    "optimizer": {"learning_rate": 0.001},
    "perturbation": {"kind": "PERTURBATION_KIND_REMOVAL"}, "budgets": [{"n": 1}]})");
  CommandResult submit = Ctl({"train", spec, "--dataset", dataset, "-q"});
  ASSERT_EQ(submit.exit_code, 0) << submit.err;
  const std::string job = Line(submit.out);
  CommandResult cancel = Ctl({"jobs", "cancel", job});
  EXPECT_EXIT_CODE(cancel, 0);
  CommandResult watch = Ctl({"jobs", "watch", job});
  EXPECT_EXIT_CODE(watch, 5);
  EXPECT_TRUE(absl::StrContains(watch.out, "CANCELLED")) << watch.out;
  EXPECT_TRUE(absl::StrContains(watch.err, "ended CANCELLED")) << watch.err;
}

TEST_F(AgtctlE2eTest, WatchRidesThroughAServerRestart) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string address = target_;
  const std::string data = Write("moons.csv", MoonsCsv(2000, 5));
  const std::string dataset = Line(Ctl({"dataset", "upload", data, "-q"}).out);
  ASSERT_FALSE(dataset.empty());
  // 200000 steps of a linear model: seconds in a release build, so the
  // restart lands mid-job; the job is cancelled once it has resumed, which
  // keeps the test short in slow (sanitizer) builds too.
  const std::string spec = Write("job.json", R"({
    "architecture": {"layers": [{"dense": {"in": 2, "out": 1}}]},
    "loss": "LOSS_BINARY_CROSS_ENTROPY", "batch_size": 100, "epochs": 10000,
    "optimizer": {"learning_rate": 0.001},
    "perturbation": {"kind": "PERTURBATION_KIND_REMOVAL"}, "budgets": [{"n": 1}]})");
  CommandResult submit = Ctl({"train", spec, "--dataset", dataset, "-q"});
  ASSERT_EQ(submit.exit_code, 0) << submit.err;
  const std::string job = Line(submit.out);
  std::future<CommandResult> watch = std::async(std::launch::async, [&] {
    return RunCommand({AGTCTL_BINARY, "--server", address, "jobs", "watch", job}, {},
                      std::chrono::seconds(300));
  });
  // (state, iteration) of the job, from agtctl's JSON.
  auto progress = [&]() -> std::pair<std::string, int64_t> {
    CommandResult get = Ctl({"jobs", "get", job, "--json"});
    if (get.exit_code != 0) return {"", -1};
    nlohmann::json j = nlohmann::json::parse(get.out)["job"];
    return {j["state"], std::stoll(j["progress"]["iteration"].get<std::string>())};
  };
  auto wait_until = [&](const std::function<bool(const std::pair<std::string, int64_t>&)>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (std::chrono::steady_clock::now() < deadline) {
      if (done(progress())) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  };
  ASSERT_TRUE(wait_until([](const auto& p) { return p.second > 0; }));
  ASSERT_EQ(server_.Stop(std::chrono::seconds(30)), 0);  // SIGTERM: the job checkpoints
  // The same port again, the same database: the job resumes from its checkpoint.
  ASSERT_NO_FATAL_FAILURE(StartServer({}, address));
  const int64_t at_restart = progress().second;
  ASSERT_GE(at_restart, 0);
  ASSERT_TRUE(wait_until(
      [&](const auto& p) { return p.second > at_restart || p.first == "JOB_STATE_SUCCEEDED"; }));
  CommandResult cancel = Ctl({"jobs", "cancel", job});
  CommandResult watched = watch.get();
  // The watch outlived the old server and saw the job end on the new one:
  // cancelled (or, on a very fast machine, finished first).
  if (watched.exit_code == 0) {
    EXPECT_TRUE(absl::StrContains(watched.out, "SUCCEEDED")) << watched.out;
  } else {
    EXPECT_EXIT_CODE(watched, 5);
    EXPECT_TRUE(absl::StrContains(watched.err, "ended CANCELLED")) << watched.err;
  }
}

TEST_F(AgtctlE2eTest, TokensRolesAndTenants) {
  // Tokens file lines come from the server's own hash-token command.
  std::string tokens;
  for (auto [token, role, tenant] :
       {std::tuple<std::string, std::string, std::string>{"tok-alice", "trainer", "acme"},
        {"tok-query", "querier", "acme"},
        {"tok-bob", "trainer", "globex"}}) {
    CommandResult line =
        RunCommand({AGT_SERVER_BINARY, "hash-token", "--role", role, "--tenant", tenant}, {},
                   std::chrono::seconds(10), token);
    ASSERT_EQ(line.exit_code, 0) << line.err;
    tokens += line.out;
  }
  const std::string tokens_file = Write("tokens.txt", tokens);
  ASSERT_NO_FATAL_FAILURE(StartServer({"--tokens", tokens_file}));

  EXPECT_EXIT_CODE(Ctl({"health"}), 0);  // no token needed
  EXPECT_EXIT_CODE(Ctl({"dataset", "list"}), 4);
  EXPECT_EXIT_CODE(Ctl({"dataset", "list"}, "tok-wrong"), 4);

  const std::string data = Write("moons.csv", MoonsCsv(300, 4));
  CommandResult upload = Ctl({"dataset", "upload", data, "-q"}, "tok-alice");
  ASSERT_EQ(upload.exit_code, 0) << upload.err;
  const std::string dataset = Line(upload.out);
  EXPECT_EXIT_CODE(Ctl({"dataset", "get", dataset}, "tok-alice"), 0);
  EXPECT_EXIT_CODE(Ctl({"dataset", "get", dataset}, "tok-query"), 0);  // same tenant, read
  EXPECT_EXIT_CODE(Ctl({"dataset", "upload", data}, "tok-query"), 4);  // querier cannot write
  // Another tenant cannot tell the dataset exists.
  CommandResult other = Ctl({"dataset", "get", dataset}, "tok-bob");
  EXPECT_EXIT_CODE(other, 3);
  CommandResult listed = Ctl({"dataset", "list", "-q"}, "tok-bob");
  EXPECT_EXIT_CODE(listed, 0);
  EXPECT_EQ(listed.out, "");
  // Token from the environment.
  CommandResult from_env = RunCommand({AGTCTL_BINARY, "--server", target_, "dataset", "list", "-q"},
                                      {{"AGT_TOKEN", "tok-alice"}}, std::chrono::seconds(60));
  EXPECT_EXIT_CODE(from_env, 0);
  EXPECT_EQ(Line(from_env.out), dataset);
}

TEST_F(AgtctlE2eTest, ModelsAndJobsAreDeletedInOrderAndForgottenEverywhere) {
  std::string tokens;
  for (auto [token, role] : {std::pair<std::string, std::string>{"tok-train", "trainer"},
                             {"tok-query", "querier"}}) {
    CommandResult line =
        RunCommand({AGT_SERVER_BINARY, "hash-token", "--role", role, "--tenant", "acme"}, {},
                   std::chrono::seconds(10), token);
    ASSERT_EQ(line.exit_code, 0) << line.err;
    tokens += line.out;
  }
  ASSERT_NO_FATAL_FAILURE(StartServer({"--tokens", Write("tokens.txt", tokens)}));
  const std::string t = "tok-train";
  CommandResult upload = Ctl({"dataset", "upload", Write("m.csv", MoonsCsv(400, 3)), "-q"}, t);
  ASSERT_EQ(upload.exit_code, 0) << upload.err;
  const std::string dataset = Line(upload.out);
  CommandResult train = Ctl({"train", Write("job.json", kJob), "--dataset", dataset, "--wait",
                             "--quiet"},
                            t);
  ASSERT_EQ(train.exit_code, 0) << train.out << train.err;
  CommandResult listed = Ctl({"jobs", "list", "--json"}, t);
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  const nlohmann::json jobs = nlohmann::json::parse(listed.out);
  ASSERT_EQ(jobs["jobs"].size(), 1u);
  const std::string job = jobs["jobs"][0]["id"];
  const std::string model = jobs["jobs"][0]["model_id"];
  // Certified once, so the server holds the model in its cache.
  const std::string queries = Write("q.csv", "x0,x1\n-0.9,0.3\n2,0.4\n");
  EXPECT_EXIT_CODE(Ctl({"certify", model, queries}, t), 0);

  // The job's model exists: the job stays (exit 1, a failed precondition).
  CommandResult blocked = Ctl({"jobs", "rm", job}, t);
  EXPECT_EXIT_CODE(blocked, 1);
  EXPECT_TRUE(absl::StrContains(blocked.err, "delete the model first")) << blocked.err;
  CommandResult blocked_json = Ctl({"jobs", "rm", job, "--json"}, t);
  EXPECT_EXIT_CODE(blocked_json, 1);
  const nlohmann::json error = nlohmann::json::parse(blocked_json.out)["error"];
  EXPECT_EQ(error["reason"], "MODEL_EXISTS") << blocked_json.out;
  EXPECT_EQ(error["metadata"]["model_id"], model) << blocked_json.out;
  // A querier may not delete.
  EXPECT_EXIT_CODE(Ctl({"model", "rm", model}, "tok-query"), 4);

  CommandResult removed = Ctl({"model", "rm", model}, t);
  EXPECT_EXIT_CODE(removed, 0);
  EXPECT_TRUE(absl::StrContains(removed.out, "deleted model " + model)) << removed.out;
  // Gone from every service, the cached copy included.
  EXPECT_EXIT_CODE(Ctl({"certify", model, queries}, t), 3);
  EXPECT_EXIT_CODE(Ctl({"model", "get", model}, t), 3);
  EXPECT_EXIT_CODE(Ctl({"model", "rm", model}, t), 3);
  CommandResult models = Ctl({"model", "list", "-q"}, t);
  EXPECT_EXIT_CODE(models, 0);
  EXPECT_EQ(models.out, "");

  EXPECT_EXIT_CODE(Ctl({"jobs", "rm", job}, t), 0);
  EXPECT_EXIT_CODE(Ctl({"jobs", "get", job}, t), 3);
  EXPECT_EXIT_CODE(Ctl({"dataset", "rm", dataset}, t), 0);
}

TEST_F(AgtctlE2eTest, TlsWithACaFile) {
  if (access("/usr/bin/openssl", X_OK) != 0) {
    GTEST_SKIP() << "no /usr/bin/openssl to make a test certificate";
  }
  const std::string cert = (dir_ / "cert.pem").string();
  const std::string key = (dir_ / "key.pem").string();
  CommandResult made =
      RunCommand({"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                  key, "-out", cert, "-days", "1", "-subj", "/CN=localhost", "-addext",
                  "subjectAltName=DNS:localhost,IP:127.0.0.1"},
                 {}, std::chrono::seconds(60));
  ASSERT_EQ(made.exit_code, 0) << made.err;
  ASSERT_NO_FATAL_FAILURE(StartServer({"--tls-cert", cert, "--tls-key", key}));
  EXPECT_EXIT_CODE(Ctl({"--tls-ca", cert, "health"}), 0);
  EXPECT_EXIT_CODE(Ctl({"--tls-ca", cert, "dataset", "list"}), 0);
  // The CA from the environment.
  CommandResult from_env = RunCommand({AGTCTL_BINARY, "--server", target_, "health"},
                                      {{"AGT_TLS_CA", cert}}, std::chrono::seconds(30));
  EXPECT_EXIT_CODE(from_env, 0);
  // Plaintext to a TLS server, and TLS without the right CA, both fail.
  EXPECT_EXIT_CODE(Ctl({"--timeout", "3", "health"}), 1);
  CommandResult untrusted = Ctl({"--tls", "--timeout", "3", "health"});
  EXPECT_EXIT_CODE(untrusted, 1);
  EXPECT_TRUE(absl::StrContains(untrusted.err, "TLS: check --tls-ca")) << untrusted.err;
}

TEST_F(AgtctlE2eTest, JsonModePrintsFailuresAsJsonToo) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  CommandResult missing = Ctl({"--json", "model", "get", "mdl-00000000000000000000"});
  EXPECT_EXIT_CODE(missing, 3);
  nlohmann::json doc = nlohmann::json::parse(missing.out);
  EXPECT_EQ(doc["error"]["code"], "NOT_FOUND");
  EXPECT_EQ(doc["error"]["exit_code"], 3);
  EXPECT_TRUE(absl::StrContains(doc["error"]["message"].get<std::string>(), "not found"))
      << missing.out;
  EXPECT_TRUE(absl::StrContains(missing.err, "not found")) << "the text stays on stderr";
  // A local usage error too (exit 2), and no JSON without --json.
  CommandResult usage = Ctl({"--json", "dataset", "upload", (dir_ / "absent.csv").string()});
  EXPECT_EXIT_CODE(usage, 2);
  EXPECT_EQ(nlohmann::json::parse(usage.out)["error"]["exit_code"], 2);
  CommandResult plain = Ctl({"model", "get", "mdl-00000000000000000000"});
  EXPECT_EXIT_CODE(plain, 3);
  EXPECT_TRUE(plain.out.empty()) << plain.out;
}

TEST_F(AgtctlE2eTest, EveryProgramPrintsTheProjectsVersionAndCommit) {
  // AGT_PROJECT_VERSION is CMake's project(VERSION), given to this test; the
  // commit is asked of git here (the build asked it when it built). Outside
  // a git checkout the programs say "unknown".
  CommandResult git =
      RunCommand({"/usr/bin/git", "-C", AGT_SOURCE_DIR, "rev-parse", "--short=12", "HEAD"});
  const std::string commit = git.exit_code == 0 ? Line(git.out) : "unknown";
  ASSERT_FALSE(commit.empty());
  const std::string tail = absl::StrCat(AGT_PROJECT_VERSION, " (commit ", commit);
  CommandResult ctl = RunCommand({AGTCTL_BINARY, "--version"});
  EXPECT_EXIT_CODE(ctl, 0);
  EXPECT_TRUE(absl::StartsWith(ctl.out, absl::StrCat("agtctl ", tail))) << ctl.out;
  EXPECT_TRUE(absl::EndsWith(ctl.out, ", API agt.v1)\n")) << ctl.out;
  CommandResult server = RunCommand({AGT_SERVER_BINARY, "--version"});
  EXPECT_EXIT_CODE(server, 0);
  EXPECT_TRUE(absl::StartsWith(server.out, absl::StrCat("agt-server ", tail))) << server.out;
  EXPECT_TRUE(absl::StrContains(server.out, ", database schema ")) << server.out;
  CommandResult cli = RunCommand({AGT_CLI_BINARY, "--version"});
  EXPECT_EXIT_CODE(cli, 0);
  EXPECT_TRUE(absl::StartsWith(cli.out, absl::StrCat("agt ", tail))) << cli.out;
  EXPECT_TRUE(absl::StrContains(RunCommand({AGTCTL_BINARY, "--help"}).out, "agtctl --version"));
}

TEST_F(AgtctlE2eTest, ServerStopsCleanlyOnSigterm) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  EXPECT_EXIT_CODE(Ctl({"health"}), 0);
  EXPECT_EQ(server_.Stop(std::chrono::seconds(20)), 0);
  CommandResult after =
      RunCommand({AGTCTL_BINARY, "--server", target_, "--timeout", "3", "health"});
  EXPECT_EXIT_CODE(after, 1);
}

#else
TEST(AgtctlE2eTest, SkippedWithoutServer) {
  GTEST_SKIP() << "agt-server (AGT_SERVER_BINARY) or agtctl (AGTCTL_BINARY) is not built in this "
                  "tree; the end-to-end tests need both";
}
#endif

}  // namespace
}  // namespace agt::client
