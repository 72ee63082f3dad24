// Minimal reproductions of the engine bugs the crash sweeps found, one test
// each, so that a fix is checked directly and not only by the sweeps.
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/log/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/crash/crash_driver.h"

namespace walstate {
namespace crash {
namespace {

class RegressionTest : public ::testing::Test {
 protected:
  RegressionTest() : fs_(std::make_unique<FIFS>()) {}

  Options MakeOptions() {
    Options o = TestOptions(fs_.get(), &now_);
    o.max_segment_bytes = 2048;
    return o;
  }

  std::unique_ptr<Store<GatewaySession>> OpenStore() {
    auto store = Store<GatewaySession>::Open(MakeOptions(), kDir);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  void PowerLoss() {
    FIFS::CrashOptions c;
    c.mode = FIFS::CrashMode::kDropUnsynced;
    c.names = FIFS::NameLoss::kDropUnsynced;
    fs_ = fs_->Crash(c);
  }

  // Names of the log segments, in order.
  std::vector<std::string> Segments() {
    std::vector<std::string> out;
    for (const std::string& f : fs_->ListFiles()) {
      if (f.find("/seg-") != std::string::npos) out.push_back(f);
    }
    return out;
  }

  static GatewaySession Fingerprint(const std::string& fp) {
    GatewaySession s;
    s.set_fingerprint(fp);
    return s;
  }

  std::unique_ptr<FIFS> fs_;
  absl::Time now_ = absl::FromUnixSeconds(1800000000);
};

// Found by crash_driver_test (a model mismatch right after a Close + Open).
// A per-call BATCHED override on a field declared IMMEDIATE applies the value
// in memory and marks it dirty, but EngineImpl::Flush() skips every field
// declared IMMEDIATE when it writes tick entries, so no tick ever writes it:
// a committed tick (Flush returned OK, or Close) loses it.
TEST_F(RegressionTest, BatchedOverrideOfAnImmediateFieldIsWrittenByTheTick) {
  auto store = OpenStore();
  ASSERT_TRUE(store
                  ->Update("s1", Fingerprint("fp-batched"), {"fingerprint"},
                           UpdateOptions{BATCHED})
                  .ok());
  EXPECT_EQ(store->stats().dirty_sessions, 1u);
  ASSERT_TRUE(store->Flush().ok());
  store.reset();
  PowerLoss();
  store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto got = store->Get("s1");
  ASSERT_TRUE(got.ok()) << "the committed tick lost the session: "
                        << got.status();
  EXPECT_EQ(got->fingerprint(), "fp-batched");
  EXPECT_EQ(*store->Lookup("fingerprint", "fp-batched"),
            std::vector<std::string>{"s1"});
}

// Found by crash_driver_test (failed second opens). A crash right after a
// new segment was created leaves it empty (or with a torn header); recovery
// treats it as a torn tail and Open deletes it, but the writer then starts
// the NEXT number, so the segment numbers have a gap and the next Open
// refuses the directory ("log segments N..N are missing").
TEST_F(RegressionTest, TornNewSegmentLeavesNoGapInSegmentNumbers) {
  auto store = OpenStore();
  ASSERT_TRUE(store->Update("s1", Fingerprint("fp1"), {"fingerprint"}).ok());
  ASSERT_TRUE(store->Close().ok());
  store.reset();
  std::vector<std::string> segs = Segments();
  ASSERT_FALSE(segs.empty());
  uint64_t last = 0;
  ASSERT_TRUE(log::ParseSegmentFileName(
      segs.back().substr(segs.back().rfind('/') + 1), &last));
  // What a crash right after the create of the next segment leaves.
  const std::string torn =
      absl::StrCat(kDir, "/", log::SegmentFileName(last + 1));
  ASSERT_TRUE(fs_->WriteFileBytes(torn, "").ok());

  store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Update("s2", Fingerprint("fp2"), {"fingerprint"}).ok());
  ASSERT_TRUE(store->Close().ok());
  store.reset();
  auto again = Store<GatewaySession>::Open(MakeOptions(), kDir);
  ASSERT_TRUE(again.ok()) << again.status()
                          << "\nsegments: " << absl::StrJoin(Segments(), " ");
  EXPECT_TRUE((*again)->Contains("s1"));
  EXPECT_TRUE((*again)->Contains("s2"));
}

// Found by crash_driver_test (failed first opens under mode (d)). A crash
// after a new segment's header was written but before it was synced may
// leave garbage in the header's sectors (issue 5, crash mode (d)); nothing
// can follow an unsynced header (the writer syncs it before any record), so
// this is a torn tail, but the reader calls it a foreign file ("bad magic")
// and Open refuses the directory.
TEST_F(RegressionTest, GarbageInAnUnsyncedNewSegmentHeaderIsATornTail) {
  Options o = MakeOptions();
  auto store = OpenStore();
  fs_->ResetOpLog();
  // Fill the first segment until the writer starts the second one.
  for (int i = 0; i < 40 && Segments().size() < 2; ++i) {
    ASSERT_TRUE(store
                    ->Update(absl::StrCat("s", i),
                             Fingerprint(absl::StrCat("fp", i)),
                             {"fingerprint"})
                    .ok());
  }
  ASSERT_EQ(Segments().size(), 2u);
  store.reset();
  // The op that wrote the new segment's header (under whatever name the
  // writer first gives the file).
  const std::string second = Segments().back();
  uint64_t header_op = 0;
  for (const FIFS::OpRecord& r : fs_->OpLog()) {
    if (r.kind == FIFS::OpKind::kAppend && r.offset == 0 &&
        r.path.compare(0, second.size(), second) == 0) {
      header_op = r.index;
    }
  }
  ASSERT_GT(header_op, 0u) << fs_->DumpOpLog();
  auto at = fs_->StateAtOp(header_op);
  ASSERT_TRUE(at.ok());
  FIFS::CrashOptions c;
  c.mode = FIFS::CrashMode::kTearSectors;
  c.names = FIFS::NameLoss::kNone;  // the create itself survived
  c.keep_weight = 0;
  c.drop_weight = 0;
  c.garbage_weight = 1;
  std::unique_ptr<FIFS> crashed = (*at)->Crash(c);
  o.fs = crashed.get();
  auto reopened = Store<GatewaySession>::Open(o, kDir);
  ASSERT_TRUE(reopened.ok()) << reopened.status() << "\n"
                             << crashed->crash_description();
  // Every update acknowledged before the crash point is there.
  EXPECT_TRUE((*reopened)->Contains("s0"));
}

// Found by io_error_test ("reopened" runs) and, with the process-kill mode,
// by crash_driver_test. A process that dies (SIGKILL, no power loss) can
// leave records in the last segment that were written but not yet
// fdatasynced. The next Open replays them from the page cache and starts a
// new segment after them without ever syncing that tail, so a later power
// loss drops the old tail while the new segment survives: an LSN gap, and
// Open refuses the directory, taking every update acknowledged since the
// restart with it.
TEST_F(RegressionTest, OpenSyncsTheTailItRecoveredBeforeBuildingOnIt) {
  auto store = OpenStore();
  ASSERT_TRUE(store->Update("s1", Fingerprint("fp1"), {"fingerprint"}).ok());
  const uint64_t before = fs_->op_count();
  ASSERT_TRUE(store->Update("s2", Fingerprint("fp2"), {"fingerprint"}).ok());
  store.reset();
  // The process is killed after s2's record was written, before its sync.
  uint64_t append_op = 0;
  for (const FIFS::OpRecord& r : fs_->OpLog()) {
    if (r.index > before && r.kind == FIFS::OpKind::kAppend) {
      append_op = r.index;
      break;
    }
  }
  ASSERT_GT(append_op, 0u);
  auto killed = fs_->StateAtOp(append_op);
  ASSERT_TRUE(killed.ok());
  fs_ = std::move(*killed);
  store = OpenStore();  // the restart: nothing lost yet
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Update("s3", Fingerprint("fp3"), {"fingerprint"}).ok());
  store.reset();
  PowerLoss();  // later, the machine loses power
  auto reopened = Store<GatewaySession>::Open(MakeOptions(), kDir);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_TRUE((*reopened)->Contains("s1"));
  EXPECT_TRUE((*reopened)->Contains("s3")) << "acknowledged after the restart";
}

// Found by io_error_test (EIO on sync-dir, N=1). Open fsyncs the parent
// directory only when it creates the data directory. If that fsync failed,
// a later Open finds the directory and never makes its name durable: a power
// loss then removes the whole directory, with every update acknowledged
// since.
TEST_F(RegressionTest, OpenMakesTheDirectoryNameDurableEvenIfItExists) {
  FIFS::FaultRule rule;
  rule.kind = FIFS::OpKind::kSyncDir;
  rule.nth = 1;  // the parent's fsync after mkdir
  fs_->InjectFault(rule);
  auto first = Store<GatewaySession>::Open(MakeOptions(), kDir);
  ASSERT_FALSE(first.ok());
  fs_->ClearFaults();
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Update("s1", Fingerprint("fp1"), {"fingerprint"}).ok());
  ASSERT_TRUE(store->Close().ok());
  store.reset();
  PowerLoss();
  store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->Contains("s1")) << "the data directory did not survive";
}

// Found by io_error_test (unclear errors). The error a failing call returns
// names the file but not what to do; only health() says it.
TEST_F(RegressionTest, AnIoErrorSaysWhatToDo) {
  auto store = OpenStore();
  FIFS::FaultRule rule;
  rule.kind = FIFS::OpKind::kAppend;
  fs_->InjectFault(rule);
  absl::Status s = store->Update("s1", Fingerprint("fp1"), {"fingerprint"});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("/db/seg-"));
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("reopen"));
  fs_->ClearFaults();
  store.reset();

  store = OpenStore();
  rule.kind = FIFS::OpKind::kRename;
  fs_->InjectFault(rule);
  ASSERT_TRUE(store->Update("s2", Fingerprint("fp2"), {"fingerprint"}).ok());
  s = store->Compact();
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("/db/snap-"));
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("Compact"));
  fs_->ClearFaults();
  store.reset();

  rule.kind = FIFS::OpKind::kCreate;
  fs_->InjectFault(rule);
  auto failed = Store<GatewaySession>::Open(MakeOptions(), kDir);
  ASSERT_FALSE(failed.ok());
  EXPECT_THAT(std::string(failed.status().message()),
              ::testing::HasSubstr("/db/seg-"));
  EXPECT_THAT(std::string(failed.status().message()),
              ::testing::HasSubstr("open"));
}

// Found by io_error_test ("reopened" after EIO on sync). Linux reports a
// failed writeback once and marks the pages clean: the bytes stay readable
// in the page cache but never reach the disk, and a later fdatasync
// succeeds ("fsyncgate"; the fault-injecting file system models exactly
// that). The engine stops as it should; but reopening it in the same boot,
// as its error advises, replays the lost record from the page cache and
// builds new segments after it. A power loss later leaves a hole in the log
// before everything acknowledged since the reopen, and Open refuses the
// directory.
TEST_F(RegressionTest, ReopenAfterAFailedSyncDoesNotBuildOnLostWrites) {
  auto store = OpenStore();
  ASSERT_TRUE(store->Update("s1", Fingerprint("fp1"), {"fingerprint"}).ok());
  FIFS::FaultRule rule;
  rule.kind = FIFS::OpKind::kSync;
  fs_->InjectFault(rule);
  ASSERT_FALSE(store->Update("s2", Fingerprint("fp2"), {"fingerprint"}).ok());
  EXPECT_FALSE(store->health().ok());
  store.reset();
  fs_->ClearFaults();
  store = OpenStore();  // "fix the cause and reopen the store"
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Update("s3", Fingerprint("fp3"), {"fingerprint"}).ok());
  ASSERT_TRUE(store->Close().ok());
  store.reset();
  PowerLoss();
  auto reopened = Store<GatewaySession>::Open(MakeOptions(), kDir);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_TRUE((*reopened)->Contains("s1"));
  EXPECT_TRUE((*reopened)->Contains("s3")) << "acknowledged after the reopen";
}

// Found by io_error_test (EIO on any op, persistent, reopened in the same
// boot). After a failed fdatasync the writer cuts the segment back to its
// synced size, so that the page cache no longer serves bytes the disk will
// never get. When that cut fails too, the unacknowledged bytes stay in the
// page cache, and a reopen in the same boot builds on them (see
// ReopenAfterAFailedSyncDoesNotBuildOnLostWrites): the only safe advice is to
// restart the machine (or remount) before reopening, and the error must say
// so.
TEST_F(RegressionTest, AFailedSyncWhoseCutBackFailsTooAdvisesARestart) {
  auto store = OpenStore();
  ASSERT_TRUE(store->Update("s1", Fingerprint("fp1"), {"fingerprint"}).ok());
  FIFS::FaultRule sync;
  sync.kind = FIFS::OpKind::kSync;
  fs_->InjectFault(sync);
  FIFS::FaultRule truncate;
  truncate.kind = FIFS::OpKind::kTruncate;
  truncate.persistent = true;
  fs_->InjectFault(truncate);
  absl::Status s = store->Update("s2", Fingerprint("fp2"), {"fingerprint"});
  ASSERT_FALSE(s.ok());
  const std::string said =
      absl::StrCat(s.message(), "\n", store->health().message());
  EXPECT_TRUE(absl::StrContains(said, "restart the machine") ||
              absl::StrContains(said, "reboot") ||
              absl::StrContains(said, "remount"))
      << said;
}

}  // namespace
}  // namespace crash
}  // namespace walstate
