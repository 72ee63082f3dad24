// Replayer: applies log records to a SessionTable during recovery, with the
// semantics the writer promises:
//
//  - kUpdate / kDelete take effect at their LSN.
//  - kTickEntry records take effect at their own LSN too, but only if their
//    tick is committed (kTickCommit); a tick that is aborted, or still open
//    when the log ends, never takes effect.
//
// Because a tick's commit comes after its entries, and other records of the
// same session may come in between, a session with an undecided tick entry
// queues every later record of its own until the tick is decided; then the
// queue drains in LSN order. Sessions not in an open tick apply at once, so
// the common case copies nothing.
#ifndef WALSTATE_ENGINE_STATE_REPLAYER_H_
#define WALSTATE_ENGINE_STATE_REPLAYER_H_

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/state/session_table.h"
#include "proto/walstate/record.pb.h"

namespace walstate {

class Replayer {
 public:
  // Records with LSN <= `base_lsn` are already in `table` (a snapshot); a
  // tick whose kTickBegin is at or below it may have entries after it.
  Replayer(SessionTable* table, uint64_t base_lsn);

  // Applies one record. DataLoss, naming the LSN and session, if its payload
  // does not parse or contradicts the log (an entry of a tick never begun).
  // Record types other than the log's own are ignored.
  absl::Status Apply(uint64_t lsn, uint8_t type, absl::string_view payload);

  // Ends the replay: ticks still open are dropped (their records never take
  // effect) and the records queued behind them applied. Returns the ids of
  // those ticks.
  absl::StatusOr<std::vector<uint64_t>> Finish();

  uint64_t ticks_committed() const { return ticks_committed_; }
  uint64_t ticks_aborted() const { return ticks_aborted_; }
  // Fields this binary does not know, kept as unknown fields (schema
  // evolution: a newer binary wrote them).
  uint64_t unknown_fields_kept() const { return unknown_fields_kept_; }

 private:
  // A record queued behind an undecided tick entry, kept parsed so that it
  // is parsed once whether it waits or not.
  struct Pending {
    uint64_t lsn = 0;
    uint8_t type = 0;
    uint64_t tick = 0;  // for kTickEntry
    bool committed = false;
    record::Update update;  // kUpdate, kTickEntry
    std::string session;    // kDelete
  };
  absl::Status ApplyDelete(uint64_t lsn, const std::string& session);
  struct OpenTick {
    std::vector<std::string> sessions;
  };

  absl::Status ApplyNow(uint64_t lsn, uint8_t type, absl::string_view payload);
  absl::Status ApplyUpdate(uint64_t lsn, const record::Update& update);
  absl::Status Drain(const std::string& session);
  absl::Status Decide(uint64_t tick, bool commit);

  SessionTable* table_;
  const uint64_t base_lsn_;
  absl::flat_hash_map<uint64_t, OpenTick> open_ticks_;
  absl::flat_hash_map<std::string, std::deque<Pending>> queued_;
  record::Update update_;  // reused to avoid allocations
  record::Delete delete_;
  std::unique_ptr<google::protobuf::Message> scratch_;
  std::vector<const Schema::Field*> fields_;
  uint64_t ticks_committed_ = 0;
  uint64_t ticks_aborted_ = 0;
  uint64_t unknown_fields_kept_ = 0;
};

// Sets the listed top-level fields of `dst` from `src` (a listed field unset
// in `src` is cleared in `dst`), for fields the schema does not know:
// moves the unknown fields with those numbers.
void CopyUnknownFields(const google::protobuf::Message& src,
                       const std::vector<uint32_t>& numbers,
                       google::protobuf::Message* dst);

}  // namespace walstate

#endif  // WALSTATE_ENGINE_STATE_REPLAYER_H_
