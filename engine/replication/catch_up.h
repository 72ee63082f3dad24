// At Open, a store's directory may hold records its stream does not: those
// synced before a crash but not yet published (async mode, or sync mode
// between the fdatasync and the ack), or the whole history if replication
// was just turned on. CatchUp publishes them, re-framed, before the writer
// appends anything new, so the stream stays a prefix of the local log.
#ifndef WALSTATE_ENGINE_REPLICATION_CATCH_UP_H_
#define WALSTATE_ENGINE_REPLICATION_CATCH_UP_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "proto/walstate/record.pb.h"
#include "walstate/file_system.h"
#include "walstate/replicator.h"

namespace walstate {
namespace replication {

// Publishes the records of `dir` with LSN > `stream_last_lsn` up to
// `local_last_lsn`. Where the log no longer holds the first of them (a
// snapshot replaced them), the snapshot `manifest` names is published first
// and the records after it follow.
absl::Status CatchUp(Replicator* replicator, FileSystem* fs,
                     const std::string& dir, uint64_t stream_last_lsn,
                     uint64_t local_last_lsn, const record::Manifest& manifest);

}  // namespace replication
}  // namespace walstate

#endif  // WALSTATE_ENGINE_REPLICATION_CATCH_UP_H_
