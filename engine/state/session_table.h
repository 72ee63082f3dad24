// SessionTable: the in-memory state of every session, sharded by session id,
// with the secondary indexes and the per-session dirty marks of BATCHED
// fields. Its parts, one job a file:
//   session_node.h     a session's node (entry and id in one block), its
//                      state word, the key it is looked up by
//   session_shard.h    a shard: the map of nodes, its lock, its dirty list
//   hash_split.h       how sessions and index keys spread over hash sets
//   secondary_index.h  one index: values of a field -> the sessions holding
//   message_fields.h   copying, moving and applying a message's fields
//   lazy_state.h       recovered states kept serialized, and their arena
// session_table.cc is the table and its updates; session_table_lazy.cc its
// lazy recovery (states kept serialized until first used).
//
// Locking. Two kinds of lock, taken in this order (never the other):
//   1. a shard's `mu` (SessionShard) guards that shard's map, its dirty list
//      and everything its nodes hold;
//   2. `index_mu_` guards the indexes, the mappings lazy states point into,
//      and the indexed fields of every state: an indexed field changes only
//      with both its shard's lock and index_mu_ held, and its index is
//      updated in the same critical section, so an index never holds a key
//      that no holder has (an index entry is a node pointer, and its key is
//      read from the node's state).
// A method named ...Locked takes the session's shard and requires its lock;
// the public methods below "These take the locks they need" take their own.
// Recovery fills the table with indexes suspended and builds them with no
// other thread using the table (SuspendIndexes, RebuildIndexes).
//
// Memory: a session is one heap block (SessionNode) that never moves, and a
// shard's map holds pointers to them. That lets the dirty lists and the
// indexes hold node pointers too, and lets an index entry be one word.
#ifndef WALSTATE_ENGINE_STATE_SESSION_TABLE_H_
#define WALSTATE_ENGINE_STATE_SESSION_TABLE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "engine/state/field_set.h"
#include "engine/state/hash_split.h"
#include "engine/state/lazy_state.h"
#include "engine/state/schema.h"
#include "engine/state/secondary_index.h"
#include "engine/state/session_node.h"
#include "engine/state/session_shard.h"
#include "engine/state/update_codec.h"
#include "engine/util/mutex.h"
#include "google/protobuf/message.h"
#include "walstate/file_system.h"

namespace walstate {

class SessionTable {
 public:
  // The parts, by the names the engine knows them.
  using StateRef = walstate::StateRef;
  using Entry = SessionEntry;
  using Node = SessionNode;
  using SessionKey = walstate::SessionKey;
  using Sessions = SessionSet;
  using Shard = SessionShard;
  using Split = HashSplit;

  static constexpr size_t kDefaultShards = 256;
  static constexpr size_t kMaxShards = 4096;

  explicit SessionTable(const Schema& schema,
                        size_t shard_count = kDefaultShards);
  ~SessionTable();
  SessionTable(const SessionTable&) = delete;
  SessionTable& operator=(const SessionTable&) = delete;

  const Schema& schema() const { return schema_; }
  size_t shard_count() const { return shards_.size(); }
  Shard& shard(size_t i) { return *shards_[i]; }
  size_t ShardIndexFor(const SessionKey& key) const {
    return RangeOf(key.hash, shards_.size());
  }
  // hash_split.h's, here for the engine and tests.
  static size_t RangeOf(size_t hash, size_t n) {
    return walstate::RangeOf(hash, n);
  }
  static Split SplitFor(size_t n, size_t min_sets, size_t max_sets) {
    return walstate::SplitFor(n, min_sets, max_sets);
  }
  Shard& ShardFor(const SessionKey& key) {
    return *shards_[ShardIndexFor(key)];
  }
  const Shard& ShardFor(const SessionKey& key) const {
    return *shards_[ShardIndexFor(key)];
  }

  // Sizes the maps for about `sessions` sessions (before a snapshot load),
  // so that they do not rehash while they fill.
  void Reserve(size_t sessions);

  // The shard count for a table about to be filled with `sessions` sessions
  // (recovery knows it from the MANIFEST): kDefaultShards or more, so that
  // the shards' maps are well filled.
  static size_t ShardCountFor(size_t sessions) {
    return SplitFor(sessions, kDefaultShards, kMaxShards).sets;
  }
  // Hash sets in the indexes, and slots in them (for tests and stats).
  size_t IndexParts(size_t index) const;
  size_t IndexSlots(size_t index) const;

  // Recovery: while the table is filled, index maintenance is switched off
  // (SuspendIndexes); the indexes are then built in one pass per index, each
  // on its own thread, and maintained from then on (RebuildIndexes). Both
  // require that no other thread uses the table.
  //
  // Recovery builds them after the log's replay, or, when the replay keeps
  // records (lazy), right after the snapshot, with `from_load`: the values
  // the lazy load found (SnapshotState) are inserted with the hashes it
  // computed, reading no state, and the replay keeps the indexes current as
  // updates do. `from_load` requires that nothing but a lazy LoadSnapshot
  // filled the table; if anything else put a session in, the states are
  // walked as without it.
  void SuspendIndexes() { indexes_suspended_ = true; }
  void RebuildIndexes(bool from_load = false);

  // --- Called with the session's shard lock held. ---

  // AlreadyExists if a UNIQUE indexed field among `fields` would take, in
  // `values`, a value another session holds.
  absl::Status CheckUniqueLocked(
      absl::string_view session, const google::protobuf::Message& values,
      absl::Span<const Schema::Field* const> fields) const;

  // Sets `fields` of `session` (created if missing) to their values in
  // `values` and returns its node, keeping the indexes current. With
  // `move`, the values are moved in (strings and submessages handed over,
  // not copied) and `values` is left holding unspecified values of those
  // fields; without, they are copied. The session's state must not be lazy
  // (ParseLocked it first). `existing`, if not null, is the session's node,
  // already looked up.
  Node* SetFieldsLocked(Shard& shard, const SessionKey& session,
                        google::protobuf::Message* values,
                        absl::Span<const Schema::Field* const> fields,
                        bool move, Node* existing = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  Node* CopyFieldsLocked(Shard& shard, const SessionKey& session,
                         const google::protobuf::Message& values,
                         absl::Span<const Schema::Field* const> fields)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  // Replay: sets the top-level fields numbered `numbers` of `session`
  // (created if missing) to their values in `encoded`, a serialized session
  // message; a listed field absent from it is cleared. Numbers this schema
  // does not know are kept as unknown fields (sets *kept_unknown). DataLoss
  // if `encoded` does not parse or holds a field it does not list.
  // `existing`, if not null, is the session's node, already looked up.
  absl::StatusOr<Node*> SetEncodedFieldsLocked(
      Shard& shard, const SessionKey& session, absl::string_view encoded,
      absl::Span<const uint32_t> numbers, bool* kept_unknown,
      Node* existing = nullptr) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  // Adds `fields` to the session's dirty fields, and the session to the
  // shard's dirty set if it was clean.
  void MarkDirtyLocked(Shard& shard, Node* node, FieldSet fields)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  // The tick: clears the session's dirty fields and its place in the dirty
  // list (the session must be dirty).
  void ClearDirtyLocked(Shard& shard, Node* node)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  // Drops the nulls cleared and erased sessions left in the dirty list.
  void CompactDirtyLocked(Shard& shard) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  // The session's node, or null.
  Node* FindLocked(const Shard& shard, const SessionKey& session) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  // What a session lookup prefetches: the map's control bytes and slots
  // (the one step left; see PrefetchSession).
  enum class PrefetchStep { kSlots };
  // Starts bringing into cache the map slots a lookup of the session hashed
  // `hash` will read, so that they load together rather than one after the
  // other: recovery issues it 12 records ahead of the one it applies, the
  // snapshot load for the slot it will insert into, an update under the
  // shard lock before its lookup (docs/bench/notes.md, "Recovery
  // prefetches"). Only for a shard no other thread changes meanwhile (a
  // recovery worker's own, or one whose lock the caller holds); it changes
  // nothing.
  void PrefetchSession(size_t hash,
                       PrefetchStep /*step*/ = PrefetchStep::kSlots) const {
    PrefetchInShard(*shards_[RangeOf(hash, shards_.size())], hash);
  }

  // Replaces the whole state of `session` (snapshot load); sets *inserted,
  // if given, to whether the session is new.
  Node* PutLocked(Shard& shard, const SessionKey& session,
                  std::unique_ptr<google::protobuf::Message> state,
                  bool* inserted = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  // Removes `session`; false if it did not exist.
  bool EraseLocked(Shard& shard, const SessionKey& session)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  // --- Lazy recovery (lazy_state.h; session_table_lazy.cc). ---

  // Makes the snapshot load and replay keep states serialized (PutLazyLocked,
  // KeepUpdateLocked), allocating for `writers` threads at once. `snapshot`
  // names the snapshot file in errors. Before the table is filled.
  void BeginLazy(size_t writers, absl::string_view snapshot);

  // Snapshot load: a new session whose state is `state_bytes` (a serialized
  // session message, copied), kept unparsed. DataLoss, changing nothing, if
  // the bytes are not well-formed (lazy::WellFormed) or the session exists.
  // `writer`: the calling thread's (< BeginLazy's writers). With `mapped`,
  // the bytes are in a mapping given to HoldMapping and are not copied.
  absl::StatusOr<Node*> PutLazyLocked(Shard& shard, const SessionKey& session,
                                      absl::string_view state_bytes,
                                      size_t writer, bool mapped = false)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  // Keeps `mapping` (of the snapshot file lazy states point into) for as
  // long as the bytes of lazy states are kept.
  void HoldMapping(std::shared_ptr<const MappedFile> mapping);

  // Replay: update record `payload` at `lsn` (decoded: `update`) for
  // `session` (created if missing), kept unparsed if the session's state is
  // lazy or new, applied (SetEncodedFieldsLocked) if it is parsed. DataLoss
  // if the values are not well-formed or hold a field the record does not
  // list; sets *kept_unknown if it lists numbers the schema does not know.
  // `existing`: the session's node, already looked up, or null. Unless
  // indexes are suspended, a record that lists an indexed field moves the
  // session in the indexes (under index_mu_).
  absl::Status KeepUpdateLocked(Shard& shard, const SessionKey& session,
                                Node* existing, uint64_t lsn,
                                absl::string_view payload,
                                const UpdateView& update, size_t writer,
                                bool* kept_unknown)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  // End of a lazy replay: the kept tick entries of `session` that belong to
  // one of `ticks` (ticks that never committed) are voided; a session whose
  // state is nothing but voided entries (the log created it only through
  // them) is removed. Takes the shard's lock. Unless indexes are
  // suspended, a session whose voided entries set an indexed field moves in
  // the indexes. No other thread may use the table.
  void VoidTickEntries(absl::string_view session,
                       const absl::flat_hash_set<uint64_t>& ticks);

  // Parses `node`'s state if it is lazy: the snapshot's bytes, then each
  // kept record in log order. OK if it was parsed already. DataLoss naming
  // the session and the snapshot file or the record's LSN if the bytes do
  // not parse; the state then stays lazy. Logically const: the state's
  // value does not change, only its form. The node's shard lock held.
  absl::Status ParseLocked(const Node* node) const;

  // A lazy state's current bytes, if it has no kept records: the snapshot's
  // (a snapshot can copy them instead of parsing). False otherwise.
  static bool SerializedState(const Node& node, absl::string_view* bytes);

  // Sessions whose state is lazy.
  size_t lazy_count() const {
    return lazy_count_.load(std::memory_order_relaxed);
  }
  // Bytes held for lazy states: whole arena chunks, and mapped files.
  uint64_t lazy_bytes() const;
  uint64_t lazy_mapped_bytes() const;
  // Frees the bytes lazy states were kept in once none is lazy; returns
  // whether it did.
  bool ReleaseLazyBytesIfUnused();
  // Copies the bytes of lazy states that are in mapped files (the snapshot
  // Open read) into the heap, and lets go of the mappings: a compaction
  // deletes those files, and a mapping would keep their disk space in use
  // for as long as a session stays unused. Returns the bytes copied. Takes
  // the locks it needs; one caller at a time.
  uint64_t CopyMappedLazyStates();

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
  // Sessions with dirty fields: a counter kept as sessions become dirty and
  // clean, read without a lock.
  size_t dirty_count() const {
    return dirty_total_.load(std::memory_order_relaxed);
  }
  // Bytes used by states, ids, entries, indexes and table overhead (walks
  // every session under its shard's lock: O(sessions)).
  uint64_t ApproximateMemory() const;

 private:
  // A new session gets an empty state; without `with_state` it has none,
  // and the caller sets one before it lets go of the shard lock.
  Node* FindOrCreateLocked(Shard& shard, const SessionKey& session,
                           bool* inserted = nullptr, bool with_state = true)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  bool TouchesIndex(absl::Span<const Schema::Field* const> fields) const;
  // The index of indexed field `field`.
  SecondaryIndex& IndexOf(const Schema::Field& field)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(index_mu_) {
    return indexes_[field.index_position];
  }
  // Runs `change`, which changes what `node` holds in `fields`, with
  // index_mu_ held, and moves the session in the indexes of those fields:
  // out under its old values before, back under its new ones after (an
  // indexed field changes only under index_mu_).
  template <typename Change>
  void ChangeIndexed(const Node& node,
                     absl::Span<const Schema::Field* const> fields,
                     Change change) ABSL_LOCKS_EXCLUDED(index_mu_);

  const Schema& schema_;
  std::vector<std::unique_ptr<Shard>> shards_;  // fixed at construction
  std::atomic<size_t> size_{0};
  // Second in the lock order (after a shard's mu); see the top of the file.
  mutable Mutex index_mu_;
  // By position in schema_.indexed_fields() (Schema::Field::index_position).
  std::vector<SecondaryIndex> indexes_ ABSL_GUARDED_BY(index_mu_);
  // Set and cleared only while no other thread uses the table.
  bool indexes_suspended_ = false;

  // Lazy recovery: the bytes of lazy states, and how many there are. The
  // arena is made before the table is filled (BeginLazy) and freed, under
  // index_mu_, once no state is lazy; between the two each recovery worker
  // allocates from it under its own shard's lock.
  std::unique_ptr<lazy::Arena> lazy_arena_;
  std::vector<std::shared_ptr<const MappedFile>> lazy_mappings_
      ABSL_GUARDED_BY(index_mu_);
  uint64_t lazy_mapped_bytes_ ABSL_GUARDED_BY(index_mu_) = 0;
  std::string lazy_snapshot_;  // the snapshot file they came from
  // The indexed fields whose places a snapshot state notes (SnapshotState).
  const google::protobuf::FieldDescriptor* lazy_hinted_[lazy::kHintedFields] =
      {};
  mutable std::atomic<size_t> lazy_count_{0};
  // Sum of the shards' dirty_count (changed under their locks).
  std::atomic<size_t> dirty_total_{0};
};

template <typename Change>
inline void SessionTable::ChangeIndexed(
    const Node& node, absl::Span<const Schema::Field* const> fields,
    Change change) {
  MutexLock lock(&index_mu_);
  for (const Schema::Field* f : fields) {
    if (f->index_kind != NO_INDEX) IndexOf(*f).Remove(node);
  }
  change();
  for (const Schema::Field* f : fields) {
    if (f->index_kind != NO_INDEX) IndexOf(*f).Add(node);
  }
}

}  // namespace walstate

#endif  // WALSTATE_ENGINE_STATE_SESSION_TABLE_H_
