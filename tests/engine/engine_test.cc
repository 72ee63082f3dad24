// Engine rules from issue 3: partial updates, tiers, ticks, deletes, indexes,
// snapshots, recovery, locking. Uses the in-memory fault-injecting file system
// so that crashes can be simulated exactly.
#include <atomic>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/log/format.h"
#include "engine/log/reader.h"
#include "engine/snapshot/manifest.h"
#include "engine/state/update_codec.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "proto/example/gateway.pb.h"
#include "tests/fs/fault_injection_fs.h"
#include "tests/log/test_util.h"
#include "tests/state/field_kinds.h"
#include "tests/wait_until.h"
#include "walstate/walstate.h"

namespace walstate {
namespace {

using example::GatewaySession;
using FIFS = FaultInjectionFileSystem;
using google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kDir[] = "/db";

class EngineTest : public ::testing::Test {
 protected:
  EngineTest() : fs_(std::make_unique<FIFS>()) {}

  Options MakeOptions() {
    Options o;
    o.fs = fs_.get();
    o.background_thread = false;
    o.clock = [this] { return now_; };
    return o;
  }

  std::unique_ptr<Store<GatewaySession>> OpenStore() {
    auto store = Store<GatewaySession>::Open(MakeOptions(), kDir);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  // Simulates power loss: drops everything not synced, undoes unsynced names.
  void PowerLoss() {
    FIFS::CrashOptions c;
    c.mode = FIFS::CrashMode::kDropUnsynced;
    c.names = FIFS::NameLoss::kDropUnsynced;
    fs_ = fs_->Crash(c);
  }

  // Records of a given type in the log.
  int CountRecords(uint8_t type) {
    log::LogReaderOptions o;
    o.fs = fs_.get();
    o.dir = kDir;
    auto reader = log::LogReader::Open(o);
    EXPECT_TRUE(reader.ok());
    int n = 0;
    log::Record r;
    while ((*reader)->Next(&r)) n += r.type == type;
    EXPECT_TRUE((*reader)->status().ok()) << (*reader)->status();
    return n;
  }

  static GatewaySession Identity(const std::string& fp,
                                 const std::string& hid) {
    GatewaySession s;
    s.set_fingerprint(fp);
    s.set_header_session_id(hid);
    s.set_header_name("x-session-affinity");
    return s;
  }

  static GatewaySession Calibrated(double cap, int layer) {
    GatewaySession s;
    s.mutable_calibration()->set_dynamic_context_cap(cap);
    s.mutable_calibration()->set_last_layer(layer);
    s.mutable_calibration()->set_bust_rate_ema(-1);
    return s;
  }

  std::unique_ptr<FIFS> fs_;
  absl::Time now_ = absl::FromUnixSeconds(1800000000);
};

TEST_F(EngineTest, PartialUpdateNeverTouchesUnlistedFields) {
  auto store = OpenStore();
  ASSERT_TRUE(store
                  ->Update("s1", Identity("fp1", "h1"),
                           {"fingerprint", "header_session_id", "header_name"})
                  .ok());
  GatewaySession cost;
  cost.mutable_cost()->set_conversation_cost(1.5);
  cost.set_fingerprint("SHOULD-NOT-BE-APPLIED");
  ASSERT_TRUE(store->Update("s1", cost, {"cost"}).ok());
  ASSERT_TRUE(store->Update("s1", Calibrated(0.5, 0), {"calibration"}).ok());

  auto got = store->Get("s1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->fingerprint(), "fp1");
  EXPECT_EQ(got->header_session_id(), "h1");
  EXPECT_EQ(got->cost().conversation_cost(), 1.5);
  EXPECT_TRUE(got->has_calibration());
  EXPECT_EQ(got->calibration().last_layer(), 0);

  // A listed field that is unset in the values is cleared.
  ASSERT_TRUE(store->Update("s1", GatewaySession(), {"cost"}).ok());
  got = store->Get("s1");
  EXPECT_FALSE(got->has_cost());
  EXPECT_TRUE(got->has_calibration());
  EXPECT_EQ(got->fingerprint(), "fp1");
}

TEST_F(EngineTest, UnknownFieldAndWrongInputsAreRejected) {
  auto store = OpenStore();
  absl::Status s = store->Update("s1", GatewaySession(), {"no_such_field"});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("no_such_field"));
  EXPECT_EQ(store->Update("", GatewaySession(), {"cost"}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Update("s1", GatewaySession(), {}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Get("missing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->Delete("missing").code(), absl::StatusCode::kNotFound);
}

TEST_F(EngineTest, ImmediateFieldsAreDurableBeforeReturn) {
  auto store = OpenStore();
  ASSERT_TRUE(store->Update("s1", Identity("fp1", "h1"), {"fingerprint"}).ok());
  EXPECT_EQ(store->stats().immediate_updates, 1u);
  EXPECT_GE(store->stats().durable_lsn, 1u);
  store.reset();  // no Close: nothing flushed on the way out
  PowerLoss();
  store = OpenStore();
  auto got = store->Get("s1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->fingerprint(), "fp1");
}

TEST_F(EngineTest, BatchedFieldsWaitForTheTickAndCostNoIo) {
  auto store = OpenStore();
  const uint64_t syncs_before = fs_->CountOps(FIFS::OpKind::kSync);
  const uint64_t appends_before = fs_->CountOps(FIFS::OpKind::kAppend);
  ASSERT_TRUE(store->Update("s1", Calibrated(0.7, 2), {"calibration"}).ok());
  EXPECT_EQ(fs_->CountOps(FIFS::OpKind::kSync), syncs_before);
  EXPECT_EQ(fs_->CountOps(FIFS::OpKind::kAppend), appends_before);
  EXPECT_EQ(store->stats().dirty_sessions, 1u);

  // Lost without a tick...
  store.reset();
  PowerLoss();
  store = OpenStore();
  EXPECT_FALSE(store->Contains("s1"));

  // ...kept with one.
  ASSERT_TRUE(store->Update("s1", Calibrated(0.7, 2), {"calibration"}).ok());
  ASSERT_TRUE(store->Flush().ok());
  EXPECT_EQ(store->stats().dirty_sessions, 0u);
  store.reset();
  PowerLoss();
  store = OpenStore();
  auto got = store->Get("s1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->calibration().last_layer(), 2);
}

TEST_F(EngineTest, PerCallOverrideMakesBatchedFieldImmediate) {
  auto store = OpenStore();
  UpdateOptions now;
  now.durability = IMMEDIATE;
  ASSERT_TRUE(
      store->Update("s1", Calibrated(0.9, 4), {"calibration"}, now).ok());
  store.reset();
  PowerLoss();
  store = OpenStore();
  auto got = store->Get("s1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->calibration().last_layer(), 4);
}

TEST_F(EngineTest, MixedUpdateIsSplitByTier) {
  auto store = OpenStore();
  GatewaySession v = Identity("fp1", "h1");
  *v.mutable_calibration() = Calibrated(0.3, 1).calibration();
  ASSERT_TRUE(store->Update("s1", v, {"fingerprint", "calibration"}).ok());
  EXPECT_EQ(store->stats().dirty_sessions, 1u);
  store.reset();
  PowerLoss();
  store = OpenStore();
  auto got = store->Get("s1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->fingerprint(), "fp1");  // immediate: survived
  EXPECT_FALSE(got->has_calibration());  // batched: no tick yet
}

TEST_F(EngineTest, TickCoalescesUpdatesIntoOneRecordPerSession) {
  auto store = OpenStore();
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(
        store->Update("s1", Calibrated(i, i % 5), {"calibration"}).ok());
    GatewaySession c;
    c.mutable_cost()->set_conversation_turns(i);
    ASSERT_TRUE(store->Update("s2", c, {"cost"}).ok());
  }
  ASSERT_TRUE(store->Flush().ok());
  ASSERT_TRUE(store->Flush().ok());  // clean: writes nothing
  EXPECT_EQ(CountRecords(log::kTickEntry), 2);
  EXPECT_EQ(CountRecords(log::kTickCommit), 1);
  EXPECT_EQ(CountRecords(log::kTickBegin), 1);
  EXPECT_EQ(store->stats().ticks, 1u);
  EXPECT_EQ(store->stats().last_tick_sessions, 2u);
  store.reset();
  PowerLoss();
  store = OpenStore();
  EXPECT_EQ(store->Get("s1")->calibration().dynamic_context_cap(), 99);
  EXPECT_EQ(store->Get("s2")->cost().conversation_turns(), 99);
}

// A tick gives its core up once per 128 sessions it writes, counted across
// shards (a small tick, a session or two per shard, must not yield per
// shard), and only while some caller is inside the log's SyncTo and may
// need the core when its fdatasync returns: with none, a yield helps no one
// and, on a busy machine, can hand the core away for a whole time slice.
TEST_F(EngineTest, TickYieldsPer128SessionsOnlyWhileACallerWaitsForASync) {
  log::testing::FaultyFileSystem gate(fs_.get());
  Options options = MakeOptions();
  options.fs = &gate;
  // No write in the middle of the tick: it would wait for the held sync.
  options.tick_write_bytes = 1ull << 40;
  auto opened = Store<GatewaySession>::Open(options, kDir);
  ASSERT_TRUE(opened.ok()) << opened.status();
  auto& store = *opened;
  int next = 0;
  auto dirty = [&](int n) {
    for (int i = 0; i < n; ++i, ++next) {
      ASSERT_TRUE(store
                      ->Update(absl::StrCat("session-", next),
                               Calibrated(next, 1), {"calibration"})
                      .ok());
    }
  };
  // Nobody syncing: no yield, whatever the size.
  for (int n : {100, 1000}) {
    dirty(n);
    ASSERT_TRUE(store->Flush().ok());
    EXPECT_EQ(store->stats().last_tick_sessions, static_cast<uint64_t>(n));
    EXPECT_EQ(store->stats().last_tick_yields, 0u) << n << " sessions";
  }

  // An IMMEDIATE update held in its fdatasync for the whole tick: one yield
  // before each slice of 128 sessions but the first.
  for (auto [n, yields] : std::vector<std::pair<int, uint64_t>>{
           {100, 0}, {128, 0}, {129, 1}, {1000, 7}}) {
    gate.HoldSyncs();
    absl::Status immediate;
    std::thread caller([&] {
      immediate = store->Update(absl::StrCat("id-", n), Identity("fp", "h"),
                                {"fingerprint"});
    });
    gate.WaitForHeldSyncs(1);
    dirty(n);
    // The tick appends its begin, n entries and its commit, then waits in
    // SyncTo for the held sync: once the commit is appended, every slice
    // has been written.
    const uint64_t commit_lsn = store->stats().last_lsn + n + 2;
    absl::Status tick;
    std::thread ticker([&] { tick = store->Flush(); });
    const bool committed = walstate::testing::WaitUntil(
        [&] { return store->stats().last_lsn >= commit_lsn; },
        absl::StrCat("the tick of ", n, " sessions to append its commit"));
    EXPECT_TRUE(committed);
    gate.ReleaseSyncs();
    ticker.join();
    caller.join();
    ASSERT_TRUE(immediate.ok()) << immediate;
    ASSERT_TRUE(tick.ok()) << tick;
    EXPECT_EQ(store->stats().last_tick_sessions, static_cast<uint64_t>(n));
    EXPECT_EQ(store->stats().last_tick_yields, yields) << n << " sessions";
  }
  ASSERT_TRUE(store->Close().ok());
  EXPECT_EQ(CountRecords(log::kTickEntry), 1100 + 100 + 128 + 129 + 1000);
}

// stats() is counters kept as things change: it takes no shard lock (a
// metrics exporter must not stall updates, nor walk every session), so it
// answers while another thread holds one, here ForEach's, and still counts
// the dirty sessions right. The store's memory is a separate, walking call.
TEST_F(EngineTest, StatsTakesNoShardLock) {
  auto store = OpenStore();
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(
        store->Update(absl::StrCat("s", i), Calibrated(i, 1), {"calibration"})
            .ok());
  }
  std::atomic<bool> done{false};
  Stats st;
  std::thread reader;
  store->ForEach([&](absl::string_view, const GatewaySession&) {
    if (reader.joinable()) return;
    reader = std::thread([&] {
      st = store->stats();
      done = true;
    });
    EXPECT_TRUE(walstate::testing::WaitUntil(
        [&] { return done.load(); }, "stats() while ForEach holds a shard lock",
        std::chrono::seconds(10)));
  });
  reader.join();  // once ForEach's lock is gone, if the wait failed
  EXPECT_EQ(st.sessions, 10u);
  EXPECT_EQ(st.dirty_sessions, 10u);
  ASSERT_TRUE(store->Flush().ok());
  EXPECT_EQ(store->stats().dirty_sessions, 0u);
  ASSERT_TRUE(store->Delete("s0").ok());
  ASSERT_TRUE(store->Update("s1", Calibrated(2, 2), {"calibration"}).ok());
  EXPECT_EQ(store->stats().dirty_sessions, 1u);
  EXPECT_GT(store->ApproximateMemoryUsage(), 9u * sizeof(GatewaySession));
}

// A tick is one fdatasync by default: its slices are written (and their
// writeback started) as it goes, and synced once, at its commit, until it
// passes Options::tick_sync_bytes (64 MiB).
TEST_F(EngineTest, ATickOfSomeMegabytesIsOneSync) {
  auto store = OpenStore();
  GatewaySession values;
  values.mutable_ltm()->set_cache_text(std::string(8 << 10, 'x'));
  for (int i = 0; i < 1000; ++i) {  // ~8 MiB of tick
    ASSERT_TRUE(store->Update(absl::StrCat("s", i), values, {"ltm"}).ok());
  }
  const uint64_t before = store->stats().fsyncs;
  ASSERT_TRUE(store->Flush().ok());
  EXPECT_EQ(store->stats().last_tick_sessions, 1000u);
  EXPECT_GT(store->stats().log_bytes_since_snapshot, 7u << 20);
  EXPECT_EQ(store->stats().fsyncs - before, 1u);
}

// Compaction follows the log, not the background timer: a Flush() the
// application calls, and IMMEDIATE updates alone, make the background
// thread write a snapshot once the rule says so; the timer (an hour here)
// never fires.
TEST_F(EngineTest, CompactionFollowsTheLogNotTheTimer) {
  Options options = MakeOptions();
  options.background_thread = true;
  options.flush_interval = absl::Hours(1);
  options.compaction_min_log_bytes = 16 << 10;
  {
    auto opened = Store<GatewaySession>::Open(options, kDir);
    ASSERT_TRUE(opened.ok()) << opened.status();
    auto& store = *opened;
    for (int i = 0; i < 1000; ++i) {  // ~40 KiB of tick
      ASSERT_TRUE(
          store->Update(absl::StrCat("s", i), Calibrated(i, 1), {"calibration"})
              .ok());
    }
    EXPECT_EQ(store->stats().snapshots_written, 0u);
    ASSERT_TRUE(store->Flush().ok());
    EXPECT_TRUE(walstate::testing::WaitUntil(
        [&] { return store->stats().snapshots_written >= 1; },
        "a snapshot after an explicit Flush()", std::chrono::seconds(30)));
    ASSERT_TRUE(store->Close().ok());
  }
  {
    auto opened = Store<GatewaySession>::Open(options, kDir);
    ASSERT_TRUE(opened.ok()) << opened.status();
    auto& store = *opened;
    // ~60 B a record: 2048 updates pass the 16 KiB and half the snapshot
    // (~60 KiB), and reach 8 checks, with no tick at all.
    for (int i = 0; i < 2048; ++i) {
      ASSERT_TRUE(
          store
              ->Update(absl::StrCat("id", i),
                       Identity(absl::StrCat("fp", i), absl::StrCat("h", i)),
                       {"fingerprint", "header_session_id"})
              .ok());
    }
    EXPECT_TRUE(walstate::testing::WaitUntil(
        [&] { return store->stats().snapshots_written >= 1; },
        "a snapshot after IMMEDIATE updates alone", std::chrono::seconds(30)));
    EXPECT_EQ(store->stats().ticks, 0u);
    ASSERT_TRUE(store->Close().ok());
  }
}

// UpdateSerialized sets the listed fields from a serialized message: a
// listed field absent from the bytes is cleared, an unlisted one present is
// ignored, tiers apply as for Update (the IMMEDIATE one survives a power
// loss), and bytes that do not parse are refused with the store unchanged.
TEST_F(EngineTest, UpdateSerializedSetsTheListedFieldsFromBytes) {
  auto store = OpenStore();
  GatewaySession values = Calibrated(3, 2);
  values.set_fingerprint("fp");
  values.mutable_cost()->set_conversation_turns(7);
  ASSERT_TRUE(store
                  ->UpdateSerialized("s1", values.SerializeAsString(),
                                     {"fingerprint", "calibration", "cost"})
                  .ok());
  for (int i = 0; i < 3; ++i) {  // the engine's message reused
    GatewaySession next = Calibrated(10 + i, 1);
    next.set_fingerprint("ignored");
    ASSERT_TRUE(store
                    ->UpdateSerialized("s1", next.SerializeAsString(),
                                       {"calibration", "warmup"})
                    .ok());
  }
  auto got = store->Get("s1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->fingerprint(), "fp");
  EXPECT_EQ(got->calibration().dynamic_context_cap(), 12);
  EXPECT_EQ(got->cost().conversation_turns(), 7);
  EXPECT_FALSE(got->has_warmup());
  EXPECT_EQ(store->stats().dirty_sessions, 1u);

  absl::Status bad = store->UpdateSerialized("s1", "\xff\xff", {"cost"});
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument) << bad;
  EXPECT_THAT(bad.message(), HasSubstr("do not parse"));
  EXPECT_EQ(store->Get("s1")->cost().conversation_turns(), 7);
  EXPECT_EQ(store->UpdateSerialized("s1", "", {"no_such_field"}).code(),
            absl::StatusCode::kInvalidArgument);

  store.reset();
  PowerLoss();  // the BATCHED fields were never ticked
  store = OpenStore();
  got = store->Get("s1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->fingerprint(), "fp");
  EXPECT_FALSE(got->has_calibration());
}

TEST_F(EngineTest, CrashMidTickRecoversAllOrNothingOfIt) {
  {
    auto store = OpenStore();
    ASSERT_TRUE(store->Update("a", Calibrated(1, 1), {"calibration"}).ok());
    ASSERT_TRUE(store->Flush().ok());  // committed tick: a=1
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(
          store->Update(absl::StrCat("s", i), Calibrated(2, 2), {"calibration"})
              .ok());
    }
    ASSERT_TRUE(store->Update("a", Calibrated(2, 2), {"calibration"}).ok());
    // Every op of the second tick: a crash right after any of them must show
    // all of the tick or none of it.
    const uint64_t before = fs_->op_count();
    ASSERT_TRUE(store->Flush().ok());
    const uint64_t after = fs_->op_count();
    store.reset();
    for (uint64_t op = before; op <= after; ++op) {
      auto at = fs_->StateAtOp(op);
      ASSERT_TRUE(at.ok());
      for (auto mode :
           {FIFS::CrashMode::kDropUnsynced, FIFS::CrashMode::kCutUnsynced,
            FIFS::CrashMode::kTearSectors}) {
        FIFS::CrashOptions c;
        c.mode = mode;
        c.seed = op;
        auto crashed = (*at)->Crash(c);
        Options o = MakeOptions();
        o.fs = crashed.get();
        auto store2 = Store<GatewaySession>::Open(o, kDir);
        ASSERT_TRUE(store2.ok()) << "op " << op << ": " << store2.status();
        const bool a_new = (*store2)->Get("a")->calibration().last_layer() == 2;
        int new_sessions = 0;
        for (int i = 0; i < 50; ++i) {
          new_sessions += (*store2)->Contains(absl::StrCat("s", i));
        }
        EXPECT_TRUE((a_new && new_sessions == 50) ||
                    (!a_new && new_sessions == 0))
            << "op " << op << " torn tick: a_new=" << a_new
            << " sessions=" << new_sessions;
      }
    }
  }
}

TEST_F(EngineTest, DeletedSessionIsNotResurrectedByALaterTick) {
  auto store = OpenStore();
  ASSERT_TRUE(store->Update("s1", Identity("fp", "h"), {"fingerprint"}).ok());
  ASSERT_TRUE(store->Update("s1", Calibrated(1, 1), {"calibration"}).ok());
  ASSERT_TRUE(store->Delete("s1").ok());
  ASSERT_TRUE(store->Flush().ok());
  EXPECT_FALSE(store->Contains("s1"));
  store.reset();
  PowerLoss();
  store = OpenStore();
  EXPECT_FALSE(store->Contains("s1"));
  // Also through a snapshot.
  ASSERT_TRUE(store->Compact().ok());
  store.reset();
  store = OpenStore();
  EXPECT_FALSE(store->Contains("s1"));
}

TEST_F(EngineTest, IndexesAreRebuiltAtOpen) {
  auto store = OpenStore();
  ASSERT_TRUE(store
                  ->Update("s1", Identity("fpA", "h1"),
                           {"fingerprint", "header_session_id"})
                  .ok());
  ASSERT_TRUE(store
                  ->Update("s2", Identity("fpA", "h2"),
                           {"fingerprint", "header_session_id"})
                  .ok());
  ASSERT_TRUE(store
                  ->Update("s3", Identity("fpB", "h3"),
                           {"fingerprint", "header_session_id"})
                  .ok());
  ASSERT_TRUE(store->Delete("s3").ok());
  // A unique value held by another session is refused.
  absl::Status dup =
      store->Update("s9", Identity("fpZ", "h1"), {"header_session_id"});
  EXPECT_EQ(dup.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(dup.message(), HasSubstr("s1"));

  auto before_fp = store->Lookup("fingerprint", "fpA");
  auto before_h = store->Lookup("header_session_id", "h2");
  ASSERT_TRUE(before_fp.ok());
  EXPECT_THAT(*before_fp, ElementsAre("s1", "s2"));
  EXPECT_THAT(*before_h, ElementsAre("s2"));
  EXPECT_THAT(*store->Lookup("fingerprint", "fpB"), ElementsAre());
  EXPECT_EQ(store->Lookup("cost", "1").status().code(),
            absl::StatusCode::kInvalidArgument);

  store.reset();
  PowerLoss();
  store = OpenStore();
  EXPECT_EQ(*store->Lookup("fingerprint", "fpA"), *before_fp);
  EXPECT_EQ(*store->Lookup("header_session_id", "h2"), *before_h);
  EXPECT_THAT(*store->Lookup("fingerprint", "fpB"), ElementsAre());
  ASSERT_TRUE(store->Compact().ok());
  store.reset();
  store = OpenStore();
  EXPECT_EQ(*store->Lookup("fingerprint", "fpA"), *before_fp);
}

TEST_F(EngineTest, SnapshotThenLogTailRecoversSameState) {
  auto store = OpenStore();
  for (int i = 0; i < 200; ++i) {
    std::string id = absl::StrCat("s", i);
    ASSERT_TRUE(
        store
            ->Update(id, Identity(absl::StrCat("fp", i), absl::StrCat("h", i)),
                     {"fingerprint", "header_session_id"})
            .ok());
    ASSERT_TRUE(store->Update(id, Calibrated(i, i % 5), {"calibration"}).ok());
    if (i == 100) {
      ASSERT_TRUE(store->Compact().ok());
    }
  }
  ASSERT_TRUE(store->Flush().ok());
  std::map<std::string, std::string> expected;
  store->ForEach([&](absl::string_view id, const GatewaySession& s) {
    expected[std::string(id)] = s.SerializeAsString();
  });
  ASSERT_TRUE(store->Close().ok());
  for (int round = 0; round < 2; ++round) {  // opening twice: same state
    store = OpenStore();
    EXPECT_EQ(store->recovery_report().snapshot_lsn > 0, true);
    // The MANIFEST says where the snapshot's last record is: the ~100
    // sessions' records before it are not read again.
    EXPECT_GT(store->recovery_report().bytes_skipped, 100u * 32)
        << store->recovery_report().ToString();
    std::map<std::string, std::string> got;
    store->ForEach([&](absl::string_view id, const GatewaySession& s) {
      got[std::string(id)] = s.SerializeAsString();
    });
    EXPECT_EQ(got, expected);
    store.reset();
  }
}

TEST_F(EngineTest, WrongLogPositionInTheManifestIsIgnored) {
  auto store = OpenStore();
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(store
                    ->Update(absl::StrCat("s", i),
                             Identity(absl::StrCat("fp", i), "h"),
                             {"fingerprint"})
                    .ok());
  }
  ASSERT_TRUE(store->Compact().ok());
  ASSERT_TRUE(
      store->Update("s0", Identity("fp-new", "h"), {"fingerprint"}).ok());
  ASSERT_TRUE(store->Close().ok());
  auto manifest = ReadManifest(fs_.get(), kDir);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  const record::Manifest::SnapshotRef right = manifest->current();
  ASSERT_GT(right.log_segment(), 0u);
  ASSERT_GT(right.log_offset(), 0u);
  // The right position, then positions of other bytes: each recovers the
  // same sessions, and only the right one skips anything.
  struct Position {
    uint64_t segment, offset;
  };
  for (Position p :
       std::vector<Position>{{right.log_segment(), right.log_offset()},
                             {right.log_segment(), right.log_offset() + 8},
                             {right.log_segment(), right.log_offset() - 8},
                             {right.log_segment(), 1u << 30},
                             {right.log_segment() + 7, right.log_offset()},
                             {0, 0}}) {
    record::Manifest m = *manifest;
    m.mutable_current()->set_log_segment(p.segment);
    m.mutable_current()->set_log_offset(p.offset);
    ASSERT_TRUE(WriteManifest(fs_.get(), kDir, m).ok());
    store = OpenStore();
    ASSERT_NE(store, nullptr);
    const RecoveryReport& r = store->recovery_report();
    EXPECT_EQ(r.records_replayed, 1u) << r.ToString();
    EXPECT_EQ(store->stats().sessions, 50u);
    auto s0 = store->Get("s0");
    ASSERT_TRUE(s0.ok()) << s0.status();
    EXPECT_EQ(s0->fingerprint(), "fp-new");
    if (p.segment == right.log_segment() && p.offset == right.log_offset()) {
      EXPECT_GT(r.bytes_skipped, 0u);
    } else {
      EXPECT_EQ(r.bytes_skipped, 0u) << p.segment << "/" << p.offset;
    }
    ASSERT_TRUE(store->Close().ok());
    store.reset();
  }
}

TEST_F(EngineTest, DamagedNewestSnapshotFallsBackToPrevious) {
  auto store = OpenStore();
  ASSERT_TRUE(store->Update("s1", Identity("fp1", "h1"), {"fingerprint"}).ok());
  ASSERT_TRUE(store->Compact().ok());
  ASSERT_TRUE(store->Update("s2", Identity("fp2", "h2"), {"fingerprint"}).ok());
  ASSERT_TRUE(store->Compact().ok());
  ASSERT_TRUE(store->Update("s3", Identity("fp3", "h3"), {"fingerprint"}).ok());
  const std::string current =
      std::string(kDir) + "/" +
      log::SnapshotFileName(store->stats().snapshot_lsn);
  ASSERT_TRUE(store->Close().ok());
  ASSERT_TRUE(fs_->FlipBit(current, 100, 3).ok());
  store = OpenStore();
  ASSERT_NE(store, nullptr);
  const RecoveryReport& r = store->recovery_report();
  EXPECT_TRUE(r.fell_back);
  EXPECT_THAT(r.fallback_reason, HasSubstr("current snapshot"));
  EXPECT_TRUE(store->Contains("s1"));
  EXPECT_TRUE(store->Contains("s2"));
  EXPECT_TRUE(store->Contains("s3"));
  // The phases are parts of the whole, the failed load included.
  EXPECT_GT(r.snapshot_duration, absl::ZeroDuration());
  EXPECT_LE(r.snapshot_duration + r.replay_duration + r.index_duration,
            r.duration);
  EXPECT_THAT(r.ToString(), HasSubstr("indexes "));
}

TEST_F(EngineTest, CompactionDeletesOnlyWhatIsNoLongerNeeded) {
  Options o = MakeOptions();
  o.max_segment_bytes = 8 << 10;
  auto store = *Store<GatewaySession>::Open(o, kDir);
  auto count = [&](const char* prefix) {
    int n = 0;
    for (const std::string& f : fs_->ListFiles()) {
      n += f.find(prefix) != std::string::npos;
    }
    return n;
  };
  std::set<std::string> segments_seen;
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 400; ++i) {
      ASSERT_TRUE(store
                      ->Update(absl::StrCat("s", i),
                               Identity(absl::StrCat("fp", round, "-", i), ""),
                               {"fingerprint"})
                      .ok());
    }
    for (const std::string& f : fs_->ListFiles()) {
      if (f.find("/seg-") != std::string::npos) segments_seen.insert(f);
    }
    ASSERT_TRUE(store->Compact().ok());
    EXPECT_LE(count("/snap-"), 2);
  }
  const int segments_after = count("/seg-");
  EXPECT_GT(segments_seen.size(), 6u);
  // Only the log after the previous snapshot is kept.
  EXPECT_LE(segments_after, static_cast<int>(segments_seen.size()) / 2);
  ASSERT_TRUE(store->Close().ok());
  store = *Store<GatewaySession>::Open(o, kDir);
  EXPECT_EQ(store->Get("s7")->fingerprint(), "fp3-7");
}

TEST_F(EngineTest, FailedSnapshotIsReportedAndLeavesTheStoreHealthy) {
  auto store = OpenStore();
  ASSERT_TRUE(store->Update("s1", Identity("fp1", "h1"), {"fingerprint"}).ok());
  FIFS::FaultRule rule;
  rule.kind = FIFS::OpKind::kRename;
  rule.path_contains = "snap-";
  int id = fs_->InjectFault(rule);
  absl::Status s = store->Compact();
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE(store->stats().last_compaction_status.ok());
  EXPECT_TRUE(store->health().ok());
  fs_->RemoveFault(id);
  ASSERT_TRUE(store->Update("s2", Identity("fp2", "h2"), {"fingerprint"}).ok());
  ASSERT_TRUE(store->Compact().ok());
  EXPECT_TRUE(store->stats().last_compaction_status.ok());
  store.reset();
  PowerLoss();
  store = OpenStore();
  EXPECT_TRUE(store->Contains("s1"));
  EXPECT_TRUE(store->Contains("s2"));
}

// Session ids are bytes: errors quote and escape them as walctl prints them,
// so that an id cannot break or forge a line of a message.
TEST_F(EngineTest, ErrorsQuoteSessionIdsAsWalctlDoes) {
  auto store = OpenStore();
  absl::Status s = store->Update("a\nb \"c", Identity("fp", "h"), {});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("session \"a\\nb \\\"c\": "));
  s = store->Update("plain-id", Identity("fp", "h"), {});
  EXPECT_THAT(s.message(), HasSubstr("session plain-id: "));
  // The session table's own errors too.
  auto missing = store->Get("x\ny");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("session \"x\\ny\" "));
}

TEST_F(EngineTest, SecondOpenOfTheSameDirectoryIsRefused) {
  auto store = OpenStore();
  auto second = Store<GatewaySession>::Open(MakeOptions(), kDir);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr("held by"));
  EXPECT_TRUE(IsLockHeld(second.status())) << second.status();
  ASSERT_TRUE(store->Close().ok());
  store.reset();
  EXPECT_TRUE(Store<GatewaySession>::Open(MakeOptions(), kDir).ok());
}

TEST_F(EngineTest, FailedSyncStopsAcknowledgementsAndIsNeverRetried) {
  auto store = OpenStore();
  ASSERT_TRUE(store->Update("s1", Identity("fp1", "h1"), {"fingerprint"}).ok());
  FIFS::FaultRule rule;
  rule.kind = FIFS::OpKind::kSync;
  rule.nth = 1;
  fs_->InjectFault(rule);
  const uint64_t syncs = fs_->CountOps(FIFS::OpKind::kSync);
  absl::Status s = store->Update("s2", Identity("fp2", "h2"), {"fingerprint"});
  EXPECT_FALSE(s.ok());
  fs_->ClearFaults();
  // Every later update is refused with a clear error; no sync is retried.
  absl::Status later =
      store->Update("s3", Identity("fp3", "h3"), {"fingerprint"});
  EXPECT_EQ(later.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(later.message(), HasSubstr("reopen"));
  EXPECT_FALSE(store->health().ok());
  EXPECT_FALSE(store->Update("s4", Calibrated(1, 1), {"calibration"}).ok());
  EXPECT_FALSE(store->Flush().ok());
  EXPECT_EQ(fs_->CountOps(FIFS::OpKind::kSync), syncs + 1);
  EXPECT_FALSE(store->Close().ok());
  store.reset();
  // Reopening recovers what was acknowledged.
  PowerLoss();
  store = OpenStore();
  EXPECT_TRUE(store->Contains("s1"));
  EXPECT_FALSE(store->Contains("s3"));
}

TEST_F(EngineTest, IdleSessionsExpire) {
  Options o = MakeOptions();
  o.session_ttl = absl::Hours(1);
  auto store = *Store<GatewaySession>::Open(o, kDir);
  ASSERT_TRUE(
      store->Update("old", Identity("fp1", "h1"), {"fingerprint"}).ok());
  now_ += absl::Minutes(50);
  ASSERT_TRUE(
      store->Update("new", Identity("fp2", "h2"), {"fingerprint"}).ok());
  now_ += absl::Minutes(20);
  auto expired = store->ExpireIdleSessions();
  ASSERT_TRUE(expired.ok());
  EXPECT_EQ(*expired, 1u);
  EXPECT_FALSE(store->Contains("old"));
  EXPECT_TRUE(store->Contains("new"));
  EXPECT_THAT(*store->Lookup("fingerprint", "fp1"), ElementsAre());
  store.reset();
  PowerLoss();
  o.fs = fs_.get();
  auto reopened = Store<GatewaySession>::Open(o, kDir);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_FALSE((*reopened)->Contains("old"));
}

TEST_F(EngineTest, ExpireIdleSessionsTakesTheIdleAge) {
  Options o = MakeOptions();  // no session_ttl: the no-argument form expires
                              // nothing
  auto store = *Store<GatewaySession>::Open(o, kDir);
  ASSERT_TRUE(
      store->Update("old", Identity("fp1", "h1"), {"fingerprint"}).ok());
  now_ += absl::Minutes(50);
  ASSERT_TRUE(
      store->Update("new", Identity("fp2", "h2"), {"fingerprint"}).ok());
  now_ += absl::Minutes(20);
  EXPECT_EQ(*store->ExpireIdleSessions(), 0u);
  EXPECT_EQ(*store->ExpireIdleSessions(absl::Minutes(70)), 0u);  // not more
  EXPECT_EQ(*store->ExpireIdleSessions(absl::Hours(1)), 1u);
  EXPECT_FALSE(store->Contains("old"));
  EXPECT_TRUE(store->Contains("new"));
  EXPECT_EQ(*store->ExpireIdleSessions(absl::ZeroDuration()), 1u);
  EXPECT_FALSE(store->Contains("new"));
  EXPECT_EQ(store->ExpireIdleSessions(-absl::Seconds(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(EngineTest, TornTailIsCutAndReported) {
  auto store = OpenStore();
  ASSERT_TRUE(store->Update("s1", Identity("fp1", "h1"), {"fingerprint"}).ok());
  ASSERT_TRUE(store->Close().ok());
  store.reset();
  // Append half a record's worth of garbage to the newest segment.
  std::string newest;
  for (const std::string& f : fs_->ListFiles()) {
    if (f.find("/seg-") != std::string::npos && f > newest) newest = f;
  }
  auto bytes = fs_->ReadFileBytes(newest);
  ASSERT_TRUE(bytes.ok());
  ASSERT_TRUE(
      fs_->WriteFileBytes(newest, *bytes + std::string(13, '\x5a')).ok());
  store = OpenStore();
  EXPECT_EQ(store->recovery_report().torn_bytes_dropped, 13u);
  EXPECT_TRUE(store->Contains("s1"));
  ASSERT_TRUE(store->Update("s2", Identity("fp2", "h2"), {"fingerprint"}).ok());
  store.reset();
  // The cut tail never reads as damage in the middle later.
  store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->Contains("s2"));
  EXPECT_EQ(store->recovery_report().torn_bytes_dropped, 0u);
}

TEST_F(EngineTest, DamageBeforeTheTailIsAnErrorNamingFileAndOffset) {
  Options o = MakeOptions();
  o.max_segment_bytes = 1024;
  auto store = *Store<GatewaySession>::Open(o, kDir);
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(
        store->Update(absl::StrCat("s", i), Identity("fp", ""), {"fingerprint"})
            .ok());
  }
  ASSERT_TRUE(store->Close().ok());
  store.reset();
  std::string first;
  for (const std::string& f : fs_->ListFiles()) {
    if (f.find("/seg-") != std::string::npos && (first.empty() || f < first))
      first = f;
  }
  ASSERT_TRUE(fs_->FlipBit(first, 300, 0).ok());
  auto reopened = Store<GatewaySession>::Open(o, kDir);
  ASSERT_FALSE(reopened.ok());
  EXPECT_EQ(reopened.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(reopened.status().message(), HasSubstr(first));
  EXPECT_THAT(reopened.status().message(), HasSubstr("walctl"));
}

TEST_F(EngineTest, WrongMessageTypeForDirectoryIsRefused) {
  auto store = OpenStore();
  ASSERT_TRUE(store->Update("s1", Identity("fp1", "h1"), {"fingerprint"}).ok());
  ASSERT_TRUE(store->Close().ok());
  store.reset();
  auto other = Engine::Open(MakeOptions(), example::CostTracker(), kDir);
  ASSERT_FALSE(other.ok());
  EXPECT_THAT(other.status().message(), HasSubstr("GatewaySession"));
}

// Schema evolution: a field unknown to an older binary survives that binary's
// compaction. The "newer" schema is GatewaySession plus a field, built at run
// time in its own descriptor pool.
TEST_F(EngineTest, UnknownFieldsSurviveAnOlderBinarysCompaction) {
  google::protobuf::FileDescriptorProto options_file, file;
  google::protobuf::DescriptorProto::descriptor()->file()->CopyTo(
      &options_file);
  GatewaySession::descriptor()->file()->CopyTo(&file);
  auto* msg = file.mutable_message_type(file.message_type_size() - 1);
  ASSERT_EQ(msg->name(), "GatewaySession");
  auto* extra = msg->add_field();
  extra->set_name("added_later");
  extra->set_number(99);
  extra->set_type(google::protobuf::FieldDescriptorProto::TYPE_STRING);
  extra->set_label(google::protobuf::FieldDescriptorProto::LABEL_OPTIONAL);
  google::protobuf::DescriptorPool pool(
      google::protobuf::DescriptorPool::generated_pool());
  // Same file name as the generated one would clash; rename it.
  file.set_name("tests/engine/gateway_v2.proto");
  const auto* v2file = pool.BuildFile(file);
  ASSERT_NE(v2file, nullptr);
  const auto* v2 =
      pool.FindMessageTypeByName("walstate.example.GatewaySession");
  ASSERT_NE(v2, nullptr);
  // The generated type has the same full name; the pool's underlay wins on
  // lookup, so take the type from the built file itself.
  v2 = v2file->FindMessageTypeByName("GatewaySession");
  ASSERT_NE(v2, nullptr);
  ASSERT_NE(v2->FindFieldByName("added_later"), nullptr);
  google::protobuf::DynamicMessageFactory factory(&pool);
  const google::protobuf::Message* proto2 = factory.GetPrototype(v2);

  {
    auto newer = Engine::Open(MakeOptions(), *proto2, kDir);
    ASSERT_TRUE(newer.ok()) << newer.status();
    std::unique_ptr<google::protobuf::Message> values(proto2->New());
    values->GetReflection()->SetString(
        values.get(), v2->FindFieldByName("added_later"), "from the future");
    values->GetReflection()->SetString(
        values.get(), v2->FindFieldByName("fingerprint"), "fp");
    ASSERT_TRUE((*newer)
                    ->Update("s1", *values, {"added_later", "fingerprint"},
                             UpdateOptions{IMMEDIATE})
                    .ok());
    ASSERT_TRUE((*newer)->Close().ok());
  }
  {
    auto older = OpenStore();  // generated GatewaySession: no field 99
    EXPECT_EQ(older->Get("s1")->fingerprint(), "fp");
    ASSERT_TRUE(older->Compact().ok());
    ASSERT_TRUE(older->Close().ok());
  }
  {
    auto newer = Engine::Open(MakeOptions(), *proto2, kDir);
    ASSERT_TRUE(newer.ok()) << newer.status();
    EXPECT_EQ((*newer)->recovery_report().records_replayed, 0u);
    std::unique_ptr<google::protobuf::Message> got(proto2->New());
    ASSERT_TRUE((*newer)->Get("s1", got.get()).ok());
    EXPECT_EQ(got->GetReflection()->GetString(
                  *got, v2->FindFieldByName("added_later")),
              "from the future");
  }
}

// A tick entry lists a session's dirty fields in schema order, and a
// message of more than 63 fields shares the last dirty bit among all fields
// from the 64th on: one of them dirty makes the entry list all of them (with
// their current values, so replay is exact).
TEST_F(EngineTest, TickEntriesListDirtyFieldsInOrderPastTheSixtyFourthField) {
  google::protobuf::FileDescriptorProto file;
  file.set_name("tests/engine/wide.proto");
  file.set_package("walstate.test");
  auto* msg = file.add_message_type();
  msg->set_name("Wide");
  for (int i = 0; i < 70; ++i) {
    auto* f = msg->add_field();
    f->set_name(absl::StrCat("f", i));
    f->set_number(i + 1);
    f->set_type(google::protobuf::FieldDescriptorProto::TYPE_INT32);
    f->set_label(google::protobuf::FieldDescriptorProto::LABEL_OPTIONAL);
  }
  google::protobuf::DescriptorPool pool;
  const auto* wide_file = pool.BuildFile(file);
  ASSERT_NE(wide_file, nullptr);
  const auto* wide = wide_file->FindMessageTypeByName("Wide");
  google::protobuf::DynamicMessageFactory factory(&pool);
  const google::protobuf::Message* prototype = factory.GetPrototype(wide);
  auto set = [&](google::protobuf::Message* m, int i, int v) {
    m->GetReflection()->SetInt32(m, wide->field(i), v);
  };
  // Field numbers of the tick entries in the log, one list per entry.
  auto tick_entry_fields = [&] {
    log::LogReaderOptions o;
    o.fs = fs_.get();
    o.dir = kDir;
    auto reader = log::LogReader::Open(o);
    EXPECT_TRUE(reader.ok());
    std::vector<std::vector<uint32_t>> out;
    log::Record r;
    while ((*reader)->Next(&r)) {
      if (r.type != log::kTickEntry) continue;
      UpdateView view;
      EXPECT_TRUE(DecodeUpdate(r.payload, &view));
      out.emplace_back(view.fields.begin(), view.fields.end());
    }
    return out;
  };
  std::vector<uint32_t> from_64th;
  for (uint32_t n = 64; n <= 70; ++n) from_64th.push_back(n);

  {
    auto engine = Engine::Open(MakeOptions(), *prototype, kDir);
    ASSERT_TRUE(engine.ok()) << engine.status();
    std::unique_ptr<google::protobuf::Message> v(prototype->New());
    set(v.get(), 62, 620);
    set(v.get(), 1, 10);
    set(v.get(), 65, 650);
    // Listed out of order; f65 set in memory but not listed here.
    ASSERT_TRUE((*engine)->Update("s", *v, {"f62", "f1"}).ok());
    ASSERT_TRUE((*engine)->Flush().ok());
    ASSERT_TRUE((*engine)->Update("s", *v, {"f65"}).ok());
    ASSERT_TRUE((*engine)->Flush().ok());
    set(v.get(), 69, 690);
    ASSERT_TRUE((*engine)->Update("s", *v, {"f69", "f0"}).ok());
    ASSERT_TRUE((*engine)->Flush().ok());
    ASSERT_TRUE((*engine)->Close().ok());
  }
  std::vector<uint32_t> third = {1};
  third.insert(third.end(), from_64th.begin(), from_64th.end());
  EXPECT_THAT(tick_entry_fields(),
              ElementsAre(ElementsAre(2, 63), from_64th, third));

  auto engine = Engine::Open(MakeOptions(), *prototype, kDir);
  ASSERT_TRUE(engine.ok()) << engine.status();
  std::unique_ptr<google::protobuf::Message> got(prototype->New());
  ASSERT_TRUE((*engine)->Get("s", got.get()).ok());
  const google::protobuf::Reflection* r = got->GetReflection();
  EXPECT_EQ(r->GetInt32(*got, wide->field(1)), 10);
  EXPECT_EQ(r->GetInt32(*got, wide->field(62)), 620);
  EXPECT_EQ(r->GetInt32(*got, wide->field(65)), 650);
  EXPECT_EQ(r->GetInt32(*got, wide->field(69)), 690);
  EXPECT_FALSE(r->HasField(*got, wide->field(0)));
  EXPECT_FALSE(r->HasField(*got, wide->field(64)));
}

TEST_F(EngineTest, CopiedValuesAreLeftAloneAndMovedOnesAreTakenOver) {
  auto store = OpenStore();
  GatewaySession kept = Identity("fp-copy", "h-copy");
  *kept.mutable_calibration() = Calibrated(5, 2).calibration();
  const std::string before = kept.SerializeAsString();
  ASSERT_TRUE(
      store->Update("copied", kept, {"fingerprint", "calibration"}).ok());
  EXPECT_EQ(kept.SerializeAsString(), before);

  // One update with both tiers, moved: the IMMEDIATE record is encoded
  // before anything is taken over.
  GatewaySession moved = Identity("fp-move", "h-move");
  *moved.mutable_calibration() = Calibrated(6, 3).calibration();
  moved.set_resolved_conversation_ttl("untouched: not listed");
  ASSERT_TRUE(store
                  ->Update("moved", std::move(moved),
                           {"fingerprint", "header_session_id", "calibration"})
                  .ok());
  EXPECT_EQ(moved.resolved_conversation_ttl(), "untouched: not listed");
  auto got = store->Get("moved");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->fingerprint(), "fp-move");
  EXPECT_EQ(got->calibration().last_layer(), 3);
  EXPECT_TRUE(got->resolved_conversation_ttl().empty());
  EXPECT_EQ(*store->Lookup("header_session_id", "h-move"),
            std::vector<std::string>{"moved"});

  // The identity was synced by the call, the calibration waits for a tick.
  store.reset();
  PowerLoss();
  store = OpenStore();
  EXPECT_EQ(store->Get("moved")->fingerprint(), "fp-move");
  EXPECT_FALSE(store->Get("moved")->has_calibration());
  ASSERT_TRUE(store->Update("moved", Calibrated(7, 4), {"calibration"}).ok());
  ASSERT_TRUE(store->Flush().ok());
  store.reset();
  PowerLoss();
  store = OpenStore();
  EXPECT_EQ(store->Get("moved")->calibration().last_layer(), 4);
  EXPECT_EQ(store->Get("copied")->fingerprint(), "fp-copy");
}

// Random updates (BATCHED, copied or moved; IMMEDIATE ones of other fields
// and of the same ones), deletes, reads, ticks, compactions and expiry
// against a model: every read sees every update made before it, in the
// order made, and what a tick wrote comes back after a power loss.
TEST_F(EngineTest, RandomOperationsMatchAModelAndSurviveAPowerLoss) {
  Options o = MakeOptions();
  o.session_ttl = absl::Hours(1);
  auto opened = Store<GatewaySession>::Open(o, kDir);
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<Store<GatewaySession>> store = std::move(*opened);
  std::map<std::string, GatewaySession> model;
  std::map<std::string, absl::Time> touched;
  std::mt19937 rng(7);
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  auto expect_same = [&](const std::string& id) {
    auto got = store->Get(id);
    auto it = model.find(id);
    if (it == model.end()) {
      EXPECT_TRUE(absl::IsNotFound(got.status())) << id;
      EXPECT_FALSE(store->Contains(id)) << id;
      return;
    }
    ASSERT_TRUE(got.ok()) << id << ": " << got.status();
    EXPECT_TRUE(MessageDifferencer::Equals(*got, it->second))
        << id << "\ngot " << got->ShortDebugString() << "\nwant "
        << it->second.ShortDebugString();
  };
  auto expect_all = [&] {
    std::map<std::string, GatewaySession> seen;
    store->ForEach([&](absl::string_view id, const GatewaySession& s) {
      seen[std::string(id)] = s;
    });
    ASSERT_EQ(seen.size(), model.size());
    for (const auto& [id, state] : model) {
      ASSERT_EQ(seen.count(id), 1u) << id;
      EXPECT_TRUE(MessageDifferencer::Equals(seen[id], state)) << id;
    }
    EXPECT_EQ(store->stats().sessions, model.size());
  };
  for (int i = 0; i < 4000; ++i) {
    const std::string id = absl::StrCat("s", pick(60));
    const int op = pick(100);
    if (op < 55) {
      // BATCHED: calibration, cost or both, copied or moved.
      GatewaySession v;
      std::vector<std::string> fields;
      if (pick(2) == 0) {
        *v.mutable_calibration() = Calibrated(i, i % 5).calibration();
        fields.push_back("calibration");
      }
      if (fields.empty() || pick(2) == 0) {
        v.mutable_cost()->set_conversation_turns(i);
        if (pick(3) == 0) v.clear_cost();  // listed and unset: cleared
        fields.push_back("cost");
      }
      GatewaySession& m = model[id];
      for (const std::string& f : fields) {
        const auto* d = GatewaySession::descriptor()->FindFieldByName(f);
        m.GetReflection()->ClearField(&m, d);
        if (v.GetReflection()->HasField(v, d)) {
          m.GetReflection()->MutableMessage(&m, d)->CopyFrom(
              v.GetReflection()->GetMessage(v, d));
        }
      }
      touched[id] = now_;
      if (pick(2) == 0) {
        ASSERT_TRUE(store->Update(id, std::move(v), fields).ok());
      } else {
        ASSERT_TRUE(store->Update(id, v, fields).ok());
      }
    } else if (op < 65) {
      // IMMEDIATE and indexed.
      GatewaySession v =
          Identity(absl::StrCat("fp", i % 7), absl::StrCat("h", i));
      ASSERT_TRUE(
          store->Update(id, v, {"fingerprint", "header_session_id"}).ok());
      model[id].set_fingerprint(v.fingerprint());
      model[id].set_header_session_id(v.header_session_id());
      touched[id] = now_;
    } else if (op < 68) {
      // A BATCHED field made IMMEDIATE by the call: it must land after the
      // earlier BATCHED updates of that field, not under them.
      UpdateOptions now;
      now.durability = IMMEDIATE;
      ASSERT_TRUE(
          store->Update(id, Calibrated(-i, 1), {"calibration"}, now).ok());
      *model[id].mutable_calibration() = Calibrated(-i, 1).calibration();
      touched[id] = now_;
    } else if (op < 72) {
      const bool exists = model.erase(id) > 0;
      touched.erase(id);
      EXPECT_EQ(store->Delete(id).ok(), exists) << id;
    } else if (op < 90) {
      expect_same(id);
    } else if (op < 93) {
      expect_all();
    } else if (op < 97) {
      ASSERT_TRUE(store->Flush().ok());
      EXPECT_EQ(store->stats().dirty_sessions, 0u);
    } else if (op < 99) {
      ASSERT_TRUE(store->Compact().ok());
    } else {
      // Sessions untouched for over an hour expire; any update touches.
      now_ += absl::Minutes(40);
      auto expired = store->ExpireIdleSessions();
      ASSERT_TRUE(expired.ok()) << expired.status();
      uint64_t want = 0;
      for (auto it = touched.begin(); it != touched.end();) {
        if (now_ - it->second > absl::Hours(1)) {
          model.erase(it->first);
          it = touched.erase(it);
          ++want;
        } else {
          ++it;
        }
      }
      EXPECT_EQ(*expired, want);
    }
    if (::testing::Test::HasFailure()) return;
  }
  expect_all();
  // The last tick writes what is still dirty.
  ASSERT_TRUE(store->Flush().ok());
  store.reset();
  PowerLoss();
  store = OpenStore();
  ASSERT_NE(store, nullptr);
  expect_all();
}

// What an update does in memory is what recovery makes of its record, for
// every kind of field (testing::FieldKinds), copied or moved, IMMEDIATE or
// BATCHED: random updates of random field lists against a model that
// applies each as "clear the listed fields, then merge those the values
// set"; after a power loss (the BATCHED ones ticked first) the recovered
// states are the model's, from the log and from a snapshot.
TEST_F(EngineTest, EveryKindOfFieldRecoversAsItWasInMemory) {
  testing::FieldKinds kinds;
  const google::protobuf::Message& prototype = kinds.prototype();
  std::map<std::string, std::unique_ptr<google::protobuf::Message>> model;
  std::mt19937 rng(5);
  auto apply = [&](google::protobuf::Message* state,
                   const google::protobuf::Message& values,
                   const std::vector<std::string>& fields) {
    const auto* r = state->GetReflection();
    for (const std::string& name : fields) {
      const auto* f = state->GetDescriptor()->FindFieldByName(name);
      r->ClearField(state, f);
      std::unique_ptr<google::protobuf::Message> one(values.New());
      one->CopyFrom(values);
      std::vector<const google::protobuf::FieldDescriptor*> set;
      one->GetReflection()->ListFields(*one, &set);
      for (const auto* g : set) {
        if (g != f) one->GetReflection()->ClearField(one.get(), g);
      }
      state->MergeFrom(*one);
    }
  };
  auto expect_model = [&](Engine& engine, const char* when) {
    size_t seen = 0;
    engine.ForEach(
        [&](absl::string_view id, const google::protobuf::Message& state) {
          ++seen;
          auto it = model.find(std::string(id));
          ASSERT_NE(it, model.end()) << when << ": " << id;
          EXPECT_TRUE(MessageDifferencer::Equals(state, *it->second))
              << when << ": " << id << "\ngot  " << state.ShortDebugString()
              << "\nwant " << it->second->ShortDebugString();
        });
    EXPECT_EQ(seen, model.size()) << when;
  };
  {
    auto engine = Engine::Open(MakeOptions(), prototype, kDir);
    ASSERT_TRUE(engine.ok()) << engine.status();
    for (int i = 0; i < 600; ++i) {
      const std::string id = absl::StrCat("k", rng() % 25);
      std::unique_ptr<google::protobuf::Message> values(prototype.New());
      testing::FieldKinds::RandomValues(values.get(), &rng);
      const std::vector<std::string> fields = kinds.RandomFieldNames(&rng);
      auto& state = model[id];
      if (state == nullptr) state.reset(prototype.New());
      apply(state.get(), *values, fields);
      UpdateOptions o;
      o.durability = rng() % 2 == 0 ? IMMEDIATE : BATCHED;
      absl::Status s =
          rng() % 2 == 0 ? (*engine)->Update(id, *values, fields, o)
                         : (*engine)->Update(id, std::move(*values), fields, o);
      ASSERT_TRUE(s.ok()) << s;
      if (i % 97 == 0) {
        ASSERT_TRUE((*engine)->Flush().ok());
      }
      if (i == 300) {
        ASSERT_TRUE((*engine)->Compact().ok());
      }
    }
    expect_model(**engine, "in memory");
    ASSERT_TRUE((*engine)->Flush().ok());
  }
  PowerLoss();
  {
    auto engine = Engine::Open(MakeOptions(), prototype, kDir);
    ASSERT_TRUE(engine.ok()) << engine.status();
    EXPECT_GT((*engine)->recovery_report().records_replayed, 100u);
    expect_model(**engine, "replayed");
    ASSERT_TRUE((*engine)->Compact().ok());
  }
  PowerLoss();
  auto engine = Engine::Open(MakeOptions(), prototype, kDir);
  ASSERT_TRUE(engine.ok()) << engine.status();
  EXPECT_EQ((*engine)->recovery_report().records_replayed, 0u);
  expect_model(**engine, "from the snapshot");
}

// Session ids are bytes: one that is not UTF-8 must not make a record that
// recovery cannot parse.
TEST_F(EngineTest, SessionIdsThatAreNotUtf8SurviveRecovery) {
  const std::string id("\xff\xfe\x00bin", 6);
  const std::string gone("\xc3\x28", 2);
  {
    auto store = OpenStore();
    ASSERT_TRUE(store->Update(id, Identity("fp", "h"), {"fingerprint"}).ok());
    ASSERT_TRUE(store->Update(id, Calibrated(1, 1), {"calibration"}).ok());
    ASSERT_TRUE(
        store->Update(gone, Identity("fp2", "h2"), {"fingerprint"}).ok());
    ASSERT_TRUE(store->Flush().ok());
    ASSERT_TRUE(store->Delete(gone).ok());
  }
  PowerLoss();
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->Get(id)->calibration().last_layer(), 1);
    EXPECT_FALSE(store->Contains(gone));
    ASSERT_TRUE(store->Compact().ok());
  }
  PowerLoss();
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Get(id)->fingerprint(), "fp");
  EXPECT_EQ(store->recovery_report().records_replayed, 0u);
}

// Recovery on one thread and on several (ApplyPool) must agree, including
// deletes, identity changes and ticks that straddle the snapshot.
TEST_F(EngineTest, RecoveryOnOneOrManyThreadsGivesTheSameState) {
  {
    auto store = OpenStore();
    for (int i = 0; i < 600; ++i) {
      const std::string id = absl::StrCat("s", i % 150);
      if (i % 7 == 0) {
        ASSERT_TRUE(store
                        ->Update(id,
                                 Identity(absl::StrCat("fp", i % 40),
                                          absl::StrCat("h", i)),
                                 {"fingerprint", "header_session_id"})
                        .ok());
      }
      ASSERT_TRUE(
          store->Update(id, Calibrated(i, i % 5), {"calibration"}).ok());
      if (i % 97 == 0 && store->Contains(id)) {
        ASSERT_TRUE(store->Delete(id).ok());
      }
      if (i % 60 == 0) {
        ASSERT_TRUE(store->Flush().ok());
      }
      if (i == 300) {
        ASSERT_TRUE(store->Compact().ok());
      }
    }
    ASSERT_TRUE(store->Close().ok());
  }
  std::map<std::string, std::string> first;
  std::vector<std::string> first_lookup;
  for (size_t threads : {1, 2, 4}) {
    Options o = MakeOptions();
    o.recovery_threads = threads;
    auto store = Store<GatewaySession>::Open(o, kDir);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_GT((*store)->recovery_report().records_replayed, 100u);
    std::map<std::string, std::string> got;
    (*store)->ForEach([&](absl::string_view id, const GatewaySession& s) {
      got[std::string(id)] = s.SerializeAsString();
    });
    auto lookup = (*store)->Lookup("fingerprint", "fp3");
    ASSERT_TRUE(lookup.ok());
    if (threads == 1) {
      first = got;
      first_lookup = *lookup;
      EXPECT_GT(first.size(), 100u);
      EXPECT_FALSE(first_lookup.empty());
    } else {
      EXPECT_TRUE(got == first) << threads << " threads";
      EXPECT_TRUE(*lookup == first_lookup) << threads << " threads";
    }
    ASSERT_TRUE((*store)->Close().ok());
  }
}

TEST_F(EngineTest, ConcurrentUpdatesAndReads) {
  auto store = OpenStore();
  constexpr int kThreads = 8;
  constexpr int kOps = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kOps; ++i) {
        std::string id = absl::StrCat("t", t, "-", i % 10);
        if (i % 3 == 0) {
          EXPECT_TRUE(store
                          ->Update(id, Identity(absl::StrCat("fp", t), ""),
                                   {"fingerprint"})
                          .ok());
        } else {
          EXPECT_TRUE(
              store->Update(id, Calibrated(i, i % 5), {"calibration"}).ok());
        }
        (void)store->Get(absl::StrCat("t", (t + 1) % kThreads, "-", i % 10));
        (void)store->Lookup("fingerprint", absl::StrCat("fp", t));
        if (t == 0 && i % 50 == 0) {
          EXPECT_TRUE(store->Flush().ok());
        }
        if (t == 1 && i % 100 == 0) {
          EXPECT_TRUE(store->Compact().ok());
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(store->Flush().ok());
  std::map<std::string, std::string> expected;
  store->ForEach([&](absl::string_view id, const GatewaySession& s) {
    expected[std::string(id)] = s.SerializeAsString();
  });
  EXPECT_EQ(expected.size(), kThreads * 10u);
  store.reset();
  PowerLoss();
  store = OpenStore();
  std::map<std::string, std::string> got;
  store->ForEach([&](absl::string_view id, const GatewaySession& s) {
    got[std::string(id)] = s.SerializeAsString();
  });
  EXPECT_EQ(got, expected);
}

TEST_F(EngineTest, BackgroundThreadFlushesOnItsOwn) {
  Options o = MakeOptions();
  o.background_thread = true;
  o.flush_interval = absl::Milliseconds(20);
  o.clock = absl::Now;
  auto store = *Store<GatewaySession>::Open(o, kDir);
  ASSERT_TRUE(store->Update("s1", Calibrated(3, 3), {"calibration"}).ok());
  // The thread's own timer is what is tested: a bounded wait for its tick.
  EXPECT_TRUE(walstate::testing::WaitUntil(
      [&] { return store->stats().ticks >= 1; },
      "the background thread's first tick (flush_interval 20 ms)"));
  EXPECT_TRUE(store->stats().last_tick_status.ok());
  store.reset();
  PowerLoss();
  store = OpenStore();
  EXPECT_EQ(store->Get("s1")->calibration().last_layer(), 3);
}

}  // namespace
}  // namespace walstate
