// FileScanner: reads one file of the log format (segment, snapshot or
// MANIFEST), frame by frame, classifying any damage; the engine behind
// FileReader and LogReader (reader.h). Internal to //engine/log:reader.
// Its jobs, one file each:
//   file_scanner.cc  opening a file, buffered or mapped reads, judging a
//                    header that does not decode (torn create, corruption,
//                    another program's file)
//   frame_scan.cc    decoding and checking frames, the start hint, Next()
//   damage_scan.cc   what a bad frame is (torn tail or corruption) and the
//                    scans salvage and repair rely on (resynchronizing past
//                    damage, records behind a damaged header)
#ifndef WALSTATE_ENGINE_LOG_FILE_SCANNER_H_
#define WALSTATE_ENGINE_LOG_FILE_SCANNER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "engine/log/format.h"
#include "engine/log/reader.h"
#include "walstate/file_system.h"

namespace walstate {
namespace log {

// Records are read in chunks of this size (more for larger records).
constexpr size_t kChunkSize = 1u << 20;
// The first read of a file: enough for a header with a modest schema, small
// enough that opening a segment only to read its header stays cheap.
constexpr size_t kHeaderReadSize = 4096;
// How far ahead of a mapped scan its next page is prefetched.
constexpr uint64_t kMappedPrefetchBytes = 8192;

// Record types this build knows (required or optional).
bool IsKnownType(uint8_t type);
// The directory part of `path` ("." if none).
std::string DirOf(const std::string& path);
// What an operator should run about damage in `path`.
std::string RepairAdvice(const std::string& path);
bool AllZero(const char* p, size_t n);
const char* FileKindName(FileKind kind);

// Why a frame at some offset is not a valid record.
enum class FrameError {
  kNone,
  kPartialHeader,
  kZeroType,
  kReservedBits,
  kTooLong,
  kPastEnd,
  kChecksum,
  kLsn,
  kIo,
};

// Reads one file: the shared engine of FileReader and LogReader. It never
// throws information away: header problems, damage and I/O errors end up in
// report() and status().
class FileScanner {
 public:
  FileScanner(FileSystem* fs, std::string path, RecoveryMode mode, bool is_last,
              bool map = false)
      : fs_(fs),
        path_(std::move(path)),
        mode_(mode),
        is_last_(is_last),
        map_(map) {}

  // The file's mapping, if it was opened mapped (then payloads point into
  // it and stay valid for as long as it is held).
  const std::shared_ptr<const MappedFile>& mapping() const { return mapping_; }

  // Opens the file and checks its header. Afterwards either status() is an
  // error, or header_ok(), or the file yields no records (tolerated damage).
  void Open();

  bool Next(Record* record);

  const absl::Status& status() const { return status_; }
  const FileHeader& header() const { return header_; }
  bool header_ok() const { return header_ok_; }
  const ReadReport& report() const { return report_; }
  const std::string& path() const { return path_; }
  // The LSN a record following this file's last one would have (valid when
  // header_ok()).
  uint64_t next_lsn() const { return expected_; }
  // Salvage read records behind a damaged header (see RescueRecords): the
  // header's fields come from its raw bytes, and it has no schema.
  bool header_rescued() const { return header_rescued_; }

  // Evidence against a torn create (LogReaderOptions): a damaged header of
  // a file larger than `max_header_bytes` (0: unknown), or of a file known
  // to have been synced, is corruption even in the last segment. Before
  // Open().
  void SetCreateEvidence(uint64_t max_header_bytes, bool synced) {
    if (max_header_bytes != 0) max_header_bytes_ = max_header_bytes;
    known_synced_ = synced;
  }

  // Before the first Next(): if an intact frame of this file carrying `lsn`
  // starts at `offset`, moves past it (the records before it are never read)
  // and returns the bytes skipped; otherwise stays at the first record and
  // returns 0. An I/O error while looking stops the scanner (status()).
  uint64_t SkipPast(uint64_t offset, uint64_t lsn);

 private:
  // Makes bytes [off, off + n) available; off + n must be <= file_size_.
  // nullptr after an I/O error (recorded in status_).
  const char* Fill(uint64_t off, size_t n, size_t min_read = kChunkSize);
  void IoError(const absl::Status& s);
  void HeaderDamage(Problem::Kind kind, const std::string& detail);
  // Classifies a header that did not decode (other than a version mismatch);
  // `p` points at the first bytes of the file.
  void ClassifyBadHeader(HeaderStatus hs, const char* p,
                         const std::string& decode_detail);
  // True if something at an aligned offset past the fixed header could be a
  // record frame (judged without the salt, which a bad header cannot give).
  bool HasPlausibleFrame();
  FrameError CheckFrame(uint64_t off, RecordHeader* h);
  std::string DescribeFrameError(FrameError e, uint64_t off,
                                 const RecordHeader& h) const;
  // Handles a bad frame at `off`: classifies it, reports it and either stops
  // (false) or moves pos_ to the next valid frame (true, salvage only).
  bool HandleDamage(uint64_t off, const std::string& why);
  // Reports `bytes` at `off` as a torn tail (`detail` says why); in strict
  // mode also sets the DataLoss status that refuses to drop it.
  void TornTail(uint64_t off, uint64_t bytes, const std::string& detail);
  // Probes aligned offsets after `from` for an intact frame whose LSN could
  // follow `expected` given damage starting at `damage_start`. False if none
  // (or on an I/O error, then status_ is set).
  bool FindValidFrame(uint64_t from, uint64_t damage_start, uint64_t expected,
                      uint64_t* at, RecordHeader* h);
  // True if an intact frame carrying kRecordFlagAfterSync lies at or after
  // `off` (walking frames from there, resynchronizing over damage).
  bool SyncedFrameFollows(uint64_t off, uint64_t expected);
  // An intact frame at `off` (structure and hash; LSN not checked).
  bool IntactFrameAt(uint64_t off, RecordHeader* h);
  // Salvage, after a header reported as corrupt: if the header's salt bytes
  // survived, the first frame they verify is where the records start; reads
  // on from there (header_rescued()). Otherwise the file yields nothing.
  void RescueRecords();
  bool TailIsZero(uint64_t off);
  void AddProblem(Problem::Kind kind, uint64_t off, uint64_t bytes,
                  std::string detail) {
    Problem p;
    p.kind = kind;
    p.file = path_;
    p.offset = off;
    p.bytes = bytes;
    p.detail = std::move(detail);
    report_.problems.push_back(std::move(p));
  }
  absl::Status DamageError(absl::string_view what, uint64_t off, uint64_t bytes,
                           absl::string_view detail) const {
    return absl::DataLossError(
        absl::StrCat(path_, ": ", what, " at offset ", off, " (", bytes,
                     " bytes): ", detail, ". ", RepairAdvice(path_)));
  }

  FileSystem* const fs_;
  const std::string path_;
  const RecoveryMode mode_;
  const bool is_last_;

  std::unique_ptr<RandomAccessFile> file_;
  const bool map_ = false;
  std::shared_ptr<const MappedFile> mapping_;  // if mapped
  const char* mapped_ = nullptr;               // its bytes
  uint64_t file_size_ = 0;
  std::unique_ptr<char[]> buf_;
  size_t buf_cap_ = 0;
  uint64_t buf_off_ = 0;  // file offset of buf_[0]
  size_t buf_len_ = 0;

  absl::Status status_;
  bool done_ = true;
  bool header_ok_ = false;
  bool header_rescued_ = false;
  FileHeader header_;
  ReadReport report_;
  uint64_t pos_ = 0;       // offset of the next frame
  uint64_t expected_ = 0;  // LSN the next frame must carry
  uint64_t max_header_bytes_ = kFileHeaderFixedSize + kMaxSchemaSize;
  bool known_synced_ = false;
};

}  // namespace log
}  // namespace walstate

#endif  // WALSTATE_ENGINE_LOG_FILE_SCANNER_H_
