// //bench:user_scenario: the workload as an application runs it (issue 21),
// every contestant side by side, interleaved rounds, medians.
//
// Per contestant and round, in child processes forked from a parent that
// never opened a store:
//  - run: Open an empty store (walstate with its default Options, so its
//    background thread and its own compaction triggers run), create the
//    sessions: each one's identity as a durable (IMMEDIATE) write, from
//    --create_threads threads as a gateway's request threads would, so
//    the stores that group commits do ("create_s", "create_ops_per_s");
//    then every session's first state (BATCHED, ticks of 10^4). Then the
//    IMMEDIATE figures on that store: --latency_ops new sessions created
//    (identity) on one thread ("immediate_p50_us", "immediate_p99_us"), and
//    --throughput_ops from --throughput_threads threads
//    ("immediate_ops_per_s", and "group_commit", records per sync, where
//    the store counts them). Then 20 ticks: 30% of the sessions dirty, 1-3
//    turns each, then a tick (walstate: an explicit Flush(), as an
//    application's own loop does). "tick_s" is the whole tick as the caller
//    sees it: every UpdateBatched call (values built beforehand, moved in), the
//    destruction of what the calls left in the caller's messages, and Tick()
//    (the parts: "tick_calls_s", "tick_free_s", "tick_flush_s"; "tick_syncs",
//    the log's syncs per tick where the store counts them). Then the time of
//    one statistics call (walstate: stats(), median of 101), the bytes on disk,
//    and Close().
//  - restart: Open ("open_s", to ready), then a first use of every session,
//    copied into an application-side map ("open_use_s"; the peers' Open
//    already loads their map, so theirs is Open plus a walk of it). State
//    checked against the expected one.
//  - memory: Open and a first use of every session, without the copy
//    (walstate holds the states itself): peak RSS of the child from just
//    before Open ("peak_rss_bytes").
// "walstate_before" is walstate as it was before issue 21's fixes, as far as
// options express it: no compaction (the triggers only fired on the 30 s
// timer's tick), tick_sync_bytes 4 MiB, and a stats() that also walks every
// session for the memory estimate. "floor_prealloc" is the floor writing
// into space zeroed and synced ahead (ContestantOptions::floor_preallocate):
// the floor of the IMMEDIATE latency target; its ticks pay the zeroing and
// its disk bytes include up to 16 MiB of zeros, so only its IMMEDIATE
// figures are a floor.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "bench/contestant.h"
#include "bench/harness.h"
#include "bench/workload.h"

ABSL_FLAG(uint64_t, sessions, 100000, "sessions");
ABSL_FLAG(int, ticks, 20, "ticks after the load");
ABSL_FLAG(double, dirty_fraction, 0.3, "sessions dirty per tick");
ABSL_FLAG(int, rounds, 3, "interleaved rounds");
ABSL_FLAG(
    std::string, contestants,
    "walstate,walstate_before,sqlite,rocksdb,leveldb,floor,floor_prealloc",
    "comma-separated");
ABSL_FLAG(int, create_threads, 4,
          "threads creating the sessions (durable identity writes)");
ABSL_FLAG(int, latency_ops, 300, "IMMEDIATE writes on one thread");
ABSL_FLAG(int, throughput_threads, 8, "threads of the IMMEDIATE throughput");
ABSL_FLAG(int, throughput_ops, 1600,
          "IMMEDIATE writes of the throughput figure, over all its threads");
ABSL_FLAG(bool, json, false, "{\"results\": [...]} on stdout");
ABSL_FLAG(bool, side_by_side, true,
          "per round, also the IMMEDIATE figures with every contestant open "
          "in one child process (fresh stores, default Options), taking "
          "turns every 5 writes (latency) or every burst (throughput), so "
          "that the disk's drifting latency hits them alike: sbs_p50_us, "
          "sbs_p99_us, sbs_ops_per_s, sbs_group_commit");
ABSL_FLAG(bool, only_side_by_side, false,
          "run only the side-by-side IMMEDIATE figures");
ABSL_FLAG(bool, keep_dirs, false,
          "keep each store's directory (its path on stderr), to inspect it");

namespace walstate {
namespace bench {
namespace {

using Figures = std::map<std::string, double>;

std::unique_ptr<Contestant> Make(const std::string& name) {
  ContestantOptions o;
  if (name == "floor_prealloc") {
    o.floor_preallocate = true;
    return MakeContestant("floor", o);
  }
  if (name == "walstate" || name == "walstate_before") {
    o.walstate_defaults = true;
    if (name == "walstate_before") {
      o.walstate_never_compact = true;
      o.walstate_tick_sync_bytes = 4 << 20;
    }
    return MakeContestant("walstate", o);
  }
  return MakeContestant(name, o);
}

uint64_t PeakRssBytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      uint64_t kb = 0;
      absl::SimpleAtoi(
          absl::StripAsciiWhitespace(line.substr(6, line.size() - 9)), &kb);
      return kb << 10;
    }
  }
  return 0;
}

uint64_t RssBytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      uint64_t kb = 0;
      absl::SimpleAtoi(
          absl::StripAsciiWhitespace(line.substr(6, line.size() - 9)), &kb);
      return kb << 10;
    }
  }
  return 0;
}

// Resets VmHWM to the current RSS (Linux >= 4.0).
void ResetPeakRss() {
  int fd = open("/proc/self/clear_refs", O_WRONLY);
  if (fd >= 0) {
    (void)!write(fd, "5", 1);
    close(fd);
  }
}

// Runs `step` in a forked child; its figures come back as "key value" lines.
absl::StatusOr<Figures> InChild(
    const std::function<absl::StatusOr<Figures>()>& step) {
  int fds[2];
  if (pipe(fds) != 0) return absl::InternalError("pipe");
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork");
  if (pid == 0) {
    close(fds[0]);
    absl::StatusOr<Figures> f = step();
    std::string out;
    if (f.ok()) {
      for (const auto& [k, v] : *f) absl::StrAppend(&out, k, " ", v, "\n");
    } else {
      std::fprintf(stderr, "FAILED (child): %s\n",
                   std::string(f.status().message()).c_str());
    }
    for (size_t done = 0; done < out.size();) {
      ssize_t n = write(fds[1], out.data() + done, out.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    std::fflush(stderr);
    _exit(f.ok() ? 0 : 1);
  }
  close(fds[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof(buf))) > 0;) {
    text.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError("child failed; its error is above");
  }
  Figures f;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(line, ' ');
    double v = 0;
    absl::SimpleAtod(kv.second, &v);
    f[kv.first] = v;
  }
  return f;
}

// The turns of the ticks, in order: (session, version) per turn, the
// version being the session's next. Deterministic, so the parent, which
// runs no store, knows the expected state too. Sessions start at version 0
// (Populate).
std::vector<std::vector<std::pair<uint64_t, int32_t>>> PlanTicks(
    uint64_t n, ExpectedState* e) {
  for (uint64_t i = 0; i < n; ++i) e->Set(i, 0);
  // The sessions the IMMEDIATE figures create, identity only.
  const uint64_t extra =
      static_cast<uint64_t>(absl::GetFlag(FLAGS_latency_ops)) +
      static_cast<uint64_t>(absl::GetFlag(FLAGS_throughput_ops));
  for (uint64_t i = n; i < n + extra; ++i) e->Set(i, kIdentityOnly);
  std::mt19937_64 rng(21);
  const uint64_t dirty = static_cast<uint64_t>(
      static_cast<double>(n) * absl::GetFlag(FLAGS_dirty_fraction));
  std::vector<uint64_t> order(n);
  for (uint64_t i = 0; i < n; ++i) order[i] = i;
  std::vector<std::vector<std::pair<uint64_t, int32_t>>> plan;
  for (int t = 0; t < absl::GetFlag(FLAGS_ticks); ++t) {
    std::shuffle(order.begin(), order.end(), rng);
    plan.emplace_back();
    for (uint64_t k = 0; k < dirty; ++k) {
      const uint64_t i = order[k];
      const int turns = 1 + static_cast<int>(rng() % 3);
      for (int j = 0; j < turns; ++j) {
        const int32_t v = e->Get(i) + 1;
        plan.back().emplace_back(i, v);
        e->Set(i, v);
      }
    }
  }
  return plan;
}

// Writes the identity of session index(k) for k in [0, ops), durable when
// each call returns, from `threads` threads (thread t takes k = t,
// t + threads, ...). With `micros` (one thread), each call's wall time.
absl::Status WriteIdentities(Contestant* c, const Workload& w, uint64_t ops,
                             int threads,
                             const std::function<uint64_t(uint64_t)>& index,
                             std::vector<double>* micros) {
  std::vector<absl::Status> status(static_cast<size_t>(threads));
  auto work = [&](int t) {
    GatewaySession id;
    for (uint64_t k = static_cast<uint64_t>(t); k < ops;
         k += static_cast<uint64_t>(threads)) {
      const uint64_t i = index(k);
      id.Clear();
      w.Identity(i, &id);
      const std::string sid = w.SessionId(i);
      const int64_t start = NowNanos();
      absl::Status s = c->WriteIdentity(sid, id);
      if (micros != nullptr) {
        micros->push_back(static_cast<double>(NowNanos() - start) * 1e-3);
      }
      if (!s.ok()) {
        status[static_cast<size_t>(t)] = s;
        return;
      }
    }
  };
  if (threads == 1) {
    work(0);
  } else {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) pool.emplace_back(work, t);
    for (std::thread& th : pool) th.join();
  }
  for (const absl::Status& s : status) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

// Creates sessions [0, n): a durable identity each, from --create_threads
// threads, then their first state (version 0 of the batched fields) in
// ticks of 10^4. Adds the creation figures to `f`.
absl::Status Create(Contestant* c, const Workload& w, uint64_t n, Figures* f) {
  const int threads = std::max(1, absl::GetFlag(FLAGS_create_threads));
  const int64_t start = NowNanos();
  absl::Status s = WriteIdentities(
      c, w, n, threads, [](uint64_t k) { return k; }, nullptr);
  if (!s.ok()) return s;
  const double secs = static_cast<double>(NowNanos() - start) * 1e-9;
  (*f)["create_s"] = secs;
  (*f)["create_ops_per_s"] = static_cast<double>(n) / secs;
  GatewaySession v;
  for (uint64_t i = 0; i < n; ++i) {
    v.Clear();
    w.Turn(i, 0, &v);
    s = c->UpdateBatched(w.SessionId(i), &v, w.TurnMask(0));
    if (!s.ok()) return s;
    if ((i + 1) % 10000 == 0) {
      s = c->Tick();
      if (!s.ok()) return s;
    }
  }
  return c->Tick();
}

// IMMEDIATE latency (one thread) and throughput (--throughput_threads):
// sessions created by their identity, indexes [n, n + ImmediateOps()).
// New sessions, not rewrites of an identity: SQLite skips writing a row
// whose bytes did not change, and its commit then syncs nothing.
absl::Status Immediate(Contestant* c, const Workload& w, uint64_t n,
                       Figures* f) {
  const uint64_t lat_ops =
      static_cast<uint64_t>(absl::GetFlag(FLAGS_latency_ops));
  std::vector<double> lat;
  absl::Status s = WriteIdentities(
      c, w, lat_ops, 1, [n](uint64_t k) { return n + k; }, &lat);
  if (!s.ok()) return s;
  if (!lat.empty()) {
    (*f)["immediate_p50_us"] = Percentile(&lat, 0.5);
    (*f)["immediate_p99_us"] = Percentile(&lat, 0.99);
  }
  const uint64_t ops =
      static_cast<uint64_t>(absl::GetFlag(FLAGS_throughput_ops));
  const SyncCounters before = c->sync_counters();
  const int64_t start = NowNanos();
  s = WriteIdentities(
      c, w, ops, std::max(1, absl::GetFlag(FLAGS_throughput_threads)),
      [n, lat_ops](uint64_t k) { return n + lat_ops + k; }, nullptr);
  if (!s.ok()) return s;
  const double secs = static_cast<double>(NowNanos() - start) * 1e-9;
  const SyncCounters after = c->sync_counters();
  (*f)["immediate_ops_per_s"] = static_cast<double>(ops) / secs;
  if (after.known && after.syncs > before.syncs) {
    (*f)["group_commit"] =
        static_cast<double>(after.synced_records - before.synced_records) /
        static_cast<double>(after.syncs - before.syncs);
  }
  return absl::OkStatus();
}

// The run: create, IMMEDIATE figures, ticks, stats, disk, Close. Leaves the
// store in `dir` and the expected state in `e` (the child's; the parent
// recomputes it).
absl::StatusOr<Figures> Run(const std::string& name, const std::string& dir,
                            const Workload& w, ExpectedState* e) {
  const uint64_t n = absl::GetFlag(FLAGS_sessions);
  auto c = Make(name);
  absl::Status s = c->Open(dir);
  if (!s.ok()) return s;
  Figures f;
  s = Create(c.get(), w, n, &f);
  if (!s.ok()) return s;
  for (uint64_t i = 0; i < n; ++i) e->Set(i, 0);
  s = Immediate(c.get(), w, n, &f);
  if (!s.ok()) return s;
  std::vector<double> ticks;
  std::vector<double> parts[4];
  ExpectedState planned;
  for (const auto& turns : PlanTicks(n, &planned)) {
    // The tick's updates, built before the clock starts: the application
    // has its values at hand.
    struct Op {
      std::string id;
      GatewaySession values;
      uint32_t mask;
    };
    std::vector<Op> ops(turns.size());
    for (size_t k = 0; k < turns.size(); ++k) {
      const auto [i, v] = turns[k];
      ops[k].id = w.SessionId(i);
      ops[k].mask = w.TurnMask(v);
      w.Turn(i, v, &ops[k].values);
    }
    const int64_t start = NowNanos();
    for (Op& op : ops) {
      s = c->UpdateBatched(op.id, &op.values, op.mask);
      if (!s.ok()) return s;
    }
    const int64_t updated = NowNanos();
    ops.clear();  // what the calls left in the caller's messages
    ops.shrink_to_fit();
    const int64_t freed = NowNanos();
    const SyncCounters before = c->sync_counters();
    s = c->Tick();
    if (!s.ok()) return s;
    const int64_t end = NowNanos();
    const SyncCounters after = c->sync_counters();
    ticks.push_back(static_cast<double>(end - start) * 1e-9);
    // The tick's parts: the calls, freeing what they left, the flush.
    parts[0].push_back(static_cast<double>(updated - start) * 1e-9);
    parts[1].push_back(static_cast<double>(freed - updated) * 1e-9);
    parts[2].push_back(static_cast<double>(end - freed) * 1e-9);
    if (after.known) {
      parts[3].push_back(static_cast<double>(after.syncs - before.syncs));
    }
    std::fprintf(stderr,
                 "%s tick %zu: calls %.3f s, free %.3f s, flush %.3f s\n",
                 name.c_str(), ticks.size(), parts[0].back(), parts[1].back(),
                 parts[2].back());
  }
  f["tick_s"] = Median(ticks);
  f["tick_calls_s"] = Median(parts[0]);
  f["tick_free_s"] = Median(parts[1]);
  f["tick_flush_s"] = Median(parts[2]);
  if (!parts[3].empty()) f["tick_syncs"] = Median(parts[3]);
  f["tick_max_s"] = *std::max_element(ticks.begin(), ticks.end());
  std::vector<double> stats;
  for (int i = 0; i < 101; ++i) {
    const int64_t start = NowNanos();
    if (!c->ReadStats()) break;
    stats.push_back(static_cast<double>(NowNanos() - start) * 1e-9);
  }
  if (!stats.empty()) f["stats_s"] = Median(stats);
  f["disk_bytes"] = static_cast<double>(TreeBytes(dir));
  const int64_t start = NowNanos();
  s = c->Close();
  if (!s.ok()) return s;
  f["close_s"] = static_cast<double>(NowNanos() - start) * 1e-9;
  f["disk_bytes_closed"] = static_cast<double>(TreeBytes(dir));
  return f;
}

absl::StatusOr<Figures> Restart(const std::string& name, const std::string& dir,
                                const Workload& w, const ExpectedState& e) {
  auto c = Make(name);
  Figures f;
  const int64_t start = NowNanos();
  absl::Status s = c->Open(dir);
  if (!s.ok()) return s;
  f["open_s"] = static_cast<double>(NowNanos() - start) * 1e-9;
  std::unordered_map<std::string, GatewaySession> app;
  const bool copy = name.rfind("walstate", 0) == 0;
  if (copy) app.reserve(c->SessionCount());
  uint64_t seen = 0;
  c->ForEach([&](absl::string_view id, const GatewaySession& state) {
    ++seen;
    if (copy) app.emplace(std::string(id), state);
  });
  f["open_use_s"] = static_cast<double>(NowNanos() - start) * 1e-9;
  const std::string details = c->OpenDetails();
  if (!details.empty()) {
    std::fprintf(stderr, "%s restart: %s\n", name.c_str(), details.c_str());
  }
  f["sessions_used"] = static_cast<double>(seen);
  s = Verify(w, e, [&](const SessionVisitor& fn) { c->ForEach(fn); });
  if (!s.ok()) return s;
  s = c->Close();
  if (!s.ok()) return s;
  return f;
}

absl::StatusOr<Figures> Memory(const std::string& name,
                               const std::string& dir) {
  auto c = Make(name);
  ResetPeakRss();
  const uint64_t base = RssBytes();
  absl::Status s = c->Open(dir);
  if (!s.ok()) return s;
  uint64_t bytes = 0;
  c->ForEach([&](absl::string_view, const GatewaySession& state) {
    bytes += state.fingerprint().size();  // a first use of every session
  });
  Figures f;
  f["peak_rss_bytes"] = static_cast<double>(PeakRssBytes() - base);
  f["touched"] = static_cast<double>(bytes > 0);
  return f;
}

// The IMMEDIATE figures side by side: every contestant open at once on a
// fresh store, --latency_ops sessions created on one thread in turns of 5,
// then --throughput_ops from --throughput_threads threads in 4 bursts per
// contestant, taking turns burst by burst. Every state checked after a
// reopen. Figures are keyed "<contestant>|<figure>".
absl::StatusOr<Figures> SideBySide(const std::vector<std::string>& names,
                                   const Workload& w, int round) {
  struct Open {
    std::unique_ptr<Contestant> c;
    std::string dir;
    ExpectedState e;
    uint64_t next = 0;
    std::vector<double> lat;
    double secs = 0, ops = 0;
  };
  std::vector<Open> open(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    open[i].c = Make(names[i]);
    open[i].dir = MakeTempDir(absl::StrCat("user_sbs_", names[i]));
    absl::Status s = open[i].c->Open(open[i].dir);
    if (!s.ok()) return s;
  }
  auto order = [&](int turn) {
    std::vector<size_t> v(names.size());
    for (size_t i = 0; i < v.size(); ++i) {
      v[i] = (i + static_cast<size_t>(turn)) % v.size();
    }
    return v;
  };
  auto created = [](Open& o, uint64_t first, uint64_t n) {
    for (uint64_t k = first; k < first + n; ++k) o.e.Set(k, kIdentityOnly);
  };
  const int lat_ops = absl::GetFlag(FLAGS_latency_ops);
  constexpr int kTurn = 5;
  for (int k = 0; k < lat_ops; k += kTurn) {
    for (size_t i : order(round + k / kTurn)) {
      Open& o = open[i];
      const uint64_t n = static_cast<uint64_t>(std::min(kTurn, lat_ops - k));
      const uint64_t first = o.next;
      absl::Status s = WriteIdentities(
          o.c.get(), w, n, 1, [first](uint64_t j) { return first + j; },
          &o.lat);
      if (!s.ok()) return s;
      created(o, first, n);
      o.next += n;
    }
  }
  const int threads = std::max(1, absl::GetFlag(FLAGS_throughput_threads));
  constexpr int kBursts = 4;
  const uint64_t burst = static_cast<uint64_t>(
      std::max(threads, absl::GetFlag(FLAGS_throughput_ops) / kBursts));
  std::vector<SyncCounters> before(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    before[i] = open[i].c->sync_counters();
  }
  for (int b = 0; b < kBursts; ++b) {
    for (size_t i : order(round * kBursts + b)) {
      Open& o = open[i];
      const uint64_t first = o.next;
      const int64_t start = NowNanos();
      absl::Status s = WriteIdentities(
          o.c.get(), w, burst, threads,
          [first](uint64_t j) { return first + j; }, nullptr);
      if (!s.ok()) return s;
      o.secs += static_cast<double>(NowNanos() - start) * 1e-9;
      o.ops += static_cast<double>(burst);
      created(o, first, burst);
      o.next += burst;
    }
  }
  Figures f;
  for (size_t i = 0; i < names.size(); ++i) {
    Open& o = open[i];
    const std::string p = names[i] + "|";
    f[p + "sbs_p50_us"] = Percentile(&o.lat, 0.5);
    f[p + "sbs_p99_us"] = Percentile(&o.lat, 0.99);
    f[p + "sbs_ops_per_s"] = o.ops / o.secs;
    const SyncCounters after = o.c->sync_counters();
    if (after.known && after.syncs > before[i].syncs) {
      f[p + "sbs_group_commit"] =
          static_cast<double>(after.synced_records - before[i].synced_records) /
          static_cast<double>(after.syncs - before[i].syncs);
    }
    absl::Status s = ReopenAndVerify(o.c.get(), o.dir, w, o.e);
    if (s.ok()) s = o.c->Close();
    if (!s.ok()) return s;
    RemoveTree(o.dir);
  }
  return f;
}

int Main() {
  const Workload w(WorkloadConfig::Small());
  std::vector<std::string> names =
      absl::StrSplit(absl::GetFlag(FLAGS_contestants), ',', absl::SkipEmpty());
  std::map<std::string, std::map<std::string, std::vector<double>>> samples;
  for (int round = 0; round < absl::GetFlag(FLAGS_rounds); ++round) {
    if (absl::GetFlag(FLAGS_side_by_side) ||
        absl::GetFlag(FLAGS_only_side_by_side)) {
      absl::StatusOr<Figures> sbs =
          InChild([&] { return SideBySide(names, w, round); });
      if (!sbs.ok()) {
        std::fprintf(stderr, "side by side: %s\n",
                     std::string(sbs.status().message()).c_str());
        return 1;
      }
      std::string line = absl::StrCat("sample round=", round, " side-by-side:");
      for (const auto& [k, v] : *sbs) {
        std::pair<std::string, std::string> nk = absl::StrSplit(k, '|');
        samples[nk.first][nk.second].push_back(v);
        absl::StrAppend(&line, " ", k, "=", v);
      }
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    if (absl::GetFlag(FLAGS_only_side_by_side)) continue;
    // Round r runs every contestant once, the order rotated by r.
    for (size_t k = 0; k < names.size(); ++k) {
      const std::string& name =
          names[(k + static_cast<size_t>(round)) % names.size()];
      const std::string dir = MakeTempDir(absl::StrCat("user_", name));
      ExpectedState expected;  // the parent's, from the same plan
      (void)PlanTicks(absl::GetFlag(FLAGS_sessions), &expected);
      absl::StatusOr<Figures> run = InChild([&] {
        ExpectedState e;
        return Run(name, dir, w, &e);
      });
      if (!run.ok()) {
        std::fprintf(stderr, "%s run: %s\n", name.c_str(),
                     std::string(run.status().message()).c_str());
        return 1;
      }
      absl::StatusOr<Figures> restart =
          InChild([&] { return Restart(name, dir, w, expected); });
      absl::StatusOr<Figures> memory =
          InChild([&] { return Memory(name, dir); });
      if (absl::GetFlag(FLAGS_keep_dirs)) {
        std::fprintf(stderr, "%s store kept in %s\n", name.c_str(),
                     dir.c_str());
      } else {
        RemoveTree(dir);
      }
      if (!restart.ok() || !memory.ok()) {
        std::fprintf(stderr, "%s restart failed\n", name.c_str());
        return 1;
      }
      std::string line = absl::StrCat("sample round=", round, " ", name, ":");
      for (const Figures* f : {&*run, &*restart, &*memory}) {
        for (const auto& [k, v] : *f) {
          samples[name][k].push_back(v);
          absl::StrAppend(&line, " ", k, "=", v);
        }
      }
      std::fprintf(stderr, "%s\n", line.c_str());
      std::fprintf(stderr,
                   "round %d %s: create %.3f s, immediate p50 %.0f us, "
                   "%d-thread %.0f ops/s, tick %.3f s, open+use %.3f s\n",
                   round, name.c_str(), (*run)["create_s"],
                   (*run)["immediate_p50_us"],
                   absl::GetFlag(FLAGS_throughput_threads),
                   (*run)["immediate_ops_per_s"], (*run)["tick_s"],
                   (*restart)["open_use_s"]);
    }
  }
  // {"results": [...]}, rows as //bench:peers writes them (report.py
  // --merge takes either).
  std::string json = "{\"results\":[";
  bool first_row = true;
  for (const auto& [name, keys] : samples) {
    std::string median, all, text = absl::StrCat(name, ":");
    for (const auto& [k, v] : keys) {
      absl::StrAppend(&median, median.empty() ? "" : ",", "\"", k,
                      "\":", Median(v));
      absl::StrAppend(&all, all.empty() ? "" : ",", "\"", k, "\":[",
                      absl::StrJoin(v, ","), "]");
      absl::StrAppend(&text, " ", k, "=", Median(v));
    }
    absl::StrAppend(
        &json, first_row ? "" : ",", "{\"scenario\":\"user\",\"contestant\":\"",
        name, "\",\"params\":{\"sessions\":\"", absl::GetFlag(FLAGS_sessions),
        "\"},\"median\":{", median, "},\"samples\":{", all, "}}");
    first_row = false;
    std::fprintf(stderr, "%s\n", text.c_str());
  }
  json += "]}";
  if (absl::GetFlag(FLAGS_json)) std::printf("%s\n", json.c_str());
  return 0;
}

}  // namespace
}  // namespace bench
}  // namespace walstate

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return walstate::bench::Main();
}
