#include "engine/state/session_shard.h"

#include "absl/hash/hash.h"
#include "engine/state/set_prefetch.h"

namespace walstate {

size_t NodeHash::operator()(const SessionNode* node) const {
  return absl::HashOf(node->id());
}

bool NodeEq::operator()(const SessionNode* a, const PrefetchProbe& b) const {
  if (b.step == PrefetchStep::kNodes) {
    __builtin_prefetch(a);
  } else if (lazy::TagOf(a->entry.state.word()) != lazy::kSnapshot) {
    // A parsed state, or a kept record's header (replay reads its
    // index_source); replay never reads a lazy state's snapshot bytes.
    __builtin_prefetch(a->entry.state.address());
  }
  return false;
}

SessionShard::~SessionShard() {
  for (SessionNode* node : sessions) SessionNode::Free(node);
}

void PrefetchInShard(const SessionShard& shard, size_t hash,
                     PrefetchStep step) {
  const SessionSet& sessions = shard.sessions;
  if (step == PrefetchStep::kSlots) {
    PrefetchInSet(sessions, PrefetchProbe{hash, step});
  } else {
    // Matches nothing: the probe visits, and prefetches, every candidate.
    // The empty asm uses the result, so that no compiler can drop the
    // lookup as useless (GCC did drop absl's prefetch(); see PrefetchInSet).
    const bool found =
        sessions.find(PrefetchProbe{hash, step}) != sessions.end();
    asm volatile("" : : "r"(found));
  }
}

}  // namespace walstate
