// walctl: the operator tool for walstate data directories. See walctl.h and
// docs/walctl.md.
#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

#include "tools/walctl/walctl.h"

int main(int argc, char** argv) {
  // Unbuffered-by-line output would make dumps of large logs slow; flush only
  // at exit (std::cout is flushed by its destructor).
  std::ios::sync_with_stdio(false);
  std::vector<std::string> args(argv + 1, argv + argc);
  walstate::walctl::Context ctx(std::cout, std::cerr);
  // A progress bar only when a person is watching.
  ctx.progress = ::isatty(STDERR_FILENO) == 1;
  ctx.stdout_terminal = ::isatty(STDOUT_FILENO) == 1;
  int code = walstate::walctl::Run(ctx, args);
  std::cout.flush();
  return code;
}
