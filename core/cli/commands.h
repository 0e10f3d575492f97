// The subcommands of the offline tool `agt` (train, certify, golden,
// generate, export-onnx) as
// functions of their arguments and output streams, so that tests can run them
// without a process.
//
// Exit codes: 0 success; 1 a runtime failure (training failed, a golden case
// did not match, a file could not be written); 2 a usage or input error (bad
// option, bad config, unreadable or invalid data). Errors go to `err` as
// "agt <command>: <file>: <field>: <problem>".
#ifndef AGT_CORE_CLI_COMMANDS_H_
#define AGT_CORE_CLI_COMMANDS_H_

#include <ostream>
#include <string>
#include <vector>

namespace agt::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// args excludes the program name: {"train", "config.json", "--quiet"}.
int RunAgt(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

int RunTrain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int RunCertify(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int RunGolden(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int RunGenerate(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
// Needs agt::onnx (AGT_WITH_ONNX); without it exit code 2.
int RunExportOnnx(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace agt::cli

#endif  // AGT_CORE_CLI_COMMANDS_H_
