#include "client/agtctl/agtctl.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <ostream>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "agt/version.h"
#include "client/agtctl/output.h"
#include "client/lib/exit_codes.h"
#include "client/lib/format.h"
#include "client/lib/inputs.h"
#include "nlohmann/json.hpp"

namespace agt::client {
namespace {

constexpr char kDefaultServer[] = "127.0.0.1:50051";
constexpr double kDefaultTimeoutSeconds = 60;

std::vector<FlagSpec> GlobalFlags() {
  return {
      {"server", true, 0, "HOST:PORT", "server address (env AGT_SERVER; default 127.0.0.1:50051)"},
      {"token", true, 0, "TOKEN", "bearer token (env AGT_TOKEN)"},
      {"token-file", true, 0, "FILE", "read the bearer token from FILE (env AGT_TOKEN_FILE)"},
      {"tls", false, 0, "", "connect with TLS, verifying the server with the system's roots"},
      {"tls-ca", true, 0, "FILE",
       "connect with TLS, verifying the server with this PEM CA "
       "(env AGT_TLS_CA)"},
      {"tls-server-name", true, 0, "NAME", "name to check the server's certificate against"},
      {"timeout", true, 0, "SECONDS", "deadline of each call (default 60; watching has none)"},
      {"request-id", true, 0, "ID",
       "id of a state-changing call (upload, train, unlearn delete, predict --private); a "
       "rerun with the same id gets the first answer and changes nothing (default: a new id "
       "per run)"},
      {"retries", true, 0, "N",
       "retry a state-changing call whose answer was lost (unavailable, deadline) N times "
       "with the same request id (default 2)"},
      {"json", false, 0, "", "print results as JSON (proto3 JSON, snake_case) for scripts"},
      {"quiet", false, 'q', "", "print only ids (and no progress)"},
      {"help", false, 'h', "", "show help"},
  };
}

std::vector<Command> AllCommands() {
  std::vector<Command> all;
  for (auto* group : {&DatasetCommands, &ArtifactCommands, &JobCommands, &ModelCommands, &CertifyCommands,
                      &UnlearnCommands, &PrivacyCommands, &PlotCommands}) {
    std::vector<Command> commands = (*group)();
    for (Command& c : commands) all.push_back(std::move(c));
  }
  return all;
}

std::string CommandName(const Command& command) { return absl::StrJoin(command.path, " "); }

constexpr char kExitCodeHelp[] =
    "Exit codes:\n"
    "  0  success\n"
    "  1  server or runtime error (server unreachable, deadline exceeded, internal error,\n"
    "     failed precondition, privacy budget exhausted)\n"
    "  2  usage error: bad flags or arguments, unreadable or invalid input file, or a\n"
    "     request the server rejected as invalid\n"
    "  3  not found: unknown dataset, job or model id\n"
    "  4  not allowed: missing or wrong token, or a role without the right\n"
    "  5  the job ended FAILED or CANCELLED (train --wait, jobs watch)\n";

std::string TopHelp(const std::vector<Command>& commands) {
  std::string out =
      "agtctl: client of the AGT certification service (certified training against data\n"
      "poisoning, for unlearning and private prediction).\n\n"
      "Usage: agtctl [global flags] COMMAND [SUBCOMMAND] [args] [flags]\n"
      "       agtctl --version\n\nCommands:\n";
  size_t width = 0;
  for (const Command& c : commands) width = std::max(width, CommandName(c).size());
  for (const Command& c : commands) {
    std::string name = CommandName(c);
    absl::StrAppend(&out, "  ", name, std::string(width - name.size() + 2, ' '), c.summary, "\n");
  }
  absl::StrAppend(&out, "\nGlobal flags (anywhere on the line):\n", FormatFlagHelp(GlobalFlags()),
                  "\n", kExitCodeHelp,
                  "\nRun 'agtctl COMMAND --help' for a command's arguments and flags.\n");
  return out;
}

std::string UsageLine(const Command& command) {
  std::string line = absl::StrCat("agtctl ", CommandName(command));
  if (!command.args_usage.empty()) absl::StrAppend(&line, " ", command.args_usage);
  return line;
}

std::string GroupHelp(const std::string& group, const std::vector<const Command*>& members) {
  std::string out = absl::StrCat("Usage: agtctl ", group, " SUBCOMMAND [args] [flags]\n\n");
  for (const Command* c : members) {
    absl::StrAppend(&out, "  ", UsageLine(*c), "\n      ", c->summary, "\n");
  }
  absl::StrAppend(&out, "\nRun 'agtctl ", group,
                  " SUBCOMMAND --help' for details; 'agtctl "
                  "--help' for the global flags and exit codes.\n");
  return out;
}

std::string CommandHelp(const Command& command) {
  std::string out = absl::StrCat("Usage: ", UsageLine(command), "\n\n", command.summary, "\n");
  if (!command.details.empty()) absl::StrAppend(&out, "\n", command.details);
  if (!command.flags.empty()) {
    absl::StrAppend(&out, "\nFlags:\n", FormatFlagHelp(command.flags));
  }
  absl::StrAppend(&out, "\nGlobal flags:\n", FormatFlagHelp(GlobalFlags()), "\n", kExitCodeHelp);
  return out;
}

int UsageError(std::ostream& err, const std::string& message, const std::string& hint) {
  err << "agtctl: " << message << "\n";
  if (!hint.empty()) err << hint << "\n";
  return kExitUsage;
}

// Client options from flags, then the environment, then defaults.
absl::StatusOr<ClientOptions> BuildClientOptions(const ParsedArgs& args, const EnvLookup& env) {
  ClientOptions options;
  auto from = [&](const char* flag, const char* var) -> std::optional<std::string> {
    if (std::optional<std::string> value = args.Get(flag)) return value;
    if (env) {
      std::optional<std::string> value = env(var);
      if (value && !value->empty()) return value;
    }
    return std::nullopt;
  };
  options.target = from("server", "AGT_SERVER").value_or(kDefaultServer);
  if (options.target.empty()) return absl::InvalidArgumentError("--server is empty");
  if (std::optional<std::string> token = from("token", "AGT_TOKEN")) {
    options.token = *token;
  } else if (std::optional<std::string> file = from("token-file", "AGT_TOKEN_FILE")) {
    absl::StatusOr<std::string> text = ReadFile(*file);
    if (!text.ok())
      return absl::InvalidArgumentError(absl::StrCat("token file ", *file, " cannot be read"));
    options.token = std::string(absl::StripAsciiWhitespace(*text));
    if (options.token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("token file ", *file, " is empty"));
    }
  }
  if (std::optional<std::string> ca = from("tls-ca", "AGT_TLS_CA")) {
    options.tls = true;
    options.tls_ca_file = *ca;
  }
  if (args.Has("tls")) options.tls = true;
  if (std::optional<std::string> name = args.Get("tls-server-name")) {
    options.tls_server_name = *name;
  }
  double timeout = kDefaultTimeoutSeconds;
  if (std::optional<std::string> text = args.Get("timeout")) {
    absl::StatusOr<double> value = ParseDouble("--timeout", *text, 0.001, 30 * 86400.0);
    if (!value.ok()) return value.status();
    timeout = *value;
  }
  options.deadline = absl::Seconds(timeout);
  return options;
}

}  // namespace

CommandContext::CommandContext(ParsedArgs args, ClientOptions options, std::ostream& out,
                               std::ostream& err, bool stderr_is_tty)
    : args_(std::move(args)),
      options_(std::move(options)),
      out_(out),
      err_(err),
      stderr_is_tty_(stderr_is_tty) {}

absl::StatusOr<const Client*> CommandContext::client() {
  if (client_ == nullptr) {
    absl::StatusOr<std::unique_ptr<Client>> created = Client::Create(options_);
    if (!created.ok()) return created.status();
    client_ = *std::move(created);
  }
  return client_.get();
}

const std::string& CommandContext::RequestId() {
  if (request_id_.empty()) {
    if (std::optional<std::string> given = args_.Get("request-id")) {
      request_id_ = *given;
    } else {
      std::random_device os_random;  // /dev/urandom on Linux
      std::string id = "agtctl-";
      for (int i = 0; i < 3; ++i) absl::StrAppend(&id, absl::Hex(os_random(), absl::kZeroPad8));
      request_id_ = std::move(id);
    }
  }
  return request_id_;
}

int CommandContext::RetryLimit() const {
  std::optional<std::string> text = args_.Get("retries");
  if (!text) return 2;
  // Checked when the flags were read (RunAgtctl).
  absl::StatusOr<int64_t> retries = ParseInt("--retries", *text, 0, 10);
  return retries.ok() ? static_cast<int>(*retries) : 2;
}

void CommandContext::SleepBeforeRetry(int attempt) const {
  std::this_thread::sleep_for(std::chrono::milliseconds(500) * (1 << std::min(attempt, 4)));
}

int CommandContext::Fail(const absl::Status& status) {
  err_ << "agtctl: " << status.message();
  if (request_id_failed_ && !request_id_.empty()) {
    err_ << " [request id " << request_id_ << ": rerun with --request-id " << request_id_
         << " to get the first answer without repeating the request]";
  }
  const bool tls_failure = absl::StrContains(status.message(), "Ssl handshake") ||
                           absl::StrContains(status.message(), "certificate");
  if (status.code() != absl::StatusCode::kOk && tls_failure) {
    err_ << " (TLS: check --tls-ca and --tls-server-name)";
  } else if (status.code() == absl::StatusCode::kUnavailable) {
    err_ << " (is agt-server running at " << options_.target << "?)";
  } else if (status.code() == absl::StatusCode::kDeadlineExceeded) {
    err_ << " (deadline exceeded; raise --timeout)";
  }
  err_ << "\n" << ErrorDetailLines(status);
  const int exit_code = ExitCodeFor(status);
  PrintJsonError(status, exit_code);
  return exit_code;
}

int CommandContext::FailUsage(const absl::Status& status) {
  err_ << "agtctl: " << status.message() << "\n";
  PrintJsonError(status, kExitUsage);
  return kExitUsage;
}

void CommandContext::PrintJsonError(const absl::Status& status, int exit_code) {
  if (!json()) return;
  // A script reading --json output gets the failure in the same form
  // (ErrorJson, client/agtctl/output.h).
  out_ << ErrorJson(status, exit_code, request_id_failed_ ? request_id_ : std::string());
}

int RunAgtctl(const std::vector<std::string>& args, const EnvLookup& env, std::ostream& out,
              std::ostream& err, bool stderr_is_tty) {
  const std::vector<Command> commands = AllCommands();
  const std::vector<FlagSpec> globals = GlobalFlags();
  const std::string top_hint = "Run 'agtctl --help' for usage.";

  if (args.size() == 1 && args[0] == "--version") {
    out << "agtctl " << AGT_VERSION_STRING << " (commit " << AGT_GIT_COMMIT << ", API agt.v1)\n";
    return kExitOk;
  }
  absl::StatusOr<ParsedArgs> leading = ParseFlags(args, globals, /*stop_at_first_positional=*/true);
  if (!leading.ok()) return UsageError(err, std::string(leading.status().message()), top_hint);
  const size_t leading_count = args.size() - leading->positionals().size();
  std::vector<std::string> rest = leading->positionals();
  if (!rest.empty() && rest[0] == "help") {
    // "agtctl help [COMMAND...]" = "agtctl [COMMAND...] --help".
    rest.erase(rest.begin());
    rest.push_back("--help");
    if (rest.size() == 1) {
      out << TopHelp(commands);
      return kExitOk;
    }
  }
  if (rest.empty()) {
    if (leading->Has("help")) {
      out << TopHelp(commands);
      return kExitOk;
    }
    err << TopHelp(commands);
    return UsageError(err, "no command given", "");
  }

  // Find the command: one word, or a group word and a subcommand word.
  std::vector<const Command*> group;
  for (const Command& c : commands) {
    if (c.path[0] == rest[0]) group.push_back(&c);
  }
  if (group.empty()) {
    return UsageError(err, absl::StrCat("unknown command '", rest[0], "'"), top_hint);
  }
  const Command* command = nullptr;
  size_t consumed = 1;
  if (group.size() == 1 && group[0]->path.size() == 1) {
    command = group[0];
  } else {
    const bool help =
        leading->Has("help") || rest.size() < 2 || rest[1] == "--help" || rest[1] == "-h";
    if (rest.size() >= 2) {
      for (const Command* c : group) {
        if (c->path.size() == 2 && c->path[1] == rest[1]) command = c;
      }
    }
    if (command == nullptr) {
      if (help) {
        (rest.size() >= 2 || leading->Has("help") ? out : err) << GroupHelp(rest[0], group);
        return rest.size() >= 2 || leading->Has("help") ? kExitOk : kExitUsage;
      }
      return UsageError(err, absl::StrCat("unknown subcommand '", rest[0], " ", rest[1], "'"),
                        absl::StrCat("Run 'agtctl ", rest[0], " --help' for its subcommands."));
    }
    consumed = 2;
  }

  const std::string command_hint = absl::StrCat("Usage: ", UsageLine(*command), "\nRun 'agtctl ",
                                                CommandName(*command), " --help' for details.");
  std::vector<FlagSpec> specs = globals;
  specs.insert(specs.end(), command->flags.begin(), command->flags.end());
  // Leading global flags first, then the command's own arguments (a flag
  // repeated after the command wins).
  std::vector<std::string> command_args(args.begin(),
                                        args.begin() + static_cast<long>(leading_count));
  command_args.insert(command_args.end(), rest.begin() + static_cast<long>(consumed), rest.end());
  absl::StatusOr<ParsedArgs> parsed = ParseFlags(command_args, specs);
  if (!parsed.ok()) return UsageError(err, std::string(parsed.status().message()), command_hint);
  if (parsed->Has("help")) {
    out << CommandHelp(*command);
    return kExitOk;
  }
  const int n = static_cast<int>(parsed->positionals().size());
  if (n < command->min_positionals || n > command->max_positionals) {
    std::string message =
        n < command->min_positionals
            ? absl::StrCat("missing arguments for '", CommandName(*command), "'")
            : absl::StrCat("unexpected argument '", parsed->positionals()[command->max_positionals],
                           "' for '", CommandName(*command), "'");
    return UsageError(err, message, command_hint);
  }
  if (parsed->Has("json") && parsed->Has("quiet")) {
    return UsageError(err, "--json and --quiet exclude each other", command_hint);
  }
  if (std::optional<std::string> retries = parsed->Get("retries")) {
    if (absl::StatusOr<int64_t> n = ParseInt("--retries", *retries, 0, 10); !n.ok()) {
      return UsageError(err, std::string(n.status().message()), command_hint);
    }
  }
  if (std::optional<std::string> id = parsed->Get("request-id"); id && id->empty()) {
    return UsageError(err, "--request-id is empty", command_hint);
  }
  absl::StatusOr<ClientOptions> options = BuildClientOptions(*parsed, env);
  if (!options.ok()) return UsageError(err, std::string(options.status().message()), "");
  CommandContext context(*std::move(parsed), *std::move(options), out, err, stderr_is_tty);
  return command->run(context);
}

}  // namespace agt::client
