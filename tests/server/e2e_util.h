// Shared helpers of the end-to-end tests: a temporary directory, the real
// agt-server binary as a child process on 127.0.0.1 port 0, generated stubs
// with bearer tokens, and small datasets and job specs.
//
// Every wait is bounded (deadlines on calls, timeouts on process reads), so
// a broken server fails a test instead of hanging it.
#ifndef AGT_TESTS_SERVER_E2E_UTIL_H_
#define AGT_TESTS_SERVER_E2E_UTIL_H_

#include <fcntl.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agt/v1/datasets.grpc.pb.h"
#include "agt/v1/models.grpc.pb.h"
#include "agt/v1/training.grpc.pb.h"
#include "core/data/dataset.h"
#include "server/auth/tokens.h"

#ifndef AGT_SERVER_BINARY
#error "AGT_SERVER_BINARY must name the agt-server executable"
#endif

namespace agt::e2e {

using Clock = std::chrono::steady_clock;

// A fresh directory under the system temp dir, removed with its contents.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "agt_e2e_XXXXXX").string();
    char* made = mkdtemp(pattern.data());
    if (made == nullptr) {
      ADD_FAILURE() << "mkdtemp failed";
      return;
    }
    path_ = made;
  }
  // AGT_KEEP_TEST_DIRS=1 keeps it (databases and server logs) for debugging.
  ~TempDir() {
    if (std::getenv("AGT_KEEP_TEST_DIRS") != nullptr) {
      std::fprintf(stderr, "kept %s\n", path_.c_str());
      return;
    }
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

inline std::string ReadFileText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The agt-server binary as a child process. stdout is read until the
// "listening on" line; stderr goes to a file (shown when a start fails).
class ServerProcess {
 public:
  ServerProcess() = default;
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  ~ServerProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (stdout_fd_ >= 0) close(stdout_fd_);
  }

  // Runs agt-server with `args` (stdin from /dev/null unless stdin_text is
  // given, stderr to stderr_path). Returns when the process printed its
  // listening line (true) or exited / timed out (false).
  bool Start(const std::vector<std::string>& args, const std::string& stderr_path,
             std::chrono::seconds timeout = std::chrono::seconds(30)) {
    stderr_path_ = stderr_path;
    int out_pipe[2];
    if (pipe(out_pipe) != 0) return false;
    pid_ = fork();
    if (pid_ == 0) {
      if (address_space_limit_ > 0) {
        const rlimit limit{address_space_limit_, address_space_limit_};
        setrlimit(RLIMIT_AS, &limit);
      }
      dup2(out_pipe[1], STDOUT_FILENO);
      const int err = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (err >= 0) dup2(err, STDERR_FILENO);
      const int null_in = open("/dev/null", O_RDONLY);
      if (null_in >= 0) dup2(null_in, STDIN_FILENO);
      close(out_pipe[0]);
      std::vector<char*> argv;
      std::string binary = AGT_SERVER_BINARY;
      argv.push_back(binary.data());
      std::vector<std::string> copy = args;
      for (std::string& a : copy) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(binary.c_str(), argv.data());
      _exit(127);
    }
    close(out_pipe[1]);
    stdout_fd_ = out_pipe[0];
    const auto deadline = Clock::now() + timeout;
    std::string line;
    while (Clock::now() < deadline) {
      const std::optional<std::string> next = ReadLine(deadline);
      if (!next.has_value()) break;
      stdout_lines_.push_back(*next);
      constexpr char kPrefix[] = "listening on ";
      if (next->rfind(kPrefix, 0) == 0) {
        address_ = next->substr(sizeof(kPrefix) - 1);
        return true;
      }
    }
    return false;
  }

  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }
  // For the next Start: the child's RLIMIT_AS (0 = inherit), so that an
  // allocation past it really fails (std::bad_alloc) in the server.
  void set_address_space_limit(rlim_t bytes) { address_space_limit_ = bytes; }
  std::string Stderr() const { return ReadFileText(stderr_path_); }

  // Sends `sig` and waits (bounded) for the exit; returns the exit status,
  // 128 + signal for a signal death, or -1 on timeout.
  int Signal(int sig, std::chrono::seconds timeout = std::chrono::seconds(30)) {
    if (pid_ <= 0) return -1;
    kill(pid_, sig);
    return Wait(timeout);
  }

  // Waits for the process to exit on its own.
  int Wait(std::chrono::seconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      int status = 0;
      const pid_t done = waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        pid_ = -1;
        if (WIFEXITED(status)) return WEXITSTATUS(status);
        if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }

 private:
  std::optional<std::string> ReadLine(Clock::time_point deadline) {
    while (true) {
      const size_t newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        std::string line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return line;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd fd{stdout_fd_, POLLIN, 0};
      if (poll(&fd, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
      char chunk[512];
      const ssize_t n = read(stdout_fd_, chunk, sizeof chunk);
      if (n <= 0) return std::nullopt;
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

  pid_t pid_ = -1;
  rlim_t address_space_limit_ = 0;
  int stdout_fd_ = -1;
  std::string buffer_;
  std::string address_;
  std::string stderr_path_;
  std::vector<std::string> stdout_lines_;
};

// Runs agt-server to completion with `args` and `stdin_text`; returns the
// exit status and fills stdout/stderr.
inline int RunServerCommand(const std::vector<std::string>& args, const std::string& stdin_text,
                            std::string* out, std::string* err, const TempDir& dir) {
  const std::string in_path = dir.File("cmd_stdin");
  const std::string out_path = dir.File("cmd_stdout");
  const std::string err_path = dir.File("cmd_stderr");
  WriteFile(in_path, stdin_text);
  std::string command = AGT_SERVER_BINARY;
  for (const std::string& a : args) command += " '" + a + "'";
  command += " < '" + in_path + "' > '" + out_path + "' 2> '" + err_path + "'";
  // The commands here exit at once (errors, --help, hash-token); `timeout`
  // bounds them anyway.
  const int status = std::system(("timeout 30 " + command).c_str());
  *out = ReadFileText(out_path);
  *err = ReadFileText(err_path);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Stubs on one channel.
struct Client {
  explicit Client(const std::string& address)
      : channel(grpc::CreateChannel(address, grpc::InsecureChannelCredentials())),
        datasets(agt::v1::DatasetService::NewStub(channel)),
        training(agt::v1::TrainingService::NewStub(channel)),
        models(agt::v1::ModelService::NewStub(channel)) {}

  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<agt::v1::DatasetService::Stub> datasets;
  std::unique_ptr<agt::v1::TrainingService::Stub> training;
  std::unique_ptr<agt::v1::ModelService::Stub> models;
};

// A context with a deadline and, when token is non-empty, a bearer token.
inline std::unique_ptr<grpc::ClientContext> Ctx(
    const std::string& token = "", std::chrono::seconds deadline = std::chrono::seconds(30)) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + deadline);
  if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
  return context;
}

// A unary call with raw bytes through the generic stub (health checks,
// undecodable requests).
inline grpc::Status RawUnaryCall(grpc::Channel* channel, const std::string& method,
                                 const std::string& request_bytes, std::string* response_bytes,
                                 const std::string& token = "") {
  grpc::GenericStub stub(channel->shared_from_this());
  std::unique_ptr<grpc::ClientContext> context = Ctx(token, std::chrono::seconds(10));
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(context.get(), method, grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status status) { done.set_value(std::move(status)); });
  grpc::Status status = done.get_future().get();
  if (status.ok() && response_bytes != nullptr) {
    std::vector<grpc::Slice> slices;
    response_bytes->clear();
    if (response.Dump(&slices).ok()) {
      for (const grpc::Slice& s : slices) {
        response_bytes->append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
    }
  }
  return status;
}

// grpc.health.v1.Health/Check for `service` ("" = the whole server): true
// iff SERVING.
inline bool HealthServing(grpc::Channel* channel, const std::string& service = "") {
  std::string request;
  if (!service.empty()) {
    // HealthCheckRequest{service}: field 1, length-delimited (names < 128 bytes).
    request = std::string("\x0a", 1) + static_cast<char>(service.size()) + service;
  }
  std::string response;
  const grpc::Status status =
      RawUnaryCall(channel, "/grpc.health.v1.Health/Check", request, &response);
  // HealthCheckResponse{status: SERVING (1)} is field 1, varint 1.
  return status.ok() && response == std::string("\x08\x01", 2);
}

// Moons data as CSV text with a header, 17 significant digits.
inline std::string MoonsCsv(int rows, uint64_t seed, double noise = 0.1) {
  const agt::Dataset data = agt::MakeMoons(rows, noise, seed);
  std::string csv = "x0,x1,y\n";
  for (agt::Index i = 0; i < data.size(); ++i) {
    absl::StrAppendFormat(&csv, "%.17g,%.17g,%d\n", data.x(i, 0), data.x(i, 1),
                          static_cast<int>(data.y[i]));
  }
  return csv;
}

// Streams metadata then the bytes in chunks of `chunk_bytes`.
inline grpc::Status Upload(Client& client, const agt::v1::DatasetMetadata& metadata,
                           const std::string& bytes, agt::v1::Dataset* out,
                           const std::string& token = "", size_t chunk_bytes = 64 << 10) {
  std::unique_ptr<grpc::ClientContext> context = Ctx(token);
  agt::v1::UploadDatasetResponse response;
  auto writer = client.datasets->UploadDataset(context.get(), &response);
  agt::v1::UploadDatasetRequest message;
  *message.mutable_metadata() = metadata;
  bool open = writer->Write(message);
  for (size_t at = 0; open && at < bytes.size(); at += chunk_bytes) {
    agt::v1::UploadDatasetRequest chunk;
    chunk.set_chunk(bytes.substr(at, chunk_bytes));
    open = writer->Write(chunk);
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (status.ok() && out != nullptr) *out = response.dataset();
  return status;
}

inline agt::v1::DatasetMetadata CsvMetadata(const std::string& name, int num_classes = -1) {
  agt::v1::DatasetMetadata metadata;
  metadata.set_name(name);
  metadata.set_format(agt::v1::DATASET_FORMAT_CSV);
  metadata.set_num_classes(num_classes);
  return metadata;
}

// Uploads moons CSV; fails the test on error.
inline agt::v1::Dataset UploadMoons(Client& client, int rows, uint64_t seed,
                                    const std::string& token = "",
                                    const std::string& name = "moons") {
  agt::v1::Dataset dataset;
  const grpc::Status status =
      Upload(client, CsvMetadata(name, 2), MoonsCsv(rows, seed), &dataset, token);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return dataset;
}

// A small binary MLP job under removal budgets.
inline agt::v1::TrainingJobSpec MoonsSpec(const std::string& dataset_id, int epochs,
                                          int batch_size = 20,
                                          std::vector<int> budgets = {1, 2, 5}) {
  agt::v1::TrainingJobSpec spec;
  spec.set_name("moons-mlp");
  spec.set_dataset_id(dataset_id);
  spec.add_hidden_widths(8);
  spec.set_loss(agt::v1::LOSS_BINARY_CROSS_ENTROPY);
  spec.set_batch_size(batch_size);
  spec.set_epochs(epochs);
  spec.mutable_optimizer()->set_learning_rate(0.1);
  spec.mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_REMOVAL);
  for (int n : budgets) spec.add_budgets()->set_n(n);
  spec.set_seed(7);
  return spec;
}

// A job that trains for a long time (10000 epochs) without its bounds
// diverging: for tests that need a job running while they do something else
// (and then cancel it). Needs a dataset of at least 100 rows.
inline agt::v1::TrainingJobSpec LongRunningSpec(const std::string& dataset_id) {
  agt::v1::TrainingJobSpec spec = MoonsSpec(dataset_id, 10000, 100, {1});
  spec.set_hidden_widths(0, 64);
  spec.mutable_optimizer()->set_learning_rate(0.002);
  return spec;
}

inline grpc::Status Submit(Client& client, const agt::v1::TrainingJobSpec& spec, agt::v1::Job* job,
                           const std::string& token = "") {
  agt::v1::SubmitTrainingJobRequest request;
  *request.mutable_spec() = spec;
  agt::v1::SubmitTrainingJobResponse response;
  grpc::Status status = client.training->SubmitTrainingJob(Ctx(token).get(), request, &response);
  if (status.ok() && job != nullptr) *job = response.job();
  return status;
}

// Watches a job to its end (bounded by `deadline`); returns every event and
// the stream's status.
inline grpc::Status WatchAll(Client& client, const std::string& job_id,
                             std::vector<agt::v1::JobEvent>* events, const std::string& token = "",
                             std::chrono::seconds deadline = std::chrono::seconds(60)) {
  std::unique_ptr<grpc::ClientContext> context = Ctx(token, deadline);
  agt::v1::WatchJobRequest request;
  request.set_job_id(job_id);
  auto reader = client.training->WatchJob(context.get(), request);
  agt::v1::JobEvent event;
  while (reader->Read(&event)) events->push_back(event);
  return reader->Finish();
}

// Polls GetJob until the job is final (bounded); returns the last job.
inline agt::v1::Job WaitForFinal(Client& client, const std::string& job_id,
                                 const std::string& token = "",
                                 std::chrono::seconds timeout = std::chrono::seconds(60)) {
  const auto deadline = Clock::now() + timeout;
  agt::v1::GetJobResponse response;
  while (Clock::now() < deadline) {
    agt::v1::GetJobRequest request;
    request.set_job_id(job_id);
    response.Clear();
    const grpc::Status status = client.training->GetJob(Ctx(token).get(), request, &response);
    if (!status.ok()) {
      ADD_FAILURE() << "GetJob: " << status.error_message();
      break;
    }
    const agt::v1::JobState state = response.job().state();
    if (state == agt::v1::JOB_STATE_SUCCEEDED || state == agt::v1::JOB_STATE_FAILED ||
        state == agt::v1::JOB_STATE_CANCELLED) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return response.job();
}

// Submits `spec` and waits for the job; returns its model id (empty, with a
// test failure, when the job does not succeed).
inline std::string TrainModel(Client& client, const agt::v1::TrainingJobSpec& spec,
                              const std::string& token = "") {
  agt::v1::Job job;
  const grpc::Status status = Submit(client, spec, &job, token);
  EXPECT_TRUE(status.ok()) << status.error_message();
  const agt::v1::Job done = WaitForFinal(client, job.id(), token);
  EXPECT_EQ(done.state(), agt::v1::JOB_STATE_SUCCEEDED) << done.error();
  return done.model_id();
}

// Every double of a Parameters message, in order.
inline std::vector<double> Flatten(const agt::v1::Parameters& params) {
  std::vector<double> values;
  for (const agt::v1::DenseParameters& layer : params.layers()) {
    values.insert(values.end(), layer.weight().values().begin(), layer.weight().values().end());
    values.insert(values.end(), layer.bias().begin(), layer.bias().end());
  }
  return values;
}

// True iff both vectors hold the same doubles bit for bit.
inline bool BitIdentical(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
}

// A tokens-file line for `token`.
inline std::string TokenLine(const std::string& token, const std::string& role,
                             const std::string& tenant, const std::string& label = "") {
  return absl::StrCat(agt::server::HashToHex(agt::server::HashToken(token)), " ", role, " ", tenant,
                      label.empty() ? "" : " ", label, "\n");
}

// Standard arguments: loopback port 0, the db, one worker, two threads.
inline std::vector<std::string> ServerArgs(const std::string& db,
                                           std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"--listen", "127.0.0.1:0", "--db", db, "--threads-per-job", "1"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

}  // namespace agt::e2e

#endif  // AGT_TESTS_SERVER_E2E_UTIL_H_
