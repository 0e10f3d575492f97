// agtctl: see `agtctl --help` and client/agtctl/agtctl.h.
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "client/agtctl/agtctl.h"

int main(int argc, char** argv) {
  // gRPC's own log lines would repeat our error messages in a rawer form;
  // GRPC_VERBOSITY set by the user still wins.
  setenv("GRPC_VERBOSITY", "NONE", /*overwrite=*/0);
  std::vector<std::string> args(argv + 1, argv + argc);
  auto env = [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
  int code = agt::client::RunAgtctl(args, env, std::cout, std::cerr, isatty(STDERR_FILENO) == 1);
  std::cout.flush();
  return code;
}
