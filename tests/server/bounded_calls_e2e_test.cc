// Issue 17, findings 2 and 3, against the real agt-server binary on loopback
// with a real SQLite file: a certify request that would expand to gigabytes
// is served in bounded memory (peak RSS of the server process measured); an
// expired deadline, the server's default deadline and SIGTERM stop long
// certify calls (CPU time of the server process measured after the
// deadline); a stalled upload is dropped after the idle timeout and the
// per-tenant upload limit holds; a retried upload request id stores one
// dataset; kill -9 during uploads leaves a database that opens and serves.
//
// The big models are written into the database through the Store before the
// server starts (training them would take minutes): a linear model on the
// degree-2 expansion of 700 features (246 050 inputs) and a 2-1024-1024-1
// ReLU network whose certification takes seconds per call.
#include <sys/types.h>

#include <atomic>
#include <cmath>
#include <thread>

#include "agt/v1/unlearning.grpc.pb.h"
#include "core/common/rng.h"
#include "e2e_util.h"
#include "gmock/gmock.h"
#include "rpc_error_details.h"
#include "server/store/store.h"

namespace agt::e2e {
namespace {

using agt::server::BoxRecord;
using agt::server::DatasetRecord;
using agt::server::JobRecord;
using agt::server::ModelRecord;
using agt::server::Store;

constexpr int kWideFeatures = 700;  // degree 2: 700 + 700 * 701 / 2 = 246 050 inputs

// /proc/<pid>/status VmHWM (peak resident set), bytes.
int64_t PeakRssBytes(pid_t pid) {
  std::istringstream status(ReadFileText(absl::StrCat("/proc/", pid, "/status")));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return -1;
}

// /proc/<pid>/stat utime + stime, seconds.
double CpuSeconds(pid_t pid) {
  const std::string stat = ReadFileText(absl::StrCat("/proc/", pid, "/stat"));
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::vector<std::string> fields;
  std::string field;
  while (rest >> field) fields.push_back(field);
  // Fields after ')' start at field 3 (state); utime is 14, stime 15.
  if (fields.size() < 13) return -1;
  return (std::stod(fields[11]) + std::stod(fields[12])) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

agt::Dataset RandomBinaryData(int rows, int features, uint64_t seed) {
  agt::Rng rng(seed);
  agt::Dataset d;
  d.x.resize(rows, features);
  d.y.resize(rows);
  for (int i = 0; i < rows; ++i) {
    for (int j = 0; j < features; ++j) d.x(i, j) = rng.Uniform(-1.0, 1.0);
    d.y[i] = i % 2;
  }
  d.num_classes = 2;
  return d;
}

// Stores `data` and a model of `architecture` on it (small random
// parameters, one box of half-width `radius` at budget n = 1) through the
// job path; returns {dataset id, model id}.
std::pair<std::string, std::string> StoreModel(Store* store, const agt::Dataset& data,
                                               const agt::ModelSpec& architecture, int degree,
                                               double radius) {
  DatasetRecord ds;
  ds.tenant = "local";
  ds.name = "data";
  absl::StatusOr<DatasetRecord> d = store->InsertDataset(ds, data);
  EXPECT_TRUE(d.ok()) << d.status();
  agt::v1::TrainingJobSpec spec = MoonsSpec(d->id, 1, 10, {1});
  spec.set_polynomial_degree(degree);
  JobRecord job;
  job.tenant = "local";
  job.dataset_id = d->id;
  job.name = "synthetic";
  job.spec = spec.SerializeAsString();
  absl::StatusOr<JobRecord> j = store->InsertJob(job);
  EXPECT_TRUE(j.ok()) << j.status();
  absl::StatusOr<std::optional<JobRecord>> claimed = store->ClaimNextQueuedJob();
  EXPECT_TRUE(claimed.ok() && claimed->has_value());
  ModelRecord m;
  m.tenant = "local";
  m.job_id = j->id;
  m.dataset_id = d->id;
  m.name = "synthetic";
  m.architecture = architecture;
  m.polynomial_degree = degree;
  m.input_features = static_cast<int>(data.dim());
  m.num_classes = 2;
  agt::Rng rng(11);
  const agt::Index p = architecture.NumParameters();
  m.nominal.resize(p);
  const double scale = 1.0 / std::sqrt(static_cast<double>(architecture.layers[0].in));
  for (agt::Index i = 0; i < p; ++i) m.nominal[i] = rng.Uniform(-scale, scale);
  BoxRecord box;
  box.budget.n = 1;
  box.box.lower = m.nominal.array() - radius;
  box.box.upper = m.nominal.array() + radius;
  m.boxes.push_back(box);
  absl::StatusOr<std::string> id = store->CompleteJob(j->id, m, agt::server::JobProgressRecord{});
  EXPECT_TRUE(id.ok()) << id.status();
  return {d->id, id.ok() ? *id : ""};
}

struct Fixture {
  TempDir dir;
  std::string db = dir.File("agt.db");
  std::string wide_model;  // 700 features, degree 2, linear
  std::string deep_model;  // 2-1024-1024-1
  std::string deep_data;   // 2000 moons rows

  Fixture() {
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(db);
    EXPECT_TRUE(store.ok()) << store.status();
    const int wide_inputs = agt::PolynomialFeatureCount(kWideFeatures, 2);
    wide_model = StoreModel(store->get(), RandomBinaryData(20, kWideFeatures, 3),
                            agt::ModelSpec::Mlp({wide_inputs, 1}), 2, 1e-4)
                     .second;
    const auto [data, model] = StoreModel(store->get(), agt::MakeMoons(2000, 0.1, 5),
                                          agt::ModelSpec::Mlp({2, 1024, 1024, 1}), 1, 1e-4);
    deep_data = data;
    deep_model = model;
  }

  bool Start(ServerProcess& server, std::vector<std::string> extra = {}) {
    const bool started = server.Start(ServerArgs(db, std::move(extra)), dir.File("server.log"));
    EXPECT_TRUE(started) << server.Stderr();
    return started;
  }
};

agt::v1::CertifyPredictionsRequest WideRequest(const std::string& model_id, int rows) {
  agt::v1::CertifyPredictionsRequest request;
  request.set_model_id(model_id);
  request.mutable_inputs()->set_rows(rows);
  request.mutable_inputs()->set_cols(kWideFeatures);
  const agt::Dataset x = RandomBinaryData(rows, kWideFeatures, 99);
  for (int i = 0; i < rows; ++i) {
    for (int j = 0; j < kWideFeatures; ++j) request.mutable_inputs()->add_values(x.x(i, j));
  }
  return request;
}

grpc::Status CertifyDeep(Client& client, const Fixture& f, std::chrono::milliseconds deadline,
                         bool set_deadline = true) {
  grpc::ClientContext context;
  if (set_deadline) context.set_deadline(std::chrono::system_clock::now() + deadline);
  agt::v1::CertifyDatasetRequest request;
  request.set_model_id(f.deep_model);
  request.set_dataset_id(f.deep_data);
  agt::v1::CertifyDatasetResponse response;
  return client.models->CertifyDataset(&context, request, &response);
}

// 1 000 rows of 700 features at degree 2 would need 1 000 x 246 050 x 8 B =
// 1.97 GB for the expanded inputs alone (and several times that for the
// interval passes); chunked, the server's peak stays far below.
TEST(BoundedCallsE2E, OversizedCertifyIsServedInBoundedMemory) {
  Fixture f;
  ServerProcess server;
  ASSERT_TRUE(f.Start(server));
  Client client(server.address());
  const int64_t before = PeakRssBytes(server.pid());

  constexpr int kRows = 1000;
  const agt::v1::CertifyPredictionsRequest request = WideRequest(f.wide_model, kRows);
  agt::v1::CertifyPredictionsResponse all;
  const auto start = Clock::now();
  const grpc::Status status =
      client.models->CertifyPredictions(Ctx("", std::chrono::seconds(120)).get(), request, &all);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  ASSERT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
  ASSERT_EQ(all.points_size(), kRows);
  const int64_t peak = PeakRssBytes(server.pid());
  std::fprintf(stderr,
               "[figures] certify %d rows x %d features (degree 2, 246050 inputs): %.2f s, "
               "server VmHWM %.1f MiB (%.1f MiB before the call)\n",
               kRows, kWideFeatures, seconds, peak / 1048576.0, before / 1048576.0);
  EXPECT_LT(peak, int64_t{256} << 20) << "peak RSS " << peak;

  // Chunking changes nothing but the last bits of the sums: the last row
  // alone gets the same decision and bounds.
  agt::v1::CertifyPredictionsRequest last = WideRequest(f.wide_model, kRows);
  last.mutable_inputs()->set_rows(1);
  last.mutable_inputs()->mutable_values()->erase(
      last.mutable_inputs()->mutable_values()->begin(),
      last.mutable_inputs()->mutable_values()->end() - kWideFeatures);
  agt::v1::CertifyPredictionsResponse one;
  ASSERT_TRUE(client.models->CertifyPredictions(Ctx().get(), last, &one).ok());
  ASSERT_EQ(one.points_size(), 1);
  const agt::v1::PointCertificate& p = one.points(0);
  const agt::v1::PointCertificate& q = all.points(kRows - 1);
  EXPECT_EQ(p.predicted_class(), q.predicted_class());
  EXPECT_EQ(p.largest_stable_budget(), q.largest_stable_budget());
  ASSERT_EQ(p.bounds_size(), 1);
  ASSERT_EQ(q.bounds_size(), 1);
  EXPECT_NEAR(p.bounds(0).lower(0), q.bounds(0).lower(0), 1e-9);
  EXPECT_NEAR(p.bounds(0).upper(0), q.bounds(0).upper(0), 1e-9);
  EXPECT_TRUE(HealthServing(client.channel.get()));
}

// Concurrent wide calls take turns for --max-request-mib instead of each
// holding its own chunk: the server's peak stays near one chunk's memory.
// A row that alone exceeds the limit is refused.
// Peak RSS of a server running 4 concurrent 40-row wide certify calls
// (after one call has loaded the model into its cache).
int64_t PeakOfConcurrentWideCalls(Fixture& f, const std::vector<std::string>& flags,
                                  int* succeeded) {
  ServerProcess server;
  if (!f.Start(server, flags)) return -1;
  Client client(server.address());
  agt::v1::CertifyPredictionsResponse warm;
  EXPECT_TRUE(
      client.models->CertifyPredictions(Ctx().get(), WideRequest(f.wide_model, 1), &warm).ok());
  const agt::v1::CertifyPredictionsRequest request = WideRequest(f.wide_model, 40);
  std::atomic<int> ok{0};
  std::vector<std::thread> calls;
  for (int i = 0; i < 4; ++i) {
    calls.emplace_back([&] {
      agt::v1::CertifyPredictionsResponse response;
      const grpc::Status status = client.models->CertifyPredictions(
          Ctx("", std::chrono::seconds(120)).get(), request, &response);
      if (status.ok() && response.points_size() == 40) ++ok;
    });
  }
  for (std::thread& t : calls) t.join();
  *succeeded = ok.load();
  return PeakRssBytes(server.pid());
}

// Concurrent wide calls take turns for --max-request-mib instead of each
// holding its own chunk. A row that alone exceeds the limit is refused.
TEST(BoundedCallsE2E, ConcurrentCertifyCallsShareTheRequestMemory) {
  Fixture f;
  int ok_shared = 0, ok_default = 0;
  const int64_t shared = PeakOfConcurrentWideCalls(f, {"--max-request-mib", "48"}, &ok_shared);
  const int64_t unshared = PeakOfConcurrentWideCalls(f, {}, &ok_default);
  std::fprintf(stderr,
               "[figures] 4 concurrent wide certify calls (40 rows each): server VmHWM %.1f MiB "
               "under --max-request-mib 48, %.1f MiB under the default 1024\n",
               shared / 1048576.0, unshared / 1048576.0);
  EXPECT_EQ(ok_shared, 4);
  EXPECT_EQ(ok_default, 4);
  // 48 MiB of working memory over an idle server of ~18 MiB and the stored
  // model; glibc's per-thread arenas keep freed chunks, which a loaded
  // machine (other tests running) makes vary: bound it with room, and below
  // what the same calls take without the shared budget.
  EXPECT_LT(shared, int64_t{200} << 20);
  EXPECT_LT(shared, unshared);

  ServerProcess small;
  ASSERT_TRUE(f.Start(small, {"--max-request-mib", "16"}));
  Client client(small.address());
  agt::v1::CertifyPredictionsResponse response;
  const grpc::Status status = client.models->CertifyPredictions(
      Ctx().get(), WideRequest(f.wide_model, 1), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("--max-request-mib"));
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("16777216 bytes"));
  const RpcErrorDetails details = ReadRpcErrorDetails(status);
  EXPECT_EQ(details.reason, "REQUEST_MEMORY_LIMIT");
  EXPECT_EQ(details.quota_subject, "server/request_memory");
  EXPECT_EQ(details.metadata.at("model_id"), f.wide_model);
}

// Six CertifyDataset calls of several seconds each with a 0.3 s deadline:
// the server stops them at its next chunk boundary (before: 86 s of CPU).
TEST(BoundedCallsE2E, ExpiredDeadlinesStopTheWork) {
  Fixture f;
  ServerProcess server;
  ASSERT_TRUE(f.Start(server));
  Client client(server.address());
  // Warm the model cache so the calls below spend their time certifying.
  ASSERT_EQ(CertifyDeep(client, f, std::chrono::milliseconds(100)).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);

  // A reference: one call without a short deadline takes this long.
  const double cpu_reference_start = CpuSeconds(server.pid());
  const auto reference_start = Clock::now();
  const grpc::Status whole = CertifyDeep(client, f, std::chrono::seconds(120));
  ASSERT_TRUE(whole.ok()) << whole.error_message();
  const double reference_seconds =
      std::chrono::duration<double>(Clock::now() - reference_start).count();
  const double reference_cpu = CpuSeconds(server.pid()) - cpu_reference_start;

  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const double cpu_start = CpuSeconds(server.pid());
  std::vector<std::thread> calls;
  std::atomic<int> exceeded{0};
  for (int i = 0; i < 6; ++i) {
    calls.emplace_back([&] {
      if (CertifyDeep(client, f, std::chrono::milliseconds(300)).error_code() ==
          grpc::StatusCode::DEADLINE_EXCEEDED) {
        ++exceeded;
      }
    });
  }
  for (std::thread& t : calls) t.join();
  const double cpu_at_deadline = CpuSeconds(server.pid());
  // A call stops at its next check (between chunks of 16 rows here), but on a
  // loaded machine (ctest running other servers beside this one) handlers
  // lag: allow two seconds for that, then hardly any work may be left. Calls
  // that ignored their deadline would still need most of 6 x 3.6 s of CPU
  // and fill the window (2 cores x 3 s); measured here: 0.0 s unloaded,
  // up to 1.7 s with four test binaries sharing the two cores.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const double cpu_grace = CpuSeconds(server.pid());
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const double cpu_after = CpuSeconds(server.pid()) - cpu_grace;
  std::fprintf(stderr,
               "[figures] one whole CertifyDataset: %.2f s wall, %.2f s CPU; six 0.3 s-deadline "
               "calls: %.2f s CPU until they returned, %.3f s in the 2 s after, %.3f s CPU "
               "in the 3 s after that\n",
               reference_seconds, reference_cpu, cpu_at_deadline - cpu_start,
               cpu_grace - cpu_at_deadline, cpu_after);
  EXPECT_EQ(exceeded.load(), 6);
  ASSERT_GT(reference_cpu, 2.0) << "the model is too small for this test to mean anything";
  EXPECT_LT(cpu_after, 2.0);
  EXPECT_TRUE(HealthServing(client.channel.get()));
}

// CheckUnlearning certifies its inputs like CertifyPredictions, and stops the
// same way: three 0.3 s-deadline checks of 2 000 rows on the deep model (a
// whole check takes seconds of CPU) leave no work behind them.
TEST(BoundedCallsE2E, ExpiredDeadlinesStopUnlearningChecks) {
  Fixture f;
  ServerProcess server;
  ASSERT_TRUE(f.Start(server));
  Client client(server.address());
  std::unique_ptr<agt::v1::UnlearningService::Stub> unlearning =
      agt::v1::UnlearningService::NewStub(client.channel);
  agt::v1::CheckUnlearningRequest request;
  request.set_model_id(f.deep_model);
  const agt::Dataset rows = agt::MakeMoons(2000, 0.1, 6);
  request.mutable_inputs()->set_rows(rows.size());
  request.mutable_inputs()->set_cols(2);
  for (agt::Index i = 0; i < rows.size(); ++i) {
    request.mutable_inputs()->add_values(rows.x(i, 0));
    request.mutable_inputs()->add_values(rows.x(i, 1));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::vector<std::thread> calls;
  std::atomic<int> exceeded{0};
  for (int i = 0; i < 3; ++i) {
    calls.emplace_back([&] {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
      agt::v1::CheckUnlearningResponse response;
      if (unlearning->CheckUnlearning(&context, request, &response).error_code() ==
          grpc::StatusCode::DEADLINE_EXCEEDED) {
        ++exceeded;
      }
    });
  }
  for (std::thread& t : calls) t.join();
  // As in ExpiredDeadlinesStopTheWork: a second for handlers still in their
  // setup on a loaded machine, then nothing may be left running.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const double cpu_grace = CpuSeconds(server.pid());
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const double cpu_after = CpuSeconds(server.pid()) - cpu_grace;
  std::fprintf(stderr,
               "[figures] three 0.3 s-deadline CheckUnlearning calls: %.3f s CPU in the 3 s "
               "after a second's grace\n",
               cpu_after);
  EXPECT_EQ(exceeded.load(), 3);
  EXPECT_LT(cpu_after, 1.0);
  EXPECT_TRUE(HealthServing(client.channel.get()));
}

TEST(BoundedCallsE2E, DefaultDeadlineStopsCallsThatSetNone) {
  Fixture f;
  ServerProcess server;
  ASSERT_TRUE(f.Start(server, {"--default-deadline", "0.5"}));
  Client client(server.address());
  const auto start = Clock::now();
  const grpc::Status status = CertifyDeep(client, f, {}, /*set_deadline=*/false);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("--default-deadline"));
  EXPECT_LT(seconds, 3.0);
}

// SIGTERM while a call of many seconds runs: the call gets the grace period,
// is then cancelled, notices it at its next chunk and the process exits.
TEST(BoundedCallsE2E, SigtermStopsALongCallWithinTheGracePeriod) {
  Fixture f;
  ServerProcess server;
  ASSERT_TRUE(f.Start(server, {"--shutdown-grace", "1"}));
  Client client(server.address());
  grpc::Status call_status;
  std::thread call([&] { call_status = CertifyDeep(client, f, std::chrono::seconds(120)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  const auto start = Clock::now();
  const int exit_status = server.Signal(SIGTERM, std::chrono::seconds(60));
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  call.join();
  std::fprintf(stderr, "[figures] SIGTERM with --shutdown-grace 1 during a long call: exit in %.2f s\n",
               seconds);
  EXPECT_EQ(exit_status, 0);
  EXPECT_LT(seconds, 2.5);
  EXPECT_FALSE(call_status.ok());
}

// ---- uploads

agt::v1::DatasetMetadata Float64Metadata(const std::string& name, int features) {
  agt::v1::DatasetMetadata metadata;
  metadata.set_name(name);
  metadata.set_format(agt::v1::DATASET_FORMAT_FLOAT64);
  metadata.set_num_classes(2);
  metadata.set_num_features(features);
  return metadata;
}

std::string Float64Bytes(int rows, int features, uint64_t seed) {
  const agt::Dataset d = RandomBinaryData(rows, features, seed);
  std::string bytes;
  bytes.reserve(static_cast<size_t>(rows) * (features + 1) * 8);
  auto put = [&](double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
  };
  for (int i = 0; i < rows; ++i) {
    for (int j = 0; j < features; ++j) put(d.x(i, j));
    put(d.y[i]);
  }
  return bytes;
}

// An upload that sends its metadata and one chunk and then nothing.
struct StalledUpload {
  std::unique_ptr<grpc::ClientContext> context;
  agt::v1::UploadDatasetResponse response;
  std::unique_ptr<grpc::ClientWriter<agt::v1::UploadDatasetRequest>> writer;

  StalledUpload(Client& client, const std::string& token) {
    context = Ctx(token, std::chrono::seconds(30));
    writer = client.datasets->UploadDataset(context.get(), &response);
    agt::v1::UploadDatasetRequest message;
    *message.mutable_metadata() = CsvMetadata("stalled", 2);
    writer->Write(message);
    message.set_chunk("x0,x1,y\n0.5,0.25,1\n");
    writer->Write(message);
  }
};

TEST(BoundedCallsE2E, StalledUploadsAreDroppedAndTheTenantLimitHolds) {
  TempDir dir;
  WriteFile(dir.File("tokens"), TokenLine("tok-a", "trainer", "acme") +
                                    TokenLine("tok-b", "trainer", "beta"));
  ServerProcess server;
  ASSERT_TRUE(server.Start(ServerArgs(dir.File("agt.db"),
                                      {"--tokens", dir.File("tokens"), "--max-uploads-per-tenant",
                                       "2", "--upload-idle-timeout", "1.5"}),
                           dir.File("server.log")))
      << server.Stderr();
  Client client(server.address());
  const auto start = Clock::now();
  StalledUpload first(client, "tok-a");
  StalledUpload second(client, "tok-a");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));

  // A third upload of the tenant is refused at once; another tenant is not.
  const grpc::Status third =
      Upload(client, CsvMetadata("third", 2), MoonsCsv(50, 1), nullptr, "tok-a");
  EXPECT_EQ(third.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << third.error_message();
  EXPECT_THAT(third.error_message(), ::testing::HasSubstr("--max-uploads-per-tenant 2"));
  EXPECT_EQ(ReadRpcErrorDetails(third).reason, "UPLOAD_LIMIT");
  EXPECT_EQ(ReadRpcErrorDetails(third).quota_subject, "tenant:acme");
  agt::v1::Dataset other;
  const grpc::Status beta = Upload(client, CsvMetadata("beta", 2), MoonsCsv(50, 1), &other, "tok-b");
  EXPECT_TRUE(beta.ok()) << beta.error_message();

  // The stalled ones end with DEADLINE_EXCEEDED after the idle timeout.
  for (StalledUpload* stalled : {&first, &second}) {
    const grpc::Status status = stalled->writer->Finish();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
    EXPECT_THAT(status.error_message(), ::testing::HasSubstr("--upload-idle-timeout"));
    EXPECT_EQ(ReadRpcErrorDetails(status).reason, "UPLOAD_STALLED");
    EXPECT_GT(seconds, 1.4);
    EXPECT_LT(seconds, 5.0);
  }
  // Their slots are free again, and nothing of theirs was stored.
  agt::v1::Dataset stored;
  const grpc::Status again =
      Upload(client, CsvMetadata("again", 2), MoonsCsv(50, 2), &stored, "tok-a");
  EXPECT_TRUE(again.ok()) << again.error_message();
  agt::v1::ListDatasetsResponse list;
  ASSERT_TRUE(client.datasets
                  ->ListDatasets(Ctx("tok-a").get(), agt::v1::ListDatasetsRequest(), &list)
                  .ok());
  ASSERT_EQ(list.datasets_size(), 1);
  EXPECT_EQ(list.datasets(0).name(), "again");
}

// A client that gives up frees its slot at once; SIGTERM ends a stalled
// upload within the grace period, storing nothing.
TEST(BoundedCallsE2E, CancelledAndShutDownUploadsEndPromptly) {
  TempDir dir;
  ServerProcess server;
  ASSERT_TRUE(server.Start(ServerArgs(dir.File("agt.db"),
                                      {"--max-uploads-per-tenant", "1", "--shutdown-grace", "1"}),
                           dir.File("server.log")));
  Client client(server.address());
  {
    StalledUpload gone(client, "");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    gone.context->TryCancel();
    EXPECT_EQ(gone.writer->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  const auto start = Clock::now();
  grpc::Status next;
  do {  // the server hears of the cancellation a moment after the client
    next = Upload(client, CsvMetadata("next", 2), MoonsCsv(50, 3), nullptr);
  } while (next.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
           Clock::now() - start < std::chrono::seconds(2));
  EXPECT_TRUE(next.ok()) << next.error_message();

  StalledUpload stalled(client, "");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto stop = Clock::now();
  EXPECT_EQ(server.Signal(SIGTERM), 0);
  const double seconds = std::chrono::duration<double>(Clock::now() - stop).count();
  EXPECT_LT(seconds, 2.5);
  EXPECT_FALSE(stalled.writer->Finish().ok());
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(dir.File("agt.db"));
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<agt::server::Page<DatasetRecord>> page = (*store)->ListDatasets("local", 10, "");
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->items.size(), 1u);
  EXPECT_EQ(page->items[0].name, "next");
}

TEST(BoundedCallsE2E, DeclaredOversizedUploadIsRefusedBeforeAnyChunk) {
  TempDir dir;
  ServerProcess server;
  ASSERT_TRUE(server.Start(ServerArgs(dir.File("agt.db"), {"--max-dataset-mib", "1"}),
                           dir.File("server.log")));
  Client client(server.address());
  agt::v1::DatasetMetadata metadata = Float64Metadata("big", 3);
  metadata.set_size_bytes(int64_t{32} << 30);
  const grpc::Status status = Upload(client, metadata, "", nullptr);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("34359738368 bytes"));
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("1048576"));
  // A CSV of one-digit values: 256 KiB of text, 1 MiB+ of doubles.
  std::string csv;
  while (csv.size() < (size_t{300} << 10)) csv += "1,0,1,0,1,0,1,0,1,0,1,0,1,0,1,1\n";
  const grpc::Status doubles = Upload(client, CsvMetadata("digits", 2), csv, nullptr);
  EXPECT_EQ(doubles.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(doubles.error_message(), ::testing::HasSubstr("as doubles"));
}

TEST(BoundedCallsE2E, RetriedUploadIdStoresOneDataset) {
  TempDir dir;
  ServerProcess server;
  ASSERT_TRUE(server.Start(ServerArgs(dir.File("agt.db")), dir.File("server.log")));
  Client client(server.address());
  const std::string bytes = Float64Bytes(500, 4, 1);
  agt::v1::DatasetMetadata metadata = Float64Metadata("retried", 4);
  metadata.set_request_id("upload-1");
  metadata.set_size_bytes(static_cast<int64_t>(bytes.size()));
  agt::v1::Dataset first, second;
  // Odd chunk sizes split rows across chunks.
  ASSERT_TRUE(Upload(client, metadata, bytes, &first, "", 1000).ok());
  const grpc::Status retry = Upload(client, metadata, bytes, &second, "", 777);
  ASSERT_TRUE(retry.ok()) << retry.error_message();
  EXPECT_EQ(second.id(), first.id());
  EXPECT_EQ(second.checksum(), first.checksum());
  EXPECT_EQ(first.num_rows(), 500);
  // The same id with other bytes is refused; without an id it is a new one.
  const std::string other = Float64Bytes(500, 4, 2);
  const grpc::Status conflict = Upload(client, metadata, other, nullptr);
  EXPECT_EQ(conflict.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << conflict.error_message();
  EXPECT_THAT(conflict.error_message(), ::testing::HasSubstr("upload-1"));
  metadata.clear_request_id();
  agt::v1::Dataset third;
  ASSERT_TRUE(Upload(client, metadata, bytes, &third).ok());
  EXPECT_NE(third.id(), first.id());
  agt::v1::ListDatasetsResponse list;
  ASSERT_TRUE(
      client.datasets->ListDatasets(Ctx().get(), agt::v1::ListDatasetsRequest(), &list).ok());
  EXPECT_EQ(list.datasets_size(), 2);
}

// The finding: an upload took about 4.6 times its file in memory. Now the
// rows are decoded as they arrive into the final matrix (declared size), the
// store frees the matrix once it is encoded and binds the blobs without a
// copy; what is left is the encoded blob, SQLite's record of it, and
// buffers (measured 2.6-2.9x).
TEST(BoundedCallsE2E, UploadPeakMemoryStaysUnderThreeTimesTheFile) {
  TempDir dir;
  ServerProcess server;
  ASSERT_TRUE(server.Start(ServerArgs(dir.File("agt.db")), dir.File("server.log")));
  Client client(server.address());
  const std::string bytes = Float64Bytes(500000, 10, 4);  // 44 MB
  agt::v1::DatasetMetadata metadata = Float64Metadata("big", 10);
  metadata.set_size_bytes(static_cast<int64_t>(bytes.size()));
  const int64_t before = PeakRssBytes(server.pid());
  agt::v1::Dataset stored;
  const grpc::Status status = Upload(client, metadata, bytes, &stored, "", 1 << 20);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(stored.num_rows(), 500000);
  const int64_t peak = PeakRssBytes(server.pid());
  const double ratio = static_cast<double>(peak - before) / static_cast<double>(bytes.size());
  std::fprintf(stderr,
               "[figures] FLOAT64 upload of %.1f MB: server VmHWM %.1f MiB (%.1f before), "
               "peak growth %.2fx the file\n",
               bytes.size() / 1e6, peak / 1048576.0, before / 1048576.0, ratio);
  EXPECT_LT(ratio, 3.3);
}

// kill -9 at moments spread over an upload of a few MiB: after each restart
// the database opens, every listed dataset loads, and a retry with the
// upload's request id ends with exactly one such dataset.
TEST(BoundedCallsE2E, KillDuringUploadLeavesAConsistentDatabase) {
  TempDir dir;
  const std::string db = dir.File("agt.db");
  const std::string bytes = Float64Bytes(40000, 10, 3);  // 3.5 MB
  agt::v1::DatasetMetadata metadata = Float64Metadata("killed", 10);
  metadata.set_size_bytes(static_cast<int64_t>(bytes.size()));
  for (int round = 0; round < 4; ++round) {
    metadata.set_request_id(absl::StrCat("kill-", round));
    {
      ServerProcess server;
      ASSERT_TRUE(server.Start(ServerArgs(db), dir.File("server.log"))) << server.Stderr();
      Client client(server.address());
      std::thread upload([&] { Upload(client, metadata, bytes, nullptr); });
      std::this_thread::sleep_for(std::chrono::milliseconds(20 + 60 * round));
      EXPECT_EQ(server.Signal(SIGKILL), 128 + SIGKILL);
      upload.join();
    }
    ServerProcess server;
    ASSERT_TRUE(server.Start(ServerArgs(db), dir.File("server.log"))) << server.Stderr();
    Client client(server.address());
    agt::v1::Dataset stored;
    const grpc::Status retry = Upload(client, metadata, bytes, &stored);
    ASSERT_TRUE(retry.ok()) << retry.error_message();
    EXPECT_EQ(stored.num_rows(), 40000);
    server.Signal(SIGTERM);
  }
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(db);
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<agt::server::Page<DatasetRecord>> page = (*store)->ListDatasets("local", 100, "");
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->items.size(), 4u);  // one per request id, none twice, none torn
  for (const DatasetRecord& record : page->items) {
    absl::StatusOr<agt::Dataset> data = (*store)->LoadDatasetData("local", record.id);
    ASSERT_TRUE(data.ok()) << data.status();
    EXPECT_EQ(data->size(), 40000);
  }
}

}  // namespace
}  // namespace agt::e2e
