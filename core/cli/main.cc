// The offline tool `agt`: see `agt --help` and core/cli/commands.h.
#include <iostream>
#include <string>
#include <vector>

#include "core/cli/commands.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return agt::cli::RunAgt(args, std::cout, std::cerr);
}
