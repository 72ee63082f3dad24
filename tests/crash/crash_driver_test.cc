// Issue 5 part 1: crash the engine after every file-system operation of
// randomized workloads, under every crash mode, and recover each crashed state
// twice, checking I1-I4 against the model kept outside the file system
// (tests/crash/crash_driver.h).
//
// CI runs a sample (a few thousand crash states). The full sweep:
//   bazel test //tests/crash:crash_driver_test --test_env=WALSTATE_CRASH_FULL=1
//     --test_output=streamed
// WALSTATE_CRASH_SEEDS=n: the full sweep runs workloads 1..n (default 6).
#include "tests/crash/crash_driver.h"

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace walstate {
namespace crash {
namespace {

struct Spec {
  std::string label;
  FIFS::CrashOptions crash;
  // The process dies but the machine does not: the page cache (unsynced data
  // and names included) is what the next Open sees. RecoverTwice then loses
  // power after its probe, so whatever that Open built on must be durable.
  bool process_kill = false;
};

FIFS::CrashOptions Make(FIFS::CrashMode mode, FIFS::NameLoss names,
                        uint64_t seed, uint64_t sector = 512) {
  FIFS::CrashOptions c;
  c.mode = mode;
  c.names = names;
  c.seed = seed;
  c.sector_size = sector;
  return c;
}

// The crash states taken after one op. (a) unsynced data dropped, (b) cut at
// a random point, (c) names without a directory sync undone, (d) sectors
// torn, (e) one unsynced op left out. The full sweep takes every mode with
// two seeds and leaves out each unsynced op in turn; CI takes the classic
// power loss (a)+(c) and one other mode, rotating with the op index. Both
// also take (k): the process is killed (no power loss), and power is lost
// only after the recovery that followed.
std::vector<Spec> SpecsAt(uint64_t op, uint64_t seed, bool full,
                          const std::vector<uint64_t>& unsynced) {
  using M = FIFS::CrashMode;
  using N = FIFS::NameLoss;
  std::vector<Spec> all;
  all.push_back({"a+c: drop data and names",
                 Make(M::kDropUnsynced, N::kDropUnsynced, seed)});
  if (unsynced.empty()) return all;  // every mode gives the same state
  all.push_back({"k: process killed, power lost later",
                 Make(M::kNoLoss, N::kNone, seed), true});
  std::vector<Spec> more;
  const int rounds = full ? 2 : 1;
  for (int r = 0; r < rounds; ++r) {
    const uint64_t s = seed + 7919 * (r + 1);
    if (r == 0) {
      more.push_back({"a: drop data", Make(M::kDropUnsynced, N::kNone, s)});
      more.push_back({"c: undo names", Make(M::kNoLoss, N::kDropUnsynced, s)});
    }
    more.push_back({"b: cut data", Make(M::kCutUnsynced, N::kNone, s)});
    more.push_back({"b+c: cut data, names prefix",
                    Make(M::kCutUnsynced, N::kRandomPrefix, s)});
    more.push_back({"c: names prefix", Make(M::kNoLoss, N::kRandomPrefix, s)});
    more.push_back({"d: tear 512", Make(M::kTearSectors, N::kRandomPrefix, s)});
    more.push_back({"d: tear 4096", Make(M::kTearSectors, N::kNone, s, 4096)});
  }
  if (full) {
    for (uint64_t leave : unsynced) {
      FIFS::CrashOptions c = Make(M::kLeaveOneOut, N::kNone, seed);
      c.leave_out_op = leave;
      more.push_back({absl::StrCat("e: leave out #", leave), c});
    }
    all.insert(all.end(), more.begin(), more.end());
  } else {
    more.push_back({"e: leave one out", Make(M::kLeaveOneOut, N::kNone, seed)});
    all.push_back(more[op % more.size()]);
  }
  return all;
}

struct Config {
  uint64_t seed;
  int steps;
  uint64_t max_segment_bytes;
  bool preallocate;
  uint64_t tick_write_bytes;
  uint64_t tick_sync_bytes;
};

class CrashDriverTest : public ::testing::Test {
 protected:
  // Runs one workload and crashes it after every op (every `stride`-th op).
  void Sweep(const Config& cfg, bool full, Summary* summary,
             int* failures_shown) {
    FIFS fs;
    fs.ResetOpLog();  // baseline: an empty file system
    absl::Time clock = absl::FromUnixSeconds(1800000000);
    Options options = TestOptions(&fs, &clock);
    options.max_segment_bytes = cfg.max_segment_bytes;
    options.preallocate_segments = cfg.preallocate;
    options.tick_write_bytes = cfg.tick_write_bytes;
    options.tick_sync_bytes = cfg.tick_sync_bytes;
    Driver driver(&fs, options);
    ASSERT_TRUE(driver.Open().ok());
    WorkloadOptions w;
    w.seed = cfg.seed;
    w.steps = cfg.steps;
    absl::Status run = RunWorkload(driver, w);
    ASSERT_TRUE(run.ok()) << run;
    for (const Call& c : driver.calls()) {
      // On a healthy file system only validation may fail.
      ASSERT_TRUE(c.status.ok() || absl::IsAlreadyExists(c.status) ||
                  absl::IsNotFound(c.status))
          << c.what << ": " << c.status;
    }
    driver.Drop();  // the process dies: no Close
    const uint64_t ops = fs.op_count();
    const uint64_t stride =
        full ? 1
             : std::max<uint64_t>(1, ops / EnvInt("WALSTATE_CRASH_OPS",
                                                  kSanitized ? 150 : 700));
    const auto start = std::chrono::steady_clock::now();
    uint64_t states = 0;
    for (uint64_t op = 0; op <= ops; op += stride) {
      auto at = fs.StateAtOp(op);
      ASSERT_TRUE(at.ok()) << at.status();
      const History::Window window = driver.history().WindowAt(op);
      const uint64_t seed = cfg.seed * 1000003 + op * 31;
      for (const Spec& spec : SpecsAt(op, seed, full, (*at)->UnsyncedOps())) {
        std::unique_ptr<FIFS> crashed =
            spec.process_kill ? (*at)->Clone() : (*at)->Crash(spec.crash);
        const std::string how = spec.process_kill
                                    ? "process killed: page cache intact\n"
                                    : crashed->crash_description();
        RecoveryCheck r =
            RecoverTwice(*crashed, options, driver.history(), window, seed);
        summary->Add(r.verdict);
        if (r.verdict == Verdict::kFailedOpen) {
          summary->AddFailedOpenCause(r.detail);
        }
        ++states;
        if (r.verdict == Verdict::kOk) continue;
        if (++*failures_shown > 5) continue;
        ADD_FAILURE() << VerdictName(r.verdict) << ": workload seed "
                      << cfg.seed << ", crash after op " << op << " ("
                      << spec.label << ")\n"
                      << r.detail << "\n"
                      << how << "ops around the crash point:\n"
                      << fs.DumpOpLog(op > 12 ? op - 12 : 1, op + 3);
      }
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    std::printf(
        "  workload seed %llu: %zu calls, %zu events, %llu ops, %llu crash "
        "states in %.1f s\n",
        static_cast<unsigned long long>(cfg.seed), driver.calls().size(),
        driver.history().events().size(), static_cast<unsigned long long>(ops),
        static_cast<unsigned long long>(states), secs);
    std::fflush(stdout);
  }
};

TEST_F(CrashDriverTest, EveryOpUnderEveryCrashMode) {
  const bool full = EnvFlag("WALSTATE_CRASH_FULL");
  std::vector<Config> configs = {
      // Small segments: rotation every few records; ticks written and synced
      // in pieces before their commit.
      {1, 160, 2048, false, 512, 1024},
      // Preallocated segments, default tick sizes.
      {2, 160, 4096, true, 256 << 10, 4 << 20},
      // Tiny segments: most records get a segment of their own.
      {3, 120, 700, false, 1024, 2048},
  };
  if (full) {
    const uint64_t seeds = EnvInt("WALSTATE_CRASH_SEEDS", 6);
    for (uint64_t s = 4; s <= seeds; ++s) {
      configs.push_back({s, 200, s % 2 ? 1500u : 3000u, s % 3 == 0, 700, 1800});
    }
  }
  Summary summary;
  int failures_shown = 0;
  const auto start = std::chrono::steady_clock::now();
  for (const Config& cfg : configs) {
    Sweep(cfg, full, &summary, &failures_shown);
    if (HasFatalFailure()) return;
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  std::printf("%s\n", summary.Line().c_str());
  if (!summary.Causes().empty()) {
    std::printf("  failed opens by cause: %s\n", summary.Causes().c_str());
  }
  std::printf("  (%s sweep, %zu workloads, %.1f s)\n", full ? "full" : "CI",
              configs.size(), secs);
  std::fflush(stdout);
  EXPECT_TRUE(summary.clean()) << summary.Line();
}

}  // namespace
}  // namespace crash
}  // namespace walstate
