// The Google Benchmark suite of issue 6, for walstate and, registered the same
// way, each peer and the raw floor (benchmark names end in /<contestant>).
//
//   bazel run -c opt //bench:walstate_bench -- --benchmark_format=json
//   bazel run -c opt //bench:walstate_bench -- --benchmark_filter=walstate
//
// Sizes: the default is a quick run; WALSTATE_BENCH_SIZE=tiny is the CI
// smoke size, WALSTATE_BENCH_SIZE=large the largest sizes (10^6
// sessions, tails of 10^6 and 10^7 records, ticks of 10^6).
//
// Every benchmark that writes keeps the expected state; at exit each store is
// closed, reopened and checked, and a mismatch exits with status 1.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/contestant.h"
#include "bench/harness.h"
#include "bench/workload.h"
#include "benchmark/benchmark.h"

namespace walstate {
namespace bench {
namespace {

enum class Size { kTiny, kDefault, kLarge };

Size GetSize() {
  const char* s = std::getenv("WALSTATE_BENCH_SIZE");
  if (s == nullptr) return Size::kDefault;
  std::string v = s;
  if (v == "tiny") return Size::kTiny;
  if (v == "large") return Size::kLarge;
  return Size::kDefault;
}

void Die(const absl::Status& s) {
  std::fprintf(stderr, "FAILED: %s\n", std::string(s.message()).c_str());
  std::fflush(stderr);
  std::exit(1);
}
void Check(const absl::Status& s) {
  if (!s.ok()) Die(s);
}

// One open store shared by the benchmarks of a group (e.g. every thread count
// of BM_ImmediateUpdate/<c>); replaced, after being verified, when a benchmark
// of another group asks for its own.
struct Fixture {
  std::string key;
  std::unique_ptr<Contestant> c;
  std::string dir;
  Workload w{WorkloadConfig::Small()};
  ExpectedState e;
  std::atomic<uint64_t> next_index{0};
  uint64_t sessions = 0;
  uint64_t cursor = 0;
  std::mutex mu;  // guards e when threads report
};

std::unique_ptr<Fixture> g_fixture;

void RetireFixture() {
  if (g_fixture == nullptr) return;
  Fixture& f = *g_fixture;
  Check(ReopenAndVerify(f.c.get(), f.dir, f.w, f.e));
  Check(f.c->Close());
  RemoveTree(f.dir);
  g_fixture.reset();
}

// Opens a store of `name` with `preload` small sessions, snapshotted.
Fixture* GetFixture(const std::string& key, const std::string& name,
                    uint64_t preload) {
  if (g_fixture != nullptr && g_fixture->key == key) return g_fixture.get();
  RetireFixture();
  auto f = std::make_unique<Fixture>();
  f->key = key;
  f->c = MakeContestant(name, ContestantOptions());
  f->dir = MakeTempDir(name);
  Check(f->c->Open(f->dir));
  Check(Populate(f->c.get(), f->w, &f->e, 0, preload, 100000));
  Check(f->c->Compact());
  f->next_index = preload;
  f->sessions = preload;
  g_fixture = std::move(f);
  return g_fixture.get();
}

// ---- IMMEDIATE ----------------------------------------------------------

void BM_ImmediateUpdate(benchmark::State& state, std::string name) {
  static SyncCounters s0;
  if (state.thread_index() == 0) {
    s0 = GetFixture("immediate/" + name, name, 1000)->c->sync_counters();
  }
  // g_fixture is read only after the start barrier, once thread 0 set it.
  Fixture* f = nullptr;
  std::vector<double> lat;
  std::vector<uint64_t> written;
  GatewaySession id;
  for (auto _ : state) {
    f = g_fixture.get();
    uint64_t index = f->next_index.fetch_add(1);
    id.Clear();
    f->w.Identity(index, &id);
    std::string sid = f->w.SessionId(index);
    int64_t t0 = NowNanos();
    Check(f->c->WriteIdentity(sid, id));
    lat.push_back((NowNanos() - t0) / 1e3);
    written.push_back(index);
  }
  f = g_fixture.get();
  {
    std::lock_guard<std::mutex> lock(f->mu);
    for (uint64_t index : written) f->e.Set(index, kIdentityOnly);
  }
  SyncCounters s1 = f->c->sync_counters();
  state.SetItemsProcessed(state.iterations());
  using C = benchmark::Counter;
  state.counters["p50_us"] = C(Percentile(&lat, 0.5), C::kAvgThreads);
  state.counters["p99_us"] = C(Percentile(&lat, 0.99), C::kAvgThreads);
  if (s1.known && s1.syncs > s0.syncs) {
    state.counters["group_commit"] =
        C(static_cast<double>(s1.synced_records - s0.synced_records) /
              (s1.syncs - s0.syncs),
          C::kAvgThreads);
  }
}

// IMMEDIATE latency while a tick of `dirty` sessions is flushing, and idle.
void BM_ImmediateDuringTick(benchmark::State& state, std::string name) {
  const uint64_t dirty = state.range(0);
  Fixture* f =
      GetFixture(absl::StrCat("during_tick/", name, "/", dirty), name, dirty);
  std::vector<double> idle, busy;
  GatewaySession id;
  auto write = [&](std::vector<double>* lat) {
    uint64_t index = f->next_index.fetch_add(1);
    id.Clear();
    f->w.Identity(index, &id);
    std::string sid = f->w.SessionId(index);
    int64_t t0 = NowNanos();
    Check(f->c->WriteIdentity(sid, id));
    lat->push_back((NowNanos() - t0) / 1e3);
    f->e.Set(index, kIdentityOnly);
  };
  double tick_ms = 0;
  for (auto _ : state) {
    for (int k = 0; k < 50; ++k) write(&idle);
    auto tr =
        ApplyTail(f->c.get(), f->w, &f->e, f->sessions, dirty, 0, &f->cursor);
    if (!tr.ok()) Die(tr.status());
    std::atomic<bool> done{false};
    absl::Status tick_status;
    int64_t t0 = NowNanos();
    int64_t t1 = t0;
    std::thread ticker([&] {
      tick_status = f->c->Tick();
      t1 = NowNanos();
      done.store(true);
    });
    size_t before = busy.size();
    while (!done.load() || busy.size() == before) write(&busy);
    ticker.join();
    Check(tick_status);
    tick_ms += (t1 - t0) / 1e6;
    state.SetIterationTime((t1 - t0) / 1e9);
  }
  state.counters["idle_p50_us"] = Percentile(&idle, 0.5);
  state.counters["idle_p99_us"] = Percentile(&idle, 0.99);
  state.counters["idle_max_us"] = Percentile(&idle, 1.0);
  state.counters["busy_p50_us"] = Percentile(&busy, 0.5);
  state.counters["busy_p99_us"] = Percentile(&busy, 0.99);
  state.counters["busy_max_us"] = Percentile(&busy, 1.0);
  state.counters["busy_ops"] = busy.size();
  state.counters["tick_ms"] = tick_ms / state.iterations();
}

// ---- BATCHED and ticks ------------------------------------------------------

void BM_BatchedUpdate(benchmark::State& state, std::string name) {
  const uint64_t sessions = state.range(0);
  Fixture* f =
      GetFixture(absl::StrCat("batched/", name, "/", sessions), name, sessions);
  constexpr size_t kRing = 4096;
  std::vector<GatewaySession> msgs(kRing);
  std::vector<std::string> ids(kRing);
  std::vector<uint32_t> masks(kRing);
  size_t k = kRing;
  uint64_t since_tick = 0;
  uint64_t stride = 7919;
  while (sessions % stride == 0) ++stride;
  for (auto _ : state) {
    if (k == kRing) {
      state.PauseTiming();
      if (since_tick >= 100000) {
        Check(f->c->Tick());
        since_tick = 0;
      }
      // The expected state advances as the ring is generated; slots left
      // unused at the end are applied after the timed loop.
      for (size_t j = 0; j < kRing; ++j) {
        uint64_t index = f->cursor++ * stride % sessions;
        int32_t version = std::max(1, f->e.Get(index) + 1);
        msgs[j].Clear();
        f->w.Turn(index, version, &msgs[j]);
        masks[j] = f->w.TurnMask(version);
        ids[j] = f->w.SessionId(index);
        f->e.Set(index, version);
      }
      k = 0;
      state.ResumeTiming();
    }
    Check(f->c->UpdateBatched(ids[k], &msgs[k], masks[k]));
    ++k;
    ++since_tick;
  }
  for (; k < kRing; ++k) {
    Check(f->c->UpdateBatched(ids[k], &msgs[k], masks[k]));
  }
  Check(f->c->Tick());
  state.SetItemsProcessed(state.iterations());
}

void BM_TickFlush(benchmark::State& state, std::string name) {
  const uint64_t dirty = state.range(0);
  Fixture* f = GetFixture(absl::StrCat("tick/", name, "/", dirty), name, dirty);
  for (auto _ : state) {
    auto tr =
        ApplyTail(f->c.get(), f->w, &f->e, f->sessions, dirty, 0, &f->cursor);
    if (!tr.ok()) Die(tr.status());
    int64_t t0 = NowNanos();
    Check(f->c->Tick());
    state.SetIterationTime((NowNanos() - t0) / 1e9);
  }
  state.SetItemsProcessed(state.iterations() * dirty);
}

// ---- recovery and compaction -----------------------------------------------

// A pristine store (snapshot plus tail), built once per configuration.
struct Pristine {
  std::string dir;
  Workload w{WorkloadConfig::Small()};
  ExpectedState e;
  uint64_t sessions = 0;
  uint64_t records = 0;
};

std::map<std::string, std::unique_ptr<Pristine>> g_pristine;

Pristine* GetPristine(const std::string& name, bool large, uint64_t sessions,
                      uint64_t tail) {
  std::string key = absl::StrCat(name, "/", large, "/", sessions, "/", tail);
  auto it = g_pristine.find(key);
  if (it != g_pristine.end()) return it->second.get();
  for (auto& [k, p] : g_pristine) RemoveTree(p->dir);  // one at a time
  g_pristine.clear();
  RetireFixture();
  auto p = std::make_unique<Pristine>();
  p->w = Workload(large ? WorkloadConfig::Large() : WorkloadConfig::Small());
  p->dir = MakeTempDir(name + "-pristine");
  p->sessions = sessions;
  p->records = sessions + tail;
  auto c = MakeContestant(name, ContestantOptions());
  Check(c->Open(p->dir));
  Check(Populate(c.get(), p->w, &p->e, 0, sessions, large ? 1000 : 100000));
  Check(c->Compact());
  uint64_t cursor = 0;
  auto tr = ApplyTail(c.get(), p->w, &p->e, sessions, tail,
                      std::min<uint64_t>(10000, sessions), &cursor);
  if (!tr.ok()) Die(tr.status());
  Check(c->Close());
  Pristine* raw = p.get();
  g_pristine[key] = std::move(p);
  return raw;
}

// Args: large (0/1), sessions, tail records.
void BM_Recovery(benchmark::State& state, std::string name) {
  Pristine* p =
      GetPristine(name, state.range(0) != 0, state.range(1), state.range(2));
  std::string work = p->dir + "-work";
  double mem = 0;
  uint64_t disk = 0;
  for (auto _ : state) {
    RemoveTree(work);
    Check(CopyTree(p->dir, work));
    disk = TreeBytes(work);
    auto c = MakeContestant(name, ContestantOptions());
    uint64_t heap0 = HeapBytes();
    int64_t t0 = NowNanos();
    Check(c->Open(work));
    int64_t t1 = NowNanos();
    mem = (static_cast<double>(HeapBytes()) - heap0) / p->sessions;
    state.SetIterationTime((t1 - t0) / 1e9);
    Check(VerifyContestant(*c, p->w, p->e));
    Check(c->Close());
  }
  RemoveTree(work);
  using C = benchmark::Counter;
  state.counters["records_per_s"] =
      C(static_cast<double>(p->records) * state.iterations(), C::kIsRate);
  state.counters["MB_per_s"] = C(disk / 1e6 * state.iterations(), C::kIsRate);
  state.counters["memory_per_session"] = mem;
  state.counters["disk_per_session"] = static_cast<double>(disk) / p->sessions;
}

// Args as BM_Recovery: time of Compact() after opening that state.
void BM_Compaction(benchmark::State& state, std::string name) {
  Pristine* p =
      GetPristine(name, state.range(0) != 0, state.range(1), state.range(2));
  std::string work = p->dir + "-work";
  uint64_t written = 0, after = 0;
  for (auto _ : state) {
    RemoveTree(work);
    Check(CopyTree(p->dir, work));
    auto c = MakeContestant(name, ContestantOptions());
    Check(c->Open(work));
    uint64_t wb0 = ProcessWriteBytes();
    int64_t t0 = NowNanos();
    Check(c->Compact());
    int64_t t1 = NowNanos();
    written = ProcessWriteBytes() - wb0;
    state.SetIterationTime((t1 - t0) / 1e9);
    after = TreeBytes(work);
    Check(ReopenAndVerify(c.get(), work, p->w, p->e));
    Check(c->Close());
  }
  RemoveTree(work);
  state.counters["bytes_written"] = written;
  state.counters["disk_per_session_after"] =
      static_cast<double>(after) / p->sessions;
}

void RegisterAll() {
  const Size size = GetSize();
  const bool tiny = size == Size::kTiny;
  const bool large = size == Size::kLarge;
  std::vector<int64_t> ticks = {100, 1000};
  if (!tiny) ticks.insert(ticks.end(), {10000, 100000});
  if (large) ticks.push_back(1000000);
  const int64_t under = tiny ? 3000 : 300000;
  const int64_t batched = tiny ? 1000 : 100000;
  // {large?, sessions, tail}
  std::vector<std::vector<int64_t>> recovery;
  if (tiny) {
    recovery = {{1, 20, 0}, {1, 20, 1000}, {0, 1000, 0}, {0, 1000, 1000}};
  } else if (large) {
    recovery = {{1, 1000, 0},
                {1, 1000, 1000000},
                {0, 1000000, 0},
                {0, 1000000, 1000000},
                {0, 1000000, 10000000}};
  } else {
    recovery = {
        {1, 1000, 0}, {1, 1000, 100000}, {0, 100000, 0}, {0, 100000, 100000}};
  }
  for (const std::string& name : ContestantNames()) {
    auto* b = benchmark::RegisterBenchmark(
        ("BM_ImmediateUpdate/" + name).c_str(), BM_ImmediateUpdate, name);
    b->UseRealTime()->Unit(benchmark::kMicrosecond);
    for (int t : {1, 2, 4, 8, 16}) b->Threads(t);
    if (tiny) b->Iterations(20);

    benchmark::RegisterBenchmark(("BM_ImmediateDuringTick/" + name).c_str(),
                                 BM_ImmediateDuringTick, name)
        ->Arg(under)
        ->Iterations(tiny ? 1 : 3)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);

    b = benchmark::RegisterBenchmark(("BM_BatchedUpdate/" + name).c_str(),
                                     BM_BatchedUpdate, name);
    b->Arg(batched);
    if (tiny) b->Iterations(5000);

    b = benchmark::RegisterBenchmark(("BM_TickFlush/" + name).c_str(),
                                     BM_TickFlush, name);
    b->UseManualTime()->Unit(benchmark::kMillisecond);
    for (int64_t d : ticks) b->Arg(d);
    b->Iterations(tiny ? 2 : 5);

    for (const char* which : {"BM_Recovery/", "BM_Compaction/"}) {
      b = benchmark::RegisterBenchmark(
          (which + name).c_str(), which[3] == 'R' ? BM_Recovery : BM_Compaction,
          name);
      b->UseManualTime()->Unit(benchmark::kMillisecond);
      b->ArgNames({"large", "sessions", "tail"});
      for (const auto& args : recovery) b->Args(args);
      b->Iterations(tiny ? 1 : 3);
    }
  }
}

}  // namespace
}  // namespace bench
}  // namespace walstate

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  walstate::bench::RegisterAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  walstate::bench::RetireFixture();  // verifies the last store
  for (auto& [k, p] : walstate::bench::g_pristine) {
    walstate::bench::RemoveTree(p->dir);
  }
  std::fprintf(stderr, "all recovered states verified\n");
  return 0;
}
