// FileScanner (file_scanner.h): opening a file, reading it buffered or
// mapped, and judging a header that does not decode.
#include "engine/log/file_scanner.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/log/format.h"

namespace walstate {
namespace log {

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
      TornTail(0, file_size_, detail);
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

}  // namespace log
}  // namespace walstate
