// SecondaryIndex: one UNIQUE or MULTI index of SessionTable, from the values
// of one top-level field to the sessions (nodes) that hold them; and how an
// indexed field's value is read from a session's state, parsed or lazy.
//
// An index entry is one word: a node pointer when one session holds the key
// (nearly always), or, tagged with the low bit, a pointer to a heap vector
// of the holders. The key itself is not stored: it is read from the first
// holder's state, which is why an indexed field may change only after its
// node left the index and must be re-added after (the table's index lock
// held throughout). 8 bytes a slot instead of a key view plus a holder list
// (32): the indexes were most of the table's overhead.
//
// Not thread-safe: SessionTable holds its index lock around every call, or
// is the only user of the table (the build at recovery).
#ifndef WALSTATE_ENGINE_STATE_SECONDARY_INDEX_H_
#define WALSTATE_ENGINE_STATE_SECONDARY_INDEX_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "engine/state/hash_split.h"
#include "engine/state/lazy_state.h"
#include "engine/state/schema.h"
#include "engine/state/session_node.h"
#include "google/protobuf/message.h"

namespace walstate {

// An index key: the string's view, or the number.
struct IndexValue {
  absl::string_view text;
  uint64_t number = 0;
};

// The one hash of an index's values: of the text for a string field, of the
// number otherwise.
size_t HashIndexValue(const IndexValue& value, bool by_string);

// The value `field` has in `state`; false if it is unset (unset values are
// not indexed) or, without `check_presence`, empty.
bool IndexValueOf(const google::protobuf::Message& state,
                  const Schema::Field& field, IndexValue* value,
                  bool check_presence = true);
// The same for a session's state, parsed or lazy. For a lazy state whose
// value the snapshot load found, also its hash (HashIndexValue), and
// *hashed true.
bool IndexValueOfNode(const SessionNode& node, const Schema::Field& field,
                      IndexValue* value, bool check_presence = true,
                      uint64_t* known_hash = nullptr, bool* hashed = nullptr);
// The value from the text form Lookup takes ("42", "true", or the string).
bool IndexValueFromText(const Schema::Field& field, absl::string_view text,
                        IndexValue* value);

class SecondaryIndex {
 public:
  // A key with its hash, computed once for the part and the set lookup.
  struct Key {
    IndexValue value;
    size_t hash;
  };

  explicit SecondaryIndex(const Schema::Field& field);
  SecondaryIndex(SecondaryIndex&&) = default;
  SecondaryIndex& operator=(SecondaryIndex&&) = default;
  ~SecondaryIndex() { Clear(); }

  const Schema::Field& field() const { return *field_; }
  Key KeyOf(const IndexValue& value) const {
    return {value, HashIndexValue(value, by_string_)};
  }

  // The sessions that hold `key`, none if none; `one` is storage for a
  // single holder.
  absl::Span<const SessionNode* const> Find(const Key& key,
                                            const SessionNode** one) const;
  // Adds `node` under its current value of the field (if set).
  void Add(const SessionNode& node);
  // Removes `node` from under its current value of the field (if there).
  void Remove(const SessionNode& node);

  // Empties the index, freeing its holder lists.
  void Clear();
  // Splits the (empty) index into parts for about `keys` keys.
  void Split(size_t keys);
  bool empty() const;

  // Builds the (empty) index from every node `for_each_node` gives.
  void Build(
      absl::FunctionRef<void(absl::FunctionRef<void(const SessionNode*)>)>
          for_each_node);
  // Builds the (empty) index from the snapshot states a lazy load made into
  // `arena`, using the value and hash each noted for hinted field `hint`
  // (< lazy::kHintedFields) when it did.
  void BuildFromLoad(const lazy::Arena& arena, size_t hint);

  // Hash sets in the index, and slots in them (for tests and stats).
  size_t parts() const { return parts_.size(); }
  size_t slots() const;
  // Bytes of its sets and holder lists.
  uint64_t ApproximateMemory() const;

 private:
  using Slot = uintptr_t;
  using HolderList = std::vector<const SessionNode*>;
  // A key given as the session that holds it and its hash: its value is
  // read from the session's state only if a slot's hash bits match.
  struct NodeKey {
    const SessionNode* node;
    size_t hash;
  };
  struct SlotHash {
    using is_transparent = void;
    const Schema::Field* field;
    bool by_string;
    size_t operator()(Slot slot) const;
    size_t operator()(const Key& key) const { return key.hash; }
    size_t operator()(const NodeKey& key) const { return key.hash; }
  };
  struct SlotEq {
    using is_transparent = void;
    const Schema::Field* field;
    bool by_string;
    bool operator()(Slot a, Slot b) const;
    bool operator()(Slot a, const Key& b) const;
    bool operator()(const Key& a, Slot b) const { return (*this)(b, a); }
    bool operator()(Slot a, const NodeKey& b) const;
    bool operator()(const NodeKey& a, Slot b) const { return (*this)(b, a); }
  };
  using Set = absl::flat_hash_set<Slot, SlotHash, SlotEq>;

  static const SessionNode* FirstHolder(Slot slot);
  static absl::Span<const SessionNode* const> HoldersOf(
      Slot slot, const SessionNode** one);
  // The set a key goes to, by the top bits of its hash, as for shards: the
  // set uses the low ones.
  Set& PartOf(size_t hash) { return parts_[RangeOf(hash, parts_.size())]; }
  const Set& PartOf(size_t hash) const {
    return parts_[RangeOf(hash, parts_.size())];
  }
  // Adds `node` as a holder of `key` (its value).
  template <typename K>
  void Insert(const K& key, const SessionNode& node);
  // Gives back what half the sets' capacity would hold, where they hold
  // fewer keys than they were sized for.
  void Shrink();

  const Schema::Field* field_;
  bool by_string_;
  // Split, by the keys' hashes, into parts; one part until it is built at
  // recovery, which splits it (SplitFor) so that its sets land near their
  // maximum load (one set of 10^6 keys would be at 0.48). At least one.
  std::vector<Set> parts_;
};

}  // namespace walstate

#endif  // WALSTATE_ENGINE_STATE_SECONDARY_INDEX_H_
