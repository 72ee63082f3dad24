// Exhaustive damage sweeps over small multi-segment logs:
//  - truncation of the last segment at every byte offset;
//  - truncation of an earlier segment at every byte offset;
//  - every single-bit flip of every file.
// Invariants: no altered record is ever returned, what comes back is exactly
// what the damage allows, and damage before the tail is never silently
// dropped. (The tail is the last sync group of the last segment: a crash may
// tear unsynced writes anywhere, so damage there is a torn tail, reported.)
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/log/test_util.h"

namespace walstate {
namespace log {
namespace {

using testing::Describe;
using testing::ExpectedRecord;
using testing::FrameEnds;
using testing::NewTempDir;
using testing::ReadBytes;
using testing::ReadLog;
using testing::ReadResult;
using testing::SegmentPaths;
using testing::WriteBytes;

constexpr RecoveryMode kStrict = RecoveryMode::kStrict;
constexpr RecoveryMode kTolerant = RecoveryMode::kTolerateTornTail;
constexpr RecoveryMode kSalvage = RecoveryMode::kSalvage;

// Returns "" if every record of `got` equals the written one with its LSN
// and LSNs increase, else a description of the first violation.
std::string CheckGenuine(const std::vector<ExpectedRecord>& written,
                         const std::vector<ExpectedRecord>& got) {
  uint64_t prev = 0;
  for (const auto& r : got) {
    if (r.lsn <= prev) return absl::StrCat("LSN ", r.lsn, " after ", prev);
    prev = r.lsn;
    if (r.lsn < 1 || r.lsn > written.size()) {
      return absl::StrCat("invented LSN ", r.lsn);
    }
    const ExpectedRecord& w = written[r.lsn - 1];
    if (w.type != r.type || w.payload != r.payload) {
      return absl::StrCat("LSN ", r.lsn, " altered");
    }
  }
  return "";
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

struct Layout {
  std::vector<std::string> segs;
  std::vector<std::vector<uint64_t>> ends;  // per segment: header end, ends
  std::vector<uint64_t> first_lsn;          // per segment
};

Layout Inspect(const std::string& dir) {
  Layout l;
  l.segs = SegmentPaths(dir);
  uint64_t lsn = 1;
  for (const auto& s : l.segs) {
    l.ends.push_back(FrameEnds(s));
    l.first_lsn.push_back(lsn);
    lsn += l.ends.back().size() - 1;
  }
  return l;
}

std::vector<size_t> VariedSizes(int n, size_t max) {
  std::vector<size_t> sizes;
  for (int i = 0; i < n; ++i) sizes.push_back((i * 37 + i * i * 5) % max);
  return sizes;
}

TEST(SweepTest, TruncateLastSegmentAtEveryOffset) {
  const auto start = std::chrono::steady_clock::now();
  const std::string dir = NewTempDir();
  auto written = testing::WriteLog(dir, VariedSizes(40, 200), 1024);
  Layout l = Inspect(dir);
  ASSERT_GE(l.segs.size(), 3u);
  const size_t last = l.segs.size() - 1;
  ASSERT_GE(l.ends[last].size(), 5u) << "want several records in the last";
  const std::string full = ReadBytes(l.segs[last]);
  const std::vector<uint64_t>& ends = l.ends[last];
  const uint64_t earlier = l.first_lsn[last] - 1;  // records before it

  int torn = 0, clean = 0;
  for (uint64_t cut = 0; cut <= full.size(); ++cut) {
    WriteBytes(l.segs[last], full.substr(0, cut));
    SCOPED_TRACE(absl::StrCat("cut at ", cut, " of ", full.size()));
    // Records of the last segment that end at or before the cut.
    uint64_t complete = 0;
    uint64_t good_end = 0;
    bool boundary = false;
    for (size_t i = 0; i < ends.size(); ++i) {
      if (ends[i] <= cut) {
        complete = i;
        good_end = ends[i];
      }
      if (ends[i] == cut) boundary = true;
    }
    ReadResult r = ReadLog(dir, kTolerant);
    ASSERT_TRUE(r.status.ok()) << r.status;
    ASSERT_EQ(r.records.size(), earlier + complete);
    ASSERT_EQ(CheckGenuine(written, r.records), "");
    ASSERT_EQ(r.report.has_torn_tail(), !boundary) << Describe(r.report);
    ASSERT_FALSE(r.report.has_corruption()) << Describe(r.report);
    ASSERT_EQ(r.report.last_good_file, l.segs[last]);
    ASSERT_EQ(r.report.last_good_offset, good_end);
    ASSERT_EQ(r.report.torn_bytes, cut - good_end);
    boundary ? ++clean : ++torn;

    ReadResult s = ReadLog(dir, kStrict);
    ASSERT_EQ(s.status.ok(), boundary) << s.status;
    ReadResult v = ReadLog(dir, kSalvage);
    ASSERT_TRUE(v.status.ok());
    ASSERT_EQ(v.records.size(), r.records.size());
  }
  WriteBytes(l.segs[last], full);
  EXPECT_EQ(clean, static_cast<int>(ends.size()));
  std::printf("truncation sweep: %zu cuts (%d clean, %d torn) in %.2f s\n",
              full.size() + 1, clean, torn, SecondsSince(start));
}

TEST(SweepTest, TruncateEarlierSegmentAtEveryOffsetIsNeverSilent) {
  const auto start = std::chrono::steady_clock::now();
  const std::string dir = NewTempDir();
  auto written = testing::WriteLog(dir, VariedSizes(30, 150), 800);
  Layout l = Inspect(dir);
  ASSERT_GE(l.segs.size(), 3u);
  const std::string full = ReadBytes(l.segs[1]);
  for (uint64_t cut = 0; cut < full.size(); ++cut) {
    WriteBytes(l.segs[1], full.substr(0, cut));
    SCOPED_TRACE(absl::StrCat("cut at ", cut, " of ", full.size()));
    ReadResult r = ReadLog(dir, kTolerant);
    ASSERT_EQ(r.status.code(), absl::StatusCode::kDataLoss) << r.status;
    ASSERT_TRUE(r.report.has_corruption());
    ASSERT_EQ(CheckGenuine(written, r.records), "");
    ReadResult v = ReadLog(dir, kSalvage);
    ASSERT_TRUE(v.status.ok()) << v.status;
    ASSERT_TRUE(v.report.has_corruption());
    ASSERT_EQ(CheckGenuine(written, v.records), "");
    // Everything after the damaged segment still comes back.
    ASSERT_FALSE(v.records.empty());
    ASSERT_EQ(v.records.back().lsn, written.size());
  }
  WriteBytes(l.segs[1], full);
  std::printf("earlier-segment truncation sweep: %zu cuts in %.2f s\n",
              full.size(), SecondsSince(start));
}

// One test per segment, so that sharded runs (and sanitizer builds) stay
// short; each builds the same small log (only the salts differ).
class FlipSweepTest : public ::testing::TestWithParam<int> {};

TEST_P(FlipSweepTest, FlipEveryBitOfOneSegment) {
  const auto start = std::chrono::steady_clock::now();
  const std::string dir = NewTempDir();
  // Synced in groups of three records: damage inside the last group of the
  // last segment is indistinguishable from a torn unsynced write.
  auto written = testing::WriteLog(dir, VariedSizes(24, 160), 700, {}, 3);
  Layout l = Inspect(dir);
  ASSERT_EQ(l.segs.size(), 5u);
  uint64_t total_bytes = 0;
  for (const auto& s : l.segs) total_bytes += ReadBytes(s).size();
  ASSERT_LE(total_bytes, 4096u);
  const size_t n = written.size();
  const size_t last_seg = l.segs.size() - 1;
  // Where the last sync group of the last segment starts.
  const std::vector<uint64_t> synced =
      testing::SyncedFrameOffsets(l.segs[last_seg]);
  ASSERT_FALSE(synced.empty());
  const uint64_t last_group = synced.back();
  ASSERT_LT(last_group, l.ends[last_seg][l.ends[last_seg].size() - 2])
      << "want a last group of several records";

  const size_t seg = static_cast<size_t>(GetParam());
  uint64_t flips = 0, torn = 0, corrupt = 0;
  const std::string original = ReadBytes(l.segs[seg]);
  const std::vector<uint64_t>& ends = l.ends[seg];
  for (uint64_t off = 0; off < original.size(); ++off) {
    // Which record (0-based within the segment) this byte belongs to.
    int rec = -1;
    for (size_t i = 0; i + 1 < ends.size(); ++i) {
      if (off >= ends[i] && off < ends[i + 1]) rec = static_cast<int>(i);
    }
    const uint64_t lsn = rec < 0 ? 0 : l.first_lsn[seg] + rec;
    const bool in_last_group =
        seg == last_seg && rec >= 0 && ends[rec] >= last_group;
    for (int bit = 0; bit < 8; ++bit) {
      testing::WriteAt(
          l.segs[seg], off,
          std::string(1, static_cast<char>(original[off] ^ (1 << bit))));
      SCOPED_TRACE(absl::StrCat("segment ", seg + 1, " offset ", off, " bit ",
                                bit, " (LSN ", lsn, ")"));
      ++flips;

      ReadResult r = ReadLog(dir, kTolerant);
      ASSERT_EQ(CheckGenuine(written, r.records), "");
      if (in_last_group) {
        // Indistinguishable from a torn append: cut, and reported.
        ASSERT_TRUE(r.status.ok()) << r.status;
        ASSERT_EQ(r.records.size(), lsn - 1);
        ASSERT_TRUE(r.report.has_torn_tail());
        ASSERT_FALSE(r.report.has_corruption());
        ++torn;
      } else {
        ASSERT_FALSE(r.status.ok());
        ASSERT_TRUE(r.report.has_corruption()) << Describe(r.report);
        if (rec >= 0) {
          // Exactly the records before the damaged one.
          ASSERT_EQ(r.records.size(), lsn - 1);
        }
        ++corrupt;
      }

      ReadResult s = ReadLog(dir, kStrict);
      ASSERT_FALSE(s.status.ok());
      ASSERT_EQ(CheckGenuine(written, s.records), "");

      ReadResult v = ReadLog(dir, kSalvage);
      ASSERT_EQ(CheckGenuine(written, v.records), "");
      ASSERT_FALSE(v.report.problems.empty());
      if (in_last_group) {
        // A torn tail for salvage too: the unsynced rest is dropped.
        ASSERT_TRUE(v.status.ok()) << v.status;
        ASSERT_EQ(v.records.size(), lsn - 1) << Describe(v.report);
      } else if (rec >= 0) {
        // Salvage loses exactly the damaged record.
        ASSERT_TRUE(v.status.ok()) << v.status;
        ASSERT_EQ(v.records.size(), n - 1) << Describe(v.report);
        for (const auto& got : v.records) ASSERT_NE(got.lsn, lsn);
      }
    }
    testing::WriteAt(l.segs[seg], off, original.substr(off, 1));
  }
  ASSERT_EQ(ReadBytes(l.segs[seg]), original);
  ASSERT_TRUE(ReadLog(dir, kStrict).status.ok());
  std::printf(
      "bit-flip sweep, segment %zu of %zu (%llu bytes of %llu): %llu flips "
      "(%llu torn tail, %llu corruption) in %.2f s\n",
      seg + 1, l.segs.size(), static_cast<unsigned long long>(original.size()),
      static_cast<unsigned long long>(total_bytes),
      static_cast<unsigned long long>(flips),
      static_cast<unsigned long long>(torn),
      static_cast<unsigned long long>(corrupt), SecondsSince(start));
}

INSTANTIATE_TEST_SUITE_P(EverySegment, FlipSweepTest, ::testing::Range(0, 5));

}  // namespace
}  // namespace log
}  // namespace walstate
