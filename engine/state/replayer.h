// Replayer: applies log records to a SessionTable during recovery, with the
// semantics the writer promises:
//
//  - kUpdate / kDelete take effect at their LSN.
//  - kTickEntry records take effect at their own LSN too, but only if their
//    tick is committed (kTickCommit); a tick that is aborted, or still open
//    when the log ends, never takes effect.
//
// A tick's commit comes after its entries, so whether an entry counts is
// only known later in the log. A replay that applies records therefore
// reads the log twice: a first pass notes every committed tick
// (NoteCommitted), and the second applies every record in LSN order, each
// at once and parsed once, straight into the session's state; this keeps
// it from queueing the entries of an undecided tick. A lazy replay, which
// only keeps records for each session's first use, reads the log once: it
// keeps a tick's entries as they come and voids, at the end, those of ticks
// that never committed.
#ifndef WALSTATE_ENGINE_STATE_REPLAYER_H_
#define WALSTATE_ENGINE_STATE_REPLAYER_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/state/apply_pool.h"
#include "engine/state/session_table.h"
#include "engine/state/update_codec.h"
#include "proto/walstate/record.pb.h"

namespace walstate {

class Replayer {
 public:
  // Records with LSN <= `base_lsn` are already in `table` (a snapshot); a
  // tick whose kTickBegin is at or below it may have entries after it.
  // Updates and deletes are applied on `workers` threads (ApplyPool; 0 or
  // 1: on the caller's), each session's in log order. With `lazy` (the
  // table's BeginLazy was called), updates are kept for each session's
  // first use (SessionTable::KeepUpdateLocked), not parsed, and the log is
  // read once: a tick entry is kept as it comes, before its tick's commit,
  // and Finish voids the entries of ticks that never committed
  // (SessionTable::VoidTickEntries); NoteCommitted is not needed.
  Replayer(SessionTable* table, uint64_t base_lsn, size_t workers = 1,
           bool lazy = false);

  // First pass: the log being replayed holds a kTickCommit for `tick`.
  void NoteCommitted(uint64_t tick) { committed_.insert(tick); }

  // Second pass: applies one record, read from `file` at `offset`, or hands
  // it to a worker. DataLoss, naming the file, offset, LSN and session, if
  // its payload does not parse or contradicts the log (an entry of a tick
  // never begun, a commit of a tick not open); a worker's error is returned
  // by a later call or by Finish. Record types other than the log's own are
  // ignored.
  absl::Status Apply(uint64_t lsn, uint8_t type, absl::string_view payload,
                     absl::string_view file, uint64_t offset);

  // Ends the replay: waits for the workers and returns the first error of
  // any record. The ticks still open then (their entries never took effect)
  // count as aborted and are listed by open_ticks().
  absl::Status Finish();
  const std::vector<uint64_t>& open_ticks() const { return open_; }

  uint64_t ticks_committed() const { return ticks_committed_; }
  uint64_t ticks_aborted() const { return ticks_aborted_; }
  // Records that set fields this binary does not know, kept as unknown
  // fields (schema evolution: a newer binary wrote them).
  uint64_t unknown_fields_kept() const {
    return unknown_fields_kept_.load(std::memory_order_relaxed);
  }

 private:
  absl::Status ApplyOnWorker(const ApplyPool::Item& item);
  absl::Status ApplyUpdate(uint64_t lsn, const UpdateView& update,
                           const SessionTable::SessionKey& key,
                           absl::string_view payload, size_t worker);
  absl::Status ApplyDelete(uint64_t lsn, const SessionTable::SessionKey& key);
  absl::Status Hand(absl::string_view session, uint64_t lsn, uint8_t type,
                    absl::string_view payload, absl::string_view file,
                    uint64_t offset);

  SessionTable* table_;
  const uint64_t base_lsn_;
  const bool lazy_;
  absl::flat_hash_set<uint64_t> committed_;  // from the first pass
  // Lazy: the sessions each undecided tick has entries for (ids end to end,
  // and where each ends), until the tick commits; those of ticks aborted.
  struct TickSessions {
    std::string ids;
    std::vector<uint32_t> ends;
  };
  absl::flat_hash_map<uint64_t, TickSessions> undecided_;
  std::vector<std::pair<uint64_t, TickSessions>> voided_;
  absl::flat_hash_set<uint64_t> open_ticks_;  // begun, not yet ended
  std::vector<uint64_t> open_;                // open at Finish
  UpdateView update_;                         // the reading thread's
  record::Delete delete_;
  uint64_t ticks_committed_ = 0;
  uint64_t ticks_aborted_ = 0;
  std::atomic<uint64_t> unknown_fields_kept_{0};
  ApplyPool pool_;  // last: its workers use the members above
};

}  // namespace walstate

#endif  // WALSTATE_ENGINE_STATE_REPLAYER_H_
