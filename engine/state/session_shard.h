// SessionShard: one shard of SessionTable's session map (node pointers
// looked up by id, in an absl flat set) with its lock and its list of dirty
// sessions; and the prefetching of what a lookup in it will touch.
#ifndef WALSTATE_ENGINE_STATE_SESSION_SHARD_H_
#define WALSTATE_ENGINE_STATE_SESSION_SHARD_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "engine/state/session_node.h"
#include "engine/util/mutex.h"

namespace walstate {

// Only a hash, for prefetching where a session's slot is: absl's prefetch()
// of it hashes it and loads the map's control bytes and slots for it.
struct PrefetchProbe {
  size_t hash;
};

// The sessions of one shard: node pointers, looked up by id.
struct NodeHash {
  using is_transparent = void;
  size_t operator()(const SessionKey& key) const { return key.hash; }
  size_t operator()(const PrefetchProbe& probe) const { return probe.hash; }
  size_t operator()(const SessionNode* node) const;
};
struct NodeEq {
  using is_transparent = void;
  bool operator()(const SessionNode* a, const SessionNode* b) const {
    return a == b;
  }
  bool operator()(const SessionNode* a, const SessionKey& b) const {
    return a->id() == b.id;
  }
  bool operator()(const SessionKey& a, const SessionNode* b) const {
    return a.id == b->id();
  }
};
using SessionSet = absl::flat_hash_set<SessionNode*, NodeHash, NodeEq>;

// Aligned to a cache line: the lock and the map's header share the first
// two, and no shard shares a line with another. A shard owns its nodes.
struct alignas(64) SessionShard {
  SessionShard() = default;
  SessionShard(const SessionShard&) = delete;
  ~SessionShard();

  // Guards the map, the dirty list and what the shard's nodes hold (their
  // entries: state and dirty marks). Taken before the table's index lock,
  // never after it. The engine holds it while it applies a change AND
  // appends its log record, so that log order equals the order in which
  // changes to one session became visible.
  mutable Mutex mu;
  SessionSet sessions ABSL_GUARDED_BY(mu);
  // Sessions with a dirty entry, in the order they became dirty; a session
  // made clean or erased leaves a null (SessionTable::CompactDirtyLocked
  // drops them). A vector rather than a set: marking a session dirty touches
  // only its node and the vector's end, both already in cache.
  std::vector<SessionNode*> dirty ABSL_GUARDED_BY(mu);
  size_t dirty_count ABSL_GUARDED_BY(mu) = 0;  // non-null entries of `dirty`
};

// Starts bringing into cache the control bytes and slots of `shard`'s map
// that looking up the session hashed `hash` will read, so that they load
// together rather than one after the other. Only for a shard no other
// thread changes meanwhile (the analysis is off: the caller has the shard
// to itself, or holds its lock); it changes nothing.
void PrefetchInShard(const SessionShard& shard,
                     size_t hash) ABSL_NO_THREAD_SAFETY_ANALYSIS;

}  // namespace walstate

#endif  // WALSTATE_ENGINE_STATE_SESSION_SHARD_H_
