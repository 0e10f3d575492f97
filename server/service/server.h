// The assembled agt-server: store, job runner, token table, the five
// agt.v1 services, gRPC health checking and server reflection, behind one
// listening port. main.cc parses flags into ServerOptions and drives Start
// and Shutdown; tests can embed it the same way.
//
// Startup order: tokens (and the loopback rule of local mode), TLS files,
// the database lock (one server per database, database_lock.h), store
// (migrations), then the gRPC server binds and serves, and only then the
// job runner starts (RUNNING jobs of a dead process go back to the queue,
// or are FAILED after too many crashes): a job that would crash the process
// can still be seen and cancelled. Any failure undoes what was started and
// returns an error naming the flag or file.
//
// Shutdown order: health goes NOT_SERVING and WatchJob streams end
// (UNAVAILABLE); calls in flight get up to `grace` to finish, then the gRPC
// server stops, cancelling what is left (long calls notice between chunks of
// work, call_budget.h, so this takes well under a second); the runner stops (running jobs
// checkpoint at their step boundary and stay QUEUED); the store closes.
// Nothing a restart needs is lost.
//
// Limits: requests larger than max_message_bytes get RESOURCE_EXHAUSTED from
// gRPC before any handler runs; uploads are limited by max_dataset_bytes
// (dataset_upload.h).
//
// Thread-safety: Start and Shutdown from one thread; the accessors anywhere.
#ifndef AGT_SERVER_SERVICE_SERVER_H_
#define AGT_SERVER_SERVICE_SERVER_H_

#include <grpcpp/server.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "core/cuda/backends.h"
#include "absl/status/statusor.h"
#include "server/auth/tokens.h"
#include "server/domain/certifier.h"
#include "server/jobs/job_runner.h"
#include "server/observability/audit_log.h"
#include "server/observability/metrics.h"
#include "server/service/artifact_service.h"
#include "server/service/call_auth.h"
#include "server/service/call_tracker.h"
#include "server/service/database_lock.h"
#include "server/service/dataset_service.h"
#include "server/service/model_service.h"
#include "server/service/privacy_service.h"
#include "server/service/training_service.h"
#include "server/service/unlearning_service.h"
#include "server/store/store.h"

namespace agt::server {

// What one agt-server process does (--role). Several processes share one
// PostgreSQL database: kApi replicas serve the RPCs, kWorker processes train
// the queued jobs, kAll does both (the default, and the only sensible role on
// an SQLite file, which one server owns).
enum class ServerRole { kAll, kApi, kWorker };
// "all", "api", "worker"; InvalidArgument naming the value otherwise.
absl::StatusOr<ServerRole> ParseServerRole(absl::string_view name);

// --db as it may be shown in logs and messages: a PostgreSQL URI without its
// password (user:PASSWORD@ and password=... are replaced by ***).
std::string RedactedDb(const std::string& db);

struct ServerOptions {
  std::string listen;  // HOST:PORT (auth/listen_address.h); port 0 = any free port
  // The store (Store::Open): an SQLite file, created if missing, or a
  // postgresql:// URI.
  std::string db_path;
  // kApi: the RPC services, no job runner. kWorker: the job runner, and on
  // `listen` only the gRPC health service (for probes). kAll: both.
  ServerRole role = ServerRole::kAll;
  // kWorker/kAll on PostgreSQL: how long a claimed job's lease holds without
  // renewal; a dead worker's job is resumed by another after this long.
  int64_t job_lease_ms = kDefaultJobLeaseMs;
  // > 0: jobs with more budgets are split into units of this many
  // (JobRunnerOptions::split_budgets_per_unit).
  int split_budgets_per_unit = 0;
  // Empty: local single-user mode (loopback only).
  std::string tokens_path;
  // Both or neither: PEM certificate chain and private key for TLS.
  std::string tls_cert_path;
  std::string tls_key_path;
  int workers = 1;          // jobs trained at once, 1..64
  int threads_per_job = 0;  // 0 = hardware concurrency
  // Where jobs train unless their spec says (--backend auto|cpu|cuda).
  agt::BackendChoice backend = agt::BackendChoice::kAuto;
  double checkpoint_every_seconds = 2.0;
  int64_t checkpoint_every_steps = 0;  // 0 = by time only
  int64_t max_dataset_bytes = int64_t{256} << 20;
  // Largest model artifact (ONNX file) upload (service/artifact_service.h).
  int64_t max_artifact_bytes = int64_t{64} << 20;
  int max_message_bytes = 64 << 20;
  size_t model_cache_size = 32;
  // Total epsilon per (tenant, training dataset) for private predictions,
  // shared by every token of the tenant and every model trained on the
  // dataset; finite, in [0, 2^22].
  double privacy_budget = 10.0;
  // Uploads of one tenant in progress at a time (>= 1), and how long an
  // upload stream may bring no message before it is dropped (> 0).
  int max_uploads_per_tenant = 4;
  // Uploads of all tenants in progress at a time (>= 1).
  int max_uploads = 16;
  // WatchJob streams of one tenant open at a time (>= 1).
  int max_watches_per_tenant = 16;
  std::chrono::milliseconds upload_idle_timeout{std::chrono::seconds(60)};
  // Deadline of long calls (certify, uploads) that set none (> 0), applied
  // by the handlers' own checks between chunks of work (call_budget.h).
  std::chrono::milliseconds default_deadline{std::chrono::seconds(300)};
  // Working memory all certify calls together may hold (>= 1 MiB); a call
  // waits for its chunk's share (domain/working_memory.h).
  int64_t max_request_memory_bytes = int64_t{1} << 30;
  // Admission of jobs (domain/admission.h): the largest estimated peak memory
  // of one job (0 = the default, DefaultMaxJobMemory of the machine's memory
  // and `workers`), and QUEUED + RUNNING jobs per tenant (0 = no limit).
  int64_t max_job_memory_bytes = 0;
  int max_jobs_per_tenant = 16;
  // Observability (server/observability): HOST:PORT of the Prometheus
  // endpoint /metrics (empty: none; port 0 = any free port, see
  // metrics_port()), and the audit log file (empty: none).
  std::string metrics_listen;
  std::string audit_log_path;
};

class AgtServer {
 public:
  // InvalidArgument for bad options, NotFound for unreadable files,
  // FailedPrecondition for a non-loopback address without tokens,
  // Unavailable when the address cannot be bound, or the store's error.
  static absl::StatusOr<std::unique_ptr<AgtServer>> Start(const ServerOptions& options);
  // Shuts down (with a short grace period) if Shutdown was not called.
  ~AgtServer();
  AgtServer(const AgtServer&) = delete;
  AgtServer& operator=(const AgtServer&) = delete;

  // The bound address with the real port, e.g. "127.0.0.1:43117".
  const std::string& address() const { return address_; }
  int port() const { return port_; }
  bool local_mode() const { return tokens_.local_mode(); }
  // The bound metrics address ("127.0.0.1:9464"), empty without metrics.
  const std::string& metrics_address() const { return metrics_address_; }

  // See the shutdown order above. Idempotent.
  void Shutdown(std::chrono::milliseconds grace);

 private:
  explicit AgtServer(TokenTable tokens) : tokens_(std::move(tokens)), auth_(&tokens_) {}

  TokenTable tokens_;
  CallAuth auth_;
  CallTracker calls_;                      // outlives server_ (declared before it)
  std::unique_ptr<Metrics> metrics_;       // may be null; outlives runner_ and server_
  std::unique_ptr<AuditLog> audit_;        // may be null; outlives server_
  std::unique_ptr<DatabaseLock> db_lock_;  // released after the store closes
  std::unique_ptr<Store> store_;
  std::unique_ptr<ArtifactStore> artifact_store_;  // the same file, closed with store_
  std::unique_ptr<JobRunner> runner_;
  std::unique_ptr<ModelCache> cache_;
  std::unique_ptr<WorkingMemory> request_memory_;  // outlives the services
  std::unique_ptr<DatasetServiceImpl> datasets_;
  std::unique_ptr<ModelArtifactServiceImpl> artifacts_;
  std::unique_ptr<TrainingServiceImpl> training_;
  std::unique_ptr<ModelServiceImpl> models_;
  std::unique_ptr<UnlearningServiceImpl> unlearning_;
  std::unique_ptr<PrivacyServiceImpl> privacy_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::string metrics_address_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace agt::server

#endif  // AGT_SERVER_SERVICE_SERVER_H_
