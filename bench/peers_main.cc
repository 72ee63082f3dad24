// //bench:peers: walstate, RocksDB, LevelDB, SQLite and the raw floor on the
// same workload, in the same run, in interleaved rounds (round r runs every
// contestant once, in an order rotated by r), so that a noisy machine hits
// them alike. Figures are medians over the rounds. Every recovery is checked
// against the expected state; a mismatch fails the run (exit 1).
//
//   bazel run //bench:peers -- --sessions 100000 --rounds 5 --json
//
// Scenarios (--scenarios, comma-separated):
//   recovery    Open-to-ready of (a) --large_sessions x ~20 KB and (b)
//               --sessions x ~350 B, each with a snapshot (Compact) plus a
//               log tail of each of --tails / --large_tails records; then
//               compaction of that state (time, bytes written, bytes on disk).
//               Each build and each Open runs in a child process forked from
//               a parent that never loads a store (--fresh_process): a
//               restart is a fresh process, and in one long process every
//               Open found the heap the stores before it had freed (at 10^6
//               sessions walstate's first Open after the builds took ~1.4x
//               its later ones, and a fresh process's Open was faster still)
//   latency     IMMEDIATE (identity) write latency, one thread, idle store
//   throughput  IMMEDIATE writes with each of --threads threads; ops/s and
//               the group-commit size (records per fdatasync) where known
//   tick        tick flush of D dirty sessions for D in --tick_sizes, the
//               BATCHED update cost on the caller's thread, and IMMEDIATE
//               latency while a tick of --under_tick_sessions is flushing
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "bench/contestant.h"
#include "bench/harness.h"
#include "bench/workload.h"

ABSL_FLAG(uint64_t, sessions, 100000,
          "sessions of the small-state shape (b); also the largest tick");
ABSL_FLAG(uint64_t, large_sessions, 1000,
          "sessions of the large-state shape (a), ~20 KB each");
ABSL_FLAG(std::string, tails, "",
          "log tail sizes in records for shape (b); default 0,<sessions>");
ABSL_FLAG(std::string, large_tails, "",
          "log tail sizes for shape (a); default 0,<100 x large_sessions>");
ABSL_FLAG(uint64_t, tail_tick, 10000, "dirty sessions per tick in the tail");
ABSL_FLAG(std::string, tick_sizes, "",
          "D values for the tick flush; default 100,1000,.. up to sessions");
ABSL_FLAG(uint64_t, under_tick_sessions, 0,
          "dirty sessions of the tick flushed under IMMEDIATE load; default "
          "min(300000, sessions)");
ABSL_FLAG(int, rounds, 3, "interleaved rounds; figures are medians");
ABSL_FLAG(std::string, contestants, "", "subset, e.g. walstate,floor");
ABSL_FLAG(std::string, scenarios, "recovery,latency,throughput,tick",
          "which scenarios to run");
ABSL_FLAG(int, latency_ops, 200, "IMMEDIATE writes per contestant per round");
ABSL_FLAG(std::string, threads, "1,2,4,8,16", "thread counts for throughput");
ABSL_FLAG(int, throughput_ops, 400,
          "IMMEDIATE writes per contestant per round per thread count");
ABSL_FLAG(bool, cold, false,
          "drop the store's files from the page cache before each Open");
ABSL_FLAG(bool, fresh_process, true,
          "recovery: build each store, and time each Open, in a child "
          "process forked from a parent that has not loaded any store, as a "
          "restart is a fresh process (false: all in this process, where "
          "each Open finds the heap the stores before it left)");
ABSL_FLAG(bool, json, false, "print every figure as JSON on stdout");
ABSL_FLAG(bool, walstate_preallocate, false,
          "walstate: Options::preallocate_segments");
ABSL_FLAG(uint64_t, walstate_tick_write_bytes, 0,
          "walstate: Options::tick_write_bytes (0: default)");
ABSL_FLAG(uint64_t, walstate_tick_sync_bytes, 0,
          "walstate: Options::tick_sync_bytes (0: default)");
ABSL_FLAG(uint64_t, walstate_recovery_threads, 0,
          "walstate: Options::recovery_threads (0: one per core)");

namespace walstate {
namespace bench {
namespace {

// ---- results --------------------------------------------------------------

struct Row {
  std::string scenario;
  std::string contestant;
  std::vector<std::pair<std::string, std::string>> params;
  std::map<std::string, std::vector<double>> samples;  // one per round
  std::string details;
};

std::vector<Row> g_rows;

Row* FindRow(const std::string& scenario, const std::string& contestant,
             const std::vector<std::pair<std::string, std::string>>& params) {
  for (Row& r : g_rows) {
    if (r.scenario == scenario && r.contestant == contestant &&
        r.params == params) {
      return &r;
    }
  }
  g_rows.push_back(Row{scenario, contestant, params, {}, ""});
  return &g_rows.back();
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string JsonNumber(double v) {
  if (!(v == v) || v > 1e300 || v < -1e300) return "null";
  return absl::StrFormat("%.6g", v);
}

void PrintRow(const Row& r) {
  std::string line = absl::StrCat(r.scenario, " ", r.contestant);
  for (const auto& [k, v] : r.params) absl::StrAppend(&line, " ", k, "=", v);
  absl::StrAppend(&line, ":");
  for (const auto& [k, v] : r.samples) {
    absl::StrAppend(&line, " ", k, "=", absl::StrFormat("%.4g", Median(v)));
  }
  std::fprintf(stderr, "%s\n", line.c_str());
}

void PrintJson(const std::string& machine) {
  std::string out =
      "{\n  \"machine\": " + JsonString(machine) +
      ",\n  \"rounds\": " + absl::StrCat(absl::GetFlag(FLAGS_rounds)) +
      ",\n  \"results\": [\n";
  for (size_t i = 0; i < g_rows.size(); ++i) {
    const Row& r = g_rows[i];
    absl::StrAppend(&out, "    {\"scenario\": ", JsonString(r.scenario),
                    ", \"contestant\": ", JsonString(r.contestant),
                    ", \"params\": {");
    for (size_t k = 0; k < r.params.size(); ++k) {
      absl::StrAppend(&out, k ? ", " : "", JsonString(r.params[k].first), ": ",
                      JsonString(r.params[k].second));
    }
    absl::StrAppend(&out, "}, \"median\": {");
    bool first = true;
    for (const auto& [k, v] : r.samples) {
      absl::StrAppend(&out, first ? "" : ", ", JsonString(k), ": ",
                      JsonNumber(Median(v)));
      first = false;
    }
    absl::StrAppend(&out, "}, \"samples\": {");
    first = true;
    for (const auto& [k, v] : r.samples) {
      std::vector<std::string> xs;
      for (double x : v) xs.push_back(JsonNumber(x));
      absl::StrAppend(&out, first ? "" : ", ", JsonString(k), ": [",
                      absl::StrJoin(xs, ", "), "]");
      first = false;
    }
    absl::StrAppend(&out, "}");
    if (!r.details.empty()) {
      absl::StrAppend(&out, ", \"details\": ", JsonString(r.details));
    }
    absl::StrAppend(&out, "}", i + 1 < g_rows.size() ? "," : "", "\n");
  }
  out += "  ]\n}\n";
  std::fputs(out.c_str(), stdout);
}

// ---- helpers ----------------------------------------------------------------

[[noreturn]] void Fail(const absl::Status& s) {
  std::fprintf(stderr, "FAILED: %s\n", std::string(s.message()).c_str());
  std::fflush(stderr);
  std::exit(1);
}

void Check(const absl::Status& s) {
  if (!s.ok()) Fail(s);
}

std::vector<uint64_t> ParseList(const std::string& s) {
  std::vector<uint64_t> out;
  for (absl::string_view part : absl::StrSplit(s, ',', absl::SkipEmpty())) {
    double v;
    if (!absl::SimpleAtod(part, &v)) {
      Fail(absl::InvalidArgumentError(absl::StrCat("not a number: ", part)));
    }
    out.push_back(static_cast<uint64_t>(v));
  }
  return out;
}

ContestantOptions MakeOptions() {
  ContestantOptions o;
  o.walstate_preallocate = absl::GetFlag(FLAGS_walstate_preallocate);
  o.walstate_tick_write_bytes = absl::GetFlag(FLAGS_walstate_tick_write_bytes);
  o.walstate_tick_sync_bytes = absl::GetFlag(FLAGS_walstate_tick_sync_bytes);
  o.walstate_recovery_threads = absl::GetFlag(FLAGS_walstate_recovery_threads);
  return o;
}

std::unique_ptr<Contestant> Make(const std::string& name) {
  auto c = MakeContestant(name, MakeOptions());
  if (c == nullptr) {
    Fail(absl::InvalidArgumentError(
        absl::StrCat("unknown contestant ", name,
                     "; built in: ", absl::StrJoin(ContestantNames(), ","))));
  }
  return c;
}

// The contestants in round r's order.
std::vector<size_t> Order(size_t n, int round) {
  std::vector<size_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = (i + round) % n;
  return v;
}

std::string Num(uint64_t v) { return absl::StrCat(v); }

// ---- recovery
// ----------------------------------------------------------------

// A contestant that stores nothing: driving the workload through it computes
// the expected state without loading a store into this process's heap.
class NullContestant : public Contestant {
 public:
  std::string name() const override { return "expected-state"; }
  absl::Status Open(const std::string&) override { return absl::OkStatus(); }
  absl::Status WriteIdentity(const std::string&,
                             const GatewaySession&) override {
    return absl::OkStatus();
  }
  absl::Status UpdateBatched(const std::string&, GatewaySession*,
                             uint32_t) override {
    return absl::OkStatus();
  }
  absl::Status Tick() override { return absl::OkStatus(); }
  absl::Status Compact() override { return absl::OkStatus(); }
  absl::Status Close() override { return absl::OkStatus(); }
  void ForEach(const SessionVisitor&) const override {}
  size_t SessionCount() const override { return 0; }
};

// Figures one step of the scenario produced: samples by row and key, and
// the contestant's Open details. A child process sends them to the parent
// one per line.
struct Figures {
  std::vector<std::tuple<std::string, std::string, double>> samples;
  std::string details;

  void Add(const std::string& row, const std::string& key, double v) {
    samples.emplace_back(row, key, v);
  }
  std::string Encode() const {
    std::string out;
    for (const auto& [row, key, v] : samples) {
      absl::StrAppend(&out, "S\t", row, "\t", key, "\t",
                      absl::StrFormat("%.17g", v), "\n");
    }
    std::string d = details;
    std::replace(d.begin(), d.end(), '\n', ' ');
    absl::StrAppend(&out, "D\t", d, "\n");
    return out;
  }
  static absl::StatusOr<Figures> Decode(absl::string_view text) {
    Figures f;
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      if (line.empty()) continue;
      std::vector<std::string> parts = absl::StrSplit(line, '\t');
      double v;
      if (parts.size() == 4 && parts[0] == "S" &&
          absl::SimpleAtod(parts[3], &v)) {
        f.Add(parts[1], parts[2], v);
      } else if (parts.size() == 2 && parts[0] == "D") {
        f.details = parts[1];
      } else {
        return absl::InternalError(
            absl::StrCat("child process sent an unreadable line: ", line));
      }
    }
    return f;
  }
};

// Runs `step` in a child process forked from this one and returns its
// figures. Only this thread is copied, so the caller must be the only thread
// (the recovery scenario runs before any other starts threads). The child
// leaves with _exit: neither the parent's buffered output nor its static
// destructors run twice.
absl::StatusOr<Figures> RunInChild(
    const std::function<absl::StatusOr<Figures>()>& step) {
  int fds[2];
  if (pipe(fds) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) {
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    close(fds[0]);
    absl::StatusOr<Figures> f = step();
    int code = 0;
    std::string out;
    if (f.ok()) {
      out = f->Encode();
    } else {
      std::fprintf(stderr, "FAILED (child): %s\n",
                   std::string(f.status().message()).c_str());
      code = 1;
    }
    for (size_t done = 0; done < out.size();) {
      ssize_t n = write(fds[1], out.data() + done, out.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        code = 1;
        break;
      }
      done += static_cast<size_t>(n);
    }
    std::fflush(stderr);
    _exit(code);
  }
  close(fds[1]);
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fds[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat(
        "the child process failed (",
        WIFSIGNALED(status) ? absl::StrCat("signal ", WTERMSIG(status))
                            : absl::StrCat("exit ", WEXITSTATUS(status)),
        "); its error is above"));
  }
  return Figures::Decode(text);
}

// Runs `step` in a child process if --fresh_process, else here.
absl::StatusOr<Figures> RunStep(
    const std::function<absl::StatusOr<Figures>()>& step) {
  return absl::GetFlag(FLAGS_fresh_process) ? RunInChild(step) : step();
}

void Record(const Figures& f,
            const std::vector<std::pair<std::string, std::string>>& params,
            const std::string& contestant) {
  for (const auto& [row, key, v] : f.samples) {
    FindRow(row, contestant, params)->samples[key].push_back(v);
  }
  if (!f.details.empty()) {
    FindRow("recovery", contestant, params)->details = f.details;
  }
}

// Builds a store in `dir`: load, snapshot, tail, close.
absl::StatusOr<Figures> BuildStore(const std::string& name,
                                   const std::string& dir, const Workload& w,
                                   uint64_t sessions, uint64_t tail,
                                   uint64_t load_tick, uint64_t tail_tick) {
  ExpectedState e;
  auto c = Make(name);
  absl::Status s = c->Open(dir);
  if (!s.ok()) return s;
  int64_t t0 = NowNanos();
  s = Populate(c.get(), w, &e, 0, sessions, load_tick);
  if (!s.ok()) return s;
  int64_t t1 = NowNanos();
  s = c->Compact();
  if (!s.ok()) return s;
  int64_t t2 = NowNanos();
  uint64_t cursor = 0;
  auto tr = ApplyTail(c.get(), w, &e, sessions, tail, tail_tick, &cursor);
  if (!tr.ok()) return tr.status();
  int64_t t3 = NowNanos();
  s = c->Close();
  if (!s.ok()) return s;
  const uint64_t disk = TreeBytes(dir);
  Figures f;
  f.Add("build", "load_s", (t1 - t0) / 1e9);
  f.Add("build", "snapshot_s", (t2 - t1) / 1e9);
  f.Add("build", "tail_s", (t3 - t2) / 1e9);
  f.Add("build", "disk_bytes", disk);
  f.Add("build", "disk_bytes_per_session",
        static_cast<double>(disk) / sessions);
  return f;
}

// Opens `work` (recovery), verifies it, then compacts it.
absl::StatusOr<Figures> OpenStore(const std::string& name,
                                  const std::string& work, const Workload& w,
                                  const ExpectedState& expected,
                                  uint64_t sessions, uint64_t tail) {
  const uint64_t disk = TreeBytes(work);
  auto c = Make(name);
  Figures f;
  uint64_t heap0 = HeapBytes();
  int64_t cpu0 = ProcessCpuNanos();
  int64_t t0 = NowNanos();
  absl::Status s = c->Open(work);
  if (!s.ok()) return s;
  int64_t t1 = NowNanos();
  int64_t cpu1 = ProcessCpuNanos();
  uint64_t heap1 = HeapBytes();
  const uint64_t mapped = c->MappedBytes();
  // Then every session used once: a store that defers work past Open
  // (walstate's lazy recovery parses each state on first use) pays it here.
  // The peers' ForEach walks the map their Open filled.
  uint64_t used = 0;
  c->ForEach([&used](absl::string_view, const example::GatewaySession& s) {
    used += s.ByteSizeLong() > 0;
  });
  int64_t t1_used = NowNanos();
  int64_t cpu1_used = ProcessCpuNanos();
  s = VerifyContestant(*c, w, expected);
  if (!s.ok()) return s;
  // A tick with nothing dirty: walstate frees the bytes its lazy states
  // were kept in at the first tick after the last was parsed.
  s = c->Tick();
  if (!s.ok()) return s;
  uint64_t heap1_used = HeapBytes() + c->MappedBytes();
  double secs = (t1 - t0) / 1e9;
  f.Add("recovery", "open_and_use_all_s", (t1_used - t0) / 1e9);
  f.Add("recovery", "open_and_use_all_cpu_s", (cpu1_used - cpu0) / 1e9);
  f.Add("recovery", "memory_bytes_per_session_all_used",
        (static_cast<double>(heap1_used) - heap0) / sessions);
  f.Add("recovery", "sessions_used", static_cast<double>(used));
  f.Add("recovery", "open_s", secs);
  f.Add("recovery", "open_cpu_s", (cpu1 - cpu0) / 1e9);
  f.Add("recovery", "records_per_s", (sessions + tail) / secs);
  f.Add("recovery", "mb_per_s", disk / 1e6 / secs);
  f.Add("recovery", "disk_bytes", disk);
  f.Add("recovery", "disk_bytes_per_session",
        static_cast<double>(disk) / sessions);
  // Heap, plus any file the store mapped (page cache it keeps in use).
  f.Add("recovery", "memory_bytes_per_session",
        (static_cast<double>(heap1 + mapped) - heap0) / sessions);
  f.Add("recovery", "mapped_bytes_per_session",
        static_cast<double>(mapped) / sessions);
  f.details = c->OpenDetails();

  uint64_t wb0 = ProcessWriteBytes();
  int64_t t2 = NowNanos();
  s = c->Compact();
  if (!s.ok()) return s;
  int64_t t3 = NowNanos();
  uint64_t wb1 = ProcessWriteBytes();
  f.Add("compaction", "compact_s", (t3 - t2) / 1e9);
  f.Add("compaction", "bytes_written", wb1 - wb0);
  f.Add("compaction", "disk_bytes_per_session_after",
        static_cast<double>(TreeBytes(work)) / sessions);
  s = c->Close();
  if (!s.ok()) return s;
  return f;
}

void RecoveryScenario(const std::vector<std::string>& names,
                      const std::string& shape, uint64_t sessions,
                      uint64_t tail, const std::string& base) {
  const WorkloadConfig config =
      shape == "large" ? WorkloadConfig::Large() : WorkloadConfig::Small();
  const Workload w(config);
  const uint64_t tail_tick =
      std::max<uint64_t>(1, std::min(absl::GetFlag(FLAGS_tail_tick), sessions));
  const uint64_t load_tick = shape == "large" ? 1000 : 100000;
  std::vector<std::pair<std::string, std::string>> params = {
      {"shape", shape}, {"sessions", Num(sessions)}, {"tail", Num(tail)}};

  // The state every store must recover, from the same workload driven
  // through a contestant that keeps nothing.
  ExpectedState expected;
  {
    NullContestant null;
    Check(Populate(&null, w, &expected, 0, sessions, load_tick));
    uint64_t cursor = 0;
    auto tr =
        ApplyTail(&null, w, &expected, sessions, tail, tail_tick, &cursor);
    if (!tr.ok()) Fail(tr.status());
  }

  // One pristine store per contestant.
  std::vector<std::string> pristine(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    pristine[i] = absl::StrCat(base, "/", names[i], "-", shape, "-pristine");
    auto f = RunStep([&] {
      return BuildStore(names[i], pristine[i], w, sessions, tail, load_tick,
                        tail_tick);
    });
    if (!f.ok()) Fail(f.status());
    // Written back now rather than by the flusher during a timed Open.
    SyncTree(pristine[i]);
    Record(*f, params, names[i]);
    PrintRow(*FindRow("build", names[i], params));
  }

  const bool cold = absl::GetFlag(FLAGS_cold);
  for (int r = 0; r < absl::GetFlag(FLAGS_rounds); ++r) {
    for (size_t i : Order(names.size(), r)) {
      std::string work = absl::StrCat(base, "/", names[i], "-work");
      RemoveTree(work);
      Check(CopyTree(pristine[i], work));
      if (cold) {
        EvictFromCache(work);
      } else {
        SyncTree(work);
      }
      auto f = RunStep([&] {
        return OpenStore(names[i], work, w, expected, sessions, tail);
      });
      if (!f.ok()) Fail(f.status());
      Record(*f, params, names[i]);
      RemoveTree(work);
    }
  }
  for (const std::string& n : names) {
    PrintRow(*FindRow("recovery", n, params));
    PrintRow(*FindRow("compaction", n, params));
  }
  for (const std::string& p : pristine) RemoveTree(p);
}

// ---- IMMEDIATE latency and throughput
// ----------------------------------------

struct Open {
  std::unique_ptr<Contestant> c;
  std::string dir;
  ExpectedState e;
  uint64_t next_index = 0;
};

std::vector<Open> OpenAll(const std::vector<std::string>& names,
                          const std::string& base, const std::string& tag,
                          const Workload& w, uint64_t preload) {
  std::vector<Open> v(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    v[i].c = Make(names[i]);
    v[i].dir = absl::StrCat(base, "/", names[i], "-", tag);
    Check(v[i].c->Open(v[i].dir));
    Check(Populate(v[i].c.get(), w, &v[i].e, 0, preload, 100000));
    Check(v[i].c->Compact());
    v[i].next_index = preload;
  }
  return v;
}

void CloseAll(std::vector<Open>* v, const Workload& w) {
  for (Open& o : *v) {
    Check(ReopenAndVerify(o.c.get(), o.dir, w, o.e));
    Check(o.c->Close());
    RemoveTree(o.dir);
  }
}

// Runs `ops` identity writes on one thread; appends latencies in µs.
void IdentityWrites(Open* o, const Workload& w, int ops,
                    std::vector<double>* lat) {
  GatewaySession id;
  for (int k = 0; k < ops; ++k) {
    uint64_t index = o->next_index++;
    id.Clear();
    w.Identity(index, &id);
    std::string sid = w.SessionId(index);
    int64_t t0 = NowNanos();
    Check(o->c->WriteIdentity(sid, id));
    lat->push_back((NowNanos() - t0) / 1e3);
    o->e.Set(index, kIdentityOnly);
  }
}

void LatencyScenario(const std::vector<std::string>& names,
                     const std::string& base, bool latency, bool throughput) {
  const Workload w(WorkloadConfig::Small());
  std::vector<Open> open = OpenAll(names, base, "latency", w, 1000);
  const int rounds = absl::GetFlag(FLAGS_rounds);
  if (latency) {
    // The disk's latency drifts by 10x within seconds on a shared VM, so the
    // contestants take turns every few writes, not every round.
    constexpr int kTurn = 5;
    for (int r = 0; r < rounds; ++r) {
      std::vector<std::vector<double>> lats(names.size());
      const int ops = absl::GetFlag(FLAGS_latency_ops);
      for (int k = 0; k < ops; k += kTurn) {
        for (size_t i : Order(names.size(), r + k / kTurn)) {
          IdentityWrites(&open[i], w, std::min(kTurn, ops - k), &lats[i]);
        }
      }
      for (size_t i = 0; i < names.size(); ++i) {
        std::vector<double>& lat = lats[i];
        Row* row = FindRow("immediate_latency", names[i], {});
        row->samples["p50_us"].push_back(Percentile(&lat, 0.5));
        row->samples["p99_us"].push_back(Percentile(&lat, 0.99));
        row->samples["max_us"].push_back(Percentile(&lat, 1.0));
      }
    }
    for (const std::string& n : names) {
      PrintRow(*FindRow("immediate_latency", n, {}));
    }
  }
  if (throughput) {
    // Each round is split into bursts, the contestants taking turns burst by
    // burst, so that a change in the disk's latency hits them alike.
    constexpr int kBursts = 4;
    for (uint64_t threads : ParseList(absl::GetFlag(FLAGS_threads))) {
      for (int r = 0; r < rounds; ++r) {
        std::vector<double> secs(names.size(), 0), ops(names.size(), 0);
        std::vector<SyncCounters> s0(names.size()), s1(names.size());
        for (size_t i = 0; i < names.size(); ++i) {
          s0[i] = open[i].c->sync_counters();
        }
        for (int b = 0; b < kBursts; ++b) {
          for (size_t i : Order(names.size(), r * kBursts + b)) {
            Open& o = open[i];
            const int per_thread = std::max<int>(
                3, absl::GetFlag(FLAGS_throughput_ops) / threads / kBursts);
            const uint64_t first = o.next_index;
            o.next_index += per_thread * threads;
            std::atomic<bool> go{false};
            std::vector<std::thread> pool;
            for (uint64_t t = 0; t < threads; ++t) {
              pool.emplace_back([&, t] {
                GatewaySession id;
                while (!go.load(std::memory_order_acquire)) {
                }
                for (int k = 0; k < per_thread; ++k) {
                  uint64_t index = first + t * per_thread + k;
                  id.Clear();
                  w.Identity(index, &id);
                  Check(o.c->WriteIdentity(w.SessionId(index), id));
                }
              });
            }
            int64_t t0 = NowNanos();
            go.store(true, std::memory_order_release);
            for (auto& th : pool) th.join();
            secs[i] += (NowNanos() - t0) / 1e9;
            ops[i] += per_thread * threads;
            for (uint64_t k = first; k < o.next_index; ++k) {
              o.e.Set(k, kIdentityOnly);
            }
          }
        }
        for (size_t i = 0; i < names.size(); ++i) {
          s1[i] = open[i].c->sync_counters();
          Row* row = FindRow("immediate_throughput", names[i],
                             {{"threads", Num(threads)}});
          row->samples["ops_per_s"].push_back(ops[i] / secs[i]);
          if (s1[i].known && s1[i].syncs > s0[i].syncs) {
            row->samples["group_commit"].push_back(
                static_cast<double>(s1[i].synced_records -
                                    s0[i].synced_records) /
                (s1[i].syncs - s0[i].syncs));
          }
        }
      }
      for (const std::string& n : names) {
        PrintRow(
            *FindRow("immediate_throughput", n, {{"threads", Num(threads)}}));
      }
    }
  }
  CloseAll(&open, w);
}

// ---- ticks
// --------------------------------------------------------------------

void TickScenario(const std::vector<std::string>& names,
                  const std::string& base) {
  const uint64_t sessions = absl::GetFlag(FLAGS_sessions);
  std::vector<uint64_t> sizes = ParseList(absl::GetFlag(FLAGS_tick_sizes));
  if (sizes.empty()) {
    for (uint64_t d = 100; d <= sessions; d *= 10) sizes.push_back(d);
  }
  uint64_t under = absl::GetFlag(FLAGS_under_tick_sessions);
  if (under == 0) under = std::min<uint64_t>(300000, sessions);
  uint64_t preload = under;
  for (uint64_t d : sizes) preload = std::max(preload, d);

  const Workload w(WorkloadConfig::Small());
  std::vector<Open> open = OpenAll(names, base, "tick", w, preload);
  std::vector<uint64_t> cursor(names.size(), 0);
  const int rounds = absl::GetFlag(FLAGS_rounds);

  for (int r = 0; r < rounds; ++r) {
    for (uint64_t d : sizes) {
      for (size_t i : Order(names.size(), r)) {
        Open& o = open[i];
        std::vector<double> calls;
        auto tr = ApplyTail(o.c.get(), w, &o.e, preload, d, /*tick_size=*/0,
                            &cursor[i], &calls);
        if (!tr.ok()) Fail(tr.status());
        int64_t cpu0 = ProcessCpuNanos();
        int64_t t0 = NowNanos();
        Check(o.c->Tick());
        int64_t t1 = NowNanos();
        int64_t cpu1 = ProcessCpuNanos();
        Row* row = FindRow("tick_flush", names[i], {{"dirty", Num(d)}});
        row->samples["tick_ms"].push_back((t1 - t0) / 1e6);
        row->samples["tick_cpu_ms"].push_back((cpu1 - cpu0) / 1e6);
        row->samples["batched_cpu_ns_per_op"].push_back(
            static_cast<double>(tr->update_cpu_nanos) / d);
        row->samples["us_per_session"].push_back((t1 - t0) / 1e3 / d);
        row->samples["batched_ns_per_op"].push_back(
            static_cast<double>(tr->update_nanos) / d);
        row->samples["batched_p50_ns"].push_back(Percentile(&calls, 0.5));
        row->samples["batched_p99_ns"].push_back(Percentile(&calls, 0.99));
      }
    }
    // IMMEDIATE latency while a tick of `under` sessions flushes, and idle.
    for (size_t i : Order(names.size(), r)) {
      Open& o = open[i];
      std::vector<double> idle, busy;
      IdentityWrites(&o, w, absl::GetFlag(FLAGS_latency_ops), &idle);
      auto tr = ApplyTail(o.c.get(), w, &o.e, preload, under, 0, &cursor[i]);
      if (!tr.ok()) Fail(tr.status());
      std::atomic<bool> done{false};
      int64_t tick_ns = 0;
      absl::Status tick_status;
      int64_t t0 = NowNanos();
      std::thread ticker([&] {
        tick_status = o.c->Tick();
        tick_ns = NowNanos() - t0;
        done.store(true, std::memory_order_release);
      });
      while (!done.load(std::memory_order_acquire) || busy.empty()) {
        IdentityWrites(&o, w, 1, &busy);
      }
      ticker.join();
      Check(tick_status);
      Row* row =
          FindRow("immediate_during_tick", names[i], {{"dirty", Num(under)}});
      row->samples["idle_p50_us"].push_back(Percentile(&idle, 0.5));
      row->samples["idle_p99_us"].push_back(Percentile(&idle, 0.99));
      row->samples["idle_max_us"].push_back(Percentile(&idle, 1.0));
      row->samples["busy_p50_us"].push_back(Percentile(&busy, 0.5));
      row->samples["busy_p99_us"].push_back(Percentile(&busy, 0.99));
      row->samples["busy_max_us"].push_back(Percentile(&busy, 1.0));
      row->samples["busy_ops"].push_back(busy.size());
      row->samples["tick_ms"].push_back(tick_ns / 1e6);
      row->samples["batched_ns_per_op"].push_back(
          static_cast<double>(tr->update_nanos) / under);
    }
  }
  for (uint64_t d : sizes) {
    for (const std::string& n : names) {
      PrintRow(*FindRow("tick_flush", n, {{"dirty", Num(d)}}));
    }
  }
  for (const std::string& n : names) {
    PrintRow(*FindRow("immediate_during_tick", n, {{"dirty", Num(under)}}));
  }
  CloseAll(&open, w);
}

int Main() {
  std::vector<std::string> names;
  std::string only = absl::GetFlag(FLAGS_contestants);
  if (only.empty()) {
    names = ContestantNames();
  } else {
    names = absl::StrSplit(only, ',', absl::SkipEmpty());
  }
  for (const std::string& n : names) Make(n);  // fail early on a bad name

  std::vector<std::string> scenarios =
      absl::StrSplit(absl::GetFlag(FLAGS_scenarios), ',', absl::SkipEmpty());
  auto want = [&](const char* s) {
    return std::find(scenarios.begin(), scenarios.end(), s) != scenarios.end();
  };
  const uint64_t sessions = absl::GetFlag(FLAGS_sessions);
  const uint64_t large = absl::GetFlag(FLAGS_large_sessions);
  std::string base = MakeTempDir("peers");
  std::fprintf(stderr, "contestants: %s; data in %s\n",
               absl::StrJoin(names, ",").c_str(), base.c_str());

  if (want("recovery")) {
    std::string tails = absl::GetFlag(FLAGS_tails);
    if (tails.empty()) tails = absl::StrCat("0,", sessions);
    std::string large_tails = absl::GetFlag(FLAGS_large_tails);
    if (large_tails.empty()) large_tails = absl::StrCat("0,", 100 * large);
    if (large > 0) {
      for (uint64_t t : ParseList(large_tails)) {
        RecoveryScenario(names, "large", large, t, base);
      }
    }
    if (sessions > 0) {
      for (uint64_t t : ParseList(tails)) {
        RecoveryScenario(names, "small", sessions, t, base);
      }
    }
  }
  if (want("latency") || want("throughput")) {
    LatencyScenario(names, base, want("latency"), want("throughput"));
  }
  if (want("tick")) TickScenario(names, base);
  RemoveTree(base);

  if (absl::GetFlag(FLAGS_json)) {
    unsigned cores = std::thread::hardware_concurrency();
    PrintJson(absl::StrCat(cores, " cores; rounds interleaved; ",
                           absl::GetFlag(FLAGS_cold) ? "cold" : "warm",
                           " page cache"));
  }
  std::fprintf(stderr, "all recovered states verified\n");
  return 0;
}

}  // namespace
}  // namespace bench
}  // namespace walstate

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return walstate::bench::Main();
}
