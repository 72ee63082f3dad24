// Issue 17: hostile and unlucky data directories, on the real file system.
// Each test builds the directory an operator with a damaged disk or a
// careless shell could leave, runs the engine or walctl on it, and checks
// that nothing acknowledged is lost and nothing of anyone else's is touched.
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/log/format.h"
#include "engine/log/reader.h"
#include "engine/snapshot/manifest.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/example/gateway.pb.h"
#include "proto/walstate/record.pb.h"
#include "tests/walctl/walctl_test_util.h"
#include "tools/walctl/common.h"
#include "tools/walctl/walctl.h"
#include "walstate/file_system.h"
#include "walstate/walstate.h"

namespace walstate {
namespace walctl_test {
namespace {

using example::GatewaySession;
using ::testing::HasSubstr;
using ::testing::Not;

Options EngineOptions() {
  Options o;
  o.background_thread = false;
  return o;
}

GatewaySession Fingerprint(const std::string& fp) {
  GatewaySession s;
  s.set_fingerprint(fp);
  return s;
}

// Adds sessions s<from>..s<to> (IMMEDIATE, so acknowledged when it returns).
void AddSessions(Store<GatewaySession>* store, int from, int to) {
  for (int i = from; i <= to; ++i) {
    ASSERT_TRUE(store
                    ->Update(absl::StrCat("s", i),
                             Fingerprint(absl::StrCat("fp", i)),
                             {"fingerprint"})
                    .ok());
  }
}

std::unique_ptr<Store<GatewaySession>> OpenOrDie(const std::string& dir,
                                                 Options o = EngineOptions()) {
  auto store = Store<GatewaySession>::Open(o, dir);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

// Sessions s1..s<n> all present with their values.
void ExpectSessions(Store<GatewaySession>* store, int n) {
  EXPECT_EQ(store->stats().sessions, static_cast<uint64_t>(n));
  for (int i = 1; i <= n; ++i) {
    auto got = store->Get(absl::StrCat("s", i));
    ASSERT_TRUE(got.ok()) << "s" << i << ": " << got.status();
    EXPECT_EQ(got->fingerprint(), absl::StrCat("fp", i));
  }
}

std::string FirstWithPrefix(const std::string& dir, const std::string& prefix) {
  for (const std::string& name : ListDir(dir)) {
    if (absl::StartsWith(name, prefix)) return name;
  }
  return "";
}

uint32_t ModeOf(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// A store of `n` sessions, closed.
std::string StoreWith(const std::string& name, int n) {
  const std::string dir = NewTempDir(name);
  auto store = OpenOrDie(dir);
  AddSessions(store.get(), 1, n);
  EXPECT_TRUE(store->Close().ok());
  return dir;
}

// --- 1. Symlinks are never written through; `rm LOCK` does not let a second
// writer in.

TEST(HostileDir, LockSymlinkIsRefusedAndItsTargetUntouched) {
  const std::string dir = StoreWith("lock-link", 3);
  const std::string victim = NewTempDir("victim") + "/precious";
  WriteFile(victim, "someone else's file\n");
  ASSERT_EQ(::unlink((dir + "/LOCK").c_str()), 0);
  ASSERT_EQ(::symlink(victim.c_str(), (dir + "/LOCK").c_str()), 0);

  auto store = Store<GatewaySession>::Open(EngineOptions(), dir);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("LOCK"));
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr("symbolic link"));
  EXPECT_EQ(ReadFile(victim), "someone else's file\n");

  RunResult compact = RunWalctl({"compact", dir});
  EXPECT_NE(compact.code, 0);
  EXPECT_EQ(ReadFile(victim), "someone else's file\n");
  RunResult repair = RunWalctl({"repair", dir, "--fix"});
  EXPECT_NE(repair.code, 0);
  EXPECT_EQ(ReadFile(victim), "someone else's file\n");
}

TEST(HostileDir, SymlinkedSegmentIsRefusedUnlessAllowed) {
  const std::string dir = StoreWith("seg-link", 3);
  const std::string seg = log::SegmentFileName(1);
  const std::string elsewhere = NewTempDir("elsewhere") + "/" + seg;
  ASSERT_EQ(::rename((dir + "/" + seg).c_str(), elsewhere.c_str()), 0);
  ASSERT_EQ(::symlink(elsewhere.c_str(), (dir + "/" + seg).c_str()), 0);
  const std::string before = ReadFile(elsewhere);

  auto store = Store<GatewaySession>::Open(EngineOptions(), dir);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(seg));
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr("allow_symlinked_files"));
  EXPECT_EQ(ReadFile(elsewhere), before);

  EXPECT_EQ(ReadFile(elsewhere), before);
}

TEST(HostileDir, SymlinkedSnapshotIsReadOnlyWhenAllowed) {
  const std::string dir = NewTempDir("snap-link");
  std::string snap;
  {
    auto store = OpenOrDie(dir);
    AddSessions(store.get(), 1, 3);
    ASSERT_TRUE(store->Compact().ok());
    snap = log::SnapshotFileName(store->stats().snapshot_lsn);
    ASSERT_TRUE(store->Close().ok());
  }
  const std::string elsewhere = NewTempDir("elsewhere") + "/" + snap;
  ASSERT_EQ(::rename((dir + "/" + snap).c_str(), elsewhere.c_str()), 0);
  ASSERT_EQ(::symlink(elsewhere.c_str(), (dir + "/" + snap).c_str()), 0);
  const std::string before = ReadFile(elsewhere);

  auto refused = Store<GatewaySession>::Open(EngineOptions(), dir);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr(snap));

  Options allow = EngineOptions();
  allow.allow_symlinked_files = true;
  auto allowed = OpenOrDie(dir, allow);
  ASSERT_NE(allowed, nullptr);
  ExpectSessions(allowed.get(), 3);
  EXPECT_EQ(allowed->recovery_report().snapshot_file, snap);
  EXPECT_TRUE(allowed->Close().ok());
  EXPECT_EQ(ReadFile(elsewhere), before);
}

TEST(HostileDir, RemovingLockDoesNotLetASecondWriterIn) {
  const std::string dir = StoreWith("two-writers", 2);
  auto first = OpenOrDie(dir);
  ASSERT_NE(first, nullptr);
  ASSERT_EQ(::unlink((dir + "/LOCK").c_str()), 0);

  auto second = Store<GatewaySession>::Open(EngineOptions(), dir);
  ASSERT_FALSE(second.ok()) << "a second writer opened the store";
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("held by"));

  AddSessions(first.get(), 3, 4);
  ASSERT_TRUE(first->Close().ok());
  first.reset();
  auto third = OpenOrDie(dir);
  ASSERT_NE(third, nullptr);
  ExpectSessions(third.get(), 4);
}

// --- Files private by default.

TEST(HostileDir, FilesArePrivateByDefaultAndGroupReadableOnRequest) {
  const mode_t old_umask = ::umask(022);
  for (bool group : {false, true}) {
    const std::string dir = NewTempDir("modes") + "/store";
    Options o = EngineOptions();
    o.group_readable = group;
    auto store = OpenOrDie(dir, o);
    ASSERT_NE(store, nullptr);
    AddSessions(store.get(), 1, 2);
    ASSERT_TRUE(store->Compact().ok());
    const uint32_t file = group ? 0640 : 0600;
    EXPECT_EQ(ModeOf(dir), group ? 0750u : 0700u);
    for (const std::string& name : ListDir(dir)) {
      EXPECT_EQ(ModeOf(dir + "/" + name), file) << name << " group=" << group;
    }
    ASSERT_TRUE(store->Close().ok());
  }
  ::umask(old_umask);
}

// --- 4. Compaction after a fallback keeps the snapshot recovery used.

TEST(HostileDir, CompactionAfterFallbackKeepsTheSnapshotRecoveryUsed) {
  const std::string dir = NewTempDir("fallback");
  std::string snap_a, snap_b;
  {
    auto store = OpenOrDie(dir);
    AddSessions(store.get(), 1, 10);
    ASSERT_TRUE(store->Compact().ok());
    snap_a = log::SnapshotFileName(store->stats().snapshot_lsn);
    AddSessions(store.get(), 11, 20);
    ASSERT_TRUE(store->Compact().ok());
    snap_b = log::SnapshotFileName(store->stats().snapshot_lsn);
    AddSessions(store.get(), 21, 30);
    ASSERT_TRUE(store->Close().ok());
  }
  const std::string damaged_b = dir + "/" + snap_b;
  FlipByte(damaged_b, FileSize(damaged_b) / 2);
  const std::string b_bytes = ReadFile(damaged_b);

  // walctl compact warns that the store opened by fallback.
  {
    const std::string copy = NewTempDir("fallback-copy");
    CopyDir(dir, copy);
    RunResult r = RunWalctl({"compact", copy});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(r.err, HasSubstr("warning"));
    EXPECT_THAT(r.err, HasSubstr(snap_a));
  }

  std::string snap_c;
  {
    auto store = OpenOrDie(dir);
    ASSERT_NE(store, nullptr);
    EXPECT_TRUE(store->recovery_report().fell_back);
    EXPECT_EQ(store->recovery_report().snapshot_file, snap_a);
    ExpectSessions(store.get(), 30);
    AddSessions(store.get(), 31, 31);
    ASSERT_TRUE(store->Compact().ok());
    snap_c = log::SnapshotFileName(store->stats().snapshot_lsn);
    ASSERT_TRUE(store->Close().ok());
  }
  auto manifest = ReadManifest(FileSystem::Default(), dir);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_EQ(manifest->current().file(), snap_c);
  EXPECT_EQ(manifest->previous().file(), snap_a)
      << "the snapshot that failed to load was kept as the fallback";
  EXPECT_TRUE(Exists(dir + "/" + snap_a));
  // The damaged snapshot is evidence: moved to the backup folder, not lost.
  EXPECT_FALSE(Exists(damaged_b));
  const std::string backup = FirstWithPrefix(dir, "recovery-backup-");
  ASSERT_FALSE(backup.empty());
  EXPECT_EQ(ReadFile(dir + "/" + backup + "/" + snap_b), b_bytes);

  // One more damage: the store still opens, from the snapshot kept, with
  // everything acknowledged.
  const std::string c = dir + "/" + snap_c;
  FlipByte(c, FileSize(c) / 2);
  auto store = OpenOrDie(dir);
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->recovery_report().fell_back);
  EXPECT_EQ(store->recovery_report().snapshot_file, snap_a);
  ExpectSessions(store.get(), 31);
}

// --- 5. Open deletes only temporaries in the exact names it gives them.

TEST(HostileDir, OpenLeavesFilesThatAreNotWalstatesAlone) {
  const std::string dir = NewTempDir("foreign");
  std::string snap;
  {
    auto store = OpenOrDie(dir);
    AddSessions(store.get(), 1, 5);
    ASSERT_TRUE(store->Compact().ok());
    snap = log::SnapshotFileName(store->stats().snapshot_lsn);
    ASSERT_TRUE(store->Close().ok());
  }
  const std::string copy = log::SnapshotFileName(0xff);
  WriteFile(dir + "/notes.tmp", "an operator's notes\n");
  WriteFile(dir + "/" + copy, ReadFile(dir + "/" + snap));
  WriteFile(dir + "/MANIFEST.tmp", "half a manifest");
  WriteFile(dir + "/" + snap + ".tmp", "half a snapshot");

  RunResult v = RunWalctl({"verify", dir});
  EXPECT_THAT(v.out, HasSubstr("foreign notes.tmp: not walstate's"));
  EXPECT_THAT(v.out, HasSubstr(copy));
  EXPECT_THAT(v.out, HasSubstr("not walstate's to delete"));
  EXPECT_THAT(v.out, HasSubstr("leftover MANIFEST.tmp"));

  {
    auto store = OpenOrDie(dir);
    ASSERT_NE(store, nullptr);
    ExpectSessions(store.get(), 5);
    AddSessions(store.get(), 6, 6);
    ASSERT_TRUE(store->Compact().ok());  // deletes only what it replaced
    ASSERT_TRUE(store->Close().ok());
  }
  EXPECT_EQ(ReadFile(dir + "/notes.tmp"), "an operator's notes\n");
  EXPECT_TRUE(Exists(dir + "/" + copy));
  EXPECT_FALSE(Exists(dir + "/MANIFEST.tmp"));
  EXPECT_FALSE(Exists(dir + "/" + snap + ".tmp"));
}

// --- 2. A zero-filled last segment is damage, kept; what Open does drop is
// backed up first.

// The frames of a segment: offset, LSN, type, framed size.
struct Frame {
  uint64_t offset, lsn;
  uint8_t type;
  uint64_t size;
};
std::vector<Frame> FramesOf(const std::string& path) {
  std::vector<Frame> out;
  auto reader = log::FileReader::Open(FileSystem::Default(), path,
                                      log::RecoveryMode::kStrict, false);
  EXPECT_TRUE(reader.ok()) << reader.status();
  if (!reader.ok()) return out;
  log::Record rec;
  while ((*reader)->Next(&rec)) {
    out.push_back({rec.offset, rec.lsn, rec.type, rec.framed_size});
  }
  EXPECT_TRUE((*reader)->status().ok()) << (*reader)->status();
  return out;
}

std::string LastSegment(const std::string& dir) {
  std::string last;
  for (const std::string& name : ListDir(dir)) {
    uint64_t n = 0;
    if (log::ParseSegmentFileName(name, &n) && name > last) last = name;
  }
  return last;
}

TEST(HostileDir, ZeroFilledLastSegmentIsDamageAndKept) {
  const std::string dir = StoreWith("zeroed", 5);
  {
    auto store = OpenOrDie(dir);  // a second segment, holding all that follows
    AddSessions(store.get(), 6, 60);
    ASSERT_TRUE(store->Delete("s3").ok());
    ASSERT_TRUE(store->Close().ok());
  }
  const std::string seg = LastSegment(dir);
  ASSERT_EQ(seg, log::SegmentFileName(2));
  const uint64_t size = FileSize(dir + "/" + seg);
  WriteFile(dir + "/" + seg, std::string(size, '\0'));

  RunResult v = RunWalctl({"verify", dir});
  EXPECT_EQ(v.code, 2) << v.out;
  EXPECT_THAT(v.out, HasSubstr("not an interrupted create"));

  auto store = Store<GatewaySession>::Open(EngineOptions(), dir);
  ASSERT_FALSE(store.ok()) << "the zeroed segment was dropped as a torn tail";
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(seg));
  EXPECT_EQ(FileSize(dir + "/" + seg), size);
  EXPECT_EQ(FirstWithPrefix(dir, "recovery-backup-"), "");
}

// What a crash right after the next segment's create leaves: a segment of
// header-sized zeros after the last one. Returns its name ("" on failure).
std::string AddInterruptedCreate(const std::string& dir) {
  const std::string last = LastSegment(dir);
  uint64_t n = 0;
  if (!log::ParseSegmentFileName(last, &n)) return "";
  const std::string next = log::SegmentFileName(n + 1);
  auto header = log::FileReader::Open(FileSystem::Default(), dir + "/" + last,
                                      log::RecoveryMode::kSalvage, false);
  if (!header.ok()) return "";
  WriteFile(dir + "/" + next,
            std::string((*header)->header().header_size, '\0'));
  return next;
}

TEST(HostileDir, WhatOpenDropsIsBackedUpFirst) {
  // A torn tail: garbage after the last record of the last segment.
  const std::string dir = StoreWith("dropped", 3);
  const std::string seg = LastSegment(dir);
  const std::string with_tail = ReadFile(dir + "/" + seg) + "torn!";
  WriteFile(dir + "/" + seg, with_tail);
  {
    auto store = OpenOrDie(dir);
    ASSERT_NE(store, nullptr);
    ExpectSessions(store.get(), 3);
    const RecoveryReport& r = store->recovery_report();
    ASSERT_FALSE(r.backup_dir.empty()) << r.ToString();
    EXPECT_THAT(r.backed_up, ::testing::ElementsAre(seg));
    EXPECT_THAT(r.ToString(), HasSubstr(r.backup_dir));
    EXPECT_EQ(ReadFile(r.backup_dir + "/" + seg), with_tail);
    ASSERT_TRUE(store->Close().ok());
  }
  // A crash right after the next segment's create: header-sized zeros.
  const std::string dir2 = StoreWith("dropped-create", 3);
  const std::string next = AddInterruptedCreate(dir2);
  ASSERT_FALSE(next.empty());
  auto store = OpenOrDie(dir2);
  ASSERT_NE(store, nullptr);
  ExpectSessions(store.get(), 3);
  const RecoveryReport& r = store->recovery_report();
  ASSERT_FALSE(r.backup_dir.empty()) << r.ToString();
  EXPECT_THAT(r.backed_up, ::testing::ElementsAre(next));
  EXPECT_TRUE(Exists(r.backup_dir + "/" + next));
  ASSERT_TRUE(store->Close().ok());
}

// The report names a segment set aside whole (its create interrupted), with
// no empty file name and offset where a cut tail's would be.
TEST(HostileDir, ReportNamesASegmentSetAsideWhole) {
  const std::string dir = StoreWith("set-aside", 3);
  const std::string next = AddInterruptedCreate(dir);
  ASSERT_FALSE(next.empty());
  const std::string copy = NewTempDir("set-aside-walctl");
  for (const std::string& name : ListDir(dir)) {
    WriteFile(copy + "/" + name, ReadFile(dir + "/" + name));
  }
  {
    auto store = OpenOrDie(dir);
    ASSERT_NE(store, nullptr);
    ExpectSessions(store.get(), 3);
    const std::string text = store->recovery_report().ToString();
    EXPECT_THAT(text, HasSubstr("torn tail dropped"));
    EXPECT_THAT(text, HasSubstr(next));
    EXPECT_THAT(text, Not(HasSubstr("at  offset")));
    EXPECT_THAT(text, Not(HasSubstr(" at offset 0")));
    ASSERT_TRUE(store->Close().ok());
  }
  RunResult r = RunWalctl({"compact", copy});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("set aside a last segment"));
  EXPECT_THAT(r.out, HasSubstr(next));
  EXPECT_THAT(r.out, Not(HasSubstr("at  offset")));
}

// --- 3. Salvage skips a misplaced frame, not everything after it.

GatewaySession Calibration(int layer) {
  GatewaySession s;
  s.mutable_calibration()->set_last_layer(layer);
  return s;
}

// s1..s60, a tick between s30 and s31, s40..s44 deleted; returns the
// segment's path.
std::string StoreForSalvage(const std::string& name, std::string* dir) {
  *dir = NewTempDir(name);
  auto store = OpenOrDie(*dir);
  AddSessions(store.get(), 1, 30);
  EXPECT_TRUE(store->Update("s1", Calibration(7), {"calibration"}).ok());
  EXPECT_TRUE(store->Flush().ok());
  AddSessions(store.get(), 31, 60);
  for (int i = 40; i <= 44; ++i) {
    EXPECT_TRUE(store->Delete(absl::StrCat("s", i)).ok());
  }
  EXPECT_TRUE(store->Close().ok());
  return *dir + "/" + LastSegment(*dir);
}

void ExpectSalvaged(const std::string& dir, int missing) {
  auto store = OpenOrDie(dir);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->stats().sessions, 54u);
  for (int i = 1; i <= 60; ++i) {
    const bool deleted = i >= 40 && i <= 44;
    EXPECT_EQ(store->Contains(absl::StrCat("s", i)), !deleted && i != missing)
        << "s" << i;
  }
}

TEST(HostileDir, MisplacedCopyOfALaterFrameCostsOnlyWhatItOverwrote) {
  std::string dir;
  const std::string seg = StoreForSalvage("misplaced", &dir);
  std::vector<Frame> frames = FramesOf(seg);
  // A misdirected write: the tick-begin frame (24 bytes, a later LSN)
  // copied over the start of s15's update.
  const Frame* begin = nullptr;
  for (const Frame& f : frames) {
    if (f.type == log::kTickBegin) begin = &f;
  }
  ASSERT_NE(begin, nullptr);
  ASSERT_EQ(begin->size, 24u);
  const Frame& victim = frames[14];  // s15
  ASSERT_LT(victim.lsn, begin->lsn);
  std::string bytes = ReadFile(seg);
  bytes.replace(victim.offset, 24, bytes.substr(begin->offset, 24));
  WriteFile(seg, bytes);

  EXPECT_EQ(RunWalctl({"verify", dir}).code, 2);
  RunResult r = RunWalctl({"repair", dir, "--fix", "--salvage"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_THAT(r.out,
              HasSubstr(absl::StrCat("fillers for lost lsn ", victim.lsn, ";")))
      << "records after the misplaced frame were dropped";
  EXPECT_THAT(r.out, HasSubstr("a misplaced frame"));
  EXPECT_EQ(RunWalctl({"verify", dir}).code, 0);
  ExpectSalvaged(dir, /*missing=*/15);
}

TEST(HostileDir, FrameWithBumpedLsnIsSkippedAndRepairable) {
  std::string dir;
  const std::string seg = StoreForSalvage("bumped", &dir);
  std::vector<Frame> frames = FramesOf(seg);
  const Frame& victim = frames[14];  // s15's update, LSN bumped by 3
  std::string bytes = ReadFile(seg);
  auto reader = log::FileReader::Open(FileSystem::Default(), seg,
                                      log::RecoveryMode::kStrict, false);
  ASSERT_TRUE(reader.ok());
  const uint64_t salt = (*reader)->header().salt;
  const uint64_t lsn = victim.lsn + 3;
  for (int i = 0; i < 8; ++i) {
    bytes[victim.offset + 16 + i] = static_cast<char>(lsn >> (8 * i));
  }
  log::SetRecordFlags(salt, 0, &bytes[victim.offset], victim.size);
  WriteFile(seg, bytes);

  EXPECT_EQ(RunWalctl({"verify", dir}).code, 2);
  RunResult dry = RunWalctl({"repair", dir, "--salvage"});
  EXPECT_EQ(dry.code, 2) << dry.out;
  EXPECT_THAT(dry.out, Not(HasSubstr("nothing to repair")));
  RunResult r = RunWalctl({"repair", dir, "--fix", "--salvage"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  ExpectSalvaged(dir, /*missing=*/15);
}

// --- Also: repair keeps modes; every verify finding has a repair path or
// says why; no empty backup folder; foreign segments refused; sizes checked
// before mapping.

TEST(HostileDir, RepairAndItsBackupKeepTheFileMode) {
  const std::string dir = StoreWith("repair-mode", 20);
  const std::string seg = dir + "/" + LastSegment(dir);
  ASSERT_EQ(::chmod(seg.c_str(), 0640), 0);
  FlipByte(seg, FileSize(seg) - 200);  // a record, synced ones after it
  RunResult r = RunWalctl({"repair", dir, "--fix", "--salvage"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(ModeOf(seg), 0640u);
  const std::string backup = FirstWithPrefix(dir, "walctl-backup-");
  ASSERT_FALSE(backup.empty()) << r.out;
  EXPECT_EQ(ModeOf(dir + "/" + backup + "/" + LastSegment(dir)), 0640u);
}

std::string StoreWithSnapshot(const std::string& name) {
  const std::string dir = NewTempDir(name);
  auto store = OpenOrDie(dir);
  AddSessions(store.get(), 1, 4);
  EXPECT_TRUE(store->Compact().ok());
  EXPECT_TRUE(store->Close().ok());
  return dir;
}

TEST(HostileDir, AbsurdManifestEntryHasARepairPath) {
  const std::string dir = StoreWithSnapshot("absurd-manifest");
  auto m = ReadManifest(FileSystem::Default(), dir);
  ASSERT_TRUE(m.ok());
  record::Manifest bad = *m;
  bad.mutable_current()->set_sessions(1000000000000ull);
  ASSERT_TRUE(WriteManifest(FileSystem::Default(), dir, bad).ok());
  EXPECT_EQ(RunWalctl({"verify", dir}).code, 2);
  RunResult dry = RunWalctl({"repair", dir, "--salvage"});
  EXPECT_THAT(dry.out, Not(HasSubstr("nothing to repair")));
  RunResult r = RunWalctl({"repair", dir, "--fix", "--salvage"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  auto fixed = ReadManifest(FileSystem::Default(), dir);
  ASSERT_TRUE(fixed.ok());
  EXPECT_EQ(fixed->current().sessions(), 4u);
}

TEST(HostileDir, VerifySaysWhyAManifestNameIsRefused) {
  const std::string dir = StoreWithSnapshot("refused-name");
  auto m = ReadManifest(FileSystem::Default(), dir);
  ASSERT_TRUE(m.ok());
  record::Manifest bad = *m;
  bad.mutable_current()->set_file("../" + m->current().file());
  ASSERT_TRUE(WriteManifest(FileSystem::Default(), dir, bad).ok());
  RunResult v = RunWalctl({"verify", dir});
  EXPECT_EQ(v.code, 2);
  EXPECT_THAT(v.out, HasSubstr("which recovery refuses"));
  EXPECT_THAT(v.out, Not(HasSubstr("does not exist")));
}

// Runs walctl in-process as an unprivileged user would: for root (CI), in a
// forked child whose file-permission overrides (CAP_DAC_OVERRIDE,
// CAP_DAC_READ_SEARCH) are dropped, so that a mode-0 file is unreadable to it
// while its root-owned 0700 directories stay reachable. `probe` must be
// unreadable once they are dropped; *dropped says whether it was.
RunResult RunWalctlUnprivileged(const std::vector<std::string>& args,
                                const std::string& probe, bool* dropped) {
  *dropped = true;
  if (::geteuid() != 0) return RunWalctl(args);
  int fds[2];
  if (::pipe(fds) != 0) return RunResult{};
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    const uint32_t dac = (1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH);
    bool ok = ::syscall(SYS_capget, &header, data) == 0;
    data[0].effective &= ~dac;
    data[0].permitted &= ~dac;
    ok = ok && ::syscall(SYS_capset, &header, data) == 0;
    const int probe_fd = ::open(probe.c_str(), O_RDONLY | O_CLOEXEC);
    ok = ok && probe_fd < 0 && errno == EACCES;
    RunResult r;
    if (ok) r = RunWalctl(args);
    std::string msg = absl::StrCat(ok ? 1 : 0, " ", r.code, " ", r.out.size(),
                                   " ", r.out, r.err);
    const char* p = msg.data();
    size_t left = msg.size();
    while (left > 0) {
      const ssize_t n = ::write(fds[1], p, left);
      if (n <= 0) break;
      p += n;
      left -= static_cast<size_t>(n);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string msg;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) msg.append(buf, n);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  RunResult r;
  int ok = 0;
  size_t out_size = 0;
  int header_end = 0;
  if (std::sscanf(msg.c_str(), "%d %d %zu %n", &ok, &r.code, &out_size,
                  &header_end) < 3) {
    ok = 0;
  }
  const std::string rest = msg.substr(std::min<size_t>(msg.size(), header_end));
  r.out = rest.substr(0, std::min(out_size, rest.size()));
  r.err = rest.size() > out_size ? rest.substr(out_size) : "";
  *dropped = ok == 1;
  return r;
}

TEST(HostileDir, UnreadableFileIsPermissionDeniedNotDamage) {
  const std::string dir = StoreWithSnapshot("denied");
  auto m = ReadManifest(FileSystem::Default(), dir);
  ASSERT_TRUE(m.ok());
  const std::string snapshot = dir + "/" + m->current().file();
  ASSERT_EQ(::chmod(snapshot.c_str(), 0), 0);
  bool dropped = false;
  RunResult v = RunWalctlUnprivileged({"verify", dir}, snapshot, &dropped);
  ASSERT_TRUE(dropped) << "could not run walctl without read access to "
                       << snapshot;
  EXPECT_EQ(v.code, 2) << v.out << v.err;
  EXPECT_THAT(v.out, HasSubstr("permission denied"));
  EXPECT_THAT(v.out, Not(HasSubstr("--salvage")));
}

TEST(HostileDir, RepairOnASymlinkLoopLeavesNoEmptyBackupFolder) {
  const std::string dir = StoreWith("loop", 3);
  const std::string seg = LastSegment(dir);
  WriteFile(dir + "/" + seg, ReadFile(dir + "/" + seg) + "torn!");
  const std::string loop = log::SegmentFileName(2);
  ASSERT_EQ(::symlink(loop.c_str(), (dir + "/" + loop).c_str()), 0);
  RunResult r = RunWalctl({"repair", dir, "--fix"});
  EXPECT_NE(r.code, 0) << r.out;
  const std::string backup = FirstWithPrefix(dir, "walctl-backup-");
  if (!backup.empty()) {
    EXPECT_FALSE(ListDir(dir + "/" + backup).empty())
        << "an empty backup folder was left behind";
  }
}

TEST(HostileDir, SalvageRefusesAnotherProgramsSegments) {
  const std::string dir = NewTempDir("foreign-segs");
  std::string text;
  for (int i = 0; i < 200; ++i) absl::StrAppend(&text, "line ", i, "\n");
  for (uint64_t n : {1, 2}) {
    WriteFile(dir + "/" + log::SegmentFileName(n), text);
  }
  RunResult r = RunWalctl({"repair", dir, "--fix", "--salvage"});
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_THAT(r.err + r.out, HasSubstr("contents are not"));
  for (uint64_t n : {1, 2}) {
    EXPECT_EQ(ReadFile(dir + "/" + log::SegmentFileName(n)), text);
  }
}

TEST(HostileDir, SparseSnapshotIsRefusedBeforeItIsMapped) {
  const std::string dir = StoreWithSnapshot("sparse");
  auto m = ReadManifest(FileSystem::Default(), dir);
  ASSERT_TRUE(m.ok());
  const std::string snap = dir + "/" + m->current().file();
  ASSERT_EQ(::truncate(snap.c_str(), 8ll << 30), 0);  // 8 GiB, sparse
  auto store = Store<GatewaySession>::Open(EngineOptions(), dir);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr("the MANIFEST says"));
}

// --- Also: compaction of an idle store is a no-op that says so, and stats
// promises what compact does.

// The directory's top-level files and their sizes.
std::map<std::string, uint64_t> FilesAndSizes(const std::string& dir) {
  std::map<std::string, uint64_t> out;
  for (const std::string& name : ListDir(dir)) {
    out[name] = FileSize(dir + "/" + name);
  }
  return out;
}

uint64_t TotalBytes(const std::map<std::string, uint64_t>& files) {
  uint64_t total = 0;
  for (const auto& [name, bytes] : files) total += bytes;
  return total;
}

TEST(HostileDir, CompactOnAnIdleStoreChangesNothing) {
  const std::string dir = StoreWith("idle", 5);
  RunResult first = RunWalctl({"compact", dir});
  ASSERT_EQ(first.code, 0) << first.err;
  EXPECT_THAT(first.out, HasSubstr("compacted: snapshot"));
  const auto after_first = FilesAndSizes(dir);
  for (int run = 0; run < 3; ++run) {
    RunResult r = RunWalctl({"compact", dir});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr("nothing to compact: no record since "
                                 "snapshot"));
    EXPECT_THAT(r.out, HasSubstr("the directory is unchanged"));
    EXPECT_EQ(FilesAndSizes(dir), after_first) << "run " << run;
    EXPECT_EQ(TotalBytes(FilesAndSizes(dir)), TotalBytes(after_first));
  }
  RunResult j = RunWalctl({"compact", dir, "--json"});
  ASSERT_EQ(j.code, 0) << j.err;
  const google::protobuf::Value jv = ParseJson(j.out);
  const auto& c = jv.struct_value().fields();
  EXPECT_FALSE(c.at("compacted").bool_value());
  EXPECT_EQ(c.at("sessions").number_value(), 5);
  EXPECT_EQ(c.at("files_after").number_value(),
            c.at("files_before").number_value());
  EXPECT_EQ(FilesAndSizes(dir), after_first);

  // stats after the compaction promises nothing.
  RunResult s = RunWalctl({"stats", dir, "--json"});
  ASSERT_EQ(s.code, 0) << s.err;
  const google::protobuf::Value sv = ParseJson(s.out);
  const auto& plan =
      sv.struct_value().fields().at("compaction").struct_value().fields();
  EXPECT_TRUE(plan.at("unchanged").bool_value());
  EXPECT_EQ(plan.at("reclaim_bytes").number_value(), 0);
  EXPECT_EQ(plan.at("delete_bytes").number_value(), 0);
  EXPECT_EQ(plan.at("deletes").list_value().values_size(), 0);
  RunResult text = RunWalctl({"stats", dir});
  EXPECT_THAT(text.out, HasSubstr("compaction would change nothing"));
  EXPECT_THAT(text.out, HasSubstr("reclaims 0 bytes"));
}

TEST(HostileDir, StatsPromisesWhatCompactDoes) {
  const std::string dir = StoreWith("promise", 3);
  bool deleted_a_snapshot = false;
  for (int round = 0; round < 3; ++round) {
    {
      auto store = OpenOrDie(dir);
      ASSERT_NE(store, nullptr);
      AddSessions(store.get(), 1 + 3 * round, 3 + 3 * round);
      ASSERT_TRUE(store->Close().ok());
    }
    RunResult s = RunWalctl({"stats", dir, "--json"});
    ASSERT_EQ(s.code, 0) << s.err;
    const google::protobuf::Value sv = ParseJson(s.out);
    const auto& plan =
        sv.struct_value().fields().at("compaction").struct_value().fields();
    EXPECT_FALSE(plan.at("unchanged").bool_value());
    std::vector<std::string> promised;
    for (const auto& v : plan.at("deletes").list_value().values()) {
      promised.push_back(v.string_value());
    }
    const auto before = FilesAndSizes(dir);
    uint64_t promised_bytes = 0;
    for (const std::string& name : promised) {
      ASSERT_TRUE(before.count(name)) << name;
      promised_bytes += before.at(name);
      if (absl::StartsWith(name, "snap-")) deleted_a_snapshot = true;
    }
    EXPECT_EQ(plan.at("delete_bytes").number_value(), promised_bytes);

    RunResult c = RunWalctl({"compact", dir});
    ASSERT_EQ(c.code, 0) << c.err;
    const auto after = FilesAndSizes(dir);
    for (const auto& [name, bytes] : before) {
      const bool is_promised =
          std::find(promised.begin(), promised.end(), name) != promised.end();
      EXPECT_EQ(after.count(name) == 0, is_promised)
          << "round " << round << ": " << name
          << (is_promised ? " was promised but kept"
                          : " was deleted but not promised");
    }
  }
  EXPECT_TRUE(deleted_a_snapshot) << "no round exercised a snapshot deletion";
}

// verify shows its progress through a snapshot on stderr, only on a
// terminal (ctx.progress) and never with --json; stdout is the same either
// way.
TEST(HostileDir, VerifyShowsSnapshotProgressOnlyOnATerminal) {
  const std::string dir = NewTempDir("verify-progress");
  {
    auto store = OpenOrDie(dir);
    ASSERT_NE(store, nullptr);
    AddSessions(store.get(), 1, 200);
    ASSERT_TRUE(store->Compact().ok());
    ASSERT_TRUE(store->Close().ok());
  }
  const std::string snap = FirstWithPrefix(dir, "snap-");
  ASSERT_FALSE(snap.empty());
  // A clock that moves 200 ms per reading: every update may redraw.
  std::chrono::steady_clock::time_point now{};
  auto run = [&](bool terminal, bool json, std::string* out, std::string* err) {
    std::ostringstream o, e;
    walctl::Context ctx(o, e);
    ctx.progress = terminal;
    ctx.now = [&now] { return now += std::chrono::milliseconds(200); };
    std::vector<std::string> args = {dir};
    if (json) args.push_back("--json");
    const int code = walctl::RunVerify(ctx, args);
    *out = o.str();
    *err = e.str();
    return code;
  };
  std::string plain_out, plain_err, tty_out, tty_err, json_out, json_err;
  EXPECT_EQ(run(false, false, &plain_out, &plain_err), 0) << plain_out;
  EXPECT_EQ(plain_err, "");  // not a terminal: no progress
  EXPECT_EQ(run(true, false, &tty_out, &tty_err), 0) << tty_out;
  EXPECT_EQ(tty_out, plain_out);  // stdout unchanged
  EXPECT_THAT(tty_err, HasSubstr("verify " + snap));
  EXPECT_EQ(run(true, true, &json_out, &json_err), 0) << json_out;
  EXPECT_EQ(json_err, "");  // never with --json
  // The same through the binary's in-process runner (no terminal).
  RunResult r = RunWalctl({"verify", dir});
  EXPECT_EQ(r.out, plain_out);
  EXPECT_EQ(r.err, "");
}

// verify checks a snapshot's size against the MANIFEST before reading it: a
// sparse multi-GiB file is reported, not read.
TEST(HostileDir, VerifyDoesNotReadASparseSnapshot) {
  const std::string dir = StoreWithSnapshot("verify-sparse");
  auto m = ReadManifest(FileSystem::Default(), dir);
  ASSERT_TRUE(m.ok());
  const std::string snap = dir + "/" + m->current().file();
  ASSERT_EQ(::truncate(snap.c_str(), 8ll << 30), 0);  // 8 GiB, sparse
  RunResult r = RunWalctl({"verify", dir});
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("the MANIFEST says"));
  EXPECT_THAT(r.out, HasSubstr("not read"));
}

}  // namespace
}  // namespace walctl_test
}  // namespace walstate
