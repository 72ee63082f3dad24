#include "tests/fs/fault_injection_fs.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace walstate {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using FaultFs = FaultInjectionFileSystem;
using CrashMode = FaultFs::CrashMode;
using NameLoss = FaultFs::NameLoss;
using OpKind = FaultFs::OpKind;

FaultFs::CrashOptions Opts(CrashMode mode, NameLoss names, uint64_t seed = 0) {
  FaultFs::CrashOptions o;
  o.mode = mode;
  o.names = names;
  o.seed = seed;
  return o;
}

std::string Bytes(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i % 23 + 1);
  return s;
}

std::string Read(const FaultFs& fs, const std::string& path) {
  auto r = fs.ReadFileBytes(path);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : "";
}

// Writes `data` to a new file and returns it still open.
std::unique_ptr<WritableFile> Create(FaultFs* fs, const std::string& path,
                                     absl::string_view data) {
  auto f = fs->NewWritableFile(path);
  EXPECT_TRUE(f.ok()) << f.status();
  if (!f.ok()) return nullptr;
  EXPECT_TRUE((*f)->Append(data).ok());
  return std::move(*f);
}

class FaultFsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs_.CreateDirs("/db").ok());
    fs_.ResetOpLog();
  }
  FaultFs fs_;
};

// ---------------------------------------------------------------------------
// Plain FileSystem behaviour.

TEST_F(FaultFsTest, WriteReadListReopen) {
  auto f = Create(&fs_, "/db/a", "hello ");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->Size(), 6u);
  EXPECT_EQ(f->path(), "/db/a");
  ASSERT_TRUE(f->Close().ok());

  auto r = fs_.ReopenWritableFile("/db/a");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->Size(), 6u);
  ASSERT_TRUE((*r)->Append("world").ok());
  EXPECT_EQ((*r)->Size(), 11u);

  std::string out;
  ASSERT_TRUE(fs_.ReadFile("/db/a", &out).ok());
  EXPECT_EQ(out, "hello world");
  auto ra = fs_.NewRandomAccessFile("/db/a");
  ASSERT_TRUE(ra.ok());
  char scratch[16];
  auto part = (*ra)->Read(6, 16, scratch);
  ASSERT_TRUE(part.ok());
  EXPECT_EQ(*part, "world");
  EXPECT_EQ(*(*ra)->Size(), 11u);
  EXPECT_EQ((*(*ra)->Read(50, 4, scratch)).size(), 0u);

  ASSERT_TRUE(fs_.CreateDir("/db/sub").ok());
  ASSERT_TRUE(fs_.CreateDir("/db/sub").ok());  // exists: fine
  Create(&fs_, "/db/sub/x", "x");
  auto names = fs_.ListDir("/db");
  ASSERT_TRUE(names.ok());
  EXPECT_THAT(*names, ElementsAre("a", "sub"));
  EXPECT_THAT(*fs_.ListDir("//db/./sub/"), ElementsAre("x"));
  EXPECT_TRUE(*fs_.FileExists("/db/sub"));
  EXPECT_FALSE(*fs_.FileExists("/db/nope"));
  EXPECT_EQ(*fs_.FileSize("/db/a"), 11u);
  EXPECT_THAT(fs_.ListFiles(), ElementsAre("/db/a", "/db/sub/x"));

  // NewWritableFile truncates an existing file.
  Create(&fs_, "/db/a", "new");
  EXPECT_EQ(Read(fs_, "/db/a"), "new");
}

TEST_F(FaultFsTest, ErrorsMirrorPosix) {
  auto missing = fs_.NewRandomAccessFile("/db/missing");
  EXPECT_TRUE(absl::IsNotFound(missing.status()));
  EXPECT_EQ(missing.status().message(),
            "open /db/missing: No such file or directory");

  auto no_parent = fs_.NewWritableFile("/nodir/x");
  EXPECT_TRUE(absl::IsNotFound(no_parent.status()));
  EXPECT_EQ(no_parent.status().message(),
            "create /nodir/x: No such file or directory");

  EXPECT_TRUE(absl::IsNotFound(fs_.CreateDir("/a/b")));
  EXPECT_TRUE(absl::IsNotFound(fs_.ReopenWritableFile("/db/m").status()));
  EXPECT_TRUE(absl::IsNotFound(fs_.DeleteFile("/db/m")));
  EXPECT_EQ(fs_.DeleteFile("/db/m").message(),
            "unlink /db/m: No such file or directory");
  EXPECT_TRUE(absl::IsNotFound(fs_.RenameFile("/db/m", "/db/n")));
  EXPECT_EQ(fs_.RenameFile("/db/m", "/db/n").message(),
            "rename to /db/n from /db/m: No such file or directory");
  EXPECT_TRUE(absl::IsNotFound(fs_.TruncateFile("/db/m", 0)));
  EXPECT_TRUE(absl::IsNotFound(fs_.FileSize("/db/m").status()));
  EXPECT_TRUE(absl::IsNotFound(fs_.SyncDir("/db/m")));
  EXPECT_TRUE(absl::IsNotFound(fs_.ListDir("/db/m").status()));

  auto dir = fs_.NewRandomAccessFile("/db");
  EXPECT_TRUE(absl::IsFailedPrecondition(dir.status()));
  EXPECT_EQ(dir.status().message(), "open /db: is a directory, not a file");

  Create(&fs_, "/db/f", "x");
  EXPECT_TRUE(absl::IsAlreadyExists(fs_.CreateDir("/db/f")));
  EXPECT_THAT(std::string(fs_.NewWritableFile("/db/f/x").status().message()),
              HasSubstr("Not a directory"));
  EXPECT_TRUE(absl::IsUnimplemented(fs_.RenameFile("/db", "/db2")));
}

TEST_F(FaultFsTest, LockFileIsExclusiveAndNamesHolder) {
  auto lock = fs_.LockFile("/db/LOCK", "pid 42 on host");
  ASSERT_TRUE(lock.ok()) << lock.status();
  EXPECT_EQ(Read(fs_, "/db/LOCK"), "pid 42 on host\n");

  auto second = fs_.LockFile("/db/LOCK", "pid 43");
  EXPECT_TRUE(absl::IsFailedPrecondition(second.status()));
  EXPECT_EQ(second.status().message(),
            "lock /db/LOCK: held by pid 42 on host; only one process may open "
            "a data directory (stop it first)");

  // A crashed copy is a new "boot": nobody holds the lock there.
  auto crashed = fs_.Crash(Opts(CrashMode::kNoLoss, NameLoss::kNone));
  EXPECT_TRUE(crashed->LockFile("/db/LOCK", "after reboot").ok());

  lock->reset();
  auto third = fs_.LockFile("/db/LOCK", "pid 44");
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(Read(fs_, "/db/LOCK"), "pid 44\n");
}

TEST_F(FaultFsTest, HandlesOutliveTheFileSystem) {
  std::unique_ptr<WritableFile> f;
  std::unique_ptr<FileLock> lock;
  {
    FaultFs fs;
    f = Create(&fs, "/x", "a");
    lock = std::move(*fs.LockFile("/LOCK", "me"));
  }
  EXPECT_TRUE(f->Append("b").ok());
  EXPECT_TRUE(f->Sync().ok());
  EXPECT_EQ(f->Size(), 2u);
  lock.reset();  // must not touch freed memory (ASan checks)
}

// ---------------------------------------------------------------------------
// Crash modes.

TEST_F(FaultFsTest, DropUnsyncedKeepsExactlyTheSyncedBytes) {
  auto f = Create(&fs_, "/db/wal", "synced-part|");
  ASSERT_TRUE(f->Sync().ok());
  ASSERT_TRUE(fs_.SyncDir("/db").ok());
  ASSERT_TRUE(f->Append("unsynced").ok());
  EXPECT_EQ(Read(fs_, "/db/wal"), "synced-part|unsynced");
  EXPECT_EQ(*fs_.DurableFileBytes("/db/wal"), "synced-part|");

  auto crashed =
      fs_.Crash(Opts(CrashMode::kDropUnsynced, NameLoss::kDropUnsynced));
  EXPECT_EQ(Read(*crashed, "/db/wal"), "synced-part|");
  EXPECT_EQ(*crashed->DurableFileBytes("/db/wal"), "synced-part|");
  EXPECT_TRUE(crashed->UnsyncedOps().empty());
  EXPECT_EQ(crashed->op_count(), 0u);
  EXPECT_THAT(crashed->crash_description(), HasSubstr("drop-unsynced"));

  // The original keeps running, unaffected.
  ASSERT_TRUE(f->Sync().ok());
  EXPECT_EQ(Read(fs_, "/db/wal"), "synced-part|unsynced");
  EXPECT_EQ(Read(*crashed, "/db/wal"), "synced-part|");

  // kNoLoss keeps what was in the page cache.
  ASSERT_TRUE(f->Append("+more").ok());
  auto all = fs_.Crash(Opts(CrashMode::kNoLoss, NameLoss::kNone));
  EXPECT_EQ(Read(*all, "/db/wal"), "synced-part|unsynced+more");
}

TEST_F(FaultFsTest, CutUnsyncedKeepsDurablePlusAPrefix) {
  const std::string durable = Bytes(100, 'a');
  auto f = Create(&fs_, "/db/wal", durable);
  ASSERT_TRUE(f->Sync().ok());
  ASSERT_TRUE(fs_.SyncDir("/db").ok());
  const std::string a1 = Bytes(40, 'b'), a2 = Bytes(60, 'c');
  ASSERT_TRUE(f->Append(a1).ok());
  ASSERT_TRUE(f->Append(a2).ok());
  const std::string all = durable + a1 + a2;

  std::set<size_t> lengths;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    auto crashed =
        fs_.Crash(Opts(CrashMode::kCutUnsynced, NameLoss::kDropUnsynced, seed));
    SCOPED_TRACE(
        absl::StrCat("seed=", seed, "\n", crashed->crash_description()));
    std::string got = Read(*crashed, "/db/wal");
    ASSERT_GE(got.size(), durable.size());
    ASSERT_LE(got.size(), all.size());
    ASSERT_EQ(got, all.substr(0, got.size()));
    lengths.insert(got.size());
  }
  // The cut point really is random: both ends and the middle show up.
  EXPECT_GT(lengths.size(), 50u);
  EXPECT_TRUE(lengths.count(all.size()) || lengths.count(all.size() - 1));

  // Same seed, same crash.
  auto x = fs_.Crash(Opts(CrashMode::kCutUnsynced, NameLoss::kNone, 7));
  auto y = fs_.Crash(Opts(CrashMode::kCutUnsynced, NameLoss::kNone, 7));
  EXPECT_EQ(Read(*x, "/db/wal"), Read(*y, "/db/wal"));
}

TEST_F(FaultFsTest, UnsyncedNamesAreUndoneWithoutSyncDir) {
  // Synced data, but the name was never made durable.
  auto f = Create(&fs_, "/db/new", "data");
  ASSERT_TRUE(f->Sync().ok());
  auto crashed = fs_.Crash(Opts(CrashMode::kNoLoss, NameLoss::kDropUnsynced));
  EXPECT_FALSE(*crashed->FileExists("/db/new"));
  EXPECT_TRUE(fs_.ListDurableFiles().empty());

  // NameLoss::kNone keeps it.
  auto kept = fs_.Crash(Opts(CrashMode::kDropUnsynced, NameLoss::kNone));
  EXPECT_EQ(Read(*kept, "/db/new"), "data");

  ASSERT_TRUE(fs_.SyncDir("/db").ok());
  crashed = fs_.Crash(Opts(CrashMode::kDropUnsynced, NameLoss::kDropUnsynced));
  EXPECT_EQ(Read(*crashed, "/db/new"), "data");
  EXPECT_THAT(fs_.ListDurableFiles(), ElementsAre("/db/new"));
}

TEST_F(FaultFsTest, RenameAndDeleteUndoneUntilSyncDir) {
  Create(&fs_, "/db/tmp", "v2")->Sync().IgnoreError();
  Create(&fs_, "/db/cur", "v1")->Sync().IgnoreError();
  Create(&fs_, "/db/old", "gone")->Sync().IgnoreError();
  ASSERT_TRUE(fs_.SyncDir("/db").ok());

  ASSERT_TRUE(fs_.RenameFile("/db/tmp", "/db/cur").ok());
  ASSERT_TRUE(fs_.DeleteFile("/db/old").ok());
  EXPECT_EQ(Read(fs_, "/db/cur"), "v2");
  EXPECT_THAT(fs_.ListFiles(), ElementsAre("/db/cur"));

  auto undone =
      fs_.Crash(Opts(CrashMode::kDropUnsynced, NameLoss::kDropUnsynced));
  EXPECT_EQ(Read(*undone, "/db/cur"), "v1");
  EXPECT_EQ(Read(*undone, "/db/tmp"), "v2");
  EXPECT_EQ(Read(*undone, "/db/old"), "gone");
  EXPECT_THAT(undone->crash_description(), HasSubstr("undone"));

  ASSERT_TRUE(fs_.SyncDir("/db").ok());
  auto done =
      fs_.Crash(Opts(CrashMode::kDropUnsynced, NameLoss::kDropUnsynced));
  EXPECT_THAT(done->ListFiles(), ElementsAre("/db/cur"));
  EXPECT_EQ(Read(*done, "/db/cur"), "v2");
}

TEST_F(FaultFsTest, CrossDirectoryRenameNeedsBothDirectoriesSynced) {
  ASSERT_TRUE(fs_.CreateDirs("/db/a").ok());
  ASSERT_TRUE(fs_.CreateDirs("/db/b").ok());
  Create(&fs_, "/db/a/f", "data")->Sync().IgnoreError();
  ASSERT_TRUE(fs_.SyncDir("/db/a").ok());
  ASSERT_TRUE(fs_.RenameFile("/db/a/f", "/db/b/f").ok());

  // Only the target directory synced: the file has both names after a crash
  // (one inode, like a hard link).
  ASSERT_TRUE(fs_.SyncDir("/db/b").ok());
  auto c = fs_.Crash(Opts(CrashMode::kDropUnsynced, NameLoss::kDropUnsynced));
  EXPECT_THAT(c->ListFiles(), ElementsAre("/db/a/f", "/db/b/f"));

  ASSERT_TRUE(fs_.SyncDir("/db/a").ok());
  c = fs_.Crash(Opts(CrashMode::kDropUnsynced, NameLoss::kDropUnsynced));
  EXPECT_THAT(c->ListFiles(), ElementsAre("/db/b/f"));
  EXPECT_EQ(Read(*c, "/db/b/f"), "data");
}

TEST_F(FaultFsTest, UnsyncedMkdirTakesItsFilesAlong) {
  ASSERT_TRUE(fs_.CreateDir("/db/sub").ok());
  Create(&fs_, "/db/sub/f", "x")->Sync().IgnoreError();
  ASSERT_TRUE(fs_.SyncDir("/db/sub").ok());  // but not /db
  auto c = fs_.Crash(Opts(CrashMode::kNoLoss, NameLoss::kDropUnsynced));
  EXPECT_FALSE(*c->FileExists("/db/sub"));
  EXPECT_TRUE(c->ListFiles().empty());
  ASSERT_TRUE(fs_.SyncDir("/db").ok());
  c = fs_.Crash(Opts(CrashMode::kNoLoss, NameLoss::kDropUnsynced));
  EXPECT_THAT(c->ListFiles(), ElementsAre("/db/sub/f"));
}

TEST_F(FaultFsTest, RandomPrefixOfNamespaceOps) {
  for (int i = 0; i < 5; ++i) Create(&fs_, absl::StrCat("/db/f", i), "x");
  std::set<size_t> counts;
  for (uint64_t seed = 0; seed < 100; ++seed) {
    auto c = fs_.Crash(Opts(CrashMode::kNoLoss, NameLoss::kRandomPrefix, seed));
    SCOPED_TRACE(absl::StrCat("seed=", seed));
    std::vector<std::string> files = c->ListFiles();
    // Always a prefix of the creates, in order.
    for (size_t i = 0; i < files.size(); ++i) {
      ASSERT_EQ(files[i], absl::StrCat("/db/f", i));
    }
    counts.insert(files.size());
  }
  EXPECT_EQ(counts.size(), 6u);  // 0..5 files all occur
}

TEST_F(FaultFsTest, TornSectorsAreKeptDroppedOrGarbage) {
  const uint64_t kSector = 512;
  const std::string durable = Bytes(700, 'd');  // ends mid-sector
  auto f = Create(&fs_, "/db/wal", durable);
  ASSERT_TRUE(f->Sync().ok());
  ASSERT_TRUE(fs_.SyncDir("/db").ok());
  const std::string fresh = Bytes(3000, 'f');
  ASSERT_TRUE(f->Append(fresh).ok());
  const std::string all = durable + fresh;

  int kept = 0, dropped = 0, garbage = 0, cut = 0;
  for (uint64_t seed = 0; seed < 100; ++seed) {
    FaultFs::CrashOptions o =
        Opts(CrashMode::kTearSectors, NameLoss::kDropUnsynced, seed);
    o.sector_size = kSector;
    auto c = fs_.Crash(o);
    SCOPED_TRACE(absl::StrCat("seed=", seed, "\n", c->crash_description()));
    std::string got = Read(*c, "/db/wal");
    // Synced bytes always survive, even in a sector that also held new ones.
    ASSERT_GE(got.size(), durable.size());
    ASSERT_EQ(got.substr(0, durable.size()), durable);
    // The file ends at a sector boundary or at the full length.
    ASSERT_TRUE(got.size() % kSector == 0 || got.size() == all.size() ||
                got.size() == durable.size())
        << got.size();
    if (got.size() < all.size()) ++cut;
    for (uint64_t s = durable.size() / kSector; s * kSector < got.size(); ++s) {
      uint64_t a = std::max<uint64_t>(s * kSector, durable.size());
      uint64_t b = std::min<uint64_t>((s + 1) * kSector, got.size());
      std::string piece = got.substr(a, b - a);
      if (piece == all.substr(a, b - a)) {
        ++kept;
      } else if (piece == std::string(b - a, '\0')) {
        ++dropped;
      } else {
        ++garbage;
      }
    }
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(dropped, 0);
  EXPECT_GT(garbage, 0);
  EXPECT_GT(cut, 0);

  // Weights select a single fate.
  FaultFs::CrashOptions o = Opts(CrashMode::kTearSectors, NameLoss::kNone, 1);
  o.keep_weight = 1;
  o.drop_weight = 0;
  o.garbage_weight = 0;
  EXPECT_EQ(Read(*fs_.Crash(o), "/db/wal"), all);
  o.keep_weight = 0;
  o.drop_weight = 1;
  EXPECT_EQ(Read(*fs_.Crash(o), "/db/wal"), durable);
  o.drop_weight = 0;
  o.garbage_weight = 1;
  o.sector_size = 4096;
  std::string g = Read(*fs_.Crash(o), "/db/wal");
  ASSERT_EQ(g.size(), all.size());
  EXPECT_EQ(g.substr(0, durable.size()), durable);
  EXPECT_NE(g.substr(durable.size()), fresh);
}

TEST_F(FaultFsTest, LeaveOneOutSkipsOneOpAndKeepsLaterOnes) {
  auto f = Create(&fs_, "/db/wal", "");
  ASSERT_TRUE(f->Sync().ok());
  ASSERT_TRUE(fs_.SyncDir("/db").ok());
  ASSERT_TRUE(f->Append("AAAA").ok());
  const uint64_t a1 = fs_.op_count();
  ASSERT_TRUE(f->Append("BBBB").ok());
  const uint64_t a2 = fs_.op_count();
  Create(&fs_, "/db/other", "x");
  const uint64_t create = fs_.op_count() - 1;
  ASSERT_TRUE(f->Append("CCCC").ok());
  const uint64_t a3 = fs_.op_count();

  std::vector<uint64_t> unsynced = fs_.UnsyncedOps();
  EXPECT_THAT(unsynced, ElementsAre(a1, a2, create, create + 1, a3));

  FaultFs::CrashOptions o = Opts(CrashMode::kLeaveOneOut, NameLoss::kNone);
  o.leave_out_op = a2;
  auto c = fs_.Crash(o);
  EXPECT_EQ(Read(*c, "/db/wal"), std::string("AAAA\0\0\0\0CCCC", 12));
  EXPECT_EQ(Read(*c, "/db/other"), "x");

  o.leave_out_op = create;  // the create is skipped, later appends are not
  c = fs_.Crash(o);
  EXPECT_FALSE(*c->FileExists("/db/other"));
  EXPECT_EQ(Read(*c, "/db/wal"), "AAAABBBBCCCC");

  // Random choice: always exactly one of the unsynced ops.
  std::set<std::string> outcomes;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    o.leave_out_op = 0;
    o.seed = seed;
    c = fs_.Crash(o);
    std::string other =
        *c->FileExists("/db/other") ? Read(*c, "/db/other") : "(missing)";
    outcomes.insert(absl::StrCat(Read(*c, "/db/wal"), "|", other));
  }
  EXPECT_EQ(outcomes.size(), unsynced.size());
}

TEST_F(FaultFsTest, TruncateFileSyncsData) {
  auto f = Create(&fs_, "/db/wal", "0123456789");
  ASSERT_TRUE(fs_.SyncDir("/db").ok());
  ASSERT_TRUE(fs_.TruncateFile("/db/wal", 4).ok());
  auto c = fs_.Crash(Opts(CrashMode::kDropUnsynced, NameLoss::kDropUnsynced));
  EXPECT_EQ(Read(*c, "/db/wal"), "0123");
}

TEST_F(FaultFsTest, NewWritableFileOnExistingFileTruncatesUnsynced) {
  Create(&fs_, "/db/f", "old")->Sync().IgnoreError();
  ASSERT_TRUE(fs_.SyncDir("/db").ok());
  Create(&fs_, "/db/f", "new!");
  auto drop =
      fs_.Crash(Opts(CrashMode::kDropUnsynced, NameLoss::kDropUnsynced));
  EXPECT_EQ(Read(*drop, "/db/f"), "old");
  auto all = fs_.Crash(Opts(CrashMode::kNoLoss, NameLoss::kNone));
  EXPECT_EQ(Read(*all, "/db/f"), "new!");
}

TEST_F(FaultFsTest, CrashingACrashedCopyIsStable) {
  auto f = Create(&fs_, "/db/wal", "abc");
  ASSERT_TRUE(f->Sync().ok());
  ASSERT_TRUE(f->Append("def").ok());
  auto c1 = fs_.Crash(Opts(CrashMode::kNoLoss, NameLoss::kNone));
  auto c2 = c1->Crash(Opts(CrashMode::kDropUnsynced, NameLoss::kDropUnsynced));
  EXPECT_EQ(Read(*c2, "/db/wal"), "abcdef");
  // Recovery writes on c1 that it does not sync are lost in the next crash.
  auto g = c1->ReopenWritableFile("/db/wal");
  ASSERT_TRUE(g.ok());
  ASSERT_TRUE((*g)->Append("ghi").ok());
  auto c3 = c1->Crash(Opts(CrashMode::kDropUnsynced, NameLoss::kDropUnsynced));
  EXPECT_EQ(Read(*c3, "/db/wal"), "abcdef");
}

// ---------------------------------------------------------------------------
// Op log, replay and crash-at-op.

TEST_F(FaultFsTest, OpLogRecordsEveryWriteSideCall) {
  auto f = Create(&fs_, "/db/wal", "12345");
  ASSERT_TRUE(f->Sync().ok());
  ASSERT_TRUE(fs_.SyncDir("/db").ok());
  ASSERT_TRUE(fs_.RenameFile("/db/wal", "/db/wal2").ok());
  ASSERT_TRUE(fs_.TruncateFile("/db/wal2", 2).ok());
  ASSERT_TRUE(fs_.DeleteFile("/db/wal2").ok());
  std::string ignored;
  ASSERT_TRUE(fs_.ReadFile("/db", &ignored).code() ==
              absl::StatusCode::kFailedPrecondition);  // reads are not logged

  std::vector<FaultFs::OpRecord> log = fs_.OpLog();
  ASSERT_EQ(log.size(), 7u);
  EXPECT_EQ(fs_.op_count(), 7u);
  for (size_t i = 0; i < log.size(); ++i) EXPECT_EQ(log[i].index, i + 1);
  EXPECT_EQ(log[0].kind, OpKind::kCreate);
  EXPECT_EQ(log[1].kind, OpKind::kAppend);
  EXPECT_EQ(log[1].offset, 0u);
  EXPECT_EQ(log[1].length, 5u);
  EXPECT_EQ(log[2].kind, OpKind::kSync);
  EXPECT_EQ(log[3].kind, OpKind::kSyncDir);
  EXPECT_EQ(log[4].ToString(), "#5 rename /db/wal -> /db/wal2");
  EXPECT_EQ(log[5].ToString(), "#6 truncate /db/wal2 size=2");
  EXPECT_EQ(log[6].kind, OpKind::kDelete);
  EXPECT_THAT(fs_.DumpOpLog(2, 3),
              "#2 append /db/wal offset=0 length=5\n#3 sync /db/wal\n");
}

// Everything observable about a state, for comparing a replay with the live
// run.
std::string Describe(const FaultFs& fs) {
  std::string out;
  for (const std::string& f : fs.ListFiles()) {
    absl::StrAppend(&out, f, " cur=", *fs.ReadFileBytes(f),
                    " dur=", *fs.DurableFileBytes(f), "\n");
  }
  for (const std::string& f : fs.ListDurableFiles()) {
    absl::StrAppend(&out, "durable name ", f, "\n");
  }
  for (uint64_t op : fs.UnsyncedOps())
    absl::StrAppend(&out, "unsynced #", op, "\n");
  return out;
}

TEST_F(FaultFsTest, StateAtOpReplaysExactly) {
  std::vector<std::string> live = {Describe(fs_)};
  auto step = [&](absl::Status s) {
    EXPECT_TRUE(s.ok()) << s;
    ASSERT_EQ(fs_.op_count(), live.size());
    live.push_back(Describe(fs_));
  };
  auto f = fs_.NewWritableFile("/db/wal");
  ASSERT_TRUE(f.ok());
  live.push_back(Describe(fs_));
  step((*f)->Append("one,"));
  step((*f)->Sync());
  step(fs_.SyncDir("/db"));
  step((*f)->Append("two,"));
  step(fs_.WriteFileBytes("/db/planted", "p", /*durable=*/false));
  step(fs_.CreateDir("/db/sub"));
  step(fs_.RenameFile("/db/planted", "/db/sub/moved"));
  step(fs_.FlipBit("/db/wal", 0, 0));
  step((*f)->Append("three"));
  // A failed sync is replayed too: it loses "three".
  FaultFs::FaultRule rule;
  rule.kind = OpKind::kSync;
  fs_.InjectFault(rule);
  EXPECT_FALSE((*f)->Sync().ok());
  live.push_back(Describe(fs_));
  step(fs_.TruncateFile("/db/wal", 6));
  step(fs_.DeleteFile("/db/sub/moved"));
  step(fs_.SyncDir("/db/sub"));

  // Forward, then backward (the incremental cache must restart), then
  // forward again.
  std::vector<uint64_t> order;
  for (uint64_t n = 0; n <= fs_.op_count(); ++n) order.push_back(n);
  for (uint64_t n = fs_.op_count() + 1; n-- > 0;) order.push_back(n);
  for (uint64_t n = 0; n <= fs_.op_count(); n += 3) order.push_back(n);
  for (uint64_t n : order) {
    auto at = fs_.StateAtOp(n);
    ASSERT_TRUE(at.ok()) << at.status();
    EXPECT_EQ(Describe(**at), live[n]) << "op " << n << "\n" << fs_.DumpOpLog();
  }
  EXPECT_TRUE(absl::IsOutOfRange(fs_.StateAtOp(fs_.op_count() + 1).status()));

  // The failed sync (op 11) made "three" lost for good: a crash right after
  // it leaves a hole even if everything else reached the disk. ("one," had
  // its first bit flipped by op 9.)
  auto after_failed_sync = *fs_.StateAtOp(11);
  EXPECT_EQ(Read(*after_failed_sync, "/db/wal"), "nne,two,three");
  auto c = after_failed_sync->Crash(Opts(CrashMode::kNoLoss, NameLoss::kNone));
  EXPECT_EQ(Read(*c, "/db/wal"), std::string("nne,two,\0\0\0\0\0", 13));
}

// The intended engine-level driver, on a toy log with the engine's
// discipline: records "r<i>;" are appended to /db/wal, acknowledged after a
// sync; the file's name is made durable before the first acknowledgment.
// Recovery keeps the valid prefix and truncates the rest (a write, so that
// crashing recovery itself is meaningful).
absl::StatusOr<int> RecoverToyLog(FileSystem* fs) {
  absl::StatusOr<bool> exists = fs->FileExists("/db/wal");
  if (!exists.ok()) return exists.status();
  if (!*exists) return 0;
  std::string bytes;
  if (absl::Status s = fs->ReadFile("/db/wal", &bytes); !s.ok()) return s;
  int n = 0;
  size_t valid = 0;
  for (;;) {
    std::string want = absl::StrCat("r", n, ";");
    if (bytes.compare(valid, want.size(), want) != 0) break;
    valid += want.size();
    ++n;
  }
  if (valid < bytes.size()) {
    if (absl::Status s = fs->TruncateFile("/db/wal", valid); !s.ok()) return s;
  }
  return n;
}

TEST_F(FaultFsTest, CrashDriverAtEveryOpUnderEveryMode) {
  // Workload; remember the op index of every append and acknowledgment.
  std::vector<uint64_t> appended_at, acked_at;
  auto f = fs_.NewWritableFile("/db/wal");
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(fs_.SyncDir("/db").ok());
  std::vector<int> unacked;
  for (int i = 0; i < 24; ++i) {
    ASSERT_TRUE((*f)->Append(absl::StrCat("r", i, ";")).ok());
    appended_at.push_back(fs_.op_count());
    unacked.push_back(i);
    if (i % 3 == 2) {
      ASSERT_TRUE((*f)->Sync().ok());
      for (size_t k = 0; k < unacked.size(); ++k) {
        acked_at.push_back(fs_.op_count());
      }
      unacked.clear();
    }
  }

  const CrashMode kModes[] = {CrashMode::kNoLoss, CrashMode::kDropUnsynced,
                              CrashMode::kCutUnsynced, CrashMode::kTearSectors,
                              CrashMode::kLeaveOneOut};
  const NameLoss kNames[] = {NameLoss::kDropUnsynced, NameLoss::kRandomPrefix};
  int crashes = 0;
  for (uint64_t n = 0; n <= fs_.op_count(); ++n) {
    auto at = fs_.StateAtOp(n);
    ASSERT_TRUE(at.ok());
    int acked = 0, attempted = 0;
    while (acked < static_cast<int>(acked_at.size()) && acked_at[acked] <= n) {
      ++acked;
    }
    while (attempted < static_cast<int>(appended_at.size()) &&
           appended_at[attempted] <= n) {
      ++attempted;
    }
    for (CrashMode mode : kModes) {
      for (NameLoss names : kNames) {
        FaultFs::CrashOptions o = Opts(mode, names, n * 100 + crashes);
        o.sector_size = 8;  // small sectors: records span several
        auto crashed = (*at)->Crash(o);
        ++crashes;
        SCOPED_TRACE(absl::StrCat("op ", n, " seed ", o.seed, "\n",
                                  crashed->crash_description()));
        auto copy = crashed->Clone();
        absl::StatusOr<int> got = RecoverToyLog(crashed.get());
        ASSERT_TRUE(got.ok()) << got.status();
        EXPECT_GE(*got, acked);      // I1: acknowledged records survive
        EXPECT_LE(*got, attempted);  // I3: nothing invented
        // Recover twice: from the same image, and after crashing recovery.
        EXPECT_EQ(*RecoverToyLog(copy.get()), *got);
        auto again = crashed->Crash(
            Opts(CrashMode::kDropUnsynced, NameLoss::kDropUnsynced, o.seed));
        EXPECT_EQ(*RecoverToyLog(again.get()), *got);
      }
    }
  }
  EXPECT_EQ(crashes, 10 * static_cast<int>(fs_.op_count() + 1));
}

TEST_F(FaultFsTest, CrashAfterOpStopsTheWorld) {
  auto f = Create(&fs_, "/db/wal", "aa");
  ASSERT_TRUE(f->Sync().ok());
  ASSERT_TRUE(fs_.SyncDir("/db").ok());
  fs_.SetCrashAfterOp(fs_.op_count() + 1);
  ASSERT_TRUE(f->Append("bb").ok());  // the last op before the power loss
  absl::Status s = f->Sync();
  EXPECT_TRUE(absl::IsInternal(s));
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("fdatasync /db/wal: Input/output error (simulated "
                        "power loss after op 5)"));
  EXPECT_FALSE(f->Append("cc").ok());
  EXPECT_FALSE(fs_.NewWritableFile("/db/x").ok());
  EXPECT_FALSE(fs_.FileExists("/db/wal").ok());
  EXPECT_EQ(fs_.op_count(), 5u);  // nothing after the crash point is logged
  EXPECT_EQ(Read(fs_, "/db/wal"), "aabb");
  EXPECT_EQ(fs_.CountInjectedFaults(), 4u);

  auto c = fs_.Crash(Opts(CrashMode::kDropUnsynced, NameLoss::kDropUnsynced));
  EXPECT_EQ(Read(*c, "/db/wal"), "aa");
  fs_.ClearCrashAfter();
  EXPECT_TRUE(f->Append("cc").ok());
}

// ---------------------------------------------------------------------------
// Error injection.

FaultFs::FaultRule Rule(OpKind kind, uint64_t nth, bool persistent,
                        int error = EIO) {
  FaultFs::FaultRule r;
  r.kind = kind;
  r.nth = nth;
  r.persistent = persistent;
  r.error = error;
  return r;
}

TEST_F(FaultFsTest, AppendEioOnceThenPersistent) {
  auto f = Create(&fs_, "/db/wal", "12345");
  fs_.InjectFault(Rule(OpKind::kAppend, 2, false));
  EXPECT_TRUE(f->Append("a").ok());
  absl::Status s = f->Append("bbb");
  EXPECT_TRUE(absl::IsInternal(s));
  EXPECT_EQ(s.message(), "write at offset 6 /db/wal: Input/output error");
  EXPECT_EQ(f->Size(), 6u);  // nothing written
  EXPECT_TRUE(f->Append("c").ok());
  EXPECT_EQ(Read(fs_, "/db/wal"), "12345ac");

  fs_.ClearFaults();
  fs_.InjectFault(Rule(OpKind::kAppend, 2, true));
  EXPECT_TRUE(f->Append("d").ok());
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(f->Append("e").ok());
  EXPECT_EQ(Read(fs_, "/db/wal"), "12345acd");
  EXPECT_EQ(fs_.CountInjectedFaults(OpKind::kAppend), 4u);
  EXPECT_EQ(fs_.CountOps(OpKind::kAppend, "/db/wal"), 8u);
}

TEST_F(FaultFsTest, EnospcOnAppendAndPreallocate) {
  auto f = Create(&fs_, "/db/wal", "");
  fs_.InjectFault(Rule(OpKind::kAppend, 1, false, ENOSPC));
  fs_.InjectFault(Rule(OpKind::kPreallocate, 1, false, ENOSPC));
  absl::Status s = f->Append("x");
  EXPECT_TRUE(absl::IsResourceExhausted(s));
  EXPECT_EQ(s.message(),
            "write at offset 0 /db/wal: No space left on device (free disk "
            "space, then reopen the store)");
  s = f->Preallocate(1 << 20);
  EXPECT_TRUE(absl::IsResourceExhausted(s));
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("fallocate /db/wal: No space left on device (free"));
  EXPECT_TRUE(f->Preallocate(1 << 20).ok());
  EXPECT_EQ(f->Size(), 0u);
}

TEST_F(FaultFsTest, StartWritebackIsAHintThatChangesNothing) {
  auto f = Create(&fs_, "/db/wal", "aa");
  ASSERT_TRUE(f->Sync().ok());
  ASSERT_TRUE(fs_.SyncDir("/db").ok());
  ASSERT_TRUE(f->Append("bb").ok());
  const uint64_t ops = fs_.op_count();
  EXPECT_TRUE(f->StartWriteback(2, 2).ok());
  // Counted, not logged: there is no state a crash at its index could show.
  EXPECT_EQ(fs_.op_count(), ops);
  EXPECT_EQ(fs_.CountOps(OpKind::kWriteback), 1u);
  EXPECT_EQ(fs_.CountOps(OpKind::kWriteback, "/db/wal"), 1u);
  // Not a sync: the written bytes are still lost in a crash.
  auto c = fs_.Crash(Opts(CrashMode::kDropUnsynced, NameLoss::kDropUnsynced));
  EXPECT_EQ(Read(*c, "/db/wal"), "aa");

  // kAny rules match logged kinds only; a rule of its own kind fails it, and
  // the failure loses nothing: a later Sync makes the bytes durable.
  fs_.InjectFault(Rule(OpKind::kAny, 1, true));
  EXPECT_TRUE(f->StartWriteback(2, 2).ok());
  fs_.ClearFaults();
  fs_.InjectFault(Rule(OpKind::kWriteback, 1, false));
  absl::Status s = f->StartWriteback(2, 2);
  EXPECT_TRUE(absl::IsInternal(s));
  EXPECT_EQ(s.message(),
            "sync_file_range (start writeback) of 2 bytes at offset 2 "
            "/db/wal: Input/output error");
  EXPECT_EQ(fs_.CountInjectedFaults(OpKind::kWriteback), 1u);
  EXPECT_TRUE(f->StartWriteback(2, 2).ok());
  ASSERT_TRUE(f->Sync().ok());
  c = fs_.Crash(Opts(CrashMode::kDropUnsynced, NameLoss::kDropUnsynced));
  EXPECT_EQ(Read(*c, "/db/wal"), "aabb");

  // After a power loss it fails like every other call; on a closed file too.
  fs_.SetCrashAfterOp(fs_.op_count());
  EXPECT_THAT(std::string(f->StartWriteback(0, 4).message()),
              HasSubstr("simulated power loss"));
  fs_.ClearCrashAfter();
  ASSERT_TRUE(f->Close().ok());
  EXPECT_THAT(std::string(f->StartWriteback(0, 4).message()),
              HasSubstr("Bad file descriptor"));
}

TEST_F(FaultFsTest, ShortWriteLeavesAPrefix) {
  auto f = Create(&fs_, "/db/wal", "head|");
  FaultFs::FaultRule r = Rule(OpKind::kAppend, 1, false, ENOSPC);
  r.short_write_bytes = 3;
  fs_.InjectFault(r);
  absl::Status s = f->Append("abcdefgh");
  EXPECT_TRUE(absl::IsResourceExhausted(s));
  // Like the POSIX loop: the error names the offset where the retry failed.
  EXPECT_THAT(std::string(s.message()), HasSubstr("write at offset 8 /db/wal"));
  EXPECT_EQ(f->Size(), 8u);
  EXPECT_EQ(Read(fs_, "/db/wal"), "head|abc");
  std::vector<FaultFs::OpRecord> log = fs_.OpLog();
  EXPECT_TRUE(log.back().failed);
  EXPECT_EQ(log.back().length, 3u);
}

TEST_F(FaultFsTest, FailedSyncIsFinalAndLosesTheData) {
  auto f = Create(&fs_, "/db/wal", "safe|");
  ASSERT_TRUE(f->Sync().ok());
  ASSERT_TRUE(fs_.SyncDir("/db").ok());
  ASSERT_TRUE(f->Append("lost").ok());
  fs_.InjectFault(Rule(OpKind::kSync, 1, false));
  absl::Status s = f->Sync();
  EXPECT_TRUE(absl::IsInternal(s));
  EXPECT_EQ(s.message(), "fdatasync /db/wal: Input/output error");
  // The page cache still shows the bytes...
  EXPECT_EQ(Read(fs_, "/db/wal"), "safe|lost");
  // ...and a retried sync "succeeds", but the bytes never reach the disk.
  EXPECT_TRUE(f->Sync().ok());
  EXPECT_EQ(*fs_.DurableFileBytes("/db/wal"), std::string("safe|\0\0\0\0", 9));
  EXPECT_EQ(fs_.CountOps(OpKind::kSync, "/db/wal"), 3u);
  EXPECT_EQ(fs_.CountInjectedFaults(OpKind::kSync), 1u);
  // The retry is reported, also through a new handle on the same file.
  auto again = fs_.ReopenWritableFile("/db/wal");
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE((*again)->Sync().ok());
  std::vector<FaultFs::OpRecord> retried = fs_.RetriedSyncs();
  ASSERT_EQ(retried.size(), 2u);
  EXPECT_EQ(retried[0].path, "/db/wal");
  EXPECT_FALSE(retried[0].failed);
}

TEST_F(FaultFsTest, NamespaceOpFaults) {
  Create(&fs_, "/db/a", "x")->Sync().IgnoreError();

  fs_.InjectFault(Rule(OpKind::kSyncDir, 1, false));
  absl::Status s = fs_.SyncDir("/db");
  EXPECT_TRUE(absl::IsInternal(s));
  EXPECT_EQ(s.message(), "fsync directory /db: Input/output error");
  // The failed directory sync made nothing durable.
  EXPECT_TRUE(fs_.ListDurableFiles().empty());
  EXPECT_TRUE(fs_.SyncDir("/db").ok());
  EXPECT_THAT(fs_.ListDurableFiles(), ElementsAre("/db/a"));

  fs_.InjectFault(Rule(OpKind::kRename, 1, true));
  s = fs_.RenameFile("/db/a", "/db/b");
  EXPECT_TRUE(absl::IsInternal(s));
  EXPECT_EQ(s.message(), "rename to /db/b from /db/a: Input/output error");
  EXPECT_FALSE(fs_.RenameFile("/db/a", "/db/b").ok());
  EXPECT_THAT(fs_.ListFiles(), ElementsAre("/db/a"));  // no effect

  fs_.InjectFault(Rule(OpKind::kCreate, 1, false, EACCES));
  EXPECT_TRUE(absl::IsPermissionDenied(fs_.NewWritableFile("/db/c").status()));
  fs_.InjectFault(Rule(OpKind::kDelete, 1, false));
  EXPECT_FALSE(fs_.DeleteFile("/db/a").ok());
  fs_.InjectFault(Rule(OpKind::kCreateDir, 1, false, ENOSPC));
  EXPECT_TRUE(absl::IsResourceExhausted(fs_.CreateDir("/db/d")));
  fs_.InjectFault(Rule(OpKind::kTruncate, 1, false));
  EXPECT_EQ(fs_.TruncateFile("/db/a", 0).message(),
            "truncate to 0 bytes /db/a: Input/output error");
  EXPECT_EQ(Read(fs_, "/db/a"), "x");
  fs_.InjectFault(Rule(OpKind::kRead, 1, false));
  std::string out;
  EXPECT_EQ(fs_.ReadFile("/db/a", &out).message(),
            "read at offset 0 /db/a: Input/output error");
  EXPECT_EQ(fs_.CountInjectedFaults(), 8u);
}

TEST_F(FaultFsTest, NthOfAnyKindAndPathFilter) {
  // kAny counts every logged call: fail the 3rd one, whatever it is.
  fs_.InjectFault(Rule(OpKind::kAny, 3, false));
  auto f = Create(&fs_, "/db/wal", "a");  // ops 1, 2
  EXPECT_FALSE(f->Sync().ok());           // op 3
  EXPECT_TRUE(fs_.SyncDir("/db").ok());
  fs_.ClearFaults();

  FaultFs::FaultRule r = Rule(OpKind::kSync, 1, true);
  r.path_contains = "MANIFEST";
  int id = fs_.InjectFault(r);
  auto m = Create(&fs_, "/db/MANIFEST-1", "m");
  EXPECT_TRUE(f->Sync().ok());
  EXPECT_FALSE(m->Sync().ok());
  EXPECT_FALSE(m->Sync().ok());
  fs_.RemoveFault(id);
  EXPECT_TRUE(m->Sync().ok());
}

TEST_F(FaultFsTest, SqliteStyleIoErrorLoop) {
  // Fail the Nth write-side call for every N until the workload passes
  // untouched; each run must either succeed or report the injected error.
  auto workload = [](FaultFs* fs) -> absl::Status {
    auto f = fs->NewWritableFile("/db/wal");
    if (!f.ok()) return f.status();
    for (int i = 0; i < 3; ++i) {
      if (absl::Status s = (*f)->Append("record"); !s.ok()) return s;
      if (absl::Status s = (*f)->Sync(); !s.ok()) return s;
    }
    if (absl::Status s = fs->SyncDir("/db"); !s.ok()) return s;
    return fs->RenameFile("/db/wal", "/db/wal.done");
  };
  uint64_t n = 1;
  for (;; ++n) {
    FaultFs fs;
    ASSERT_TRUE(fs.CreateDirs("/db").ok());
    fs.InjectFault(Rule(OpKind::kAny, n, /*persistent=*/false));
    absl::Status s = workload(&fs);
    if (fs.CountInjectedFaults() == 0) {
      EXPECT_TRUE(s.ok()) << s;
      break;
    }
    EXPECT_THAT(std::string(s.message()), HasSubstr("Input/output error"))
        << "n=" << n;
  }
  EXPECT_EQ(n, 10u);  // 1 create + 3 appends + 3 syncs + dir sync + rename
}

// ---------------------------------------------------------------------------
// Counters.

TEST_F(FaultFsTest, CountersPerKindAndPath) {
  fs_.ResetCounters();
  auto a = Create(&fs_, "/db/a", "1");
  auto b = Create(&fs_, "/db/b", "2");
  ASSERT_TRUE(a->Sync().ok());
  ASSERT_TRUE(a->Sync().ok());
  ASSERT_TRUE(b->Sync().ok());
  ASSERT_TRUE(fs_.SyncDir("/db").ok());
  ASSERT_TRUE(a->Close().ok());
  ASSERT_TRUE(*fs_.FileExists("/db/a"));
  EXPECT_EQ(fs_.CountOps(OpKind::kSync), 3u);
  EXPECT_EQ(fs_.CountOps(OpKind::kSync, "/db/a"), 2u);
  EXPECT_EQ(fs_.CountOps(OpKind::kSync, "/db//b"), 1u);
  EXPECT_EQ(fs_.CountOps(OpKind::kCreate), 2u);
  EXPECT_EQ(fs_.CountOps(OpKind::kAppend), 2u);
  EXPECT_EQ(fs_.CountOps(OpKind::kSyncDir, "/db"), 1u);
  EXPECT_EQ(fs_.CountOps(OpKind::kClose), 1u);
  EXPECT_EQ(fs_.CountOps(OpKind::kStat), 1u);
  EXPECT_EQ(fs_.CountOps(OpKind::kAny), 8u);  // logged kinds only
  EXPECT_EQ(fs_.CountOps(OpKind::kAny, "/db/a"), 4u);
  // Closed files refuse further use, and the attempt is still counted.
  EXPECT_FALSE(a->Append("x").ok());
  EXPECT_EQ(fs_.CountOps(OpKind::kAppend, "/db/a"), 2u);
  fs_.ResetCounters();
  EXPECT_EQ(fs_.CountOps(OpKind::kAny), 0u);
}

// ---------------------------------------------------------------------------
// Test helpers.

TEST_F(FaultFsTest, PlantingAndDamage) {
  ASSERT_TRUE(fs_.WriteFileBytes("/db/deep/dir/f", "0123456789").ok());
  auto c = fs_.Crash(Opts(CrashMode::kDropUnsynced, NameLoss::kDropUnsynced));
  EXPECT_EQ(Read(*c, "/db/deep/dir/f"), "0123456789");

  ASSERT_TRUE(fs_.WriteFileBytes("/db/soft", "s", /*durable=*/false).ok());
  c = fs_.Crash(Opts(CrashMode::kDropUnsynced, NameLoss::kDropUnsynced));
  EXPECT_FALSE(*c->FileExists("/db/soft"));

  ASSERT_TRUE(fs_.FlipBit("/db/deep/dir/f", 1, 0).ok());
  EXPECT_EQ(Read(fs_, "/db/deep/dir/f"), "0023456789");
  ASSERT_TRUE(fs_.OverwriteBytes("/db/deep/dir/f", 8, "XYZ").ok());
  EXPECT_EQ(Read(fs_, "/db/deep/dir/f"), "00234567XYZ");
  ASSERT_TRUE(fs_.TruncateInPlace("/db/deep/dir/f", 4).ok());
  c = fs_.Crash(Opts(CrashMode::kDropUnsynced, NameLoss::kDropUnsynced));
  EXPECT_EQ(Read(*c, "/db/deep/dir/f"), "0023");  // damage is on disk
  EXPECT_TRUE(absl::IsOutOfRange(fs_.FlipBit("/db/deep/dir/f", 4, 0)));
  EXPECT_TRUE(absl::IsNotFound(fs_.FlipBit("/db/none", 0, 0)));
  // Helpers are neither counted nor subject to faults.
  fs_.InjectFault(Rule(OpKind::kAny, 1, true));
  EXPECT_TRUE(fs_.WriteFileBytes("/db/g", "g").ok());
  EXPECT_EQ(fs_.CountOps(OpKind::kAny), 0u);
}

TEST_F(FaultFsTest, ImageRoundTrip) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::filesystem::path base = std::filesystem::path(tmp ? tmp : "/tmp") /
                               absl::StrCat("fifs_image_", getpid());
  std::filesystem::remove_all(base);

  ASSERT_TRUE(fs_.CreateDirs("/db/snap").ok());
  ASSERT_TRUE(fs_.WriteFileBytes("/db/wal", std::string("a\0b", 3)).ok());
  ASSERT_TRUE(fs_.WriteFileBytes("/db/snap/s1", Bytes(5000, 's')).ok());
  ASSERT_TRUE(fs_.CreateDir("/db/empty").ok());
  ASSERT_TRUE(fs_.WriteFileBytes("/elsewhere", "not saved").ok());

  ASSERT_TRUE(fs_.SaveImage("/db", base.string()).ok());
  std::ifstream in(base / "wal", std::ios::binary);
  std::string wal((std::istreambuf_iterator<char>(in)),
                  std::istreambuf_iterator<char>());
  EXPECT_EQ(wal, std::string("a\0b", 3));
  EXPECT_TRUE(std::filesystem::is_directory(base / "empty"));
  EXPECT_FALSE(std::filesystem::exists(base / "elsewhere"));
  // Never writes over an existing tree.
  EXPECT_TRUE(absl::IsFailedPrecondition(fs_.SaveImage("/db", base.string())));

  auto loaded = FaultFs::LoadImage(base.string(), "/mnt/db");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_THAT((*loaded)->ListFiles(),
              ElementsAre("/mnt/db/snap/s1", "/mnt/db/wal"));
  EXPECT_EQ(Read(**loaded, "/mnt/db/snap/s1"), Bytes(5000, 's'));
  EXPECT_EQ(Read(**loaded, "/mnt/db/wal"), std::string("a\0b", 3));
  EXPECT_TRUE(*(*loaded)->FileExists("/mnt/db/empty"));
  // Everything loaded is durable.
  auto c =
      (*loaded)->Crash(Opts(CrashMode::kDropUnsynced, NameLoss::kDropUnsynced));
  EXPECT_EQ(Read(*c, "/mnt/db/wal"), std::string("a\0b", 3));
  EXPECT_TRUE(*c->FileExists("/mnt/db/empty"));

  EXPECT_TRUE(absl::IsNotFound(
      FaultFs::LoadImage((base / "nope").string(), "/").status()));
  std::filesystem::remove_all(base);
}

// ---------------------------------------------------------------------------
// Concurrency (run under --config=tsan; its own target, tagged).

TEST(FaultFsConcurrencyTest, ThreadsAppendToSeparateFiles) {
  FaultFs fs;
  ASSERT_TRUE(fs.CreateDirs("/db").ok());
  constexpr int kThreads = 4;
  constexpr int kRecords = 300;
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&fs, t] {
      auto f = fs.NewWritableFile(absl::StrCat("/db/f", t));
      ASSERT_TRUE(f.ok());
      for (int i = 0; i < kRecords; ++i) {
        ASSERT_TRUE((*f)->Append(absl::StrCat(t, ":", i, ";")).ok());
        if (i % 10 == 9) {
          ASSERT_TRUE((*f)->Sync().ok());
        }
      }
      ASSERT_TRUE(fs.SyncDir("/db").ok());
    });
  }
  // Meanwhile: crash copies, replays, counters and reads.
  std::thread observer([&] {
    while (!done.load()) {
      auto c = fs.Crash(Opts(CrashMode::kCutUnsynced, NameLoss::kRandomPrefix,
                             fs.op_count()));
      for (const std::string& f : c->ListFiles()) {
        EXPECT_TRUE(c->ReadFileBytes(f).ok());
      }
      auto at = fs.StateAtOp(fs.op_count() / 2);
      EXPECT_TRUE(at.ok());
      (void)fs.CountOps(OpKind::kSync);
      (void)fs.ListFiles();
    }
  });
  for (auto& t : threads) t.join();
  done = true;
  observer.join();

  EXPECT_EQ(fs.CountOps(OpKind::kAppend), uint64_t{kThreads} * kRecords);
  EXPECT_EQ(fs.CountOps(OpKind::kSync), uint64_t{kThreads} * kRecords / 10);
  auto c = fs.Crash(Opts(CrashMode::kDropUnsynced, NameLoss::kDropUnsynced));
  for (int t = 0; t < kThreads; ++t) {
    std::string expect;
    for (int i = 0; i < kRecords; ++i) absl::StrAppend(&expect, t, ":", i, ";");
    EXPECT_EQ(Read(*c, absl::StrCat("/db/f", t)), expect);
  }
  // The log is one total order: replaying it all gives the live state.
  EXPECT_EQ(Describe(**fs.StateAtOp(fs.op_count())), Describe(fs));
}

}  // namespace
}  // namespace walstate
