// What an offline compaction (`walctl compact`, i.e. Engine::Open then
// Compact()) would do to a directory, judged without writing: shared by
// `compact`, which skips a store with nothing to compact, and `stats`, whose
// reclaim estimate must match what `compact` then does. The rules mirror
// EngineImpl::CompactNow and DeleteObsoleteFiles (engine/engine_compaction.cc).
#ifndef WALSTATE_TOOLS_WALCTL_COMPACTION_PLAN_H_
#define WALSTATE_TOOLS_WALCTL_COMPACTION_PLAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "engine/recovery.h"
#include "tools/walctl/common.h"
#include "walstate/file_system.h"

namespace walstate {
namespace walctl {

// True if compacting `dir` would change nothing: the engine's Compact()
// returns at once when no record was written since the current snapshot
// and Open did not fall back, and Open itself would repair nothing (no torn
// tail, no torn segment header, no open tick to abort, no temporary of its
// own to remove). Then `compact` does not open the store at all, since Open
// starts a new (empty) log segment. `state` is Recover()'s result for the
// directory `entries` lists; `why` says what makes it unchanged or not.
bool UnchangedSinceSnapshot(const RecoveredState& state,
                            const DirEntries& entries, std::string* why);

// The files a compaction of `dir` deletes (or, for a snapshot that failed to
// load, moves to the backup folder), with their bytes. Empty when
// UnchangedSinceSnapshot(). Snapshots no MANIFEST names are never deleted.
struct CompactionDeletes {
  std::vector<std::string> files;
  uint64_t bytes = 0;
};
CompactionDeletes PlanCompactionDeletes(FileSystem* fs, const std::string& dir,
                                        const RecoveredState& state,
                                        const DirEntries& entries);

}  // namespace walctl
}  // namespace walstate

#endif  // WALSTATE_TOOLS_WALCTL_COMPACTION_PLAN_H_
