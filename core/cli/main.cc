// The offline tool `agt`: see `agt --help` and core/cli/commands.h.
#include <iostream>
#include <string>
#include <vector>

#include "core/cli/commands.h"
#include "core/common/allocator.h"

int main(int argc, char** argv) {
  // Certified steps allocate and free large buffers every step
  // (core/common/allocator.h).
  agt::KeepFreedMemoryForReuse();
  std::vector<std::string> args(argv + 1, argv + argc);
  return agt::cli::RunAgt(args, std::cout, std::cerr);
}
