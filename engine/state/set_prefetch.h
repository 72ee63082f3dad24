// PrefetchInSet: absl's raw_hash_set::prefetch(key), called so that GCC keeps
// the call.
#ifndef WALSTATE_ENGINE_STATE_SET_PREFETCH_H_
#define WALSTATE_ENGINE_STATE_SET_PREFETCH_H_

namespace walstate {

// GCC 12's modref analysis finds that prefetch() changes nothing (it only
// issues __builtin_prefetch) and deletes calls to it that it does not
// inline: in a -c opt build `set.prefetch(key)` compiled to nothing. A call
// through a volatile pointer cannot be proved useless.
template <typename Set, typename Key>
void PrefetchInSet(const Set& set, const Key& key) {
  static void (Set::*volatile const prefetch)(const Key&) const =
      &Set::template prefetch<Key>;
  (set.*prefetch)(key);
}

}  // namespace walstate

#endif  // WALSTATE_ENGINE_STATE_SET_PREFETCH_H_
