// Replication against a real 3-node NATS JetStream cluster on loopback
// (started around this binary by scripts/nats_cluster.sh run). Tagged
// `replication`; docs/replication.md lists what each test shows.
//
// WALSTATE_REPLICATION_CYCLES sets the kill-and-restore cycles of test (a)
// (CI runs a few; scripts/replication_full.sh runs 20).
#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/replication/nats/nats_replicator.h"
#include "engine/replication/restore.h"
#include "gtest/gtest.h"
#include "proto/example/gateway.pb.h"
#include "tests/replication/cluster.h"
#include "tools/walctl/walctl.h"
#include "walstate/walstate.h"

namespace walstate {
namespace {

using example::GatewaySession;
using testing::Cluster;
using testing::WriterProcess;

class ReplicationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Cluster::FromEnv();
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = std::make_unique<Cluster>(*c);
    const char* tmp = std::getenv("TEST_TMPDIR");
    root_ = absl::StrCat(
        tmp != nullptr ? tmp : "/tmp", "/",
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_TRUE(FileSystem::Default()->CreateDir(root_).ok());
    // One stream per test (and per run: the cluster may be reused).
    store_ = absl::StrCat(
        ::testing::UnitTest::GetInstance()->current_test_info()->name(), "-",
        getpid());
  }

  void TearDown() override {
    // A test that killed nodes leaves the cluster whole for the next.
    if (cluster_ != nullptr) {
      EXPECT_TRUE(cluster_->EnsureAllUp().ok());
    }
  }

  std::string Dir(const std::string& name) const {
    return absl::StrCat(root_, "/", name);
  }

  std::shared_ptr<replication::NatsReplicator> Replicator(
      std::function<void(std::string*)> tamper = nullptr,
      replication::NatsOptions::Trim trim =
          replication::NatsOptions::Trim::kAuto,
      absl::Duration timeout = absl::Seconds(3)) {
    replication::NatsOptions o;
    o.trim = trim;
    o.url = cluster_->url();
    o.store = store_;
    o.timeout = timeout;
    o.tamper_log_message = std::move(tamper);
    auto r = replication::NatsReplicator::Connect(o);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return nullptr;
    return std::shared_ptr<replication::NatsReplicator>(std::move(*r));
  }

  Options Replicated(replication::Mode mode, const std::string& writer,
                     std::shared_ptr<replication::Replicator> r,
                     bool takeover = false) {
    Options o;
    o.background_thread = false;
    o.replication.mode = mode;
    o.replication.replicator = std::move(r);
    o.replication.writer_id = writer;
    o.replication.takeover = takeover;
    return o;
  }

  static absl::Status SetFingerprint(Store<GatewaySession>* store,
                                     const std::string& session,
                                     const std::string& value) {
    GatewaySession v;
    v.set_fingerprint(value);
    return store->Update(session, v, {"fingerprint"});
  }

  // Every session of `acked` holds at least its acknowledged value in the
  // store restored into `dir`, which also passes `walctl verify`.
  void ExpectAcked(const std::map<std::string, uint64_t>& acked,
                   const std::string& dir) {
    std::ostringstream out, err;
    walctl::Context ctx(out, err);
    EXPECT_EQ(walctl::Run(ctx, {"verify", dir}), 0) << out.str() << err.str();
    Options o;
    o.background_thread = false;
    auto store = Store<GatewaySession>::Open(o, dir);
    ASSERT_TRUE(store.ok()) << store.status();
    for (const auto& [session, value] : acked) {
      auto got = (*store)->Get(session);
      ASSERT_TRUE(got.ok()) << session << ": acknowledged " << value
                            << " but the restore lost the session";
      EXPECT_GE(std::strtoull(got->fingerprint().c_str(), nullptr, 10), value)
          << session << ": acknowledged value lost";
    }
    EXPECT_TRUE((*store)->Close().ok());
  }

  std::unique_ptr<Cluster> cluster_;
  std::string root_;
  std::string store_;
};

// The restored directory holds the same sessions, BATCHED fields and
// indexes as the original, across a snapshot published and trimmed.
TEST_F(ReplicationTest, RestoreMatchesOriginal) {
  auto r = Replicator(nullptr, replication::NatsOptions::Trim::kAlways);
  ASSERT_NE(r, nullptr);
  const std::string dir = Dir("orig");
  {
    Options o = Replicated(replication::Mode::kSync, "w1", r);
    auto store = Store<GatewaySession>::Open(o, dir);
    ASSERT_TRUE(store.ok()) << store.status();
    for (int i = 0; i < 300; ++i) {
      const std::string s = absl::StrCat("s", i % 50);
      ASSERT_TRUE(SetFingerprint(store->get(), s, absl::StrCat("fp", i)).ok());
      GatewaySession c;
      c.mutable_cost()->set_conversation_turns(i);
      ASSERT_TRUE((*store)->Update(s, c, {"cost"}).ok());
      if (i == 150) {
        ASSERT_TRUE((*store)->Flush().ok());
        ASSERT_TRUE((*store)->Compact().ok());
      }
      if (i % 70 == 0) {
        ASSERT_TRUE((*store)->Flush().ok());
      }
    }
    ASSERT_TRUE((*store)->Delete("s7").ok());
    const Stats st = (*store)->stats();
    EXPECT_EQ(st.replication_mode, "sync");
    EXPECT_EQ(st.replicated_lsn, st.durable_lsn);
    EXPECT_EQ(st.replication_lag_records, 0u);
    EXPECT_TRUE(absl::StrContains(st.replication_durability, "nats-server 2."))
        << st.replication_durability;
    ASSERT_TRUE((*store)->Close().ok());
    // Close drained the snapshot publication.
  }
  const std::string restored = Dir("restored");
  auto report = cluster_->Restore(store_, restored);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_FALSE(report->snapshot_file.empty()) << report->ToString();
  EXPECT_GT(report->records_written, 0u) << report->ToString();
  EXPECT_EQ(report->last_writer, "w1");
  // Trimmed: the records the snapshot covers left the stream.
  EXPECT_LT(report->records_verified, report->last_lsn) << report->ToString();

  std::ostringstream out, err;
  walctl::Context ctx(out, err);
  EXPECT_EQ(walctl::Run(ctx, {"verify", restored}), 0)
      << out.str() << err.str();
  Options o;
  o.background_thread = false;
  auto a = Store<GatewaySession>::Open(o, dir);
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = Store<GatewaySession>::Open(o, restored);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*b)->stats().sessions, (*a)->stats().sessions);
  EXPECT_EQ((*b)->stats().last_lsn, (*a)->stats().last_lsn);
  (*a)->ForEach([&](absl::string_view session, const GatewaySession& state) {
    auto got = (*b)->Get(session);
    ASSERT_TRUE(got.ok()) << session;
    EXPECT_EQ(got->SerializeAsString(), state.SerializeAsString()) << session;
    auto found = (*b)->Lookup("fingerprint", state.fingerprint());
    ASSERT_TRUE(found.ok());
    EXPECT_EQ(*found, std::vector<std::string>{std::string(session)});
  });
  EXPECT_FALSE((*b)->Contains("s7"));
}

// (a) kill -9 the writer mid-workload, restore on a fresh directory, go on
// writing there (taking over), again: no acknowledged IMMEDIATE update lost.
TEST_F(ReplicationTest, KillWriterRestoreLosesNoAck) {
  const char* env = std::getenv("WALSTATE_REPLICATION_CYCLES");
  const int cycles = env != nullptr ? std::atoi(env) : 3;
  const std::string writer_bin =
      testing::RunfilePath("tests/replication/replication_writer");
  std::map<std::string, uint64_t> acked;
  std::string dir = Dir("cycle0");
  size_t total_acks = 0;
  for (int cycle = 0; cycle < cycles; ++cycle) {
    auto w = WriterProcess::Start({writer_bin, cluster_->url(), store_, dir,
                                   absl::StrCat("writer-", cycle), "sync",
                                   "takeover"});
    ASSERT_TRUE(w.ok()) << w.status();
    // Varying kill points: 20..109 acknowledged updates into the cycle.
    const size_t target = 20 + (cycle * 37) % 90;
    ASSERT_TRUE((*w)->ReadUntilAcks(target))
        << "cycle " << cycle << ": " << (*w)->failure();
    (*w)->KillAndDrain();
    for (const auto& [s, v] : (*w)->acked()) acked[s] = v;
    total_acks += (*w)->ack_count();
    const std::string next = Dir(absl::StrCat("cycle", cycle + 1));
    auto report = cluster_->Restore(store_, next);
    ASSERT_TRUE(report.ok()) << "cycle " << cycle << ": " << report.status();
    ExpectAcked(acked, next);
    if (HasFatalFailure() || HasFailure()) {
      FAIL() << "cycle " << cycle << ": " << report->ToString();
    }
    dir = next;
  }
  std::cout << cycles << " cycles, " << total_acks
            << " acknowledged IMMEDIATE updates, 0 lost\n";
}

// (b) One node down: writes go on (a quorum of 2 remains), nothing lost.
// Two down: sync updates fail with a clear error, and everything that was
// acknowledged is in the stream once the nodes are back.
TEST_F(ReplicationTest, NodeLoss) {
  // Long enough to ride out the election of a new stream leader, longer on
  // a loaded machine (at most 30 s: with two nodes down every update waits
  // this long before it fails).
  auto r = Replicator(nullptr, replication::NatsOptions::Trim::kAuto,
                      absl::Seconds(15) * std::min(2.0, testing::LoadScale()));
  ASSERT_NE(r, nullptr);
  const std::string dir = Dir("store");
  std::map<std::string, uint64_t> acked;
  Options o = Replicated(replication::Mode::kSync, "w1", r);
  auto store = Store<GatewaySession>::Open(o, dir);
  ASSERT_TRUE(store.ok()) << store.status();
  uint64_t n = 0;
  auto write = [&](int count) -> absl::Status {
    for (int i = 0; i < count; ++i) {
      ++n;
      const std::string s = absl::StrCat("s", n % 30);
      absl::Status st = SetFingerprint(store->get(), s, absl::StrCat(n));
      if (!st.ok()) return st;
      acked[s] = n;
    }
    return absl::OkStatus();
  };
  ASSERT_TRUE(write(100).ok());
  // The stream's leader first: the worst single loss (an election).
  auto leader = r->StreamLeader();
  ASSERT_TRUE(leader.ok()) << leader.status();
  ASSERT_EQ(leader->size(), 2u) << *leader;  // "n1".."n3"
  const int first = (*leader)[1] - '0';
  ASSERT_TRUE(cluster_->Kill(first).ok());
  absl::Status s = write(200);
  ASSERT_TRUE(s.ok()) << "with one node of three (the leader, n" << first
                      << ") down: " << s;
  ASSERT_TRUE(cluster_->Kill(first == 1 ? 2 : 1).ok());
  s = write(1000);
  ASSERT_FALSE(s.ok()) << "two nodes of three down, yet updates succeeded";
  EXPECT_TRUE(absl::StrContains(s.message(), "replicating the log")) << s;
  EXPECT_FALSE((*store)->health().ok());
  EXPECT_FALSE(SetFingerprint(store->get(), "x", "y").ok());
  (void)(*store)->Close();
  absl::Status up = cluster_->EnsureAllUp();
  ASSERT_TRUE(up.ok()) << up;
  // Restore waits until the stream has a leader again and is readable.
  const std::string restored = Dir("restored");
  auto report = cluster_->Restore(store_, restored);
  ASSERT_TRUE(report.ok()) << report.status();
  ExpectAcked(acked, restored);
}

// (c) A deposed writer's publishes are refused and it stops (sync mode: the
// update fails; async mode: the store stops and Close says why).
TEST_F(ReplicationTest, DeposedWriterStops) {
  for (replication::Mode mode :
       {replication::Mode::kSync, replication::Mode::kAsync}) {
    SCOPED_TRACE(replication::ModeName(mode));
    store_ = absl::StrCat(store_, "-", replication::ModeName(mode));
    const std::string dir_a = Dir(absl::StrCat("a-", ModeName(mode)));
    auto a = Store<GatewaySession>::Open(
        Replicated(mode, "writer-a", Replicator()), dir_a);
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(SetFingerprint(a->get(), "s1", "1").ok());
    ASSERT_TRUE((*a)->Flush().ok());

    // Without takeover, a second writer is refused.
    const std::string dir_b = Dir(absl::StrCat("b-", ModeName(mode)));
    if (mode == replication::Mode::kAsync) {
      // Let a's publisher catch up, so the restore below holds "1".
      ASSERT_TRUE((*a)->Compact().ok());
    }
    auto refused = Store<GatewaySession>::Open(
        Replicated(mode, "writer-b", Replicator()), Dir("refused"));
    ASSERT_FALSE(refused.ok());
    EXPECT_TRUE(absl::StrContains(refused.status().message(), "writer-a"))
        << refused.status();

    // b restores and takes over: a is deposed.
    if (mode == replication::Mode::kAsync) {
      // Wait (bounded) for a's publisher: its lag must reach 0.
      for (int i = 0; i < 200 && (*a)->stats().replication_lag_records > 0;
           ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    auto report = cluster_->Restore(store_, dir_b);
    ASSERT_TRUE(report.ok()) << report.status();
    auto b = Store<GatewaySession>::Open(
        Replicated(mode, "writer-b", Replicator(), /*takeover=*/true), dir_b);
    ASSERT_TRUE(b.ok()) << b.status();
    ASSERT_TRUE(SetFingerprint(b->get(), "s1", "from-b").ok());
    ASSERT_TRUE((*b)->Flush().ok());

    absl::Status s = SetFingerprint(a->get(), "s1", "from-deposed-a");
    if (mode == replication::Mode::kSync) {
      ASSERT_FALSE(s.ok()) << "a deposed writer's update was acknowledged";
      EXPECT_TRUE(absl::StrContains(s.message(), "deposed")) << s;
      EXPECT_TRUE(absl::StrContains(s.message(), "writer-b")) << s;
      EXPECT_FALSE((*a)->health().ok());
    } else {
      // Acknowledged locally; the publisher is refused and stops the store.
      absl::Status c = (*a)->Close();
      ASSERT_FALSE(c.ok()) << "a deposed async writer closed cleanly";
      EXPECT_TRUE(absl::StrContains(c.message(), "deposed")) << c;
      EXPECT_FALSE((*a)->health().ok());
    }
    ASSERT_TRUE((*b)->Close().ok());
    // The stream holds b's history, not a's fork.
    auto again =
        cluster_->Restore(store_, Dir(absl::StrCat("check-", ModeName(mode))));
    ASSERT_TRUE(again.ok()) << again.status();
    Options o;
    o.background_thread = false;
    auto check = Store<GatewaySession>::Open(
        o, Dir(absl::StrCat("check-", ModeName(mode))));
    ASSERT_TRUE(check.ok()) << check.status();
    EXPECT_EQ((*check)->Get("s1")->fingerprint(), "from-b");
  }
}

// (d) A message damaged before it reached the stream (as one replica's
// damaged copy would be) is reported by restore, not applied.
TEST_F(ReplicationTest, DamagedMessageIsReportedNotApplied) {
  int log_messages = 0;
  auto r = Replicator([&log_messages](std::string* message) {
    // The 5th log message: flip a byte of its first record's payload.
    if (++log_messages == 5 && message->size() > 48 + 24 + 4) {
      (*message)[48 + 24 + 2] ^= 0x20;
    }
  });
  ASSERT_NE(r, nullptr);
  auto store = Store<GatewaySession>::Open(
      Replicated(replication::Mode::kSync, "w1", r), Dir("store"));
  ASSERT_TRUE(store.ok()) << store.status();
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(SetFingerprint(store->get(), "s", absl::StrCat(i)).ok());
  }
  ASSERT_TRUE((*store)->Close().ok());
  ASSERT_GE(log_messages, 5);
  const std::string restored = Dir("restored");
  auto report = cluster_->Restore(store_, restored);
  ASSERT_FALSE(report.ok())
      << "a damaged message was restored: " << report->ToString();
  EXPECT_EQ(report.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(report.status().message(), "checksum mismatch"))
      << report.status();
  EXPECT_TRUE(absl::StrContains(report.status().message(), "message "))
      << report.status();
  // Nothing of it was applied: the directory is left empty.
  auto names = FileSystem::Default()->ListDir(restored);
  ASSERT_TRUE(names.ok());
  EXPECT_TRUE(names->empty());
}

// SIGKILL all three NATS servers at once mid-workload, restart them,
// restore: nothing acknowledged is lost (the page cache survives a process
// kill; a power loss is what this cannot show, docs/replication.md).
TEST_F(ReplicationTest, KillAllServersLosesNoAck) {
  const std::string writer_bin =
      testing::RunfilePath("tests/replication/replication_writer");
  auto w = WriterProcess::Start(
      {writer_bin, cluster_->url(), store_, Dir("store"), "w1", "sync"});
  ASSERT_TRUE(w.ok()) << w.status();
  // Long enough for snapshots to be published (every 32 KiB of log).
  ASSERT_TRUE((*w)->ReadUntilAcks(600)) << (*w)->failure();
  ASSERT_TRUE(cluster_->KillAll().ok());
  // The writer's next update fails (no acknowledgement); it exits.
  (*w)->Drain();
  EXPECT_FALSE((*w)->failure().empty());
  for (int n = 1; n <= 3; ++n) {
    ASSERT_TRUE(cluster_->Restart(n).ok());
  }
  ASSERT_TRUE(cluster_->WaitLeader().ok());
  const std::string restored = Dir("restored");
  auto report = cluster_->Restore(store_, restored);
  ASSERT_TRUE(report.ok()) << report.status();
  ExpectAcked((*w)->acked(), restored);
  std::cout << (*w)->ack_count()
            << " acknowledged updates before all three servers were killed, "
               "0 lost; restore: "
            << report->ToString();
}

// Standby: `walctl follow` keeps a warm copy while a sync-mode writer
// works; the writer is SIGKILLed; once the follower holds the stream's end
// it is stopped (SIGTERM), the store is taken over and the follower's
// directory opened as the writer: every acknowledged update is there.
// WALSTATE_FOLLOW_ACKS sets the writer's acknowledged updates (CI: 300).
TEST_F(ReplicationTest, FollowerTakesOverWithEveryAck) {
  const char* env = std::getenv("WALSTATE_FOLLOW_ACKS");
  const size_t acks = env != nullptr ? std::strtoull(env, nullptr, 10) : 300;
  auto w = WriterProcess::Start(
      {testing::RunfilePath("tests/replication/replication_writer"),
       cluster_->url(), store_, Dir("writer"), "w1", "sync"});
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE((*w)->ReadUntilAcks(acks / 3)) << (*w)->failure();
  // The follower starts while the writer works (restore, then follow).
  const std::string standby = Dir("standby");
  auto f = WriterProcess::Start({testing::RunfilePath("tools/walctl/walctl"),
                                 "follow", "--nats", cluster_->url(), "--store",
                                 store_, standby});
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_TRUE((*w)->ReadUntilAcks(acks)) << (*w)->failure();
  (*w)->KillAndDrain();

  auto r = cluster_->WaitForStream(store_);
  ASSERT_TRUE(r.ok()) << r.status();
  auto end = (*r)->Peek();
  ASSERT_TRUE(end.ok()) << end.status();
  ASSERT_TRUE((*f)->ReadUntilDurable(end->last_lsn))
      << "the follower did not reach the stream's last LSN " << end->last_lsn
      << ":\n"
      << (*f)->output();
  ASSERT_EQ((*f)->TerminateAndWait(), 0) << (*f)->output();
  EXPECT_TRUE(absl::StrContains((*f)->output(), "is consistent up to LSN"))
      << (*f)->output();
  // It followed (records arrived after its restore), not only restored.
  EXPECT_FALSE(absl::StrContains((*f)->output(), ", 0 records applied"))
      << (*f)->output();

  // Warm takeover: claim, then open the follower's directory as the writer.
  const absl::Time t0 = absl::Now();
  std::ostringstream out, err;
  walctl::Context ctx(out, err);
  ASSERT_EQ(walctl::Run(ctx, {"takeover", "--nats", cluster_->url(), "--store",
                              store_, "--writer", "w2"}),
            0)
      << out.str() << err.str();
  {
    auto store = Store<GatewaySession>::Open(
        Replicated(replication::Mode::kSync, "w2", Replicator()), standby);
    ASSERT_TRUE(store.ok()) << store.status();
    const absl::Duration warm = absl::Now() - t0;
    EXPECT_EQ((*store)->stats().last_lsn, end->last_lsn);
    ASSERT_TRUE(SetFingerprint(store->get(), "after-takeover", "1").ok());
    ASSERT_TRUE((*store)->Close().ok());
    // Against a full restore of the same stream.
    const absl::Time t1 = absl::Now();
    auto report = cluster_->Restore(store_, Dir("full"));
    ASSERT_TRUE(report.ok()) << report.status();
    std::cout << (*w)->ack_count() << " acknowledged sync updates, last LSN "
              << end->last_lsn << ", 0 lost; warm takeover (claim + open) "
              << absl::FormatDuration(warm) << ", full restore "
              << absl::FormatDuration(absl::Now() - t1) << "\n";
  }
  ExpectAcked((*w)->acked(), standby);
}

}  // namespace
}  // namespace walstate
