// Authentication, roles and tenant isolation against the real server with a
// tokens file: two tenants never see each other's datasets, jobs or models
// (NOT_FOUND both ways, disjoint listings); a querier reads and certifies but
// cannot write; missing or unknown tokens are UNAUTHENTICATED; health checks
// need no token.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "tests/server/e2e_util.h"

namespace agt::e2e {
namespace {

constexpr char kAcme[] = "acme-trainer-token";
constexpr char kAcmeQuery[] = "acme-querier-token";
constexpr char kBeta[] = "beta-admin-token";

// What one tenant owns after the suite's setup.
struct Owned {
  std::string dataset_id;
  std::string job_id;
  std::string model_id;
};

class TenantsE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    WriteFile(
        dir_->File("tokens"),
        absl::StrCat("# two tenants\n", TokenLine(kAcme, "trainer", "acme"),
                     TokenLine(kAcmeQuery, "querier", "acme"), TokenLine(kBeta, "admin", "beta")));
    server_ = new ServerProcess();
    ASSERT_TRUE(server_->Start(ServerArgs(dir_->File("t.db"), {"--tokens", dir_->File("tokens")}),
                               dir_->File("server.log")))
        << server_->Stderr();
    client_ = new Client(server_->address());
    acme_ = new Owned(Train(kAcme, 11));
    beta_ = new Owned(Train(kBeta, 12));
  }
  static void TearDownTestSuite() {
    delete client_;
    delete server_;
    delete dir_;
    delete acme_;
    delete beta_;
  }

  static Owned Train(const std::string& token, uint64_t seed) {
    Owned owned;
    owned.dataset_id = UploadMoons(*client_, 100, seed, token).id();
    agt::v1::Job job;
    const grpc::Status submitted = Submit(*client_, MoonsSpec(owned.dataset_id, 2), &job, token);
    EXPECT_TRUE(submitted.ok()) << submitted.error_message();
    owned.job_id = job.id();
    const agt::v1::Job done = WaitForFinal(*client_, job.id(), token);
    EXPECT_EQ(done.state(), agt::v1::JOB_STATE_SUCCEEDED) << done.error();
    owned.model_id = done.model_id();
    return owned;
  }

  // Every RPC that takes an id, called with `token` on `other`'s ids: all
  // must be NOT_FOUND, exactly like unknown ids. A token that may not write
  // (querier) gets PERMISSION_DENIED for writes before any id is looked at,
  // the same answer for its own ids, so that leaks nothing either.
  static void ExpectInvisible(const std::string& token, const Owned& other, bool can_write) {
    const grpc::StatusCode write_code =
        can_write ? grpc::StatusCode::NOT_FOUND : grpc::StatusCode::PERMISSION_DENIED;
    agt::v1::GetDatasetRequest get_ds;
    get_ds.set_dataset_id(other.dataset_id);
    agt::v1::GetDatasetResponse ds;
    EXPECT_EQ(client_->datasets->GetDataset(Ctx(token).get(), get_ds, &ds).error_code(),
              grpc::StatusCode::NOT_FOUND);
    agt::v1::GetJobRequest get_job;
    get_job.set_job_id(other.job_id);
    agt::v1::GetJobResponse job;
    EXPECT_EQ(client_->training->GetJob(Ctx(token).get(), get_job, &job).error_code(),
              grpc::StatusCode::NOT_FOUND);
    agt::v1::CancelJobRequest cancel;
    cancel.set_job_id(other.job_id);
    agt::v1::CancelJobResponse cancelled;
    EXPECT_EQ(client_->training->CancelJob(Ctx(token).get(), cancel, &cancelled).error_code(),
              write_code);
    std::vector<agt::v1::JobEvent> events;
    EXPECT_EQ(WatchAll(*client_, other.job_id, &events, token).error_code(),
              grpc::StatusCode::NOT_FOUND);
    EXPECT_TRUE(events.empty());
    agt::v1::GetModelRequest get_model;
    get_model.set_model_id(other.model_id);
    agt::v1::GetModelResponse model;
    EXPECT_EQ(client_->models->GetModel(Ctx(token).get(), get_model, &model).error_code(),
              grpc::StatusCode::NOT_FOUND);
    agt::v1::ExportModelRequest exp;
    exp.set_model_id(other.model_id);
    agt::v1::ExportModelResponse exported;
    EXPECT_EQ(client_->models->ExportModel(Ctx(token).get(), exp, &exported).error_code(),
              grpc::StatusCode::NOT_FOUND);
    agt::v1::CertifyPredictionsRequest certify;
    certify.set_model_id(other.model_id);
    certify.mutable_inputs()->set_rows(1);
    certify.mutable_inputs()->set_cols(2);
    certify.mutable_inputs()->add_values(0.0);
    certify.mutable_inputs()->add_values(0.0);
    agt::v1::CertifyPredictionsResponse certs;
    EXPECT_EQ(client_->models->CertifyPredictions(Ctx(token).get(), certify, &certs).error_code(),
              grpc::StatusCode::NOT_FOUND);
    agt::v1::CertifyDatasetRequest on_set;
    on_set.set_model_id(other.model_id);
    on_set.set_dataset_id(other.dataset_id);
    agt::v1::CertifyDatasetResponse set_certs;
    EXPECT_EQ(client_->models->CertifyDataset(Ctx(token).get(), on_set, &set_certs).error_code(),
              grpc::StatusCode::NOT_FOUND);
    // Submitting a job on the other tenant's dataset.
    EXPECT_EQ(Submit(*client_, MoonsSpec(other.dataset_id, 1), nullptr, token).error_code(),
              write_code);
    agt::v1::DeleteDatasetRequest del;
    del.set_dataset_id(other.dataset_id);
    agt::v1::DeleteDatasetResponse deleted;
    EXPECT_EQ(client_->datasets->DeleteDataset(Ctx(token).get(), del, &deleted).error_code(),
              write_code);
  }

  // Ids the token's listings show.
  static std::set<std::string> Listed(const std::string& token) {
    std::set<std::string> ids;
    agt::v1::ListDatasetsResponse datasets;
    EXPECT_TRUE(client_->datasets->ListDatasets(Ctx(token).get(), {}, &datasets).ok());
    for (const auto& d : datasets.datasets()) ids.insert(d.id());
    agt::v1::ListJobsResponse jobs;
    EXPECT_TRUE(client_->training->ListJobs(Ctx(token).get(), {}, &jobs).ok());
    for (const auto& j : jobs.jobs()) ids.insert(j.id());
    agt::v1::ListModelsResponse models;
    EXPECT_TRUE(client_->models->ListModels(Ctx(token).get(), {}, &models).ok());
    for (const auto& m : models.models()) ids.insert(m.id());
    return ids;
  }

  static TempDir* dir_;
  static ServerProcess* server_;
  static Client* client_;
  static Owned* acme_;
  static Owned* beta_;
};

TempDir* TenantsE2eTest::dir_ = nullptr;
ServerProcess* TenantsE2eTest::server_ = nullptr;
Client* TenantsE2eTest::client_ = nullptr;
Owned* TenantsE2eTest::acme_ = nullptr;
Owned* TenantsE2eTest::beta_ = nullptr;

TEST_F(TenantsE2eTest, ATenantNeverSeesAnotherTenantsIds) {
  ExpectInvisible(kAcme, *beta_, /*can_write=*/true);
  ExpectInvisible(kAcmeQuery, *beta_, /*can_write=*/false);
  ExpectInvisible(kBeta, *acme_, /*can_write=*/true);
  // The owners still see their own (nothing was deleted or cancelled).
  agt::v1::GetDatasetRequest get_ds;
  get_ds.set_dataset_id(beta_->dataset_id);
  agt::v1::GetDatasetResponse ds;
  EXPECT_TRUE(client_->datasets->GetDataset(Ctx(kBeta).get(), get_ds, &ds).ok());
  get_ds.set_dataset_id(acme_->dataset_id);
  EXPECT_TRUE(client_->datasets->GetDataset(Ctx(kAcme).get(), get_ds, &ds).ok());
}

TEST_F(TenantsE2eTest, ListingsAreDisjointAndComplete) {
  const std::set<std::string> acme = Listed(kAcme);
  const std::set<std::string> beta = Listed(kBeta);
  EXPECT_EQ(acme, (std::set<std::string>{acme_->dataset_id, acme_->job_id, acme_->model_id}));
  EXPECT_EQ(beta, (std::set<std::string>{beta_->dataset_id, beta_->job_id, beta_->model_id}));
  // Same tenant, other role: the same view.
  EXPECT_EQ(Listed(kAcmeQuery), acme);
}

TEST_F(TenantsE2eTest, QuerierReadsAndCertifiesButCannotWrite) {
  agt::v1::GetModelRequest get;
  get.set_model_id(acme_->model_id);
  agt::v1::GetModelResponse model;
  EXPECT_TRUE(client_->models->GetModel(Ctx(kAcmeQuery).get(), get, &model).ok());
  agt::v1::CertifyDatasetRequest on_set;
  on_set.set_model_id(acme_->model_id);
  on_set.set_dataset_id(acme_->dataset_id);
  agt::v1::CertifyDatasetResponse certs;
  EXPECT_TRUE(client_->models->CertifyDataset(Ctx(kAcmeQuery).get(), on_set, &certs).ok());

  agt::v1::Dataset ignored;
  const grpc::Status upload =
      Upload(*client_, CsvMetadata("q"), MoonsCsv(10, 1), &ignored, kAcmeQuery);
  EXPECT_EQ(upload.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(upload.error_message().find("querier"), std::string::npos);
  const grpc::Status submit =
      Submit(*client_, MoonsSpec(acme_->dataset_id, 1), nullptr, kAcmeQuery);
  EXPECT_EQ(submit.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  agt::v1::DeleteDatasetRequest del;
  del.set_dataset_id(acme_->dataset_id);
  agt::v1::DeleteDatasetResponse deleted;
  EXPECT_EQ(client_->datasets->DeleteDataset(Ctx(kAcmeQuery).get(), del, &deleted).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  agt::v1::CancelJobRequest cancel;
  cancel.set_job_id(acme_->job_id);
  agt::v1::CancelJobResponse cancelled;
  EXPECT_EQ(client_->training->CancelJob(Ctx(kAcmeQuery).get(), cancel, &cancelled).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(TenantsE2eTest, MissingMalformedAndUnknownTokensAreUnauthenticated) {
  agt::v1::ListDatasetsResponse list;
  grpc::Status none = client_->datasets->ListDatasets(Ctx("").get(), {}, &list);
  EXPECT_EQ(none.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(none.error_message().find("authorization"), std::string::npos);
  EXPECT_EQ(client_->datasets->ListDatasets(Ctx("wrong-token").get(), {}, &list).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  {
    grpc::ClientContext context;
    context.AddMetadata("authorization", std::string("Basic ") + kAcme);
    EXPECT_EQ(client_->datasets->ListDatasets(&context, {}, &list).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext context;
    context.AddMetadata("authorization", std::string("Bearer ") + kAcme);
    context.AddMetadata("authorization", std::string("Bearer ") + kBeta);
    EXPECT_EQ(client_->datasets->ListDatasets(&context, {}, &list).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  // Streams too.
  std::vector<agt::v1::JobEvent> events;
  EXPECT_EQ(WatchAll(*client_, acme_->job_id, &events, "").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Upload(*client_, CsvMetadata("x"), "1,0\n", nullptr, "nope").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // Health checking needs no credentials.
  EXPECT_TRUE(HealthServing(client_->channel.get()));
}

}  // namespace
}  // namespace agt::e2e
