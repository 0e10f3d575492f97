#include "server/service/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/auth/listen_address.h"
#include "server/auth/tls_files.h"
#include "server/domain/admission.h"
#include "server/observability/log.h"
#include "server/observability/rpc_observer.h"

namespace agt::server {
namespace {

constexpr int kMaxWorkers = 64;

absl::Status CheckOptions(const ServerOptions& options) {
  if (options.db_path.empty()) return absl::InvalidArgumentError("--db: required");
  if (options.workers < 1 || options.workers > kMaxWorkers) {
    return absl::InvalidArgumentError(
        absl::StrCat("--workers: ", options.workers, " must be 1..", kMaxWorkers));
  }
  if (options.threads_per_job < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--threads-per-job: ", options.threads_per_job, " must be >= 0"));
  }
  if (!(options.checkpoint_every_seconds > 0) || !std::isfinite(options.checkpoint_every_seconds)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--checkpoint-seconds: ", options.checkpoint_every_seconds,
                     " must be a finite number > 0"));
  }
  if (options.checkpoint_every_steps < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--checkpoint-steps: ", options.checkpoint_every_steps, " must be >= 0"));
  }
  if (options.max_artifact_bytes < 1) {
    return absl::InvalidArgumentError("--max-artifact-mib: must be at least 1");
  }
  if (options.max_dataset_bytes < 1) {
    return absl::InvalidArgumentError("--max-dataset-mib: must be at least 1");
  }
  if (options.tls_cert_path.empty() != options.tls_key_path.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key must be given together");
  }
  if (!(options.privacy_budget >= 0) || !std::isfinite(options.privacy_budget)) {
    return absl::InvalidArgumentError(absl::StrCat("--privacy-budget: ", options.privacy_budget,
                                                   " must be a finite epsilon >= 0"));
  }
  if (options.max_job_memory_bytes < 0) {
    return absl::InvalidArgumentError("--max-job-memory: must be > 0");
  }
  if (options.max_jobs_per_tenant < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max-jobs-per-tenant: ", options.max_jobs_per_tenant, " must be >= 0 (0 = no limit)"));
  }
  if (options.model_cache_size < 1) {
    return absl::InvalidArgumentError("model cache size must be at least 1");
  }
  if (options.max_uploads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-uploads: ", options.max_uploads, " must be >= 1"));
  }
  if (options.max_watches_per_tenant < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max-watches-per-tenant: ", options.max_watches_per_tenant, " must be >= 1"));
  }
  if (options.max_uploads_per_tenant < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max-uploads-per-tenant: ", options.max_uploads_per_tenant, " must be >= 1"));
  }
  if (options.upload_idle_timeout.count() <= 0) {
    return absl::InvalidArgumentError("--upload-idle-timeout: must be > 0");
  }
  if (options.default_deadline.count() <= 0) {
    return absl::InvalidArgumentError("--default-deadline: must be > 0");
  }
  if (options.max_request_memory_bytes < (int64_t{1} << 20)) {
    return absl::InvalidArgumentError("--max-request-mib: must be at least 1");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(const ServerOptions& options) {
  if (options.tls_cert_path.empty()) return grpc::InsecureServerCredentials();
  absl::StatusOr<TlsFiles> files = LoadTlsFiles(options.tls_cert_path, options.tls_key_path);
  if (!files.ok()) return files.status();
  grpc::SslServerCredentialsOptions ssl;
  ssl.pem_key_cert_pairs.push_back({files->private_key_pem, files->cert_chain_pem});
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

std::string RedactedDb(const std::string& db) {
  if (!Store::IsPostgresTarget(db)) return db;
  const size_t scheme = db.find("://");
  const size_t at = db.find('@', scheme + 3);
  const size_t colon = db.find(':', scheme + 3);
  std::string shown = db;
  if (at != std::string::npos && colon != std::string::npos && colon < at) {
    shown = absl::StrCat(db.substr(0, colon + 1), "***", db.substr(at));
  }
  const size_t password = shown.find("password=");
  if (password != std::string::npos) {
    const size_t end = shown.find('&', password);
    shown = absl::StrCat(shown.substr(0, password + 9), "***",
                         end == std::string::npos ? "" : shown.substr(end));
  }
  return shown;
}

absl::StatusOr<ServerRole> ParseServerRole(absl::string_view name) {
  if (name == "all") return ServerRole::kAll;
  if (name == "api") return ServerRole::kApi;
  if (name == "worker") return ServerRole::kWorker;
  return absl::InvalidArgumentError(
      absl::StrCat("--role '", name, "' is not one of all, api, worker"));
}

absl::StatusOr<std::unique_ptr<AgtServer>> AgtServer::Start(const ServerOptions& options) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  absl::StatusOr<ListenAddress> listen = ParseListenAddress(options.listen);
  if (!listen.ok()) return listen.status();

  TokenTable tokens = TokenTable::Local();
  if (!options.tokens_path.empty()) {
    absl::StatusOr<TokenTable> loaded = TokenTable::Load(options.tokens_path);
    if (!loaded.ok()) return loaded.status();
    tokens = *std::move(loaded);
  }
  if (absl::Status s = CheckListenAllowed(*listen, tokens.local_mode()); !s.ok()) return s;
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials = Credentials(options);
  if (!credentials.ok()) return credentials.status();

  std::unique_ptr<AgtServer> server(new AgtServer(std::move(tokens)));
  // One server per SQLite file (database_lock.h). Servers on one PostgreSQL
  // database coordinate through it instead: leases, SKIP LOCKED claims and
  // write transactions that exclude each other (server/store/store.h).
  const bool shared_database = Store::IsPostgresTarget(options.db_path);
  if (!shared_database && options.role != ServerRole::kAll) {
    return absl::InvalidArgumentError(
        "--role api and --role worker need a --db shared by several servers (postgresql://...); "
        "an SQLite file has exactly one server, which is --role all");
  }
  if (options.job_lease_ms < 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("--job-lease-seconds ", options.job_lease_ms / 1000.0, " must be at least 1"));
  }
  if (!shared_database) {
    absl::StatusOr<std::unique_ptr<DatabaseLock>> lock = DatabaseLock::Acquire(options.db_path);
    if (!lock.ok()) {
      return absl::Status(lock.status().code(), absl::StrCat("--db: ", lock.status().message()));
    }
    server->db_lock_ = *std::move(lock);
  }
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options.db_path);
  if (!store.ok()) {
    return absl::Status(store.status().code(), absl::StrCat("--db '", RedactedDb(options.db_path),
                                                            "': ", store.status().message()));
  }
  server->store_ = *std::move(store);
  absl::StatusOr<std::unique_ptr<ArtifactStore>> artifact_store =
      ArtifactStore::Open(options.db_path);
  if (!artifact_store.ok()) {
    return absl::Status(artifact_store.status().code(),
                        absl::StrCat("--db '", RedactedDb(options.db_path),
                                     "': model artifacts: ", artifact_store.status().message()));
  }
  server->artifact_store_ = *std::move(artifact_store);
  if (!options.audit_log_path.empty()) {
    absl::StatusOr<std::unique_ptr<AuditLog>> audit = AuditLog::Open(options.audit_log_path);
    if (!audit.ok()) return audit.status();
    server->audit_ = *std::move(audit);
  }
  if (!options.metrics_listen.empty()) {
    absl::StatusOr<ListenAddress> metrics_listen = ParseListenAddress(options.metrics_listen);
    if (!metrics_listen.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--metrics-listen: '", options.metrics_listen,
                       "' is not HOST:PORT or [IPv6]:PORT (e.g. 127.0.0.1:9464)"));
    }
    server->metrics_ = std::make_unique<Metrics>();
    Store* const counted = server->store_.get();
    server->metrics_->SetJobStateCounter([counted] { return counted->CountJobsByState(); });
    if (absl::Status s = server->metrics_->Serve(metrics_listen->ToString()); !s.ok()) return s;
    server->metrics_address_ = metrics_listen->WithPort(server->metrics_->port());
  }

  JobRunnerOptions runner_options;
  runner_options.workers = options.workers;
  runner_options.threads_per_job = options.threads_per_job;
  runner_options.backend = options.backend;
  runner_options.checkpoint_every_seconds = options.checkpoint_every_seconds;
  runner_options.checkpoint_every_steps = options.checkpoint_every_steps;
  JobAdmission admission;
  admission.max_jobs_per_tenant = options.max_jobs_per_tenant;
  admission.limits.threads_per_job = options.threads_per_job;
  admission.default_backend = options.backend;
  admission.checks_backend_at_submit = options.role == ServerRole::kAll;
  admission.limits.max_blob_bytes = server->store_->MaxBlobBytes();
  if (options.max_job_memory_bytes > 0) {
    admission.limits.max_job_memory_bytes = options.max_job_memory_bytes;
  } else {
    absl::StatusOr<int64_t> machine = MachineMemoryBytes();
    if (!machine.ok()) {
      return absl::Status(machine.status().code(),
                          absl::StrCat("--max-job-memory: no default: ", machine.status().message(),
                                       "; give the flag"));
    }
    admission.limits.max_job_memory_bytes =
        DefaultMaxJobMemory(*machine, options.workers, &admission.limits.max_job_memory_source);
  }
  runner_options.limits = admission.limits;
  runner_options.metrics = server->metrics_.get();
  runner_options.shared_database = shared_database;
  runner_options.lease_ms = options.job_lease_ms;
  runner_options.split_budgets_per_unit = options.split_budgets_per_unit;
  // Started once the server serves (below).
  server->runner_ = std::make_unique<JobRunner>(server->store_.get(), runner_options);

  server->cache_ = std::make_unique<ModelCache>(options.model_cache_size);
  UploadLimits limits;
  limits.max_total_bytes = options.max_dataset_bytes;
  UploadAdmissionOptions upload_admission;
  upload_admission.max_per_tenant = options.max_uploads_per_tenant;
  upload_admission.max_total = options.max_uploads;
  upload_admission.idle_timeout = options.upload_idle_timeout;
  server->datasets_ = std::make_unique<DatasetServiceImpl>(
      server->store_.get(), &server->auth_, limits, upload_admission, options.default_deadline);
  ArtifactLimits artifact_limits;
  artifact_limits.max_bytes = options.max_artifact_bytes;
  server->artifacts_ = std::make_unique<ModelArtifactServiceImpl>(
      server->artifact_store_.get(), &server->auth_, artifact_limits, upload_admission,
      options.default_deadline);
  server->training_ = std::make_unique<TrainingServiceImpl>(
      server->store_.get(), server->runner_.get(), &server->auth_, admission,
      options.max_watches_per_tenant);
  server->training_->set_artifacts(server->artifact_store_.get());
  server->request_memory_ = std::make_unique<WorkingMemory>(options.max_request_memory_bytes);
  server->models_ =
      std::make_unique<ModelServiceImpl>(server->store_.get(), server->cache_.get(), &server->auth_,
                                         options.default_deadline, server->request_memory_.get());
  server->unlearning_ = std::make_unique<UnlearningServiceImpl>(
      server->store_.get(), server->cache_.get(), server->runner_.get(), &server->auth_, admission,
      options.default_deadline, server->request_memory_.get());
  absl::StatusOr<std::unique_ptr<PrivacyServiceImpl>> privacy = PrivacyServiceImpl::Create(
      server->store_.get(), server->cache_.get(), &server->auth_, options.privacy_budget,
      options.default_deadline, server->request_memory_.get());
  if (!privacy.ok()) return privacy.status();
  server->privacy_ = *std::move(privacy);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(listen->ToString(), *credentials, &bound_port);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  // gRPC allows SO_REUSEPORT by default: a second server on the same port
  // would then share the traffic (with another database) instead of failing.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // A worker answers health probes only (the default health service).
  const bool serves_rpcs = options.role != ServerRole::kWorker;
  if (serves_rpcs) {
    builder.RegisterService(server->datasets_.get());
    builder.RegisterService(server->artifacts_.get());
    builder.RegisterService(server->training_.get());
    builder.RegisterService(server->models_.get());
    builder.RegisterService(server->unlearning_.get());
    builder.RegisterService(server->privacy_.get());
  }
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(server->calls_.Factory());
  RpcObserverOptions observer;
  observer.tokens = &server->tokens_;
  observer.metrics = server->metrics_.get();
  observer.audit = server->audit_.get();
  observer.model_budgets = [store = server->store_.get(), cache = server->cache_.get()](
                               const std::string& tenant, const std::string& model_id) {
    std::vector<MetricsBudget> budgets;
    absl::StatusOr<std::shared_ptr<const ModelRecord>> model = cache->Get(store, tenant, model_id);
    if (!model.ok()) return budgets;
    for (const BoxRecord& box : (*model)->boxes) {
      budgets.push_back({box.budget.n, box.budget.label_n});
    }
    return budgets;
  };
  interceptors.push_back(MakeRpcObserver(std::move(observer)));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || bound_port == 0) {
    server->server_.reset();
    server->runner_->Stop();
    return absl::UnavailableError(absl::StrCat("--listen: cannot bind ", listen->ToString(),
                                               " (address in use or not on this machine?)"));
  }
  if (grpc::HealthCheckServiceInterface* health = server->server_->GetHealthCheckService();
      health != nullptr && serves_rpcs) {
    // "" (the whole server) is SERVING by default; name each service too.
    for (const char* name :
         {agt::v1::DatasetService::service_full_name(),
          agt::v1::TrainingService::service_full_name(), agt::v1::ModelService::service_full_name(),
          agt::v1::UnlearningService::service_full_name(),
          agt::v1::ModelArtifactService::service_full_name()}) {
      health->SetServingStatus(name, true);
    }
  }
  server->port_ = bound_port;
  server->address_ = listen->WithPort(bound_port);
  // Jobs resume only now that RPCs are served (poison-job guard). An API
  // replica trains nothing: the workers on the same database do.
  if (options.role != ServerRole::kApi) {
    if (absl::Status s = server->runner_->Start(); !s.ok()) return s;
  }
  // A watched job may be trained by another server on the database.
  if (shared_database && serves_rpcs) server->runner_->StartWatchPolling();
  return server;
}

AgtServer::~AgtServer() { Shutdown(std::chrono::milliseconds(1000)); }

void AgtServer::Shutdown(std::chrono::milliseconds grace) {
  if (shut_down_) return;
  shut_down_ = true;
  if (server_ != nullptr) {
    if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
      health->Shutdown();
    }
    training_->BeginShutdown();
    // Calls in flight get `grace` to finish (watch streams end at once);
    // then gRPC stops without waiting for idle client connections
    // (call_tracker.h).
    calls_.WaitIdle(std::chrono::steady_clock::now() + grace);
    server_->Shutdown(std::chrono::system_clock::now());
    server_->Wait();
  }
  if (runner_ != nullptr) runner_->Stop();
  server_.reset();
  runner_.reset();
  // A scrape must not read a closed store.
  if (metrics_ != nullptr) metrics_->SetJobStateCounter(nullptr);
  artifact_store_.reset();
  store_.reset();
}

}  // namespace agt::server
