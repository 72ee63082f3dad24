#include "tools/workload/args.h"

#include <cstdio>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace walstate {
namespace workload {

Flags::Flags(std::string prog, const std::vector<std::string>& args,
             std::initializer_list<FlagSpec> specs)
    : prog_(std::move(prog)) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.size() < 3 || a[0] != '-' || a[1] != '-') {
      Fail(absl::StrCat("unexpected argument '", a, "'"));
    }
    std::string name = a.substr(2), value;
    const size_t eq = name.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    const FlagSpec* spec = nullptr;
    for (const FlagSpec& s : specs) {
      if (name == s.name) spec = &s;
    }
    if (spec == nullptr) Fail(absl::StrCat("unknown flag --", name));
    if (spec->takes_value && !inline_value) {
      if (i + 1 >= args.size()) {
        Fail(absl::StrCat("flag --", name, " needs a value"));
      }
      value = args[++i];
    } else if (!spec->takes_value && inline_value) {
      Fail(absl::StrCat("flag --", name, " takes no value"));
    }
    if (spec->takes_value && value.empty()) {
      Fail(absl::StrCat("flag --", name, " needs a non-empty value"));
    }
    values_[name] = value;
  }
}

std::string Flags::Str(const std::string& name, const std::string& def) const {
  auto it = values_.find(name);
  return it == values_.end() ? def : it->second;
}

uint64_t Flags::Uint(const std::string& name, uint64_t def, uint64_t lo,
                     uint64_t hi) const {
  auto it = values_.find(name);
  if (it == values_.end()) return def;
  uint64_t v = 0;
  if (!absl::SimpleAtoi(it->second, &v) || v < lo || v > hi) {
    Fail(absl::StrCat("--", name, " must be an integer in [", lo, ", ", hi,
                      "], got '", it->second, "'"));
  }
  return v;
}

void Flags::Fail(const std::string& message) const {
  std::fprintf(stderr, "%s: %s (see %s --help)\n", prog_.c_str(),
               message.c_str(), prog_.c_str());
  std::exit(kExitUsage);
}

}  // namespace workload
}  // namespace walstate
