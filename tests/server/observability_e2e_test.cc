// End-to-end tests of the server's observability against a real agt-server
// on loopback with a real SQLite file: the Prometheus endpoint
// (--metrics-listen, scraped with a plain HTTP GET over a socket written
// here), the JSON-lines log on stderr with request ids, and the audit log
// (--audit-log) of privacy releases, deletion decisions and certificates.
// Expected figures come from the RPC answers the test got, never from the
// server's own counting.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agt/v1/privacy.grpc.pb.h"
#include "agt/v1/unlearning.grpc.pb.h"
#include "tests/server/e2e_util.h"

namespace agt::e2e {
namespace {

using json = nlohmann::json;

constexpr char kTrainer[] = "obs-trainer-token";
constexpr char kQuerier[] = "obs-querier-token";
constexpr char kPrivate[] = "obs-private-token";
constexpr int kRows = 200;

// GET http://127.0.0.1:port/metrics; the body, or "" on any failure.
std::string Scrape(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string request = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buffer[8192];
      ssize_t n;
      while ((n = read(fd, buffer, sizeof buffer)) > 0) response.append(buffer, n);
    }
  }
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.", 0) != 0 || response.find(" 200 ") == std::string::npos ||
      body == std::string::npos) {
    return "";
  }
  return response.substr(body + 4);
}

// The series of the exposition `text` named `name`, each as its labels and
// value.
struct Series {
  std::map<std::string, std::string> labels;
  double value = 0;
};
std::vector<Series> SeriesOf(const std::string& text, const std::string& name) {
  std::vector<Series> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    if (!absl::StartsWith(line, name)) continue;
    absl::string_view rest = line.substr(name.size());
    Series s;
    if (!rest.empty() && rest[0] == '{') {
      const size_t close = rest.find("} ");
      if (close == absl::string_view::npos) continue;
      for (absl::string_view pair : absl::StrSplit(rest.substr(1, close - 1), "\",")) {
        const size_t eq = pair.find("=\"");
        if (eq == absl::string_view::npos) continue;
        std::string value(pair.substr(eq + 2));
        if (!value.empty() && value.back() == '"') value.pop_back();
        s.labels[std::string(pair.substr(0, eq))] = value;
      }
      rest = rest.substr(close + 1);
    } else if (rest.empty() || rest[0] != ' ') {
      continue;  // a longer name with this prefix
    }
    if (!absl::SimpleAtod(absl::StripAsciiWhitespace(rest), &s.value)) continue;
    out.push_back(std::move(s));
  }
  return out;
}

// The sum of the series of `name` whose labels include `labels`; NaN when
// none matches.
double Value(const std::string& text, const std::string& name,
             const std::map<std::string, std::string>& labels = {}) {
  double sum = 0;
  bool found = false;
  for (const Series& s : SeriesOf(text, name)) {
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto it = s.labels.find(k);
      match = match && it != s.labels.end() && it->second == v;
    }
    if (match) {
      sum += s.value;
      found = true;
    }
  }
  return found ? sum : std::nan("");
}

// 0 for a series not (yet) exported.
double ValueOr0(const std::string& text, const std::string& name,
                const std::map<std::string, std::string>& labels = {}) {
  const double v = Value(text, name, labels);
  return std::isnan(v) ? 0.0 : v;
}

// Every line of a JSON-lines file, parsed; a line that does not parse fails
// the test.
std::vector<json> JsonLines(const std::string& text) {
  std::vector<json> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    json parsed = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(parsed.is_discarded()) << "not JSON: " << line;
    if (!parsed.is_discarded()) out.push_back(std::move(parsed));
  }
  return out;
}

std::string MetadataValue(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                          const std::string& key) {
  auto it = metadata.find(key);
  return it == metadata.end() ? "" : std::string(it->second.data(), it->second.size());
}

agt::v1::Matrix Inputs(int rows) {
  const agt::Dataset data = agt::MakeMoons(kRows, 0.1, 3);
  agt::v1::Matrix m;
  m.set_rows(rows);
  m.set_cols(2);
  for (int i = 0; i < rows; ++i) {
    m.add_values(data.x(i, 0));
    m.add_values(data.x(i, 1));
  }
  return m;
}

// One server for the suite: two small models (removal, for certificates and
// deletions; substitution, for private predictions).
class ObservabilityE2eTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    WriteFile(dir_->File("tokens"),
              absl::StrCat(TokenLine(kTrainer, "trainer", "acme", "ci"),
                           TokenLine(kQuerier, "querier", "acme", "analyst"),
                           TokenLine(kPrivate, "private-querier", "acme", "app-one")));
    server_ = new ServerProcess();
    ASSERT_TRUE(server_->Start(
        ServerArgs(dir_->File("o.db"),
                   {"--tokens", dir_->File("tokens"), "--metrics-listen", "127.0.0.1:0",
                    "--audit-log", dir_->File("audit.jsonl"), "--privacy-budget", "50"}),
        dir_->File("server.err")))
        << ReadFileText(dir_->File("server.err"));
    for (const json& line : JsonLines(server_->Stderr())) {
      if (line.value("event", "") == "metrics_listening") {
        const std::string address = line.value("address", "");
        ASSERT_TRUE(absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &metrics_port_))
            << address;
      }
    }
    ASSERT_GT(metrics_port_, 0) << server_->Stderr();
    client_ = new Client(server_->address());
    dataset_ = new agt::v1::Dataset(UploadMoons(*client_, kRows, 3, kTrainer));
    const agt::v1::TrainingJobSpec removal = MoonsSpec(dataset_->id(), 2, 20, {1, 2, 5});
    agt::v1::TrainingJobSpec substitution = MoonsSpec(dataset_->id(), 2, 50, {1, 2, 4});
    substitution.mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_SUBSTITUTION);
    substitution.set_clip_gamma(1.0);
    removal_model_ = new std::string(TrainModel(*client_, removal, kTrainer));
    private_model_ = new std::string(TrainModel(*client_, substitution, kTrainer));
    // 200 rows: 10 batches of 20 x 2 epochs, and 4 batches of 50 x 2.
    trained_iterations_ = 20 + 8;
    // Before any test adds jobs (tests may run in any order).
    after_setup_ = new std::string(Scrape(metrics_port_));
  }

  static void TearDownTestSuite() {
    delete client_;
    delete server_;
    delete dataset_;
    delete removal_model_;
    delete private_model_;
    delete after_setup_;
    delete dir_;
  }

  static std::string Metrics() {
    const std::string text = Scrape(metrics_port_);
    EXPECT_FALSE(text.empty()) << "no /metrics answer on port " << metrics_port_;
    return text;
  }

  static std::vector<json> AuditRecords() {
    return JsonLines(ReadFileText(dir_->File("audit.jsonl")));
  }

  // The audit records of `method` written since `skip` records.
  static std::vector<json> AuditOf(const std::string& method, size_t skip = 0) {
    std::vector<json> out;
    const std::vector<json> all = AuditRecords();
    for (size_t i = skip; i < all.size(); ++i) {
      if (all[i].value("method", "") == method) out.push_back(all[i]);
    }
    return out;
  }

  static inline TempDir* dir_ = nullptr;
  static inline ServerProcess* server_ = nullptr;
  static inline Client* client_ = nullptr;
  static inline agt::v1::Dataset* dataset_ = nullptr;
  static inline std::string* removal_model_ = nullptr;
  static inline std::string* private_model_ = nullptr;
  static inline std::string* after_setup_ = nullptr;  // /metrics once the models were trained
  static inline int metrics_port_ = 0;
  static inline int trained_iterations_ = 0;
};

TEST_F(ObservabilityE2eTest, RpcCountersMoveByMethodAndCode) {
  const std::string before = Metrics();
  constexpr char kGetModel[] = "/agt.v1.ModelService/GetModel";
  agt::v1::GetModelRequest request;
  request.set_model_id(*removal_model_);
  agt::v1::GetModelResponse response;
  ASSERT_TRUE(client_->models->GetModel(Ctx(kQuerier).get(), request, &response).ok());
  ASSERT_TRUE(client_->models->GetModel(Ctx(kQuerier).get(), request, &response).ok());
  request.set_model_id("m_doesnotexist");
  EXPECT_EQ(client_->models->GetModel(Ctx(kQuerier).get(), request, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(client_->models->GetModel(Ctx("wrong-token").get(), request, &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  const std::string after = Metrics();
  const auto delta = [&](const std::string& code) {
    return ValueOr0(after, "agt_rpc_requests_total", {{"method", kGetModel}, {"code", code}}) -
           ValueOr0(before, "agt_rpc_requests_total", {{"method", kGetModel}, {"code", code}});
  };
  EXPECT_EQ(delta("OK"), 2);
  EXPECT_EQ(delta("NOT_FOUND"), 1);
  EXPECT_EQ(delta("UNAUTHENTICATED"), 1);
  EXPECT_EQ(delta("INVALID_ARGUMENT"), 0);
  EXPECT_EQ(ValueOr0(after, "agt_rpc_latency_seconds_count", {{"method", kGetModel}}) -
                ValueOr0(before, "agt_rpc_latency_seconds_count", {{"method", kGetModel}}),
            4);
  // Streaming calls are counted too (the suite's upload, the health check).
  EXPECT_GE(ValueOr0(after, "agt_rpc_requests_total",
                     {{"method", "/agt.v1.DatasetService/UploadDataset"}, {"code", "OK"}}),
            1);
}

TEST_F(ObservabilityE2eTest, TrainingMetricsCountTheJobsIterations) {
  const std::string& text = *after_setup_;
  EXPECT_EQ(Value(text, "agt_training_iterations_total"), trained_iterations_);
  EXPECT_EQ(Value(text, "agt_certified_step_seconds_count"), trained_iterations_);
  EXPECT_GT(Value(text, "agt_certified_step_seconds_sum"), 0);
  EXPECT_EQ(Value(text, "agt_jobs", {{"state", "SUCCEEDED"}}), 2);
  EXPECT_EQ(Value(text, "agt_jobs", {{"state", "RUNNING"}}), 0);
  // Finished jobs leave no width gauges behind.
  EXPECT_TRUE(SeriesOf(text, "agt_job_bound_width").empty()) << text;
}

TEST_F(ObservabilityE2eTest, RunningJobHasWidthGaugesUntilItEnds) {
  agt::v1::Job job;
  ASSERT_TRUE(Submit(*client_, LongRunningSpec(dataset_->id()), &job, kTrainer).ok());
  // Wait (bounded) until it has done a few iterations.
  std::string text;
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < deadline) {
    text = Metrics();
    const double growth = Value(text, "agt_job_bound_width_growth", {{"job", job.id()}});
    if (!std::isnan(growth) && growth > 1.0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const std::map<std::string, std::string> labels = {
      {"job", job.id()}, {"n", "1"}, {"label_n", "0"}};
  EXPECT_GT(Value(text, "agt_job_bound_width", labels), 0) << text;
  // Bounds of a training run widen from their first iteration on.
  EXPECT_GT(Value(text, "agt_job_bound_width_growth", labels), 1.0) << text;
  EXPECT_GE(Value(text, "agt_jobs", {{"state", "RUNNING"}}), 1);

  agt::v1::CancelJobRequest cancel;
  cancel.set_job_id(job.id());
  agt::v1::CancelJobResponse cancelled;
  ASSERT_TRUE(client_->training->CancelJob(Ctx(kTrainer).get(), cancel, &cancelled).ok());
  EXPECT_EQ(WaitForFinal(*client_, job.id(), kTrainer).state(), agt::v1::JOB_STATE_CANCELLED);
  text = Metrics();
  EXPECT_TRUE(std::isnan(Value(text, "agt_job_bound_width", {{"job", job.id()}}))) << text;
  EXPECT_TRUE(std::isnan(Value(text, "agt_job_bound_width_growth", {{"job", job.id()}})));
  EXPECT_EQ(Value(text, "agt_jobs", {{"state", "CANCELLED"}}), 1);

  // The lifecycle is in the log, one JSON object per line.
  std::vector<std::string> events;
  for (const json& line : JsonLines(server_->Stderr())) {
    if (line.value("job", "") == job.id()) events.push_back(line.value("event", ""));
  }
  const std::vector<std::string> expected = {"job_queued", "job_admitted", "job_started",
                                             "job_cancelled"};
  EXPECT_EQ(events, expected);
}

TEST_F(ObservabilityE2eTest, PrivacyReleaseIsCountedAndAudited) {
  const size_t audit_before = AuditRecords().size();
  const std::string before = Metrics();
  auto privacy = agt::v1::PrivacyService::NewStub(client_->channel);
  agt::v1::PrivatePredictRequest request;
  request.set_model_id(*private_model_);
  *request.mutable_inputs() = Inputs(3);
  request.set_epsilon(0.5);
  request.set_request_id("release-1");
  agt::v1::PrivatePredictResponse first;
  {
    std::unique_ptr<grpc::ClientContext> context = Ctx(kPrivate);
    context->AddMetadata("x-request-id", "obs-release-1");
    const grpc::Status status = privacy->PrivatePredict(context.get(), request, &first);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  ASSERT_GT(first.epsilon_spent(), 0);
  // A retry of the same request_id is answered from the ledger, free.
  agt::v1::PrivatePredictResponse again;
  std::unique_ptr<grpc::ClientContext> retry = Ctx(kPrivate);
  ASSERT_TRUE(privacy->PrivatePredict(retry.get(), request, &again).ok());
  // The service's replay note is for the observer only.
  EXPECT_EQ(MetadataValue(retry->GetServerTrailingMetadata(), "agt-internal-replayed"), "");
  // More than the budget: refused, charged nothing.
  agt::v1::PrivatePredictRequest greedy = request;
  greedy.set_request_id("");
  greedy.set_epsilon(40);
  agt::v1::PrivatePredictResponse refused;
  EXPECT_EQ(privacy->PrivatePredict(Ctx(kPrivate).get(), greedy, &refused).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);

  const std::string after = Metrics();
  EXPECT_DOUBLE_EQ(ValueOr0(after, "agt_privacy_epsilon_spent_total", {{"tenant", "acme"}}) -
                       ValueOr0(before, "agt_privacy_epsilon_spent_total", {{"tenant", "acme"}}),
                   first.epsilon_spent());

  const std::vector<json> records = AuditOf("/agt.v1.PrivacyService/PrivatePredict", audit_before);
  ASSERT_EQ(records.size(), 3u);
  const json& r = records[0];
  EXPECT_EQ(r["event"], "privacy_release");
  EXPECT_EQ(r["who"]["tenant"], "acme");
  EXPECT_EQ(r["who"]["client"], "app-one");
  EXPECT_EQ(r["who"]["role"], "private-querier");
  EXPECT_EQ(r["request_id"], "obs-release-1");
  EXPECT_EQ(r["client_request_id"], "release-1");
  EXPECT_EQ(r["model"], *private_model_);
  EXPECT_EQ(r["points"], 3);
  EXPECT_EQ(r["code"], "OK");
  std::vector<int> labels;
  for (const agt::v1::PrivateLabel& l : first.labels()) labels.push_back(l.label());
  EXPECT_EQ(r["answer"]["labels"].get<std::vector<int>>(), labels);
  EXPECT_EQ(r["answer"]["dataset"], first.budget().dataset_id());
  EXPECT_DOUBLE_EQ(r["answer"]["epsilon_charged"].get<double>(), first.epsilon_spent());
  EXPECT_DOUBLE_EQ(r["answer"]["budget_remaining_epsilon"].get<double>(),
                   first.budget().remaining_epsilon());
  EXPECT_EQ(records[1]["replayed"], true);
  EXPECT_EQ(records[1]["answer"]["epsilon_charged"], 0.0);
  EXPECT_EQ(records[2]["code"], "RESOURCE_EXHAUSTED");
  EXPECT_FALSE(records[2].contains("answer"));
  EXPECT_TRUE(absl::StrContains(records[2].value("refused", ""), "nothing was spent"))
      << records[2].dump();
}

TEST_F(ObservabilityE2eTest, DeletionDecisionIsCountedAndAudited) {
  const size_t audit_before = AuditRecords().size();
  const std::string before = Metrics();
  auto unlearning = agt::v1::UnlearningService::NewStub(client_->channel);
  agt::v1::RequestDeletionRequest request;
  request.set_model_id(*removal_model_);
  request.add_row_ids(0);
  request.add_row_ids(1);
  agt::v1::RequestDeletionResponse response;
  const grpc::Status status = unlearning->RequestDeletion(Ctx(kTrainer).get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_GT(response.newly_accepted(), 0);
  const std::string after = Metrics();
  EXPECT_EQ(ValueOr0(after, "agt_deletions_accepted_total") -
                ValueOr0(before, "agt_deletions_accepted_total"),
            response.newly_accepted());

  const std::vector<json> records =
      AuditOf("/agt.v1.UnlearningService/RequestDeletion", audit_before);
  ASSERT_EQ(records.size(), 1u);
  const json& r = records[0];
  EXPECT_EQ(r["event"], "deletion_decision");
  EXPECT_EQ(r["who"]["client"], "ci");
  EXPECT_EQ(r["who"]["role"], "trainer");
  EXPECT_EQ(r["model"], *removal_model_);
  EXPECT_EQ(r["rows"].get<std::vector<int64_t>>(), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(r["answer"]["decision"], response.accepted() ? "accepted" : "refused");
  EXPECT_EQ(r["answer"]["why"], response.message());
  EXPECT_EQ(r["answer"]["newly_accepted"], response.newly_accepted());
  EXPECT_EQ(r["answer"]["deletions"], response.deletions());

  // The other deletion decisions: which predictions the deletions leave
  // certified unchanged, and the in-place retraining.
  agt::v1::CheckUnlearningRequest check;
  check.set_model_id(*removal_model_);
  *check.mutable_inputs() = Inputs(6);
  agt::v1::CheckUnlearningResponse checked;
  ASSERT_TRUE(unlearning->CheckUnlearning(Ctx(kQuerier).get(), check, &checked).ok());
  int64_t unchanged = 0;
  for (const agt::v1::UnlearningCheck& p : checked.points()) unchanged += p.certified_unchanged();
  agt::v1::RetrainInPlaceRequest retrain;
  retrain.set_model_id(*removal_model_);
  agt::v1::RetrainInPlaceResponse retrained;
  ASSERT_TRUE(unlearning->RetrainInPlace(Ctx(kTrainer).get(), retrain, &retrained).ok());
  ASSERT_TRUE(retrained.enqueued()) << retrained.message();
  const std::string retraining_job = retrained.job_id();
  EXPECT_EQ(unlearning->RetrainInPlace(Ctx(kQuerier).get(), retrain, &retrained).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  const std::vector<json> checks =
      AuditOf("/agt.v1.UnlearningService/CheckUnlearning", audit_before);
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_EQ(checks[0]["event"], "deletion_decision");
  EXPECT_EQ(checks[0]["points"], 6);
  EXPECT_EQ(checks[0]["answer"]["certified_unchanged"], unchanged);
  EXPECT_EQ(checks[0]["answer"]["deletions"], checked.deletions());
  const std::vector<json> retrains =
      AuditOf("/agt.v1.UnlearningService/RetrainInPlace", audit_before);
  ASSERT_EQ(retrains.size(), 2u);
  EXPECT_EQ(retrains[0]["answer"]["job"], retraining_job);
  EXPECT_EQ(retrains[0]["answer"]["decision"], "retraining enqueued");
  EXPECT_EQ(retrains[0]["answer"]["removed_rows"], 2);
  EXPECT_EQ(retrains[0]["who"]["role"], "trainer");
  EXPECT_EQ(retrains[1]["code"], "PERMISSION_DENIED");
  EXPECT_EQ(retrains[1]["who"]["role"], "querier");
}

TEST_F(ObservabilityE2eTest, CertificatesAreAuditedWithTheirFigures) {
  const size_t audit_before = AuditRecords().size();
  agt::v1::CertifyPredictionsRequest request;
  request.set_model_id(*removal_model_);
  *request.mutable_inputs() = Inputs(7);
  agt::v1::CertifyPredictionsResponse response;
  ASSERT_TRUE(client_->models->CertifyPredictions(Ctx(kQuerier).get(), request, &response).ok());
  std::vector<int64_t> stable(3, 0);
  for (const agt::v1::PointCertificate& p : response.points()) {
    ASSERT_EQ(p.stable_size(), 3);
    for (int j = 0; j < 3; ++j) stable[j] += p.stable(j);
  }
  agt::v1::CertifyDatasetRequest whole;
  whole.set_model_id(*removal_model_);
  whole.set_dataset_id(dataset_->id());
  agt::v1::CertifyDatasetResponse figures;
  ASSERT_TRUE(client_->models->CertifyDataset(Ctx(kQuerier).get(), whole, &figures).ok());
  agt::v1::CertifyPredictionsRequest foreign = request;
  foreign.set_model_id("m_nope");
  EXPECT_EQ(
      client_->models->CertifyPredictions(Ctx(kQuerier).get(), foreign, &response).error_code(),
      grpc::StatusCode::NOT_FOUND);

  const std::vector<json> points = AuditOf("/agt.v1.ModelService/CertifyPredictions", audit_before);
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[0]["event"], "certificate");
  EXPECT_EQ(points[0]["who"]["client"], "analyst");
  EXPECT_EQ(points[0]["model"], *removal_model_);
  EXPECT_EQ(points[0]["points"], 7);
  EXPECT_EQ(points[0]["answer"]["points"], 7);
  EXPECT_EQ(points[0]["answer"]["stable_per_budget"].get<std::vector<int64_t>>(), stable);
  EXPECT_EQ(points[0]["answer"]["budgets"], json::parse(R"([{"n":1},{"n":2},{"n":5}])"));
  EXPECT_EQ(points[1]["code"], "NOT_FOUND");
  EXPECT_EQ(points[1]["model"], "m_nope");

  const std::vector<json> datasets = AuditOf("/agt.v1.ModelService/CertifyDataset", audit_before);
  ASSERT_EQ(datasets.size(), 1u);
  const json& d = datasets[0];
  EXPECT_EQ(d["dataset"], dataset_->id());
  EXPECT_EQ(d["answer"]["rows"], figures.num_rows());
  ASSERT_EQ(d["answer"]["budgets"].size(), static_cast<size_t>(figures.budgets_size()));
  for (int j = 0; j < figures.budgets_size(); ++j) {
    EXPECT_EQ(d["answer"]["budgets"][j]["n"], figures.budgets(j).budget().n());
    EXPECT_DOUBLE_EQ(d["answer"]["budgets"][j]["accuracy_worst"].get<double>(),
                     figures.budgets(j).accuracy_worst());
    EXPECT_DOUBLE_EQ(d["answer"]["budgets"][j]["stable_fraction"].get<double>(),
                     figures.budgets(j).stable_fraction());
  }
}

TEST_F(ObservabilityE2eTest, LogLinesAreJsonAndCarryTheRequestId) {
  agt::v1::GetModelRequest request;
  request.set_model_id(*removal_model_);
  agt::v1::GetModelResponse response;
  std::unique_ptr<grpc::ClientContext> given = Ctx(kQuerier);
  given->AddMetadata("x-request-id", "obs-req-42");
  ASSERT_TRUE(client_->models->GetModel(given.get(), request, &response).ok());
  EXPECT_EQ(MetadataValue(given->GetServerInitialMetadata(), "x-request-id"), "obs-req-42");
  EXPECT_EQ(MetadataValue(given->GetServerTrailingMetadata(), "x-request-id"), "obs-req-42");
  EXPECT_EQ(MetadataValue(given->GetServerTrailingMetadata(), "agt-internal-replayed"), "");

  // Without one (or with one that is not a plain token) the server makes one.
  std::unique_ptr<grpc::ClientContext> made = Ctx("bad-token");
  made->AddMetadata("x-request-id", "has spaces");
  EXPECT_EQ(client_->models->GetModel(made.get(), request, &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  const std::string generated = MetadataValue(made->GetServerTrailingMetadata(), "x-request-id");
  EXPECT_EQ(generated.size(), 16u) << generated;

  bool saw_given = false, saw_generated = false, saw_auth_failure = false, saw_start = false;
  for (const json& line : JsonLines(server_->Stderr())) {
    EXPECT_TRUE(line.contains("time") && line.contains("level") && line.contains("event"))
        << line.dump();
    const std::string event = line.value("event", "");
    saw_start = saw_start || event == "server_started";
    if (event == "rpc" && line.value("request_id", "") == "obs-req-42") {
      saw_given = true;
      EXPECT_EQ(line["method"], "/agt.v1.ModelService/GetModel");
      EXPECT_EQ(line["code"], "OK");
      EXPECT_EQ(line["tenant"], "acme");
      EXPECT_EQ(line["principal"], "analyst");
      EXPECT_TRUE(absl::StartsWith(line.value("peer", ""), "ipv4:127.0.0.1:")) << line.dump();
      EXPECT_GE(line["latency_ms"].get<double>(), 0.0);
    }
    if (event == "rpc" && line.value("request_id", "") == generated) {
      saw_generated = true;
      EXPECT_EQ(line["code"], "UNAUTHENTICATED");
      EXPECT_EQ(line["level"], "warn");
      EXPECT_FALSE(line.contains("tenant"));
    }
    if (event == "auth_failure" && line.value("request_id", "") == generated) {
      saw_auth_failure = true;
    }
  }
  EXPECT_TRUE(saw_given && saw_generated && saw_auth_failure && saw_start) << server_->Stderr();
}

// agt_jobs is read from the database: a restarted server reports the jobs of
// the previous process.
TEST(ObservabilityRestartE2eTest, JobGaugeIsRightAfterARestart) {
  TempDir dir;
  const auto start = [&](ServerProcess* server, const std::string& log, int* port) {
    ASSERT_TRUE(server->Start(ServerArgs(dir.File("r.db"), {"--metrics-listen", "127.0.0.1:0"}),
                              dir.File(log)))
        << server->Stderr();
    for (const json& line : JsonLines(server->Stderr())) {
      if (line.value("event", "") == "metrics_listening") {
        const std::string address = line.value("address", "");
        ASSERT_TRUE(absl::SimpleAtoi(address.substr(address.rfind(':') + 1), port));
      }
    }
  };
  {
    ServerProcess server;
    int port = 0;
    start(&server, "1.log", &port);
    Client client(server.address());
    const agt::v1::Dataset dataset = UploadMoons(client, 100, 5);
    TrainModel(client, MoonsSpec(dataset.id(), 1, 50, {1}));
    EXPECT_EQ(Value(Scrape(port), "agt_jobs", {{"state", "SUCCEEDED"}}), 1);
    EXPECT_EQ(server.Signal(SIGTERM), 0);
  }
  ServerProcess restarted;
  int port = 0;
  start(&restarted, "2.log", &port);
  const std::string text = Scrape(port);
  EXPECT_EQ(Value(text, "agt_jobs", {{"state", "SUCCEEDED"}}), 1) << text;
  EXPECT_EQ(Value(text, "agt_jobs", {{"state", "QUEUED"}}), 0);
  // The counters are this process's: nothing trained here yet.
  EXPECT_EQ(Value(text, "agt_training_iterations_total"), 0);
}

TEST(ObservabilityFlagsE2eTest, BadFlagsExitWithStatus2NamingTheFlag) {
  TempDir dir;
  std::string out, err;
  EXPECT_EQ(
      RunServerCommand(ServerArgs(dir.File("f.db"), {"--log-format", "xml"}), "", &out, &err, dir),
      2);
  EXPECT_TRUE(absl::StrContains(err, "--log-format: 'xml' must be json or text")) << err;
  EXPECT_EQ(RunServerCommand(ServerArgs(dir.File("f.db"), {"--metrics-listen", "nope"}), "", &out,
                             &err, dir),
            2);
  EXPECT_TRUE(absl::StrContains(err, "--metrics-listen: 'nope'")) << err;
  EXPECT_EQ(
      RunServerCommand(ServerArgs(dir.File("f.db"), {"--audit-log", dir.File("no/such/dir/audit")}),
                       "", &out, &err, dir),
      2);
  EXPECT_TRUE(absl::StrContains(err, "--audit-log")) << err;
}

TEST(ObservabilityFlagsE2eTest, TextLogsAreOneLinePerRecordForPeople) {
  TempDir dir;
  ServerProcess server;
  ASSERT_TRUE(
      server.Start(ServerArgs(dir.File("t.db"), {"--log-format", "text"}), dir.File("t.log")))
      << server.Stderr();
  Client client(server.address());
  std::unique_ptr<grpc::ClientContext> context = Ctx();
  context->AddMetadata("x-request-id", "text-1");
  agt::v1::ListModelsRequest request;
  agt::v1::ListModelsResponse response;
  ASSERT_TRUE(client.models->ListModels(context.get(), request, &response).ok());
  EXPECT_EQ(server.Signal(SIGTERM), 0);
  const std::string log = server.Stderr();
  bool saw_rpc = false;
  for (absl::string_view line : absl::StrSplit(log, '\n', absl::SkipEmpty())) {
    EXPECT_NE(line.front(), '{') << line;
    const std::vector<std::string> words = absl::StrSplit(line, ' ');
    ASSERT_GE(words.size(), 3u) << line;
    EXPECT_EQ(words[0].size(), 24u) << line;  // 2026-01-02T03:04:05.678Z
    if (words[2] == "rpc" && absl::StrContains(line, "request_id=text-1")) {
      saw_rpc = true;
      EXPECT_EQ(words[1], "info");
      EXPECT_TRUE(absl::StrContains(line, "method=/agt.v1.ModelService/ListModels")) << line;
      EXPECT_TRUE(absl::StrContains(line, "code=OK")) << line;
    }
  }
  EXPECT_TRUE(saw_rpc) << log;
  EXPECT_TRUE(absl::StrContains(log, " info stopped")) << log;
}

}  // namespace
}  // namespace agt::e2e
