// Lazy state: a session recovered by Open, kept serialized until its first
// use.
//
// Parsing every state at Open (a protobuf parse, a dozen heap blocks and
// their page faults per session) and replaying every later record into it
// were most of a restart's time, though a restarted service touches its
// sessions one by one as requests come. A lazy state is instead the bytes
// recovery read and verified, copied into an arena: the state the snapshot
// held, and the update records the log holds for the session after it,
// newest first, each pointing at the one before. The first use of the
// session (a read, an update, a snapshot of a session with records) parses
// the snapshot's bytes and applies the records in log order, which is what
// replay would have done at Open.
//
// A node's state word says which it holds (StateRef in session_table.h):
// a Message* (tag 0, or null), a snapshot state (tag 1) or the newest kept
// record (tag 2). The tag takes the word's top two bits: user-space
// addresses on 64-bit Linux are below 2^57 (2^47 or 2^48 unless a program
// asks mmap for more), so those bits of a pointer are always zero.
#ifndef WALSTATE_ENGINE_STATE_LAZY_STATE_H_
#define WALSTATE_ENGINE_STATE_LAZY_STATE_H_

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"

namespace walstate {
namespace lazy {

enum Tag : uint64_t { kParsed = 0, kSnapshot = 1, kUpdate = 2 };
constexpr int kTagShift = 62;
constexpr uint64_t kAddressMask = (uint64_t{1} << kTagShift) - 1;

inline Tag TagOf(uint64_t word) { return static_cast<Tag>(word >> kTagShift); }
inline const char* AddressOf(uint64_t word) {
  return reinterpret_cast<const char*>(
      static_cast<uintptr_t>(word & kAddressMask));
}
inline uint64_t MakeWord(Tag tag, const void* p) {
  return uint64_t{tag} << kTagShift | reinterpret_cast<uintptr_t>(p);
}

// A snapshot state: where its bytes (a serialized session message) are and
// their size, its session's node, and the values of the first
// kHintedFields indexed fields. The bytes are in the arena, or in the
// snapshot file's mapping (FileSystem::NewMappedFile), which the table
// holds for as long as the arena.
//
// The values are found while Open checks the bytes (which it reads anyway,
// and which are in cache then), with the hash the index keeps them by. The
// states have chunks of their own (Arena::NewSnapshotState), so the index
// build right after the load reads them in sequence and inserts each
// session without reading its node or its bytes: one cache miss per
// session and index, the index's slot, instead of three.
constexpr int kHintedFields = 2;
constexpr uint16_t kAbsent = 0xffff;  // the field does not occur
constexpr uint16_t kNoHint = 0xfffe;  // not known: walk the bytes
constexpr uint16_t kKnown = 0;
struct KnownValue {
  uint64_t hash;   // SessionTable's hash of the value
  uint64_t value;  // the number; for a string, offset in the bytes << 32 | size
};
struct SnapshotState {
  const char* data;
  const void* node;  // the session's (SessionTable::Node)
  uint32_t size;
  // Per hinted field: kKnown (values[i] holds it), kAbsent (nothing to
  // index: unset, or an empty string) or kNoHint (find it in the bytes).
  uint16_t known[kHintedFields];
  KnownValue values[kHintedFields];
  absl::string_view bytes() const { return absl::string_view(data, size); }
};

// An update record kept for a session: what it applies on (a state word of
// tag kSnapshot or kUpdate, or 0 for a session the log created), its LSN
// (for errors), then its payload (record::Update: the session, the listed
// field numbers and their values).
//
// Reading an indexed field of a lazy state (building the indexes at Open)
// must find the newest record that lists it. `listed` says which fields a
// record lists (SessionTable's FieldSet bits), and `index_source` jumps to
// the newest word in the chain that lists an indexed field, or to the
// chain's end: most records (ticks of BATCHED fields) list none, and the
// lookup then skips them without reading them.
//
// A tick entry is kept as it is read, before its tick's commit (replay reads
// the log once); if the tick never commits, replay's end marks it `voided`,
// and it counts for nothing.
struct KeptUpdate {
  uint64_t previous;
  uint64_t lsn;
  uint64_t listed;
  uint64_t index_source;
  uint32_t size;
  uint32_t voided;  // 1: of a tick that never committed
  absl::string_view payload() const {
    return absl::string_view(reinterpret_cast<const char*>(this + 1), size);
  }
};

// Bump allocation for the bytes of lazy states, by several threads at once:
// each writer (a recovery worker) has its own cursor into its own chunk, so
// allocating takes a lock only once per chunk. Nothing is freed before the
// arena is.
class Arena {
 public:
  explicit Arena(size_t writers);
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  ~Arena();

  // `n` bytes aligned to 8 (never null, also for 0), for writer `writer`
  // (< writers). A writer is used by one thread at a time.
  char* Allocate(size_t n, size_t writer);

  // A snapshot state for writer `writer` (its fields unset). Snapshot
  // states have chunks of their own, where they follow one another in the
  // order they were made: the index build right after the snapshot's load
  // walks them (ForEachSnapshotState), reading nothing else.
  SnapshotState* NewSnapshotState(size_t writer);

  // Calls `fn(const SnapshotState&)` for every snapshot state made, writer
  // by writer, each writer's in the order made. Not while any is made.
  template <typename Fn>
  void ForEachSnapshotState(Fn fn) const {
    for (const Cursor& c : cursors_) {
      for (size_t b = 0; b < c.state_blocks.size(); ++b) {
        const size_t n =
            b + 1 < c.state_blocks.size() ? kStatesPerBlock : c.states_in_last;
        const SnapshotState* block = c.state_blocks[b];
        for (size_t i = 0; i < n; ++i) fn(block[i]);
      }
    }
  }
  // How many snapshot states were made.
  size_t snapshot_states() const;

  // Bytes of the chunks held.
  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }

 private:
  static constexpr size_t kChunkBytes = size_t{1} << 20;
  static constexpr size_t kStatesPerBlock = kChunkBytes / sizeof(SnapshotState);
  struct alignas(64) Cursor {
    char* pos = nullptr;
    char* end = nullptr;
    std::vector<SnapshotState*> state_blocks;
    size_t states_in_last = kStatesPerBlock;  // used in state_blocks.back()
  };
  char* NewChunk(size_t n);

  std::vector<Cursor> cursors_;
  std::mutex mu_;
  std::vector<std::pair<char*, size_t>> chunks_;  // mu_
  std::atomic<uint64_t> bytes_{0};
};

// True if `message` is a sequence of well-formed top-level fields (tags with
// a field number, lengths within the bytes). The cheap check Open makes of a
// state it does not parse: bytes cut or shifted fail it.
bool WellFormed(absl::string_view message);

// WellFormed, also setting hints[i] for fields[i] (at most kHintedFields;
// the other hints are set to kNoHint): where the last occurrence of the
// field with its wire type starts, or kAbsent.
bool WellFormed(absl::string_view message,
                const google::protobuf::FieldDescriptor* const* fields,
                size_t field_count, uint16_t* hints);

// The value of the singular field `field` as serialized in `message`: the
// last occurrence wins, as in a parse. For a string field `*text` points
// into `message`; other indexable kinds give their value as the number an
// index keeps (SessionTable::IndexValue). False if the field does not occur
// or its bytes do not decode.
bool FindValue(absl::string_view message,
               const google::protobuf::FieldDescriptor* field,
               absl::string_view* text, uint64_t* number);

// The same, given a hint from WellFormed for this field.
bool FindValue(absl::string_view message, uint16_t hint,
               const google::protobuf::FieldDescriptor* field,
               absl::string_view* text, uint64_t* number);

}  // namespace lazy
}  // namespace walstate

#endif  // WALSTATE_ENGINE_STATE_LAZY_STATE_H_
