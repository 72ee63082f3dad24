// Command-line flags for the workload tools: --name=value or --name value.
// Every misuse prints one line to stderr and exits 64 (EX_USAGE), so that
// scripts can tell a bad invocation from a failed check.
#ifndef WALSTATE_TOOLS_WORKLOAD_ARGS_H_
#define WALSTATE_TOOLS_WORKLOAD_ARGS_H_

#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

namespace walstate {
namespace workload {

constexpr int kExitUsage = 64;

struct FlagSpec {
  const char* name;  // without the dashes
  bool takes_value;
};

class Flags {
 public:
  // Parses `args`; exits 64 on an unknown flag, a missing value or a
  // positional argument (none are accepted).
  Flags(std::string prog, const std::vector<std::string>& args,
        std::initializer_list<FlagSpec> specs);

  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  std::string Str(const std::string& name, const std::string& def) const;
  // The integer value of --name in [lo, hi], or `def` if absent; exits 64 on
  // a value that is not such an integer.
  uint64_t Uint(const std::string& name, uint64_t def, uint64_t lo,
                uint64_t hi) const;

  // Prints "<prog>: <message> (see <prog> --help)" and exits 64.
  [[noreturn]] void Fail(const std::string& message) const;

 private:
  std::string prog_;
  std::map<std::string, std::string> values_;
};

}  // namespace workload
}  // namespace walstate

#endif  // WALSTATE_TOOLS_WORKLOAD_ARGS_H_
