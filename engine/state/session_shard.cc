#include "engine/state/session_shard.h"

#include "absl/hash/hash.h"
#include "engine/state/set_prefetch.h"

namespace walstate {

size_t NodeHash::operator()(const SessionNode* node) const {
  return absl::HashOf(node->id());
}

SessionShard::~SessionShard() {
  for (SessionNode* node : sessions) SessionNode::Free(node);
}

void PrefetchInShard(const SessionShard& shard, size_t hash) {
  PrefetchInSet(shard.sessions, PrefetchProbe{hash});
}

}  // namespace walstate
