// A test fixture for agtctl against the real agt-server: a fresh temp dir per
// test, agt-server started on a fresh database on a free loopback port (or a
// given address), agtctl run as a process, and the small file helpers those
// tests share. Needs AGT_SERVER_BINARY and AGTCTL_BINARY (tests/client's
// CMakeLists defines them).
#ifndef AGT_TESTS_CLIENT_AGTCTL_FIXTURE_H_
#define AGT_TESTS_CLIENT_AGTCTL_FIXTURE_H_

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "tests/client/process.h"

#define EXPECT_EXIT_CODE(result, code) \
  EXPECT_EQ((result).exit_code, code) << "stdout:\n" << (result).out << "stderr:\n" << (result).err

namespace agt::client::testing {

// Two noisy interleaved half-moons (the paper's toy problem) as CSV with a
// header "x0,x1,y", deterministic for a seed.
inline std::string MoonsCsv(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> angle(0, M_PI);
  std::normal_distribution<double> noise(0, 0.1);
  std::string csv = "x0,x1,y\n";
  for (int i = 0; i < n; ++i) {
    const int label = i % 2;
    const double t = angle(rng);
    const double x0 = label == 0 ? std::cos(t) : 1 - std::cos(t);
    const double x1 = label == 0 ? std::sin(t) : 0.5 - std::sin(t);
    absl::StrAppend(&csv, x0 + noise(rng), ",", x1 + noise(rng), ",", label, "\n");
  }
  return csv;
}

class AgtctlServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           absl::StrCat("agtctl_", getpid(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_suite()->name(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    server_.Stop(std::chrono::seconds(10));
    std::filesystem::remove_all(dir_);
  }

  // Starts agt-server on a fresh database; extra flags (e.g. --tokens) appended.
  // `listen` defaults to a free loopback port.
  void StartServer(std::vector<std::string> extra = {}, const std::string& listen = "127.0.0.1:0") {
    std::vector<std::string> argv = {AGT_SERVER_BINARY, "--listen", listen, "--db",
                                     (dir_ / "agt.db").string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    target_ = server_.StartAndWaitFor(argv, "listening on ", std::chrono::seconds(30),
                                      (dir_ / "server.err").string());
    ASSERT_FALSE(target_.empty()) << "agt-server did not start; stderr:\n"
                                  << ReadText(dir_ / "server.err");
  }

  // Runs agtctl against the server, with a bearer token when one is given.
  CommandResult Ctl(std::vector<std::string> args, const std::string& token = "") {
    std::vector<std::string> argv = {AGTCTL_BINARY, "--server", target_, "--timeout", "60"};
    if (!token.empty()) {
      argv.push_back("--token");
      argv.push_back(token);
    }
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, {}, std::chrono::seconds(120));
  }

  // Writes `text` to a file in the test's dir; returns its path.
  std::string Write(const std::string& name, const std::string& text) {
    std::ofstream out(dir_ / name, std::ios::binary);
    out << text;
    return (dir_ / name).string();
  }

  static std::string ReadText(const std::filesystem::path& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  // Command output without its trailing newline (an id printed by -q).
  static std::string Line(const std::string& out) {
    return std::string(absl::StripTrailingAsciiWhitespace(out));
  }

  // Uploads `csv` and trains the job file text `job` on it with --wait;
  // returns the model id (empty, with a test failure, when either fails).
  std::string TrainModel(const std::string& name, const std::string& csv, const std::string& job,
                         const std::string& token = "") {
    CommandResult upload =
        Ctl({"dataset", "upload", Write(name + ".csv", csv), "--name", name, "-q"}, token);
    EXPECT_EQ(upload.exit_code, 0) << upload.err;
    CommandResult train =
        Ctl({"train", Write(name + ".json", job), "--dataset", Line(upload.out), "--wait", "-q"},
            token);
    EXPECT_EQ(train.exit_code, 0) << train.out << train.err;
    return Line(train.out);
  }

  std::filesystem::path dir_;
  BackgroundProcess server_;
  std::string target_;
};

}  // namespace agt::client::testing

#endif  // AGT_TESTS_CLIENT_AGTCTL_FIXTURE_H_
