// A writer process for the replication tests: opens a store with replication
// and makes IMMEDIATE updates (and BATCHED ones, so ticks and snapshots are
// published too) until it is killed or an update fails. After each
// acknowledged IMMEDIATE update it prints "ack <session> <n>" on stdout and
// flushes, so the test knows exactly what was acknowledged.
//
//   replication_writer URL STORE DIR WRITER sync|async [takeover]
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/replication/nats/nats_replicator.h"
#include "proto/example/gateway.pb.h"
#include "walstate/walstate.h"

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr,
                 "usage: %s URL STORE DIR WRITER sync|async [takeover]\n",
                 argv[0]);
    return 64;
  }
  walstate::replication::NatsOptions nopts;
  nopts.url = argv[1];
  nopts.store = argv[2];
  nopts.timeout = absl::Seconds(3);
  auto replicator = walstate::replication::NatsReplicator::Connect(nopts);
  if (!replicator.ok()) {
    std::printf("fail %s\n", replicator.status().ToString().c_str());
    return 3;
  }
  walstate::Options options;
  options.flush_interval = absl::Milliseconds(20);
  options.compaction_min_log_bytes = 32 << 10;  // snapshots every few ticks
  if (std::getenv("WALSTATE_WRITER_NO_SNAPSHOTS") != nullptr) {
    options.compaction_min_log_bytes = 1ull << 40;
  }
  options.replication.mode = std::string(argv[5]) == "async"
                                 ? walstate::replication::Mode::kAsync
                                 : walstate::replication::Mode::kSync;
  options.replication.replicator = std::move(*replicator);
  options.replication.writer_id = argv[4];
  options.replication.takeover = argc > 6 && std::string(argv[6]) == "takeover";
  auto store = walstate::Store<walstate::example::GatewaySession>::Open(
      options, argv[3]);
  if (!store.ok()) {
    std::printf("fail %s\n", store.status().ToString().c_str());
    return 3;
  }
  std::printf("open %llu\n",
              static_cast<unsigned long long>((*store)->stats().last_lsn));
  std::fflush(stdout);
  // Values are unique and increase per session: a restore must hold, for
  // each session, at least the last acknowledged one.
  const uint64_t base = (*store)->stats().last_lsn * 1000;
  for (uint64_t i = 1;; ++i) {
    const std::string session = absl::StrCat("s", i % 40);
    walstate::example::GatewaySession v;
    v.mutable_calibration()->set_last_known_input(static_cast<int64_t>(i));
    (void)(*store)->Update(session, std::move(v), {"calibration"});
    walstate::example::GatewaySession f;
    f.set_fingerprint(absl::StrCat(base + i));
    absl::Status s = (*store)->Update(session, f, {"fingerprint"});
    if (!s.ok()) {
      std::printf("fail %s\n", s.ToString().c_str());
      std::fflush(stdout);
      return 3;
    }
    std::printf("ack %s %llu\n", session.c_str(),
                static_cast<unsigned long long>(base + i));
    std::fflush(stdout);
  }
}
