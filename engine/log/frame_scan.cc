// FileScanner (file_scanner.h): decoding and checking frames, the start
// hint (SkipPast) and reading record after record (Next).
#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/log/file_scanner.h"
#include "engine/log/format.h"

namespace walstate {
namespace log {

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

}  // namespace log
}  // namespace walstate
