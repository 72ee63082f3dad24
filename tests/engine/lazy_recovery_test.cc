// Lazy recovery (Options::lazy_recovery, engine/state/lazy_state.h): Open
// keeps recovered states serialized and parses each on first use. What a
// lazy Open gives must be what a parsing Open gives: the same states, the
// same index answers, the same errors for damage, with the parse moved to
// first use.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/log/format.h"
#include "engine/snapshot/snapshot_writer.h"
#include "engine/state/schema.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "proto/example/gateway.pb.h"
#include "tests/fs/fault_injection_fs.h"
#include "walstate/walstate.h"

namespace walstate {
namespace {

using example::GatewaySession;
using FIFS = FaultInjectionFileSystem;
using google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kDir[] = "/db";

class LazyRecoveryTest : public ::testing::Test {
 protected:
  LazyRecoveryTest() : fs_(std::make_unique<FIFS>()) {}

  Options MakeOptions(bool lazy) {
    Options o;
    o.fs = fs_.get();
    o.background_thread = false;
    o.lazy_recovery = lazy;
    return o;
  }

  std::unique_ptr<Store<GatewaySession>> OpenStore(bool lazy = true) {
    auto store = Store<GatewaySession>::Open(MakeOptions(lazy), kDir);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  static GatewaySession Identity(const std::string& fp,
                                 const std::string& hid) {
    GatewaySession s;
    s.set_fingerprint(fp);
    s.set_header_session_id(hid);
    s.set_header_name("x-session-affinity");
    return s;
  }

  static std::map<std::string, std::string> States(
      Store<GatewaySession>* store) {
    std::map<std::string, std::string> out;
    store->ForEach([&](absl::string_view id, const GatewaySession& s) {
      out[std::string(id)] = s.DebugString();
    });
    return out;
  }

  // Replaces snapshot `lsn` with one holding `states` (id, serialized
  // state) as they are, whatever they hold.
  void RewriteSnapshot(
      uint64_t lsn,
      const std::vector<std::pair<std::string, std::string>>& states) {
    ASSERT_TRUE(
        fs_->DeleteFile(absl::StrCat(kDir, "/", log::SnapshotFileName(lsn)))
            .ok());
    auto schema =
        Schema::FromPrototype(GatewaySession::default_instance(), BATCHED);
    ASSERT_TRUE(schema.ok());
    auto w = SnapshotWriter::Create(fs_.get(), kDir, lsn, (*schema)->blob());
    ASSERT_TRUE(w.ok()) << w.status();
    for (const auto& [id, state] : states) (*w)->AddSerialized(id, state, lsn);
    ASSERT_TRUE((*w)->Finish().ok());
  }

  // A snapshot of `sessions` sessions s0, s1, ..., then a tail of `records`
  // records (each its own, IMMEDIATE) for s0..s{with_records - 1} in turn:
  // large enough to outgrow the snapshot.
  void WriteSnapshotAndTail(int sessions, int records, int with_records) {
    auto store = OpenStore();
    for (int i = 0; i < sessions; ++i) {
      ASSERT_TRUE(store
                      ->Update(absl::StrCat("s", i),
                               Identity(absl::StrCat("fp", i), ""),
                               {"fingerprint"})
                      .ok());
    }
    ASSERT_TRUE(store->Compact().ok());
    UpdateOptions each_a_record;  // not coalesced by a tick
    each_a_record.durability = IMMEDIATE;
    for (int k = 0; k < records; ++k) {
      GatewaySession v;
      v.mutable_ltm()->set_cache_text(std::string(500, 'a' + k % 26));
      v.set_fingerprint(absl::StrCat("fpx", k));
      ASSERT_TRUE(store
                      ->Update(absl::StrCat("s", k % with_records), v,
                               {"ltm", "fingerprint"}, each_a_record)
                      .ok());
    }
    ASSERT_TRUE(store->Close().ok());
  }

  std::unique_ptr<FIFS> fs_;
};

// A random history over a few sessions: identity changes (the indexed
// fields set, changed and cleared), BATCHED changes with ticks, deletes,
// and a compaction halfway, so that the recovered states are a snapshot
// state plus records, records alone, and snapshot states alone.
TEST_F(LazyRecoveryTest, LazyAndParsingOpensGiveTheSameStatesAndIndexes) {
  std::mt19937 rng(7);
  std::set<std::string> fingerprints, header_ids;
  {
    auto store = OpenStore();
    for (int step = 0; step < 600; ++step) {
      const std::string id = absl::StrCat("s", rng() % 40);
      const int op = static_cast<int>(rng() % 10);
      if (op < 3) {
        const std::string fp = absl::StrCat("fp", rng() % 8);
        // Unique values: a random one could be held by another session.
        const std::string hid = rng() % 4 == 0 ? "" : absl::StrCat("h", step);
        fingerprints.insert(fp);
        header_ids.insert(hid);
        ASSERT_TRUE(store
                        ->Update(id, Identity(fp, hid),
                                 {"fingerprint", "header_session_id"})
                        .ok());
      } else if (op < 8) {
        GatewaySession v;
        v.mutable_calibration()->set_last_layer(step);
        v.mutable_cost()->set_ttl_hits(rng() % 100);
        v.set_resolved_conversation_ttl(absl::StrCat("ttl", step));
        ASSERT_TRUE(
            store
                ->Update(id, v,
                         {"calibration", "cost", "resolved_conversation_ttl"})
                .ok());
      } else if (op == 8) {
        absl::Status s = store->Delete(id);
        ASSERT_TRUE(s.ok() || absl::IsNotFound(s)) << s;
      } else {
        ASSERT_TRUE(store->Flush().ok());
      }
      if (step == 300) {
        ASSERT_TRUE(store->Compact().ok());
      }
    }
    ASSERT_TRUE(store->Close().ok());
  }
  auto lookups = [&](Store<GatewaySession>* store) {
    std::map<std::string, std::vector<std::string>> out;
    for (const std::string& fp : fingerprints) {
      out["fp:" + fp] = *store->Lookup("fingerprint", fp);
    }
    for (const std::string& hid : header_ids) {
      out["hid:" + hid] = *store->Lookup("header_session_id", hid);
    }
    return out;
  };

  auto parsing = OpenStore(/*lazy=*/false);
  ASSERT_NE(parsing, nullptr);
  EXPECT_EQ(parsing->stats().lazy_sessions, 0u);
  const auto want_states = States(parsing.get());
  const auto want_lookups = lookups(parsing.get());
  ASSERT_GT(want_states.size(), 10u);
  ASSERT_TRUE(parsing->Close().ok());
  parsing.reset();

  auto lazy = OpenStore(/*lazy=*/true);
  ASSERT_NE(lazy, nullptr);
  EXPECT_EQ(lazy->stats().lazy_sessions, want_states.size());
  EXPECT_GT(lazy->stats().lazy_bytes, 0u);
  // The indexes answer from the kept bytes, parsing nothing.
  EXPECT_EQ(lookups(lazy.get()), want_lookups);
  EXPECT_EQ(lazy->stats().lazy_sessions, want_states.size());
  EXPECT_EQ(States(lazy.get()), want_states);
  EXPECT_EQ(lazy->stats().lazy_sessions, 0u);
  // Parsed now, the indexes read the parsed states: the same answers.
  EXPECT_EQ(lookups(lazy.get()), want_lookups);
  // The first tick after the last parse frees the kept bytes.
  ASSERT_TRUE(lazy->Flush().ok());
  EXPECT_EQ(lazy->stats().lazy_bytes, 0u);
}

TEST_F(LazyRecoveryTest, FirstUseParsesTheStateAndUpdatesBuildOnIt) {
  {
    auto store = OpenStore();
    ASSERT_TRUE(
        store
            ->Update("s1", Identity("fpA", "h1"),
                     {"fingerprint", "header_session_id", "header_name"})
            .ok());
    GatewaySession v;
    v.mutable_calibration()->set_last_layer(3);
    ASSERT_TRUE(store->Update("s1", v, {"calibration"}).ok());
    ASSERT_TRUE(
        store->Update("s2", Identity("fpA", "h2"), {"fingerprint"}).ok());
    ASSERT_TRUE(store->Compact().ok());
    // After the snapshot: records the lazy states keep.
    v.mutable_calibration()->set_last_layer(4);
    ASSERT_TRUE(store->Update("s1", v, {"calibration"}).ok());
    ASSERT_TRUE(store->Update("s1", Identity("fpB", ""), {"fingerprint"}).ok());
    ASSERT_TRUE(store->Close().ok());
  }
  auto store = OpenStore();
  ASSERT_EQ(store->stats().lazy_sessions, 2u);
  EXPECT_THAT(*store->Lookup("fingerprint", "fpA"), ElementsAre("s2"));
  EXPECT_THAT(*store->Lookup("fingerprint", "fpB"), ElementsAre("s1"));
  EXPECT_THAT(*store->Lookup("header_session_id", "h1"), ElementsAre("s1"));

  // A UNIQUE value held by a lazy session is refused without parsing it.
  EXPECT_EQ(
      store->Update("s3", Identity("", "h1"), {"header_session_id"}).code(),
      absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store->stats().lazy_sessions, 2u);

  // A BATCHED update of a lazy session parses it first: the fields it does
  // not list are the recovered ones.
  GatewaySession cost;
  cost.mutable_cost()->set_ttl_hits(9);
  ASSERT_TRUE(store->Update("s1", cost, {"cost"}).ok());
  EXPECT_EQ(store->stats().lazy_sessions, 1u);
  auto s1 = store->Get("s1");
  ASSERT_TRUE(s1.ok());
  EXPECT_EQ(s1->fingerprint(), "fpB");
  EXPECT_EQ(s1->header_session_id(), "h1");
  EXPECT_EQ(s1->header_name(), "x-session-affinity");
  EXPECT_EQ(s1->calibration().last_layer(), 4);
  EXPECT_EQ(s1->cost().ttl_hits(), 9);

  // Changing an indexed field of a lazy session moves its index entry.
  ASSERT_TRUE(store
                  ->Update("s2", Identity("fpC", "h2"),
                           {"fingerprint", "header_session_id"})
                  .ok());
  EXPECT_THAT(*store->Lookup("fingerprint", "fpA"), ElementsAre());
  EXPECT_THAT(*store->Lookup("fingerprint", "fpC"), ElementsAre("s2"));
  EXPECT_EQ(store->stats().lazy_sessions, 0u);

  ASSERT_TRUE(store->Close().ok());
  store = OpenStore();
  s1 = store->Get("s1");
  ASSERT_TRUE(s1.ok());
  EXPECT_EQ(s1->calibration().last_layer(), 4);
  EXPECT_EQ(s1->cost().ttl_hits(), 9);
  EXPECT_THAT(*store->Lookup("fingerprint", "fpC"), ElementsAre("s2"));
}

TEST_F(LazyRecoveryTest, DeletingALazySessionRemovesItFromTheIndexes) {
  {
    auto store = OpenStore();
    ASSERT_TRUE(store
                    ->Update("s1", Identity("fpA", "h1"),
                             {"fingerprint", "header_session_id"})
                    .ok());
    ASSERT_TRUE(store->Compact().ok());
    ASSERT_TRUE(store->Close().ok());
  }
  auto store = OpenStore();
  ASSERT_EQ(store->stats().lazy_sessions, 1u);
  ASSERT_TRUE(store->Delete("s1").ok());
  EXPECT_EQ(store->stats().lazy_sessions, 0u);
  EXPECT_THAT(*store->Lookup("fingerprint", "fpA"), ElementsAre());
  // The unique value is free again.
  EXPECT_TRUE(store
                  ->Update("s2", Identity("fpA", "h1"),
                           {"fingerprint", "header_session_id"})
                  .ok());
  EXPECT_THAT(*store->Lookup("header_session_id", "h1"), ElementsAre("s2"));
}

// A snapshot of sessions nobody touched since Open copies their bytes; the
// next Open reads them back as they were.
TEST_F(LazyRecoveryTest, CompactingUntouchedLazySessionsKeepsThem) {
  GatewaySession want = Identity("fpA", "h1");
  want.mutable_ltm()->set_cache_text(std::string(3000, 'x'));
  {
    auto store = OpenStore();
    ASSERT_TRUE(
        store
            ->Update("s1", want,
                     {"fingerprint", "header_session_id", "header_name", "ltm"})
            .ok());
    // The tick first: its record for s1 would otherwise follow the snapshot.
    ASSERT_TRUE(store->Flush().ok());
    ASSERT_TRUE(store->Compact().ok());
    GatewaySession v;
    v.mutable_cost()->set_ttl_hits(5);
    ASSERT_TRUE(store->Update("s2", v, {"cost"}).ok());
    ASSERT_TRUE(store->Close().ok());
  }
  {
    auto store = OpenStore();
    ASSERT_EQ(store->stats().lazy_sessions, 2u);
    ASSERT_TRUE(store->Compact().ok());
    // s1 was copied as it was; s2 had a record and was parsed to write it.
    EXPECT_EQ(store->stats().lazy_sessions, 1u);
    ASSERT_TRUE(store->Close().ok());
  }
  auto store = OpenStore();
  EXPECT_EQ(store->recovery_report().records_replayed, 0u);
  auto s1 = store->Get("s1");
  ASSERT_TRUE(s1.ok());
  EXPECT_TRUE(MessageDifferencer::Equals(*s1, want)) << s1->DebugString();
  EXPECT_EQ(store->Get("s2")->cost().ttl_hits(), 5);
}

// Bytes that pass the checksums and the well-formedness check at Open but
// do not parse (a writer's bug) fail the session's first use, naming it;
// nothing is appended for a refused update, and other sessions are served.
TEST_F(LazyRecoveryTest, StateThatDoesNotParseFailsItsFirstUseWithDataLoss) {
  uint64_t lsn = 0;
  {
    auto store = OpenStore();
    ASSERT_TRUE(
        store->Update("good", Identity("fpA", "h1"), {"fingerprint"}).ok());
    ASSERT_TRUE(
        store->Update("bad", Identity("fpB", "h2"), {"fingerprint"}).ok());
    ASSERT_TRUE(store->Compact().ok());
    lsn = store->stats().snapshot_lsn;
    ASSERT_TRUE(store->Close().ok());
  }
  // The same snapshot, rewritten with "bad"'s calibration (field 6, a
  // message) holding three bytes that are no message: well-formed at the
  // top level, not parseable.
  RewriteSnapshot(lsn, {{"good", Identity("fpA", "h1").SerializeAsString()},
                        {"bad", std::string("\x32\x03\xff\xff\xff", 5)}});

  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->stats().lazy_sessions, 2u);
  auto bad = store->Get("bad");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(bad.status().message(), HasSubstr("session bad"));
  EXPECT_THAT(bad.status().message(), HasSubstr(log::SnapshotFileName(lsn)));
  const uint64_t last_lsn = store->stats().last_lsn;
  GatewaySession v;
  v.mutable_cost()->set_ttl_hits(1);
  EXPECT_EQ(store->Update("bad", v, {"cost"}).code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(store->Update("bad", Identity("fpC", ""), {"fingerprint"}).code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(store->stats().last_lsn, last_lsn);
  EXPECT_TRUE(store->health().ok());
  EXPECT_EQ(store->Get("good")->fingerprint(), "fpA");
  std::set<std::string> visited;
  store->ForEach([&](absl::string_view id, const GatewaySession&) {
    visited.insert(std::string(id));
  });
  EXPECT_THAT(visited, ElementsAre("good"));
  ASSERT_TRUE(store->Close().ok());

  // A parsing Open refuses the snapshot, as it always did.
  auto parsing = Store<GatewaySession>::Open(MakeOptions(false), kDir);
  EXPECT_EQ(parsing.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(parsing.status().message(), HasSubstr("session bad"));
}

// Bytes cut short inside a state fail the well-formedness check: the lazy
// Open refuses that snapshot as the parsing one does.
TEST_F(LazyRecoveryTest, StateThatIsNotWellFormedFailsTheSnapshotAtOpen) {
  uint64_t lsn = 0;
  {
    auto store = OpenStore();
    ASSERT_TRUE(
        store->Update("s1", Identity("fpA", "h1"), {"fingerprint"}).ok());
    ASSERT_TRUE(store->Compact().ok());
    lsn = store->stats().snapshot_lsn;
    ASSERT_TRUE(store->Close().ok());
  }
  // Field 1, 16 bytes long, of which 2 are there.
  RewriteSnapshot(lsn, {{"s1", std::string("\x0a\x10"
                                           "ab",
                                           4)}});
  for (bool lazy : {true, false}) {
    auto store = Store<GatewaySession>::Open(MakeOptions(lazy), kDir);
    EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << lazy;
    EXPECT_THAT(store.status().message(), HasSubstr("session s1")) << lazy;
  }
}

// A log tail larger than the snapshot (plus the slack) is applied at Open
// rather than kept: each session with records is parsed as its first record
// comes, the others stay lazy. Both give the same states.
TEST_F(LazyRecoveryTest, LongTailIsAppliedAtOpenAndGivesTheSameStates) {
  WriteSnapshotAndTail(/*sessions=*/20, /*records=*/200, /*with_records=*/3);
  auto parsing = OpenStore(/*lazy=*/false);
  const auto want = States(parsing.get());
  ASSERT_TRUE(parsing->Close().ok());
  parsing.reset();

  Options o = MakeOptions(/*lazy=*/true);
  o.lazy_replay_slack_bytes = 1000;
  auto store = Store<GatewaySession>::Open(o, kDir);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_FALSE((*store)->recovery_report().lazy_replay);
  // s0..s2 had records (parsed by the replay); the 17 others are lazy.
  EXPECT_EQ((*store)->stats().lazy_sessions, 17u);
  EXPECT_THAT(*(*store)->Lookup("fingerprint", "fpx199"), ElementsAre("s1"));
  EXPECT_THAT(*(*store)->Lookup("fingerprint", "fp7"), ElementsAre("s7"));
  EXPECT_EQ(States(store->get()), want);
  ASSERT_TRUE((*store)->Close().ok());
  store->reset();

  // With the default slack the same tail is kept.
  auto kept = OpenStore(/*lazy=*/true);
  EXPECT_TRUE(kept->recovery_report().lazy_replay);
  EXPECT_EQ(kept->stats().lazy_sessions, 20u);
  EXPECT_EQ(States(kept.get()), want);
}

// When the replay parsed every state, Open lets go of the kept bytes at
// once.
TEST_F(LazyRecoveryTest, NothingIsKeptWhenTheReplayParsedEveryState) {
  WriteSnapshotAndTail(/*sessions=*/3, /*records=*/60, /*with_records=*/3);
  Options o = MakeOptions(/*lazy=*/true);
  o.lazy_replay_slack_bytes = 0;
  auto store = Store<GatewaySession>::Open(o, kDir);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_FALSE((*store)->recovery_report().lazy_replay);
  const Stats st = (*store)->stats();
  EXPECT_EQ(st.lazy_sessions, 0u);
  EXPECT_EQ(st.lazy_bytes, 0u);
  EXPECT_EQ(st.lazy_mapped_bytes, 0u);
}

// A lazy Open reads the log once and keeps tick entries before knowing
// whether their tick commits; the entries of a tick a crash left open (then
// aborted by that Open) count for nothing: not in the states, not in the
// indexes, and sessions only they created do not exist.
TEST_F(LazyRecoveryTest, EntriesOfATickThatNeverCommittedCountForNothing) {
  UpdateOptions batched;
  batched.durability = BATCHED;
  uint64_t before = 0, after = 0;
  {
    auto store = OpenStore();
    ASSERT_TRUE(store
                    ->Update("a", Identity("fpA", "h1"),
                             {"fingerprint", "header_session_id"})
                    .ok());
    ASSERT_TRUE(store->Compact().ok());
    // A committed tick: "a" gets fpB (an indexed field overridden to
    // BATCHED) and "b" is created.
    ASSERT_TRUE(
        store->Update("a", Identity("fpB", ""), {"fingerprint"}, batched).ok());
    ASSERT_TRUE(
        store->Update("b", Identity("fpB", ""), {"fingerprint"}, batched).ok());
    ASSERT_TRUE(store->Flush().ok());
    // The tick the crash interrupts: "a" to fpC, c0..c49 created (enough
    // entries that crashes cut the tick between them).
    ASSERT_TRUE(
        store->Update("a", Identity("fpC", ""), {"fingerprint"}, batched).ok());
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(store
                      ->Update(absl::StrCat("c", i), Identity("fpC", ""),
                               {"fingerprint"}, batched)
                      .ok());
    }
    before = fs_->op_count();
    ASSERT_TRUE(store->Flush().ok());
    after = fs_->op_count();
  }
  bool saw_torn = false, saw_aborted = false;
  for (uint64_t op = before; op <= after; ++op) {
    auto at = fs_->StateAtOp(op);
    ASSERT_TRUE(at.ok());
    // Unsynced bytes cut at a random point: part of the tick survives.
    FIFS::CrashOptions c;
    c.mode = FIFS::CrashMode::kCutUnsynced;
    c.seed = op;
    std::unique_ptr<FIFS> crashed = (*at)->Crash(c);
    // Twice: the first Open finds the tick open and aborts it in the log;
    // the second reads that abort.
    for (int round = 0; round < 2; ++round) {
      SCOPED_TRACE(absl::StrCat("op ", op, " round ", round));
      Options o = MakeOptions(/*lazy=*/true);
      o.fs = crashed.get();
      auto store = Store<GatewaySession>::Open(o, kDir);
      ASSERT_TRUE(store.ok()) << store.status();
      const bool committed = (*store)->Contains("c0");
      saw_torn |= !committed;
      // (A crash before the tick's first record leaves no tick to abort.)
      if ((*store)->recovery_report().ticks_aborted > 0) {
        EXPECT_FALSE(committed);
        saw_aborted = true;
      }
      // The indexes, before anything is parsed.
      using Ids = std::vector<std::string>;
      Ids want_c;
      if (committed) {
        want_c.push_back("a");
        for (int i = 0; i < 50; ++i) want_c.push_back(absl::StrCat("c", i));
        std::sort(want_c.begin(), want_c.end());
      }
      const Ids want_b = committed ? Ids{"b"} : Ids{"a", "b"};
      EXPECT_EQ(*(*store)->Lookup("fingerprint", "fpC"), want_c);
      EXPECT_EQ(*(*store)->Lookup("fingerprint", "fpB"), want_b);
      EXPECT_EQ((*store)->Get("a")->fingerprint(), committed ? "fpC" : "fpB");
      EXPECT_EQ((*store)->stats().sessions, committed ? 52u : 2u);
      ASSERT_TRUE((*store)->Close().ok());
    }
  }
  EXPECT_TRUE(saw_torn);
  EXPECT_TRUE(saw_aborted);
}

// On a real file system the snapshot is mapped, not copied: states point
// into the mapping until a compaction, which copies them to the heap before
// it deletes the file; the bytes go with the last lazy state.
TEST(LazyRecoveryPosixTest, MappedSnapshotServesStatesUntilTheLastIsParsed) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir =
      absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/lazy_mapped_", getpid());
  Options o;
  o.background_thread = false;
  std::map<std::string, std::string> want;
  {
    auto store = Store<GatewaySession>::Open(o, dir);
    ASSERT_TRUE(store.ok()) << store.status();
    for (int i = 0; i < 300; ++i) {
      GatewaySession s;
      s.set_fingerprint(absl::StrCat("fp", i % 7));
      s.set_header_session_id(absl::StrCat("h", i));
      s.mutable_ltm()->set_cache_text(std::string(i, 'x'));
      ASSERT_TRUE((*store)
                      ->Update(absl::StrCat("s", i), s,
                               {"fingerprint", "header_session_id", "ltm"})
                      .ok());
      want[absl::StrCat("s", i)] = s.DebugString();
    }
    ASSERT_TRUE((*store)->Flush().ok());
    ASSERT_TRUE((*store)->Compact().ok());
    ASSERT_TRUE((*store)->Close().ok());
  }
  auto store = Store<GatewaySession>::Open(o, dir);
  ASSERT_TRUE(store.ok()) << store.status();
  Stats st = (*store)->stats();
  EXPECT_EQ(st.lazy_sessions, 300u);
  EXPECT_GT(st.lazy_mapped_bytes, 300u * 100);
  EXPECT_THAT(*(*store)->Lookup("header_session_id", "h42"),
              ElementsAre("s42"));
  EXPECT_EQ((*store)->Lookup("fingerprint", "fp3")->size(), 43u);
  // A compaction writes a new snapshot (copying the untouched states from
  // the mapping) and deletes the mapped file.
  GatewaySession v;
  v.mutable_cost()->set_ttl_hits(1);
  ASSERT_TRUE((*store)->Update("s0", v, {"cost"}).ok());
  want["s0"] = [&] {
    GatewaySession s0;
    s0.set_fingerprint("fp0");
    s0.set_header_session_id("h0");
    s0.mutable_ltm();
    s0.mutable_cost()->set_ttl_hits(1);
    return s0.DebugString();
  }();
  ASSERT_TRUE((*store)->Flush().ok());
  ASSERT_TRUE((*store)->Compact().ok());
  // The untouched states were copied out of the mapping before its file
  // was deleted: they are still lazy, and the mapping is gone.
  st = (*store)->stats();
  EXPECT_EQ(st.lazy_sessions, 299u);
  EXPECT_EQ(st.lazy_mapped_bytes, 0u);
  EXPECT_GT(st.lazy_bytes, 0u);
  std::map<std::string, std::string> got;
  (*store)->ForEach([&](absl::string_view id, const GatewaySession& s) {
    got[std::string(id)] = s.DebugString();
  });
  EXPECT_EQ(got, want);
  ASSERT_TRUE((*store)->Flush().ok());
  st = (*store)->stats();
  EXPECT_EQ(st.lazy_sessions, 0u);
  EXPECT_EQ(st.lazy_mapped_bytes, 0u);
  EXPECT_EQ(st.lazy_bytes, 0u);
  ASSERT_TRUE((*store)->Close().ok());
  store->reset();
  // And what the compaction wrote reads back the same.
  auto again = Store<GatewaySession>::Open(o, dir);
  ASSERT_TRUE(again.ok()) << again.status();
  got.clear();
  (*again)->ForEach([&](absl::string_view id, const GatewaySession& s) {
    got[std::string(id)] = s.DebugString();
  });
  EXPECT_EQ(got, want);
}

// The indexes are built from the snapshot and kept current by the replay:
// a record that changes an indexed field moves its session (under the
// index lock) while other workers chain records that change nothing
// indexed onto sessions holding the same MULTI key, whose states the index
// reads to compare keys (TSan runs this: those words are atomic). The
// answers are the parsing Open's, whatever the number of workers.
TEST_F(LazyRecoveryTest, ReplayKeepsIndexesBuiltFromTheSnapshotCurrent) {
  constexpr int kSessions = 120;
  {
    auto store = OpenStore();
    for (int i = 0; i < kSessions; ++i) {
      ASSERT_TRUE(store
                      ->Update(absl::StrCat("s", i),
                               Identity(i % 2 == 0 ? "shared" : "other",
                                        absl::StrCat("h", i)),
                               {"fingerprint", "header_session_id"})
                      .ok());
    }
    ASSERT_TRUE(store->Compact().ok());
    UpdateOptions each_a_record;  // not coalesced by a tick
    each_a_record.durability = IMMEDIATE;
    for (int k = 0; k < 1500; ++k) {
      const std::string id = absl::StrCat("s", (k * 7) % kSessions);
      if (k % 5 == 0) {
        // Away from "shared" and back, and a header id handed over.
        const std::string fp =
            k % 10 == 0 ? absl::StrCat("fp", k % 40) : "shared";
        ASSERT_TRUE(store
                        ->Update(id, Identity(fp, absl::StrCat("hk", k)),
                                 {"fingerprint", "header_session_id"},
                                 each_a_record)
                        .ok());
      } else if (k % 97 == 0) {
        ASSERT_TRUE(store->Delete(id).ok());
      } else {
        GatewaySession v;
        v.mutable_cost()->set_ttl_hits(k);
        ASSERT_TRUE(store->Update(id, v, {"cost"}, each_a_record).ok());
      }
    }
    ASSERT_TRUE(store->Close().ok());
  }
  auto lookups = [&](Store<GatewaySession>* store) {
    std::map<std::string, std::vector<std::string>> out;
    for (const char* fp : {"shared", "other"}) {
      out[fp] = *store->Lookup("fingerprint", fp);
    }
    for (int k = 0; k < 40; ++k) {
      const std::string fp = absl::StrCat("fp", k);
      out[fp] = *store->Lookup("fingerprint", fp);
    }
    for (int k = 0; k < 1500; ++k) {
      const std::string h = absl::StrCat("hk", k);
      out[h] = *store->Lookup("header_session_id", h);
    }
    for (int i = 0; i < kSessions; ++i) {
      const std::string h = absl::StrCat("h", i);
      out[h] = *store->Lookup("header_session_id", h);
    }
    return out;
  };
  auto parsing = OpenStore(/*lazy=*/false);
  ASSERT_NE(parsing, nullptr);
  const auto want = lookups(parsing.get());
  EXPECT_GT(want.at("shared").size(), 10u);
  EXPECT_FALSE(want.at("fp0").empty());
  ASSERT_TRUE(parsing->Close().ok());
  parsing.reset();
  for (size_t workers : {1, 3}) {
    SCOPED_TRACE(absl::StrCat(workers, " recovery workers"));
    Options o = MakeOptions(/*lazy=*/true);
    o.recovery_threads = workers;
    auto store = Store<GatewaySession>::Open(o, kDir);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_TRUE((*store)->recovery_report().lazy_replay);
    EXPECT_EQ(lookups(store->get()), want);
    ASSERT_TRUE((*store)->Close().ok());
  }
}

// First uses on several threads while others read the indexes, whose keys
// move from the kept bytes to the parsed states meanwhile (TSan runs this).
TEST_F(LazyRecoveryTest, ConcurrentFirstUsesAndIndexReads) {
  constexpr int kSessions = 200;
  {
    auto store = OpenStore();
    for (int i = 0; i < kSessions; ++i) {
      ASSERT_TRUE(
          store
              ->Update(absl::StrCat("s", i),
                       Identity(absl::StrCat("fp", i), absl::StrCat("h", i)),
                       {"fingerprint", "header_session_id"})
              .ok());
    }
    ASSERT_TRUE(store->Compact().ok());
    // Half the sessions also get a record after the snapshot.
    for (int i = 0; i < kSessions; i += 2) {
      GatewaySession v;
      v.mutable_cost()->set_ttl_hits(i);
      ASSERT_TRUE(store->Update(absl::StrCat("s", i), v, {"cost"}).ok());
    }
    ASSERT_TRUE(store->Close().ok());
  }
  auto store = OpenStore();
  ASSERT_EQ(store->stats().lazy_sessions, static_cast<uint64_t>(kSessions));
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int k = 0; k < 400; ++k) {
        const int i = static_cast<int>(rng() % kSessions);
        const std::string id = absl::StrCat("s", i);
        if (t < 2) {
          auto got = store->Get(id);
          if (!got.ok() || got->fingerprint() != absl::StrCat("fp", i) ||
              got->cost().ttl_hits() != (i % 2 == 0 ? i : 0)) {
            ++wrong;
          }
          GatewaySession v;
          v.set_resolved_conversation_ttl("1h");
          if (!store->Update(id, v, {"resolved_conversation_ttl"}).ok()) {
            ++wrong;
          }
        } else {
          auto by_fp = store->Lookup("fingerprint", absl::StrCat("fp", i));
          auto by_h = store->Lookup("header_session_id", absl::StrCat("h", i));
          if (!by_fp.ok() || *by_fp != std::vector<std::string>{id} ||
              !by_h.ok() || *by_h != std::vector<std::string>{id}) {
            ++wrong;
          }
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_LT(store->stats().lazy_sessions, static_cast<uint64_t>(kSessions));
}

}  // namespace
}  // namespace walstate
