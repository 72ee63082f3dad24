// SessionTable: the in-memory state of every session, sharded by session id,
// with the secondary indexes and the per-session dirty marks of BATCHED
// fields.
//
// Locking: a shard's mutex guards its map and dirty set; index_mu_ guards the
// indexes. Order: shard, then index. The engine holds a shard's lock while it
// applies a change AND appends its log record, so that log order equals the
// order in which changes to one session became visible.
//
// Memory: sessions live in node maps, so an entry and its id never move.
// That lets the dirty sets hold pointers (marking a session dirty allocates
// nothing) and the indexes hold views: an index key is a view of the indexed
// string inside a holder's state, and holders are node pointers. An indexed
// field is only ever changed with index_mu_ held and its index updated in the
// same critical section, so no view outlives what it points to.
//
// std::mutex rather than absl::Mutex: Debian's Abseil is not built with TSan
// instrumentation, so TSan could not see absl::Mutex's synchronization.
#ifndef WALSTATE_ENGINE_STATE_SESSION_TABLE_H_
#define WALSTATE_ENGINE_STATE_SESSION_TABLE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "engine/state/schema.h"
#include "google/protobuf/message.h"

namespace walstate {

// A set of a message's top-level fields, by index in Schema::fields(). Bit 63
// stands for every field with index >= 63.
class FieldSet {
 public:
  FieldSet() = default;
  explicit FieldSet(uint64_t bits) : bits_(bits) {}
  void Add(int index) { bits_ |= uint64_t{1} << (index < 63 ? index : 63); }
  bool Contains(int index) const {
    return (bits_ >> (index < 63 ? index : 63)) & 1;
  }
  bool empty() const { return bits_ == 0; }
  uint64_t bits() const { return bits_; }
  FieldSet& operator|=(FieldSet o) {
    bits_ |= o.bits_;
    return *this;
  }

 private:
  uint64_t bits_ = 0;
};

class SessionTable {
 public:
  struct Entry {
    std::unique_ptr<google::protobuf::Message> state;
    FieldSet dirty;  // BATCHED fields changed since the last tick
    absl::Time last_update;
    // Recovery only: the state came from a snapshot and already holds this
    // session's records up to this LSN (record::SessionState::lsn).
    uint64_t snapshot_lsn = 0;
  };
  using Sessions = absl::node_hash_map<std::string, Entry>;
  // A session's id and entry; its address is stable while it exists.
  using Node = Sessions::value_type;
  struct Shard {
    mutable std::mutex mu;
    Sessions sessions;
    absl::flat_hash_set<Node*> dirty;  // sessions with Entry::dirty set
  };

  explicit SessionTable(const Schema& schema, size_t shard_count = 256);
  SessionTable(const SessionTable&) = delete;
  SessionTable& operator=(const SessionTable&) = delete;

  const Schema& schema() const { return schema_; }
  size_t shard_count() const { return shards_.size(); }
  Shard& shard(size_t i) { return *shards_[i]; }
  size_t ShardIndexFor(absl::string_view session) const;
  Shard& ShardFor(absl::string_view session) {
    return *shards_[ShardIndexFor(session)];
  }
  const Shard& ShardFor(absl::string_view session) const {
    return *shards_[ShardIndexFor(session)];
  }

  // Sizes the maps for about `sessions` sessions (before a snapshot load),
  // so that they do not rehash while they fill.
  void Reserve(size_t sessions);

  // Recovery: while the table is filled from a snapshot and the log, index
  // maintenance is switched off (SuspendIndexes) and the indexes are built
  // afterwards in one pass per index, each on its own thread
  // (RebuildIndexes). Both require that no other thread uses the table.
  void SuspendIndexes() { indexes_suspended_ = true; }
  void RebuildIndexes();

  // --- Called with the session's shard lock held. ---

  // AlreadyExists if a UNIQUE indexed field among `fields` would take, in
  // `values`, a value another session holds.
  absl::Status CheckUniqueLocked(
      absl::string_view session, const google::protobuf::Message& values,
      absl::Span<const Schema::Field* const> fields) const;

  // Sets `fields` of `session` (created if missing) to their values in
  // `values` and returns its node, keeping the indexes current. With
  // `move`, the values are swapped in (no copy) and `values` is left holding
  // unspecified values of those fields; without, they are copied.
  Node* SetFieldsLocked(Shard& shard, absl::string_view session,
                        google::protobuf::Message* values,
                        absl::Span<const Schema::Field* const> fields,
                        bool move);
  Node* CopyFieldsLocked(Shard& shard, absl::string_view session,
                         const google::protobuf::Message& values,
                         absl::Span<const Schema::Field* const> fields);

  // Replay: sets the top-level fields numbered `numbers` of `session`
  // (created if missing) to their values in `encoded`, a serialized session
  // message; a listed field absent from it is cleared. Numbers this schema
  // does not know are kept as unknown fields (sets *kept_unknown). DataLoss
  // if `encoded` does not parse or holds a field it does not list.
  // `existing`, if not null, is the session's node, already looked up.
  absl::StatusOr<Node*> SetEncodedFieldsLocked(
      Shard& shard, absl::string_view session, absl::string_view encoded,
      absl::Span<const uint32_t> numbers, bool* kept_unknown,
      Node* existing = nullptr);

  // Adds `fields` to the session's dirty fields, and the session to the
  // shard's dirty set if it was clean.
  void MarkDirtyLocked(Shard& shard, Node* node, FieldSet fields);

  // Replaces the whole state of `session` (snapshot load); sets *inserted,
  // if given, to whether the session is new.
  Node* PutLocked(Shard& shard, absl::string_view session,
                  std::unique_ptr<google::protobuf::Message> state,
                  bool* inserted = nullptr);

  // Removes `session`; false if it did not exist.
  bool EraseLocked(Shard& shard, absl::string_view session);

  // --- These take the locks they need. ---

  absl::Status Get(absl::string_view session,
                   google::protobuf::Message* out) const;
  bool Contains(absl::string_view session) const;
  void ForEach(
      const std::function<void(absl::string_view,
                               const google::protobuf::Message&)>& fn) const;
  absl::StatusOr<std::vector<std::string>> Lookup(
      absl::string_view field, absl::string_view value) const;
  size_t size() const { return size_.load(std::memory_order_relaxed); }
  size_t dirty_count() const;
  // Bytes used by states, ids, entries, indexes and table overhead (walks
  // every session).
  uint64_t ApproximateMemory() const;

 private:
  // Sessions holding one key. Nearly always one.
  using Holders = absl::InlinedVector<const Node*, 1>;
  // One index. String-typed fields are keyed by a view of the value inside
  // one holder's state (re-pointed when that holder lets go of it); integer,
  // bool and enum fields by their value as 64 bits.
  struct Index {
    bool by_string = true;
    absl::flat_hash_map<absl::string_view, Holders> strings;
    absl::flat_hash_map<uint64_t, Holders> numbers;
  };
  // An index key: the string's view, or the number. False if the field is
  // unset (unset values are not indexed).
  struct Key {
    absl::string_view text;
    uint64_t number = 0;
  };
  bool KeyOf(const google::protobuf::Message& state, const Schema::Field& field,
             Key* key) const;
  // Key from the text form Lookup takes ("42", "true", or the string).
  bool KeyFromText(const Schema::Field& field, absl::string_view text,
                   Key* key) const;
  const Holders* FindHolders(const Index& index, const Key& key) const;

  Node* FindOrCreateLocked(Shard& shard, absl::string_view session);
  bool TouchesIndex(absl::Span<const Schema::Field* const> fields) const;
  // index_mu_ held.
  void IndexRemoveLocked(const Node& node, const Schema::Field& field);
  void IndexAddLocked(const Node& node, const Schema::Field& field);

  const Schema& schema_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<size_t> size_{0};
  mutable std::mutex index_mu_;
  std::vector<Index> indexes_;   // by position in schema_.indexed_fields()
  std::vector<int> index_slot_;  // field index -> slot in indexes_, or -1
  bool indexes_suspended_ = false;
};

}  // namespace walstate

#endif  // WALSTATE_ENGINE_STATE_SESSION_TABLE_H_
