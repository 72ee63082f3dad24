// SessionTable: the in-memory state of every session, sharded by session id,
// with the secondary indexes and the per-session dirty marks of BATCHED
// fields.
//
// Locking: a shard's mutex guards its map and dirty set; index_mu_ guards the
// indexes. Order: shard, then index. The engine holds a shard's lock while it
// applies a change AND appends its log record, so that log order equals the
// order in which changes to one session became visible.
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
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
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
  struct Shard {
    mutable std::mutex mu;
    absl::flat_hash_map<std::string, Entry> sessions;
    absl::flat_hash_set<std::string> dirty;  // sessions with Entry::dirty set
  };

  explicit SessionTable(const Schema& schema, size_t shard_count = 256);
  SessionTable(const SessionTable&) = delete;
  SessionTable& operator=(const SessionTable&) = delete;

  const Schema& schema() const { return schema_; }
  size_t shard_count() const { return shards_.size(); }
  Shard& shard(size_t i) { return *shards_[i]; }
  Shard& ShardFor(absl::string_view session);
  const Shard& ShardFor(absl::string_view session) const;

  // --- Called with the session's shard lock held. ---

  // AlreadyExists if a UNIQUE indexed field among `fields` would take, in
  // `values`, a value another session holds.
  absl::Status CheckUniqueLocked(
      absl::string_view session, const google::protobuf::Message& values,
      absl::Span<const Schema::Field* const> fields) const;

  // Sets `fields` of `session` (created if missing) to their values in
  // `values`, which is left holding unspecified values (fields are swapped,
  // not copied). Keeps the indexes current. Returns the entry.
  Entry* ApplyLocked(Shard& shard, absl::string_view session,
                     google::protobuf::Message* values,
                     absl::Span<const Schema::Field* const> fields);

  // Like ApplyLocked, but copies `fields` from `values` (left untouched)
  // with `copy_field`, which must clear the destination field first.
  using FieldCopier = void (*)(const google::protobuf::Message& src,
                               const google::protobuf::FieldDescriptor* field,
                               google::protobuf::Message* dst);
  Entry* CopyFieldsLocked(Shard& shard, absl::string_view session,
                          const google::protobuf::Message& values,
                          absl::Span<const Schema::Field* const> fields,
                          FieldCopier copy_field);

  // Replaces the whole state of `session` (snapshot load).
  void PutLocked(Shard& shard, absl::string_view session,
                 std::unique_ptr<google::protobuf::Message> state);

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
  // Bytes used by states, keys and table overhead (walks every session).
  uint64_t ApproximateMemory() const;

 private:
  using Index =
      absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>>;

  void IndexRemoveLocked(absl::string_view session,
                         const google::protobuf::Message& state,
                         const Schema::Field& field);
  void IndexAddLocked(absl::string_view session,
                      const google::protobuf::Message& state,
                      const Schema::Field& field);

  const Schema& schema_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<size_t> size_{0};
  mutable std::mutex index_mu_;
  std::vector<Index> indexes_;   // by position in schema_.indexed_fields()
  std::vector<int> index_slot_;  // field index -> slot in indexes_, or -1
};

}  // namespace walstate

#endif  // WALSTATE_ENGINE_STATE_SESSION_TABLE_H_
