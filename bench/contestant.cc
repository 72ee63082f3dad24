#include "bench/contestant.h"

#include <algorithm>
#include <map>
#include <utility>

namespace walstate {
namespace bench {
namespace {

struct Entry {
  int order;
  ContestantFactory factory;
};

std::map<std::string, Entry>& Registry() {
  static auto* registry = new std::map<std::string, Entry>();
  return *registry;
}

}  // namespace

ContestantRegistrar::ContestantRegistrar(const std::string& name, int order,
                                         ContestantFactory factory) {
  Registry()[name] = Entry{order, std::move(factory)};
}

std::vector<std::string> ContestantNames() {
  std::vector<std::pair<int, std::string>> v;
  for (const auto& [name, entry] : Registry()) v.push_back({entry.order, name});
  std::sort(v.begin(), v.end());
  std::vector<std::string> names;
  for (auto& [order, name] : v) names.push_back(name);
  return names;
}

std::unique_ptr<Contestant> MakeContestant(const std::string& name,
                                           const ContestantOptions& options) {
  auto it = Registry().find(name);
  if (it == Registry().end()) return nullptr;
  return it->second.factory(options);
}

}  // namespace bench
}  // namespace walstate
