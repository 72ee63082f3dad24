// Replicator: where a store's log and snapshots are shipped so that the store
// outlives its machine (docs/replication.md). The engine talks only to this
// interface; engine/replication/nats/ implements it over NATS JetStream, and
// the engine core never includes a NATS header.
//
// A stream holds, per store, the log subject (claims and log messages, in
// LSN order) and the snapshot subject (chunks of a snapshot file, then its
// manifest). Every message body starts with the header of
// engine/replication/wire.h; log messages carry walstate's own record frames,
// checksums included, so a restore verifies each record as recovery does.
#ifndef WALSTATE_REPLICATOR_H_
#define WALSTATE_REPLICATOR_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "walstate/file_system.h"

namespace walstate {
namespace replication {

enum class Mode {
  kOff,
  // Records are published after their local fdatasync by a background
  // thread; a failover loses up to the replication lag (Stats).
  kAsync,
  // An IMMEDIATE update, a Delete and a tick commit return only once their
  // records are fdatasynced locally and acknowledged by the stream.
  kSync,
};

// "off", "async", "sync".
const char* ModeName(Mode mode);

// The end of a store's log subject as a writer found it when it claimed it.
struct StreamPosition {
  uint64_t last_lsn = 0;    // highest LSN on the log subject (0: none)
  std::string last_writer;  // writer of the last log message before the claim
  uint64_t last_seq = 0;    // its stream sequence (0: the subject is empty)
};

// What the server acknowledges means, read when the replicator connected.
struct ServerDurability {
  std::string server_version;  // "2.9.10"
  // True if the server can fsync before acknowledging (sync_interval:
  // always, nats-server >= 2.10.x). On 2.9 an ack means "in memory on a
  // quorum of the stream's replicas".
  bool fsync_before_ack_possible = false;
  std::string description;  // one line for stats(), health and walctl
};

// Thread safety: PublishLog is called by one thread at a time (the log
// writer's I/O thread, or the async publisher), PublishSnapshot by another;
// an implementation must allow the two at once.
class Replicator {
 public:
  virtual ~Replicator() = default;

  // Makes `writer` the store's only writer. Reads the end of the log
  // subject; if another writer published there last and `takeover` is
  // false, FailedPrecondition naming it. Otherwise publishes a claim naming
  // `writer`, fenced on that end: from then on the stream refuses a publish
  // by anyone who has not seen the claim (a deposed writer).
  // `schema` (the store's schema blob) goes into the claim, so that a
  // stream with no snapshot yet can still be restored.
  virtual absl::StatusOr<StreamPosition> Claim(const std::string& writer,
                                               bool takeover,
                                               const std::string& schema) = 0;

  // Publishes `frames`, the framed records first_lsn..last_lsn hashed with
  // `salt` (docs/FORMAT.md §3), in as many messages as the server's payload
  // limit needs, each fenced on the previous one. Returns once the stream
  // acknowledged all of them. Aborted if the stream refused a message
  // because another writer claimed the store (this writer is deposed);
  // Unavailable or DeadlineExceeded when the stream did not answer (the
  // messages may or may not be in it).
  virtual absl::Status PublishLog(uint64_t salt, uint64_t first_lsn,
                                  uint64_t last_lsn,
                                  absl::string_view frames) = 0;

  // Publishes snapshot `path` (of LSN `lsn`, read through `fs`) in chunks,
  // then its manifest, then removes from the stream what it makes
  // unnecessary: older snapshots and log messages whose records are all
  // <= `lsn` (the last log message always stays: it carries the fence).
  virtual absl::Status PublishSnapshot(FileSystem* fs, const std::string& path,
                                       uint64_t lsn) = 0;

  virtual ServerDurability durability() const = 0;
};

}  // namespace replication
}  // namespace walstate

#endif  // WALSTATE_REPLICATOR_H_
