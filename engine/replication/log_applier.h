// Applies a store's log-subject messages to a data directory: every frame
// verified by LogDecoder (wire.h) exactly as restore and recovery verify it,
// the records after a given LSN appended to walstate segments with the
// store's schema. Shared by Restore (restore.h) and Follow (follow.h), so
// that a restored and a followed directory are written the same way.
#ifndef WALSTATE_ENGINE_REPLICATION_LOG_APPLIER_H_
#define WALSTATE_ENGINE_REPLICATION_LOG_APPLIER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "engine/log/writer.h"
#include "engine/replication/wire.h"
#include "walstate/file_system.h"

namespace walstate {
namespace replication {

class LogApplier {
 public:
  // Writes into `dir` (which must exist) the records with LSN > `after_lsn`
  // (the snapshot's LSN; 0: none), starting with segment 1. `source` names
  // the stream in errors ("stream WALSTATE_x at nats://..."). `schema` goes
  // into every segment header.
  LogApplier(FileSystem* fs, std::string dir, std::string source,
             uint64_t after_lsn, std::string schema);
  ~LogApplier();  // does not sync: call Close()

  // One message of the log subject (header and body from DecodeMessage) at
  // stream sequence `seq`. A claim drops a record its predecessor began and
  // never finished; a log message's frames are verified and its complete
  // records after `after_lsn` appended (buffered: Sync() makes them
  // durable). Other kinds are ignored. DataLoss naming the message when a
  // frame is damaged or records are missing (the log resumes after a gap).
  absl::Status Apply(uint64_t seq, const MessageHeader& header,
                     absl::string_view body);

  // Writes and fdatasyncs what Apply appended; creates the (empty) segment
  // that says where the log goes on if nothing was appended yet.
  absl::Status Sync();
  // Sync(), then closes the segment. Further Apply calls fail.
  absl::Status Close();

  // A record begun in the last message and not finished: dropped (it was
  // never acknowledged). Returns its size in bytes.
  size_t DropPartial();

  // Highest LSN verified so far, or after_lsn.
  uint64_t last_lsn() const;
  // Highest LSN appended and fdatasynced in `dir` (after_lsn before that).
  uint64_t durable_lsn() const;
  uint64_t log_messages() const { return log_messages_; }
  uint64_t records_verified() const { return records_verified_; }
  uint64_t records_written() const { return records_written_; }
  uint64_t dropped_partial_bytes() const { return dropped_partial_bytes_; }

 private:
  absl::Status CreateWriter(uint64_t next_lsn);

  FileSystem* const fs_;
  const std::string dir_;
  const std::string source_;
  const uint64_t after_lsn_;
  const std::string schema_;
  LogDecoder decoder_;
  std::unique_ptr<log::LogWriter> writer_;
  uint64_t log_messages_ = 0;
  uint64_t records_verified_ = 0;
  uint64_t records_written_ = 0;
  uint64_t dropped_partial_bytes_ = 0;
};

}  // namespace replication
}  // namespace walstate

#endif  // WALSTATE_ENGINE_REPLICATION_LOG_APPLIER_H_
