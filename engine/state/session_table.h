// SessionTable: the in-memory state of every session, sharded by session id,
// with the secondary indexes and the per-session dirty marks of BATCHED
// fields.
//
// Locking: a shard's mutex guards its map and dirty list; index_mu_ guards
// the indexes. Order: shard, then index. The engine holds a shard's lock while
// it applies a change AND appends its log record, so that log order equals the
// order in which changes to one session became visible.
//
// Memory: a session is one heap block (Node: entry and id) that never moves,
// and a shard's map holds pointers to them. That lets the dirty lists and
// the indexes hold node pointers too, and lets an index entry be one word:
// its key is read from a holder's state, never copied. An indexed field is
// only ever changed with index_mu_ held and its index updated in the same
// critical section, so an index never holds a key that no holder has.
//
// std::mutex rather than absl::Mutex: Debian's Abseil is not built with TSan
// instrumentation, so TSan could not see absl::Mutex's synchronization.
#ifndef WALSTATE_ENGINE_STATE_SESSION_TABLE_H_
#define WALSTATE_ENGINE_STATE_SESSION_TABLE_H_

#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "engine/fs/file_system.h"
#include "engine/state/lazy_state.h"
#include "engine/state/schema.h"
#include "engine/state/update_codec.h"
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

// A 64-bit word below 2^48 (a pointer, possibly tagged in its low bit) in
// six bytes: the maps and indexes hold one per session, and two bytes of
// every slot were always zero. On x86-64 and AArch64 Linux, user-space
// addresses are below 2^48 (the kernel hands out higher ones only to mmap
// calls that ask for them, which malloc does not); a word that does not fit
// stops the process rather than be cut. Elsewhere the word is kept whole.
class Word48 {
 public:
  Word48() = default;
  Word48(uint64_t v) {  // NOLINT(runtime/explicit)
#if defined(__x86_64__) || defined(__aarch64__)
    if (v >> 48) TooWide(v);
    w_[0] = static_cast<uint16_t>(v);
    w_[1] = static_cast<uint16_t>(v >> 16);
    w_[2] = static_cast<uint16_t>(v >> 32);
#else
    v_ = v;
#endif
  }
  operator uint64_t() const {  // NOLINT(runtime/explicit)
#if defined(__x86_64__) || defined(__aarch64__)
    return uint64_t{w_[0]} | uint64_t{w_[1]} << 16 | uint64_t{w_[2]} << 32;
#else
    return v_;
#endif
  }

 private:
  [[noreturn]] static void TooWide(uint64_t v);
#if defined(__x86_64__) || defined(__aarch64__)
  uint16_t w_[3];
#else
  uint64_t v_;
#endif
};

class SessionTable {
 public:
  // A session's state: parsed (a message the node owns), or lazy (the bytes
  // recovery kept, lazy_state.h) until ParseLocked parses it. One word.
  class StateRef {
   public:
    StateRef() = default;
    StateRef(const StateRef&) = delete;
    StateRef& operator=(const StateRef&) = delete;
    ~StateRef() { delete parsed(); }
    bool lazy() const { return lazy::TagOf(word()) != lazy::kParsed; }
    // The parsed state; null while lazy.
    google::protobuf::Message* parsed() const {
      const uint64_t w = word();
      return lazy::TagOf(w) != lazy::kParsed
                 ? nullptr
                 : reinterpret_cast<google::protobuf::Message*>(
                       static_cast<uintptr_t>(w));
    }
    void reset(std::unique_ptr<google::protobuf::Message> state = nullptr) {
      delete parsed();
      word_.store(reinterpret_cast<uintptr_t>(state.release()),
                  std::memory_order_release);
    }
    // A lazy state word (lazy::MakeWord); the parsed state, if any, is freed.
    void set_lazy(uint64_t word) {
      delete parsed();
      word_.store(word, std::memory_order_release);
    }
    uint64_t word() const { return word_.load(std::memory_order_acquire); }
    // What a lookup of the state touches first (for prefetching).
    const void* address() const { return lazy::AddressOf(word()); }

   private:
    // Atomic because recovery's workers chain records onto lazy states
    // (set_lazy) under their shard's lock only, while another worker
    // keeping the indexes current may read the word of a session that holds
    // the same index key (under index_mu_): the release and acquire make
    // the kept record the word points at visible with it. Records that
    // change an indexed field are chained under index_mu_ as well.
    std::atomic<uint64_t> word_{0};
  };

  struct Entry {
    StateRef state;
    FieldSet dirty;  // BATCHED fields changed since the last tick

    // Recovery only: the state came from a snapshot and already holds this
    // session's records up to this LSN (record::SessionState::lsn); 0 if it
    // did not, or once the session was updated (set_last_update).
    uint64_t snapshot_lsn() const {
      return (stamp_ & kSnapshotTag) ? stamp_ & ~kSnapshotTag : 0;
    }
    // `lsn` < 2^63 (the snapshot loader refuses larger ones).
    void set_snapshot_lsn(uint64_t lsn) { stamp_ = lsn | kSnapshotTag; }

    // When the session was last updated; InfinitePast if it was not since
    // recovery, the Unix epoch if never (times before it read as the epoch).
    absl::Time last_update() const {
      return (stamp_ & kSnapshotTag)
                 ? absl::InfinitePast()
                 : absl::FromUnixNanos(static_cast<int64_t>(stamp_));
    }
    void set_last_update(absl::Time t) {
      const int64_t ns = absl::ToUnixNanos(t);
      stamp_ = ns < 0 ? 0 : static_cast<uint64_t>(ns);
    }

   private:
    static constexpr uint64_t kSnapshotTag = uint64_t{1} << 63;
    // One word for two things that are never needed at the same time: the
    // snapshot LSN (top bit set) while recovery replays the log, and the
    // time of the last update (Unix nanos) once the store is open and
    // updating. One word rather than two keeps a node with a 25-byte id in
    // glibc's 64-byte size class (see Node).
    uint64_t stamp_ = 0;
  };

  // A session: its entry and its id, in one heap block (the id's bytes
  // follow the node's header) whose address never changes while the
  // session exists. One block rather than a map node plus a heap string:
  // one cache miss and one allocation less per session.
  //
  // The header is 29 bytes (Entry, dirty position, a one-byte id length)
  // and the id starts right after it, not at sizeof(Node) (32): with the
  // gateway's 25-byte ids a block is 54 bytes, which glibc serves from its
  // 64-byte class (a block of up to 56 bytes; 57 or more takes 80). An id of
  // kLongId bytes or more has its length in 4 bytes before its bytes.
  class Node {
   public:
    Node(const Node&) = delete;
    Node& operator=(const Node&) = delete;
    absl::string_view id() const {
      const char* tail = reinterpret_cast<const char*>(this) + kIdOffset;
      if (id_len_ != kLongId) return absl::string_view(tail, id_len_);
      uint32_t size;
      std::memcpy(&size, tail, sizeof(size));
      return absl::string_view(tail + sizeof(size), size);
    }
    Entry entry;

   private:
    friend class SessionTable;
    static constexpr size_t kIdOffset = 29;
    static constexpr uint8_t kLongId = 255;
    // Bytes of the heap block of a node whose id has `id_size` bytes.
    static size_t BlockSize(size_t id_size) {
      return kIdOffset + (id_size >= kLongId ? sizeof(uint32_t) : 0) + id_size;
    }
    explicit Node(absl::string_view id);
    ~Node() = default;
    // Position in the shard's dirty list while entry.dirty is not empty.
    uint32_t dirty_pos_ = 0;
    uint8_t id_len_;  // the id's length, or kLongId
  };

  // A session id with its hash, computed once for both the shard and the
  // map lookup. Implicit, so that an id can be passed where a key is taken.
  struct SessionKey {
    SessionKey(absl::string_view session);  // NOLINT(runtime/explicit)
    SessionKey(const std::string& session)  // NOLINT(runtime/explicit)
        : SessionKey(absl::string_view(session)) {}
    SessionKey(const char* session)  // NOLINT(runtime/explicit)
        : SessionKey(absl::string_view(session)) {}
    // With the hash computed before (by the thread that routed a record
    // during recovery): it must be SessionKey(session).hash.
    SessionKey(absl::string_view session, size_t known_hash)
        : id(session), hash(known_hash) {}
    absl::string_view id;
    size_t hash;
  };

  // A node pointer in six bytes (Word48), as a shard's map holds it.
  class NodeRef {
   public:
    NodeRef(Node* node)  // NOLINT(runtime/explicit)
        : word_(reinterpret_cast<uintptr_t>(node)) {}
    operator Node*() const {  // NOLINT(runtime/explicit)
      return reinterpret_cast<Node*>(static_cast<uintptr_t>(word_));
    }
    Node* operator->() const { return *this; }

   private:
    Word48 word_;
  };

  // What a lookup of a session will touch, one dependent step at a time
  // (PrefetchSession): the map's control bytes and slots; then the nodes
  // those slots point to; then the state of each such node.
  enum class PrefetchStep { kSlots, kNodes, kStates };
  // A lookup that matches nothing and, for every node whose slot carries the
  // hash's tag, prefetches the node (kNodes) or its state (kStates).
  struct PrefetchProbe {
    size_t hash;
    PrefetchStep step;
  };

  // The sessions of one shard: node pointers, looked up by id.
  struct NodeHash {
    using is_transparent = void;
    size_t operator()(const SessionKey& key) const { return key.hash; }
    size_t operator()(const PrefetchProbe& probe) const { return probe.hash; }
    size_t operator()(const Node* node) const;
  };
  struct NodeEq {
    using is_transparent = void;
    bool operator()(const Node* a, const Node* b) const { return a == b; }
    bool operator()(const Node* a, const SessionKey& b) const {
      return a->id() == b.id;
    }
    bool operator()(const SessionKey& a, const Node* b) const {
      return a.id == b->id();
    }
    bool operator()(const Node* a, const PrefetchProbe& b) const;
    bool operator()(const PrefetchProbe& a, const Node* b) const {
      return (*this)(b, a);
    }
  };
  using Sessions = absl::flat_hash_set<NodeRef, NodeHash, NodeEq>;

  // Aligned to a cache line: the lock and the map's header share the first
  // two, and no shard shares a line with another.
  struct alignas(64) Shard {
    Shard() = default;
    Shard(const Shard&) = delete;
    ~Shard();
    mutable std::mutex mu;
    Sessions sessions;
    // Sessions with Entry::dirty set, in the order they became dirty; a
    // session made clean or erased leaves a null (CompactDirtyLocked drops
    // them). A vector rather than a set: marking a session dirty touches
    // only its node and the vector's end, both already in cache.
    std::vector<Node*> dirty;
    size_t dirty_count = 0;  // non-null entries of `dirty`
  };

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
  // Which of `n` (<= 2^16) ranges the top 16 bits of `hash` fall in. The top
  // bits: a map uses the low ones (its probe position and 7-bit tag), which
  // would otherwise be the same for every session of a shard. Ranges, not a
  // modulo: shard i holds the hashes between two bounds, so the sessions of
  // a snapshot (written shard by shard) reach the shards of a table with
  // another shard count in order, a few shards at a time, as they reach
  // one of the same count. With a modulo they would reach the shards in
  // random order, each insert a cache (and, in a VM, TLB) miss on its
  // shard: loading 10^6 sessions into 289 shards was markedly slower.
  static size_t RangeOf(size_t hash, size_t n) {
    return static_cast<size_t>(((static_cast<uint64_t>(hash) >> 48) * n) >> 16);
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

  // How to spread about `n` elements over hash sets (elements go to a set by
  // their hash) so that the sets, once filled, are near absl's maximum load
  // of 7/8: `sets` sets, from `min_sets` to `max_sets`, each reserved for
  // `per_set` elements (the mean plus four standard deviations). A single
  // set of n elements may sit at any load from 7/16 to 7/8 (0.48 at 10^6);
  // a number of sets chosen for n lands at 0.7 or more (0.82 at 10^6).
  struct Split {
    size_t sets;
    size_t per_set;
  };
  static Split SplitFor(size_t n, size_t min_sets, size_t max_sets);
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
                        bool move, Node* existing = nullptr);
  Node* CopyFieldsLocked(Shard& shard, const SessionKey& session,
                         const google::protobuf::Message& values,
                         absl::Span<const Schema::Field* const> fields);

  // Replay: sets the top-level fields numbered `numbers` of `session`
  // (created if missing) to their values in `encoded`, a serialized session
  // message; a listed field absent from it is cleared. Numbers this schema
  // does not know are kept as unknown fields (sets *kept_unknown). DataLoss
  // if `encoded` does not parse or holds a field it does not list.
  // `existing`, if not null, is the session's node, already looked up.
  absl::StatusOr<Node*> SetEncodedFieldsLocked(
      Shard& shard, const SessionKey& session, absl::string_view encoded,
      absl::Span<const uint32_t> numbers, bool* kept_unknown,
      Node* existing = nullptr);

  // Adds `fields` to the session's dirty fields, and the session to the
  // shard's dirty set if it was clean.
  void MarkDirtyLocked(Shard& shard, Node* node, FieldSet fields);

  // The tick: clears the session's dirty fields and its place in the dirty
  // list (the session must be dirty).
  void ClearDirtyLocked(Shard& shard, Node* node);
  // Drops the nulls cleared and erased sessions left in the dirty list.
  void CompactDirtyLocked(Shard& shard);

  // The session's node, or null.
  Node* FindLocked(const Shard& shard, const SessionKey& session) const;

  // Starts bringing into cache what looking up the session hashed `hash`
  // will touch, one step of the chain (see PrefetchStep) per call; a step
  // finds in cache what the step before fetched if it was issued a little
  // earlier. Recovery issues the steps some records ahead of the one it
  // applies: its lookups are random over a table far larger than the
  // caches, each a chain of dependent misses; an update issues kSlots, so
  // that the map's control bytes and slots load together rather than one
  // after the other. Only for a shard no other thread changes meanwhile (a
  // recovery worker's own, or one whose lock the caller holds); it changes
  // nothing.
  void PrefetchSession(size_t hash, PrefetchStep step) const;

  // Replaces the whole state of `session` (snapshot load); sets *inserted,
  // if given, to whether the session is new.
  Node* PutLocked(Shard& shard, const SessionKey& session,
                  std::unique_ptr<google::protobuf::Message> state,
                  bool* inserted = nullptr);

  // Removes `session`; false if it did not exist.
  bool EraseLocked(Shard& shard, const SessionKey& session);

  // --- Lazy recovery (lazy_state.h). ---

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
                                      size_t writer, bool mapped = false);
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
                                bool* kept_unknown);

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
  // value does not change, only its form.
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
  // An index key: the string's view, or the number.
  struct IndexValue {
    absl::string_view text;
    uint64_t number = 0;
  };
  // An index entry is one word: a node pointer when one session holds the
  // key (nearly always), or, tagged with the low bit, a pointer to a heap
  // vector of the holders. The key itself is not stored: it is read from
  // the first holder's state, which is why an indexed field may change only
  // after its node left the index and must be re-added after (index_mu_
  // held throughout). 8 bytes a slot instead of a key view plus a holder
  // list (32): the indexes were most of the table's overhead. A set holds
  // a slot in six bytes (Word48).
  using Slot = uintptr_t;
  using HolderList = std::vector<const Node*>;
  // A key with its hash, computed once for the part and the set lookup.
  struct IndexKey {
    IndexValue value;
    size_t hash;
  };
  // The one hash of an index's values: of the text for a string field, of
  // the number otherwise.
  static size_t HashValue(const IndexValue& value, bool by_string) {
    return by_string ? absl::HashOf(value.text) : absl::HashOf(value.number);
  }
  // A key given as the session that holds it and its hash: its value is
  // read from the session's state only if a slot's hash bits match.
  struct NodeKey {
    const Node* node;
    size_t hash;
  };
  struct SlotHash {
    using is_transparent = void;
    const Schema::Field* field;
    bool by_string;
    size_t operator()(Slot slot) const;
    size_t operator()(const IndexKey& key) const { return key.hash; }
    size_t operator()(const NodeKey& key) const { return key.hash; }
  };
  struct SlotEq {
    using is_transparent = void;
    const Schema::Field* field;
    bool by_string;
    bool operator()(Slot a, Slot b) const;
    bool operator()(Slot a, const IndexKey& b) const;
    bool operator()(const IndexKey& a, Slot b) const { return (*this)(b, a); }
    bool operator()(Slot a, const NodeKey& b) const;
    bool operator()(const NodeKey& a, Slot b) const { return (*this)(b, a); }
  };
  using IndexSet = absl::flat_hash_set<Word48, SlotHash, SlotEq>;
  // An index is split, by the keys' hashes, into parts; one part until it
  // is built at recovery, which splits it (SplitFor) so that its sets land
  // near their maximum load (one set of 10^6 keys would be at 0.48).
  struct Index {
    const Schema::Field* field;
    bool by_string;
    std::vector<IndexSet> parts;  // at least one
    IndexKey Key(const IndexValue& value) const {
      return {value, HashValue(value, by_string)};
    }
    // The top bits, as for shards: the set uses the low ones.
    IndexSet& PartOf(const IndexKey& key) { return PartOf(key.hash); }
    IndexSet& PartOf(size_t hash) { return parts[RangeOf(hash, parts.size())]; }
    const IndexSet& PartOf(const IndexKey& key) const {
      return parts[RangeOf(key.hash, parts.size())];
    }
  };

  // The value `field` has in `state`; false if it is unset (unset values
  // are not indexed) or, without `check_presence`, empty.
  static bool ValueOf(const google::protobuf::Message& state,
                      const Schema::Field& field, IndexValue* value,
                      bool check_presence = true);
  // The same for a session's state, parsed or lazy. For a lazy state whose
  // value the snapshot load found, also its hash (HashValue), and *hashed
  // true.
  static bool ValueOfNode(const Node& node, const Schema::Field& field,
                          IndexValue* value, bool check_presence = true,
                          uint64_t* known_hash = nullptr,
                          bool* hashed = nullptr);
  // Sets the top-level fields numbered `numbers` of `state` to their values
  // in `encoded` (SetEncodedFieldsLocked without the indexes); false if
  // `encoded` does not parse. Sets *kept_unknown as that does.
  bool ApplyEncoded(google::protobuf::Message* state, absl::string_view encoded,
                    absl::Span<const uint32_t> numbers,
                    bool* kept_unknown) const;
  // Value from the text form Lookup takes ("42", "true", or the string).
  static bool ValueFromText(const Schema::Field& field, absl::string_view text,
                            IndexValue* value);
  static const Node* FirstHolder(Slot slot);
  // The holders of `slot`; `one` is storage for a single holder.
  static absl::Span<const Node* const> HoldersOf(const Slot& slot,
                                                 const Node** one);
  Index NewIndex(const Schema::Field& field) const;
  // Empties `index`, freeing its holder lists.
  static void ClearIndex(Index& index);
  // Gives back what half an index's sets' capacity would hold, where they
  // hold fewer keys than they were sized for.
  static void ShrinkIndex(Index& index);
  // Splits the (empty) `index` into parts for about `keys` keys.
  static void SplitIndex(Index& index, size_t keys);
  // RebuildIndexes' build of the (empty) index at `slot` from the snapshot
  // states the lazy load made.
  void BuildFromLoad(Index& index, const Schema::Field& field, size_t slot);

  // A new session gets an empty state; without `with_state` it has none,
  // and the caller sets one before it lets go of the shard lock.
  Node* FindOrCreateLocked(Shard& shard, const SessionKey& session,
                           bool* inserted = nullptr, bool with_state = true);
  bool TouchesIndex(absl::Span<const Schema::Field* const> fields) const;
  // Runs `change`, which changes what `node` holds in `fields`, with
  // index_mu_ held, and moves the session in the indexes of those fields:
  // out under its old values before, back under its new ones after (an
  // indexed field changes only under index_mu_).
  template <typename Change>
  void ChangeIndexedLocked(const Node& node,
                           absl::Span<const Schema::Field* const> fields,
                           Change change);
  // index_mu_ held.
  void IndexRemoveLocked(const Node& node, const Schema::Field& field);
  void IndexAddLocked(const Node& node, const Schema::Field& field);
  // Adds `node` as a holder of `key` (its value) to `index`.
  static void InsertLocked(Index& index, const IndexKey& key, const Node& node);
  static void InsertLocked(Index& index, const NodeKey& key);
  template <typename Key>
  static void InsertKeyLocked(Index& index, const Key& key, const Node& node);
  static Node* NewNode(absl::string_view id);
  static void FreeNode(Node* node);

  const Schema& schema_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<size_t> size_{0};
  mutable std::mutex index_mu_;
  std::vector<Index> indexes_;   // by position in schema_.indexed_fields()
  std::vector<int> index_slot_;  // field index -> slot in indexes_, or -1
  bool indexes_suspended_ = false;

  // Lazy recovery: the bytes of lazy states, and how many there are.
  std::unique_ptr<lazy::Arena> lazy_arena_;
  std::vector<std::shared_ptr<const MappedFile>> lazy_mappings_;  // index_mu_
  uint64_t lazy_mapped_bytes_ = 0;                                // index_mu_
  std::string lazy_snapshot_;  // the snapshot file they came from
  // The indexed fields whose places a snapshot state notes (SnapshotState).
  const google::protobuf::FieldDescriptor* lazy_hinted_[lazy::kHintedFields] =
      {};
  mutable std::atomic<size_t> lazy_count_{0};
  // Sum of the shards' dirty_count (changed under their locks).
  std::atomic<size_t> dirty_total_{0};
};

}  // namespace walstate

#endif  // WALSTATE_ENGINE_STATE_SESSION_TABLE_H_
