// FileScanner (file_scanner.h): what a bad frame is (a torn tail or
// corruption, from what follows it) and the scans salvage and repair rely
// on: resynchronizing past damage, finding synced frames after it, reading
// records behind a damaged header.
#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/log/file_scanner.h"
#include "engine/log/format.h"

namespace walstate {
namespace log {

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

void FileScanner::TornTail(uint64_t off, uint64_t bytes,
                           const std::string& detail) {
  AddProblem(Problem::Kind::kTornTail, off, bytes, detail);
  report_.torn_bytes += bytes;
  if (mode_ == RecoveryMode::kStrict) {
    status_ = absl::DataLossError(absl::StrCat(
        path_, ": torn tail at offset ", off, " (", bytes, " bytes): ", detail,
        "; strict recovery refuses to drop it (the default "
        "tolerate-torn-tail mode would). ",
        RepairAdvice(path_)));
  }
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
    done_ = true;
    TornTail(off, bytes, detail);
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
      TornTail(off, bytes, detail);
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

}  // namespace log
}  // namespace walstate
