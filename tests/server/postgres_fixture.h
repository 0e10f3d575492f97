// A private PostgreSQL server for the store tests, started from Debian's
// postgresql package on first use and stopped when the test binary exits:
// a fresh temporary directory holding a copy of an initdb'd data directory
// (initdb runs once per machine into /tmp/agt_pg_template_<uid>_<version>),
// then postgres listening on a unix socket in that directory only (no TCP
// port, so parallel test binaries never collide). Each test gets a fresh, empty schema of its own
// (NewStoreUri), which is what the store migrates.
//
// PostgreSQL refuses to run as root. When the tests run as root (CI's
// container), the server's commands run as the `postgres` user that the
// Debian package creates (runuser -u postgres), owning the directory; set
// AGT_TEST_PG_USER to use another one. The binaries are looked up in
// /usr/lib/postgresql/<version>/bin (AGT_TEST_PG_BIN overrides); when there
// are none, or the build has no libpq, Available() is false with a reason and
// the PostgreSQL cases GTEST_SKIP with it.
#ifndef AGT_TESTS_SERVER_POSTGRES_FIXTURE_H_
#define AGT_TESTS_SERVER_POSTGRES_FIXTURE_H_

#include <gtest/gtest.h>
#include <pwd.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"

#ifdef AGT_HAVE_POSTGRES
#include <libpq-fe.h>
#endif

namespace agt::server::testing_pg {

class PostgresServer {
 public:
  // The process-wide server (started on the first call).
  static PostgresServer& Get() {
    static PostgresServer* server = new PostgresServer();  // stopped by atexit
    return *server;
  }

  bool Available() const { return why_not_.empty(); }
  // Why the server is not available (empty when it is).
  const std::string& WhyNot() const { return why_not_; }
  // The socket directory, for agt-server processes: host=<dir>.
  const std::string& SocketDir() const { return dir_; }

  // A libpq URI of a fresh, empty schema on the server.
  std::string NewStoreUri() {
    const std::string schema = absl::StrCat("t", ::getpid(), "_", next_schema_++);
    const std::string admin = absl::StrCat("postgresql:///postgres?host=", dir_, "&user=agt");
    RunSql(admin, absl::StrCat("CREATE SCHEMA ", schema));
    return absl::StrCat(admin, "&options=-csearch_path%3D", schema);
  }

  // Runs `sql` on `uri` (a connection of its own) and returns the first
  // column of the first row as text: "" when there is none, "ERROR: ..." when
  // it fails.
  static std::string RunSql(const std::string& uri, const std::string& sql) {
#ifdef AGT_HAVE_POSTGRES
    PGconn* conn = PQconnectdb(uri.c_str());
    PGresult* r = PQexec(conn, sql.c_str());
    std::string out;
    const ExecStatusType status = PQresultStatus(r);
    if (status == PGRES_TUPLES_OK && PQntuples(r) > 0) {
      out = PQgetvalue(r, 0, 0);
    } else if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
      out = absl::StrCat("ERROR: ", PQerrorMessage(conn));
    }
    PQclear(r);
    PQfinish(conn);
    return out;
#else
    return "ERROR: no libpq";
#endif
  }

 private:
  PostgresServer() {
#ifndef AGT_HAVE_POSTGRES
    why_not_ = "this build has no libpq (AGT_WITH_POSTGRES found no libpq-dev)";
    return;
#else
    bin_ = FindBinaries();
    if (bin_.empty()) {
      why_not_ =
          "no PostgreSQL binaries (/usr/lib/postgresql/<version>/bin/initdb; install Debian's "
          "postgresql package or set AGT_TEST_PG_BIN)";
      return;
    }
    char tmpl[] = "/tmp/agt_pg_XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
      why_not_ = "mkdtemp failed";
      return;
    }
    dir_ = tmpl;
    if (::geteuid() == 0) {
      const char* user = std::getenv("AGT_TEST_PG_USER");
      run_as_ = user != nullptr ? user : "postgres";
      const struct passwd* pw = ::getpwnam(run_as_.c_str());
      if (pw == nullptr) {
        why_not_ = absl::StrCat("running as root and there is no user '", run_as_,
                                "' to run PostgreSQL as (set AGT_TEST_PG_USER)");
        return;
      }
      if (::chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
        why_not_ = "chown of the PostgreSQL directory failed";
        return;
      }
    }
    const std::string log = dir_ + "/log";
    // initdb is most of a start's time: it runs once per machine into a
    // template directory that every later test process copies.
    const std::string initialised = EnsureTemplate();
    if (initialised.empty()) return;  // why_not_ says why
    if (std::system(absl::StrCat("cp -a ", initialised, " ", dir_, "/data").c_str()) != 0) {
      why_not_ = absl::StrCat("copying the PostgreSQL template ", initialised, " failed");
      return;
    }
    // fsync off: a test server's durability is not under test.
    if (Shell(absl::StrCat(bin_, "/pg_ctl -D ", dir_, "/data -l ", log, " -w -o \"-k ", dir_,
                           " -c listen_addresses= -p 5432 -F -c max_connections=200\" start "
                           "> /dev/null 2>&1")) != 0) {
      why_not_ = absl::StrCat("pg_ctl start failed: ", ReadFile(log));
      return;
    }
    started_ = true;
    std::atexit([] { Get().Stop(); });
#endif
  }

  // The initialised data directory for this user and these binaries,
  // /tmp/agt_pg_template_<uid>_<version>, made by the first process that
  // needs it (initdb into a private directory, then an atomic rename, so a
  // concurrent process never copies half of one). "" with why_not_ set when
  // initdb fails.
  std::string EnsureTemplate() {
    const std::string version = std::filesystem::path(bin_).parent_path().filename().string();
    const std::string tmpl = absl::StrCat("/tmp/agt_pg_template_", ::geteuid(), "_", version);
    if (std::filesystem::exists(tmpl + "/PG_VERSION")) return tmpl;
    const std::string fresh = absl::StrCat(tmpl, ".", ::getpid());
    std::error_code ignored;
    std::filesystem::remove_all(fresh, ignored);
    std::filesystem::create_directories(fresh);
    if (!run_as_.empty()) {
      const struct passwd* pw = ::getpwnam(run_as_.c_str());
      if (pw == nullptr || ::chown(fresh.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
        why_not_ = "chown of the PostgreSQL template directory failed";
        return "";
      }
    }
    if (Shell(absl::StrCat(bin_, "/initdb -D ", fresh, " -A trust -U agt -E UTF8 --locale=C -N > ",
                           dir_, "/initdb.log 2>&1")) != 0) {
      why_not_ = absl::StrCat("initdb failed: ", ReadFile(dir_ + "/initdb.log"));
      std::filesystem::remove_all(fresh, ignored);
      return "";
    }
    // Another process may have won the race: then its template is used.
    if (::rename(fresh.c_str(), tmpl.c_str()) != 0) std::filesystem::remove_all(fresh, ignored);
    return tmpl;
  }

  void Stop() {
    if (started_) {
      Shell(absl::StrCat(bin_, "/pg_ctl -D ", dir_, "/data -m immediate stop > /dev/null 2>&1"));
      started_ = false;
    }
    if (!dir_.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(dir_, ignored);
    }
  }

  static std::string FindBinaries() {
    if (const char* bin = std::getenv("AGT_TEST_PG_BIN")) return bin;
    for (int version = 20; version >= 12; --version) {
      const std::string bin = absl::StrCat("/usr/lib/postgresql/", version, "/bin");
      if (std::filesystem::exists(bin + "/initdb")) return bin;
    }
    return "";
  }

  // Runs a command as the server's user.
  int Shell(const std::string& command) const {
    const std::string line =
        run_as_.empty() ? command
                        : absl::StrCat("runuser -u ", run_as_, " -- sh -c '", command, "'");
    return std::system(line.c_str());
  }

  static std::string ReadFile(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  std::string bin_;
  std::string dir_;
  std::string run_as_;
  std::string why_not_;
  bool started_ = false;
  std::atomic<int> next_schema_{0};
};

// The engines a store test runs on (INSTANTIATE_TEST_SUITE_P(..., Engines,
// EngineName)).
enum class Engine { kSqlite, kPostgres };

inline std::string EngineName(const ::testing::TestParamInfo<Engine>& info) {
  return info.param == Engine::kSqlite ? "Sqlite" : "Postgres";
}

// The --db target of a fresh store: an SQLite file in `dir`, or a fresh
// schema on the tests' PostgreSQL server; "" with *skip set when PostgreSQL
// is not available.
inline std::string FreshStoreTarget(Engine engine, const std::string& dir, std::string* skip) {
  if (engine == Engine::kSqlite) return dir + "/agt.db";
  PostgresServer& pg = PostgresServer::Get();
  if (!pg.Available()) {
    *skip = absl::StrCat("PostgreSQL: ", pg.WhyNot());
    return "";
  }
  return pg.NewStoreUri();
}

}  // namespace agt::server::testing_pg

#endif  // AGT_TESTS_SERVER_POSTGRES_FIXTURE_H_
