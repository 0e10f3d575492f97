// Training throughput of one job spread over worker processes (issue 19).
//
// Starts a private PostgreSQL server the way the tests do
// (tests/server/postgres_fixture.h: Debian's postgresql binaries, initdb into
// a temporary directory, a unix socket only), then for 1, 2 and 3 worker
// processes (agt-server --role worker, one training thread each) beside one
// API process (--role api), on a fresh schema each time: uploads a moons
// dataset, submits one job with 8 removal budgets and times it from submit
// to SUCCEEDED. One worker trains it whole (the baseline); N > 1 workers get
// --split-budgets-per-unit ceil(8 / N), i.e. N units, one per worker. Every
// run's exported model is compared bit for bit with the baseline's. Prints
// seconds per run (best of --repeats) and the ratio against one process,
// all measured in this run.
//
// Each unit trains the nominal trajectory again (it is shared by every
// budget), so N units do more work in all than one process: the speed-up is
// below N even with N idle cores, and at most the number of cores.
//
// Usage: agt_replicas_bench [--epochs E] [--rows R] [--hidden H] [--repeats K]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tests/server/e2e_util.h"
#include "tests/server/postgres_fixture.h"

namespace {

using agt::e2e::Client;
using agt::e2e::Clock;
using agt::e2e::ServerProcess;
using agt::server::testing_pg::PostgresServer;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "agt_replicas_bench: %s\n", what.c_str());
  std::exit(1);
}

struct Settings {
  int epochs = 60;
  int rows = 800;
  int hidden = 64;
  int repeats = 1;
};

Settings ParseArgs(int argc, char** argv) {
  Settings s;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    int* target = flag == "--epochs"    ? &s.epochs
                  : flag == "--rows"    ? &s.rows
                  : flag == "--hidden"  ? &s.hidden
                  : flag == "--repeats" ? &s.repeats
                                        : nullptr;
    if (target == nullptr || i + 1 >= argc || !absl::SimpleAtoi(argv[i + 1], target) ||
        *target < 1) {
      Die(
          absl::StrCat("usage: agt_replicas_bench [--epochs E] [--rows R] [--hidden H] "
                       "[--repeats K] (each >= 1); bad argument \"",
                       flag, "\""));
    }
    ++i;
  }
  return s;
}

agt::v1::TrainingJobSpec EightBudgetSpec(const Settings& s, const std::string& dataset_id) {
  agt::v1::TrainingJobSpec spec =
      agt::e2e::MoonsSpec(dataset_id, s.epochs, 50, {1, 2, 3, 4, 5, 6, 7, 8});
  spec.clear_hidden_widths();
  spec.add_hidden_widths(s.hidden);
  spec.mutable_optimizer()->set_learning_rate(0.02);
  return spec;
}

// Every double of the exported model (nominal, then each box's bounds).
std::vector<double> ExportedDoubles(Client& client, const std::string& model_id) {
  agt::v1::ExportModelRequest request;
  request.set_model_id(model_id);
  agt::v1::ExportModelResponse response;
  const grpc::Status status = client.models->ExportModel(agt::e2e::Ctx().get(), request, &response);
  if (!status.ok()) Die(absl::StrCat("ExportModel: ", status.error_message()));
  std::vector<double> out = agt::e2e::Flatten(response.model().nominal());
  for (const agt::v1::BudgetBox& box : response.boxes()) {
    for (const agt::v1::Parameters* p : {&box.lower(), &box.upper()}) {
      const std::vector<double> v = agt::e2e::Flatten(*p);
      out.insert(out.end(), v.begin(), v.end());
    }
  }
  return out;
}

struct Run {
  double seconds = 0.0;
  std::vector<double> model;
};

// One job on `workers` worker processes (and one API process) on a fresh
// schema; the servers stop when it returns.
Run TimeJob(const Settings& s, int workers, const agt::e2e::TempDir& dir, int round) {
  const std::string db = PostgresServer::Get().NewStoreUri();
  std::vector<std::unique_ptr<ServerProcess>> servers;
  auto start = [&](const std::string& role, std::vector<std::string> extra) {
    auto server = std::make_unique<ServerProcess>();
    std::vector<std::string> args = {"--role", role};
    args.insert(args.end(), extra.begin(), extra.end());
    const std::string log = dir.File(absl::StrCat("r", round, "_", workers, "_", servers.size()));
    if (!server->Start(agt::e2e::ServerArgs(db, args), log)) {
      Die(absl::StrCat("agt-server --role ", role, " did not start: ", server->Stderr()));
    }
    servers.push_back(std::move(server));
  };
  start("api", {});
  const int per_unit = (8 + workers - 1) / workers;
  for (int w = 0; w < workers; ++w) {
    start("worker", workers == 1 ? std::vector<std::string>{}
                                 : std::vector<std::string>{"--split-budgets-per-unit",
                                                            absl::StrCat(per_unit)});
  }
  Client client(servers.front()->address());
  const agt::v1::Dataset dataset = agt::e2e::UploadMoons(client, s.rows, 21);
  if (dataset.id().empty()) Die("the dataset upload failed");
  agt::v1::Job job;
  const auto t0 = Clock::now();
  if (const grpc::Status st = agt::e2e::Submit(client, EightBudgetSpec(s, dataset.id()), &job);
      !st.ok()) {
    Die(absl::StrCat("submit: ", st.error_message()));
  }
  const agt::v1::Job done =
      agt::e2e::WaitForFinal(client, job.id(), "", std::chrono::seconds(3600));
  Run run;
  run.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (done.state() != agt::v1::JOB_STATE_SUCCEEDED) {
    Die(absl::StrCat("job ", job.id(), " ended ", agt::v1::JobState_Name(done.state()), ": ",
                     done.error()));
  }
  run.model = ExportedDoubles(client, done.model_id());
  for (auto& server : servers) server->Signal(SIGTERM);
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  const Settings s = ParseArgs(argc, argv);
  PostgresServer& pg = PostgresServer::Get();
  if (!pg.Available()) Die(absl::StrCat("PostgreSQL: ", pg.WhyNot()));
  const agt::e2e::TempDir dir;
  const unsigned cores = std::thread::hardware_concurrency();
  std::printf(
      "agt_replicas_bench: one job, 8 removal budgets, moons %d rows, MLP 2-%d-1, batch "
      "50, %d epochs (%d steps); %u cores; best of %d\n",
      s.rows, s.hidden, s.epochs, s.rows / 50 * s.epochs, cores, s.repeats);
  std::vector<double> best(4, 1e300);
  std::vector<double> baseline_model;
  bool identical = true;
  for (int round = 0; round < s.repeats; ++round) {
    for (int workers = 1; workers <= 3; ++workers) {
      const Run run = TimeJob(s, workers, dir, round);
      best[workers] = std::min(best[workers], run.seconds);
      if (baseline_model.empty()) {
        baseline_model = run.model;
      } else if (run.model.size() != baseline_model.size() ||
                 std::memcmp(run.model.data(), baseline_model.data(),
                             run.model.size() * sizeof(double)) != 0) {
        identical = false;
      }
    }
  }
  std::printf("%-8s %-22s %10s %14s\n", "workers", "split", "seconds", "vs 1 process");
  for (int workers = 1; workers <= 3; ++workers) {
    const std::string split =
        workers == 1
            ? "unsplit"
            : absl::StrCat(workers, " units of <= ", (8 + workers - 1) / workers, " budgets");
    std::printf("%-8d %-22s %10.2f %13.2fx\n", workers, split.c_str(), best[workers],
                best[1] / best[workers]);
  }
  std::printf("models bit-identical to the 1-process run: %s\n", identical ? "yes" : "NO");
  return identical ? 0 : 1;
}
