// LogWriter: round trips, segment rollover, stats, option handling, and the
// poisoning rules after I/O errors.
#include "engine/log/writer.h"

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fs/fault_injection_fs.h"
#include "tests/log/test_util.h"

namespace walstate {
namespace log {
namespace {

using testing::Describe;
using testing::ExpectedRecord;
using testing::FaultyFileSystem;
using ::testing::HasSubstr;
using testing::MakePayload;
using testing::NewTempDir;
using testing::ReadLog;
using testing::SegmentPaths;
using testing::WriterOptionsFor;

void ExpectSameRecords(const std::vector<ExpectedRecord>& want,
                       const std::vector<ExpectedRecord>& got) {
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(want[i].lsn, got[i].lsn) << i;
    EXPECT_EQ(want[i].type, got[i].type) << i;
    EXPECT_TRUE(want[i].payload == got[i].payload)
        << "payload of LSN " << want[i].lsn << " differs";
  }
}

TEST(WriterTest, RoundTripOfAllSizesAcrossSegments) {
  const std::string dir = NewTempDir();
  const std::vector<size_t> sizes = {0,       1, 7,       8, 9, 100,  4096,
                                     1 << 20, 0, 5 << 20, 1, 7, 4096, 100,
                                     5 << 20, 9, 1 << 20, 8, 0, 3};
  auto written = testing::WriteLog(dir, sizes, 64 << 10);
  ASSERT_EQ(written.size(), sizes.size());
  for (size_t i = 0; i < written.size(); ++i) EXPECT_EQ(written[i].lsn, i + 1);

  auto result = ReadLog(dir, RecoveryMode::kStrict);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_TRUE(result.report.problems.empty()) << Describe(result.report);
  ExpectSameRecords(written, result.records);
  EXPECT_EQ(result.report.records, sizes.size());
  EXPECT_EQ(result.report.first_lsn, 1u);
  EXPECT_EQ(result.report.last_lsn, sizes.size());
  // Large records each get a segment of their own.
  auto segs = SegmentPaths(dir);
  EXPECT_GE(segs.size(), 6u);
  EXPECT_EQ(result.segments, segs);
  EXPECT_EQ(result.report.files, segs.size());
  EXPECT_EQ(result.report.last_good_file, segs.back());
  EXPECT_EQ(result.report.last_good_offset,
            testing::ReadBytes(segs.back()).size());
}

TEST(WriterTest, SegmentsRespectMaxSizeAndCarrySchema) {
  const std::string dir = NewTempDir();
  WriterOptions options;
  options.fs = FileSystem::Default();
  options.dir = dir;
  options.max_segment_bytes = 4096;
  options.schema = "example schema blob";
  auto w = LogWriter::Create(options, 7, 100);
  ASSERT_TRUE(w.ok()) << w.status();
  std::vector<std::string> payloads;
  for (int i = 0; i < 200; ++i) {
    payloads.push_back(MakePayload(i, 37 + i % 50));
    auto lsn = (*w)->Append(kUpdate, payloads.back());
    ASSERT_TRUE(lsn.ok()) << lsn.status();
    EXPECT_EQ(*lsn, 100u + i);
  }
  ASSERT_TRUE((*w)->Close().ok());
  WriterStats stats = (*w)->stats();
  EXPECT_EQ(stats.last_lsn, 299u);
  EXPECT_EQ(stats.durable_lsn, 299u);

  auto segs = SegmentPaths(dir);
  ASSERT_GT(segs.size(), 3u);
  EXPECT_EQ(stats.segments_created, segs.size());
  EXPECT_EQ(stats.current_segment, 7 + segs.size() - 1);
  EXPECT_EQ(segs.front(), JoinPath(dir, SegmentFileName(7)));
  uint64_t total = 0;
  uint64_t next_first = 100;
  for (const auto& path : segs) {
    std::string bytes = testing::ReadBytes(path);
    total += bytes.size();
    EXPECT_LE(bytes.size(), 4096u) << path;
    auto r = FileReader::Open(FileSystem::Default(), path,
                              RecoveryMode::kStrict, path == segs.back());
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ((*r)->header().schema, "example schema blob");
    EXPECT_EQ((*r)->header().kind, FileKind::kSegment);
    EXPECT_EQ((*r)->header().first_lsn, next_first);
    Record rec;
    while ((*r)->Next(&rec)) next_first = rec.lsn + 1;
    EXPECT_TRUE((*r)->status().ok());
  }
  EXPECT_EQ(next_first, 300u);
  EXPECT_EQ(stats.bytes_written, total);
  // Each segment's salt differs.
  std::string h1 = testing::ReadBytes(segs[0]).substr(40, 8);
  std::string h2 = testing::ReadBytes(segs[1]).substr(40, 8);
  EXPECT_NE(h1, h2);

  LogReaderOptions ro;
  ro.fs = FileSystem::Default();
  ro.dir = dir;
  auto reader = LogReader::Open(ro);
  ASSERT_TRUE(reader.ok());
  Record rec;
  int n = 0;
  while ((*reader)->Next(&rec)) {
    EXPECT_TRUE(rec.payload == payloads[n]) << n;
    ++n;
  }
  EXPECT_EQ(n, 200);
  EXPECT_EQ((*reader)->schema(), "example schema blob");
}

TEST(WriterTest, FlushWritesWithoutSyncAndSyncToGroupsRecords) {
  FaultyFileSystem fs;
  WriterOptions options = WriterOptionsFor(&fs);
  const std::string dir = options.dir;
  auto w = LogWriter::Create(options, 1, 1);
  ASSERT_TRUE(w.ok()) << w.status();
  const int header_syncs = fs.syncs();
  EXPECT_EQ(header_syncs, 1);  // the header is synced by Create
  for (int i = 0; i < 10; ++i) ASSERT_TRUE((*w)->Append(kUpdate, "x").ok());
  EXPECT_GT((*w)->stats().buffered_bytes, 0u);
  // Nothing is written before Flush.
  auto segs = SegmentPaths(dir);
  ASSERT_EQ(segs.size(), 1u);
  const size_t header_size = testing::ReadBytes(segs[0]).size();
  ASSERT_TRUE((*w)->Flush().ok());
  EXPECT_EQ(fs.syncs(), header_syncs);
  EXPECT_EQ((*w)->durable_lsn(), 0u);
  EXPECT_EQ((*w)->stats().buffered_bytes, 0u);
  EXPECT_EQ(testing::ReadBytes(segs[0]).size(), header_size + 10 * 32);
  // Already readable (the page cache has it).
  EXPECT_EQ(ReadLog(dir, RecoveryMode::kStrict).records.size(), 10u);

  ASSERT_TRUE((*w)->SyncTo(5).ok());
  EXPECT_EQ(fs.syncs(), header_syncs + 1);
  EXPECT_EQ((*w)->durable_lsn(), 10u);  // one sync covered everything written
  ASSERT_TRUE((*w)->SyncTo(10).ok());
  EXPECT_EQ(fs.syncs(), header_syncs + 1);  // nothing new: no sync
  ASSERT_TRUE((*w)->Sync().ok());
  EXPECT_EQ(fs.syncs(), header_syncs + 1);
  // SyncTo an LSN not assigned yet syncs what exists.
  ASSERT_TRUE((*w)->Append(kDelete, "y").ok());
  ASSERT_TRUE((*w)->SyncTo(1000).ok());
  EXPECT_EQ((*w)->durable_lsn(), 11u);
  WriterStats stats = (*w)->stats();
  EXPECT_EQ(stats.syncs, 3u);
  EXPECT_EQ(stats.synced_records, 11u);
  EXPECT_EQ(stats.sync_requests, 2u);
  ASSERT_TRUE((*w)->Close().ok());
}

TEST(WriterTest, FlushStartsWritebackOfWhatItWroteAndSyncsNothing) {
  FaultyFileSystem fs;
  WriterOptions options = WriterOptionsFor(&fs);
  const std::string dir = options.dir;
  auto w = LogWriter::Create(options, 1, 1);
  ASSERT_TRUE(w.ok()) << w.status();
  const uint64_t header = (*w)->stats().bytes_written;
  const std::string seg1 = JoinPath(dir, SegmentFileName(1));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE((*w)->Append(kUpdate, std::string(100, 'a' + i)).ok());
  }
  ASSERT_TRUE((*w)->Flush().ok());
  const uint64_t records = 3 * FramedSize(100);
  std::vector<std::string> ops = fs.ops();
  ASSERT_GE(ops.size(), 2u);
  EXPECT_EQ(ops[ops.size() - 2], absl::StrCat("append ", seg1, " ", records));
  EXPECT_EQ(ops.back(),
            absl::StrCat("writeback ", seg1, " ", header, " ", records));
  WriterStats stats = (*w)->stats();
  EXPECT_EQ(stats.writeback_hints, 1u);
  EXPECT_EQ(stats.writeback_hint_failures, 0u);
  EXPECT_EQ(stats.syncs, 1u);  // the header's: a hint is not a sync
  EXPECT_EQ((*w)->durable_lsn(), 0u);

  // A write that is synced at once needs no hint.
  ASSERT_TRUE((*w)->Append(kUpdate, "x").ok());
  ASSERT_TRUE((*w)->Sync().ok());
  EXPECT_EQ((*w)->durable_lsn(), 4u);
  EXPECT_EQ(fs.writebacks(), 1);
  EXPECT_EQ(fs.ops().back(), "sync " + seg1);
  ASSERT_TRUE((*w)->Close().ok());
}

TEST(WriterTest, FailedWritebackHintPoisonsNothing) {
  const std::string dir = NewTempDir();
  FaultyFileSystem fs;
  fs.FailWritebacks();
  WriterOptions options;
  options.fs = &fs;
  options.dir = dir;
  auto w = LogWriter::Create(options, 1, 1);
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE((*w)->Append(kUpdate, "a").ok());
  ASSERT_TRUE((*w)->Append(kUpdate, "b").ok());
  EXPECT_TRUE((*w)->Flush().ok());
  EXPECT_TRUE((*w)->status().ok());
  EXPECT_EQ((*w)->durable_lsn(), 0u);  // and it was not taken for a sync
  ASSERT_TRUE((*w)->Append(kUpdate, "c").ok());
  EXPECT_TRUE((*w)->Flush().ok());
  WriterStats stats = (*w)->stats();
  EXPECT_EQ(stats.writeback_hints, 2u);
  EXPECT_EQ(stats.writeback_hint_failures, 2u);
  EXPECT_TRUE((*w)->Sync().ok());
  EXPECT_EQ((*w)->durable_lsn(), 3u);
  ASSERT_TRUE((*w)->Close().ok());
  auto result = ReadLog(dir, RecoveryMode::kStrict);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.records.size(), 3u);
}

TEST(WriterTest, FlushedRecordsAreNotDurableUntilSynced) {
  // In the fault-injecting model a writeback hint changes nothing: what a
  // Flush wrote is still lost in a crash until an fdatasync covers it.
  FaultInjectionFileSystem fs;
  ASSERT_TRUE(fs.CreateDirs("/db").ok());
  WriterOptions options;
  options.fs = &fs;
  options.dir = "/db";
  auto w = LogWriter::Create(options, 1, 1);
  ASSERT_TRUE(w.ok()) << w.status();
  const uint64_t header = (*w)->stats().bytes_written;
  const std::string seg1 = JoinPath("/db", SegmentFileName(1));
  ASSERT_TRUE((*w)->Append(kUpdate, std::string(500, 'a')).ok());
  ASSERT_TRUE((*w)->Flush().ok());
  EXPECT_EQ(fs.CountOps(FaultInjectionFileSystem::OpKind::kWriteback, seg1),
            1u);
  auto durable = fs.DurableFileBytes(seg1);
  ASSERT_TRUE(durable.ok()) << durable.status();
  EXPECT_EQ(durable->size(), header);
  ASSERT_TRUE((*w)->Sync().ok());
  durable = fs.DurableFileBytes(seg1);
  ASSERT_TRUE(durable.ok()) << durable.status();
  EXPECT_EQ(durable->size(), header + FramedSize(500));
  ASSERT_TRUE((*w)->Close().ok());
}

TEST(WriterTest, OldSegmentIsSyncedBeforeTheNextIsCreated) {
  FaultyFileSystem fs;
  WriterOptions options = WriterOptionsFor(&fs);
  const std::string dir = options.dir;
  options.max_segment_bytes = 200;
  options.preallocate = true;
  auto w = LogWriter::Create(options, 1, 1);
  ASSERT_TRUE(w.ok()) << w.status();
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE((*w)->Append(kUpdate, std::string(30, 'a' + i)).ok());
  }
  ASSERT_TRUE((*w)->Flush().ok());  // writes two segments, syncs at rollover
  const std::string seg1 = JoinPath(dir, SegmentFileName(1));
  const std::string seg2 = JoinPath(dir, SegmentFileName(2));
  std::vector<std::string> ops = fs.ops();
  std::string all;
  for (const auto& op : ops) all += op + "\n";
  auto pos = [&](const std::string& op) {
    return std::find(ops.begin(), ops.end(), op) - ops.begin();
  };
  // seg-1's records are synced, and seg-1 closed, before seg-2 is created.
  const long create2 = pos("create " + seg2);
  ASSERT_LT(create2, static_cast<long>(ops.size())) << all;
  int seg1_syncs_before = 0;
  for (long i = 0; i < create2; ++i) {
    if (ops[i] == "sync " + seg1) ++seg1_syncs_before;
  }
  EXPECT_EQ(seg1_syncs_before, 2) << all;  // header + records
  EXPECT_LT(pos("close " + seg1), create2) << all;
  // The new segment's header is synced, and the directory too, before any
  // record is written to it.
  long i = create2 + 1;
  ASSERT_LT(i + 3, static_cast<long>(ops.size())) << all;
  EXPECT_THAT(ops[i++], HasSubstr("append " + seg2)) << all;
  EXPECT_EQ(ops[i++], "sync " + seg2) << all;
  EXPECT_EQ(ops[i++], "syncdir " + dir) << all;
  EXPECT_THAT(ops[i++], HasSubstr("append " + seg2)) << all;
  EXPECT_EQ((*w)->durable_lsn(), 2u);  // seg-1's records, synced at rollover
  ASSERT_TRUE((*w)->Close().ok());
  EXPECT_EQ((*w)->durable_lsn(), 4u);
  // Preallocation keeps the size: the file holds just what was written.
  auto result = ReadLog(dir, RecoveryMode::kStrict);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.records.size(), 4u);
}

TEST(WriterTest, ArgumentAndStateErrors) {
  const std::string dir = NewTempDir();
  WriterOptions options;
  options.fs = FileSystem::Default();
  options.dir = dir;
  EXPECT_EQ(LogWriter::Create(options, 1, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  WriterOptions no_fs = options;
  no_fs.fs = nullptr;
  EXPECT_EQ(LogWriter::Create(no_fs, 1, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto w = LogWriter::Create(options, 1, 1);
  ASSERT_TRUE(w.ok());
  // The segment exists now: a second writer must not truncate it.
  auto again = LogWriter::Create(options, 1, 1);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  // Missing directory.
  WriterOptions missing = options;
  missing.dir = dir + "/nope";
  EXPECT_FALSE(LogWriter::Create(missing, 1, 1).ok());

  EXPECT_EQ((*w)->Append(kInvalid, "x").status().code(),
            absl::StatusCode::kInvalidArgument);
  std::string huge(kMaxRecordSize + 1, 'h');
  EXPECT_EQ((*w)->Append(kUpdate, huge).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Neither poisoned the writer.
  EXPECT_TRUE((*w)->status().ok());
  auto lsn = (*w)->Append(kUpdate, "ok");
  ASSERT_TRUE(lsn.ok());
  EXPECT_EQ(*lsn, 1u);
  ASSERT_TRUE((*w)->Close().ok());
  EXPECT_TRUE((*w)->Close().ok());  // idempotent
  EXPECT_EQ((*w)->Append(kUpdate, "late").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE((*w)->Flush().ok());
  EXPECT_FALSE((*w)->SyncTo(1).ok());
  EXPECT_EQ(ReadLog(dir, RecoveryMode::kStrict).records.size(), 1u);
}

TEST(WriterTest, StartAndFinishRecordEncodeWhatEncodeRecordDoes) {
  for (size_t size : {0, 1, 7, 8, 9, 23, 24, 25, 100, 4096}) {
    const std::string payload = MakePayload(size, size);
    std::string want = "prefix";
    EncodeRecord(0x1234, 77, kTickEntry, payload, &want);
    std::string got = "prefix";
    char* p = StartRecord(size, &got);
    ASSERT_EQ(p, got.data() + 6 + kRecordHeaderSize);
    ASSERT_EQ(got.size(), 6 + FramedSize(size));
    if (size > 0) std::memcpy(p, payload.data(), size);
    FinishRecord(0x1234, 77, kTickEntry, size, p - kRecordHeaderSize);
    EXPECT_TRUE(got == want) << size;
  }
}

// The payload `encode` writes in place: the bytes of `payload`.
absl::StatusOr<uint64_t> AppendInPlace(LogWriter* w, uint8_t type,
                                       const std::string& payload) {
  return w->AppendEncoded(type, payload.size(), [&](char* p) {
    if (!payload.empty()) std::memcpy(p, payload.data(), payload.size());
    return absl::OkStatus();
  });
}

TEST(WriterTest, AppendEncodedWritesTheFramesAppendWrites) {
  const std::string dir = NewTempDir();
  WriterOptions options;
  options.fs = FileSystem::Default();
  options.dir = dir;
  auto w = LogWriter::Create(options, 1, 1);
  ASSERT_TRUE(w.ok()) << w.status();
  std::vector<ExpectedRecord> written;
  const std::vector<size_t> sizes = {0, 1, 7, 8, 9, 100, 4096, 3, 0, 17};
  for (size_t i = 0; i < sizes.size(); ++i) {
    ExpectedRecord r;
    r.type = i % 2 == 0 ? kTickEntry : kUpdate;
    r.payload = MakePayload(i + 1, sizes[i]);
    auto lsn = i % 3 == 0 ? (*w)->Append(r.type, r.payload)
                          : AppendInPlace(w->get(), r.type, r.payload);
    ASSERT_TRUE(lsn.ok()) << lsn.status();
    r.lsn = *lsn;
    EXPECT_EQ(r.lsn, i + 1);
    written.push_back(r);
  }
  EXPECT_EQ((*w)->stats().buffered_bytes, [&] {
    uint64_t n = 0;
    for (size_t s : sizes) n += FramedSize(s);
    return n;
  }());
  ASSERT_TRUE((*w)->Close().ok());

  // The file byte for byte: its header, then each record framed by
  // EncodeRecord, the first flagged as following a sync (of the header).
  const std::string file = testing::ReadBytes(SegmentPaths(dir).front());
  FileHeader header;
  std::string detail;
  ASSERT_EQ(DecodeFileHeader(file, &header, &detail), HeaderStatus::kOk)
      << detail;
  std::string want = file.substr(0, header.header_size);
  for (const ExpectedRecord& r : written) {
    const size_t start = want.size();
    EncodeRecord(header.salt, r.lsn, r.type, r.payload, &want);
    if (start == header.header_size) {
      SetRecordFlags(header.salt, kRecordFlagAfterSync, &want[start],
                     want.size() - start);
    }
  }
  EXPECT_TRUE(file == want);
  auto result = ReadLog(dir, RecoveryMode::kStrict);
  ASSERT_TRUE(result.status.ok()) << result.status;
  ExpectSameRecords(written, result.records);
}

TEST(WriterTest, FailedEncodeAppendsNothing) {
  const std::string dir = NewTempDir();
  WriterOptions options;
  options.fs = FileSystem::Default();
  options.dir = dir;
  // Room for one 40-byte record per segment: the second record of a segment
  // starts the next one, also when its encode then fails.
  options.max_segment_bytes = 200;
  auto w = LogWriter::Create(options, 1, 1);
  ASSERT_TRUE(w.ok()) << w.status();
  const absl::Status broken = absl::InternalError("encoder broke");
  auto fail = [&](char* p) {
    std::memset(p, 'x', 40);  // half written, then given up
    return broken;
  };
  std::vector<ExpectedRecord> written;
  for (int i = 0; i < 6; ++i) {
    if (i % 2 == 1) {
      const WriterStats before = (*w)->stats();
      auto failed = (*w)->AppendEncoded(kTickEntry, 40, fail);
      EXPECT_EQ(failed.status(), broken);
      EXPECT_TRUE((*w)->status().ok());  // not an I/O error: no poison
      const WriterStats after = (*w)->stats();
      EXPECT_EQ(after.last_lsn, before.last_lsn);
      EXPECT_EQ(after.current_segment_bytes - before.current_segment_bytes,
                after.buffered_bytes - before.buffered_bytes)
          << "only a new segment's header may have been added";
    }
    ExpectedRecord r;
    r.type = kTickEntry;
    r.payload = MakePayload(i, 40);
    auto lsn = AppendInPlace(w->get(), r.type, r.payload);
    ASSERT_TRUE(lsn.ok()) << lsn.status();
    r.lsn = *lsn;
    written.push_back(r);
    if (i == 2) {
      ASSERT_TRUE((*w)->Flush().ok());
    }
  }
  for (size_t i = 0; i < written.size(); ++i) {
    EXPECT_EQ(written[i].lsn, i + 1);
  }
  ASSERT_TRUE((*w)->Close().ok());
  auto result = ReadLog(dir, RecoveryMode::kStrict);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_TRUE(result.report.problems.empty()) << Describe(result.report);
  ExpectSameRecords(written, result.records);
  EXPECT_GE(SegmentPaths(dir).size(), 3u);
}

TEST(WriterTest, AppendEncodedChecksEverythingBeforeEncoding) {
  FaultyFileSystem fs;
  WriterOptions options = WriterOptionsFor(&fs);
  auto w = LogWriter::Create(options, 1, 1);
  ASSERT_TRUE(w.ok()) << w.status();
  int calls = 0;
  auto count = [&](char*) {
    ++calls;
    return absl::OkStatus();
  };
  EXPECT_EQ((*w)->AppendEncoded(kInvalid, 1, count).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*w)->AppendEncoded(kUpdate, size_t{kMaxRecordSize} + 1, count)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(calls, 0);
  EXPECT_TRUE((*w)->status().ok());
  auto ok = (*w)->AppendEncoded(kUpdate, 0, count);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(*ok, 1u);
  EXPECT_EQ(calls, 1);
  // A poisoned writer refuses before encoding too.
  fs.FailAppendNumber(1);
  absl::Status s = (*w)->Flush();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ((*w)->AppendEncoded(kUpdate, 1, count).status(), s);
  EXPECT_EQ(calls, 1);
}

TEST(WriterTest, MaxSizeRecordRoundTrips) {
  const std::string dir = NewTempDir();
  auto written = testing::WriteLog(dir, {3, kMaxRecordSize, 3}, 1 << 20);
  ASSERT_EQ(written.size(), 3u);
  auto result = ReadLog(dir, RecoveryMode::kStrict);
  ASSERT_TRUE(result.status.ok()) << result.status;
  ExpectSameRecords(written, result.records);
  EXPECT_EQ(SegmentPaths(dir).size(), 3u);
}

TEST(WriterTest, CreateSyncsThePreviousSegmentFirst) {
  // A new segment must never become durable ahead of records that recovery
  // read from the page cache (a process crash, or a failed fdatasync).
  const std::string dir = NewTempDir();
  testing::WriteLog(dir, {10, 10}, 1 << 20);
  FaultyFileSystem fs;
  WriterOptions options;
  options.fs = &fs;
  options.dir = dir;
  auto w = LogWriter::Create(options, 2, 3);
  ASSERT_TRUE(w.ok()) << w.status();
  const std::string seg1 = JoinPath(dir, SegmentFileName(1));
  const std::string seg2 = JoinPath(dir, SegmentFileName(2));
  std::vector<std::string> ops = fs.ops();
  ASSERT_GE(ops.size(), 4u);
  EXPECT_EQ(ops[0], "reopen " + seg1);
  EXPECT_EQ(ops[1], "sync " + seg1);
  EXPECT_EQ(ops[2], "close " + seg1);
  EXPECT_EQ(ops[3], "create " + seg2);
  EXPECT_EQ((*w)->stats().syncs, 2u);  // seg-1, then seg-2's header
  ASSERT_TRUE((*w)->Close().ok());
  // A failure there fails Create, saying what to do.
  fs.FailSyncNumber(1);
  absl::StatusOr<std::unique_ptr<LogWriter>> w3 =
      LogWriter::Create(options, 3, 3);
  ASSERT_FALSE(w3.ok());
  EXPECT_THAT(std::string(w3.status().message()), HasSubstr(seg2));
  EXPECT_THAT(std::string(w3.status().message()),
              HasSubstr("reopen the store"));
  EXPECT_EQ(SegmentPaths(dir).size(), 2u);  // no seg-3
}

// --- poisoning -------------------------------------------------------------

TEST(WriterPoisonTest, FailedSyncPoisonsForeverAndIsNeverRetried) {
  FaultyFileSystem fs;
  WriterOptions options = WriterOptionsFor(&fs);
  const std::string dir = options.dir;
  auto w = LogWriter::Create(options, 1, 1);
  ASSERT_TRUE(w.ok()) << w.status();
  const std::string seg1 = JoinPath(dir, SegmentFileName(1));

  auto a = (*w)->Append(kUpdate, "first");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE((*w)->SyncTo(*a).ok());
  const int syncs_before = fs.syncs_of(seg1);

  auto b = (*w)->Append(kUpdate, "second");
  ASSERT_TRUE(b.ok());
  fs.FailSyncNumber(1);
  absl::Status s = (*w)->SyncTo(*b);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr(seg1));
  EXPECT_THAT(std::string(s.message()), HasSubstr("offset"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("Fix the cause"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("reopen the store"));
  EXPECT_EQ(fs.syncs_of(seg1), syncs_before + 1);
  EXPECT_EQ((*w)->durable_lsn(), *a);
  // The unacknowledged record was cut off: what a reopen reads is durable.
  EXPECT_THAT(std::string(s.message()), HasSubstr("were cut off"));
  EXPECT_EQ(testing::ReadBytes(seg1).size(), 64u + 32u);
  auto read = ReadLog(dir, RecoveryMode::kStrict);
  ASSERT_TRUE(read.status.ok()) << read.status;
  EXPECT_EQ(read.records.size(), 1u);

  // Everything after fails with the same error; no sync is attempted again.
  EXPECT_EQ((*w)->status(), s);
  EXPECT_EQ((*w)->Append(kUpdate, "third").status(), s);
  EXPECT_EQ((*w)->SyncTo(*b), s);
  EXPECT_EQ((*w)->SyncTo(*a), s);  // even for an LSN that was durable
  EXPECT_EQ((*w)->Sync(), s);
  EXPECT_EQ((*w)->Flush(), s);
  EXPECT_EQ((*w)->Close(), s);
  EXPECT_EQ(fs.syncs_of(seg1), syncs_before + 1);
  EXPECT_EQ((*w)->stats().durable_lsn, *a);
}

TEST(WriterPoisonTest, FailedCutBackAfterAFailedSyncAdvisesARestart) {
  FaultyFileSystem fs;
  WriterOptions options = WriterOptionsFor(&fs);
  const std::string dir = options.dir;
  auto w = LogWriter::Create(options, 1, 1);
  ASSERT_TRUE(w.ok()) << w.status();
  auto a = (*w)->Append(kUpdate, "a");
  ASSERT_TRUE(a.ok());
  fs.FailSyncNumber(1);
  fs.FailTruncate();
  absl::Status s = (*w)->SyncTo(*a);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("failed too"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("restart the machine"));
  const std::string seg1 = JoinPath(dir, SegmentFileName(1));
  EXPECT_EQ(fs.ops().back(), "truncate " + seg1 + " 64");
}

TEST(WriterPoisonTest, WaitersOfAFailedGroupAllGetTheError) {
  FaultyFileSystem fs;
  WriterOptions options = WriterOptionsFor(&fs);
  auto w = LogWriter::Create(options, 1, 1);
  ASSERT_TRUE(w.ok()) << w.status();
  LogWriter* writer = w->get();
  fs.FailSyncNumber(1);
  constexpr int kThreads = 6;
  std::vector<absl::Status> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto lsn = writer->Append(kUpdate, "payload");
      if (!lsn.ok()) {
        results[t] = lsn.status();
        return;
      }
      results[t] = writer->SyncTo(*lsn);
    });
  }
  for (auto& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_FALSE(results[t].ok()) << "thread " << t;
  }
  EXPECT_EQ(fs.syncs(), 2);  // the header's, then the failed one
  EXPECT_EQ(writer->durable_lsn(), 0u);
}

TEST(WriterPoisonTest, FailedAppendPoisons) {
  FaultyFileSystem fs;
  WriterOptions options = WriterOptionsFor(&fs);
  auto w = LogWriter::Create(options, 1, 1);
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE((*w)->Append(kUpdate, "a").ok());
  fs.FailAppendNumber(1);
  absl::Status s = (*w)->Flush();
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("offset"));
  EXPECT_THAT(std::string(s.message()), HasSubstr(SegmentFileName(1)));
  const int syncs = fs.syncs();
  EXPECT_EQ((*w)->Sync(), s);
  EXPECT_EQ((*w)->Append(kUpdate, "b").status(), s);
  EXPECT_EQ(fs.syncs(), syncs);
}

TEST(WriterPoisonTest, FailedSegmentCreatePoisons) {
  FaultyFileSystem fs;
  WriterOptions options = WriterOptionsFor(&fs);
  const std::string dir = options.dir;
  options.max_segment_bytes = 128;
  auto w = LogWriter::Create(options, 1, 1);
  ASSERT_TRUE(w.ok()) << w.status();
  fs.FailCreate(SegmentFileName(2));
  auto a = (*w)->Append(kUpdate, std::string(20, 'a'));
  auto b = (*w)->Append(kUpdate, std::string(20, 'b'));  // starts seg-2
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*w)->stats().current_segment, 2u);
  absl::Status s = (*w)->SyncTo(*b);
  ASSERT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(SegmentFileName(2)));
  // seg-1 was synced before the create was attempted.
  EXPECT_EQ((*w)->durable_lsn(), *a);
  EXPECT_EQ((*w)->SyncTo(*b), s);
  auto result = ReadLog(dir, RecoveryMode::kStrict);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.records.size(), 1u);
}

}  // namespace
}  // namespace log
}  // namespace walstate
