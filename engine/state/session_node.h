// A session in memory: its node (entry and id in one heap block whose address
// never changes while the session exists), the state word the node holds,
// and the key (id and hash) a session is looked up by. SessionTable
// (session_table.h) owns the nodes; its maps, dirty lists and indexes hold
// pointers to them.
#ifndef WALSTATE_ENGINE_STATE_SESSION_NODE_H_
#define WALSTATE_ENGINE_STATE_SESSION_NODE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "engine/state/field_set.h"
#include "engine/state/lazy_state.h"
#include "google/protobuf/message.h"

namespace walstate {

class SessionTable;

// A session's state: parsed (a message the node owns), or lazy (the bytes
// recovery kept, lazy_state.h) until SessionTable::ParseLocked parses it.
// One word.
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
  // (set_lazy) under their shard's lock only, while another worker keeping
  // the indexes current may read the word of a session that holds the same
  // index key (under the table's index lock): the release and acquire make
  // the kept record the word points at visible with it. Records that change
  // an indexed field are chained under the index lock as well.
  std::atomic<uint64_t> word_{0};
};

class SessionEntry {
 public:
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
  // snapshot LSN (top bit set) while recovery replays the log, and the time
  // of the last update (Unix nanos) once the store is open and updating.
  // One word rather than two keeps a node with a 25-byte id in glibc's
  // 64-byte size class (see SessionNode).
  uint64_t stamp_ = 0;
};

// A session: its entry and its id, in one heap block (the id's bytes follow
// the node's header) whose address never changes while the session exists.
// One block rather than a map node plus a heap string: one cache miss and
// one allocation less per session.
//
// The header is 29 bytes (entry, dirty position, a one-byte id length) and
// the id starts right after it, not at sizeof(SessionNode) (32): with the
// gateway's 25-byte ids a block is 54 bytes, which glibc serves from its
// 64-byte class (a block of up to 56 bytes; 57 or more takes 80). An id of
// kLongId bytes or more has its length in 4 bytes before its bytes.
class SessionNode {
 public:
  SessionNode(const SessionNode&) = delete;
  SessionNode& operator=(const SessionNode&) = delete;

  // A node for `id` with an empty entry; Free frees it.
  static SessionNode* New(absl::string_view id);
  static void Free(SessionNode* node);
  // Bytes of the heap block of a node whose id has `id_size` bytes.
  static size_t BlockSize(size_t id_size);

  absl::string_view id() const {
    const char* tail = reinterpret_cast<const char*>(this) + kIdOffset;
    if (id_len_ != kLongId) return absl::string_view(tail, id_len_);
    uint32_t size;
    std::memcpy(&size, tail, sizeof(size));
    return absl::string_view(tail + sizeof(size), size);
  }
  SessionEntry entry;

 private:
  friend class SessionTable;  // the dirty list's position
  static constexpr size_t kIdOffset = 29;
  static constexpr uint8_t kLongId = 255;
  explicit SessionNode(absl::string_view id);
  ~SessionNode() = default;
  // Position in the shard's dirty list while entry.dirty is not empty.
  uint32_t dirty_pos_ = 0;
  uint8_t id_len_;  // the id's length, or kLongId
};

// A session id with its hash, computed once for both the shard and the map
// lookup. Implicit, so that an id can be passed where a key is taken.
struct SessionKey {
  SessionKey(absl::string_view session);  // NOLINT(runtime/explicit)
  SessionKey(const std::string& session)  // NOLINT(runtime/explicit)
      : SessionKey(absl::string_view(session)) {}
  SessionKey(const char* session)  // NOLINT(runtime/explicit)
      : SessionKey(absl::string_view(session)) {}
  // With the hash computed before (by the thread that routed a record during
  // recovery): it must be SessionKey(session).hash.
  SessionKey(absl::string_view session, size_t known_hash)
      : id(session), hash(known_hash) {}
  absl::string_view id;
  size_t hash;
};

}  // namespace walstate

#endif  // WALSTATE_ENGINE_STATE_SESSION_NODE_H_
