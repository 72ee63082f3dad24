// Standby follow mode (`walctl follow`): restores a data directory from a
// store's stream, then keeps applying the stream's new log records to it as
// they arrive, so that taking the store over from this warm copy costs a
// claim and an Open instead of a full restore (docs/replication.md,
// "Standby").
//
// A follower never writes to the stream and never claims the store: it
// holds the directory's LOCK while it runs (a Store cannot open it then),
// and afterwards the directory can be written only by a writer that claims
// the store (`walctl takeover`, or Options::replication.takeover). Every
// record goes through the same verification as restore and recovery
// (LogApplier, LogDecoder); snapshots published meanwhile are not applied
// (the follower's own log already holds their records).
#ifndef WALSTATE_ENGINE_REPLICATION_FOLLOW_H_
#define WALSTATE_ENGINE_REPLICATION_FOLLOW_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/replication/restore.h"
#include "walstate/file_system.h"

namespace walstate {
namespace replication {

struct FollowOptions {
  // Polled between messages and while idle; true ends Follow cleanly.
  std::function<bool()> stop;
  // Told the durable LSN after each fdatasync that advanced it.
  std::function<void(uint64_t durable_lsn)> on_progress;
  // Longest wait for a message before syncing what was applied and polling
  // `stop` again.
  absl::Duration idle_wait = absl::Milliseconds(100);
  // fdatasync at least every this many records while messages keep coming.
  uint64_t sync_every_records = 4096;
  // Owner written into the directory's LOCK file.
  std::string lock_owner = "walctl follow";
};

struct FollowReport {
  RestoreReport restore;               // the initial restore
  uint64_t messages_followed = 0;      // log-subject messages after it
  uint64_t records_applied = 0;        // records appended after it
  uint64_t durable_lsn = 0;            // last LSN fdatasynced in the directory
  uint64_t dropped_partial_bytes = 0;  // an unfinished record at the stop
  std::string ToString() const;
};

// Restores `dir` (must not exist or be empty) from `source`, then follows
// until options.stop() is true or an error. On a stop, syncs and closes the
// last segment: `dir` passes `walctl verify` and opens with the state up to
// durable_lsn (a record whose end had not arrived is left out). On an error
// after the restore, what was applied and synced stays (a consistent
// prefix); the error names the message and says what to do.
absl::StatusOr<FollowReport> Follow(StreamSource* source, FileSystem* fs,
                                    const std::string& dir,
                                    const FollowOptions& options);

}  // namespace replication
}  // namespace walstate

#endif  // WALSTATE_ENGINE_REPLICATION_FOLLOW_H_
