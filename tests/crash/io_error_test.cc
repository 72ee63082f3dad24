// Issue 5 part 4: I/O-error loops. For each kind of fault and N = 1, 2, ...
// the N-th matching file-system call fails, once or from then on
// (persistently), while a workload runs (tests/crash/crash_driver.h). The
// workload stops at the first call that fails; then:
//
//  - the failing call's error names the file (or directory) and says what
//    to do;
//  - after a failed write or sync of the log the engine is unhealthy and
//    refuses every further update, delete, tick and snapshot; no call
//    returns OK after it, and none syncs;
//  - no fdatasync is ever retried on a file whose fdatasync failed;
//  - recovery afterwards upholds I1-I4: reopening the same (page-cache)
//    state with the fault gone, and recovering (twice) each of several crash
//    states of it, give the durable state of an event between the last
//    acknowledged one and the failed one. Unless the engine's errors say to
//    restart the machine first, reopening in the same boot (page cache
//    intact) must uphold them too.
// The loop for a fault kind ends when N exceeds the number of such calls the
// workload makes (the last run sees no fault).
//
// CI runs every N. WALSTATE_IO_STEPS=n sets the workload's length (default
// 45 steps, 30 under sanitizers).
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/crash/crash_driver.h"

namespace walstate {
namespace crash {
namespace {

using K = FIFS::OpKind;

struct FaultCase {
  const char* name;
  K kind;
  int error;
  bool short_write;
  bool preallocate;
};

const FaultCase kCases[] = {
    {"EIO on append", K::kAppend, EIO, false, false},
    {"EIO on sync", K::kSync, EIO, false, false},
    {"EIO on sync-dir", K::kSyncDir, EIO, false, false},
    {"EIO on rename", K::kRename, EIO, false, false},
    {"ENOSPC on append", K::kAppend, ENOSPC, false, false},
    {"ENOSPC on preallocate", K::kPreallocate, ENOSPC, false, true},
    {"short write", K::kAppend, EIO, true, false},
    {"EIO on any op", K::kAny, EIO, false, false},
};

bool IsLogPath(const std::string& path) {
  return absl::StrContains(path, "/seg-");
}

// Words of advice an error must carry.
bool SaysWhatToDo(absl::string_view msg) {
  for (const char* advice :
       {"reopen", "free disk space", "walctl", "restore", "fix the cause"}) {
    if (absl::StrContains(msg, advice)) return true;
  }
  return false;
}

struct Totals {
  uint64_t runs = 0;
  uint64_t faults = 0;               // runs in which the fault fired
  uint64_t absorbed = 0;             // ... without any call failing
  uint64_t refusal_checks = 0;       // calls made after the failure
  uint64_t acked_after = 0;          // ... that returned OK
  uint64_t healthy_after_log = 0;    // healthy after a failed log write/sync
  uint64_t healthy_after_other = 0;  // healthy after a failed snapshot step
  uint64_t sync_retried = 0;
  uint64_t unclear = 0;
  Summary reopen;               // the same state reopened with the fault gone
  uint64_t reopen_skipped = 0;  // ... not tried: the engine said to restart
  Summary recovery;             // crash states of it, each recovered twice
};

class IoErrorTest : public ::testing::Test {
 protected:
  Options BaseOptions(FIFS* fs, const FaultCase& fc) {
    Options o = TestOptions(fs, &clock_);
    o.max_segment_bytes = 2048;
    o.preallocate_segments = fc.preallocate;
    o.tick_write_bytes = 700;
    o.tick_sync_bytes = 1500;
    return o;
  }

  WorkloadOptions Workload() {
    WorkloadOptions w;
    w.seed = 42;
    w.steps =
        static_cast<int>(EnvInt("WALSTATE_IO_STEPS", kSanitized ? 30 : 45));
    w.sessions = 6;
    w.max_text = 900;
    w.flush_before_compact = true;
    w.compact_every = 15;
    w.reopen_every = 20;
    w.stop_on_error = true;
    return w;
  }

  // How many calls of `kind` the workload makes without faults.
  uint64_t CountWithoutFaults(const FaultCase& fc) {
    FIFS fs;
    fs.ResetOpLog();
    Driver d(&fs, BaseOptions(&fs, fc));
    EXPECT_TRUE(d.Open().ok());
    EXPECT_TRUE(RunWorkload(d, Workload()).ok());
    d.Drop();
    return fc.kind == K::kAny ? fs.op_count() : fs.CountOps(fc.kind);
  }

  // Reports a failure; at most two per kind of failure and fault case.
  void Fail(const std::string& kind, const std::string& what) {
    if (++shown_[kind] <= 2) ADD_FAILURE() << what;
  }

  // One run: fault `fc` on the n-th call, once or persistently.
  void Run(const FaultCase& fc, uint64_t n, bool persistent, Totals* t) {
    FIFS fs;
    fs.ResetOpLog();
    FIFS::FaultRule rule;
    rule.kind = fc.kind;
    rule.nth = n;
    rule.persistent = persistent;
    rule.error = fc.error;
    if (fc.short_write) rule.short_write_bytes = 3 + 8 * (n % 5);
    fs.InjectFault(rule);
    const Options options = BaseOptions(&fs, fc);
    Driver d(&fs, options);
    ++t->runs;
    const std::string where = absl::StrCat(
        fc.name, persistent ? " (persistent)" : " (once)", ", N=", n);
    absl::Status open = d.Open();
    if (open.ok()) {
      absl::Status run = RunWorkload(d, Workload());
      if (!run.ok()) Fail("model", absl::StrCat(where, ": ", run.ToString()));
    }
    const bool fired = fs.CountInjectedFaults() > 0;
    if (fired) ++t->faults;

    // The failing call, and the op that failed.
    const Call* failed = nullptr;
    for (const Call& c : d.calls()) {
      if (!c.status.ok() && !absl::IsAlreadyExists(c.status) &&
          !absl::IsNotFound(c.status) && !absl::IsInvalidArgument(c.status)) {
        failed = &c;
        break;
      }
    }
    FIFS::OpRecord failed_op;
    for (const FIFS::OpRecord& r : fs.OpLog()) {
      if (r.failed) {
        failed_op = r;
        break;
      }
    }
    if (fired && failed == nullptr) {
      // A fault no call reported (e.g. removing a leftover temporary file):
      // acceptable only if nothing the engine promised depended on the call,
      // which the recovery checks below decide.
      ++t->absorbed;
    }
    if (failed != nullptr) {
      const std::string msg(failed->status.message());
      if (!absl::StrContains(msg, kDir) || !SaysWhatToDo(msg)) {
        ++t->unclear;
        Fail(absl::StrCat(fc.name, " unclear"),
             absl::StrCat(where, ": unclear error from ", failed->what, ": ",
                          failed->status.ToString()));
      }
    }
    if (failed != nullptr && d.is_open()) {
      Store<GatewaySession>& store = *d.store();
      // A log write or sync failed (the call was an update, delete, tick or
      // close, or the op was on a segment); a failed step of writing or
      // publishing a snapshot leaves the log untouched.
      const bool log_failure =
          failed->acking ||
          (IsLogPath(failed_op.path) &&
           (failed_op.kind == K::kAppend || failed_op.kind == K::kSync ||
            failed_op.kind == K::kPreallocate || failed_op.kind == K::kCreate ||
            failed_op.kind == K::kRename));
      absl::Status health = store.health();
      if (health.ok()) {
        if (log_failure) {
          ++t->healthy_after_log;
          Fail("healthy",
               absl::StrCat(where, ": still healthy after ", failed->what,
                            " failed: ", failed->status.ToString(), "\n",
                            failed_op.ToString()));
        } else {
          ++t->healthy_after_other;
        }
      } else {
        if (!SaysWhatToDo(health.message()) ||
            !absl::StrContains(health.message(), kDir)) {
          ++t->unclear;
          Fail("health",
               absl::StrCat(where, ": unclear health(): ", health.ToString()));
        }
        // No acknowledgement, and no I/O, after the failure.
        const uint64_t syncs = fs.CountOps(K::kSync);
        GatewaySession v;
        v.set_fingerprint("after-failure");
        std::vector<std::pair<std::string, absl::Status>> after = {
            {"IMMEDIATE update", d.Update("s0", v, {"fingerprint"})},
            {"BATCHED update", d.Update("s1", v, {"fingerprint"}, BATCHED)},
            {"delete", d.Delete("s2")},
            {"tick", d.Flush()},
            {"snapshot", d.Compact()},
            {"close", d.Close()},
        };
        for (const auto& [what, s] : after) {
          ++t->refusal_checks;
          if (s.ok()) {
            ++t->acked_after;
            Fail("acked", absl::StrCat(where, ": ", what, " returned OK after ",
                                       failed->what, " failed with ",
                                       failed->status.ToString()));
          }
        }
        if (fs.CountOps(K::kSync) != syncs) {
          ++t->sync_retried;
          Fail("syncs",
               absl::StrCat(where, ": syncs after the engine stopped:\n",
                            fs.DumpOpLog(failed_op.index)));
        }
      }
    }
    d.Drop();

    // No fdatasync retried on a file whose fdatasync failed (unless the file
    // was created anew under that name).
    std::map<std::string, uint64_t> failed_sync;
    for (const FIFS::OpRecord& r : fs.OpLog()) {
      if (r.kind == K::kCreate) failed_sync.erase(r.path);
      if (r.kind == K::kRename) {
        failed_sync.erase(r.path);
        failed_sync.erase(r.path2);
      }
      if (r.kind != K::kSync) continue;
      auto it = failed_sync.find(r.path);
      if (it != failed_sync.end()) {
        ++t->sync_retried;
        Fail("retry",
             absl::StrCat(where, ": fdatasync of ", r.path, " retried at op #",
                          r.index, " after it failed at op #", it->second, "\n",
                          fs.DumpOpLog()));
      }
      if (r.failed) failed_sync.emplace(r.path, r.index);
    }

    // Recovery afterwards.
    const uint64_t end = fs.op_count();
    const History::Window w = d.history().WindowAt(end);
    // What the engine told the user to do. If it says to restart the machine
    // (or remount) first, the page cache is gone by the time of the reopen:
    // that is a crash state, checked below.
    std::string advice;
    for (const Call& c : d.calls()) {
      if (!c.status.ok()) absl::StrAppend(&advice, c.status.message(), "\n");
    }
    bool restart_advised = false;
    for (const char* word : {"restart the machine", "reboot", "remount"}) {
      restart_advised = restart_advised || absl::StrContains(advice, word);
    }
    if (restart_advised) {
      ++t->reopen_skipped;
    } else {
      // The same state with the disk healthy again (what "reopen" after the
      // error does, in the same boot: the page cache still holds whatever
      // the engine wrote).
      std::unique_ptr<FIFS> healthy = fs.Clone();
      RecoveryCheck r = RecoverTwice(*healthy, options, d.history(), w, n);
      t->reopen.Add(r.verdict);
      if (r.verdict != Verdict::kOk) {
        Fail(absl::StrCat(fc.name, " reopen ", VerdictName(r.verdict)),
             absl::StrCat(
                 where, ", reopened without a crash: ", VerdictName(r.verdict),
                 ": ", r.detail, "\n",
                 fs.DumpOpLog(failed_op.index > 6 ? failed_op.index - 6 : 1)));
      }
    }
    using M = FIFS::CrashMode;
    using N = FIFS::NameLoss;
    const std::vector<std::pair<M, N>> crashes = {
        {M::kDropUnsynced, N::kDropUnsynced},
        {M::kCutUnsynced, N::kRandomPrefix},
        {M::kTearSectors, N::kNone},
        {M::kLeaveOneOut, N::kNone},
        {M::kNoLoss, N::kDropUnsynced},
    };
    for (size_t i = 0; i < crashes.size(); ++i) {
      FIFS::CrashOptions c;
      c.mode = crashes[i].first;
      c.names = crashes[i].second;
      c.seed = n * 131 + i;
      std::unique_ptr<FIFS> crashed = fs.Crash(c);
      const std::string how = crashed->crash_description();
      RecoveryCheck r = RecoverTwice(*crashed, options, d.history(), w, c.seed);
      t->recovery.Add(r.verdict);
      if (r.verdict != Verdict::kOk) {
        Fail(absl::StrCat(fc.name, " crash ", VerdictName(r.verdict)),
             absl::StrCat(
                 where, ", after a crash: ", VerdictName(r.verdict), ": ",
                 r.detail, "\n", how,
                 fs.DumpOpLog(failed_op.index > 6 ? failed_op.index - 6 : 1)));
      }
    }
  }

  absl::Time clock_ = absl::FromUnixSeconds(1800000000);
  std::map<std::string, int> shown_;
};

TEST_F(IoErrorTest, FailTheNthCallOnceThenPersistently) {
  const auto start = std::chrono::steady_clock::now();
  Totals all;
  for (const FaultCase& fc : kCases) {
    const uint64_t count = CountWithoutFaults(fc);
    ASSERT_GT(count, 0u) << fc.name << ": the workload makes no such call";
    for (bool persistent : {false, true}) {
      Totals t;
      for (uint64_t n = 1; n <= count + 1; ++n) Run(fc, n, persistent, &t);
      std::printf(
          "  %s (%s): N=1..%llu, faults %llu (absorbed %llu), calls after "
          "failure %llu, acked "
          "after %llu, healthy after a log failure %llu, healthy after a "
          "snapshot failure %llu, syncs retried %llu, unclear errors %llu\n"
          "    reopened: %s\n    crashed:  %s\n",
          fc.name, persistent ? "persistent" : "once",
          static_cast<unsigned long long>(count + 1),
          static_cast<unsigned long long>(t.faults),
          static_cast<unsigned long long>(t.absorbed),
          static_cast<unsigned long long>(t.refusal_checks),
          static_cast<unsigned long long>(t.acked_after),
          static_cast<unsigned long long>(t.healthy_after_log),
          static_cast<unsigned long long>(t.healthy_after_other),
          static_cast<unsigned long long>(t.sync_retried),
          static_cast<unsigned long long>(t.unclear), t.reopen.Line().c_str(),
          t.recovery.Line().c_str());
      all.runs += t.runs;
      all.faults += t.faults;
      all.absorbed += t.absorbed;
      all.refusal_checks += t.refusal_checks;
      all.acked_after += t.acked_after;
      all.healthy_after_log += t.healthy_after_log;
      all.healthy_after_other += t.healthy_after_other;
      all.sync_retried += t.sync_retried;
      all.unclear += t.unclear;
      all.reopen_skipped += t.reopen_skipped;
      all.reopen.states += t.reopen.states;
      all.reopen.acked_lost += t.reopen.acked_lost;
      all.reopen.holes += t.reopen.holes;
      all.reopen.corrupt += t.reopen.corrupt;
      all.reopen.failed_opens += t.reopen.failed_opens;
      all.recovery.states += t.recovery.states;
      all.recovery.acked_lost += t.recovery.acked_lost;
      all.recovery.holes += t.recovery.holes;
      all.recovery.corrupt += t.recovery.corrupt;
      all.recovery.failed_opens += t.recovery.failed_opens;
    }
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  std::printf(
      "io error runs: %llu, faults injected: %llu, acked after failure: %llu, "
      "healthy after log failure: %llu, syncs retried: %llu, unclear errors: "
      "%llu (%.1f s)\n",
      static_cast<unsigned long long>(all.runs),
      static_cast<unsigned long long>(all.faults),
      static_cast<unsigned long long>(all.acked_after),
      static_cast<unsigned long long>(all.healthy_after_log),
      static_cast<unsigned long long>(all.sync_retried),
      static_cast<unsigned long long>(all.unclear), secs);
  std::printf(
      "reopened after the failure (same boot): %s; not tried (restart "
      "advised): %llu\n",
      all.reopen.Line().c_str(),
      static_cast<unsigned long long>(all.reopen_skipped));
  std::printf("%s\n", all.recovery.Line().c_str());
  std::fflush(stdout);
  EXPECT_EQ(all.acked_after, 0u);
  EXPECT_EQ(all.healthy_after_log, 0u);
  EXPECT_EQ(all.sync_retried, 0u);
  EXPECT_EQ(all.unclear, 0u);
  EXPECT_TRUE(all.reopen.clean()) << all.reopen.Line();
  EXPECT_TRUE(all.recovery.clean()) << all.recovery.Line();
}

}  // namespace
}  // namespace crash
}  // namespace walstate
