// Writes the known history of engine_history.h into a directory: used to
// regenerate the golden files and the examples in docs/walctl.md.
//   bazel run //tests/walctl:make_history -- /tmp/demo
#include <iostream>

#include "tests/walctl/engine_history.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_history DIR\n";
    return 64;
  }
  absl::Status s = walstate::walctl_test::WriteKnownHistory(argv[1], nullptr);
  if (!s.ok()) {
    std::cerr << "make_history: " << s << "\n";
    return 1;
  }
  return 0;
}
