// The application-side half shared by the peers and the floor: the
// in-memory map of sessions and the dirty set a tick writes. (walstate keeps
// both inside the store; with the others the application must.)
#ifndef WALSTATE_BENCH_MAP_CONTESTANT_H_
#define WALSTATE_BENCH_MAP_CONTESTANT_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "bench/contestant.h"

namespace walstate {
namespace bench {

class MapContestant : public Contestant {
 public:
  absl::Status UpdateBatched(const std::string& id, GatewaySession* values,
                             uint32_t mask) override {
    absl::MutexLock lock(&mu_);
    MoveFields(values, mask, &map_[id]);
    dirty_[id] |= mask;
    return absl::OkStatus();
  }

  void ForEach(const SessionVisitor& fn) const override {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, state] : map_) fn(id, state);
  }

  size_t SessionCount() const override {
    absl::MutexLock lock(&mu_);
    return map_.size();
  }

 protected:
  using Map = absl::node_hash_map<std::string, GatewaySession>;

  // Applies the identity fields to the in-memory state and returns it
  // (under mu_), for writers that store whole sessions.
  template <typename Fn>
  void WithIdentityApplied(const std::string& id,
                           const GatewaySession& identity, Fn fn) {
    absl::MutexLock lock(&mu_);
    GatewaySession& s = map_[id];
    ApplyFields(identity, kIdentityFields, &s);
    fn(s);
  }

  // Calls fn(id, state, dirty mask) for every dirty session under mu_ and
  // clears the dirty set.
  template <typename Fn>
  void DrainDirty(Fn fn) {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, mask] : dirty_) {
      auto it = map_.find(id);
      if (it != map_.end()) fn(id, it->second, mask);
    }
    dirty_.clear();
  }

  void ClearMemory() {
    absl::MutexLock lock(&mu_);
    Map().swap(map_);
    absl::flat_hash_map<std::string, uint32_t>().swap(dirty_);
  }

  mutable absl::Mutex mu_;
  Map map_;
  absl::flat_hash_map<std::string, uint32_t> dirty_;
};

}  // namespace bench
}  // namespace walstate

#endif  // WALSTATE_BENCH_MAP_CONTESTANT_H_
