// agt-server: the AGT certification service. See kUsage below (and
// server/service/server.h for the startup and shutdown order).
#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agt/version.h"
#include "core/common/decimal.h"
#include "server/auth/tokens.h"
#include "server/domain/admission.h"
#include "server/observability/log.h"
#include "server/service/server.h"
#include "server/store/store.h"

namespace {

constexpr char kUsage[] = R"(agt-server: the AGT certification service (gRPC API agt.v1).

Usage:
  agt-server --listen HOST:PORT --db FILE [options]
  agt-server hash-token [--role ROLE] [--tenant TENANT] [--label TEXT] < token
  agt-server --help
  agt-server --version   the version and the database schema it reads and writes

Serving:
  --listen HOST:PORT     Address to listen on: 127.0.0.1:50051, [::1]:50051,
                         0.0.0.0:50051. Port 0 picks a free port. Once ready the
                         server prints exactly one line "listening on HOST:PORT"
                         (with the real port) on stdout.
  --db FILE|URI          SQLite database file (created if missing; WAL mode;
                         one server per file), or a PostgreSQL database shared
                         by several servers: postgresql://USER@HOST:PORT/DB
                         (libpq URI; the schema is created on first use). Holds
                         datasets, jobs, checkpoints and models; nothing is kept
                         only in memory.
  --role all|api|worker  What this process does (default all: both). On a
                         PostgreSQL --db: api serves the RPCs and trains
                         nothing; worker trains queued jobs and serves only the
                         gRPC health service on --listen (for probes).
  --job-lease-seconds S  Workers on PostgreSQL: a claimed job is leased this
                         long (default 60), renewed by its progress; a worker
                         that dies loses it, and another worker resumes the
                         job from its last checkpoint after that long.
  --split-budgets-per-unit K
                         Workers: a job with more than K budgets is split into
                         units of K consecutive budgets when it is claimed;
                         each unit (the nominal trajectory and its budgets'
                         boxes) is claimed, leased and checkpointed like a job
                         by any worker on the database, and the model is bit
                         for bit the unsplit one (0..4096, default 0: off).
  --workers N            Jobs trained at the same time (1..64, default 1).
  --max-job-memory SIZE  Largest estimated peak memory of one job: bytes, or
                         with K, M, G, T (decimal) or KiB, MiB, GiB, TiB.
                         Default: 75% of the machine's memory (MemTotal, or the
                         cgroup limit when lower) divided by --workers. A job
                         whose estimate (aggregators, passes, parameter state,
                         dataset) exceeds it runs with one thread or with its
                         factors held in groups of rows when that fits
                         (results are the same); otherwise, or when its
                         checkpoint exceeds SQLite's blob limit, it is refused
                         with RESOURCE_EXHAUSTED naming both figures.
  --max-jobs-per-tenant N  QUEUED + RUNNING jobs one tenant may have (default
                         16, 0 = no limit); more are RESOURCE_EXHAUSTED.
  --threads-per-job N    Threads inside one job (default 0 = all cores); results
                         do not depend on it.
  --backend B            Where jobs train unless their spec says: auto (default:
                         the GPU when one is visible, else the CPU), cpu, cuda
                         (refused at start without a GPU). Every backend gives
                         the same bounds; jobs and models record which one ran.
  --checkpoint-seconds S Checkpoint running jobs at least every S seconds
                         (default 2).
  --checkpoint-steps N   Also checkpoint every N steps (default 0 = by time only).
  --max-dataset-mib N    Largest dataset upload in MiB (default 256). Requests
                         over 64 MiB and upload chunks over 1 MiB are refused too.
  --max-artifact-mib N   Largest model artifact (ONNX file) upload in MiB
                         (default 64, at most 1024); larger ones are
                         RESOURCE_EXHAUSTED naming the size and the limit.
  --max-uploads-per-tenant N  Uploads one tenant may have in progress at once
                         (default 4); more are RESOURCE_EXHAUSTED.
  --max-uploads N        Uploads of all tenants in progress at once (default 16;
                         each may hold up to --max-dataset-mib x 3); more are
                         RESOURCE_EXHAUSTED.
  --max-watches-per-tenant N  WatchJob streams one tenant may keep open at
                         once (default 16; each holds a server thread); more are
                         RESOURCE_EXHAUSTED.
  --upload-idle-timeout S  An upload stream that brings no message for S seconds
                         is dropped with DEADLINE_EXCEEDED (default 60).
  --default-deadline S   Deadline of long calls (certify, private predictions,
                         uploads) that set none
                         (default 300 s); past it, or once the caller's own
                         deadline passes or it goes away, the work stops between
                         chunks (DEADLINE_EXCEEDED / CANCELLED).
  --shutdown-grace S     On SIGTERM, calls in flight get S seconds to finish
                         (default 5); then they are cancelled and stop.
  --max-request-mib N    Working memory all certify calls together may use
                         (default 1024). Rows are certified in chunks; a call
                         waits for its chunk's share, and one whose single row
                         needs more is RESOURCE_EXHAUSTED.
  --tokens FILE          Bearer tokens (see below). Without it the server runs in
                         local single-user mode: every caller is the admin of
                         tenant "local", and only loopback addresses (127.0.0.0/8,
                         ::1, localhost) may be listened on.
  --tls-cert FILE        PEM certificate chain; with --tls-key, serve TLS.
  --tls-key FILE         PEM private key.
  --metrics-listen HOST:PORT  Serve Prometheus metrics (text format) at
                         http://HOST:PORT/metrics (default: off; port 0 picks a
                         free port, logged as event "metrics_listening"). The
                         endpoint has no authentication and names tenants and
                         job ids: listen on loopback or a private network.
  --log-format json|text Server log on stderr: one JSON object per line
                         (default) or one line of text per record; one record
                         per RPC (method, tenant, principal, peer, code,
                         latency_ms, request_id), job lifecycle, auth failures,
                         startup and shutdown (server/README.md, "Logs").
  --audit-log FILE       Append one JSON line per privacy release, deletion
                         decision and certificate served, refusals included
                         (who, model, what was asked and answered); flushed per
                         record (default: off).
  --privacy-budget E     Total epsilon per (tenant, training dataset): shared by
                         every token of the tenant and every model trained on
                         the dataset or on one derived from it (default 10,
                         at most 2^22). Kept exactly, in quanta of 2^-40, in
                         the database; changing E applies to what remains.

Private prediction (agt.v1.PrivacyService): every label released with epsilon
  is epsilon-DP (delta = 0); every release about a dataset, to any token of
  the tenant and from any model trained on it, adds its epsilon (rounded up to
  quanta of 2^-40; a smaller epsilon is refused) to the dataset's budget, and
  a request that would pass --privacy-budget is refused (RESOURCE_EXHAUSTED)
  and charges nothing. A retried request_id returns the first answer, free.

Tokens file: one token per line,
    <sha256-hex-of-token> <role> <tenant> [label]
  role admin | trainer | querier | private-querier: admin and trainer may do
  everything in their tenant (upload/delete datasets, submit/cancel jobs, read,
  certify, private predictions); querier may read, certify and ask for private
  predictions; private-querier may only ask for private predictions and its
  budget (it never sees parameters, certificates or n*). tenant: 1..64 of [A-Za-z0-9_.-]. Blank lines and
  '#' comments are ignored. Only hashes are stored; clients send
  "authorization: Bearer <token>". A token never sees another tenant's data.
  Build lines with:  printf %s "$TOKEN" | agt-server hash-token --role trainer --tenant acme

hash-token: reads one token from stdin (surrounding whitespace ignored) and
  prints its tokens-file line, role defaulting to trainer and tenant to
  "default".

Standard gRPC health checking (grpc.health.v1.Health) and server reflection
are served without credentials. SIGTERM or SIGINT shuts down cleanly: streams
end, running jobs checkpoint and stay queued, exit status 0; they resume on the
next start. Exit status 2: bad flags, unreadable files, database errors, or a
non-loopback address without --tokens.

Poison jobs: a job that fails inside (an allocation failure included) becomes
FAILED with the reason and the server goes on. Jobs resume only after the
server serves; a job that was running when the process died (not a clean
SIGTERM stop) 3 times is marked FAILED instead of resumed.
)";

int UsageError(const std::string& message) {
  std::cerr << "agt-server: " << message << "\n(agt-server --help for usage)\n";
  return 2;
}

// Splits "--name=value" / "--name value" flags; every flag takes a value.
absl::Status ParseFlags(const std::vector<std::string>& args, const std::vector<std::string>& known,
                        std::map<std::string, std::string>* values) {
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (arg.rfind("--", 0) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'"));
    }
    std::string value;
    const size_t eq = arg.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    bool is_known = false;
    for (const std::string& name : known) is_known = is_known || arg == "--" + name;
    if (!is_known) return absl::InvalidArgumentError(absl::StrCat("unknown flag '", arg, "'"));
    if (!inline_value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat(arg, ": missing value"));
      }
      value = args[++i];
    }
    if (values->count(arg.substr(2)) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(arg, ": given twice"));
    }
    (*values)[arg.substr(2)] = value;
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status ParseNumber(const std::map<std::string, std::string>& values, const std::string& name,
                         T* out) {
  auto it = values.find(name);
  if (it == values.end()) return absl::OkStatus();
  bool ok = false;
  if constexpr (std::is_same_v<T, double>) {
    ok = agt::ParseFiniteDecimal(it->second, out);
  } else {
    ok = absl::SimpleAtoi(it->second, out);
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": '", it->second, "' is not a number"));
  }
  return absl::OkStatus();
}

int HashToken(const std::vector<std::string>& args) {
  std::map<std::string, std::string> flags;
  if (absl::Status s = ParseFlags(args, {"role", "tenant", "label"}, &flags); !s.ok()) {
    return UsageError(std::string(s.message()));
  }
  const std::string role_name = flags.count("role") ? flags["role"] : "trainer";
  const std::string tenant = flags.count("tenant") ? flags["tenant"] : "default";
  absl::StatusOr<agt::server::Role> role = agt::server::ParseRole(role_name);
  if (!role.ok()) return UsageError(absl::StrCat("--role: ", role.status().message()));
  if (!agt::server::IsValidTenant(tenant)) {
    return UsageError(
        absl::StrCat("--tenant: '", tenant, "' must be 1..64 characters of [A-Za-z0-9_.-]"));
  }
  const std::string input(std::istreambuf_iterator<char>(std::cin), {});
  const std::string token(absl::StripAsciiWhitespace(input));
  if (token.empty()) return UsageError("hash-token: no token on stdin");
  for (char c : token) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      return UsageError("hash-token: the token must not contain whitespace");
    }
  }
  std::cout << agt::server::HashToHex(agt::server::HashToken(token)) << " " << role_name << " "
            << tenant;
  if (flags.count("label")) std::cout << " " << flags["label"];
  std::cout << std::endl;
  return 0;
}

int Serve(const std::vector<std::string>& args) {
  std::map<std::string, std::string> flags;
  const std::vector<std::string> known = {"listen",
                                          "db",
                                          "workers",
                                          "threads-per-job",
                                          "checkpoint-seconds",
                                          "checkpoint-steps",
                                          "max-dataset-mib",
                                          "max-artifact-mib",
                                          "tokens",
                                          "tls-cert",
                                          "tls-key",
                                          "privacy-budget",
                                          "max-uploads-per-tenant",
                                          "max-watches-per-tenant",
                                          "max-uploads",
                                          "upload-idle-timeout",
                                          "default-deadline",
                                          "shutdown-grace",
                                          "max-request-mib",
                                          "max-job-memory",
                                          "max-jobs-per-tenant",
                                          "metrics-listen",
                                          "log-format",
                                          "audit-log",
                                          "role",
                                          "job-lease-seconds",
                                          "split-budgets-per-unit",
                                          "backend"};
  if (absl::Status s = ParseFlags(args, known, &flags); !s.ok()) {
    return UsageError(std::string(s.message()));
  }
  if (!flags.count("listen")) return UsageError("--listen HOST:PORT is required");
  if (!flags.count("db")) return UsageError("--db FILE|URI is required");
  if (flags.count("log-format")) {
    absl::StatusOr<agt::server::LogFormat> format =
        agt::server::ParseLogFormat(flags["log-format"]);
    if (!format.ok()) return UsageError(std::string(format.status().message()));
    agt::server::SetLogFormat(*format);
  }
  agt::server::ServerOptions options;
  options.listen = flags["listen"];
  options.metrics_listen = flags.count("metrics-listen") ? flags["metrics-listen"] : "";
  options.audit_log_path = flags.count("audit-log") ? flags["audit-log"] : "";
  options.db_path = flags["db"];
  if (flags.count("backend")) {
    absl::StatusOr<agt::BackendChoice> backend = agt::ParseBackendChoice(flags["backend"]);
    if (!backend.ok()) return UsageError(absl::StrCat("--backend: ", backend.status().message()));
    options.backend = *backend;
    if (absl::StatusOr<std::string> usable = agt::ResolveBackend(*backend); !usable.ok()) {
      return UsageError(absl::StrCat("--backend: ", usable.status().message()));
    }
  }
  if (flags.count("role")) {
    absl::StatusOr<agt::server::ServerRole> role = agt::server::ParseServerRole(flags["role"]);
    if (!role.ok()) return UsageError(std::string(role.status().message()));
    options.role = *role;
  }
  options.tokens_path = flags.count("tokens") ? flags["tokens"] : "";
  options.tls_cert_path = flags.count("tls-cert") ? flags["tls-cert"] : "";
  options.tls_key_path = flags.count("tls-key") ? flags["tls-key"] : "";
  int64_t max_dataset_mib = 256;
  int64_t max_artifact_mib = 64;
  double upload_idle_seconds = 60;
  double default_deadline_seconds = 300;
  double shutdown_grace_seconds = 5;
  double job_lease_seconds = 60;
  int64_t max_request_mib = 1024;
  for (absl::Status s :
       {ParseNumber(flags, "workers", &options.workers),
        ParseNumber(flags, "threads-per-job", &options.threads_per_job),
        ParseNumber(flags, "checkpoint-seconds", &options.checkpoint_every_seconds),
        ParseNumber(flags, "checkpoint-steps", &options.checkpoint_every_steps),
        ParseNumber(flags, "max-dataset-mib", &max_dataset_mib),
        ParseNumber(flags, "max-artifact-mib", &max_artifact_mib),
        ParseNumber(flags, "privacy-budget", &options.privacy_budget),
        ParseNumber(flags, "max-uploads-per-tenant", &options.max_uploads_per_tenant),
        ParseNumber(flags, "max-watches-per-tenant", &options.max_watches_per_tenant),
        ParseNumber(flags, "max-uploads", &options.max_uploads),
        ParseNumber(flags, "upload-idle-timeout", &upload_idle_seconds),
        ParseNumber(flags, "default-deadline", &default_deadline_seconds),
        ParseNumber(flags, "shutdown-grace", &shutdown_grace_seconds),
        ParseNumber(flags, "max-request-mib", &max_request_mib),
        ParseNumber(flags, "max-jobs-per-tenant", &options.max_jobs_per_tenant),
        ParseNumber(flags, "job-lease-seconds", &job_lease_seconds),
        ParseNumber(flags, "split-budgets-per-unit", &options.split_budgets_per_unit)}) {
    if (!s.ok()) return UsageError(std::string(s.message()));
  }
  constexpr int64_t kMaxArtifactMib = 1024;
  if (max_artifact_mib < 1 || max_artifact_mib > kMaxArtifactMib) {
    return UsageError(absl::StrCat("--max-artifact-mib: ", max_artifact_mib, " must be 1..",
                                   kMaxArtifactMib));
  }
  options.max_artifact_bytes = max_artifact_mib << 20;
  if (!(job_lease_seconds >= 1 && job_lease_seconds <= 86400)) {
    return UsageError(
        absl::StrCat("--job-lease-seconds: ", job_lease_seconds, " must be 1..86400"));
  }
  options.job_lease_ms = static_cast<int64_t>(job_lease_seconds * 1000);
  constexpr int kMaxSplitBudgets = 4096;
  if (options.split_budgets_per_unit < 0 || options.split_budgets_per_unit > kMaxSplitBudgets) {
    return UsageError(absl::StrCat("--split-budgets-per-unit: ", options.split_budgets_per_unit,
                                   " must be 0..", kMaxSplitBudgets));
  }
  constexpr int64_t kMaxDatasetMib = 64 * 1024;
  if (max_dataset_mib < 1 || max_dataset_mib > kMaxDatasetMib) {
    return UsageError(
        absl::StrCat("--max-dataset-mib: ", max_dataset_mib, " must be 1..", kMaxDatasetMib));
  }
  options.max_dataset_bytes = max_dataset_mib << 20;
  for (auto [name, seconds] : {std::pair<const char*, double>{"upload-idle-timeout",
                                                               upload_idle_seconds},
                               {"default-deadline", default_deadline_seconds},
                               {"shutdown-grace", shutdown_grace_seconds}}) {
    if (!(seconds >= 0.001 && seconds <= 86400.0)) {
      return UsageError(absl::StrCat("--", name, ": ", seconds, " must be 0.001..86400 seconds"));
    }
  }
  const auto to_ms = [](double seconds) {
    return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0 + 0.5));
  };
  options.upload_idle_timeout = to_ms(upload_idle_seconds);
  options.default_deadline = to_ms(default_deadline_seconds);
  const std::chrono::milliseconds shutdown_grace = to_ms(shutdown_grace_seconds);
  if (max_request_mib < 1 || max_request_mib > int64_t{1} << 20) {
    return UsageError(
        absl::StrCat("--max-request-mib: ", max_request_mib, " must be 1..", int64_t{1} << 20));
  }
  options.max_request_memory_bytes = max_request_mib << 20;
  if (flags.count("max-job-memory")) {
    absl::StatusOr<int64_t> bytes = agt::server::ParseByteSize(flags["max-job-memory"]);
    if (!bytes.ok()) return UsageError(absl::StrCat("--max-job-memory: ", bytes.status().message()));
    options.max_job_memory_bytes = *bytes;
  }

  // Block the shutdown signals before any thread starts, so every thread
  // inherits the mask and only sigwait below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  absl::StatusOr<std::unique_ptr<agt::server::AgtServer>> server =
      agt::server::AgtServer::Start(options);
  if (!server.ok()) {
    std::cerr << "agt-server: " << server.status().message() << "\n";
    return 2;
  }
  using agt::server::Log;
  using agt::server::LogLevel;
  if ((*server)->local_mode()) {
    Log(LogLevel::kWarn, "local_mode",
        {{"msg",
          "local single-user mode (no --tokens): every caller is the admin of tenant "
          "'local'"}});
  }
  if (!(*server)->metrics_address().empty()) {
    Log(LogLevel::kInfo, "metrics_listening", {{"address", (*server)->metrics_address()}});
  }
  Log(LogLevel::kInfo, "server_started",
      {{"address", (*server)->address()},
       {"version", AGT_VERSION_STRING},
       {"db", agt::server::RedactedDb(options.db_path)},
       {"role", flags.count("role") ? flags["role"] : "all"},
       {"workers", options.workers},
       {"backend", agt::BackendChoiceName(options.backend)},
       {"cuda", agt::ProbeCuda().description},
       {"tls", !options.tls_cert_path.empty()},
       {"audit_log", options.audit_log_path}});
  std::cout << "listening on " << (*server)->address() << std::endl;

  int received = 0;
  sigwait(&signals, &received);
  Log(LogLevel::kInfo, "shutdown",
      {{"signal", received == SIGTERM ? "SIGTERM" : "SIGINT"},
       {"msg", "shutting down (running jobs are checkpointed and stay queued)"}});
  (*server)->Shutdown(shutdown_grace);
  server->reset();
  Log(LogLevel::kInfo, "stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const bool help_command = !args.empty() && args[0] == "help";
  for (const std::string& arg : args) {
    if (arg == "--help" || arg == "-h" || help_command) {
      std::cout << kUsage;
      return 0;
    }
  }
  if (args.size() == 1 && args[0] == "--version") {
    std::cout << "agt-server " << AGT_VERSION_STRING << " (commit " << AGT_GIT_COMMIT
              << ", database schema "
              << agt::server::Store::SchemaVersion() << ")\n";
    return 0;
  }
  if (!args.empty() && args[0] == "hash-token") {
    return HashToken(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  return Serve(args);
}
