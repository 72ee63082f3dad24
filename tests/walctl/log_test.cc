// walctl dump and verify on logs written by the real LogWriter, intact and
// damaged in the classic ways; and on random directory images.
#include <sys/stat.h>

#include <chrono>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "engine/log/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/walctl/walctl_test_util.h"
#include "tools/walctl/common.h"
#include "walstate/version.h"

namespace walstate {
namespace walctl_test {
namespace {

using ::testing::HasSubstr;

// Small segments so that 40 records span several files.
constexpr uint64_t kSegmentBytes = 512;

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = NewTempDir("log");
    segments_ = WriteLog(dir_, SimpleRecords(40), kSegmentBytes);
    ASSERT_GE(segments_.size(), 3u);
  }
  std::string Name(size_t i) const {
    return segments_[i].substr(segments_[i].rfind('/') + 1);
  }
  std::string dir_;
  std::vector<std::string> segments_;
};

// Where every record of a segment ends, from `dump --json`; `first` gets the
// offset of the first record (the end of the file header).
std::vector<uint64_t> RecordEnds(const std::string& dir,
                                 const std::string& name,
                                 uint64_t* first = nullptr) {
  RunResult r = RunWalctl({"dump", dir, "--json"});
  std::vector<uint64_t> ends;
  for (const std::string& line : Lines(r.out)) {
    auto v = ParseJson(line);
    const auto& f = v.struct_value().fields();
    if (f.at("entry").string_value() != "record") continue;
    if (f.at("file").string_value() != name) continue;
    uint64_t off = static_cast<uint64_t>(f.at("offset").number_value());
    uint64_t len = static_cast<uint64_t>(f.at("length").number_value());
    if (ends.empty() && first != nullptr) *first = off;
    ends.push_back(off + log::FramedSize(len));
  }
  return ends;
}

TEST_F(LogTest, CleanLogVerifiesAndDumpsEveryRecordInOrder) {
  RunResult v = RunWalctl({"verify", dir_});
  EXPECT_EQ(v.code, 0) << v.out << v.err;
  EXPECT_THAT(v.out, HasSubstr("40 records, lsn 1..40"));
  EXPECT_THAT(v.out, HasSubstr("result: clean"));
  EXPECT_EQ(v.err, "");

  RunResult d = RunWalctl({"dump", dir_});
  EXPECT_EQ(d.code, 0) << d.err;
  uint64_t lsn = 0;
  std::set<std::string> files;
  for (const std::string& line : Lines(d.out)) {
    if (line[0] == '#') continue;
    // file off=N lsn=N type=update len=N session=sN ...
    std::vector<std::string> parts = absl::StrSplit(line, ' ');
    ASSERT_GE(parts.size(), 5u) << line;
    files.insert(parts[0]);
    EXPECT_TRUE(absl::StartsWith(parts[1], "off=")) << line;
    EXPECT_EQ(parts[2], absl::StrCat("lsn=", lsn + 1)) << line;
    EXPECT_EQ(parts[3], "type=update") << line;
    EXPECT_THAT(line, HasSubstr(absl::StrCat("session=s", lsn + 1, " ")));
    EXPECT_THAT(line, HasSubstr("tier=immediate"));
    ++lsn;
  }
  EXPECT_EQ(lsn, 40u);
  EXPECT_EQ(files.size(), segments_.size());
}

TEST_F(LogTest, DumpJsonIsOneObjectPerLine) {
  RunResult d = RunWalctl({"dump", dir_, "--json"});
  ASSERT_EQ(d.code, 0) << d.err;
  int records = 0, files = 0;
  uint64_t last_lsn = 0;
  for (const std::string& line : Lines(d.out)) {
    auto v = ParseJson(line);
    const auto& f = v.struct_value().fields();
    const std::string entry = f.at("entry").string_value();
    if (entry == "file") {
      ++files;
      EXPECT_EQ(f.at("kind").string_value(), "segment");
      continue;
    }
    ASSERT_EQ(entry, "record") << line;
    ++records;
    uint64_t lsn = static_cast<uint64_t>(f.at("lsn").number_value());
    EXPECT_EQ(lsn, last_lsn + 1);
    last_lsn = lsn;
    EXPECT_EQ(f.at("type").string_value(), "update");
    EXPECT_EQ(f.at("session").string_value(), absl::StrCat("s", lsn));
    EXPECT_GT(f.at("offset").number_value(), 0);
    EXPECT_TRUE(f.count("length"));
    EXPECT_TRUE(f.count("file"));
  }
  EXPECT_EQ(records, 40);
  EXPECT_EQ(files, static_cast<int>(segments_.size()));
}

TEST_F(LogTest, DumpFilters) {
  RunResult d = RunWalctl(
      {"dump", dir_, "--from-lsn", "5", "--to-lsn=7", "--type", "update"});
  ASSERT_EQ(d.code, 0) << d.err;
  int n = 0;
  for (const std::string& line : Lines(d.out)) {
    if (line[0] == '#') continue;
    EXPECT_THAT(line, HasSubstr(absl::StrCat("lsn=", 5 + n, " ")));
    ++n;
  }
  EXPECT_EQ(n, 3);

  d = RunWalctl({"dump", dir_, "--session", "s12"});
  ASSERT_EQ(d.code, 0);
  n = 0;
  for (const std::string& line : Lines(d.out)) {
    if (line[0] != '#') ++n;
  }
  EXPECT_EQ(n, 1);

  d = RunWalctl({"dump", dir_, "--type", "delete"});
  for (const std::string& line : Lines(d.out)) EXPECT_EQ(line[0], '#');

  d = RunWalctl({"dump", dir_, "--hex", "--to-lsn", "1"});
  EXPECT_THAT(d.out, HasSubstr("hex=0a027331"));  // field 1, "s1"
}

TEST_F(LogTest, TornTailAtEveryOffsetOfTheLastSegment) {
  const std::string last = segments_.back();
  const std::string name = Name(segments_.size() - 1);
  const std::string original = ReadFile(last);
  uint64_t header_end = 0;
  const std::vector<uint64_t> ends = RecordEnds(dir_, name, &header_end);
  ASSERT_FALSE(ends.empty());
  ASSERT_GT(header_end, 0u);
  for (uint64_t cut = 0; cut < original.size(); ++cut) {
    WriteFile(last, original.substr(0, cut));
    RunResult v = RunWalctl({"verify", dir_});
    uint64_t good = 0;
    bool boundary = false;
    for (uint64_t e : ends) {
      if (e == cut) boundary = true;
      if (e <= cut) good = e;
    }
    if (boundary) {
      // Exactly at a record boundary: nothing is torn.
      EXPECT_EQ(v.code, 0) << "cut " << cut << "\n" << v.out;
      continue;
    }
    if (v.code == 0) {
      // Only a cut right after the header leaves a clean (empty) segment;
      // a cut inside the header is a torn header (exit 1 below).
      EXPECT_EQ(cut, header_end);
      continue;
    }
    ASSERT_EQ(v.code, 1) << "cut " << cut << "\n" << v.out;
    EXPECT_THAT(v.out, HasSubstr("result: torn tail only"));
    if (good > 0) {
      EXPECT_THAT(
          v.out, HasSubstr(absl::StrCat("last good: ", name, " offset ", good)))
          << "cut " << cut << "\n"
          << v.out;
    }
  }
}

TEST_F(LogTest, TornTailReportsFileOffsetAndLastGood) {
  const std::string last = segments_.back();
  const std::vector<uint64_t> ends =
      RecordEnds(dir_, Name(segments_.size() - 1));
  ASSERT_GE(ends.size(), 2u);
  TruncateFile(last, ends.back() - 5);
  RunResult v = RunWalctl({"verify", dir_});
  EXPECT_EQ(v.code, 1) << v.out;
  const uint64_t good = ends[ends.size() - 2];
  EXPECT_THAT(v.out, HasSubstr(absl::StrCat("problem: torn-tail ",
                                            Name(segments_.size() - 1),
                                            " offset ", good)));
  EXPECT_THAT(v.out,
              HasSubstr(absl::StrCat("last good: ", Name(segments_.size() - 1),
                                     " offset ", good, " (lsn 39)")));
  // dump still shows everything before the tail and says so by exit code.
  RunResult d = RunWalctl({"dump", dir_});
  EXPECT_EQ(d.code, 1);
  EXPECT_THAT(d.out, HasSubstr("lsn=39 "));
  EXPECT_THAT(d.out, Not(HasSubstr("lsn=40 ")));
  EXPECT_THAT(d.out, HasSubstr("! torn-tail"));
}

TEST_F(LogTest, ZeroFilledTailIsTorn) {
  WriteFile(segments_.back(),
            ReadFile(segments_.back()) + std::string(4096, '\0'));
  RunResult v = RunWalctl({"verify", dir_});
  EXPECT_EQ(v.code, 1) << v.out;
  EXPECT_THAT(v.out, HasSubstr("zeros"));
}

TEST_F(LogTest, BadChecksumBeforeTheTailIsDamage) {
  // A record in the middle of the last segment: a valid record follows it.
  const std::vector<uint64_t> ends =
      RecordEnds(dir_, Name(segments_.size() - 1));
  ASSERT_GE(ends.size(), 3u);
  FlipByte(segments_.back(), ends[0] + 30);  // payload of the second record
  RunResult v = RunWalctl({"verify", dir_});
  EXPECT_EQ(v.code, 2) << v.out;
  EXPECT_THAT(v.out, HasSubstr(absl::StrCat("problem: corruption ",
                                            Name(segments_.size() - 1),
                                            " offset ", ends[0])));
  EXPECT_THAT(v.out, HasSubstr("checksum mismatch"));
  EXPECT_THAT(v.out, HasSubstr("result: damage"));
}

TEST_F(LogTest, DamageInAnEarlierSegmentIsDamage) {
  FlipByte(segments_[0], FileSize(segments_[0]) - 3);
  RunResult v = RunWalctl({"verify", dir_});
  EXPECT_EQ(v.code, 2) << v.out;
  EXPECT_THAT(v.out, HasSubstr(Name(0)));
  // Salvage reading still sees every later segment.
  EXPECT_THAT(v.out, HasSubstr("lsn 1..40"));
}

TEST_F(LogTest, BadLengthAndBadType) {
  const std::vector<uint64_t> ends = RecordEnds(dir_, Name(1));
  ASSERT_GE(ends.size(), 2u);
  // Length field of the second record of segment 2: huge.
  std::string data = ReadFile(segments_[1]);
  data[ends[0] + 11] = '\x7f';
  WriteFile(segments_[1], data);
  RunResult v = RunWalctl({"verify", dir_});
  EXPECT_EQ(v.code, 2) << v.out;
  EXPECT_THAT(v.out, HasSubstr(absl::StrCat(Name(1), " offset ", ends[0])));
}

TEST(LogDamage, UnknownRequiredTypeIsRefused) {
  // An intact record of a required type this build does not know can only
  // come from a newer writer: default recovery refuses it.
  std::string dir = NewTempDir("newtype");
  std::vector<TestRecord> records = SimpleRecords(3);
  records.insert(records.begin() + 1, TestRecord{100, "future"});
  WriteLog(dir, records, kSegmentBytes);
  RunResult v = RunWalctl({"verify", dir});
  EXPECT_EQ(v.code, 2) << v.out;
  EXPECT_THAT(v.out, HasSubstr("required type 100"));
  RunResult d = RunWalctl({"dump", dir});
  EXPECT_EQ(d.code, 2);
  EXPECT_THAT(d.out, HasSubstr("lsn=4 "));
}

TEST(LogDamage, UndecodablePayloadIsDamage) {
  // A frame that checks out but whose payload is not an Update.
  std::string dir = NewTempDir("undecodable");
  std::vector<TestRecord> records = SimpleRecords(3);
  records[1].payload = std::string("\xff\xff\xff\xff", 4);
  WriteLog(dir, records, kSegmentBytes);
  RunResult v = RunWalctl({"verify", dir});
  EXPECT_EQ(v.code, 2) << v.out;
  EXPECT_THAT(v.out, HasSubstr("problem: undecodable"));
  EXPECT_THAT(v.out, HasSubstr("lsn 2: payload does not parse"));
  RunResult d = RunWalctl({"dump", dir});
  EXPECT_EQ(d.code, 2);
  EXPECT_THAT(d.out, HasSubstr("UNDECODABLE"));
}

TEST_F(LogTest, MissingMiddleSegmentIsAGap) {
  ASSERT_EQ(::unlink(segments_[1].c_str()), 0);
  RunResult v = RunWalctl({"verify", dir_});
  EXPECT_EQ(v.code, 2) << v.out;
  EXPECT_THAT(v.out, HasSubstr("missing"));
  EXPECT_THAT(v.out, HasSubstr(Name(2)));
}

TEST(LogInputs, EmptyGarbageForeignAndMissing) {
  // Missing directory.
  RunResult r = RunWalctl({"verify", "/nonexistent/walctl/dir"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(Lines(r.err).size(), 1u);
  EXPECT_THAT(r.err, HasSubstr("/nonexistent/walctl/dir"));

  // A regular file instead of a directory.
  std::string dir = NewTempDir("inputs");
  WriteFile(dir + "/plain", "x");
  r = RunWalctl({"verify", dir + "/plain"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(Lines(r.err).size(), 1u);

  // A directory with nothing of ours.
  r = RunWalctl({"verify", dir});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("not a walstate data directory"));

  // An empty segment header and nothing else.
  WriteFile(dir + "/" + log::SegmentFileName(1), "");
  r = RunWalctl({"verify", dir});
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("empty file"));

  // Garbage.
  WriteFile(dir + "/" + log::SegmentFileName(1), std::string(300, 'g'));
  r = RunWalctl({"verify", dir});
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("not a walstate file"));

  // A file of another format under our name (here: a gzip header).
  WriteFile(dir + "/" + log::SegmentFileName(1),
            std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 10) +
                std::string(100, 'x'));
  r = RunWalctl({"verify", dir});
  EXPECT_EQ(r.code, 2) << r.out;
  // The reader may call a header-sized garbage last segment a torn create;
  // with nothing else readable it is still input walctl cannot read.
  EXPECT_THAT(r.out, HasSubstr("not a walstate file"));
  r = RunWalctl({"dump", dir});
  EXPECT_EQ(r.code, 2);
}

TEST_F(LogTest, SpecialFilesAreRefusedNotOpened) {
  // Opening a FIFO for reading would block forever.
  const std::string fifo = dir_ + "/" + log::SegmentFileName(99);
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  for (const char* cmd : {"verify", "dump", "stats", "repair"}) {
    RunResult r = RunWalctl({cmd, dir_});
    EXPECT_EQ(r.code, 2) << cmd;
    EXPECT_THAT(r.err, HasSubstr("is not a regular file (a FIFO)")) << cmd;
    EXPECT_EQ(Lines(r.err).size(), 1u) << r.err;
  }
  RunResult r = RunWalctl({"show", dir_, "s1"});
  EXPECT_EQ(r.code, 2);
}

TEST_F(LogTest, EmptyLastSegmentAfterDataIsATornTail) {
  // A crash right after a rotation created the next segment.
  WriteFile(dir_ + "/" + log::SegmentFileName(segments_.size() + 1), "");
  RunResult v = RunWalctl({"verify", dir_});
  EXPECT_EQ(v.code, 1) << v.out;
}

TEST(LogUsage, UsageErrorsAreOneLineAnd64) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {},
           {"nosuchcommand"},
           {"verify"},
           {"verify", "a", "b"},
           {"verify", "--nope", "x"},
           {"dump", "x", "--from-lsn"},
           {"dump", "x", "--from-lsn", "abc"},
           {"dump", "x", "--from-lsn", "-1"},
           {"dump", "x", "--from-lsn", "9", "--to-lsn", "3"},
           {"dump", "x", "--type", "bogus"},
           {"dump", "x", "--json=yes"},
           {"dump", "x", "--json", "--json"},
       }) {
    RunResult r = RunWalctl(args);
    EXPECT_EQ(r.code, 64) << absl::StrJoin(args, " ") << ": " << r.err;
    EXPECT_EQ(Lines(r.err).size(), 1u) << r.err;
    EXPECT_EQ(r.out, "");
  }
  RunResult r = RunWalctl({"verify", "--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("usage: walctl verify"));
  r = RunWalctl({"help", "dump"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("usage: walctl dump"));
}

// --version names the release of walstate/version.h and the format version
// the reader accepts (the file headers' format_version).
TEST(LogUsage, VersionNamesReleaseAndFormat) {
  RunResult r = RunWalctl({"--version"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            absl::StrCat("walctl (walstate) ", WALSTATE_VERSION_MAJOR, ".",
                         WALSTATE_VERSION_MINOR, ".", WALSTATE_VERSION_PATCH,
                         ", on-disk format ", log::kFormatVersion, "\n"));
  EXPECT_EQ(r.err, "");
  EXPECT_THAT(RunWalctl({"--help"}).out, HasSubstr("--version"));
}

// Random bytes under our file names, and random damage of a valid log:
// dump and verify must always answer with 0, 1 or 2 and never crash (the
// test runs under ASan/UBSan too).
TEST(LogFuzz, RandomImagesNeverCrash) {
  std::mt19937_64 rng(12345);
  const std::string base = NewTempDir("fuzz-base");
  WriteLog(base, SimpleRecords(30), 400);
  const std::vector<std::string> names = ListDir(base);
  for (int round = 0; round < 60; ++round) {
    std::string dir = NewTempDir("fuzz");
    CopyDir(base, dir);
    for (const std::string& name : names) {
      std::string path = dir + "/" + name;
      std::string data = ReadFile(path);
      switch (rng() % 5) {
        case 0:  // random bytes
          data.resize(rng() % 600);
          for (char& c : data) c = static_cast<char>(rng());
          break;
        case 1:  // cut anywhere
          data.resize(rng() % (data.size() + 1));
          break;
        case 2:  // flip a few bytes
          for (int k = 0; k < 3 && !data.empty(); ++k) {
            data[rng() % data.size()] ^= static_cast<char>(1 + rng() % 255);
          }
          break;
        case 3:  // huge length field in some frame-aligned spot
          if (data.size() > 80) {
            size_t at = 64 + 8 * (rng() % ((data.size() - 72) / 8));
            for (int k = 0; k < 4 && at + 8 + k < data.size(); ++k) {
              data[at + 8 + k] = '\xff';
            }
          }
          break;
        default:
          break;
      }
      WriteFile(path, data);
    }
    for (const char* cmd : {"verify", "dump"}) {
      RunResult r = RunWalctl({cmd, dir});
      EXPECT_TRUE(r.code == 0 || r.code == 1 || r.code == 2)
          << cmd << " round " << round << ": " << r.code << r.err;
      if (r.code != 0) {
        EXPECT_FALSE(r.out.empty() && r.err.empty());
      }
    }
    RunResult j = RunWalctl({"verify", dir, "--json"});
    ParseJson(j.out);
  }
}

TEST(LogCount, SingularOnlyForOne) {
  EXPECT_EQ(walctl::Count(1, "session"), "1 session");
  EXPECT_EQ(walctl::Count(0, "session"), "0 sessions");
  EXPECT_EQ(walctl::Count(2, "record"), "2 records");
}

// A held lock is told by the status payload LockFile sets, not by the text.
TEST(LogFailStatus, BusyOnlyForAHeldLock) {
  std::ostringstream out, err;
  walctl::Context ctx(out, err);
  EXPECT_EQ(walctl::FailStatus(ctx, "compact",
                               LockHeldError("/d/LOCK", "pid 7 on host")),
            walctl::kExitBusy);
  EXPECT_THAT(err.str(), HasSubstr("held by pid 7 on host"));
  // Same code and words, no payload: another failure.
  EXPECT_EQ(walctl::FailStatus(ctx, "compact",
                               absl::FailedPreconditionError(
                                   "lock /d/LOCK: held by pid 7 on host")),
            walctl::kExitError);
}

TEST(LogProgress, DrawsOnlyWhenEnabled) {
  std::ostringstream out, err;
  walctl::Context ctx(out, err);
  // A clock the test steps: redraws are paced at most ten a second.
  std::chrono::steady_clock::time_point now{};
  ctx.now = [&now] { return now; };
  {
    walctl::Progress quiet(ctx, "verify", 100);
    now += std::chrono::milliseconds(120);
    quiet.Update(50);
  }
  EXPECT_EQ(err.str(), "");  // not a terminal
  ctx.progress = true;
  {
    walctl::Progress bar(ctx, "verify", 2048);
    now += std::chrono::milliseconds(99);
    bar.Update(10);  // too soon after the start: nothing yet
    EXPECT_EQ(err.str(), "");
    now += std::chrono::milliseconds(1);
    bar.Update(1024);
    EXPECT_THAT(err.str(), HasSubstr("\rverify ["));
    EXPECT_THAT(err.str(), HasSubstr("1.0 KiB / 2.0 KiB"));
  }
  // Done() finishes the line.
  EXPECT_EQ(err.str().back(), '\n');
  EXPECT_EQ(out.str(), "");
}

// The binary itself: exit codes and streams, as an operator's script sees
// them.
TEST_F(LogTest, BinaryExitCodes) {
  const auto& argv = ::testing::internal::GetArgvs();
  ASSERT_GE(argv.size(), 2u) << "pass $(rootpath //tools/walctl)";
  const std::string walctl = argv[1];
  RunResult r = RunBinary(walctl, {"verify", dir_});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("result: clean"));
  // No progress bar when stderr is not a terminal.
  EXPECT_EQ(r.err, "");
  TruncateFile(segments_.back(), FileSize(segments_.back()) - 3);
  r = RunBinary(walctl, {"verify", dir_});
  EXPECT_EQ(r.code, 1);
  r = RunBinary(walctl, {"verify"});
  EXPECT_EQ(r.code, 64);
  r = RunBinary(walctl, {"dump", dir_ + "/nope"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(Lines(r.err).size(), 1u);
}

}  // namespace
}  // namespace walctl_test
}  // namespace walstate
