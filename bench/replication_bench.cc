// Costs of replication (issue 22, item 6), side by side in one run against
// a 3-node NATS cluster on loopback (run it through
// `scripts/nats_cluster.sh run -- bazel-bin/bench/replication_bench`):
//  - IMMEDIATE Update latency (p50, p99), one thread, with replication off,
//    async and sync; rounds interleaved, each mode first in turn;
//  - the floors: a bare fenced JetStream publish and its ack (one 40-byte
//    record, as the shipper publishes), and a bare local append+fdatasync
//    of the same size, alone and while another thread publishes (the "off
//    slower than async" question, docs/bench/replication.md);
//  - 8-thread IMMEDIATE throughput in each mode;
//  - restore of N sessions from the stream against a local Open;
//  - standby: `Follow`'s catch-up rate over a backlog of every record of
//    that store, and a warm takeover (claim + Open of a follower's
//    directory) against a full one (restore + claim + Open).
// Prints a markdown report (docs/bench/replication.md holds one).
//   replication_bench [SESSIONS=100000] [OPS=600] [ROUNDS=3]
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/log/format.h"
#include "engine/replication/follow.h"
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

// A bare local append of a 40-byte record and its fdatasync (µs), on the
// file system the stores use; with `publisher`, while another thread keeps
// publishing to the cluster as the async shipper does.
// With `pause`, sleeps that long (untimed) after each fdatasync.
// With `ticker`, while another thread only wakes up every 100 µs and
// sleeps again (no I/O, no network).
std::vector<double> LocalFsync(int ops, bool publisher,
                               absl::Duration pause = absl::ZeroDuration(),
                               bool ticker = false) {
  std::atomic<bool> stop{false};
  std::thread pub;
  std::thread tick;
  if (ticker) {
    tick = std::thread([&stop] {
      while (!stop.load()) absl::SleepFor(absl::Microseconds(100));
    });
  }
  if (publisher) {
    pub = std::thread([&stop] {
      auto r = Connect(absl::StrCat("fsync-pub-", getpid(), "-", ++g_stream));
      if (!r->Claim("bench", true, "").ok()) std::exit(2);
      for (uint64_t i = 1; !stop.load(); ++i) {
        std::string frame;
        log::EncodeRecord(1, i, log::kUpdate, "0123456789abcdef", &frame);
        if (!r->PublishLog(1, i, i, frame).ok()) std::exit(2);
      }
    });
  }
  const std::string path =
      absl::StrCat(g_tmp, "/fsync-", getpid(), "-", ++g_stream);
  const int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_APPEND, 0644);
  if (fd < 0) std::exit(2);
  std::vector<double> out;
  const std::string record(40, 'x');
  for (int i = 0; i < ops; ++i) {
    const auto t0 = Clock::now();
    if (write(fd, record.data(), record.size()) !=
            static_cast<ssize_t>(record.size()) ||
        fdatasync(fd) != 0) {
      std::exit(2);
    }
    const auto t1 = Clock::now();
    if (i >= ops / 10) out.push_back(Micros(t1 - t0));
    if (pause > absl::ZeroDuration()) absl::SleepFor(pause);
  }
  close(fd);
  unlink(path.c_str());
  stop = true;
  if (pub.joinable()) pub.join();
  if (tick.joinable()) tick.join();
  return out;
}

// The stream as it was at sequence `until` for ReadLog (what a restore
// sees), and all of it for TailLog: a follower started then, which then
// finds every later message already in the stream (a backlog to catch up).
class StreamAsOf : public replication::StreamSource {
 public:
  StreamAsOf(replication::NatsReplicator* inner, uint64_t until)
      : inner_(inner), until_(until) {}
  absl::Status ReadLog(
      const std::function<absl::Status(uint64_t, absl::string_view,
                                       absl::string_view)>& fn) override {
    absl::Status s = inner_->ReadLog(
        [&](uint64_t seq, absl::string_view m, absl::string_view w) {
          if (seq > until_) return absl::CancelledError("as of");
          return fn(seq, m, w);
        });
    return absl::IsCancelled(s) ? absl::OkStatus() : s;
  }
  absl::Status ReadSnapshot(
      uint64_t from,
      const std::function<absl::StatusOr<bool>(uint64_t, absl::string_view)>&
          fn) override {
    return inner_->ReadSnapshot(from, fn);
  }
  std::string Describe() const override { return inner_->Describe(); }
  absl::Status TailLog(uint64_t from, absl::Duration idle_wait,
                       const std::function<absl::StatusOr<bool>(
                           uint64_t, absl::string_view, absl::string_view)>& fn,
                       const std::function<bool()>& idle) override {
    return inner_->TailLog(from, idle_wait, fn, idle);
  }

 private:
  replication::NatsReplicator* inner_;
  uint64_t until_;
};

struct FollowRun {
  double seconds = 0;  // from the first progress (restore done) to the end
  uint64_t records = 0;
  uint64_t durable_lsn = 0;
};

// Follows `source` into `dir` until `last_lsn` is durable there.
FollowRun FollowUntil(replication::StreamSource* source, const std::string& dir,
                      uint64_t last_lsn) {
  replication::FollowOptions o;
  std::atomic<uint64_t> durable{0};
  Clock::time_point restored{};
  o.on_progress = [&](uint64_t lsn) {
    if (restored == Clock::time_point{}) restored = Clock::now();
    durable = lsn;
  };
  o.stop = [&] { return durable.load() >= last_lsn; };
  auto report = replication::Follow(source, FileSystem::Default(), dir, o);
  const auto end = Clock::now();
  if (!report.ok()) {
    std::fprintf(stderr, "follow: %s\n", report.status().ToString().c_str());
    std::exit(2);
  }
  FollowRun run;
  run.seconds = std::chrono::duration<double>(end - restored).count();
  run.records = report->records_applied;
  run.durable_lsn = report->durable_lsn;
  return run;
}

// Opens `dir` as writer `writer`, taking the store over (µs-precise s).
double TakeOverAndOpen(const std::string& store, const std::string& dir,
                       const std::string& writer) {
  const auto t0 = Clock::now();
  Options o = OptionsFor(replication::Mode::kAsync, store);
  o.replication.writer_id = writer;
  o.replication.takeover = true;
  auto s = Store<GatewaySession>::Open(o, dir);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!s.ok()) {
    std::fprintf(stderr, "open %s: %s\n", dir.c_str(),
                 s.status().ToString().c_str());
    std::exit(2);
  }
  (void)(*s)->Close();
  return secs;
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
  const char* names[] = {"off", "async", "sync"};
  std::vector<double> lat[3], floor, fsync_alone, fsync_pub, fsync_paused,
      fsync_ticker;
  std::vector<double> tput[3];
  // Per-round p50s: the report gives their median, which a burst of
  // another process's I/O in one round moves less than a pooled p50.
  std::vector<double> p50s[3], floor50s, alone50s, pub50s, paused50s, ticker50s;
  for (int round = 0; round < rounds; ++round) {
    for (int k = 0; k < 3; ++k) {
      const int m = (round + k) % 3;  // each mode in each position in turn
      auto l = Latencies(modes[m], ops);
      p50s[m].push_back(Pct(l, 0.5));
      lat[m].insert(lat[m].end(), l.begin(), l.end());
    }
    auto f = PublishFloor(ops);
    floor50s.push_back(Pct(f, 0.5));
    floor.insert(floor.end(), f.begin(), f.end());
    // Alone and with a publishing thread, alternating which goes first.
    for (int k = 0; k < 2; ++k) {
      const bool with_pub = (round + k) % 2 == 1;
      auto a = LocalFsync(ops, with_pub);
      (with_pub ? pub50s : alone50s).push_back(Pct(a, 0.5));
      auto& all = with_pub ? fsync_pub : fsync_alone;
      all.insert(all.end(), a.begin(), a.end());
    }
    {
      auto p = LocalFsync(ops, false, absl::Microseconds(500));
      paused50s.push_back(Pct(p, 0.5));
      fsync_paused.insert(fsync_paused.end(), p.begin(), p.end());
      auto t = LocalFsync(ops, false, absl::ZeroDuration(), true);
      ticker50s.push_back(Pct(t, 0.5));
      fsync_ticker.insert(fsync_ticker.end(), t.begin(), t.end());
    }
    for (int m = 0; m < 3; ++m)
      tput[m].push_back(Throughput(modes[m], ops / 2));
    std::fprintf(stderr,
                 "round %d p50 µs: off %.0f async %.0f sync %.0f | publish "
                 "%.0f | fdatasync alone %.0f, with a publisher %.0f, 0.5 ms "
                 "apart %.0f, with a 100 µs ticker thread %.0f\n",
                 round, p50s[0].back(), p50s[1].back(), p50s[2].back(),
                 floor50s.back(), alone50s.back(), pub50s.back(),
                 paused50s.back(), ticker50s.back());
  }

  // Restore of `sessions` sessions (a snapshot + a log tail of sessions/10
  // updates) against a local Open of the same directory.
  const std::string store = absl::StrCat("restore-", getpid());
  const std::string dir = absl::StrCat(g_tmp, "/", store);
  uint64_t last_lsn = 0;
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
    // Close drained the publisher: the stream ends where the store does.
    auto end = Connect(store)->Peek();
    if (!end.ok()) return 2;
    last_lsn = end->last_lsn;
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

  // Standby catch-up: a follower that started when the stream held only
  // the first claim finds every record of the store as a backlog.
  FollowRun catch_up;
  {
    auto r = Connect(store);
    StreamAsOf as_of(r.get(), 1);
    catch_up = FollowUntil(&as_of, dir + "-backlog", last_lsn);
  }
  // Warm takeover: a follower started now (restore from the snapshot, then
  // the tail), stopped once it holds the last LSN; claim + Open of its
  // directory, against restore + claim + Open of a fresh one.
  double warm_s = 0, full_s = 0;
  {
    auto r = Connect(store);
    (void)FollowUntil(r.get(), dir + "-warm", last_lsn);
    warm_s = TakeOverAndOpen(store, dir + "-warm", "bench-warm");
    const auto t0 = Clock::now();
    auto rep =
        replication::Restore(r.get(), FileSystem::Default(), dir + "-full");
    if (!rep.ok()) {
      std::fprintf(stderr, "%s\n", rep.status().ToString().c_str());
      return 2;
    }
    const double restore_only =
        std::chrono::duration<double>(Clock::now() - t0).count();
    full_s = restore_only + TakeOverAndOpen(store, dir + "-full", "bench-full");
  }

  std::printf(
      "| mode | IMMEDIATE p50 (median of %d rounds' p50s) | pooled p99 | "
      "8-thread ops/s (median of %d) |\n",
      rounds, rounds);
  std::printf("|---|---|---|---|\n");
  for (int m = 0; m < 3; ++m) {
    std::printf("| %s | %.0f µs | %.0f µs | %.0f |\n", names[m],
                Pct(p50s[m], 0.5), Pct(lat[m], 0.99), Pct(tput[m], 0.5));
  }
  const double off50 = Pct(p50s[0], 0.5), async50 = Pct(p50s[1], 0.5),
               sync50 = Pct(p50s[2], 0.5), floor50 = Pct(floor50s, 0.5),
               alone50 = Pct(alone50s, 0.5), pub50 = Pct(pub50s, 0.5);
  std::printf(
      "| bare fenced JetStream publish + ack (floor) | %.0f µs | %.0f µs | "
      "|\n",
      floor50, Pct(floor, 0.99));
  std::printf(
      "| bare local append + fdatasync, alone | %.0f µs | %.0f µs | |\n",
      alone50, Pct(fsync_alone, 0.99));
  std::printf(
      "| bare local append + fdatasync, another thread publishing | %.0f µs "
      "| %.0f µs | |\n",
      pub50, Pct(fsync_pub, 0.99));
  std::printf(
      "| bare local append + fdatasync, 0.5 ms pause between them | %.0f µs "
      "| %.0f µs | |\n",
      Pct(paused50s, 0.5), Pct(fsync_paused, 0.99));
  std::printf(
      "| bare local append + fdatasync, a thread waking every 100 µs | %.0f "
      "µs | %.0f µs | |\n\n",
      Pct(ticker50s, 0.5), Pct(fsync_ticker, 0.99));
  std::printf(
      "| standby | figure |\n|---|---|\n"
      "| catch-up over a backlog of %llu records | %.0f records/s (%.2f s) |\n"
      "| warm takeover: claim + Open of the follower's directory | %.3f s |\n"
      "| full takeover: restore + claim + Open | %.3f s |\n\n",
      static_cast<unsigned long long>(catch_up.records),
      catch_up.records / catch_up.seconds, catch_up.seconds, warm_s, full_s);
  std::printf(
      "| target | measured | verdict (before the noise check) |\n"
      "|---|---|---|\n");
  std::printf(
      "| async adds <= 5%% to IMMEDIATE p50 | %.2fx (%.0f vs %.0f µs) | %s |\n",
      async50 / off50, async50, off50,
      async50 <= 1.05 * off50 ? "met" : "missed");
  std::printf(
      "| sync p50 <= local fdatasync p50 + 1.3x bare ack p50 | %.0f µs vs "
      "%.0f + 1.3 x %.0f = %.0f µs | %s |\n",
      sync50, alone50, floor50, alone50 + 1.3 * floor50,
      sync50 <= alone50 + 1.3 * floor50 ? "met" : "missed");
  std::printf(
      "| restore of %d sessions <= 3x local recovery | %.2f s vs %.2f s "
      "(%.1fx) | %s |\n",
      sessions, restore_s, open_s, restore_s / open_s,
      restore_s <= 3 * open_s ? "met" : "missed");
  std::printf("\nrestore: %s", report.ToString().c_str());
  return 0;
}
