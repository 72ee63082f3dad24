// walstress: a randomized gateway workload that may be SIGKILLed at any
// moment, and the check that the directory it leaves keeps every promise.
// See the usage text below and tools/walstress/README.md.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "engine/fs/kill_point_env.h"
#include "tools/workload/ack_log.h"
#include "tools/workload/args.h"
#include "tools/workload/gateway_model.h"
#include "tools/workload/oracle.h"
#include "tools/workload/runner.h"
#include "walstate/walstate.h"

namespace walstate {
namespace workload {
namespace {

constexpr char kUsage[] = R"(usage: walstress COMMAND [flags]

  run --dir D --ack-log F [--seed S] [--sessions N] [--threads T]
      [--flush-interval-ms M] [--duration-s X] [--op-interval-ms I]
      [--compact-interval-ms C] [--max-segment-bytes B]
      [--tick-write-bytes W] [--tick-sync-bytes Y]
      Runs a randomized gateway workload on the store in D (IMMEDIATE identity
      updates, BATCHED turns, deletes, Flush and Compact now and then, T
      threads) for X seconds, recording in F (outside D) each IMMEDIATE op
      before it is issued (pending) and after it returns (acked), each BATCHED
      turn, and each tick known committed with the turns it covers. On an
      existing D and F, first checks them (as `check` does), then continues.
      Defaults: --sessions 400 --threads 8 --flush-interval-ms 100
      --duration-s 10 --op-interval-ms 200 --compact-interval-ms 1500
      --max-segment-bytes 1048576, tick write/sync bytes as the engine's
      (256 KiB / 4 MiB); --seed from the clock.
      Exit: 0 done, 1 the existing D fails the check, 2 an engine call
      failed, 64 usage.

  check --dir D --ack-log F
      Recovers D and checks it against F: every acknowledged IMMEDIATE update
      and delete is there (a later pending one may be too), nothing deleted
      came back, BATCHED data is no older than the last tick recorded as
      committed and not torn, indexes find every session. Prints what is
      lost, then `acked: N, lost: M`. Exit: 0 nothing lost, 1 something lost
      or D does not open, 2 unreadable ack log, 64 usage.

  kill-points
      The engine's named kill points, one a line (for
      WALSTATE_KILL_POINT=<name>[:<n>]).
)";

constexpr int kExitLost = 1;
constexpr int kExitFailed = 2;

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::string Canonical(const std::string& path) {
  char* real = ::realpath(path.c_str(), nullptr);
  if (real == nullptr) return path;
  std::string out(real);
  free(real);
  return out;
}

// The ack log is the oracle: keeping it inside the data directory would let
// the engine's own files (and their crashes) alter it.
void CheckPaths(const Flags& flags, std::string* dir, std::string* ack_log) {
  if (!flags.Has("dir")) flags.Fail("--dir is required");
  if (!flags.Has("ack-log")) flags.Fail("--ack-log is required");
  *dir = flags.Str("dir", "");
  *ack_log = flags.Str("ack-log", "");
  std::string d = Canonical(*dir);
  std::string parent = ack_log->substr(0, ack_log->find_last_of('/') + 1);
  std::string a = Canonical(parent.empty() ? "." : parent);
  if (a == d || absl::StartsWith(a, d + "/")) {
    flags.Fail(absl::StrCat("--ack-log ", *ack_log,
                            " must be outside the data directory ", *dir));
  }
}

Options StoreOptions(const Flags& flags) {
  Options options;
  options.flush_interval =
      absl::Milliseconds(flags.Uint("flush-interval-ms", 100, 1, 3600000));
  options.max_segment_bytes =
      flags.Uint("max-segment-bytes", 1 << 20, 64 << 10, 1ull << 32);
  // Small enough that size-triggered compactions happen during a run too.
  options.compaction_min_log_bytes = 4 * options.max_segment_bytes;
  // Small values make even small ticks write and sync in the middle, which
  // is where engine.tick_mid sits.
  options.tick_write_bytes =
      flags.Uint("tick-write-bytes", options.tick_write_bytes, 1, 1ull << 32);
  options.tick_sync_bytes =
      flags.Uint("tick-sync-bytes", options.tick_sync_bytes, 1, 1ull << 32);
  return options;
}

void PrintCheck(const CheckResult& r) {
  const size_t shown = std::min<size_t>(r.problems.size(), 50);
  for (size_t i = 0; i < shown; ++i) {
    std::printf("LOST: %s\n", r.problems[i].c_str());
  }
  if (shown < r.problems.size()) {
    std::printf("... and %zu more\n", r.problems.size() - shown);
  }
  std::printf(
      "recovered %llu sessions; in flight at the stop: %llu (%llu applied); "
      "turns: %llu asked, %llu lost after the last committed tick; "
      "IMMEDIATE lost: %llu, BATCHED wrong: %llu, other: %llu\n",
      (unsigned long long)r.sessions_recovered, (unsigned long long)r.in_flight,
      (unsigned long long)r.in_flight_applied,
      (unsigned long long)r.batched_turns, (unsigned long long)r.batched_lost,
      (unsigned long long)r.lost, (unsigned long long)r.batched_bad,
      (unsigned long long)r.other_bad);
  std::printf("acked: %llu, lost: %llu\n", (unsigned long long)r.acked,
              (unsigned long long)(r.lost + r.batched_bad + r.other_bad));
  std::fflush(stdout);
}

int Check(const std::vector<std::string>& args) {
  Flags flags("walstress check", args, {{"dir", true}, {"ack-log", true}});
  std::string dir, ack_log;
  CheckPaths(flags, &dir, &ack_log);
  Oracle oracle;
  absl::Status s = oracle.Load(ack_log);
  if (!s.ok()) {
    std::fprintf(stderr, "walstress check: %s\n", s.ToString().c_str());
    return kExitFailed;
  }
  Options options;
  options.background_thread = false;
  auto store = Store<GatewaySession>::Open(options, dir);
  if (!store.ok()) {
    std::printf("LOST: %s does not open: %s\n", dir.c_str(),
                store.status().ToString().c_str());
    std::printf("acked: %llu, lost: all\n", 0ull);
    return kExitLost;
  }
  for (absl::string_view line : absl::StrSplit(
           (*store)->recovery_report().ToString(), '\n', absl::SkipEmpty())) {
    std::printf("recovery: %.*s\n", static_cast<int>(line.size()), line.data());
  }
  CheckResult r = oracle.Check(**store);
  PrintCheck(r);
  s = (*store)->Close();
  if (!s.ok()) {
    std::printf("LOST: closing %s after the check: %s\n", dir.c_str(),
                s.ToString().c_str());
    return kExitLost;
  }
  return r.ok() ? 0 : kExitLost;
}

int RunCmd(const std::vector<std::string>& args) {
  Flags flags("walstress run", args,
              {{"dir", true},
               {"ack-log", true},
               {"seed", true},
               {"sessions", true},
               {"threads", true},
               {"flush-interval-ms", true},
               {"duration-s", true},
               {"op-interval-ms", true},
               {"compact-interval-ms", true},
               {"max-segment-bytes", true},
               {"tick-write-bytes", true},
               {"tick-sync-bytes", true}});
  std::string dir, ack_log;
  CheckPaths(flags, &dir, &ack_log);
  RunConfig config;
  config.sessions =
      static_cast<uint32_t>(flags.Uint("sessions", 400, 1, 10000000));
  config.threads = static_cast<int>(flags.Uint("threads", 8, 1, 256));
  config.duration = absl::Seconds(flags.Uint("duration-s", 10, 0, 86400));
  config.mean_op_interval =
      absl::Milliseconds(flags.Uint("op-interval-ms", 200, 0, 3600000));
  config.compact_interval =
      absl::Milliseconds(flags.Uint("compact-interval-ms", 1500, 0, 3600000));
  const Options options = StoreOptions(flags);
  uint64_t seed = flags.Uint(
      "seed",
      static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())) % 1000000000, 0,
      ~0ull);
  // A randomized mix: more deletes and re-keys than a real gateway, and the
  // ticker alternates explicit Flush() with waiting for background ticks.
  config.p_delete = 0.02;
  config.p_rekey = 0.05;
  config.p_combined = 0.5;
  config.ramp = absl::Milliseconds(300);
  config.recreate_pause = config.mean_op_interval * 2;
  config.tick_record_interval = options.flush_interval;
  config.p_explicit_flush = 0.5;

  const bool resume = Exists(ack_log);
  if (!resume && Exists(dir)) {
    // Without the record of what was acknowledged there is nothing to check
    // the directory against.
    flags.Fail(absl::StrCat("--dir ", dir, " exists but --ack-log ", ack_log,
                            " does not: start with a new directory"));
  }
  Oracle oracle;
  if (resume) {
    absl::Status s = oracle.Load(ack_log);
    if (!s.ok()) {
      std::fprintf(stderr, "walstress run: %s\n", s.ToString().c_str());
      return kExitFailed;
    }
    if (flags.Has("sessions") && oracle.sessions() != config.sessions) {
      flags.Fail(absl::StrCat("--sessions ", config.sessions, " but ", ack_log,
                              " was started with ", oracle.sessions()));
    }
    config.sessions = oracle.sessions();
    if (!flags.Has("seed")) seed = oracle.seed();
    // Each continued run draws other random choices.
    config.seed = Mix(seed, static_cast<uint64_t>(oracle.runs()), 77);
  } else {
    config.seed = seed;
  }

  auto log = AckLogWriter::Open(ack_log);
  if (!log.ok()) {
    std::fprintf(stderr, "walstress run: %s\n",
                 log.status().ToString().c_str());
    return kExitFailed;
  }
  if (!resume) {
    absl::Status s = (*log)->Append(absl::StrCat(
        "H walstate-acklog 1 ", config.sessions, " ", config.seed));
    if (!s.ok()) {
      std::fprintf(stderr, "walstress run: %s\n", s.ToString().c_str());
      return kExitFailed;
    }
    oracle = Oracle();
    s = oracle.Load(ack_log);
    if (!s.ok()) {
      std::fprintf(stderr, "walstress run: %s\n", s.ToString().c_str());
      return kExitFailed;
    }
  }

  auto store = Store<GatewaySession>::Open(options, dir);
  if (!store.ok()) {
    std::printf("LOST: %s does not open: %s\n", dir.c_str(),
                store.status().ToString().c_str());
    return kExitLost;
  }
  std::vector<SessionStart> start(config.sessions);
  if (resume) {
    CheckResult r = oracle.Check(**store);
    if (!r.ok()) {
      std::printf("walstress run: %s fails the check; not continuing\n",
                  dir.c_str());
      PrintCheck(r);
      return kExitLost;
    }
    std::vector<std::string> s_lines;
    start = oracle.Resolve(**store, &s_lines);
    for (const std::string& line : s_lines) {
      absl::Status s = (*log)->Append(line);
      if (!s.ok()) {
        std::fprintf(stderr, "walstress run: %s\n", s.ToString().c_str());
        return kExitFailed;
      }
    }
  }
  absl::Status s = (*log)->Append(
      absl::StrCat("R ", oracle.runs() + 1, " ", NowMs(), " ", ::getpid()));
  if (!s.ok()) {
    std::fprintf(stderr, "walstress run: %s\n", s.ToString().c_str());
    return kExitFailed;
  }
  std::printf(
      "walstress run %d: pid %d, seed %llu, %u sessions, %d threads, "
      "flush interval %s, %s\n",
      oracle.runs() + 1, ::getpid(), (unsigned long long)config.seed,
      config.sessions, config.threads,
      absl::FormatDuration(options.flush_interval).c_str(),
      absl::FormatDuration(config.duration).c_str());
  std::fflush(stdout);
  RunCounters counters;
  const absl::Time begin = absl::Now();
  s = RunWorkload(config, store->get(), log->get(), std::move(start),
                  &counters);
  std::printf(
      "run: %llu IMMEDIATE updates and %llu deletes acked, %llu turns, %llu "
      "ticks recorded, %llu compactions in %s\n",
      (unsigned long long)counters.immediate_acked.load(),
      (unsigned long long)counters.deletes_acked.load(),
      (unsigned long long)counters.turns.load(),
      (unsigned long long)counters.ticks_recorded.load(),
      (unsigned long long)counters.compactions.load(),
      absl::FormatDuration(
          absl::Trunc(absl::Now() - begin, absl::Milliseconds(1)))
          .c_str());
  if (!s.ok()) {
    std::printf("walstress run: engine call failed: %s\n",
                s.ToString().c_str());
    return kExitFailed;
  }
  return 0;
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::fprintf(stderr, "walstress: missing command (see walstress --help)\n");
    return kExitUsage;
  }
  const std::string cmd = args[0];
  args.erase(args.begin());
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
  }
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (cmd == "run") return RunCmd(args);
  if (cmd == "check") return Check(args);
  if (cmd == "kill-points") {
    if (!args.empty()) {
      std::fprintf(stderr,
                   "walstress kill-points: takes no arguments (see walstress "
                   "--help)\n");
      return kExitUsage;
    }
    for (const char* const* n = KillPointNames(); *n != nullptr; ++n) {
      std::printf("%s\n", *n);
    }
    return 0;
  }
  std::fprintf(stderr,
               "walstress: unknown command '%s' (see walstress --help)\n",
               cmd.c_str());
  return kExitUsage;
}

}  // namespace
}  // namespace workload
}  // namespace walstate

int main(int argc, char** argv) { return walstate::workload::Main(argc, argv); }
