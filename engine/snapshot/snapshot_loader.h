// Loads a snapshot file into a SessionTable. A snapshot is all or nothing:
// any damage, a missing end record or a count that does not match is an
// error, and the caller falls back to the previous snapshot.
#ifndef WALSTATE_ENGINE_SNAPSHOT_SNAPSHOT_LOADER_H_
#define WALSTATE_ENGINE_SNAPSHOT_SNAPSHOT_LOADER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/state/session_table.h"
#include "walstate/file_system.h"

namespace walstate {

struct LoadedSnapshot {
  uint64_t lsn = 0;
  uint64_t sessions = 0;
  uint64_t bytes = 0;
};

// Loads `path`, which must hold snapshot `expected_lsn`, into the empty
// `table`, parsing on `workers` threads (ApplyPool; 0 or 1: on this one).
// With `lazy`, states are kept serialized (SessionTable::PutLazyLocked) and
// only checked to be well-formed; they parse on first use. DataLoss naming
// the file and offset on any damage, including a session that appears twice.
absl::StatusOr<LoadedSnapshot> LoadSnapshot(
    FileSystem* fs, const std::string& path, uint64_t expected_lsn,
    SessionTable* table, size_t workers = 1, bool lazy = false);

// Reads `path` back and checks it is snapshot `expected_lsn` holding exactly
// `expected_sessions` session records that decode, every frame intact, and
// its end record agreeing: what a compaction checks of the snapshot it just
// wrote before it deletes the one it replaces. States are not parsed.
// DataLoss naming the file and offset otherwise.
absl::Status VerifySnapshot(FileSystem* fs, const std::string& path,
                            uint64_t expected_lsn, uint64_t expected_sessions);

// Decodes a snapshot's session record (record::SessionState) without
// copying: `session` and `state` point into `payload`; `lsn` is 0 if the
// record has none. Fields of later versions are skipped. False if it does
// not parse.
bool DecodeSessionState(absl::string_view payload, absl::string_view* session,
                        absl::string_view* state, uint64_t* lsn);

}  // namespace walstate

#endif  // WALSTATE_ENGINE_SNAPSHOT_SNAPSHOT_LOADER_H_
