// A fixture for e2e tests with several agt-server processes on one
// PostgreSQL database (a fresh schema of the tests' private server,
// postgres_fixture.h; the cases skip without PostgreSQL): replicas_e2e_test
// and split_jobs_e2e_test start api and worker processes with Start.
#ifndef AGT_TESTS_SERVER_SHARED_DB_SERVERS_H_
#define AGT_TESTS_SERVER_SHARED_DB_SERVERS_H_

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tests/server/e2e_util.h"
#include "tests/server/postgres_fixture.h"

namespace agt::e2e {

class SharedDatabaseServers : public testing::Test {
 protected:
  void SetUp() override {
    server::testing_pg::PostgresServer& pg = server::testing_pg::PostgresServer::Get();
    if (!pg.Available()) GTEST_SKIP() << "PostgreSQL: " << pg.WhyNot();
    db_ = pg.NewStoreUri();
  }

  // Starts one more server (--role `role`, JSON logs) on the shared
  // database; `name` names its log. nullptr (and a test failure) when it
  // does not start.
  ServerProcess* Start(const std::string& role, const std::string& name,
                       std::vector<std::string> extra = {}) {
    auto server = std::make_unique<ServerProcess>();
    std::vector<std::string> args = {"--role", role, "--log-format", "json"};
    args.insert(args.end(), extra.begin(), extra.end());
    const bool started = server->Start(ServerArgs(db_, args), dir_.File(name + ".log"));
    EXPECT_TRUE(started) << server->Stderr();
    if (!started) return nullptr;
    servers_.push_back(std::move(server));
    return servers_.back().get();
  }

  TempDir dir_;
  std::string db_;
  std::vector<std::unique_ptr<ServerProcess>> servers_;
};

}  // namespace agt::e2e

#endif  // AGT_TESTS_SERVER_SHARED_DB_SERVERS_H_
