#include "engine/log/reader.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace walstate {
namespace log {

bool ReadReport::has_torn_tail() const {
  for (const Problem& p : problems) {
    if (p.kind == Problem::Kind::kTornTail) return true;
  }
  return false;
}

bool ReadReport::has_corruption() const {
  for (const Problem& p : problems) {
    if (p.kind != Problem::Kind::kTornTail) return true;
  }
  return false;
}

namespace {

// Records are read in chunks of this size (more for larger records).
constexpr size_t kChunkSize = 1u << 20;
// The first read of a file: enough for a header with a modest schema, small
// enough that opening a segment only to read its header stays cheap.
constexpr size_t kHeaderReadSize = 4096;
// How far ahead of a mapped scan its next page is prefetched.
constexpr uint64_t kMappedPrefetchBytes = 8192;

bool IsKnownType(uint8_t type) {
  switch (type) {
    case kUpdate:
    case kDelete:
    case kTickBegin:
    case kTickEntry:
    case kTickCommit:
    case kTickAbort:
    case kSnapshotSession:
    case kSnapshotEnd:
    case kManifest:
      return true;
    default:
      return IsOptionalType(type);
  }
}

std::string DirOf(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string RepairAdvice(const std::string& path) {
  const std::string dir = DirOf(path);
  return absl::StrCat("Run `walctl verify ", dir, "`; `walctl repair ", dir,
                      " --fix --salvage` drops damaged records after backing "
                      "up.");
}

bool AllZero(const char* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

const char* FileKindName(FileKind kind) {
  switch (kind) {
    case FileKind::kSegment:
      return "log segment";
    case FileKind::kSnapshot:
      return "snapshot";
    case FileKind::kManifest:
      return "manifest";
  }
  return "file";
}

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

}  // namespace

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

const char* FileScanner::Fill(uint64_t off, size_t n, size_t min_read) {
  if (mapped_ != nullptr) {
    // Everything is there already; file_size_ is the mapping's.
    if (off > file_size_ || n > file_size_ - off) {
      IoError(absl::DataLossError(
          absl::StrCat(path_, ": read past the end (offset ", off, ", ", n,
                       " bytes of ", file_size_, ")")));
      return nullptr;
    }
    // The page after next on its way: the scan is sequential, but the
    // hardware's prefetchers stop at each 4 KiB page, whose first touch is
    // then a TLB miss and a cache miss the scan would wait for.
    const uint64_t ahead = off + kMappedPrefetchBytes;
    if (ahead < file_size_) __builtin_prefetch(mapped_ + ahead);
    return mapped_ + off;
  }
  if (off >= buf_off_ && off + n <= buf_off_ + buf_len_) {
    return buf_.get() + (off - buf_off_);
  }
  const size_t want = static_cast<size_t>(
      std::min<uint64_t>(std::max(n, min_read), file_size_ - off));
  size_t keep = 0;
  if (off >= buf_off_ && off < buf_off_ + buf_len_) {
    keep = static_cast<size_t>(buf_off_ + buf_len_ - off);
  }
  if (want > buf_cap_) {
    std::unique_ptr<char[]> bigger(new char[want]);
    if (keep > 0)
      std::memcpy(bigger.get(), buf_.get() + (off - buf_off_), keep);
    buf_ = std::move(bigger);
    buf_cap_ = want;
  } else if (keep > 0 && off != buf_off_) {
    std::memmove(buf_.get(), buf_.get() + (off - buf_off_), keep);
  }
  buf_off_ = off;
  buf_len_ = keep;
  char* dst = buf_.get() + keep;
  absl::StatusOr<absl::string_view> got =
      file_->Read(off + keep, want - keep, dst);
  if (!got.ok()) {
    IoError(got.status());
    return nullptr;
  }
  if (got->data() != dst && !got->empty()) {
    std::memmove(dst, got->data(), got->size());
  }
  buf_len_ = keep + got->size();
  if (buf_len_ < n) {
    IoError(absl::DataLossError(
        absl::StrCat(path_, ": file shrank while being read (", off + buf_len_,
                     " bytes, expected ", file_size_, ")")));
    return nullptr;
  }
  return buf_.get();
}

void FileScanner::IoError(const absl::Status& s) {
  AddProblem(Problem::Kind::kUnreadable, pos_, 0, std::string(s.message()));
  if (status_.ok()) status_ = s;
  done_ = true;
}

void FileScanner::HeaderDamage(Problem::Kind kind, const std::string& detail) {
  done_ = true;
  report_.last_good_offset = 0;
  switch (kind) {
    case Problem::Kind::kTornTail:  // only for the last file
      AddProblem(kind, 0, file_size_, detail);
      report_.torn_bytes += file_size_;
      if (mode_ == RecoveryMode::kStrict) {
        status_ = absl::DataLossError(absl::StrCat(
            path_, ": torn tail at offset 0 (", file_size_, " bytes): ", detail,
            "; strict recovery refuses to drop it (the default "
            "tolerate-torn-tail mode would). ",
            RepairAdvice(path_)));
      }
      return;
    case Problem::Kind::kCorruption:
      AddProblem(kind, 0, file_size_, detail);
      if (mode_ != RecoveryMode::kSalvage) {
        status_ = DamageError("corrupt file header", 0, file_size_, detail);
        return;
      }
      RescueRecords();
      return;
    case Problem::Kind::kForeignFile:
      AddProblem(kind, 0, file_size_, detail);
      if (mode_ != RecoveryMode::kSalvage) {
        status_ = absl::FailedPreconditionError(absl::StrCat(
            path_, ": ", detail,
            "; its name looks like walstate's but its contents are not. Move "
            "it out of the directory."));
      }
      return;
    case Problem::Kind::kUnreadable:
      AddProblem(kind, 0, file_size_, detail);
      status_ =
          absl::FailedPreconditionError(absl::StrCat(path_, ": ", detail));
      return;
  }
}

void FileScanner::Open() {
  report_.files = 1;
  report_.last_good_file = path_;
  auto file =
      map_ ? fs_->NewMappedFile(path_) : fs_->NewRandomAccessFile(path_);
  if (!file.ok()) {
    IoError(file.status());
    return;
  }
  file_ = std::move(*file);
  mapping_ = file_->mapping();
  if (mapping_ != nullptr) mapped_ = mapping_->data().data();
  auto size = file_->Size();
  if (!size.ok()) {
    IoError(size.status());
    return;
  }
  file_size_ = *size;
  report_.bytes = file_size_;
  if (file_size_ == 0) {
    if (is_last_ && !known_synced_) {
      HeaderDamage(Problem::Kind::kTornTail, "empty file (no header)");
    } else if (is_last_) {
      HeaderDamage(Problem::Kind::kCorruption,
                   "empty file (no header), but the MANIFEST places a "
                   "snapshot's records in it, so it had been synced: not a "
                   "torn write");
    } else {
      HeaderDamage(Problem::Kind::kCorruption,
                   "empty file (no header), and not the last log segment, "
                   "so not a torn write");
    }
    return;
  }

  size_t avail = static_cast<size_t>(std::min<uint64_t>(file_size_, 64));
  const char* p = Fill(0, avail, kHeaderReadSize);
  if (p == nullptr) return;
  // What the read brought in (Fill reads at least kHeaderReadSize if there).
  avail =
      mapped_ != nullptr
          ? static_cast<size_t>(std::min<uint64_t>(file_size_, kHeaderReadSize))
          : buf_len_;
  std::string detail;
  HeaderStatus hs =
      DecodeFileHeader(absl::string_view(p, avail), &header_, &detail);
  if (hs == HeaderStatus::kTooShort && avail >= kFileHeaderFixedSize &&
      avail < file_size_) {
    // A schema larger than the first read: read the whole header.
    uint32_t header_size = 0;
    for (int i = 3; i >= 0; --i) {
      header_size = (header_size << 8) | static_cast<uint8_t>(p[12 + i]);
    }
    avail = static_cast<size_t>(std::min<uint64_t>(file_size_, header_size));
    p = Fill(0, avail);
    if (p == nullptr) return;
    hs = DecodeFileHeader(absl::string_view(p, avail), &header_, &detail);
  }

  if (hs == HeaderStatus::kOk) {
    header_ok_ = true;
    done_ = false;
    pos_ = header_.header_size;
    expected_ = header_.first_lsn;
    report_.last_good_offset = pos_;
    return;
  }
  if (hs == HeaderStatus::kBadVersion) {
    HeaderDamage(Problem::Kind::kUnreadable, detail);
    return;
  }
  ClassifyBadHeader(hs, p, detail);
}

bool FileScanner::HasPlausibleFrame() {
  // Frames start at or after offset 64, at multiples of 8. A header can be at
  // most 64 + kMaxSchemaSize bytes, so a frame starts within that range.
  const uint64_t limit = std::min<uint64_t>(
      file_size_, kFileHeaderFixedSize + kMaxSchemaSize + kRecordHeaderSize);
  for (uint64_t off = kFileHeaderFixedSize; off + kRecordHeaderSize <= limit;
       off += kAlignment) {
    const char* p = Fill(off, kRecordHeaderSize);
    if (p == nullptr) return true;  // unreadable: assume the worst
    RecordHeader h = DecodeRecordHeader(p);
    if (h.type != kInvalid && (h.flags & ~kKnownRecordFlags) == 0 &&
        h.reserved == 0 && h.lsn != 0 && h.length <= kMaxRecordSize &&
        FramedSize(h.length) <= file_size_ - off) {
      return true;
    }
  }
  return false;
}

void FileScanner::ClassifyBadHeader(HeaderStatus hs, const char* p,
                                    const std::string& decode_detail) {
  const size_t head = static_cast<size_t>(std::min<uint64_t>(file_size_, 64));
  const bool zero = AllZero(p, head);
  const bool magic_prefix =
      std::memcmp(p, kMagic, std::min<size_t>(head, sizeof(kMagic))) == 0;
  std::string detail;
  if (zero) {
    detail = "zero-filled file header";
  } else if (!magic_prefix) {
    detail = "not a walstate file (bad magic)";
  } else if (hs == HeaderStatus::kTooShort) {
    detail = absl::StrCat("incomplete file header: ", decode_detail);
  } else {
    detail = absl::StrCat("damaged file header: ", decode_detail);
  }

  // The writer makes a segment's header durable before it writes any record
  // into the file. So a last segment holding no more than a header could
  // and nothing that looks like a record frame is a create the crash
  // interrupted, whatever its bytes (torn sectors may hold garbage).
  // A file larger than the store's header, or one a snapshot's records
  // are known to be in, held synced records: then however empty it looks
  // (zero-filled by a failing disk or a careless `dd`), it is damage, kept
  // for the operator, never dropped as an interrupted create.
  const bool header_sized = file_size_ <= max_header_bytes_;
  const bool any_size = file_size_ <= kFileHeaderFixedSize + kMaxSchemaSize;
  if (is_last_ && header_sized && !known_synced_ && !HasPlausibleFrame()) {
    if (!status_.ok()) return;  // I/O error while looking
    HeaderDamage(Problem::Kind::kTornTail,
                 absl::StrCat(detail,
                              ", and nothing in the file looks like a record: "
                              "its creation was interrupted"));
    return;
  }
  if (!status_.ok()) return;
  if (is_last_ && !zero && !magic_prefix && any_size && !HasPlausibleFrame()) {
    // A small frame-free file with a foreign magic: a torn create cannot be
    // told from another program's file here; foreign, as below.
    HeaderDamage(Problem::Kind::kForeignFile, detail);
    return;
  }
  if (is_last_ && (zero || magic_prefix)) {
    HeaderDamage(
        Problem::Kind::kCorruption,
        absl::StrCat(
            detail,
            known_synced_
                ? ", but the MANIFEST places a snapshot's records in this "
                  "segment, so it had been synced: not an interrupted create"
                : absl::StrCat(", but the file has ", file_size_,
                               " bytes, more than the store's file header (",
                               max_header_bytes_,
                               "), so records had been written and synced "
                               "in it: not an interrupted create")));
    return;
  }
  const bool header_sized_any = any_size;
  if (!zero && !magic_prefix && (!HasPlausibleFrame() || !header_sized_any)) {
    HeaderDamage(Problem::Kind::kForeignFile, detail);
    return;
  }
  HeaderDamage(Problem::Kind::kCorruption,
               is_last_ ? absl::StrCat(detail, ", and records may follow it")
                        : absl::StrCat(detail,
                                       ", and not the last log segment, so "
                                       "not a torn write"));
}

uint64_t FileScanner::SkipPast(uint64_t offset, uint64_t lsn) {
  if (done_ || !header_ok_ || pos_ != header_.header_size || offset < pos_ ||
      offset >= file_size_) {
    return 0;
  }
  // The frame's hash covers its LSN and this file's salt: a stale or wrong
  // offset cannot pass for the record.
  const uint64_t first = expected_;
  expected_ = lsn;
  RecordHeader h;
  if (CheckFrame(offset, &h) != FrameError::kNone) {
    expected_ = first;
    return 0;
  }
  const uint64_t skipped = offset - pos_;
  pos_ = offset + FramedSize(h.length);
  expected_ = lsn + 1;
  report_.last_good_offset = pos_;
  return skipped;
}

FrameError FileScanner::CheckFrame(uint64_t off, RecordHeader* h) {
  const uint64_t remaining = file_size_ - off;
  if (remaining < kRecordHeaderSize) return FrameError::kPartialHeader;
  const char* p = Fill(off, kRecordHeaderSize);
  if (p == nullptr) return FrameError::kIo;
  *h = DecodeRecordHeader(p);
  if (h->type == kInvalid) return FrameError::kZeroType;
  if ((h->flags & ~kKnownRecordFlags) != 0 || h->reserved != 0) {
    return FrameError::kReservedBits;
  }
  if (h->length > kMaxRecordSize) return FrameError::kTooLong;
  const uint64_t framed = FramedSize(h->length);
  if (framed > remaining) return FrameError::kPastEnd;
  p = Fill(off, static_cast<size_t>(framed));
  if (p == nullptr) return FrameError::kIo;
  if (!RecordHashMatches(header_.salt,
                         absl::string_view(p, static_cast<size_t>(framed)))) {
    return FrameError::kChecksum;
  }
  if (h->lsn != expected_) return FrameError::kLsn;
  return FrameError::kNone;
}

std::string FileScanner::DescribeFrameError(FrameError e, uint64_t off,
                                            const RecordHeader& h) const {
  switch (e) {
    case FrameError::kNone:
    case FrameError::kIo:
      return "";
    case FrameError::kPartialHeader:
      return absl::StrCat("only ", file_size_ - off,
                          " bytes left, fewer than a record header (",
                          kRecordHeaderSize, ")");
    case FrameError::kZeroType:
      return "record type 0 (zero-filled or never-written space)";
    case FrameError::kReservedBits:
      return absl::StrFormat(
          "reserved record header bits set (flags 0x%02x, reserved 0x%04x)",
          h.flags, h.reserved);
    case FrameError::kTooLong:
      return absl::StrCat("record length ", h.length,
                          " exceeds the maximum of ", kMaxRecordSize);
    case FrameError::kPastEnd:
      return absl::StrCat("record length ", h.length,
                          " runs past the end of the file (",
                          file_size_ - off - kRecordHeaderSize,
                          " bytes left after the record header)");
    case FrameError::kChecksum:
      return absl::StrCat("checksum mismatch (header claims ",
                          RecordTypeName(h.type), ", length ", h.length,
                          ", LSN ", h.lsn, ")");
    case FrameError::kLsn:
      return absl::StrCat("record LSN ", h.lsn, " out of sequence (expected ",
                          expected_, ")");
  }
  return "";
}

bool FileScanner::TailIsZero(uint64_t off) {
  while (off < file_size_) {
    const size_t n =
        static_cast<size_t>(std::min<uint64_t>(file_size_ - off, kChunkSize));
    const char* p = Fill(off, n);
    if (p == nullptr) return false;
    if (!AllZero(p, n)) return false;
    off += n;
  }
  return true;
}

void FileScanner::RescueRecords() {
  if (file_size_ <= kFileHeaderFixedSize) return;
  const char* p = Fill(0, kFileHeaderFixedSize);
  if (p == nullptr) return;
  const FileHeader raw =
      RawFileHeaderFields(absl::string_view(p, kFileHeaderFixedSize));
  header_ = raw;
  // The first frame the salt verifies is the first record: a wrong salt
  // verifies nothing, so a find is genuine. Not the header's own
  // record-start field, which may be the damaged part and could point at a
  // later, equally genuine frame.
  const uint64_t limit = std::min<uint64_t>(
      file_size_, kFileHeaderFixedSize + kMaxSchemaSize + kRecordHeaderSize);
  RecordHeader h;
  uint64_t at = 0;
  bool found = false;
  for (uint64_t off = kFileHeaderFixedSize; !found && off < limit;
       off += kAlignment) {
    if (IntactFrameAt(off, &h)) {
      at = off;
      found = true;
    }
  }
  if (!found || !status_.ok()) return;
  if (!report_.problems.empty()) {
    Problem& header_damage = report_.problems.back();
    header_damage.bytes = at;
    absl::StrAppend(&header_damage.detail,
                    "; the records after it verify with the header's salt "
                    "and are kept, from offset ",
                    at, " (LSN ", h.lsn, ")");
  }
  header_.first_lsn = h.lsn;
  header_.header_size = at;
  header_.schema.clear();
  header_ok_ = true;
  header_rescued_ = true;
  done_ = false;
  pos_ = at;
  expected_ = h.lsn;
  report_.last_good_offset = at;
}

bool FileScanner::IntactFrameAt(uint64_t off, RecordHeader* h) {
  if (file_size_ - off < kRecordHeaderSize) return false;
  const char* p = Fill(off, kRecordHeaderSize);
  if (p == nullptr) return false;
  *h = DecodeRecordHeader(p);
  if (h->type == kInvalid || (h->flags & ~kKnownRecordFlags) != 0 ||
      h->reserved != 0 || h->length > kMaxRecordSize) {
    return false;
  }
  const uint64_t framed = FramedSize(h->length);
  if (framed > file_size_ - off) return false;
  p = Fill(off, static_cast<size_t>(framed));
  if (p == nullptr) return false;
  return RecordHashMatches(header_.salt,
                           absl::string_view(p, static_cast<size_t>(framed)));
}

bool FileScanner::FindValidFrame(uint64_t from, uint64_t damage_start,
                                 uint64_t expected, uint64_t* at,
                                 RecordHeader* found) {
  // Records cannot advance LSNs faster than one per 24 bytes.
  const uint64_t max_skip = (file_size_ - damage_start) / kRecordHeaderSize;
  for (uint64_t cand = from + kAlignment;
       cand + kRecordHeaderSize <= file_size_; cand += kAlignment) {
    const char* p = Fill(cand, kRecordHeaderSize);
    if (p == nullptr) return false;
    RecordHeader h = DecodeRecordHeader(p);
    // Cheap plausibility first; hash only what passes.
    if (h.type == kInvalid || (h.flags & ~kKnownRecordFlags) != 0 ||
        h.reserved != 0 || h.length > kMaxRecordSize ||
        FramedSize(h.length) > file_size_ - cand || h.lsn < expected ||
        h.lsn - expected >= max_skip) {
      continue;
    }
    if (IntactFrameAt(cand, &h)) {
      *at = cand;
      *found = h;
      return true;
    }
    if (!status_.ok()) return false;
  }
  return false;
}

bool FileScanner::SyncedFrameFollows(uint64_t off, uint64_t expected) {
  while (off < file_size_) {
    RecordHeader h;
    if (IntactFrameAt(off, &h) && h.lsn >= expected) {
      if (h.flags & kRecordFlagAfterSync) return true;
      off += FramedSize(h.length);
      expected = h.lsn + 1;
      continue;
    }
    if (!status_.ok()) return true;  // cannot tell: assume the worse case
    uint64_t next;
    if (!FindValidFrame(off, off, expected, &next, &h)) return !status_.ok();
    off = next;
  }
  return false;
}

bool FileScanner::HandleDamage(uint64_t off, const std::string& why) {
  // Resynchronize: probe every aligned offset after the bad frame for a frame
  // that is structurally sound, carries a plausible LSN and hashes correctly.
  uint64_t next = 0;
  RecordHeader nh;
  const bool found = FindValidFrame(off, off, expected_, &next, &nh);
  if (!status_.ok()) return false;

  // In the last segment, intact records after the damage prove it is not the
  // end of a torn write only if one of them was written after an fdatasync:
  // then every byte before it, the damaged ones included, had been durable.
  // Otherwise all of it may be the unsynced end of the log, whose sectors a
  // crash may keep, drop or garble in any order.
  if (found && is_last_ && !(nh.flags & kRecordFlagAfterSync) &&
      !SyncedFrameFollows(next + FramedSize(nh.length), nh.lsn + 1)) {
    if (!status_.ok()) return false;
    const uint64_t bytes = file_size_ - off;
    std::string detail = absl::StrCat(
        why, "; intact records follow from offset ", next, " (LSN ", nh.lsn,
        "), but none was written after an fdatasync, so this is the unsynced "
        "end of the log, which a crash may tear anywhere");
    AddProblem(Problem::Kind::kTornTail, off, bytes, detail);
    report_.torn_bytes += bytes;
    done_ = true;
    if (mode_ == RecoveryMode::kStrict) {
      status_ = absl::DataLossError(
          absl::StrCat(path_, ": torn tail at offset ", off, " (", bytes,
                       " bytes): ", detail,
                       "; strict recovery refuses to drop it (the default "
                       "tolerate-torn-tail mode would). ",
                       RepairAdvice(path_)));
    }
    return false;
  }

  if (!found) {
    const uint64_t bytes = file_size_ - off;
    const bool zeros = TailIsZero(off);
    if (!status_.ok()) return false;  // I/O error while checking
    std::string detail = why;
    if (zeros) absl::StrAppend(&detail, "; the rest of the file is zeros");
    absl::StrAppend(&detail, "; no valid record follows");
    done_ = true;
    if (is_last_) {
      AddProblem(Problem::Kind::kTornTail, off, bytes, detail);
      report_.torn_bytes += bytes;
      if (mode_ == RecoveryMode::kStrict) {
        status_ = absl::DataLossError(
            absl::StrCat(path_, ": torn tail at offset ", off, " (", bytes,
                         " bytes): ", detail,
                         "; strict recovery refuses to drop it (the default "
                         "tolerate-torn-tail mode would). ",
                         RepairAdvice(path_)));
      }
      return false;
    }
    absl::StrAppend(
        &detail,
        " in this file, and it is not the last log segment, so this is "
        "not a torn write");
    AddProblem(Problem::Kind::kCorruption, off, bytes, detail);
    if (mode_ != RecoveryMode::kSalvage) {
      status_ = DamageError("corruption", off, bytes, detail);
    }
    return false;
  }

  const uint64_t bytes = next - off;
  std::string detail =
      absl::StrCat(why, "; a valid record follows at offset ", next, " (LSN ",
                   nh.lsn, "), so this is not a torn tail");
  if (nh.lsn > expected_) {
    absl::StrAppend(&detail, "; LSNs ", expected_, "..", nh.lsn - 1,
                    " are lost");
  }
  AddProblem(Problem::Kind::kCorruption, off, bytes, detail);
  if (mode_ != RecoveryMode::kSalvage) {
    status_ = DamageError("corruption", off, bytes, detail);
    done_ = true;
    return false;
  }
  pos_ = next;
  expected_ = nh.lsn;
  return true;
}

bool FileScanner::Next(Record* record) {
  while (!done_) {
    if (pos_ >= file_size_) {
      done_ = true;
      return false;
    }
    RecordHeader h;
    FrameError e = CheckFrame(pos_, &h);
    if (e == FrameError::kIo) return false;
    if (e == FrameError::kLsn) {
      // An intact frame with the wrong LSN is never what a crash leaves, so
      // it is corruption wherever it is, even at the end of the last file.
      const uint64_t framed = FramedSize(h.length);
      std::string detail = DescribeFrameError(e, pos_, h);
      if (h.lsn > expected_) {
        absl::StrAppend(&detail, ": LSNs ", expected_, "..", h.lsn - 1,
                        " are lost");
      } else {
        absl::StrAppend(&detail, ": a repeated or misplaced record");
      }
      if (mode_ == RecoveryMode::kSalvage) {
        if (h.lsn > expected_) {
          // A frame ahead of the sequence is either a gap (records lost) or
          // an anomaly (a misdirected write of a later frame, a bumped
          // LSN). If the sequence it broke goes on after it, that is the
          // longer consistent one: skip this frame, not everything after.
          uint64_t next = 0;
          RecordHeader nh;
          if (FindValidFrame(pos_, pos_, expected_, &next, &nh) &&
              nh.lsn < h.lsn) {
            std::string skipped = absl::StrCat(
                DescribeFrameError(e, pos_, h),
                ": a misplaced frame (the sequence goes on at offset ", next,
                " with LSN ", nh.lsn, "); skipped ", next - pos_, " bytes");
            if (nh.lsn > expected_) {
              absl::StrAppend(&skipped, "; LSNs ", expected_, "..", nh.lsn - 1,
                              " are lost");
            }
            AddProblem(Problem::Kind::kCorruption, pos_, next - pos_, skipped);
            pos_ = next;
            expected_ = nh.lsn;
            continue;
          }
          if (!status_.ok()) return false;
          // Accept it: report the gap, keep reading in order from there.
          AddProblem(Problem::Kind::kCorruption, pos_, 0, detail);
          expected_ = h.lsn;
        } else {
          AddProblem(Problem::Kind::kCorruption, pos_, framed, detail);
          pos_ += framed;  // skip the stale record
        }
        continue;
      }
      AddProblem(Problem::Kind::kCorruption, pos_, framed, detail);
      status_ = DamageError("corruption", pos_, framed, detail);
      done_ = true;
      return false;
    }
    if (e != FrameError::kNone) {
      if (!HandleDamage(pos_, DescribeFrameError(e, pos_, h))) return false;
      continue;
    }
    const uint64_t framed = FramedSize(h.length);
    if (report_.records > 0 && h.lsn <= report_.last_lsn) {
      // Only a record after LSN 2^64-1 gets here (the expected LSN wrapped
      // to 0): records must come out in increasing LSN order.
      std::string detail =
          absl::StrCat("record LSN ", h.lsn, " follows LSN ", report_.last_lsn,
                       " (the LSN sequence wrapped around)");
      AddProblem(Problem::Kind::kCorruption, pos_, framed, detail);
      if (mode_ == RecoveryMode::kSalvage) {
        pos_ += framed;
        continue;
      }
      status_ = DamageError("corruption", pos_, framed, detail);
      done_ = true;
      return false;
    }
    const uint64_t off = pos_;
    pos_ += framed;
    expected_ = h.lsn + 1;
    if (!IsKnownType(h.type)) {
      // An intact record this build cannot interpret and must not skip.
      std::string detail = absl::StrCat(
          "record LSN ", h.lsn, " has required type ", static_cast<int>(h.type),
          " unknown to this build (written by a newer walstate?)");
      AddProblem(Problem::Kind::kCorruption, off, framed, detail);
      report_.last_good_offset = pos_;
      if (mode_ == RecoveryMode::kSalvage) continue;
      status_ = absl::DataLossError(absl::StrCat(
          path_, ": unknown record type at offset ", off, " (", framed,
          " bytes): ", detail, ". Open it with the walstate that wrote it, or ",
          RepairAdvice(path_)));
      done_ = true;
      return false;
    }
    // Fill()ed by CheckFrame.
    const char* p =
        mapped_ != nullptr ? mapped_ + off : buf_.get() + (off - buf_off_);
    record->lsn = h.lsn;
    record->type = h.type;
    record->payload = absl::string_view(p + kRecordHeaderSize, h.length);
    record->file = path_;
    record->offset = off;
    record->framed_size = framed;
    report_.last_good_offset = pos_;
    if (report_.records == 0) report_.first_lsn = h.lsn;
    report_.last_lsn = h.lsn;
    report_.records++;
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------
// FileReader

class FileReader::Impl {
 public:
  Impl(FileSystem* fs, const std::string& path, RecoveryMode mode, bool is_last,
       bool map)
      : scanner(fs, path, mode, is_last, map) {}
  FileScanner scanner;
};

FileReader::FileReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FileReader::~FileReader() = default;

absl::StatusOr<std::unique_ptr<FileReader>> FileReader::Open(
    FileSystem* fs, const std::string& path, RecoveryMode mode, bool is_last,
    bool map) {
  auto impl = std::make_unique<Impl>(fs, path, mode, is_last, map);
  impl->scanner.Open();
  if (!impl->scanner.status().ok()) return impl->scanner.status();
  return std::unique_ptr<FileReader>(new FileReader(std::move(impl)));
}

bool FileReader::Next(Record* record) { return impl_->scanner.Next(record); }
std::shared_ptr<const MappedFile> FileReader::mapping() const {
  return impl_->scanner.mapping();
}
absl::Status FileReader::status() const { return impl_->scanner.status(); }
const FileHeader& FileReader::header() const { return impl_->scanner.header(); }
bool FileReader::header_ok() const { return impl_->scanner.header_ok(); }
const ReadReport& FileReader::report() const { return impl_->scanner.report(); }

// ---------------------------------------------------------------------------
// LogReader

class LogReader::Impl {
 public:
  explicit Impl(const LogReaderOptions& options) : options_(options) {}

  absl::Status Init();
  bool Next(Record* record);

  const LogReaderOptions options_;
  std::vector<std::string> paths_;
  std::vector<uint64_t> numbers_;
  absl::Status status_;
  ReadReport report_;
  std::string schema_;

 private:
  std::unique_ptr<FileScanner> OpenScanner(size_t i) {
    auto s = std::make_unique<FileScanner>(
        options_.fs, paths_[i], options_.mode, i + 1 == paths_.size());
    s->SetCreateEvidence(options_.max_header_bytes,
                         numbers_[i] <= options_.synced_segment);
    s->Open();
    return s;
  }
  // Opens the next segment to read records from; false when there is none or
  // reading must stop.
  bool OpenNextSegment();
  // Starts accounting for scanner `s` in report_ (a file being read).
  void Begin(const FileScanner& s);
  // Brings report_ up to date with what `s` found so far, so that problems
  // appear in report() as soon as Next() has passed them.
  void Update(const FileScanner& s);
  // Reports damage found between segments; false if reading must stop.
  bool SequenceProblem(const std::string& path, uint64_t offset,
                       std::string detail);

  size_t next_index_ = 0;
  std::unique_ptr<FileScanner> cur_;
  std::unique_ptr<FileScanner> peeked_;  // header of segment next_index_
  bool have_expected_ = false;
  uint64_t expected_first_ = 0;  // first LSN the next segment must have
  bool done_ = false;
  // The last segment read to its end, and where its last good frame ends.
  std::string prev_path_;
  uint64_t prev_end_ = 0;
  // How much of the current scanner's report is already in report_.
  size_t problems_taken_ = 0;
  uint64_t torn_taken_ = 0;
};

absl::Status LogReader::Impl::Init() {
  if (options_.fs == nullptr) {
    return absl::InvalidArgumentError("LogReader: options.fs is required");
  }
  auto names = options_.fs->ListDir(options_.dir);
  if (!names.ok()) return names.status();
  std::vector<std::pair<uint64_t, std::string>> segs;
  for (const std::string& name : *names) {
    uint64_t number;
    if (ParseSegmentFileName(name, &number)) segs.emplace_back(number, name);
  }
  std::sort(segs.begin(), segs.end());
  for (auto& [number, name] : segs) {
    numbers_.push_back(number);
    paths_.push_back(JoinPath(options_.dir, name));
  }
  return absl::OkStatus();
}

void LogReader::Impl::Begin(const FileScanner& s) {
  report_.files += 1;
  report_.bytes += s.report().bytes;
  report_.last_good_file = s.path();
  problems_taken_ = 0;
  torn_taken_ = 0;
  Update(s);
}

void LogReader::Impl::Update(const FileScanner& s) {
  const ReadReport& r = s.report();
  for (; problems_taken_ < r.problems.size(); ++problems_taken_) {
    report_.problems.push_back(r.problems[problems_taken_]);
  }
  report_.torn_bytes += r.torn_bytes - torn_taken_;
  torn_taken_ = r.torn_bytes;
  report_.last_good_offset = r.last_good_offset;
}

bool LogReader::Impl::SequenceProblem(const std::string& path, uint64_t offset,
                                      std::string detail) {
  Problem p;
  p.kind = Problem::Kind::kCorruption;
  p.file = path;
  p.offset = offset;
  p.detail = detail;
  report_.problems.push_back(std::move(p));
  if (options_.mode == RecoveryMode::kSalvage) return true;
  status_ =
      absl::DataLossError(absl::StrCat(path, ": corruption at offset ", offset,
                                       ": ", detail, ". ", RepairAdvice(path)));
  done_ = true;
  return false;
}

bool LogReader::Impl::OpenNextSegment() {
  while (next_index_ < paths_.size()) {
    const size_t i = next_index_++;
    const bool is_last = i + 1 == paths_.size();
    const std::string& path = paths_[i];
    std::unique_ptr<FileScanner> s =
        peeked_ != nullptr ? std::move(peeked_) : OpenScanner(i);
    if (i > 0 && numbers_[i] != numbers_[i - 1] + 1) {
      // Missing segments matter unless all they could hold is below
      // start_lsn (e.g. a crash while old segments were being deleted).
      const bool harmless = options_.start_lsn > 0 && s->header_ok() &&
                            s->header().first_lsn <= options_.start_lsn;
      if (!harmless &&
          !SequenceProblem(
              path, 0,
              absl::StrCat("log segments ", numbers_[i - 1] + 1, "..",
                           numbers_[i] - 1, " are missing (segment ",
                           numbers_[i - 1], " is followed by ", numbers_[i],
                           ")"))) {
        return false;
      }
      // Records of the missing segments are lost; do not also report the gap
      // in LSNs as a separate problem.
      have_expected_ = false;
    }
    if (!s->status().ok()) {
      Begin(*s);
      status_ = s->status();
      done_ = true;
      return false;
    }
    if (!s->header_ok()) {  // tolerated header damage: no records
      Begin(*s);
      continue;
    }
    const FileHeader& h = s->header();
    if (h.kind != FileKind::kSegment || h.file_number != numbers_[i]) {
      Begin(*s);
      if (!SequenceProblem(
              path, 0,
              absl::StrCat("file header describes ", FileKindName(h.kind), " ",
                           h.file_number, ", not log segment ", numbers_[i],
                           " (a renamed or misplaced file?)"))) {
        return false;
      }
      continue;  // salvage: its records do not belong here
    }
    if (have_expected_ && h.first_lsn != expected_first_) {
      // Records never span segments and a segment's first LSN is in its
      // header, so missing LSNs were at the end of the previous segment.
      const bool gap = h.first_lsn > expected_first_;
      const bool named_prev = gap && !prev_path_.empty();
      std::string detail =
          gap ? absl::StrCat("the log ends at LSN ", expected_first_ - 1,
                             named_prev ? absl::StrCat(" at offset ", prev_end_,
                                                       " of ", prev_path_)
                                        : std::string(),
                             " but the next segment ", path, " starts at LSN ",
                             h.first_lsn, ": LSNs ", expected_first_, "..",
                             h.first_lsn - 1,
                             " are missing (the end of the previous segment "
                             "was lost or cut off)")
              : absl::StrCat("segment starts at LSN ", h.first_lsn,
                             " but the log before it already reached LSN ",
                             expected_first_ - 1, " (overlapping segments)");
      if (!SequenceProblem(named_prev ? prev_path_ : path,
                           named_prev ? prev_end_ : 0, detail)) {
        return false;
      }
    }
    // A rescued header has no schema: keep the last one read intact.
    if (!s->header_rescued()) schema_ = h.schema;
    // Skip a whole segment when the next one starts at or before start_lsn:
    // none of its records is wanted, so it is not even read.
    if (options_.start_lsn > 0 && !is_last) {
      peeked_ = OpenScanner(i + 1);
      if (peeked_->status().ok() && peeked_->header_ok() &&
          peeked_->header().first_lsn <= options_.start_lsn) {
        prev_path_.clear();
        have_expected_ = true;
        expected_first_ = peeked_->header().first_lsn;
        continue;
      }
    }
    have_expected_ = true;
    expected_first_ = h.first_lsn;
    if (options_.start_hint_segment == numbers_[i] && options_.start_lsn > 1) {
      report_.skipped_bytes +=
          s->SkipPast(options_.start_hint_offset, options_.start_lsn - 1);
    }
    Begin(*s);
    cur_ = std::move(s);
    return true;
  }
  done_ = true;
  return false;
}

bool LogReader::Impl::Next(Record* record) {
  while (!done_) {
    if (cur_ == nullptr) {
      if (!OpenNextSegment()) return false;
    }
    if (cur_->Next(record)) {
      Update(*cur_);
      if (record->lsn < options_.start_lsn) continue;
      if (report_.records > 0 && record->lsn <= report_.last_lsn) {
        continue;  // salvage of overlapping segments: already returned
      }
      if (report_.records == 0) report_.first_lsn = record->lsn;
      report_.last_lsn = record->lsn;
      report_.records++;
      return true;
    }
    Update(*cur_);
    if (!cur_->status().ok()) {
      status_ = cur_->status();
      done_ = true;
      cur_.reset();
      return false;
    }
    expected_first_ = cur_->next_lsn();
    prev_path_ = cur_->path();
    prev_end_ = cur_->report().last_good_offset;
    cur_.reset();
  }
  return false;
}

LogReader::LogReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LogReader::~LogReader() = default;

absl::StatusOr<std::unique_ptr<LogReader>> LogReader::Open(
    const LogReaderOptions& options) {
  auto impl = std::make_unique<Impl>(options);
  absl::Status s = impl->Init();
  if (!s.ok()) return s;
  return std::unique_ptr<LogReader>(new LogReader(std::move(impl)));
}

bool LogReader::Next(Record* record) { return impl_->Next(record); }
absl::Status LogReader::status() const { return impl_->status_; }
const ReadReport& LogReader::report() const { return impl_->report_; }
const std::vector<std::string>& LogReader::segments() const {
  return impl_->paths_;
}
const std::string& LogReader::schema() const { return impl_->schema_; }

}  // namespace log
}  // namespace walstate
