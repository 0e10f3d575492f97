// A small in-process agt.v1 server for client tests: real gRPC on 127.0.0.1
// port 0, canned behaviour, and a record of what the client sent (metadata,
// upload chunks, requests). Not the real agt-server: it tests the client's
// side of the wire, whatever the server's domain logic does.
//
// Behaviour:
// - every RPC checks `authorization` against `required_token` when that is
//   set (UNAUTHENTICATED otherwise);
// - ids starting with "missing" are NOT_FOUND; "slow" sleeps 2 s first;
// - uploads answer a dataset whose num_rows counts the '\n' bytes received;
// - SubmitTrainingJob is INVALID_ARGUMENT when a budget n >= batch_size;
// - WatchJob streams QUEUED, `watch_steps` RUNNING events, then SUCCEEDED (or
//   FAILED when the job's name is "fail");
// - the model "m-1" has budgets n = 1, 2, 5 and 2 input features; a point is
//   predicted class 1 iff x0 > 0 and stable at n iff |x0| > 0.1 n.
// Thread-safety: the recorded fields are guarded by `mu`.
#ifndef AGT_TESTS_CLIENT_FAKE_SERVER_H_
#define AGT_TESTS_CLIENT_FAKE_SERVER_H_

#include <chrono>
#include <cmath>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agt/v1/datasets.grpc.pb.h"
#include "agt/v1/models.grpc.pb.h"
#include "agt/v1/training.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"

namespace agt::client::testing {

struct FakeState {
  std::mutex mu;
  std::string required_token;               // empty = no check
  std::vector<std::string> authorizations;  // every call's header ("" if none)
  agt::v1::DatasetMetadata upload_metadata;
  std::vector<size_t> upload_chunk_sizes;
  std::string upload_bytes;
  bool upload_metadata_first = false;
  agt::v1::TrainingJobSpec submitted;
  agt::v1::CertifyPredictionsRequest certify_request;
  int certify_calls = 0;
  int watch_steps = 5;
  std::chrono::milliseconds watch_step_delay{0};
  int watch_events_sent = 0;
};

inline grpc::Status CheckAuth(FakeState& state, grpc::ServerContext* context) {
  std::string header;
  auto it = context->client_metadata().find("authorization");
  if (it != context->client_metadata().end()) header.assign(it->second.data(), it->second.size());
  std::lock_guard<std::mutex> lock(state.mu);
  state.authorizations.push_back(header);
  if (!state.required_token.empty() && header != "Bearer " + state.required_token) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or unknown bearer token");
  }
  return grpc::Status::OK;
}

inline grpc::Status CheckId(const std::string& kind, const std::string& id) {
  if (id.rfind("slow", 0) == 0) std::this_thread::sleep_for(std::chrono::seconds(2));
  if (id.rfind("missing", 0) == 0) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, kind + " " + id + " not found");
  }
  return grpc::Status::OK;
}

inline agt::v1::Dataset FakeDataset(const std::string& id) {
  agt::v1::Dataset d;
  d.set_id(id);
  d.set_name("moons");
  d.set_num_rows(3);
  d.set_num_features(2);
  d.set_num_classes(2);
  d.set_checksum(std::string(64, 'a'));
  d.set_size_bytes(48);
  d.mutable_created()->set_seconds(1700000000);
  return d;
}

inline agt::v1::Model FakeModel(const std::string& id) {
  agt::v1::Model m;
  m.set_id(id);
  m.set_job_id("job-1");
  m.set_dataset_id("ds-1");
  m.set_name("moons");
  auto* dense = m.mutable_architecture()->add_layers()->mutable_dense();
  dense->set_in(2);
  dense->set_out(1);
  m.set_polynomial_degree(1);
  m.set_input_features(2);
  m.set_loss(agt::v1::LOSS_BINARY_CROSS_ENTROPY);
  m.set_num_classes(2);
  m.mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_REMOVAL);
  for (int n : {1, 2, 5}) {
    auto* b = m.add_budgets();
    b->mutable_budget()->set_n(n);
    b->set_total_width(0.01 * n);
    b->set_max_width(0.001 * n);
  }
  return m;
}

class FakeDatasets final : public agt::v1::DatasetService::Service {
 public:
  explicit FakeDatasets(FakeState& state) : state_(state) {}

  grpc::Status UploadDataset(grpc::ServerContext* context,
                             grpc::ServerReader<agt::v1::UploadDatasetRequest>* reader,
                             agt::v1::UploadDatasetResponse* response) override {
    if (grpc::Status s = CheckAuth(state_, context); !s.ok()) return s;
    agt::v1::UploadDatasetRequest request;
    bool first = true;
    int64_t lines = 0;
    while (reader->Read(&request)) {
      std::lock_guard<std::mutex> lock(state_.mu);
      if (first) {
        state_.upload_metadata_first = request.has_metadata();
        state_.upload_metadata = request.metadata();
        state_.upload_chunk_sizes.clear();
        state_.upload_bytes.clear();
        first = false;
        continue;
      }
      if (request.part_case() != agt::v1::UploadDatasetRequest::kChunk) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "expected a chunk");
      }
      state_.upload_chunk_sizes.push_back(request.chunk().size());
      state_.upload_bytes += request.chunk();
      for (char c : request.chunk()) lines += c == '\n';
    }
    if (state_.upload_metadata.name() == "reject") {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "data.csv:2: column 1: 'x' is "
                          "not a number");
    }
    *response->mutable_dataset() = FakeDataset("ds-1");
    response->mutable_dataset()->set_name(state_.upload_metadata.name());
    response->mutable_dataset()->set_num_rows(lines);
    return grpc::Status::OK;
  }

  grpc::Status ListDatasets(grpc::ServerContext* context,
                            const agt::v1::ListDatasetsRequest* request,
                            agt::v1::ListDatasetsResponse* response) override {
    if (grpc::Status s = CheckAuth(state_, context); !s.ok()) return s;
    // Five datasets in pages of two, to exercise paging.
    int start = request->page_token().empty() ? 0 : std::stoi(request->page_token());
    for (int i = start; i < std::min(start + 2, 5); ++i) {
      *response->add_datasets() = FakeDataset("ds-" + std::to_string(i + 1));
    }
    if (start + 2 < 5) response->set_next_page_token(std::to_string(start + 2));
    return grpc::Status::OK;
  }

  grpc::Status GetDataset(grpc::ServerContext* context, const agt::v1::GetDatasetRequest* request,
                          agt::v1::GetDatasetResponse* response) override {
    if (grpc::Status s = CheckAuth(state_, context); !s.ok()) return s;
    if (grpc::Status s = CheckId("dataset", request->dataset_id()); !s.ok()) return s;
    *response->mutable_dataset() = FakeDataset(request->dataset_id());
    return grpc::Status::OK;
  }

  grpc::Status DeleteDataset(grpc::ServerContext* context,
                             const agt::v1::DeleteDatasetRequest* request,
                             agt::v1::DeleteDatasetResponse*) override {
    if (grpc::Status s = CheckAuth(state_, context); !s.ok()) return s;
    return CheckId("dataset", request->dataset_id());
  }

 private:
  FakeState& state_;
};

class FakeTraining final : public agt::v1::TrainingService::Service {
 public:
  explicit FakeTraining(FakeState& state) : state_(state) {}

  grpc::Status SubmitTrainingJob(grpc::ServerContext* context,
                                 const agt::v1::SubmitTrainingJobRequest* request,
                                 agt::v1::SubmitTrainingJobResponse* response) override {
    if (grpc::Status s = CheckAuth(state_, context); !s.ok()) return s;
    for (const auto& b : request->spec().budgets()) {
      if (b.n() >= request->spec().batch_size()) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "budgets[].n " + std::to_string(b.n()) + " must be below batch_size " +
                                std::to_string(request->spec().batch_size()));
      }
    }
    {
      std::lock_guard<std::mutex> lock(state_.mu);
      state_.submitted = request->spec();
    }
    *response->mutable_job() = MakeJob("job-1", agt::v1::JOB_STATE_QUEUED);
    return grpc::Status::OK;
  }

  grpc::Status GetJob(grpc::ServerContext* context, const agt::v1::GetJobRequest* request,
                      agt::v1::GetJobResponse* response) override {
    if (grpc::Status s = CheckAuth(state_, context); !s.ok()) return s;
    if (grpc::Status s = CheckId("job", request->job_id()); !s.ok()) return s;
    *response->mutable_job() = MakeJob(request->job_id(), FinalState());
    return grpc::Status::OK;
  }

  grpc::Status ListJobs(grpc::ServerContext* context, const agt::v1::ListJobsRequest* request,
                        agt::v1::ListJobsResponse* response) override {
    if (grpc::Status s = CheckAuth(state_, context); !s.ok()) return s;
    if (request->state() == agt::v1::JOB_STATE_UNSPECIFIED ||
        request->state() == agt::v1::JOB_STATE_SUCCEEDED) {
      *response->add_jobs() = MakeJob("job-1", agt::v1::JOB_STATE_SUCCEEDED);
    }
    return grpc::Status::OK;
  }

  grpc::Status CancelJob(grpc::ServerContext* context, const agt::v1::CancelJobRequest* request,
                         agt::v1::CancelJobResponse* response) override {
    if (grpc::Status s = CheckAuth(state_, context); !s.ok()) return s;
    if (grpc::Status s = CheckId("job", request->job_id()); !s.ok()) return s;
    *response->mutable_job() = MakeJob(request->job_id(), agt::v1::JOB_STATE_CANCELLED);
    return grpc::Status::OK;
  }

  grpc::Status WatchJob(grpc::ServerContext* context, const agt::v1::WatchJobRequest* request,
                        grpc::ServerWriter<agt::v1::JobEvent>* writer) override {
    if (grpc::Status s = CheckAuth(state_, context); !s.ok()) return s;
    if (grpc::Status s = CheckId("job", request->job_id()); !s.ok()) return s;
    int steps;
    std::chrono::milliseconds delay;
    {
      std::lock_guard<std::mutex> lock(state_.mu);
      steps = state_.watch_steps;
      delay = state_.watch_step_delay;
      state_.watch_events_sent = 0;
    }
    agt::v1::JobEvent event;
    event.set_state(agt::v1::JOB_STATE_QUEUED);
    if (!Send(writer, event)) return grpc::Status::CANCELLED;
    for (int i = 1; i <= steps; ++i) {
      if (context->IsCancelled()) return grpc::Status::CANCELLED;
      std::this_thread::sleep_for(delay);
      event.set_state(agt::v1::JOB_STATE_RUNNING);
      *event.mutable_progress() = Progress(i, steps);
      if (!Send(writer, event)) return grpc::Status::CANCELLED;
    }
    event.set_state(FinalState());
    if (FinalState() == agt::v1::JOB_STATE_SUCCEEDED) {
      event.set_model_id("m-1");
    } else {
      event.set_error("training diverged at iteration 3");
    }
    Send(writer, event);
    return grpc::Status::OK;
  }

 private:
  bool Send(grpc::ServerWriter<agt::v1::JobEvent>* writer, const agt::v1::JobEvent& event) {
    std::lock_guard<std::mutex> lock(state_.mu);
    ++state_.watch_events_sent;
    return writer->Write(event);
  }

  agt::v1::JobState FinalState() {
    std::lock_guard<std::mutex> lock(state_.mu);
    return state_.submitted.name() == "fail" ? agt::v1::JOB_STATE_FAILED
                                             : agt::v1::JOB_STATE_SUCCEEDED;
  }

  static agt::v1::JobProgress Progress(int i, int steps) {
    agt::v1::JobProgress p;
    p.set_iteration(i);
    p.set_total_iterations(steps);
    p.set_epoch(1);
    p.set_nominal_loss(1.0 / i);
    for (int n : {1, 2, 5}) p.add_total_width(0.01 * n * i);
    p.set_eta_seconds(steps - i);
    return p;
  }

  agt::v1::Job MakeJob(const std::string& id, agt::v1::JobState state) {
    agt::v1::Job job;
    job.set_id(id);
    {
      std::lock_guard<std::mutex> lock(state_.mu);
      *job.mutable_spec() = state_.submitted;
    }
    if (job.spec().budgets_size() == 0) {
      for (int n : {1, 2, 5}) job.mutable_spec()->add_budgets()->set_n(n);
    }
    job.set_state(state);
    if (state == agt::v1::JOB_STATE_SUCCEEDED) job.set_model_id("m-1");
    if (state == agt::v1::JOB_STATE_FAILED) job.set_error("training diverged at iteration 3");
    return job;
  }

  FakeState& state_;
};

class FakeModels final : public agt::v1::ModelService::Service {
 public:
  explicit FakeModels(FakeState& state) : state_(state) {}

  grpc::Status GetModel(grpc::ServerContext* context, const agt::v1::GetModelRequest* request,
                        agt::v1::GetModelResponse* response) override {
    if (grpc::Status s = CheckAuth(state_, context); !s.ok()) return s;
    if (grpc::Status s = CheckId("model", request->model_id()); !s.ok()) return s;
    *response->mutable_model() = FakeModel(request->model_id());
    return grpc::Status::OK;
  }

  grpc::Status ListModels(grpc::ServerContext* context, const agt::v1::ListModelsRequest*,
                          agt::v1::ListModelsResponse* response) override {
    if (grpc::Status s = CheckAuth(state_, context); !s.ok()) return s;
    *response->add_models() = FakeModel("m-1");
    return grpc::Status::OK;
  }

  grpc::Status ExportModel(grpc::ServerContext* context, const agt::v1::ExportModelRequest* request,
                           agt::v1::ExportModelResponse* response) override {
    if (grpc::Status s = CheckAuth(state_, context); !s.ok()) return s;
    if (grpc::Status s = CheckId("model", request->model_id()); !s.ok()) return s;
    *response->mutable_model() = FakeModel(request->model_id());
    for (const auto& b : response->model().budgets()) {
      auto* box = response->add_boxes();
      *box->mutable_budget() = b.budget();
      auto* lower = box->mutable_lower()->add_layers();
      lower->mutable_weight()->set_rows(1);
      lower->mutable_weight()->set_cols(2);
      lower->mutable_weight()->add_values(-1);
      lower->mutable_weight()->add_values(-2);
      lower->add_bias(-0.5);
      *box->mutable_upper() = box->lower();
    }
    return grpc::Status::OK;
  }

  grpc::Status CertifyPredictions(grpc::ServerContext* context,
                                  const agt::v1::CertifyPredictionsRequest* request,
                                  agt::v1::CertifyPredictionsResponse* response) override {
    if (grpc::Status s = CheckAuth(state_, context); !s.ok()) return s;
    if (grpc::Status s = CheckId("model", request->model_id()); !s.ok()) return s;
    const auto& in = request->inputs();
    if (in.cols() != 2 || in.values_size() != in.rows() * in.cols()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "inputs.cols " + std::to_string(in.cols()) + " must be 2");
    }
    {
      std::lock_guard<std::mutex> lock(state_.mu);
      state_.certify_request = *request;
      ++state_.certify_calls;
    }
    const int budgets[] = {1, 2, 5};
    for (int n : budgets) response->add_budgets()->set_n(n);
    for (int64_t r = 0; r < in.rows(); ++r) {
      const double x0 = in.values(static_cast<int>(r * 2));
      auto* p = response->add_points();
      p->set_predicted_class(x0 > 0 ? 1 : 0);
      p->add_nominal_logits(x0);
      p->set_largest_stable_budget(-1);
      p->set_largest_stable_n(-1);
      for (int b = 0; b < 3; ++b) {
        const bool stable = std::abs(x0) > 0.1 * budgets[b];
        p->add_stable(stable);
        auto* bounds = p->add_bounds();
        bounds->add_lower(x0 - 0.1 * budgets[b]);
        bounds->add_upper(x0 + 0.1 * budgets[b]);
        if (stable) {
          p->set_largest_stable_budget(b);
          p->set_largest_stable_n(budgets[b]);
        }
        if (request->labels_size() > 0) {
          p->add_correct(stable && request->labels(static_cast<int>(r)) == p->predicted_class());
        }
      }
    }
    response->set_guarantee("fake guarantee: per batch");
    return grpc::Status::OK;
  }

  grpc::Status CertifyDataset(grpc::ServerContext* context,
                              const agt::v1::CertifyDatasetRequest* request,
                              agt::v1::CertifyDatasetResponse* response) override {
    if (grpc::Status s = CheckAuth(state_, context); !s.ok()) return s;
    if (grpc::Status s = CheckId("model", request->model_id()); !s.ok()) return s;
    if (grpc::Status s = CheckId("dataset", request->dataset_id()); !s.ok()) return s;
    for (int n : {1, 2, 5}) {
      auto* c = response->add_budgets();
      c->mutable_budget()->set_n(n);
      c->set_accuracy_nominal(0.9);
      c->set_accuracy_worst(0.9 - 0.1 * n);
      c->set_accuracy_best(0.95);
      c->set_stable_fraction(1.0 - 0.1 * n);
    }
    response->set_num_rows(100);
    response->set_guarantee("fake guarantee: per batch");
    return grpc::Status::OK;
  }

 private:
  FakeState& state_;
};

// The three services and the standard health service on 127.0.0.1:0.
class FakeServer {
 public:
  FakeServer() : datasets_(state), training_(state), models_(state) {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&datasets_);
    builder.RegisterService(&training_);
    builder.RegisterService(&models_);
    builder.SetMaxReceiveMessageSize(4 << 20);
    server_ = builder.BuildAndStart();
  }
  ~FakeServer() { server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1)); }

  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }
  bool ok() const { return server_ != nullptr && port_ > 0; }

  FakeState state;

 private:
  FakeDatasets datasets_;
  FakeTraining training_;
  FakeModels models_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace agt::client::testing

#endif  // AGT_TESTS_CLIENT_FAKE_SERVER_H_
