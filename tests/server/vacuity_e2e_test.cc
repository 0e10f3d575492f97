// Vacuous-certificate warnings and the stored width history against the real
// server (a child agt-server on loopback with its own SQLite file): a job
// whose bounds explode ends SUCCEEDED with warnings on GetJob, on the final
// WatchJob event and on GetModel, while an ordinary job has none;
// GetTrainingHistory serves a bounded history covering the first to the last
// iteration, by job or model id, keeps it across a kill -9 and resume, and
// has GetJob's auth and tenant checks.
#include <gtest/gtest.h>
#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "tests/server/e2e_util.h"

namespace agt::e2e {
namespace {

// Removal of half of every batch with a large step: the boxes grow by orders
// of magnitude every epoch but stay finite for these few epochs (a finite
// box is stored; a non-finite one fails the job in the core).
agt::v1::TrainingJobSpec ExplodingSpec(const std::string& dataset_id) {
  agt::v1::TrainingJobSpec spec = MoonsSpec(dataset_id, 4, 20, {0, 10});
  spec.set_name("exploding");
  spec.mutable_optimizer()->set_learning_rate(2.0);
  return spec;
}

// Logistic regression on cubic features, 250 rows per batch, removal of 1, 2
// or 5 of them (the README's main job, smaller): certifies a good part of
// the data at n = 1 and 2.
agt::v1::TrainingJobSpec OrdinarySpec(const std::string& dataset_id) {
  agt::v1::TrainingJobSpec spec = MoonsSpec(dataset_id, 3, 250, {1, 2, 5});
  spec.set_name("ordinary");
  spec.clear_hidden_widths();
  spec.set_polynomial_degree(3);
  spec.mutable_optimizer()->set_learning_rate(2.0);
  spec.mutable_optimizer()->set_lr_decay(0.5);
  spec.set_seed(0);
  return spec;
}

agt::v1::GetTrainingHistoryResponse History(Client& client, const std::string& job_id,
                                            const std::string& model_id = "",
                                            grpc::Status* status_out = nullptr,
                                            const std::string& token = "") {
  agt::v1::GetTrainingHistoryRequest request;
  if (!model_id.empty()) {
    request.set_model_id(model_id);
  } else {
    request.set_job_id(job_id);
  }
  agt::v1::GetTrainingHistoryResponse response;
  const grpc::Status status =
      client.training->GetTrainingHistory(Ctx(token).get(), request, &response);
  if (status_out != nullptr) {
    *status_out = status;
  } else {
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
  return response;
}

// Points increasing from iteration 1 to `last`, one width per budget,
// evenly `stride` apart (the last gap may be shorter), at most max_points.
void ExpectCovers(const agt::v1::GetTrainingHistoryResponse& h, int64_t last, int budgets) {
  ASSERT_GT(h.points_size(), 0);
  EXPECT_LE(h.points_size(), h.max_points());
  EXPECT_EQ(h.max_points(), 1024);
  EXPECT_EQ(h.budgets_size(), budgets);
  EXPECT_EQ(h.points(0).iteration(), 1);
  EXPECT_EQ(h.points(h.points_size() - 1).iteration(), last);
  for (int i = 0; i < h.points_size(); ++i) {
    EXPECT_EQ(h.points(i).total_width_size(), budgets) << "point " << i;
    if (i == 0) continue;
    const int64_t gap = h.points(i).iteration() - h.points(i - 1).iteration();
    EXPECT_GT(gap, 0);
    if (i + 1 < h.points_size()) {
      EXPECT_EQ(gap, h.stride()) << "point " << i;
    } else {
      EXPECT_LE(gap, h.stride());
    }
  }
}

class VacuityE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<TempDir>();
    server_ = std::make_unique<ServerProcess>();
    ASSERT_TRUE(server_->Start(ServerArgs(dir_->File("v.db"), {"--checkpoint-steps", "25"}),
                               dir_->File("server.log")))
        << server_->Stderr();
    client_ = std::make_unique<Client>(server_->address());
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<Client> client_;
};

TEST_F(VacuityE2eTest, AnOrdinaryJobHasNoWarningAndAHistoryOfEveryIteration) {
  const agt::v1::Dataset data = UploadMoons(*client_, 1000, 3);
  agt::v1::Job job;
  ASSERT_TRUE(Submit(*client_, OrdinarySpec(data.id()), &job).ok());
  const agt::v1::Job done = WaitForFinal(*client_, job.id());
  ASSERT_EQ(done.state(), agt::v1::JOB_STATE_SUCCEEDED) << done.error();
  EXPECT_EQ(done.warnings_size(), 0) << done.warnings(0).message();

  agt::v1::GetModelRequest get;
  get.set_model_id(done.model_id());
  agt::v1::GetModelResponse model;
  ASSERT_TRUE(client_->models->GetModel(Ctx().get(), get, &model).ok());
  EXPECT_EQ(model.model().warnings_size(), 0);

  // 1000 rows / 250 per batch x 3 epochs: 12 iterations, all kept.
  const agt::v1::GetTrainingHistoryResponse h = History(*client_, job.id());
  EXPECT_EQ(h.job_id(), job.id());
  EXPECT_EQ(h.total_iterations(), 12);
  EXPECT_EQ(h.stride(), 1);
  EXPECT_EQ(h.points_size(), 12);
  ExpectCovers(h, 12, 3);
  // The last point is the job's final progress; widths grow over training.
  const agt::v1::TrainingHistoryPoint& last = h.points(h.points_size() - 1);
  EXPECT_EQ(last.epoch(), 2);
  for (int j = 0; j < 3; ++j) {
    EXPECT_DOUBLE_EQ(last.total_width(j), done.progress().total_width(j));
    EXPECT_GT(last.total_width(j), h.points(0).total_width(j));
  }
  // The same history by model id.
  const agt::v1::GetTrainingHistoryResponse by_model = History(*client_, "", done.model_id());
  EXPECT_EQ(by_model.job_id(), job.id());
  EXPECT_EQ(by_model.points_size(), h.points_size());
}

TEST_F(VacuityE2eTest, AJobWhoseBoundsExplodedEndsWithWarningsEverywhere) {
  const agt::v1::Dataset data = UploadMoons(*client_, 200, 5);
  agt::v1::Job job;
  ASSERT_TRUE(Submit(*client_, ExplodingSpec(data.id()), &job).ok());
  std::vector<agt::v1::JobEvent> events;
  ASSERT_TRUE(WatchAll(*client_, job.id(), &events).ok());
  ASSERT_FALSE(events.empty());
  const agt::v1::JobEvent& final_event = events.back();
  ASSERT_EQ(final_event.state(), agt::v1::JOB_STATE_SUCCEEDED) << final_event.error();
  ASSERT_GT(final_event.warnings_size(), 0);

  const agt::v1::Job done = WaitForFinal(*client_, job.id());
  ASSERT_EQ(done.warnings_size(), final_event.warnings_size());
  bool too_wide = false, nothing = false;
  for (const agt::v1::JobWarning& w : done.warnings()) {
    if (w.code() == agt::v1::JOB_WARNING_BOUNDS_TOO_WIDE) {
      too_wide = true;
      EXPECT_EQ(w.budget().n(), 10) << w.message();
      EXPECT_TRUE(absl::StrContains(w.message(), "1000")) << w.message();
    }
    if (w.code() == agt::v1::JOB_WARNING_NOTHING_CERTIFIED) {
      nothing = true;
      EXPECT_FALSE(w.has_budget());
      EXPECT_TRUE(absl::StrContains(w.message(), "200 sampled")) << w.message();
    }
    // n = 0 is the nominal model: never flagged.
    if (w.has_budget()) {
      EXPECT_NE(w.budget().n(), 0) << w.message();
    }
  }
  EXPECT_TRUE(too_wide);
  EXPECT_TRUE(nothing);

  agt::v1::GetModelRequest get;
  get.set_model_id(done.model_id());
  agt::v1::GetModelResponse model;
  ASSERT_TRUE(client_->models->GetModel(Ctx().get(), get, &model).ok());
  ASSERT_EQ(model.model().warnings_size(), done.warnings_size());
  EXPECT_EQ(model.model().warnings(0).message(), done.warnings(0).message());
  // Consistent with the box summary: the flagged budget's max width passes
  // the documented threshold.
  double scale = 1.0;
  for (const agt::v1::DenseParameters& layer : model.model().nominal().layers()) {
    for (double v : layer.weight().values()) scale = std::max(scale, std::abs(v));
    for (double v : layer.bias()) scale = std::max(scale, std::abs(v));
  }
  EXPECT_GT(model.model().budgets(1).max_width(), 1e3 * scale);
  EXPECT_LE(model.model().budgets(1).max_width(), std::numeric_limits<double>::max());
}

TEST_F(VacuityE2eTest, ALongJobsHistoryIsBoundedAndEven) {
  const agt::v1::Dataset data = UploadMoons(*client_, 100, 9);
  // A linear model, 10 rows per batch: 10 steps per epoch, 130 epochs = 1300
  // iterations, more than the 1024 points a history holds.
  agt::v1::TrainingJobSpec spec = MoonsSpec(data.id(), 130, 10, {1});
  spec.clear_hidden_widths();
  spec.mutable_optimizer()->set_learning_rate(0.01);
  agt::v1::Job job;
  ASSERT_TRUE(Submit(*client_, spec, &job).ok());
  const agt::v1::Job done = WaitForFinal(*client_, job.id(), "", std::chrono::seconds(120));
  ASSERT_EQ(done.state(), agt::v1::JOB_STATE_SUCCEEDED) << done.error();
  const agt::v1::GetTrainingHistoryResponse h = History(*client_, job.id());
  EXPECT_EQ(h.stride(), 2);
  // Iterations 1, 3, ..., 1299 and the last one, 1300.
  EXPECT_EQ(h.points_size(), 651);
  ExpectCovers(h, 1300, 1);
}

TEST_F(VacuityE2eTest, AResumedJobKeepsItsHistory) {
  const agt::v1::Dataset data = UploadMoons(*client_, 500, 13);
  // 25 steps per epoch x 80 epochs; checkpoints every 25 steps.
  agt::v1::TrainingJobSpec spec = MoonsSpec(data.id(), 80, 20, {1, 2});
  spec.clear_hidden_widths();
  spec.add_hidden_widths(32);
  spec.mutable_optimizer()->set_learning_rate(0.01);
  agt::v1::Job job;
  ASSERT_TRUE(Submit(*client_, spec, &job).ok());
  // Kill once a few checkpoints are written.
  const auto give_up = Clock::now() + std::chrono::seconds(60);
  int64_t seen = 0;
  while (Clock::now() < give_up) {
    agt::v1::GetJobRequest get;
    get.set_job_id(job.id());
    agt::v1::GetJobResponse now;
    ASSERT_TRUE(client_->training->GetJob(Ctx().get(), get, &now).ok());
    seen = now.job().progress().iteration();
    ASSERT_NE(now.job().state(), agt::v1::JOB_STATE_SUCCEEDED) << "make the job longer";
    if (seen >= 120) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GE(seen, 120);
  const agt::v1::GetTrainingHistoryResponse before = History(*client_, job.id());
  ASSERT_GE(before.points_size(), 100);
  server_->Signal(SIGKILL);
  client_.reset();

  server_ = std::make_unique<ServerProcess>();
  ASSERT_TRUE(server_->Start(ServerArgs(dir_->File("v.db"), {"--checkpoint-steps", "25"}),
                             dir_->File("server2.log")))
      << server_->Stderr();
  client_ = std::make_unique<Client>(server_->address());
  const agt::v1::Job done = WaitForFinal(*client_, job.id(), "", std::chrono::seconds(120));
  ASSERT_EQ(done.state(), agt::v1::JOB_STATE_SUCCEEDED) << done.error();
  const agt::v1::GetTrainingHistoryResponse after = History(*client_, job.id());
  // 2000 iterations: stride 2 after the first 1024; the points from before
  // the kill are still there, unchanged.
  ExpectCovers(after, 2000, 2);
  for (const agt::v1::TrainingHistoryPoint& p : before.points()) {
    if (p.iteration() > 100 || (p.iteration() - 1) % after.stride() != 0) continue;
    const int index = static_cast<int>((p.iteration() - 1) / after.stride());
    ASSERT_LT(index, after.points_size());
    EXPECT_EQ(after.points(index).iteration(), p.iteration());
    EXPECT_EQ(after.points(index).total_width(1), p.total_width(1)) << p.iteration();
  }
}

TEST(VacuityAuthE2eTest, HistoryHasGetJobsRolesAndTenantScoping) {
  TempDir dir;
  WriteFile(dir.File("tokens"), absl::StrCat(TokenLine("acme-train", "trainer", "acme"),
                                             TokenLine("acme-query", "querier", "acme"),
                                             TokenLine("acme-private", "private-querier", "acme"),
                                             TokenLine("beta-admin", "admin", "beta")));
  ServerProcess server;
  ASSERT_TRUE(server.Start(ServerArgs(dir.File("a.db"), {"--tokens", dir.File("tokens")}),
                           dir.File("server.log")))
      << server.Stderr();
  Client client(server.address());
  const agt::v1::Dataset data = UploadMoons(client, 100, 1, "acme-train");
  const std::string model_id = TrainModel(client, MoonsSpec(data.id(), 1), "acme-train");
  ASSERT_FALSE(model_id.empty());
  grpc::Status status;
  const agt::v1::GetTrainingHistoryResponse h =
      History(client, "", model_id, &status, "acme-query");
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_GT(h.points_size(), 0);
  const std::string job_id = h.job_id();

  History(client, job_id, "", &status, "beta-admin");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
  History(client, "", model_id, &status, "beta-admin");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
  History(client, job_id, "", &status, "acme-private");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
  History(client, job_id, "", &status, "");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
  History(client, "job-0000000000000000", "", &status, "acme-query");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();

  agt::v1::GetTrainingHistoryResponse response;
  const grpc::Status empty = client.training->GetTrainingHistory(
      Ctx("acme-query").get(), agt::v1::GetTrainingHistoryRequest(), &response);
  EXPECT_EQ(empty.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << empty.error_message();
}

}  // namespace
}  // namespace agt::e2e
