// SnapshotWriter writes one snapshot file: every live session as of an LSN,
// in the log's record framing (format.h), ending with a kSnapshotEnd record.
// It writes to "<name>.tmp" and only Finish() gives the file its real name
// (after an fdatasync; then the directory is synced). Publishing it is the
// MANIFEST's job; a snapshot no MANIFEST names is ignored.
#ifndef WALSTATE_ENGINE_SNAPSHOT_SNAPSHOT_WRITER_H_
#define WALSTATE_ENGINE_SNAPSHOT_SNAPSHOT_WRITER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/message.h"
#include "walstate/file_system.h"

namespace walstate {

class SnapshotWriter {
 public:
  // Starts snapshot `lsn` in `dir` with `schema` (the header's schema blob).
  static absl::StatusOr<std::unique_ptr<SnapshotWriter>> Create(
      FileSystem* fs, const std::string& dir, uint64_t lsn,
      const std::string& schema);

  // Deletes the temporary file unless Finish() succeeded.
  ~SnapshotWriter();

  // Buffers one session (no I/O: safe under the caller's locks). `lsn`: the
  // log's last LSN at the capture (record::SessionState::lsn).
  void Add(absl::string_view session, const google::protobuf::Message& state,
           uint64_t lsn);

  // The same for a state already serialized (a lazy state's bytes).
  void AddSerialized(absl::string_view session, absl::string_view state,
                     uint64_t lsn);

  // Bytes buffered by Add() and not yet written.
  size_t buffered_bytes() const { return buffer_.size(); }

  // Writes what Add() buffered.
  absl::Status WriteBuffered();

  // Writes the end record, syncs, closes and renames to the final name, then
  // syncs the directory.
  absl::Status Finish();

  const std::string& file_name() const { return name_; }
  uint64_t sessions() const { return sessions_; }
  uint64_t bytes() const { return bytes_; }

 private:
  SnapshotWriter() = default;
  // Buffers the SessionState record of `session`, its state written by
  // `write_state` (exactly `state_size` bytes).
  void AddRecord(
      absl::string_view session, size_t state_size, uint64_t lsn,
      const std::function<void(google::protobuf::io::CodedOutputStream*)>&
          write_state);

  FileSystem* fs_ = nullptr;
  std::string dir_;
  std::string name_;
  std::string tmp_path_;
  uint64_t lsn_ = 0;
  uint64_t salt_ = 0;
  uint64_t next_ordinal_ = 1;
  uint64_t sessions_ = 0;
  uint64_t bytes_ = 0;
  bool finished_ = false;
  std::unique_ptr<WritableFile> file_;
  std::string buffer_;
  std::string scratch_;
};

}  // namespace walstate

#endif  // WALSTATE_ENGINE_SNAPSHOT_SNAPSHOT_WRITER_H_
