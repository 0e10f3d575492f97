// Long-lived streams are bounded per tenant (issue 17, "and for streams"):
// every WatchJob stream holds a server thread for as long as the client
// keeps it open, so one tenant may keep at most --max-watches-per-tenant
// open; one more is RESOURCE_EXHAUSTED naming the limit, another tenant is
// not affected, and a closed stream gives its slot back. Real server on
// loopback, real SQLite file.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/server/e2e_util.h"
#include "tests/server/rpc_error_details.h"

namespace agt::e2e {
namespace {

constexpr char kAcme[] = "acme-trainer-token";
constexpr char kBeta[] = "beta-trainer-token";

// One open WatchJob stream that has delivered its first event (so the
// server holds its slot).
struct OpenWatch {
  std::unique_ptr<grpc::ClientContext> context;
  std::unique_ptr<grpc::ClientReader<agt::v1::JobEvent>> reader;
  bool first_event = false;
};

OpenWatch Watch(Client& client, const std::string& job_id, const std::string& token) {
  OpenWatch w;
  w.context = Ctx(token, std::chrono::seconds(60));
  agt::v1::WatchJobRequest request;
  request.set_job_id(job_id);
  w.reader = client.training->WatchJob(w.context.get(), request);
  agt::v1::JobEvent event;
  w.first_event = w.reader->Read(&event);
  return w;
}

TEST(StreamLimitsE2eTest, WatchStreamsAreLimitedPerTenant) {
  TempDir dir;
  WriteFile(dir.File("tokens"),
            absl::StrCat(TokenLine(kAcme, "trainer", "acme"), TokenLine(kBeta, "trainer", "beta")));
  ServerProcess server;
  ASSERT_TRUE(server.Start(ServerArgs(dir.File("s.db"), {"--tokens", dir.File("tokens"),
                                                         "--max-watches-per-tenant", "2"}),
                           dir.File("server.log")))
      << server.Stderr();
  Client client(server.address());
  const agt::v1::Dataset acme_data = UploadMoons(client, 200, 1, kAcme);
  const agt::v1::Dataset beta_data = UploadMoons(client, 200, 2, kBeta);
  agt::v1::Job acme_job, beta_job;
  ASSERT_TRUE(Submit(client, LongRunningSpec(acme_data.id()), &acme_job, kAcme).ok());
  ASSERT_TRUE(Submit(client, LongRunningSpec(beta_data.id()), &beta_job, kBeta).ok());

  OpenWatch first = Watch(client, acme_job.id(), kAcme);
  OpenWatch second = Watch(client, acme_job.id(), kAcme);
  ASSERT_TRUE(first.first_event && second.first_event);
  OpenWatch third = Watch(client, acme_job.id(), kAcme);
  EXPECT_FALSE(third.first_event);
  const grpc::Status refused = third.reader->Finish();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_NE(refused.error_message().find("--max-watches-per-tenant 2"), std::string::npos)
      << refused.error_message();
  // Machine-readable too: reason WATCH_LIMIT, a QuotaFailure for the tenant.
  const RpcErrorDetails details = ReadRpcErrorDetails(refused);
  EXPECT_EQ(details.reason, "WATCH_LIMIT");
  EXPECT_EQ(details.quota_subject, "tenant:acme");

  // Another tenant is not affected.
  OpenWatch beta = Watch(client, beta_job.id(), kBeta);
  EXPECT_TRUE(beta.first_event);

  // Closing a stream gives its slot back (the server notices within a poll).
  first.context->TryCancel();
  first.reader->Finish();
  bool reopened = false;
  for (int attempt = 0; attempt < 50 && !reopened; ++attempt) {
    OpenWatch again = Watch(client, acme_job.id(), kAcme);
    reopened = again.first_event;
    if (reopened) {
      again.context->TryCancel();
      again.reader->Finish();
    } else {
      again.reader->Finish();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  EXPECT_TRUE(reopened);

  for (OpenWatch* w : {&second, &beta}) {
    w->context->TryCancel();
    w->reader->Finish();
  }
  for (const auto& [job, token] : {std::pair{acme_job.id(), kAcme}, std::pair{beta_job.id(), kBeta}}) {
    agt::v1::CancelJobRequest cancel;
    cancel.set_job_id(job);
    agt::v1::CancelJobResponse cancelled;
    EXPECT_TRUE(client.training->CancelJob(Ctx(token).get(), cancel, &cancelled).ok());
  }
  EXPECT_TRUE(HealthServing(client.channel.get()));
}

}  // namespace
}  // namespace agt::e2e
