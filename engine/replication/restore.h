// Rebuilds a data directory from a store's stream: the newest snapshot the
// stream holds, then the log records after it, every frame checked as
// recovery checks it (`walctl restore`). Independent of NATS: the stream is
// read through StreamSource (engine/replication/nats/ implements it).
#ifndef WALSTATE_ENGINE_REPLICATION_RESTORE_H_
#define WALSTATE_ENGINE_REPLICATION_RESTORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "engine/replication/log_applier.h"
#include "walstate/file_system.h"

namespace walstate {
namespace replication {

// Reads a store's stream.
class StreamSource {
 public:
  virtual ~StreamSource() = default;
  // Calls `fn` for each message on the log subject, oldest first, up to the
  // last one there when ReadLog started, with the writer that published it.
  // Stops at fn's first error.
  virtual absl::Status ReadLog(
      const std::function<absl::Status(uint64_t seq, absl::string_view msg,
                                       absl::string_view writer)>& fn) = 0;
  // Calls `fn` for messages on the snapshot subject from sequence `from`
  // on, until it returns false or an error, or the subject ends.
  virtual absl::Status ReadSnapshot(
      uint64_t from,
      const std::function<absl::StatusOr<bool>(uint64_t seq,
                                               absl::string_view msg)>& fn) = 0;
  // "stream WALSTATE_x (subjects walstate.x.*) at nats://...", for messages.
  virtual std::string Describe() const = 0;
  // Calls `fn` for each message on the log subject from stream sequence
  // `from` on, as they arrive, without end; when none arrived for a moment
  // (at most `idle_wait`), calls `idle` instead. Returns OK when either
  // returns false, or the first error. Default: Unimplemented (a source
  // that cannot be followed).
  virtual absl::Status TailLog(
      uint64_t from, absl::Duration idle_wait,
      const std::function<absl::StatusOr<bool>(
          uint64_t seq, absl::string_view msg, absl::string_view writer)>& fn,
      const std::function<bool()>& idle);
};

struct RestoreReport {
  std::string snapshot_file;  // empty: the stream holds no snapshot
  uint64_t snapshot_lsn = 0;
  uint64_t snapshot_bytes = 0;
  uint64_t log_messages = 0;  // log messages read and verified
  uint64_t records_verified = 0;
  uint64_t records_written = 0;  // those after the snapshot
  uint64_t last_lsn = 0;
  uint64_t snapshot_sessions = 0;
  std::string last_writer;  // of the last message
  std::string schema;       // the store's schema blob (segment headers)
  uint64_t dropped_partial_bytes =
      0;  // a record a deposed writer never finished

  std::string ToString() const;
};

// Restores into `dir`, which must not exist or be empty. On any error the
// files it wrote are removed again (and `dir` if it created it); the error
// names the message and what to do.
absl::StatusOr<RestoreReport> Restore(StreamSource* source, FileSystem* fs,
                                      const std::string& dir);

// A restore whose last segment stays open for more records (Follow).
struct RestoredStore {
  RestoreReport report;
  // Holds the decoder's state (a record the last message began) and the
  // open segment; everything it wrote so far is fdatasynced.
  std::unique_ptr<LogApplier> applier;
  // Stream sequence after the last log-subject message the restore read.
  uint64_t next_seq = 0;
};

// Restore() without its end: a record begun and not finished in the last
// message is kept pending (its end may still come) and the segment stays
// open. `dir` is consistent (walctl verify passes, Open gives the state
// up to report.last_lsn) once this returns.
absl::StatusOr<RestoredStore> RestoreAndKeepOpen(StreamSource* source,
                                                 FileSystem* fs,
                                                 const std::string& dir);

}  // namespace replication
}  // namespace walstate

#endif  // WALSTATE_ENGINE_REPLICATION_RESTORE_H_
