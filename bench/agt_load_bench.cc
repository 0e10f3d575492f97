// Load benchmark of the certification service over loopback.
//
// Starts an in-process agt-server (the same AgtServer that main.cc runs) on
// 127.0.0.1 with a fresh SQLite file, uploads a 64-feature, 10-class blobs
// dataset, trains a 64-32-10 ReLU MLP with 6 removal budgets, then measures:
//   - CertifyPredictions throughput with batches of 1000 points, from one
//     client and from 8 concurrent clients (points/s);
//   - single-point call latency (p50, p99, mean);
//   - PrivatePredict (report-noisy-argmax) on the same batches and single
//     points, as a ratio to CertifyPredictions: each call also commits its
//     budget spend to SQLite (synchronous = FULL);
// and, as the baseline measured in the same run, the same certificates
// computed in-process without gRPC (server/domain/certifier.h), so the
// printed ratios are the cost of the RPC layer.
// Usage: agt_load_bench [--calls N] [--batches N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/lib/client.h"
#include "core/data/dataset.h"
#include "server/domain/certifier.h"
#include "server/service/server.h"
#include "server/store/store.h"

namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "agt_load_bench: %s\n", what.c_str());
  std::exit(1);
}

std::string Csv(const agt::Dataset& d) {
  std::string out;
  for (agt::Index i = 0; i < d.size(); ++i) {
    for (agt::Index j = 0; j < d.dim(); ++j) absl::StrAppend(&out, d.x(i, j), ",");
    absl::StrAppend(&out, static_cast<int>(d.y[i]), "\n");
  }
  return out;
}

agt::v1::Matrix ToProto(const agt::Matrix& m) {
  agt::v1::Matrix p;
  p.set_rows(m.rows());
  p.set_cols(m.cols());
  for (agt::Index i = 0; i < m.rows(); ++i) {
    for (agt::Index j = 0; j < m.cols(); ++j) p.add_values(m(i, j));
  }
  return p;
}

double Percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * (v.size() - 1) + 0.5));
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  int calls = 2000, batches = 20;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--calls") && i + 1 < argc) {
      calls = std::max(10, std::atoi(argv[++i]));
    } else if (!std::strcmp(argv[i], "--batches") && i + 1 < argc) {
      batches = std::max(1, std::atoi(argv[++i]));
    } else {
      std::printf(
          "usage: agt_load_bench [--calls N] [--batches N]\n"
          "Measures CertifyPredictions throughput (batches of 1000 points) and single-point\n"
          "latency over loopback against an in-process agt-server, with the in-process\n"
          "certifier as the baseline; then PrivatePredict on the same inputs, as a ratio to\n"
          "CertifyPredictions.\n");
      return std::strcmp(argv[i], "--help") == 0 ? 0 : 2;
    }
  }
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / absl::StrCat("agt-load-bench-", getpid());
  std::filesystem::create_directories(dir);

  agt::server::ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.db_path = (dir / "agt.db").string();
  options.privacy_budget = 1e12;  // the benchmark measures speed, not the budget
  auto server = agt::server::AgtServer::Start(options);
  if (!server.ok()) Die(server.status().ToString());
  agt::client::ClientOptions copts;
  copts.target = (*server)->address();
  auto client = agt::client::Client::Create(copts);
  if (!client.ok()) Die(client.status().ToString());

  // Data and model: 64 features, 10 classes; 64-32-10 MLP; 6 removal budgets.
  const agt::Dataset all = agt::MakeBlobs(4000, 64, 10, 1.0, 3.0, 1);
  const agt::Dataset train = all.Slice(0, 3000);
  const agt::Matrix queries = all.x.bottomRows(1000);
  agt::v1::DatasetMetadata meta;
  meta.set_name("blobs64");
  meta.set_format(agt::v1::DATASET_FORMAT_CSV);
  meta.set_num_classes(10);
  auto uploaded = (*client)->UploadDataset(meta, Csv(train));
  if (!uploaded.ok()) Die(uploaded.status().ToString());
  agt::v1::SubmitTrainingJobRequest submit;
  agt::v1::TrainingJobSpec& spec = *submit.mutable_spec();
  spec.set_name("load-bench");
  spec.set_dataset_id(uploaded->dataset().id());
  spec.add_hidden_widths(32);
  spec.set_loss(agt::v1::LOSS_CROSS_ENTROPY);
  spec.set_batch_size(1000);
  spec.set_epochs(2);
  spec.mutable_optimizer()->set_learning_rate(0.05);
  spec.mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_REMOVAL);
  for (int n : {1, 2, 5, 10, 20, 50}) spec.add_budgets()->set_n(n);
  auto job = (*client)->SubmitTrainingJob(submit);
  if (!job.ok()) Die(job.status().ToString());
  agt::v1::WatchJobRequest watch;
  watch.set_job_id(job->job().id());
  auto last = (*client)->WatchJob(watch, [](const agt::v1::JobEvent&) { return true; });
  if (!last.ok() || last->state() != agt::v1::JOB_STATE_SUCCEEDED) {
    Die(absl::StrCat("training failed: ", last.ok() ? last->error() : last.status().ToString()));
  }
  const std::string model_id = last->model_id();

  agt::v1::CertifyPredictionsRequest batch_request;
  batch_request.set_model_id(model_id);
  *batch_request.mutable_inputs() = ToProto(queries);
  agt::v1::CertifyPredictionsRequest single_request;
  single_request.set_model_id(model_id);
  *single_request.mutable_inputs() = ToProto(queries.topRows(1));

  // Baseline: the same certificates in-process (store read once, no gRPC).
  (*server)->Shutdown(std::chrono::milliseconds(2000));
  server->reset();
  double in_process = 0;
  {
    auto store = agt::server::Store::Open(options.db_path);
    if (!store.ok()) Die(store.status().ToString());
    auto model = (*store)->GetModel("local", model_id);
    if (!model.ok()) Die(model.status().ToString());
    (void)agt::server::CertifyPredictions(*model, batch_request);
    const auto t0 = Clock::now();
    for (int b = 0; b < batches; ++b) {
      auto r = agt::server::CertifyPredictions(*model, batch_request);
      if (!r.ok()) Die(r.status().ToString());
    }
    in_process = Since(t0) / batches;
  }
  server = agt::server::AgtServer::Start(options);
  if (!server.ok()) Die(server.status().ToString());
  copts.target = (*server)->address();
  client = agt::client::Client::Create(copts);
  if (!client.ok()) Die(client.status().ToString());

  // Throughput, one client.
  (void)(*client)->CertifyPredictions(batch_request);  // warm the model cache
  auto t0 = Clock::now();
  for (int b = 0; b < batches; ++b) {
    auto r = (*client)->CertifyPredictions(batch_request);
    if (!r.ok() || r->points_size() != 1000) Die("batch certify failed");
  }
  const double one_client = Since(t0) / batches;

  // Throughput, 8 concurrent clients.
  constexpr int kClients = 8;
  std::vector<std::thread> threads;
  t0 = Clock::now();
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&] {
      auto own = agt::client::Client::Create(copts);
      if (!own.ok()) Die(own.status().ToString());
      for (int b = 0; b < std::max(1, batches / 4); ++b) {
        if (!(*own)->CertifyPredictions(batch_request).ok()) Die("concurrent certify failed");
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const double concurrent_points = kClients * std::max(1, batches / 4) * 1000.0 / Since(t0);

  // Latency of single-point calls.
  std::vector<double> latency_ms;
  latency_ms.reserve(calls);
  for (int i = 0; i < calls; ++i) {
    const auto s = Clock::now();
    if (!(*client)->CertifyPredictions(single_request).ok()) Die("single certify failed");
    latency_ms.push_back(Since(s) * 1e3);
  }
  double mean = 0;
  for (double v : latency_ms) mean += v;
  mean /= latency_ms.size();

  // PrivatePredict on the same batches (report-noisy-argmax: the model has
  // 10 classes): the release adds a durable budget spend (one synchronous
  // SQLite commit per call) and the noise to a nominal forward pass.
  agt::v1::PrivatePredictRequest private_batch;
  private_batch.set_model_id(model_id);
  *private_batch.mutable_inputs() = batch_request.inputs();
  private_batch.set_epsilon(1e-3);
  private_batch.set_mechanism(agt::v1::PRIVACY_MECHANISM_REPORT_NOISY_ARGMAX);
  t0 = Clock::now();
  for (int b = 0; b < batches; ++b) {
    auto r = (*client)->PrivatePredict(private_batch);
    if (!r.ok() || r->labels_size() != 1000) Die("batch private predict failed");
  }
  const double private_batch_s = Since(t0) / batches;
  agt::v1::PrivatePredictRequest private_single = private_batch;
  *private_single.mutable_inputs() = single_request.inputs();
  std::vector<double> private_ms;
  const int private_calls = std::max(10, calls / 4);
  for (int i = 0; i < private_calls; ++i) {
    const auto s = Clock::now();
    if (!(*client)->PrivatePredict(private_single).ok()) Die("single private predict failed");
    private_ms.push_back(Since(s) * 1e3);
  }

  std::printf("AGT service load benchmark (loopback, in-process agt-server, %u hardware threads)\n",
              std::thread::hardware_concurrency());
  std::printf("model 64-32-10 ReLU MLP, 6 removal budgets {1,2,5,10,20,50}\n\n");
  std::printf("CertifyPredictions, batches of 1000 points:\n");
  std::printf("  in-process certifier (baseline)  %8.2f ms/batch  %10.0f points/s\n",
              in_process * 1e3, 1000 / in_process);
  std::printf(
      "  over gRPC, 1 client              %8.2f ms/batch  %10.0f points/s  (%.2fx baseline)\n",
      one_client * 1e3, 1000 / one_client, one_client / in_process);
  std::printf("  over gRPC, %d clients                               %10.0f points/s\n", kClients,
              concurrent_points);
  std::printf("single-point calls (%d): p50 %.3f ms  p99 %.3f ms  mean %.3f ms\n", calls,
              Percentile(latency_ms, 0.5), Percentile(latency_ms, 0.99), mean);
  std::printf("\nPrivatePredict (report-noisy-argmax, durable budget spend per call):\n");
  std::printf(
      "  batches of 1000 points           %8.2f ms/batch  %10.0f points/s  (%.2fx certify)\n",
      private_batch_s * 1e3, 1000 / private_batch_s, private_batch_s / one_client);
  std::printf("  single-point calls (%d): p50 %.3f ms  p99 %.3f ms  (%.2fx certify p50)\n",
              private_calls, Percentile(private_ms, 0.5), Percentile(private_ms, 0.99),
              Percentile(private_ms, 0.5) / Percentile(latency_ms, 0.5));
  (*server)->Shutdown(std::chrono::milliseconds(2000));
  server->reset();
  std::filesystem::remove_all(dir);
  return 0;
}
