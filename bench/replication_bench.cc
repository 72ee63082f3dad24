// Costs of replication (issue 22, item 6), side by side in one run against
// a 3-node NATS cluster on loopback (run it through
// `scripts/nats_cluster.sh run -- bazel-bin/bench/replication_bench`):
//  - IMMEDIATE Update latency (p50, p99), one thread, with replication off,
//    async and sync; rounds interleaved;
//  - the floor: a bare fenced JetStream publish and its ack (one 40-byte
//    record), the same way the shipper publishes;
//  - 8-thread IMMEDIATE throughput in each mode;
//  - restore of N sessions from the stream against a local Open of the
//    same store.
// Prints a markdown report (docs/bench/replication.md holds one).
//   replication_bench [SESSIONS=100000] [OPS=600] [ROUNDS=3]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/log/format.h"
#include "engine/replication/nats/nats_replicator.h"
#include "engine/replication/restore.h"
#include "proto/example/gateway.pb.h"
#include "walstate/walstate.h"

namespace walstate {
namespace {

using Clock = std::chrono::steady_clock;
using example::GatewaySession;

double Micros(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

double Pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

std::string g_url;
std::string g_tmp;
int g_stream = 0;

std::shared_ptr<replication::NatsReplicator> Connect(const std::string& store) {
  replication::NatsOptions o;
  o.url = g_url;
  o.store = store;
  auto r = replication::NatsReplicator::Connect(o);
  if (!r.ok()) {
    std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
    std::exit(2);
  }
  return std::shared_ptr<replication::NatsReplicator>(std::move(*r));
}

Options OptionsFor(replication::Mode mode, const std::string& store) {
  Options o;
  o.background_thread = false;
  if (mode != replication::Mode::kOff) {
    o.replication.mode = mode;
    o.replication.replicator = Connect(store);
    o.replication.writer_id = "bench";
  }
  return o;
}

// Single-thread IMMEDIATE latencies (µs) of `ops` updates.
std::vector<double> Latencies(replication::Mode mode, int ops) {
  const std::string store = absl::StrCat("lat-", getpid(), "-", ++g_stream);
  auto s = Store<GatewaySession>::Open(OptionsFor(mode, store),
                                       absl::StrCat(g_tmp, "/", store));
  if (!s.ok()) std::exit(2);
  std::vector<double> out;
  for (int i = 0; i < ops; ++i) {
    GatewaySession v;
    v.set_fingerprint(absl::StrCat("fp", i));
    const auto t0 = Clock::now();
    absl::Status st =
        (*s)->Update(absl::StrCat("s", i % 1000), v, {"fingerprint"});
    const auto t1 = Clock::now();
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      std::exit(2);
    }
    if (i >= ops / 10) out.push_back(Micros(t1 - t0));  // warm-up dropped
  }
  const Stats st = (*s)->stats();
  std::fprintf(stderr, "%s: %llu fdatasyncs for %d updates, durable LSN %llu\n",
               replication::ModeName(mode),
               static_cast<unsigned long long>(st.fsyncs), ops,
               static_cast<unsigned long long>(st.durable_lsn));
  (void)(*s)->Close();
  return out;
}

// 8 threads x `ops` IMMEDIATE updates: updates per second.
double Throughput(replication::Mode mode, int ops) {
  const std::string store = absl::StrCat("tput-", getpid(), "-", ++g_stream);
  auto s = Store<GatewaySession>::Open(OptionsFor(mode, store),
                                       absl::StrCat(g_tmp, "/", store));
  if (!s.ok()) std::exit(2);
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < ops; ++i) {
        GatewaySession v;
        v.set_fingerprint(absl::StrCat("fp", t, "-", i));
        (void)(*s)->Update(absl::StrCat("s", t, "-", i % 100), v,
                           {"fingerprint"});
      }
    });
  }
  for (auto& th : threads) th.join();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  (void)(*s)->Close();
  return 8.0 * ops / secs;
}

// A bare fenced publish of one 40-byte frame, acknowledged (µs).
std::vector<double> PublishFloor(int ops) {
  auto r = Connect(absl::StrCat("floor-", getpid()));
  if (!r->Claim("bench", true, "").ok()) std::exit(2);
  std::vector<double> out;
  for (int i = 0; i < ops; ++i) {
    std::string frame;
    log::EncodeRecord(1, i + 1, log::kUpdate, "0123456789abcdef", &frame);
    const auto t0 = Clock::now();
    absl::Status st = r->PublishLog(1, i + 1, i + 1, frame);
    const auto t1 = Clock::now();
    if (!st.ok()) std::exit(2);
    if (i >= ops / 10) out.push_back(Micros(t1 - t0));
  }
  return out;
}

}  // namespace
}  // namespace walstate

int main(int argc, char** argv) {
  using namespace walstate;
  const char* url = std::getenv("WALSTATE_NATS_URL");
  if (url == nullptr) {
    std::fprintf(stderr,
                 "run through scripts/nats_cluster.sh run -- %s (sets "
                 "WALSTATE_NATS_URL)\n",
                 argv[0]);
    return 64;
  }
  g_url = url;
  const char* tmp = std::getenv("TMPDIR");
  g_tmp = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/replication_bench-",
                       getpid());
  (void)FileSystem::Default()->CreateDir(g_tmp);
  const int sessions = argc > 1 ? std::atoi(argv[1]) : 100000;
  const int ops = argc > 2 ? std::atoi(argv[2]) : 600;
  const int rounds = argc > 3 ? std::atoi(argv[3]) : 3;

  const replication::Mode modes[] = {replication::Mode::kOff,
                                     replication::Mode::kAsync,
                                     replication::Mode::kSync};
  std::vector<double> lat[3], floor;
  std::vector<double> tput[3];
  // Per-round p50s: the report gives their median, which a burst of
  // another process's I/O in one round moves less than a pooled p50.
  std::vector<double> p50s[3];
  for (int round = 0; round < rounds; ++round) {
    for (int k = 0; k < 3; ++k) {
      const int m = (round + k) % 3;  // each mode in each position in turn
      auto l = Latencies(modes[m], ops);
      p50s[m].push_back(Pct(l, 0.5));
      lat[m].insert(lat[m].end(), l.begin(), l.end());
    }
    auto f = PublishFloor(ops);
    floor.insert(floor.end(), f.begin(), f.end());
    for (int m = 0; m < 3; ++m)
      tput[m].push_back(Throughput(modes[m], ops / 2));
  }

  // Restore of `sessions` sessions (a snapshot + a log tail of sessions/10
  // updates) against a local Open of the same directory.
  const std::string store = absl::StrCat("restore-", getpid());
  const std::string dir = absl::StrCat(g_tmp, "/", store);
  {
    Options o = OptionsFor(replication::Mode::kAsync, store);
    auto s = Store<GatewaySession>::Open(o, dir);
    if (!s.ok()) return 2;
    for (int i = 0; i < sessions; ++i) {
      GatewaySession v;
      v.set_fingerprint(absl::StrCat("fingerprint-", i));
      v.set_header_name("x-session-id");
      v.mutable_calibration()->set_last_known_input(i);
      (void)(*s)->Update(absl::StrCat("session-", i), v,
                         {"fingerprint", "header_name", "calibration"},
                         UpdateOptions{BATCHED});
    }
    (void)(*s)->Flush();
    (void)(*s)->Compact();
    for (int i = 0; i < sessions / 10; ++i) {
      GatewaySession v;
      v.set_fingerprint(absl::StrCat("fp2-", i));
      (void)(*s)->Update(absl::StrCat("session-", i), v, {"fingerprint"},
                         UpdateOptions{BATCHED});
    }
    (void)(*s)->Flush();
    absl::Status c = (*s)->Close();
    if (!c.ok()) {
      std::fprintf(stderr, "close: %s\n", c.ToString().c_str());
      return 2;
    }
  }
  double restore_s = 0, open_s = 0;
  {
    Options o;
    o.background_thread = false;
    const auto t0 = Clock::now();
    auto s = Store<GatewaySession>::Open(o, dir);
    open_s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (!s.ok()) return 2;
    (void)(*s)->Close();
  }
  replication::RestoreReport report;
  {
    auto r = Connect(store);
    const auto t0 = Clock::now();
    auto rep =
        replication::Restore(r.get(), FileSystem::Default(), dir + "-restored");
    if (!rep.ok()) {
      std::fprintf(stderr, "%s\n", rep.status().ToString().c_str());
      return 2;
    }
    Options o;
    o.background_thread = false;
    auto s = Store<GatewaySession>::Open(o, dir + "-restored");
    restore_s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (!s.ok()) return 2;
    report = *rep;
  }

  const char* names[] = {"off", "async", "sync"};
  std::printf(
      "| mode | IMMEDIATE p50 (median of %d rounds' p50s) | pooled p99 | "
      "8-thread ops/s (median of %d) |\n",
      rounds, rounds);
  std::printf("|---|---|---|---|\n");
  for (int m = 0; m < 3; ++m) {
    std::printf("| %s | %.0f µs | %.0f µs | %.0f |\n", names[m],
                Pct(p50s[m], 0.5), Pct(lat[m], 0.99), Pct(tput[m], 0.5));
  }
  std::printf(
      "| bare fenced JetStream publish + ack (floor) | %.0f µs | %.0f µs | "
      "|\n\n",
      Pct(floor, 0.5), Pct(floor, 0.99));
  const double off50 = Pct(p50s[0], 0.5), async50 = Pct(p50s[1], 0.5),
               sync50 = Pct(p50s[2], 0.5), floor50 = Pct(floor, 0.5);
  std::printf("| target | measured | verdict |\n|---|---|---|\n");
  std::printf(
      "| async adds <= 5%% to IMMEDIATE p50 | %.2fx (%.0f vs %.0f µs) | %s |\n",
      async50 / off50, async50, off50,
      async50 <= 1.05 * off50 ? "met" : "missed");
  std::printf(
      "| sync p50 <= local p50 + 1.3x bare ack p50 | %.0f µs vs %.0f + 1.3 x "
      "%.0f = %.0f µs | %s |\n",
      sync50, off50, floor50, off50 + 1.3 * floor50,
      sync50 <= off50 + 1.3 * floor50 ? "met" : "missed");
  std::printf(
      "| restore of %d sessions <= 3x local recovery | %.2f s vs %.2f s "
      "(%.1fx) | %s |\n",
      sessions, restore_s, open_s, restore_s / open_s,
      restore_s <= 3 * open_s ? "met" : "missed");
  std::printf("\nrestore: %s", report.ToString().c_str());
  return 0;
}
