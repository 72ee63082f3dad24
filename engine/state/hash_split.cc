#include "engine/state/hash_split.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace walstate {

HashSplit SplitFor(size_t n, size_t min_sets, size_t max_sets) {
  min_sets = std::max<size_t>(min_sets, 1);
  max_sets = std::max(max_sets, min_sets);
  // Room for the fullest set: the mean plus four standard deviations (the
  // count of a set is binomial), so that hardly any set grows while it is
  // filled. Growing costs more than the rehash: it is a large allocation,
  // which makes glibc consolidate the freed small blocks of that thread's
  // arena, and every small allocation after it slower (with two standard
  // deviations, a few shards of 289 grew, and loading 10^6 sessions was
  // markedly slower in the benchmark's later rounds).
  auto need = [](size_t mean) {
    return mean + static_cast<size_t>(
                      4 * std::ceil(std::sqrt(static_cast<double>(mean))));
  };
  auto mean_of = [&](size_t sets) { return (n + sets - 1) / sets; };
  if (n == 0) return HashSplit{min_sets, 0};
  HashSplit best{min_sets, need(mean_of(min_sets))};
  double best_slots = std::numeric_limits<double>::infinity();
  // absl's sets have a capacity of 2^k - 1 slots and grow once they hold
  // 7/8 of it.
  for (int k = 4; k < 63; ++k) {
    const size_t capacity = (size_t{1} << k) - 1;
    const size_t growth = capacity - capacity / 8;
    // The largest mean whose fullest set fits, then the fewest sets.
    size_t lo = 0, hi = growth;
    while (lo < hi) {
      const size_t mid = lo + (hi - lo + 1) / 2;
      if (need(mid) <= growth) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    if (lo == 0) continue;
    const size_t sets =
        std::min(std::max((n + lo - 1) / lo, min_sets), max_sets);
    if (need(mean_of(sets)) > growth) continue;  // not enough sets allowed
    const double slots = static_cast<double>(sets) * capacity;
    if (slots < best_slots) {
      best_slots = slots;
      best = HashSplit{sets, need(mean_of(sets))};
    }
    if (sets == min_sets) break;  // larger sets only add slots
  }
  return best;
}

}  // namespace walstate
