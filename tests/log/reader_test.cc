// FileReader and LogReader: the classic damage cases, how each recovery mode
// treats them, directory-level sequence checks and start_lsn skipping.
#include "engine/log/reader.h"

#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/log/test_util.h"

namespace walstate {
namespace log {
namespace {

using testing::Describe;
using testing::ExpectedRecord;
using testing::FrameEnds;
using ::testing::HasSubstr;
using testing::NewTempDir;
using testing::ReadBytes;
using testing::ReadLog;
using testing::ReadResult;
using testing::SegmentPaths;
using testing::WriteBytes;

constexpr RecoveryMode kStrict = RecoveryMode::kStrict;
constexpr RecoveryMode kTolerant = RecoveryMode::kTolerateTornTail;
constexpr RecoveryMode kSalvage = RecoveryMode::kSalvage;

// Every record byte-identical to the one written with its LSN, LSNs strictly
// increasing.
void ExpectGenuine(const std::vector<ExpectedRecord>& written,
                   const std::vector<ExpectedRecord>& got) {
  uint64_t prev = 0;
  for (const auto& r : got) {
    EXPECT_GT(r.lsn, prev);
    prev = r.lsn;
    ASSERT_GE(r.lsn, 1u);
    ASSERT_LE(r.lsn, written.size());
    const ExpectedRecord& w = written[r.lsn - 1];
    EXPECT_EQ(w.type, r.type) << "LSN " << r.lsn;
    EXPECT_TRUE(w.payload == r.payload) << "LSN " << r.lsn << " altered";
  }
}

std::vector<uint64_t> Lsns(const ReadResult& r) {
  std::vector<uint64_t> out;
  for (const auto& rec : r.records) out.push_back(rec.lsn);
  return out;
}

std::vector<uint64_t> Range(uint64_t from, uint64_t to) {
  std::vector<uint64_t> out;
  for (uint64_t i = from; i <= to; ++i) out.push_back(i);
  return out;
}

void Patch(const std::string& path, uint64_t off, const std::string& bytes) {
  std::string data = ReadBytes(path);
  ASSERT_LE(off + bytes.size(), data.size());
  data.replace(off, bytes.size(), bytes);
  WriteBytes(path, data);
}

void FlipBit(const std::string& path, uint64_t off, int bit) {
  std::string data = ReadBytes(path);
  ASSERT_LT(off, data.size());
  data[off] = static_cast<char>(data[off] ^ (1 << bit));
  WriteBytes(path, data);
}

void Truncate(const std::string& path, uint64_t size) {
  std::string data = ReadBytes(path);
  ASSERT_LE(size, data.size());
  data.resize(size);
  WriteBytes(path, data);
}

void AppendBytes(const std::string& path, const std::string& bytes) {
  WriteBytes(path, ReadBytes(path) + bytes);
}

std::string Le32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

const Problem* FindProblem(const ReadReport& report, Problem::Kind kind) {
  for (const Problem& p : report.problems) {
    if (p.kind == kind) return &p;
  }
  return nullptr;
}

// Writes one segment per entry of `plan`: {segment number, first LSN, count}.
std::string WritePlannedLog(
    const std::vector<std::tuple<uint64_t, uint64_t, int>>& plan) {
  const std::string dir = NewTempDir();
  for (const auto& [seg, first, count] : plan) {
    WriterOptions options;
    options.fs = FileSystem::Default();
    options.dir = dir;
    auto w = LogWriter::Create(options, seg, first);
    EXPECT_TRUE(w.ok()) << w.status();
    for (int i = 0; i < count; ++i) {
      EXPECT_TRUE((*w)->Append(kUpdate, "r").ok());
    }
    EXPECT_TRUE((*w)->Close().ok());
  }
  return dir;
}

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

// A log of 15 records of 40 bytes (64 framed) in three segments of five.
class ReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = NewTempDir();
    written_ =
        testing::WriteLog(dir_, std::vector<size_t>(15, 40), 64 + 5 * 64);
    segs_ = SegmentPaths(dir_);
    ASSERT_EQ(segs_.size(), 3u);
    for (const auto& s : segs_) ends_.push_back(FrameEnds(s));
    ASSERT_EQ(ends_[2].size(), 6u);
  }

  // Offset of record `k` (0-based) of segment `seg`.
  uint64_t FrameStart(int seg, int k) const { return ends_[seg][k]; }

  std::string dir_;
  std::vector<ExpectedRecord> written_;
  std::vector<std::string> segs_;
  std::vector<std::vector<uint64_t>> ends_;
};

TEST_F(ReaderTest, CleanLogInEveryMode) {
  for (RecoveryMode mode : {kStrict, kTolerant, kSalvage}) {
    ReadResult r = ReadLog(dir_, mode);
    ASSERT_TRUE(r.status.ok()) << RecoveryModeName(mode) << ": " << r.status;
    EXPECT_EQ(Lsns(r), Range(1, 15));
    ExpectGenuine(written_, r.records);
    EXPECT_TRUE(r.report.problems.empty()) << Describe(r.report);
    EXPECT_FALSE(r.report.has_torn_tail());
    EXPECT_FALSE(r.report.has_corruption());
    EXPECT_EQ(r.report.files, 3u);
    EXPECT_EQ(r.report.records, 15u);
    EXPECT_EQ(r.report.first_lsn, 1u);
    EXPECT_EQ(r.report.last_lsn, 15u);
    EXPECT_EQ(r.report.torn_bytes, 0u);
    EXPECT_EQ(r.report.last_good_file, segs_[2]);
    EXPECT_EQ(r.report.last_good_offset, ReadBytes(segs_[2]).size());
    uint64_t bytes = 0;
    for (const auto& s : segs_) bytes += ReadBytes(s).size();
    EXPECT_EQ(r.report.bytes, bytes);
  }
}

TEST_F(ReaderTest, BadChecksumInTheMiddleIsCorruption) {
  const uint64_t off = FrameStart(1, 2);  // LSN 8
  FlipBit(segs_[1], off + 30, 3);
  for (RecoveryMode mode : {kStrict, kTolerant}) {
    ReadResult r = ReadLog(dir_, mode);
    EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss) << r.status;
    const std::string msg(r.status.message());
    EXPECT_THAT(msg, HasSubstr(segs_[1]));
    EXPECT_THAT(msg, HasSubstr(absl::StrCat("offset ", off)));
    EXPECT_THAT(msg, HasSubstr("checksum mismatch"));
    EXPECT_THAT(msg, HasSubstr("walctl verify " + dir_));
    EXPECT_THAT(msg, HasSubstr("walctl repair " + dir_ + " --fix --salvage"));
    EXPECT_EQ(Lsns(r), Range(1, 7));
    ASSERT_EQ(r.report.problems.size(), 1u) << Describe(r.report);
    const Problem& p = r.report.problems[0];
    EXPECT_EQ(p.kind, Problem::Kind::kCorruption);
    EXPECT_EQ(p.file, segs_[1]);
    EXPECT_EQ(p.offset, off);
    EXPECT_EQ(p.bytes, 64u);
    EXPECT_TRUE(r.report.has_corruption());
  }
  ReadResult r = ReadLog(dir_, kSalvage);
  ASSERT_TRUE(r.status.ok()) << r.status;
  std::vector<uint64_t> want = Range(1, 7);
  for (uint64_t l = 9; l <= 15; ++l) want.push_back(l);
  EXPECT_EQ(Lsns(r), want);
  ExpectGenuine(written_, r.records);
  ASSERT_EQ(r.report.problems.size(), 1u) << Describe(r.report);
  EXPECT_THAT(r.report.problems[0].detail, HasSubstr("LSNs 8..8 are lost"));
  EXPECT_EQ(r.report.last_good_offset, ReadBytes(segs_[2]).size());

  // Problems show up in report() as soon as Next() has passed them.
  LogReaderOptions options;
  options.fs = FileSystem::Default();
  options.dir = dir_;
  options.mode = kSalvage;
  auto reader = LogReader::Open(options);
  ASSERT_TRUE(reader.ok());
  Record rec;
  while ((*reader)->Next(&rec)) {
    EXPECT_EQ((*reader)->report().problems.size(), rec.lsn < 8 ? 0u : 1u)
        << "at LSN " << rec.lsn;
    EXPECT_EQ((*reader)->report().last_good_file, rec.file);
    EXPECT_EQ((*reader)->report().last_good_offset,
              rec.offset + rec.framed_size);
  }
}

TEST_F(ReaderTest, BadChecksumInLastRecordIsATornTail) {
  const uint64_t off = FrameStart(2, 4);  // LSN 15
  FlipBit(segs_[2], off + 40, 0);
  ReadResult r = ReadLog(dir_, kTolerant);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(Lsns(r), Range(1, 14));
  ASSERT_EQ(r.report.problems.size(), 1u);
  EXPECT_EQ(r.report.problems[0].kind, Problem::Kind::kTornTail);
  EXPECT_EQ(r.report.problems[0].offset, off);
  EXPECT_TRUE(r.report.has_torn_tail());
  EXPECT_FALSE(r.report.has_corruption());
  EXPECT_EQ(r.report.torn_bytes, 64u);
  EXPECT_EQ(r.report.last_good_file, segs_[2]);
  EXPECT_EQ(r.report.last_good_offset, off);

  r = ReadLog(dir_, kStrict);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("torn tail"));
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("strict"));
  EXPECT_EQ(Lsns(r), Range(1, 14));

  r = ReadLog(dir_, kSalvage);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(Lsns(r), Range(1, 14));
  EXPECT_TRUE(r.report.has_torn_tail());
}

TEST_F(ReaderTest, DamagedTailOfAnEarlierSegmentIsCorruption) {
  const uint64_t off = FrameStart(0, 4);  // LSN 5, last of segment 1
  FlipBit(segs_[0], off + 50, 5);
  ReadResult r = ReadLog(dir_, kTolerant);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Lsns(r), Range(1, 4));
  ASSERT_NE(FindProblem(r.report, Problem::Kind::kCorruption), nullptr);
  EXPECT_EQ(FindProblem(r.report, Problem::Kind::kTornTail), nullptr);

  r = ReadLog(dir_, kSalvage);
  ASSERT_TRUE(r.status.ok());
  std::vector<uint64_t> want = Range(1, 4);
  for (uint64_t l = 6; l <= 15; ++l) want.push_back(l);
  EXPECT_EQ(Lsns(r), want);
  // The damaged tail, and the LSN gap it leaves before segment 2.
  EXPECT_EQ(r.report.problems.size(), 2u) << Describe(r.report);
  EXPECT_FALSE(r.report.has_torn_tail());
}

TEST_F(ReaderTest, BadLength) {
  // Larger than the maximum.
  Patch(segs_[1], FrameStart(1, 1) + 8, Le32(0x7fffffff));
  ReadResult r = ReadLog(dir_, kTolerant);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status.message()),
              HasSubstr("exceeds the maximum"));
  EXPECT_EQ(Lsns(r), Range(1, 6));
  r = ReadLog(dir_, kSalvage);
  EXPECT_EQ(r.records.size(), 14u);
  ExpectGenuine(written_, r.records);
}

TEST_F(ReaderTest, SmallerOrLargerLengthFailsTheChecksum) {
  Patch(segs_[0], FrameStart(0, 1) + 8, Le32(48));
  Patch(segs_[1], FrameStart(1, 1) + 8, Le32(8));
  ReadResult r = ReadLog(dir_, kTolerant);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Lsns(r), Range(1, 1));
  r = ReadLog(dir_, kSalvage);
  EXPECT_EQ(r.records.size(), 13u);
  ExpectGenuine(written_, r.records);
  EXPECT_EQ(r.report.problems.size(), 2u) << Describe(r.report);
}

TEST_F(ReaderTest, LengthPastEndOfFile) {
  // Middle of an earlier segment: the claimed record runs past the file end.
  Patch(segs_[0], FrameStart(0, 2) + 8, Le32(100000));
  ReadResult r = ReadLog(dir_, kTolerant);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status.message()),
              HasSubstr("runs past the end of the file"));
  EXPECT_EQ(Lsns(r), Range(1, 2));
}

TEST_F(ReaderTest, LengthPastEndInLastRecordIsTornTail) {
  Patch(segs_[2], FrameStart(2, 4) + 8, Le32(100000));
  ReadResult r = ReadLog(dir_, kTolerant);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(Lsns(r), Range(1, 14));
  ASSERT_TRUE(r.report.has_torn_tail());
  EXPECT_THAT(r.report.problems[0].detail, HasSubstr("runs past the end"));
}

TEST_F(ReaderTest, BadTypeAndReservedBits) {
  Patch(segs_[1], FrameStart(1, 0) + 12, std::string(1, '\0'));
  ReadResult r = ReadLog(dir_, kTolerant);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("record type 0"));
  EXPECT_EQ(Lsns(r), Range(1, 5));

  Patch(segs_[1], FrameStart(1, 0) + 12, std::string(1, '\x63'));  // type 99
  r = ReadLog(dir_, kTolerant);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("checksum mismatch"));

  Patch(segs_[1], FrameStart(1, 0) + 12, std::string(1, '\x01'));  // restore
  ASSERT_TRUE(ReadLog(dir_, kStrict).status.ok());
  Patch(segs_[1], FrameStart(1, 3) + 13, std::string(1, '\x02'));  // flags
  r = ReadLog(dir_, kTolerant);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("reserved"));
  EXPECT_EQ(Lsns(r), Range(1, 8));
  r = ReadLog(dir_, kSalvage);
  EXPECT_EQ(r.records.size(), 14u);
}

// Replaces record `k` (0-based) of `path` by an intact frame carrying `lsn`.
void RewriteLsn(const std::string& path, const std::vector<uint64_t>& ends,
                int k, uint64_t lsn) {
  std::string data = ReadBytes(path);
  FileHeader header;
  std::string detail;
  ASSERT_EQ(DecodeFileHeader(data, &header, &detail), HeaderStatus::kOk);
  const uint64_t off = ends[k];
  RecordHeader h = DecodeRecordHeader(data.data() + off);
  std::string frame;
  EncodeRecord(
      header.salt, lsn, h.type,
      absl::string_view(data.data() + off + kRecordHeaderSize, h.length),
      &frame);
  ASSERT_EQ(frame.size(), ends[k + 1] - off);
  Patch(path, off, frame);
}

TEST_F(ReaderTest, IntactFrameWithWrongLsnIsCorruptionEvenAtTheEnd) {
  RewriteLsn(segs_[2], ends_[2], 4, 20);  // LSN 15 -> 20, last record
  ReadResult r = ReadLog(dir_, kTolerant);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss) << r.status;
  EXPECT_THAT(std::string(r.status.message()),
              HasSubstr("LSN 20 out of sequence (expected 15)"));
  EXPECT_FALSE(r.report.has_torn_tail());
  EXPECT_EQ(Lsns(r), Range(1, 14));
  // Salvage takes it, reporting the gap.
  r = ReadLog(dir_, kSalvage);
  ASSERT_TRUE(r.status.ok());
  std::vector<uint64_t> want = Range(1, 14);
  want.push_back(20);
  EXPECT_EQ(Lsns(r), want);
  ASSERT_EQ(r.report.problems.size(), 1u);
  EXPECT_THAT(r.report.problems[0].detail, HasSubstr("LSNs 15..19 are lost"));
}

TEST_F(ReaderTest, RepeatedLsnInTheMiddle) {
  RewriteLsn(segs_[1], ends_[1], 2, 7);  // LSN 8 -> 7 (a repeat)
  ReadResult r = ReadLog(dir_, kStrict);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("repeated"));
  EXPECT_EQ(Lsns(r), Range(1, 7));
  r = ReadLog(dir_, kSalvage);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.records.size(), 14u);
  ExpectGenuine(written_, r.records);
  EXPECT_EQ(r.report.problems.size(), 2u) << Describe(r.report);
}

TEST_F(ReaderTest, EveryFrameOfAPerRecordSyncedLogIsFlagged) {
  for (int seg = 0; seg < 3; ++seg) {
    std::vector<uint64_t> starts(ends_[seg].begin(), ends_[seg].end() - 1);
    EXPECT_EQ(testing::SyncedFrameOffsets(segs_[seg]), starts);
  }
}

// A log whose last segment ends with one sync group of several records:
// records 1..5 synced one by one, then 6..10 written and synced together.
class LastGroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = NewTempDir();
    WriterOptions options;
    options.fs = FileSystem::Default();
    options.dir = dir_;
    auto w = LogWriter::Create(options, 1, 1);
    ASSERT_TRUE(w.ok());
    for (int i = 1; i <= 10; ++i) {
      written_.push_back(
          {static_cast<uint64_t>(i), kUpdate, testing::MakePayload(i, 40 + i)});
      ASSERT_TRUE((*w)->Append(kUpdate, written_.back().payload).ok());
      if (i <= 5) {
        ASSERT_TRUE((*w)->Sync().ok());
      }
    }
    ASSERT_TRUE((*w)->Close().ok());
    seg_ = SegmentPaths(dir_)[0];
    ends_ = FrameEnds(seg_);
    ASSERT_EQ(ends_.size(), 11u);
    // Frames 1..6 follow a sync; 7..10 were written with 6, unsynced.
    std::vector<uint64_t> want(ends_.begin(), ends_.begin() + 6);
    ASSERT_EQ(testing::SyncedFrameOffsets(seg_), want);
  }
  std::string dir_;
  std::string seg_;
  std::vector<ExpectedRecord> written_;
  std::vector<uint64_t> ends_;
};

TEST_F(LastGroupTest, DamageInsideTheLastSyncGroupIsATornTail) {
  // What a crash can leave: a garbage sector in the middle of the unsynced
  // end, with later sectors (holding intact records) persisted.
  Patch(seg_, ends_[7] + 4, RandomBytes(40, 3));  // inside LSN 8
  ReadResult r = ReadLog(dir_, kTolerant);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(Lsns(r), Range(1, 7));
  ExpectGenuine(written_, r.records);
  ASSERT_EQ(r.report.problems.size(), 1u) << Describe(r.report);
  EXPECT_EQ(r.report.problems[0].kind, Problem::Kind::kTornTail);
  EXPECT_EQ(r.report.problems[0].offset, ends_[7]);
  EXPECT_THAT(r.report.problems[0].detail, HasSubstr("unsynced"));
  EXPECT_EQ(r.report.torn_bytes, ends_[10] - ends_[7]);
  EXPECT_EQ(r.report.last_good_offset, ends_[7]);
  // Salvage agrees: the intact records after it were never synced.
  r = ReadLog(dir_, kSalvage);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(Lsns(r), Range(1, 7));
  EXPECT_EQ(ReadLog(dir_, kStrict).status.code(), absl::StatusCode::kDataLoss);
}

TEST_F(LastGroupTest, DamageInTheGroupStartIsATornTail) {
  FlipBit(seg_, ends_[5] + 30, 1);  // LSN 6, the flagged first of the group
  ReadResult r = ReadLog(dir_, kTolerant);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(Lsns(r), Range(1, 5));
  EXPECT_TRUE(r.report.has_torn_tail());
}

TEST_F(LastGroupTest, DamageBeforeTheLastSyncGroupIsCorruption) {
  FlipBit(seg_, ends_[4] + 30, 1);  // LSN 5: synced before LSN 6 was written
  ReadResult r = ReadLog(dir_, kTolerant);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss) << r.status;
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("not a torn tail"));
  EXPECT_EQ(Lsns(r), Range(1, 4));
  EXPECT_FALSE(r.report.has_torn_tail());
  r = ReadLog(dir_, kSalvage);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.records.size(), 9u);
  ExpectGenuine(written_, r.records);
}

TEST_F(LastGroupTest, FlushedButUnsyncedWritesFormOneGroup) {
  // Flush() writes without a sync: records written by later write-outs are
  // not flagged until a sync happened in between.
  WriterOptions options;
  options.fs = FileSystem::Default();
  options.dir = dir_;
  auto w = LogWriter::Create(options, 2, 11);
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE((*w)->Append(kUpdate, "a").ok());
  ASSERT_TRUE((*w)->Flush().ok());
  ASSERT_TRUE((*w)->Append(kUpdate, "b").ok());
  ASSERT_TRUE((*w)->Flush().ok());
  ASSERT_TRUE((*w)->Sync().ok());
  ASSERT_TRUE((*w)->Append(kUpdate, "c").ok());
  ASSERT_TRUE((*w)->Close().ok());
  const std::string seg2 = JoinPath(dir_, SegmentFileName(2));
  auto ends = FrameEnds(seg2);
  ASSERT_EQ(ends.size(), 4u);
  EXPECT_EQ(testing::SyncedFrameOffsets(seg2),
            std::vector<uint64_t>({ends[0], ends[2]}));
}

TEST(ReaderTypesTest, UnknownRequiredTypeStopsOptionalTypeIsReturned) {
  const std::string dir = NewTempDir();
  auto written =
      testing::WriteLog(dir, {10, 10, 10}, 1 << 20, {kUpdate, 77, kDelete});
  ReadResult r = ReadLog(dir, kTolerant);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss) << r.status;
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("newer walstate"));
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("type 77"));
  EXPECT_EQ(Lsns(r), Range(1, 1));
  ASSERT_EQ(r.report.problems.size(), 1u);
  EXPECT_EQ(r.report.problems[0].kind, Problem::Kind::kCorruption);
  // Even as the last record it is not a torn tail: the frame is intact.
  const std::string dir2 = NewTempDir();
  testing::WriteLog(dir2, {10, 10}, 1 << 20, {kUpdate, 127});
  r = ReadLog(dir2, kTolerant);
  EXPECT_FALSE(r.status.ok());
  EXPECT_FALSE(r.report.has_torn_tail());

  r = ReadLog(dir, kSalvage);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(Lsns(r), std::vector<uint64_t>({1, 3}));
  EXPECT_EQ(r.report.problems.size(), 1u);

  const std::string dir3 = NewTempDir();
  written = testing::WriteLog(dir3, {10, 10, 10}, 1 << 20,
                              {kUpdate, 200, kFirstOptionalType});
  r = ReadLog(dir3, kStrict);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(Lsns(r), Range(1, 3));
  EXPECT_EQ(r.records[1].type, 200);
  EXPECT_EQ(r.records[2].type, 128);
  ExpectGenuine(written, r.records);
}

TEST_F(ReaderTest, ZeroFilledTail) {
  const uint64_t size = ReadBytes(segs_[2]).size();
  AppendBytes(segs_[2], std::string(4096, '\0'));
  ReadResult r = ReadLog(dir_, kTolerant);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(Lsns(r), Range(1, 15));
  ASSERT_EQ(r.report.problems.size(), 1u);
  EXPECT_EQ(r.report.problems[0].kind, Problem::Kind::kTornTail);
  EXPECT_THAT(r.report.problems[0].detail, HasSubstr("zeros"));
  EXPECT_EQ(r.report.problems[0].offset, size);
  EXPECT_EQ(r.report.torn_bytes, 4096u);
  EXPECT_EQ(r.report.last_good_offset, size);
  EXPECT_EQ(ReadLog(dir_, kStrict).status.code(), absl::StatusCode::kDataLoss);
}

TEST_F(ReaderTest, ZerosInAnEarlierSegmentAreCorruption) {
  AppendBytes(segs_[0], std::string(512, '\0'));
  ReadResult r = ReadLog(dir_, kTolerant);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Lsns(r), Range(1, 5));
  r = ReadLog(dir_, kSalvage);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(Lsns(r), Range(1, 15));
  EXPECT_TRUE(r.report.has_corruption());
}

TEST_F(ReaderTest, ZeroedFrameInTheMiddleIsCorruption) {
  Patch(segs_[2], FrameStart(2, 1), std::string(64, '\0'));
  ReadResult r = ReadLog(dir_, kTolerant);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Lsns(r), Range(1, 11));
  r = ReadLog(dir_, kSalvage);
  EXPECT_EQ(r.records.size(), 14u);
}

TEST_F(ReaderTest, TruncatedHeader) {
  Truncate(segs_[2], 30);
  ReadResult r = ReadLog(dir_, kTolerant);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(Lsns(r), Range(1, 10));
  ASSERT_EQ(r.report.problems.size(), 1u);
  EXPECT_EQ(r.report.problems[0].kind, Problem::Kind::kTornTail);
  EXPECT_EQ(r.report.torn_bytes, 30u);
  EXPECT_EQ(r.report.last_good_file, segs_[2]);
  EXPECT_EQ(r.report.last_good_offset, 0u);
  EXPECT_FALSE(ReadLog(dir_, kStrict).status.ok());

  Truncate(segs_[1], 30);
  r = ReadLog(dir_, kTolerant);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Lsns(r), Range(1, 5));
}

TEST_F(ReaderTest, TruncatedPayload) {
  const uint64_t off = FrameStart(2, 4);
  Truncate(segs_[2], off + 24 + 10);
  ReadResult r = ReadLog(dir_, kTolerant);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(Lsns(r), Range(1, 14));
  ASSERT_EQ(r.report.problems.size(), 1u);
  EXPECT_EQ(r.report.problems[0].kind, Problem::Kind::kTornTail);
  EXPECT_EQ(r.report.problems[0].offset, off);
  EXPECT_EQ(r.report.torn_bytes, 34u);
  EXPECT_EQ(r.report.last_good_offset, off);
  // Cut within the record header.
  Truncate(segs_[2], off + 5);
  r = ReadLog(dir_, kTolerant);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(Lsns(r), Range(1, 14));
  EXPECT_THAT(r.report.problems[0].detail, HasSubstr("fewer than a record"));
}

TEST(ReaderStaleTest, StaleBytesOfAnEarlierFileNeverParse) {
  // Same LSNs, same payloads, same sizes: only the salt tells them apart.
  const std::string old_dir = NewTempDir();
  const std::string new_dir = NewTempDir();
  testing::WriteLog(old_dir, std::vector<size_t>(20, 40), 1 << 20);
  auto written =
      testing::WriteLog(new_dir, std::vector<size_t>(5, 40), 1 << 20);
  const std::string old_bytes = ReadBytes(SegmentPaths(old_dir)[0]);
  const std::string seg = SegmentPaths(new_dir)[0];
  const std::string new_bytes = ReadBytes(seg);
  ASSERT_LT(new_bytes.size(), old_bytes.size());
  WriteBytes(seg, new_bytes + old_bytes.substr(new_bytes.size()));

  for (RecoveryMode mode : {kTolerant, kSalvage}) {
    ReadResult r = ReadLog(new_dir, mode);
    ASSERT_TRUE(r.status.ok()) << r.status;
    EXPECT_EQ(Lsns(r), Range(1, 5));
    ExpectGenuine(written, r.records);
    ASSERT_EQ(r.report.problems.size(), 1u);
    EXPECT_EQ(r.report.problems[0].kind, Problem::Kind::kTornTail);
    EXPECT_EQ(r.report.torn_bytes, old_bytes.size() - new_bytes.size());
    EXPECT_THAT(r.report.problems[0].detail, HasSubstr("checksum mismatch"));
  }

  // Misaligned stale frames (different record sizes) do not parse either.
  const std::string odd_dir = NewTempDir();
  testing::WriteLog(odd_dir, {3, 17, 90, 5, 250, 31, 8, 64}, 1 << 20);
  const std::string odd = ReadBytes(SegmentPaths(odd_dir)[0]);
  const std::string seg2 = SegmentPaths(new_dir)[0];
  WriteBytes(seg2, odd.substr(0, 64 + 24 + 8) + old_bytes.substr(96));
  ReadResult r = ReadLog(new_dir, kSalvage);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(Lsns(r), Range(1, 1));
  EXPECT_TRUE(r.report.has_torn_tail());
}

TEST(ReaderForeignTest, ForeignFilesNamedLikeSegments) {
  const std::string text =
      "This is a text file that happens to be called like a segment.\n";
  for (const std::string& content :
       {RandomBytes(3000, 42), text, std::string("hi!\n")}) {
    // Followed by a real segment, the foreign file cannot be a torn create.
    const std::string dir = WritePlannedLog({{2, 1, 3}});
    const std::string path = JoinPath(dir, SegmentFileName(1));
    WriteBytes(path, content);
    for (RecoveryMode mode : {kStrict, kTolerant}) {
      ReadResult r = ReadLog(dir, mode);
      EXPECT_EQ(r.status.code(), absl::StatusCode::kFailedPrecondition)
          << r.status;
      EXPECT_THAT(std::string(r.status.message()), HasSubstr(path));
      EXPECT_THAT(std::string(r.status.message()), HasSubstr("bad magic"));
      EXPECT_TRUE(r.records.empty());
      ASSERT_EQ(r.report.problems.size(), 1u);
      EXPECT_EQ(r.report.problems[0].kind, Problem::Kind::kForeignFile);
    }
    ReadResult r = ReadLog(dir, kSalvage);
    EXPECT_TRUE(r.status.ok());
    EXPECT_EQ(Lsns(r), Range(1, 3));
    ASSERT_EQ(r.report.problems.size(), 1u);
    EXPECT_EQ(r.report.problems[0].kind, Problem::Kind::kForeignFile);
    EXPECT_TRUE(r.report.has_corruption());
    auto fr = FileReader::Open(FileSystem::Default(), path, kTolerant, false);
    EXPECT_EQ(fr.status().code(), absl::StatusCode::kFailedPrecondition);

    // As the last segment and no bigger than a header could be, it is
    // indistinguishable from a header torn into garbage by a crash.
    ASSERT_EQ(std::remove(JoinPath(dir, SegmentFileName(2)).c_str()), 0);
    r = ReadLog(dir, kTolerant);
    ASSERT_TRUE(r.status.ok()) << r.status;
    ASSERT_TRUE(r.report.has_torn_tail());
    EXPECT_FALSE(r.report.has_corruption());
    EXPECT_EQ(ReadLog(dir, kStrict).status.code(), absl::StatusCode::kDataLoss);
  }
}

TEST(ReaderForeignTest, LargerThanAnyHeaderIsForeignEvenWhenLast) {
  const std::string dir = NewTempDir();
  std::string text;
  while (text.size() <= kFileHeaderFixedSize + kMaxSchemaSize) {
    text += "Not a log. Not a log at all, just a large text file.\n";
  }
  WriteBytes(JoinPath(dir, SegmentFileName(1)), text);
  ReadResult r = ReadLog(dir, kTolerant);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_EQ(r.report.problems.size(), 1u);
  EXPECT_EQ(r.report.problems[0].kind, Problem::Kind::kForeignFile);
}

TEST_F(ReaderTest, GarbageHeaderOfANewLastSegmentIsATornTail) {
  // A crash after the header of a new segment was written but before it was
  // synced may leave garbage in its sectors. Nothing can follow an unsynced
  // header (the writer syncs it before any record).
  const std::string seg4 = JoinPath(dir_, SegmentFileName(4));
  for (size_t size : {64, 512, 1672}) {
    WriteBytes(seg4, RandomBytes(size, size));
    ReadResult r = ReadLog(dir_, kTolerant);
    ASSERT_TRUE(r.status.ok()) << r.status;
    EXPECT_EQ(Lsns(r), Range(1, 15));
    ASSERT_EQ(r.report.problems.size(), 1u);
    EXPECT_EQ(r.report.problems[0].kind, Problem::Kind::kTornTail);
    EXPECT_EQ(r.report.problems[0].file, seg4);
    EXPECT_EQ(r.report.problems[0].offset, 0u);
    EXPECT_THAT(r.report.problems[0].detail, HasSubstr("interrupted"));
    EXPECT_EQ(r.report.torn_bytes, size);
    EXPECT_EQ(r.report.last_good_file, seg4);
    EXPECT_EQ(r.report.last_good_offset, 0u);
  }
  // A header that is only partly garbage (magic intact) likewise.
  std::string partial = ReadBytes(segs_[2]).substr(0, 64);
  partial.replace(20, 30, RandomBytes(30, 7));
  WriteBytes(seg4, partial);
  ReadResult r = ReadLog(dir_, kTolerant);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_TRUE(r.report.has_torn_tail());
}

TEST_F(ReaderTest, GarbageHeaderOverRecordsIsCorruption) {
  // The same garbage over the header of a segment holding records: its
  // header was durable before the records were written, so this is damage.
  Patch(segs_[2], 0, RandomBytes(64, 1));
  for (RecoveryMode mode : {kStrict, kTolerant}) {
    ReadResult r = ReadLog(dir_, mode);
    EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss) << r.status;
    EXPECT_EQ(Lsns(r), Range(1, 10));
    EXPECT_FALSE(r.report.has_torn_tail());
    ASSERT_EQ(r.report.problems.size(), 1u);
    EXPECT_EQ(r.report.problems[0].kind, Problem::Kind::kCorruption);
    EXPECT_THAT(r.report.problems[0].detail, HasSubstr("records may follow"));
  }
  // Zeros over the header of a segment holding records: damage too.
  Patch(segs_[2], 0, std::string(64, '\0'));
  ReadResult r = ReadLog(dir_, kTolerant);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss) << r.status;
  EXPECT_FALSE(r.report.has_torn_tail());
}

TEST_F(ReaderTest, ForeignFileInTheMiddleIsSkippedBySalvage) {
  WriteBytes(segs_[1], "#!/bin/sh\necho not a log segment\n");
  ReadResult r = ReadLog(dir_, kTolerant);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Lsns(r), Range(1, 5));
  r = ReadLog(dir_, kSalvage);
  ASSERT_TRUE(r.status.ok());
  std::vector<uint64_t> want = Range(1, 5);
  for (uint64_t l = 11; l <= 15; ++l) want.push_back(l);
  EXPECT_EQ(Lsns(r), want);
  EXPECT_NE(FindProblem(r.report, Problem::Kind::kForeignFile), nullptr);
  // And the LSNs that segment held are reported missing.
  const Problem* gap = FindProblem(r.report, Problem::Kind::kCorruption);
  ASSERT_NE(gap, nullptr);
  EXPECT_THAT(gap->detail, HasSubstr("LSNs 6..10 are missing"));
}

TEST_F(ReaderTest, EmptyOrZeroSegmentFiles) {
  // Empty last segment: a crash right after create.
  const std::string seg4 = JoinPath(dir_, SegmentFileName(4));
  WriteBytes(seg4, "");
  ReadResult r = ReadLog(dir_, kTolerant);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(Lsns(r), Range(1, 15));
  ASSERT_TRUE(r.report.has_torn_tail());
  EXPECT_EQ(r.report.last_good_file, seg4);
  EXPECT_EQ(r.report.last_good_offset, 0u);
  EXPECT_FALSE(ReadLog(dir_, kStrict).status.ok());

  // Zero-filled header.
  WriteBytes(seg4, std::string(4096, '\0'));
  r = ReadLog(dir_, kTolerant);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.records.size(), 15u);
  EXPECT_EQ(r.report.torn_bytes, 4096u);
  EXPECT_THAT(r.report.problems[0].detail, HasSubstr("zero-filled"));

  // An empty segment that is not the last is corruption.
  WriteBytes(segs_[1], "");
  r = ReadLog(dir_, kTolerant);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Lsns(r), Range(1, 5));
}

TEST_F(ReaderTest, OtherFormatVersionIsRefusedInEveryMode) {
  Patch(segs_[0], 8, Le32(2));
  for (RecoveryMode mode : {kStrict, kTolerant, kSalvage}) {
    ReadResult r = ReadLog(dir_, mode);
    EXPECT_EQ(r.status.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(r.status.message()), HasSubstr("format version 2"));
    EXPECT_THAT(std::string(r.status.message()), HasSubstr("reads 1"));
    EXPECT_TRUE(r.records.empty());
    ASSERT_FALSE(r.report.problems.empty());
    EXPECT_EQ(r.report.problems[0].kind, Problem::Kind::kUnreadable);
  }
}

TEST_F(ReaderTest, CorruptHeader) {
  FlipBit(segs_[2], 41, 2);  // the salt of the last segment
  ReadResult r = ReadLog(dir_, kTolerant);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("header"));
  EXPECT_EQ(Lsns(r), Range(1, 10));
  r = ReadLog(dir_, kSalvage);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(Lsns(r), Range(1, 10));
  EXPECT_TRUE(r.report.has_corruption());
}

TEST_F(ReaderTest, SalvageKeepsRecordsBehindADamagedHeaderWhoseSaltSurvived) {
  // The creation time of segment 2: the header's hash fails, its salt does
  // not, so salvage can tell the records behind it are genuine.
  FlipBit(segs_[1], 50, 1);
  ReadResult r = ReadLog(dir_, kTolerant);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Lsns(r), Range(1, 5));
  r = ReadLog(dir_, kSalvage);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(Lsns(r), Range(1, 15)) << Describe(r.report);
  ExpectGenuine(written_, r.records);
  ASSERT_EQ(r.report.problems.size(), 1u) << Describe(r.report);
  const Problem& p = r.report.problems[0];
  EXPECT_EQ(p.kind, Problem::Kind::kCorruption);
  EXPECT_EQ(p.file, segs_[1]);
  EXPECT_EQ(p.bytes, FrameStart(1, 0));  // the header, not the whole file
  EXPECT_THAT(p.detail, HasSubstr("are kept, from offset"));

  // The same, and the header's record-start field damaged too: found by
  // looking for the first frame the salt verifies.
  FlipBit(segs_[1], 13, 0);
  r = ReadLog(dir_, kSalvage);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(Lsns(r), Range(1, 15));

  // Its salt damaged as well: nothing of that segment verifies, its LSNs
  // are reported lost, the rest is read.
  FlipBit(segs_[1], 41, 2);
  r = ReadLog(dir_, kSalvage);
  ASSERT_TRUE(r.status.ok()) << r.status;
  std::vector<uint64_t> want = Range(1, 5);
  for (uint64_t l = 11; l <= 15; ++l) want.push_back(l);
  EXPECT_EQ(Lsns(r), want);
}

TEST(ReaderHeaderTest, IncompleteHeaderWithNothingAfterItIsTornTail) {
  const std::string dir = NewTempDir();
  testing::WriteLog(dir, {}, 1 << 20);
  const std::string seg = SegmentPaths(dir)[0];
  ASSERT_EQ(ReadBytes(seg).size(), 64u);
  FlipBit(seg, 50, 1);
  ReadResult r = ReadLog(dir, kTolerant);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_TRUE(r.report.has_torn_tail());
  EXPECT_FALSE(ReadLog(dir, kStrict).status.ok());
}

TEST(ReaderHeaderTest, LargeSchemaHeader) {
  const std::string dir = NewTempDir();
  WriterOptions options;
  options.fs = FileSystem::Default();
  options.dir = dir;
  options.schema = testing::MakePayload(99, 10001);  // header > first read
  auto w = LogWriter::Create(options, 1, 1);
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE((*w)->Append(kUpdate, "a").ok());
  ASSERT_TRUE((*w)->Append(kUpdate, "b").ok());
  ASSERT_TRUE((*w)->Close().ok());
  ReadResult r = ReadLog(dir, kStrict);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(Lsns(r), Range(1, 2));
  const std::string seg = SegmentPaths(dir)[0];
  auto fr = FileReader::Open(FileSystem::Default(), seg, kStrict, true);
  ASSERT_TRUE(fr.ok());
  EXPECT_EQ((*fr)->header().schema, options.schema);
  EXPECT_EQ((*fr)->header().header_size, 64u + 10008u);
  // Cut inside the schema: a torn header of the last segment.
  Truncate(seg, 5000);
  r = ReadLog(dir, kTolerant);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_TRUE(r.records.empty());
  EXPECT_TRUE(r.report.has_torn_tail());
  EXPECT_EQ(r.report.torn_bytes, 5000u);
}

TEST(ReaderDirTest, MissingEmptyAndUnrelatedFiles) {
  const std::string dir = NewTempDir();
  ReadResult r = ReadLog(dir + "/missing", kTolerant);
  EXPECT_EQ(r.open_status.code(), absl::StatusCode::kNotFound);

  r = ReadLog(dir, kStrict);
  ASSERT_TRUE(r.open_status.ok());
  ASSERT_TRUE(r.status.ok());
  EXPECT_TRUE(r.records.empty());
  EXPECT_EQ(r.report.files, 0u);
  EXPECT_TRUE(r.report.problems.empty());

  WriteBytes(JoinPath(dir, "MANIFEST"), "x");
  WriteBytes(JoinPath(dir, "LOCK"), "pid 1");
  WriteBytes(JoinPath(dir, SnapshotFileName(5)), "snapshot");
  WriteBytes(JoinPath(dir, "seg-1.wal"), "short name");
  WriteBytes(JoinPath(dir, "seg-000000000000000G.wal"), "bad hex");
  r = ReadLog(dir, kStrict);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_TRUE(r.segments.empty());

  LogReaderOptions options;  // no file system
  options.dir = dir;
  EXPECT_FALSE(LogReader::Open(options).ok());
}

TEST_F(ReaderTest, MissingSegment) {
  ASSERT_EQ(std::remove(segs_[1].c_str()), 0);
  ReadResult r = ReadLog(dir_, kTolerant);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("missing"));
  EXPECT_EQ(Lsns(r), Range(1, 5));
  r = ReadLog(dir_, kSalvage);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.records.size(), 10u);
  ASSERT_EQ(r.report.problems.size(), 1u) << Describe(r.report);
  EXPECT_THAT(r.report.problems[0].detail,
              HasSubstr("segments 2..2 are missing"));
}

TEST_F(ReaderTest, MissingSegmentBelowStartLsnIsHarmless) {
  ASSERT_EQ(std::remove(segs_[1].c_str()), 0);
  ReadResult r = ReadLog(dir_, kStrict, 11);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(Lsns(r), Range(11, 15));
  EXPECT_TRUE(r.report.problems.empty()) << Describe(r.report);
  // LSN 10 was in the missing segment.
  r = ReadLog(dir_, kStrict, 10);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss);
}

TEST_F(ReaderTest, EarlierSegmentCutAtARecordBoundaryIsNamed) {
  Truncate(segs_[0], FrameStart(0, 3));  // drops LSNs 4 and 5
  ReadResult r = ReadLog(dir_, kTolerant);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status.message()),
              ::testing::StartsWith(segs_[0] + ": corruption at offset " +
                                    std::to_string(FrameStart(0, 3))));
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("LSNs 4..5"));
  EXPECT_EQ(Lsns(r), Range(1, 3));
}

TEST_F(ReaderTest, RenamedSegmentIsCorruption) {
  const std::string bytes = ReadBytes(segs_[0]);
  WriteBytes(JoinPath(dir_, SegmentFileName(4)), bytes);
  ReadResult r = ReadLog(dir_, kTolerant);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("not log segment 4"));
  EXPECT_EQ(r.records.size(), 15u);
}

TEST(ReaderSequenceTest, LsnGapBetweenSegments) {
  const std::string dir = WritePlannedLog({{1, 1, 5}, {2, 10, 3}});
  ReadResult r = ReadLog(dir, kTolerant);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("LSNs 6..9"));
  EXPECT_EQ(Lsns(r), Range(1, 5));
  // The damage is the lost end of segment 1: the problem names it.
  const std::string seg1 = JoinPath(dir, SegmentFileName(1));
  ASSERT_EQ(r.report.problems.size(), 1u);
  EXPECT_EQ(r.report.problems[0].file, seg1);
  EXPECT_EQ(r.report.problems[0].offset, ReadBytes(seg1).size());
  EXPECT_THAT(std::string(r.status.message()), ::testing::StartsWith(seg1));
  r = ReadLog(dir, kSalvage);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(Lsns(r), std::vector<uint64_t>({1, 2, 3, 4, 5, 10, 11, 12}));
  EXPECT_EQ(r.report.problems.size(), 1u);
}

TEST(ReaderSequenceTest, OverlappingSegments) {
  const std::string dir = WritePlannedLog({{1, 1, 5}, {2, 3, 5}});
  ReadResult r = ReadLog(dir, kStrict);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("overlapping"));
  r = ReadLog(dir, kSalvage);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(Lsns(r), Range(1, 7));  // duplicates not returned twice
}

TEST(ReaderSequenceTest, SegmentsWithoutRecords) {
  const std::string dir =
      WritePlannedLog({{1, 1, 3}, {2, 4, 0}, {3, 4, 0}, {4, 4, 2}, {5, 6, 0}});
  ReadResult r = ReadLog(dir, kStrict);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(Lsns(r), Range(1, 5));
  EXPECT_EQ(r.report.last_good_file, JoinPath(dir, SegmentFileName(5)));
  EXPECT_EQ(r.report.last_good_offset, 64u);
  // A log starting at a later LSN and segment number is fine.
  const std::string dir2 = WritePlannedLog({{7, 1000, 2}, {8, 1002, 1}});
  r = ReadLog(dir2, kStrict);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(Lsns(r), Range(1000, 1002));
}

TEST_F(ReaderTest, StartLsnSkipsWholeSegmentsWithoutReadingThem) {
  // Damage segment 1: a read that needs it fails, one that skips it must not.
  FlipBit(segs_[0], FrameStart(0, 1) + 30, 0);
  ASSERT_FALSE(ReadLog(dir_, kTolerant).status.ok());
  for (uint64_t start : {6, 7, 10}) {
    ReadResult r = ReadLog(dir_, kTolerant, start);
    ASSERT_TRUE(r.status.ok()) << start << ": " << r.status;
    EXPECT_EQ(Lsns(r), Range(start, 15));
    EXPECT_EQ(r.report.files, 2u);
    EXPECT_EQ(r.report.first_lsn, start);
    EXPECT_EQ(r.report.records, 16 - start);
  }
  ReadResult r = ReadLog(dir_, kTolerant, 11);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(Lsns(r), Range(11, 15));
  EXPECT_EQ(r.report.files, 1u);
  r = ReadLog(dir_, kTolerant, 100);
  ASSERT_TRUE(r.status.ok());
  EXPECT_TRUE(r.records.empty());
  EXPECT_EQ(r.report.last_good_file, segs_[2]);
  // LSN 5 lives in segment 1, which must then be read: damage found.
  EXPECT_EQ(ReadLog(dir_, kTolerant, 5).status.code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(ReaderTest, StartHintSkipsTheRecordsBeforeStartLsnInItsSegment) {
  // Damage LSN 7: a read from LSN 9 must read segment 2 from its start and
  // meets it, unless the hint (frame of LSN 8) lets it jump past.
  FlipBit(segs_[1], FrameStart(1, 1) + 30, 0);
  ASSERT_EQ(ReadLog(dir_, kTolerant, 9).status.code(),
            absl::StatusCode::kDataLoss);
  for (RecoveryMode mode : {kStrict, kTolerant, kSalvage}) {
    ReadResult r = ReadLog(dir_, mode, 9, 2, FrameStart(1, 2));
    ASSERT_TRUE(r.status.ok()) << RecoveryModeName(mode) << ": " << r.status;
    EXPECT_EQ(Lsns(r), Range(9, 15));
    EXPECT_TRUE(r.report.problems.empty()) << Describe(r.report);
    EXPECT_EQ(r.report.skipped_bytes, FrameStart(1, 2) - FrameStart(1, 0));
  }
  // The log's last record: nothing after it, nothing read before it.
  ReadResult r = ReadLog(dir_, kTolerant, 16, 3, FrameStart(2, 4));
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_TRUE(r.records.empty());
  EXPECT_EQ(r.report.skipped_bytes, FrameStart(2, 4) - FrameStart(2, 0));
  EXPECT_EQ(r.report.last_good_offset, ReadBytes(segs_[2]).size());
}

TEST_F(ReaderTest, StartHintThatIsNotTheRecordIsIgnored) {
  const uint64_t good = FrameStart(1, 2);  // the frame of LSN 8
  const uint64_t size = ReadBytes(segs_[1]).size();
  struct Hint {
    uint64_t segment, offset;
  };
  for (Hint h : std::vector<Hint>{{2, good + 8},   // inside the frame
                                  {2, good - 64},  // LSN 7's frame
                                  {2, good + 64},  // LSN 9's frame
                                  {2, 0},
                                  {2, 3},
                                  {2, size},
                                  {2, size + 4096},
                                  {1, good},  // another segment
                                  {3, good},
                                  {0, good}}) {
    ReadResult r = ReadLog(dir_, kStrict, 9, h.segment, h.offset);
    ASSERT_TRUE(r.status.ok())
        << h.segment << "/" << h.offset << ": " << r.status;
    EXPECT_EQ(Lsns(r), Range(9, 15)) << h.segment << "/" << h.offset;
    EXPECT_EQ(r.report.skipped_bytes, 0u) << h.segment << "/" << h.offset;
  }
  // A damaged hinted frame is not taken either: the segment is read from
  // its start and the damage found there, as without a hint.
  FlipBit(segs_[1], good + 30, 0);
  ReadResult r = ReadLog(dir_, kTolerant, 9, 2, good);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(r.report.skipped_bytes, 0u);
}

TEST(ReaderLargeTest, SalvageSkipsADamagedMultiMegabyteRecord) {
  const std::string dir = NewTempDir();
  auto written =
      testing::WriteLog(dir, {100, 3 << 20, 100, 2 << 20, 7}, 64 << 20);
  const std::string seg = SegmentPaths(dir)[0];
  auto ends = FrameEnds(seg);
  FlipBit(seg, ends[1] + 24 + (2 << 20), 6);  // deep inside LSN 2
  ReadResult r = ReadLog(dir, kTolerant);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Lsns(r), Range(1, 1));
  r = ReadLog(dir, kSalvage);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(Lsns(r), std::vector<uint64_t>({1, 3, 4, 5}));
  ExpectGenuine(written, r.records);
  ASSERT_EQ(r.report.problems.size(), 1u);
  EXPECT_EQ(r.report.problems[0].offset, ends[1]);
  EXPECT_EQ(r.report.problems[0].bytes, ends[2] - ends[1]);
}

TEST_F(ReaderTest, FileReaderReadsOneFile) {
  auto fr = FileReader::Open(FileSystem::Default(), segs_[1], kStrict, false);
  ASSERT_TRUE(fr.ok()) << fr.status();
  EXPECT_TRUE((*fr)->header_ok());
  EXPECT_EQ((*fr)->header().kind, FileKind::kSegment);
  EXPECT_EQ((*fr)->header().file_number, 2u);
  EXPECT_EQ((*fr)->header().first_lsn, 6u);
  Record rec;
  std::vector<uint64_t> lsns;
  while ((*fr)->Next(&rec)) {
    lsns.push_back(rec.lsn);
    EXPECT_EQ(rec.file, segs_[1]);
    EXPECT_EQ(rec.framed_size, 64u);
    EXPECT_TRUE(rec.payload == written_[rec.lsn - 1].payload);
  }
  EXPECT_TRUE((*fr)->status().ok());
  EXPECT_EQ(lsns, Range(6, 10));
  EXPECT_EQ((*fr)->report().records, 5u);
  EXPECT_EQ((*fr)->report().files, 1u);
  EXPECT_EQ((*fr)->report().last_good_offset, ReadBytes(segs_[1]).size());
  EXPECT_FALSE((*fr)->Next(&rec));

  EXPECT_EQ(
      FileReader::Open(FileSystem::Default(), dir_ + "/nope", kStrict, true)
          .status()
          .code(),
      absl::StatusCode::kNotFound);
}

TEST(ReaderNamesTest, Names) {
  EXPECT_STREQ(RecoveryModeName(kStrict), "strict");
  EXPECT_STREQ(RecoveryModeName(kTolerant), "tolerate-torn-tail");
  EXPECT_STREQ(RecoveryModeName(kSalvage), "salvage");
  EXPECT_STREQ(ProblemKindName(Problem::Kind::kTornTail), "torn-tail");
  EXPECT_STREQ(ProblemKindName(Problem::Kind::kCorruption), "corruption");
  EXPECT_STREQ(ProblemKindName(Problem::Kind::kForeignFile), "foreign-file");
  EXPECT_STREQ(ProblemKindName(Problem::Kind::kUnreadable), "unreadable");
}

}  // namespace
}  // namespace log
}  // namespace walstate
