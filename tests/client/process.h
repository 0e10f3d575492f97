// Child processes for the client tests: run a command to completion with its
// output captured, or keep a server running in the background.
//
// RunCommand forks and execs `argv` with `extra_env` added to (or replacing
// in) the environment, stdin from /dev/null, stdout and stderr captured, and
// kills it after `timeout` (exit_code -1 then). BackgroundProcess starts a
// long-running child with stdout on a pipe, reads lines until one matches,
// and ends it on Stop (SIGTERM, then SIGKILL after a grace period) or in its
// destructor. Only the child's own pid is ever signalled.
#ifndef AGT_TESTS_CLIENT_PROCESS_H_
#define AGT_TESTS_CLIENT_PROCESS_H_

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace agt::client::testing {

struct CommandResult {
  int exit_code = -1;  // -1: killed by the timeout or a signal
  std::string out;
  std::string err;
};

inline std::vector<std::string> MergedEnvironment(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = ::environ; *e != nullptr; ++e) {
    std::string entry(*e);
    std::string name = entry.substr(0, entry.find('='));
    // The tests decide these; an outer shell's values must not leak in.
    if (name == "AGT_SERVER" || name == "AGT_TOKEN" || name == "AGT_TOKEN_FILE" ||
        name == "AGT_TLS_CA" || extra.count(name) > 0) {
      continue;
    }
    env.push_back(entry);
  }
  for (const auto& [name, value] : extra) env.push_back(name + "=" + value);
  return env;
}

// fork + exec with the given stdin/stdout/stderr fds (-1 = /dev/null).
inline pid_t Spawn(const std::vector<std::string>& argv,
                   const std::map<std::string, std::string>& extra_env, int out_fd, int err_fd,
                   int in_fd = -1) {
  std::vector<std::string> env = MergedEnvironment(extra_env);
  std::vector<char*> c_argv, c_env;
  for (const auto& a : argv) c_argv.push_back(const_cast<char*>(a.c_str()));
  c_argv.push_back(nullptr);
  for (const auto& e : env) c_env.push_back(const_cast<char*>(e.c_str()));
  c_env.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDWR);
    dup2(in_fd >= 0 ? in_fd : devnull, STDIN_FILENO);
    dup2(out_fd >= 0 ? out_fd : devnull, STDOUT_FILENO);
    dup2(err_fd >= 0 ? err_fd : devnull, STDERR_FILENO);
    execve(c_argv[0], c_argv.data(), c_env.data());
    _exit(127);
  }
  return pid;
}

// `stdin_text` (at most a pipe's buffer, 64 KiB) is the child's whole stdin.
inline CommandResult RunCommand(const std::vector<std::string>& argv,
                                const std::map<std::string, std::string>& extra_env = {},
                                std::chrono::seconds timeout = std::chrono::seconds(60),
                                const std::string& stdin_text = "") {
  CommandResult result;
  int out_pipe[2], err_pipe[2], in_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0 ||
      pipe2(in_pipe, O_CLOEXEC) != 0)
    return result;
  if (!stdin_text.empty() && write(in_pipe[1], stdin_text.data(), stdin_text.size()) !=
                                 static_cast<ssize_t>(stdin_text.size())) {
    return result;
  }
  close(in_pipe[1]);
  pid_t pid = Spawn(argv, extra_env, out_pipe[1], err_pipe[1], in_pipe[0]);
  close(in_pipe[0]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_fds = 2;
  bool killed = false;
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      kill(pid, SIGKILL);
      killed = true;
      break;
    }
    if (poll(fds, 2, static_cast<int>(std::min<int64_t>(left.count(), 1000))) < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP)) == 0) continue;
      char buffer[65536];
      ssize_t n = read(fds[i].fd, buffer, sizeof(buffer));
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<size_t>(n));
      } else {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) close(f.fd);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!killed && WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

class BackgroundProcess {
 public:
  BackgroundProcess() = default;
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;
  ~BackgroundProcess() { Stop(std::chrono::seconds(10)); }

  // Starts `argv` (stderr to `stderr_path`, or /dev/null when empty) and
  // reads stdout until a line starts with `prefix`; returns the rest of that
  // line, or "" when the child exits or `timeout` passes first.
  std::string StartAndWaitFor(const std::vector<std::string>& argv, const std::string& prefix,
                              std::chrono::seconds timeout, const std::string& stderr_path = "") {
    int out_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0) return "";
    int err_fd = -1;
    if (!stderr_path.empty()) {
      err_fd = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    }
    pid_ = Spawn(argv, {}, out_pipe[1], err_fd);
    close(out_pipe[1]);
    if (err_fd >= 0) close(err_fd);
    out_fd_ = out_pipe[0];
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string buffer;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd fd = {out_fd_, POLLIN, 0};
      if (poll(&fd, 1, 200) <= 0) continue;
      char chunk[4096];
      ssize_t n = read(out_fd_, chunk, sizeof(chunk));
      if (n <= 0) return "";
      buffer.append(chunk, static_cast<size_t>(n));
      size_t start = 0;
      for (size_t nl; (nl = buffer.find('\n', start)) != std::string::npos; start = nl + 1) {
        std::string line = buffer.substr(start, nl - start);
        if (line.rfind(prefix, 0) == 0) {
          StartDraining();
          return line.substr(prefix.size());
        }
      }
      buffer.erase(0, start);
    }
    return "";
  }

  pid_t pid() const { return pid_; }

  // Sends `signal` to the child only.
  void Signal(int signal) {
    if (pid_ > 0) kill(pid_, signal);
  }

  // SIGTERM, wait up to `grace`, then SIGKILL. Returns the exit code, or -1
  // when it was killed by a signal (or there was no child).
  int Stop(std::chrono::seconds grace) {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    return Wait(grace, /*kill_after=*/true);
  }

  // Waits for the child to exit by itself (SIGKILL after `timeout` if
  // kill_after). Returns the exit code or -1.
  int Wait(std::chrono::seconds timeout, bool kill_after) {
    if (pid_ <= 0) return -1;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    for (;;) {
      pid_t done = waitpid(pid_, &status, WNOHANG);
      if (done == pid_) break;
      if (std::chrono::steady_clock::now() >= deadline) {
        if (!kill_after) return -2;
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    pid_ = -1;
    if (drain_.joinable()) drain_.join();  // the pipe is at EOF now
    if (out_fd_ >= 0) close(out_fd_);
    out_fd_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  // Keeps reading (and dropping) the child's stdout so it never blocks on a
  // full pipe.
  void StartDraining() {
    int fd = out_fd_;
    drain_ = std::thread([fd] {
      char chunk[4096];
      while (read(fd, chunk, sizeof(chunk)) > 0) {
      }
    });
  }

  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::thread drain_;
};

}  // namespace agt::client::testing

#endif  // AGT_TESTS_CLIENT_PROCESS_H_
