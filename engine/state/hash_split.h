// How SessionTable spreads elements over hash sets by their hashes: the
// shards of the session map and the parts of each secondary index.
#ifndef WALSTATE_ENGINE_STATE_HASH_SPLIT_H_
#define WALSTATE_ENGINE_STATE_HASH_SPLIT_H_

#include <cstddef>
#include <cstdint>

namespace walstate {

// Which of `n` (<= 2^16) ranges the top 16 bits of `hash` fall in. The top
// bits: a set uses the low ones (its probe position and 7-bit tag), which
// would otherwise be the same for every element of a set. Ranges, not a
// modulo: shard i holds the hashes between two bounds, so the sessions of a
// snapshot (written shard by shard) reach the shards of a table with another
// shard count in order, a few shards at a time, as they reach one of the
// same count. With a modulo they would reach the shards in random order,
// each insert a cache (and, in a VM, TLB) miss on its shard: loading 10^6
// sessions into 289 shards was markedly slower.
inline size_t RangeOf(size_t hash, size_t n) {
  return static_cast<size_t>(((static_cast<uint64_t>(hash) >> 48) * n) >> 16);
}

// How to spread about `n` elements over hash sets (elements go to a set by
// their hash) so that the sets, once filled, are near absl's maximum load of
// 7/8: `sets` sets, from `min_sets` to `max_sets`, each reserved for
// `per_set` elements (the mean plus four standard deviations). A single set
// of n elements may sit at any load from 7/16 to 7/8 (0.48 at 10^6); a
// number of sets chosen for n lands at 0.7 or more (0.82 at 10^6).
struct HashSplit {
  size_t sets;
  size_t per_set;
};
HashSplit SplitFor(size_t n, size_t min_sets, size_t max_sets);

}  // namespace walstate

#endif  // WALSTATE_ENGINE_STATE_HASH_SPLIT_H_
