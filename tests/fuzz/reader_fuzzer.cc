// Fuzzes the record reader (engine/log/reader.h). The input is one file's
// bytes. It is read as a log segment with FileReader in every recovery mode,
// as the last file and as an earlier one, and through LogReader on a
// directory holding it; then the same again with checksums fixed
// (fuzz_util.h). Damage of any kind must give a status, never a crash, a
// hang or a huge allocation, and the modes must agree with each other.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/log/format.h"
#include "engine/log/reader.h"
#include "tests/fs/fault_injection_fs.h"
#include "tests/fuzz/fuzz_util.h"
#include "walstate/file_system.h"

namespace walstate {
namespace fuzz {
namespace {

using log::Problem;
using log::RecoveryMode;

struct Rec {
  uint64_t lsn;
  uint8_t type;
  uint64_t offset;
  std::string payload;
  bool operator==(const Rec& o) const {
    return lsn == o.lsn && type == o.type && offset == o.offset &&
           payload == o.payload;
  }
};

struct Outcome {
  bool opened = false;
  bool segment_header = false;  // a valid header of a log segment
  absl::Status status;
  std::vector<Rec> records;
};

bool IsPrefix(const std::vector<Rec>& a, const std::vector<Rec>& b) {
  if (a.size() > b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!(a[i] == b[i])) return false;
  }
  return true;
}

// The status codes damage may produce.
bool IsDamageCode(absl::StatusCode code) {
  return code == absl::StatusCode::kDataLoss ||
         code == absl::StatusCode::kFailedPrecondition;
}

std::string Where(RecoveryMode mode, bool is_last) {
  return absl::StrCat("mode ", log::RecoveryModeName(mode), ", is_last ",
                      is_last);
}

Outcome ReadFile(FileSystem* fs, const std::string& path, uint64_t size,
                 RecoveryMode mode, bool is_last) {
  Outcome out;
  auto reader = log::FileReader::Open(fs, path, mode, is_last);
  if (!reader.ok()) {
    out.status = reader.status();
    FUZZ_CHECK(IsDamageCode(out.status.code()), out.status.ToString());
    return out;
  }
  out.opened = true;
  log::FileReader& r = **reader;
  const bool header_ok = r.header_ok();
  out.segment_header = header_ok && r.header().kind == log::FileKind::kSegment;
  // Every frame is at least a record header long, so this bounds the loop.
  const uint64_t max_records = size / log::kRecordHeaderSize + 1;
  log::Record rec;
  uint64_t prev_end = header_ok ? r.header().header_size : 0;
  while (r.Next(&rec)) {
    FUZZ_CHECK(header_ok, Where(mode, is_last));
    FUZZ_CHECK(out.records.size() < max_records, Where(mode, is_last));
    FUZZ_CHECK(rec.offset >= prev_end && rec.offset % log::kAlignment == 0,
               absl::StrCat(Where(mode, is_last), " offset ", rec.offset));
    FUZZ_CHECK(rec.framed_size == log::FramedSize(rec.payload.size()));
    FUZZ_CHECK(rec.offset + rec.framed_size <= size);
    FUZZ_CHECK(rec.type != log::kInvalid);
    FUZZ_CHECK(rec.file == path);
    if (out.records.empty()) {
      if (mode != RecoveryMode::kSalvage) {
        FUZZ_CHECK(rec.lsn == r.header().first_lsn, Where(mode, is_last));
      }
    } else if (mode == RecoveryMode::kSalvage) {
      FUZZ_CHECK(rec.lsn > out.records.back().lsn, Where(mode, is_last));
    } else {
      FUZZ_CHECK(rec.lsn == out.records.back().lsn + 1, Where(mode, is_last));
    }
    prev_end = rec.offset + rec.framed_size;
    out.records.push_back(
        {rec.lsn, rec.type, rec.offset, std::string(rec.payload)});
  }
  out.status = r.status();
  const log::ReadReport& report = r.report();
  FUZZ_CHECK(report.records == out.records.size(), Where(mode, is_last));
  FUZZ_CHECK(report.bytes == size);
  if (!out.records.empty()) {
    FUZZ_CHECK(report.first_lsn == out.records.front().lsn);
    FUZZ_CHECK(report.last_lsn == out.records.back().lsn);
  }
  FUZZ_CHECK(report.last_good_offset <= size);
  uint64_t torn = 0;
  for (const Problem& p : report.problems) {
    FUZZ_CHECK(p.file == path);
    FUZZ_CHECK(p.offset <= size && p.bytes <= size - p.offset,
               absl::StrCat(Where(mode, is_last), " problem at ", p.offset,
                            " of ", p.bytes, " bytes: ", p.detail));
    if (p.kind == Problem::Kind::kTornTail) {
      // Only the last file has a torn tail, and it runs to the end.
      FUZZ_CHECK(is_last, p.detail);
      FUZZ_CHECK(p.offset + p.bytes == size, p.detail);
      torn += p.bytes;
    }
  }
  FUZZ_CHECK(report.torn_bytes == torn);
  if (!out.status.ok()) {
    FUZZ_CHECK(IsDamageCode(out.status.code()), out.status.ToString());
    FUZZ_CHECK(!report.problems.empty(), out.status.ToString());
  } else if (mode == RecoveryMode::kStrict) {
    FUZZ_CHECK(report.problems.empty(), report.problems.front().detail);
  } else if (mode == RecoveryMode::kTolerateTornTail) {
    FUZZ_CHECK(!report.has_corruption(), report.problems.front().detail);
  }
  // Next() after the end stays at the end.
  FUZZ_CHECK(!r.Next(&rec));
  return out;
}

Outcome ReadDir(FileSystem* fs, const std::string& dir, RecoveryMode mode,
                uint64_t start_lsn) {
  Outcome out;
  log::LogReaderOptions options;
  options.fs = fs;
  options.dir = dir;
  options.mode = mode;
  options.start_lsn = start_lsn;
  auto reader = log::LogReader::Open(options);
  FUZZ_CHECK(reader.ok(), reader.status().ToString());
  out.opened = true;
  log::Record rec;
  while ((*reader)->Next(&rec)) {
    out.records.push_back(
        {rec.lsn, rec.type, rec.offset, std::string(rec.payload)});
  }
  out.status = (*reader)->status();
  if (!out.status.ok()) {
    FUZZ_CHECK(IsDamageCode(out.status.code()), out.status.ToString());
  }
  FUZZ_CHECK((*reader)->report().records == out.records.size());
  return out;
}

void Check(absl::string_view data) {
  const std::string dir = "/d";
  FaultInjectionFileSystem fs;
  FUZZ_CHECK(fs.CreateDirs(dir).ok());
  // Named the way the engine names the segment it describes, so that a real
  // segment reads cleanly through LogReader as well.
  const std::string path = JoinPath(
      dir, log::SegmentFileName(HeaderFileNumber(data, /*fallback=*/1)));
  FUZZ_CHECK(fs.WriteFileBytes(path, data).ok());

  Outcome file[3][2];  // [mode][is_last]
  for (int m = 0; m < 3; ++m) {
    for (int last = 0; last < 2; ++last) {
      file[m][last] = ReadFile(&fs, path, data.size(), kModes[m], last == 1);
    }
  }
  // Whether the file is the last one changes how damage is classified:
  // strict and tolerant modes read the same records either way (both stop at
  // the damage); salvage may stop at a torn tail of the last file where it
  // skips the same damage in an earlier file and reads on.
  for (int m = 0; m < 2; ++m) {
    FUZZ_CHECK(file[m][0].records.size() == file[m][1].records.size() &&
               IsPrefix(file[m][0].records, file[m][1].records));
  }
  FUZZ_CHECK(IsPrefix(file[2][1].records, file[2][0].records));
  // Before the first damage every mode reads the same records; strict and
  // tolerant stop there, salvage may go on.
  for (int last = 0; last < 2; ++last) {
    FUZZ_CHECK(file[0][last].records.size() == file[1][last].records.size() &&
               IsPrefix(file[0][last].records, file[1][last].records));
    FUZZ_CHECK(IsPrefix(file[1][last].records, file[2][last].records));
    // What strict accepts, the others accept; what tolerant accepts, salvage
    // accepts.
    if (file[0][last].opened && file[0][last].status.ok()) {
      FUZZ_CHECK(file[1][last].status.ok() && file[2][last].status.ok());
    }
    if (file[1][last].opened && file[1][last].status.ok()) {
      FUZZ_CHECK(file[2][last].status.ok());
      FUZZ_CHECK(file[2][last].records.size() == file[1][last].records.size());
    }
  }

  // The same file as the only segment of a directory reads like the last
  // file (if its header says it is that segment); records before start_lsn
  // are skipped.
  for (int m = 0; m < 3; ++m) {
    const Outcome& single = file[m][1];
    Outcome all = ReadDir(&fs, dir, kModes[m], 0);
    if (single.segment_header) {
      FUZZ_CHECK(
          all.status.ok() == single.status.ok(),
          absl::StrCat(Where(kModes[m], true), ": ", all.status.ToString(),
                       " vs ", single.status.ToString()));
      FUZZ_CHECK(all.records.size() == single.records.size() &&
                     IsPrefix(all.records, single.records),
                 Where(kModes[m], true));
    } else {
      FUZZ_CHECK(IsPrefix(all.records, single.records), Where(kModes[m], true));
    }
    if (!single.records.empty()) {
      const uint64_t start = single.records.front().lsn + 1;
      Outcome later = ReadDir(&fs, dir, kModes[m], start);
      for (const Rec& r : later.records) FUZZ_CHECK(r.lsn >= start);
      FUZZ_CHECK(later.records.size() <= all.records.size());
    }
  }
}

}  // namespace
}  // namespace fuzz
}  // namespace walstate

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using walstate::fuzz::Check;
  using walstate::fuzz::FixChecksums;
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  Check(input);
  const std::string fixed = FixChecksums(input);
  if (fixed != input) Check(fixed);
  return 0;
}
