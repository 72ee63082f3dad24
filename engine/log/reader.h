// Reading files of the log format: one file (FileReader) or a directory's log
// segments in LSN order (LogReader), classifying any damage found.
//
// Damage classes:
//  - torn tail: a bad or partial frame in the LAST segment after which no
//    valid frame of that file follows (what a crash mid-append leaves: a
//    partial record, zeros, garbage sectors). A missing, empty or zero-filled
//    header of the last segment is a torn tail too (crash right after create).
//  - corruption: a bad frame followed by a valid one, any bad frame in an
//    earlier segment, a bad header, an LSN out of sequence, a gap between
//    segments, an unknown required record type.
//  - foreign file: a file whose name matches ours but whose magic does not.
//
// Recovery modes decide what each class does (walstate/recovery_report.h).
#ifndef WALSTATE_ENGINE_LOG_READER_H_
#define WALSTATE_ENGINE_LOG_READER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/log/format.h"
#include "walstate/file_system.h"
#include "walstate/recovery_report.h"

namespace walstate {
namespace log {

// The recovery modes and damage kinds are public (walstate/recovery_report.h);
// the log code names them as log:: too.
using ::walstate::Problem;
using ::walstate::ProblemKindName;
using ::walstate::RecoveryMode;
using ::walstate::RecoveryModeName;

struct Record {
  uint64_t lsn = 0;
  uint8_t type = 0;
  absl::string_view payload;  // valid until the next call to Next()
  std::string file;           // path of the file holding the record
  uint64_t offset = 0;        // offset of the frame in that file
  uint64_t framed_size = 0;   // bytes the frame occupies
};

// What a read found, for recovery reports and `walctl verify`.
struct ReadReport {
  std::vector<Problem> problems;
  uint64_t files = 0;
  uint64_t records = 0;    // records returned
  uint64_t bytes = 0;      // bytes of the files read
  uint64_t first_lsn = 0;  // of the first record returned (0 if none)
  uint64_t last_lsn = 0;   // of the last record returned (0 if none)
  // End of the last good frame: where a torn tail would be cut.
  std::string last_good_file;
  uint64_t last_good_offset = 0;
  uint64_t torn_bytes = 0;  // bytes of torn tail found
  // Bytes of records before start_lsn not read thanks to the start hint.
  uint64_t skipped_bytes = 0;
  bool has_torn_tail() const;
  bool has_corruption() const;  // anything other than a torn tail
};

// Reads one file of any kind. Frames are verified as read; LSNs must start at
// the header's first_lsn and increase by one.
class FileReader {
 public:
  // Reads and checks the header. `is_last` says whether a damaged tail of
  // this file counts as a torn tail (true) or corruption (false).
  // Errors: NotFound, or DataLoss/FailedPrecondition naming the file when the
  // header is bad and the mode cannot tolerate it. A torn header of a last
  // file in a tolerant mode yields a reader with no records.
  // With `map`, the file is read through a mapping of it
  // (FileSystem::NewMappedFile) where the file system can map it: payloads
  // then point into the mapping, valid for as long as mapping() is held.
  static absl::StatusOr<std::unique_ptr<FileReader>> Open(
      FileSystem* fs, const std::string& path, RecoveryMode mode, bool is_last,
      bool map = false);

  ~FileReader();

  // The next valid record; false at the end or when reading must stop (then
  // status() says why). Records of optional types this build does not know
  // are returned too; the caller decides whether to skip them.
  bool Next(Record* record);

  // The file's mapping if it was opened mapped, else null.
  std::shared_ptr<const MappedFile> mapping() const;

  // OK, or the error that stopped reading (DataLoss naming file and offset).
  absl::Status status() const;

  const FileHeader& header() const;  // valid when the header decoded
  bool header_ok() const;
  const ReadReport& report() const;

 private:
  class Impl;
  explicit FileReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct LogReaderOptions {
  FileSystem* fs = nullptr;  // required
  std::string dir;           // required
  RecoveryMode mode = RecoveryMode::kTolerateTornTail;
  // Skip records with LSN < start_lsn (whole segments when possible).
  uint64_t start_lsn = 0;
  // Where the frame of record start_lsn - 1 starts (segment number, byte
  // offset), e.g. from the MANIFEST: the records before it in that segment
  // are then not read at all. A hint: it is taken only if an intact frame of
  // this segment carrying exactly that LSN is there; otherwise, or when 0,
  // the segment is read from its start.
  uint64_t start_hint_segment = 0;
  uint64_t start_hint_offset = 0;
  // Evidence for judging a damaged header of the last segment (FORMAT.md
  // §7.2): it is an interrupted create only if the file is no larger than
  // the largest header the store's writers write (64 + align8(schema
  // size); 0: unknown, so 64 + 16 MiB) and its number is above
  // synced_segment, the highest segment known to have been synced (the
  // MANIFEST's log_segment: a snapshot was taken after records in it).
  // Otherwise it is corruption: records were synced in it, and recovery
  // must not drop it.
  uint64_t max_header_bytes = 0;
  uint64_t synced_segment = 0;
};

// Reads every log segment ("seg-*.wal") of a directory in segment-number
// order, checking that each segment's first LSN follows the previous one's
// last LSN, and returns records in LSN order. Other files are ignored.
class LogReader {
 public:
  static absl::StatusOr<std::unique_ptr<LogReader>> Open(
      const LogReaderOptions& options);
  ~LogReader();

  bool Next(Record* record);
  absl::Status status() const;
  const ReadReport& report() const;

  // Paths of the segments read or to be read, in order.
  const std::vector<std::string>& segments() const;
  // Schema blob of the last segment header read (empty if none).
  const std::string& schema() const;

 private:
  class Impl;
  explicit LogReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace log
}  // namespace walstate

#endif  // WALSTATE_ENGINE_LOG_READER_H_
