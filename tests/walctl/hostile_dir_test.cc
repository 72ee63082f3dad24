// Issue 17: hostile and unlucky data directories, on the real file system.
// Each test builds the directory an operator with a damaged disk or a
// careless shell could leave, runs the engine or walctl on it, and checks
// that nothing acknowledged is lost and nothing of anyone else's is touched.
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/fs/file_system.h"
#include "engine/log/format.h"
#include "engine/snapshot/manifest.h"
#include "engine/walstate.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/example/gateway.pb.h"
#include "tests/walctl/walctl_test_util.h"

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

}  // namespace
}  // namespace walctl_test
}  // namespace walstate
