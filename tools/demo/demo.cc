// The crash-and-recover demo (the README's first command): a gateway-like
// workload runs in a child process that is SIGKILLed at a random moment; the
// parent then reopens the directory and shows what survived, checked against
// an ack log the child kept outside the data directory.
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "tools/workload/ack_log.h"
#include "tools/workload/args.h"
#include "tools/workload/gateway_model.h"
#include "tools/workload/oracle.h"
#include "tools/workload/runner.h"
#include "walstate/walstate.h"

namespace walstate {
namespace workload {
namespace {

constexpr char kUsage[] =
    R"(usage: demo [--dir D] [--seed S] [--sessions N] [--threads T]
            [--kill-after-ms M] [--flush-interval-ms F] [--op-interval-ms I]

Runs a gateway-like workload on a walstate store in a child process, kills
the child with SIGKILL after M ms (default: 2000-6000, picked by the seed),
reopens the store and shows what survived: sessions recovered, acknowledged
IMMEDIATE updates lost (must be 0: exit 1 otherwise), how old the lost
BATCHED updates were, the recovery report and walctl's view.

  --dir D              keep the data directory in D (a new or empty
                       directory); the ack log goes to D.acklog, so that
                       `walstress check --dir D --ack-log D.acklog` re-checks
                       it. Default: a temporary directory, removed at the end.
  --seed S             the workload's random choices (default: the clock)
  --sessions N         default 2000
  --threads T          worker threads, each driving N/T sessions (default 16)
  --kill-after-ms M    when to kill the child, from its start
  --flush-interval-ms  the BATCHED flush interval (default 200; the engine's
                       default is 30000)
  --op-interval-ms I   mean time between two events of one session (default
                       1000; a real gateway sees a turn every 1-60 s)
)";

constexpr int kExitLost = 1;
constexpr int kExitFailed = 2;

std::string SelfPath() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  return std::string(buf, static_cast<size_t>(n));
}

bool IsExecutable(const std::string& path) {
  return ::access(path.c_str(), X_OK) == 0;
}

// walctl from this binary's runfiles (//tools/walctl is a data dependency),
// or next to it in bazel-bin.
std::string FindWalctl() {
  std::vector<std::string> candidates;
  if (const char* r = std::getenv("RUNFILES_DIR")) {
    candidates.push_back(absl::StrCat(r, "/walstate/tools/walctl/walctl"));
  }
  const std::string self = SelfPath();
  candidates.push_back(self + ".runfiles/walstate/tools/walctl/walctl");
  const size_t slash = self.find_last_of('/');
  if (slash != std::string::npos) {
    candidates.push_back(self.substr(0, slash) + "/../walctl/walctl");
  }
  for (const std::string& c : candidates) {
    if (IsExecutable(c)) return c;
  }
  return "";
}

int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) {
  return ::remove(path);
}

void RemoveTree(const std::string& path) {
  ::nftw(path.c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS);
}

// Runs `argv` with our stdout and stderr, indenting nothing (walctl's own
// output is the point); returns its exit code or -1.
int RunTool(const std::vector<std::string>& argv) {
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    std::vector<char*> args;
    for (const std::string& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    std::_Exit(127);
  }
  int status = 0;
  if (::waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Options StoreOptions(absl::Duration flush_interval) {
  Options options;
  options.flush_interval = flush_interval;
  // Small enough that a run of a few seconds rotates segments and takes a
  // size-triggered snapshot while the workload goes on, so that recovery
  // starts from a snapshot and the report has something to show.
  options.max_segment_bytes = 1 << 20;
  options.compaction_min_log_bytes = 2 << 20;
  return options;
}

RunConfig Workload(const Flags& flags) {
  RunConfig c;
  c.sessions = static_cast<uint32_t>(flags.Uint("sessions", 2000, 1, 1000000));
  c.threads = static_cast<int>(flags.Uint("threads", 16, 1, 256));
  c.mean_op_interval =
      absl::Milliseconds(flags.Uint("op-interval-ms", 1000, 1, 3600000));
  // Gateway-like: sessions arrive over the first second and a half, most
  // events are turns, identity changes and session ends are rare.
  c.ramp = absl::Milliseconds(1500);
  c.p_delete = 0.003;
  c.p_rekey = 0.02;
  c.p_combined = 0.5;
  c.recreate_pause = absl::Seconds(1);
  c.tick_record_interval =
      absl::Milliseconds(flags.Uint("flush-interval-ms", 200, 10, 60000));
  // Like a real gateway: only the engine's background thread flushes.
  c.p_explicit_flush = 0;
  c.compact_interval = absl::ZeroDuration();
  return c;
}

int Child(const std::vector<std::string>& args) {
  Flags flags("demo --child", args,
              {{"child", false},
               {"dir", true},
               {"ack-log", true},
               {"seed", true},
               {"sessions", true},
               {"threads", true},
               {"flush-interval-ms", true},
               {"op-interval-ms", true}});
  RunConfig config = Workload(flags);
  config.seed = flags.Uint("seed", 1, 0, ~0ull);
  // Until killed; a guard in case the parent died first.
  config.duration = absl::Minutes(2);
  auto log = AckLogWriter::Open(flags.Str("ack-log", ""));
  if (!log.ok()) {
    std::fprintf(stderr, "demo child: %s\n", log.status().ToString().c_str());
    return kExitFailed;
  }
  auto store = Store<GatewaySession>::Open(
      StoreOptions(
          absl::Milliseconds(flags.Uint("flush-interval-ms", 200, 10, 60000))),
      flags.Str("dir", ""));
  if (!store.ok()) {
    std::fprintf(stderr, "demo child: %s\n", store.status().ToString().c_str());
    return kExitFailed;
  }
  absl::Status s =
      (*log)->Append(absl::StrCat("R 1 ", NowMs(), " ", ::getpid()));
  RunCounters counters;
  if (s.ok()) {
    s = RunWorkload(config, store->get(), log->get(),
                    std::vector<SessionStart>(config.sessions), &counters);
  }
  if (!s.ok()) {
    std::fprintf(stderr, "demo child: %s\n", s.ToString().c_str());
    return kExitFailed;
  }
  return 0;
}

std::string Ms(int64_t ms) { return absl::StrCat(ms, " ms"); }

void PrintIndented(const std::string& text) {
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::printf("  %.*s\n", static_cast<int>(line.size()), line.data());
  }
}

int Parent(const std::vector<std::string>& args) {
  Flags flags("demo", args,
              {{"dir", true},
               {"seed", true},
               {"sessions", true},
               {"threads", true},
               {"kill-after-ms", true},
               {"flush-interval-ms", true},
               {"op-interval-ms", true}});
  const RunConfig config = Workload(flags);
  const uint64_t seed = flags.Uint(
      "seed", static_cast<uint64_t>(absl::ToUnixMicros(absl::Now())) % 1000000,
      0, ~0ull);
  const int64_t kill_after_ms = static_cast<int64_t>(
      flags.Uint("kill-after-ms", 2000 + Mix(seed, 0, 5) % 4001, 1, 600000));
  const int64_t flush_ms =
      static_cast<int64_t>(flags.Uint("flush-interval-ms", 200, 10, 60000));

  // Where things go: the ack log is never inside the data directory.
  std::string root, dir, ack_log;
  const bool keep = flags.Has("dir");
  if (keep) {
    dir = flags.Str("dir", "");
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    ack_log = dir + ".acklog";
    struct stat st;
    if (::stat(dir.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode) || ::rmdir(dir.c_str()) != 0) {
        flags.Fail(absl::StrCat("--dir ", dir,
                                " exists and is not an empty directory"));
      }
    }
    if (::stat(ack_log.c_str(), &st) == 0) {
      flags.Fail(absl::StrCat(ack_log, " exists (left by an earlier demo?)"));
    }
  } else {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = absl::StrCat(
        tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/walstate-demo-XXXXXX");
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::fprintf(stderr, "demo: cannot create a temporary directory %s\n",
                   tmpl.c_str());
      return kExitFailed;
    }
    root = tmpl;
    dir = root + "/data";
    ack_log = root + "/ack.log";
  }

  std::printf("walstate crash-and-recover demo\n");
  std::printf("  workload  %u gateway sessions, %d threads, seed %llu\n",
              config.sessions, config.threads, (unsigned long long)seed);
  std::printf(
      "            identity events (create, re-key, delete) are "
      "IMMEDIATE: synced before the call returns\n");
  std::printf(
      "            turns (calibration, cost, warming, LTM text of "
      "1-8 KB) are BATCHED: written by the tick\n");
  std::printf(
      "  rates     accelerated: each session acts every ~%s (a real "
      "gateway: every 1-60 s)\n",
      absl::FormatDuration(config.mean_op_interval).c_str());
  std::printf(
      "  flush     every %lld ms instead of the default 30 s, so that "
      "the demo takes seconds\n",
      (long long)flush_ms);
  std::printf("  data dir  %s%s\n", dir.c_str(),
              keep ? " (kept)" : " (removed at the end; --dir D keeps it)");
  std::printf("  ack log   %s (outside the data directory)\n\n",
              ack_log.c_str());

  {
    auto log = AckLogWriter::Open(ack_log);
    absl::Status s =
        log.ok() ? (*log)->Append(absl::StrCat("H walstate-acklog 1 ",
                                               config.sessions, " ", seed))
                 : log.status();
    if (!s.ok()) {
      std::fprintf(stderr, "demo: %s\n", s.ToString().c_str());
      return kExitFailed;
    }
  }

  const std::string self = SelfPath();
  std::vector<std::string> child_args = {
      self,
      "--child",
      "--dir=" + dir,
      "--ack-log=" + ack_log,
      absl::StrCat("--seed=", seed),
      absl::StrCat("--sessions=", config.sessions),
      absl::StrCat("--threads=", config.threads),
      absl::StrCat("--flush-interval-ms=", flush_ms),
      absl::StrCat("--op-interval-ms=",
                   absl::ToInt64Milliseconds(config.mean_op_interval))};
  std::fflush(stdout);
  const absl::Time started = absl::Now();
  const pid_t pid = ::fork();
  if (pid < 0) {
    std::fprintf(stderr, "demo: fork failed\n");
    return kExitFailed;
  }
  if (pid == 0) {
    // The child must not outlive an interrupted demo.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    std::vector<char*> argv;
    for (const std::string& a : child_args) {
      argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    std::_Exit(127);
  }
  std::printf(
      "child pid %d runs the workload; SIGKILL after %lld ms "
      "(again: demo --seed %llu --kill-after-ms %lld)\n",
      pid, (long long)kill_after_ms, (unsigned long long)seed,
      (long long)kill_after_ms);
  std::fflush(stdout);

  // Wait, watching for an early death (a failed engine call).
  int status = 0;
  bool exited = false;
  const absl::Time kill_at = started + absl::Milliseconds(kill_after_ms);
  while (absl::Now() < kill_at) {
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      break;
    }
    absl::SleepFor(std::min(absl::Milliseconds(10), kill_at - absl::Now()));
  }
  if (exited) {
    std::printf(
        "the child ended by itself before the kill (status %d): "
        "see its error above\n",
        status);
    return kExitFailed;
  }
  ::kill(pid, SIGKILL);
  const int64_t killed_ms = NowMs();
  ::waitpid(pid, &status, 0);
  const bool by_kill = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;

  Oracle oracle;
  absl::Status s = oracle.Load(ack_log);
  if (!s.ok()) {
    std::fprintf(stderr, "demo: %s\n", s.ToString().c_str());
    return kExitFailed;
  }
  std::printf(
      "SIGKILL at %lld ms%s: the child had %llu IMMEDIATE updates and "
      "%llu deletes acknowledged, made %llu BATCHED turns, seen %llu ticks "
      "committed\n\n",
      (long long)(killed_ms - absl::ToUnixMillis(started)),
      by_kill ? "" : " (but it was not what ended the child)",
      (unsigned long long)(oracle.acked() - oracle.deletes_acked()),
      (unsigned long long)oracle.deletes_acked(),
      (unsigned long long)oracle.turns(),
      (unsigned long long)oracle.ticks_recorded());

  std::printf("reopening %s ...\n", dir.c_str());
  Options options = StoreOptions(absl::Milliseconds(flush_ms));
  options.background_thread = false;
  auto store = Store<GatewaySession>::Open(options, dir);
  if (!store.ok()) {
    std::printf("FAILED: the store does not reopen: %s\n",
                store.status().ToString().c_str());
    std::printf("the directory is kept for inspection: %s\n", dir.c_str());
    return kExitLost;
  }
  const CheckResult r = oracle.Check(**store);
  const uint64_t in_flight_missing = r.in_flight - r.in_flight_applied;
  std::printf("sessions recovered:                  %llu\n",
              (unsigned long long)r.sessions_recovered);
  std::printf(
      "acknowledged IMMEDIATE updates lost: %llu (of %llu acknowledged "
      "updates and deletes; %llu were in flight at the kill, %llu of them "
      "made it, %llu did not)\n",
      (unsigned long long)r.lost, (unsigned long long)r.acked,
      (unsigned long long)r.in_flight, (unsigned long long)r.in_flight_applied,
      (unsigned long long)in_flight_missing);
  if (r.batched_lost == 0) {
    std::printf("BATCHED turns lost:                  0 of %llu\n",
                (unsigned long long)r.batched_turns);
  } else {
    std::printf(
        "BATCHED turns lost:                  %llu of %llu: the newest lost "
        "one was made %s before the kill, the oldest %s before it\n",
        (unsigned long long)r.batched_lost, (unsigned long long)r.batched_turns,
        Ms(killed_ms - r.newest_lost_ms).c_str(),
        Ms(killed_ms - r.oldest_lost_ms).c_str());
  }
  if (r.last_commit_capture_ms > 0) {
    std::printf(
        "                                     every turn made more than %s "
        "before the kill was known committed by a tick; promise: at most "
        "one flush interval (%lld ms) plus a tick's duration is lost\n",
        Ms(killed_ms - r.last_commit_capture_ms).c_str(), (long long)flush_ms);
  }
  std::printf("BATCHED state checked:               %s\n",
              r.batched_bad == 0
                  ? "no session older than the last committed tick, none "
                    "torn (every field equals the turn it claims)"
                  : absl::StrCat(r.batched_bad, " sessions WRONG").c_str());
  std::printf("indexes:                             %s\n",
              r.other_bad == 0
                  ? "every session found by header_session_id "
                    "and fingerprint"
                  : absl::StrCat(r.other_bad, " problems").c_str());
  for (size_t i = 0; i < r.problems.size() && i < 30; ++i) {
    std::printf("  LOST: %s\n", r.problems[i].c_str());
  }
  std::printf("recovery report:\n");
  PrintIndented((*store)->recovery_report().ToString());
  const Stats stats = (*store)->stats();
  s = (*store)->Close();
  if (!s.ok()) {
    std::printf("closing after recovery failed: %s\n", s.ToString().c_str());
  }

  const std::string walctl = FindWalctl();
  if (!walctl.empty()) {
    for (const char* cmd : {"verify", "stats"}) {
      std::printf("\n$ walctl %s %s\n", cmd, dir.c_str());
      const int code = RunTool({walctl, cmd, dir});
      if (code != 0) std::printf("(walctl %s exited with %d)\n", cmd, code);
    }
  } else {
    // Without walctl, the engine's own view of the directory.
    std::printf(
        "\n(walctl not found next to the demo; the engine's stats instead)\n"
        "  sessions %llu, log %llu bytes in %llu segments, snapshot %llu "
        "bytes at LSN %llu, last LSN %llu\n",
        (unsigned long long)stats.sessions, (unsigned long long)stats.log_bytes,
        (unsigned long long)stats.log_segments,
        (unsigned long long)stats.snapshot_bytes,
        (unsigned long long)stats.snapshot_lsn,
        (unsigned long long)stats.last_lsn);
  }

  const bool ok = r.ok() && s.ok();
  std::printf("\n%s\n", ok ? "OK: no acknowledged update lost, nothing torn"
                           : "FAILED: see LOST above");
  if (!keep) {
    if (ok) {
      RemoveTree(root);
    } else {
      std::printf("kept for inspection: %s\n", root.c_str());
    }
  }
  return ok ? 0 : kExitLost;
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
  }
  if (!args.empty() && args[0] == "--child") return Child(args);
  return Parent(args);
}

}  // namespace
}  // namespace workload
}  // namespace walstate

int main(int argc, char** argv) { return walstate::workload::Main(argc, argv); }
