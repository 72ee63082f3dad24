// Recovery: rebuilds the in-memory session table from a data directory —
// the newest usable snapshot, then the log after it — without writing
// anything. Engine::Open uses it and then repairs the tail; walctl uses it for
// `show --at-lsn`, `stats` and offline `compact`.
#ifndef WALSTATE_ENGINE_RECOVERY_H_
#define WALSTATE_ENGINE_RECOVERY_H_

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/log/reader.h"
#include "engine/state/schema.h"
#include "engine/state/session_table.h"
#include "proto/walstate/record.pb.h"
#include "walstate/file_system.h"
#include "walstate/recovery_report.h"

namespace walstate {

struct RecoveryOptions {
  FileSystem* fs = nullptr;  // required
  std::string dir;           // required
  log::RecoveryMode mode = log::RecoveryMode::kTolerateTornTail;
  // Replay only records with LSN <= stop_at_lsn (`walctl show --at-lsn`).
  // FailedPrecondition if the retained history starts after it.
  uint64_t stop_at_lsn = std::numeric_limits<uint64_t>::max();
  // Threads that parse and apply records (0: ApplyPool::DefaultWorkers(),
  // one per core plus one, at most 8; 1:
  // the calling thread only).
  size_t workers = 0;
  // Keep the recovered states serialized, each parsed on its first use
  // (engine/state/lazy_state.h; Options::lazy_recovery).
  bool lazy = false;
  // With `lazy`, the log's records after the snapshot are kept unparsed too
  // only if the log there is at most the snapshot's size plus this many
  // bytes; otherwise they are applied (each state parsed as its first
  // record comes). Options::lazy_replay_slack_bytes.
  uint64_t lazy_replay_slack_bytes = 64ull << 20;
};

struct RecoveredState {
  std::unique_ptr<SessionTable> table;
  RecoveryReport report;
  record::Manifest manifest;  // as read (empty if there was none)
  bool has_manifest = false;
  // Ticks left open at the end of the log (a crash mid-tick); Engine::Open
  // writes a kTickAbort for each so later recoveries need not hold them.
  std::vector<uint64_t> open_ticks;
  // Tail repair Engine::Open must do before appending: cut `torn_file` at
  // `torn_offset` (empty: nothing to cut); delete segments whose header was
  // torn (a crash right after create).
  std::vector<std::string> torn_header_segments;
  uint64_t next_segment_number = 1;
  uint64_t next_lsn = 1;
};

// Recovers the state in options.dir for sessions described by `schema`.
absl::StatusOr<RecoveredState> Recover(const RecoveryOptions& options,
                                       const Schema& schema);

// Fills `ropts`' evidence for judging a damaged header of the last segment
// (log::LogReaderOptions::max_header_bytes and synced_segment): the header
// size `schema_blob` gives, and the segments the MANIFEST's snapshots point
// into (records there were synced before the snapshot was taken).
void SetCreateEvidence(const std::string& schema_blob,
                       const record::Manifest& manifest,
                       log::LogReaderOptions* ropts);
// The same from what `dir` holds (the stored schema, the MANIFEST), each
// where readable: for tools that do not know the application's schema.
void SetCreateEvidence(FileSystem* fs, const std::string& dir,
                       log::LogReaderOptions* ropts);

// The schema stored in the directory's newest file header (for tools that do
// not link the user's generated code). NotFound if no file has one.
absl::StatusOr<std::unique_ptr<Schema>> ReadStoredSchema(
    FileSystem* fs, const std::string& dir);

}  // namespace walstate

#endif  // WALSTATE_ENGINE_RECOVERY_H_
