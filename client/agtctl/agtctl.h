// agtctl: the command-line client of the AGT certification service.
//
// RunAgtctl parses the arguments (global flags, a command, its flags and
// positionals), talks to the server through agt::client::Client, writes
// results to `out` (tables, or JSON with --json, or bare ids with --quiet)
// and progress and errors to `err`, and returns the exit code documented in
// client/lib/exit_codes.h and in `agtctl --help`.
//
// Each command lives in one *_commands.cc file and is described by one
// Command entry (usage, flags, positional count, handler); help at every
// level is generated from those entries.
#ifndef AGT_CLIENT_AGTCTL_AGTCTL_H_
#define AGT_CLIENT_AGTCTL_AGTCTL_H_

#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/lib/client.h"
#include "client/lib/flags.h"

namespace agt::client {

// What a command handler gets: its parsed arguments, the streams, the global
// output switches and a lazily created client.
class CommandContext {
 public:
  CommandContext(ParsedArgs args, ClientOptions options, std::ostream& out, std::ostream& err,
                 bool stderr_is_tty);

  const ParsedArgs& args() const { return args_; }
  const std::vector<std::string>& positionals() const { return args_.positionals(); }
  std::ostream& out() { return out_; }
  std::ostream& err() { return err_; }
  bool json() const { return args_.Has("json"); }
  bool quiet() const { return args_.Has("quiet"); }
  bool stderr_is_tty() const { return stderr_is_tty_; }

  // The client (created on first use); an error when the options are bad.
  absl::StatusOr<const Client*> client();

  // The request id of this command's state-changing call (upload, submit,
  // deletion, private prediction): --request-id, else one made once per run
  // ("agtctl-" and 24 random hex digits). The server answers every call with
  // the same id with its first answer and changes nothing again.
  const std::string& RequestId();
  // Runs `call` (returning absl::StatusOr<T>) and, when its answer was lost
  // (UNAVAILABLE or DEADLINE_EXCEEDED), calls it again, up to --retries
  // times (default 2) after 0.5 s, 1 s, ...; `call` must send RequestId(), so
  // a retry is answered, not repeated. A final failure names the request id
  // for a manual rerun.
  template <typename Call>
  auto CallIdempotent(const Call& call) -> decltype(call());

  // Prints "agtctl: <message>" and the server's details (ErrorDetailLines)
  // to err and returns the exit code for `status`.
  int Fail(const absl::Status& status);
  // The same with exit code kExitUsage whatever the code (local input errors).
  // Both also print the error as JSON (ErrorJson, output.h) on `out` with
  // --json, so that scripts read failures as they read results.
  int FailUsage(const absl::Status& status);

 private:
  ParsedArgs args_;
  ClientOptions options_;
  std::ostream& out_;
  std::ostream& err_;
  bool stderr_is_tty_;
  std::unique_ptr<Client> client_;
  std::string request_id_;
  bool request_id_failed_ = false;  // a lost answer: Fail() names the id

  int RetryLimit() const;
  void PrintJsonError(const absl::Status& status, int exit_code);
  void SleepBeforeRetry(int attempt) const;
};

template <typename Call>
auto CommandContext::CallIdempotent(const Call& call) -> decltype(call()) {
  const int retries = RetryLimit();
  for (int attempt = 0;; ++attempt) {
    auto result = call();
    if (result.ok()) return result;
    const absl::StatusCode code = result.status().code();
    const bool lost = code == absl::StatusCode::kUnavailable ||
                      code == absl::StatusCode::kDeadlineExceeded;
    if (!lost || attempt >= retries) {
      request_id_failed_ = lost;
      return result;
    }
    SleepBeforeRetry(attempt);
  }
}

// Listings fetch every page: this many records per call, at most this many
// calls (a bound against a server that never ends a listing).
inline constexpr int kListPageSize = 500;
inline constexpr int kMaxListPages = 1000;

// Every page of a listing as one response: `call(request)` fetches a page
// (absl::StatusOr<Response>); the pages' records are appended in order.
template <typename Response, typename Request, typename Call>
absl::StatusOr<Response> ListAllPages(Request request, const Call& call) {
  request.set_page_size(kListPageSize);
  Response all;
  for (int page = 0; page < kMaxListPages; ++page) {
    absl::StatusOr<Response> response = call(request);
    if (!response.ok()) return response.status();
    all.MergeFrom(*response);
    if (response->next_page_token().empty()) break;
    request.set_page_token(response->next_page_token());
  }
  all.clear_next_page_token();
  return all;
}

struct Command {
  std::vector<std::string> path;  // {"dataset", "upload"}
  std::string args_usage;         // "FILE [--name NAME] ..."
  std::string summary;            // one line
  std::string details;            // more lines for `--help`; may be empty
  std::vector<FlagSpec> flags;    // besides the global flags
  int min_positionals = 0;
  int max_positionals = 0;
  std::function<int(CommandContext&)> run;
};

// The commands, by area (each defined in its *_commands.cc).
std::vector<Command> DatasetCommands();
std::vector<Command> ArtifactCommands();
std::vector<Command> JobCommands();
std::vector<Command> ModelCommands();
std::vector<Command> CertifyCommands();
std::vector<Command> UnlearnCommands();
std::vector<Command> PrivacyCommands();
std::vector<Command> PlotCommands();

// Reads an environment variable (nullopt when unset); injectable for tests.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

int RunAgtctl(const std::vector<std::string>& args, const EnvLookup& env, std::ostream& out,
              std::ostream& err, bool stderr_is_tty);

}  // namespace agt::client

#endif  // AGT_CLIENT_AGTCTL_AGTCTL_H_
