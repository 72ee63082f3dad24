// The oracle must pass what the engine promises and catch what it does not:
// these tests build stores and ack logs by hand with each kind of loss, and
// run the real workload (with a resume) to show a clean history passes.
#include "tools/workload/oracle.h"

#include <stdlib.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tools/workload/ack_log.h"
#include "tools/workload/gateway_model.h"
#include "tools/workload/runner.h"

namespace walstate {
namespace workload {
namespace {

std::string NewTempDir() {
  std::string tmpl = ::testing::TempDir() + "/oracle-XXXXXX";
  EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
  return tmpl;
}

void WriteLog(const std::string& path, const std::vector<std::string>& lines) {
  std::ofstream out(path);
  out << "H walstate-acklog 1 10 1\nR 1 0 1\n";
  for (const std::string& l : lines) out << l << "\n";
}

const GatewayModel& model = AckLogModel();

std::string SessionId(uint32_t idx) { return model.SessionId(idx); }

Identity CreateIdentity(uint32_t idx, uint64_t seq) {
  return model.CreateIdentity(idx, seq);
}

std::string HashOf(const Identity& id) {
  return absl::StrCat(absl::Hex(IdentityHash(id)));
}

class OracleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = NewTempDir();
    dir_ = root_ + "/data";
    log_ = root_ + "/ack.log";
    Options options;
    options.background_thread = false;
    auto store = Store<GatewaySession>::Open(options, dir_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  void Create(uint32_t idx, uint64_t seq) {
    GatewaySession v;
    SetIdentity(CreateIdentity(idx, seq), &v);
    ASSERT_TRUE(
        store_->Update(SessionId(idx), v, FieldNames(kIdentityFields)).ok());
  }
  void Turn(uint32_t idx, uint64_t ver) {
    GatewaySession v;
    const uint32_t mask = model.TurnMask(idx, ver, false);
    model.Turn(idx, ver, mask, &v);
    ASSERT_TRUE(store_->Update(SessionId(idx), v, FieldNames(mask)).ok());
  }

  CheckResult Check(const std::vector<std::string>& lines) {
    WriteLog(log_, lines);
    Oracle oracle;
    absl::Status s = oracle.Load(log_);
    EXPECT_TRUE(s.ok()) << s;
    return oracle.Check(*store_);
  }

  std::string root_, dir_, log_;
  std::unique_ptr<Store<GatewaySession>> store_;
};

TEST_F(OracleTest, AcknowledgedCreatePresentPasses) {
  Create(3, 1);
  CheckResult r = Check(
      {absl::StrCat("I 3 1 ", HashOf(CreateIdentity(3, 1)), " 0"), "A 3 1 0"});
  EXPECT_TRUE(r.ok()) << r.problems[0];
  EXPECT_EQ(r.acked, 1u);
  EXPECT_EQ(r.sessions_recovered, 1u);
}

TEST_F(OracleTest, AcknowledgedCreateMissingIsLost) {
  CheckResult r = Check(
      {absl::StrCat("I 3 1 ", HashOf(CreateIdentity(3, 1)), " 0"), "A 3 1 0"});
  EXPECT_EQ(r.lost, 1u);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.problems[0].find("LOST"), std::string::npos) << r.problems[0];
}

TEST_F(OracleTest, PendingOpMayOrMayNotBeThere) {
  const std::vector<std::string> lines = {
      absl::StrCat("I 3 1 ", HashOf(CreateIdentity(3, 1)), " 0")};
  CheckResult r = Check(lines);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.in_flight, 1u);
  EXPECT_EQ(r.in_flight_applied, 0u);
  Create(3, 1);
  r = Check(lines);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.in_flight_applied, 1u);
}

TEST_F(OracleTest, OlderIdentityThanAcknowledgedIsLost) {
  Create(4, 1);
  uint32_t mask = 0;
  Identity next = model.RekeyIdentity(CreateIdentity(4, 1), 4, 2, &mask);
  CheckResult r = Check({
      absl::StrCat("I 4 1 ", HashOf(CreateIdentity(4, 1)), " 0"),
      "A 4 1 0",
      absl::StrCat("I 4 2 ", HashOf(next), " 0"),
      "A 4 2 0",
  });
  EXPECT_EQ(r.lost, 1u);
}

TEST_F(OracleTest, UndoneDeleteIsCaught) {
  Create(5, 1);
  CheckResult r = Check({
      absl::StrCat("I 5 1 ", HashOf(CreateIdentity(5, 1)), " 0"),
      "A 5 1 0",
      "D 5 2 0 0",
      "A 5 2 0",
  });
  EXPECT_EQ(r.lost, 1u);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.problems[0].find("undone"), std::string::npos) << r.problems[0];
}

TEST_F(OracleTest, BatchedOlderThanCommittedTickIsCaught) {
  Create(6, 1);
  Turn(6, 1);
  Turn(6, 2);
  const std::vector<std::string> base = {
      absl::StrCat("I 6 1 ", HashOf(CreateIdentity(6, 1)), " 0"), "A 6 1 0",
      "b 6 1 10", "b 6 2 20", "b 6 3 30"};
  // Turn 3 never reached the store: fine while no tick claims it...
  std::vector<std::string> lines = base;
  lines.push_back("T 25 25 F 6:2");
  CheckResult r = Check(lines);
  EXPECT_TRUE(r.ok()) << r.problems[0];
  EXPECT_EQ(r.batched_lost, 1u);
  EXPECT_EQ(r.oldest_lost_ms, 30);
  // ...but a lost turn a committed tick covered is lost data.
  lines = base;
  lines.push_back("T 35 35 F 6:3");
  r = Check(lines);
  EXPECT_EQ(r.batched_bad, 1u);
}

TEST_F(OracleTest, TornBatchedStateIsCaught) {
  Create(7, 1);
  Turn(7, 1);
  // Cost of turn 2 with the calibration of turn 1: half a turn.
  GatewaySession v;
  model.Turn(7, 2, model.TurnMask(7, 2, false), &v);
  ASSERT_TRUE(store_->Update(SessionId(7), v, {"cost"}).ok());
  CheckResult r = Check({
      absl::StrCat("I 7 1 ", HashOf(CreateIdentity(7, 1)), " 0"),
      "A 7 1 0",
      "b 7 1 0",
      "b 7 2 0",
  });
  EXPECT_EQ(r.batched_bad, 1u);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.problems[0].find("calibration"), std::string::npos)
      << r.problems[0];
}

TEST_F(OracleTest, TurnLostInAnEarlierCrashMustNotReturn) {
  Create(8, 1);
  Turn(8, 1);
  Turn(8, 2);
  // A restart resolved the session at turn 1: turn 2 was lost then.
  CheckResult r = Check({
      absl::StrCat("I 8 1 ", HashOf(CreateIdentity(8, 1)), " 0"),
      "A 8 1 0",
      "b 8 1 0",
      "b 8 2 0",
      absl::StrCat("S 8 1 ", HashOf(CreateIdentity(8, 1)), " 0 1 3"),
  });
  EXPECT_EQ(r.batched_bad, 1u);
}

TEST_F(OracleTest, UnknownSessionIsCaught) {
  GatewaySession v;
  v.set_fingerprint("x");
  ASSERT_TRUE(store_->Update("intruder", v, {"fingerprint"}).ok());
  CheckResult r = Check({});
  EXPECT_EQ(r.other_bad, 1u);
}

TEST_F(OracleTest, MalformedLogIsRejected) {
  {
    std::ofstream out(log_);
    out << "H walstate-acklog 1 10 1\nA 3 1 0\n";  // ack of nothing
  }
  Oracle oracle;
  EXPECT_FALSE(oracle.Load(log_).ok());
}

// The real workload, a clean close, then a resumed run: the oracle passes
// both and the resume's S lines keep the model consistent.
TEST(OracleWorkloadTest, RunResumeAndCheck) {
  const std::string root = NewTempDir();
  const std::string dir = root + "/data", log_path = root + "/ack.log";
  RunConfig config;
  config.sessions = 60;
  config.threads = 4;
  config.duration = absl::Milliseconds(1200);
  config.mean_op_interval = absl::Milliseconds(20);
  config.ramp = absl::Milliseconds(100);
  config.p_delete = 0.05;
  config.p_rekey = 0.05;
  config.recreate_pause = absl::Milliseconds(50);
  config.tick_record_interval = absl::Milliseconds(50);
  config.p_explicit_flush = 0.5;
  config.compact_interval = absl::Milliseconds(300);
  Options options;
  options.flush_interval = absl::Milliseconds(50);
  options.max_segment_bytes = 128 << 10;
  for (int run = 1; run <= 2; ++run) {
    auto log = AckLogWriter::Open(log_path);
    ASSERT_TRUE(log.ok()) << log.status();
    std::vector<SessionStart> start(config.sessions);
    auto store = Store<GatewaySession>::Open(options, dir);
    ASSERT_TRUE(store.ok()) << store.status();
    if (run == 1) {
      ASSERT_TRUE((*log)->Append("H walstate-acklog 1 60 9").ok());
    } else {
      Oracle oracle;
      ASSERT_TRUE(oracle.Load(log_path).ok());
      CheckResult r = oracle.Check(**store);
      ASSERT_TRUE(r.ok()) << r.problems[0];
      std::vector<std::string> lines;
      start = oracle.Resolve(**store, &lines);
      for (const std::string& l : lines) ASSERT_TRUE((*log)->Append(l).ok());
    }
    ASSERT_TRUE((*log)->Append(absl::StrCat("R ", run, " 0 0")).ok());
    RunCounters counters;
    config.seed = 9 + run;
    absl::Status s =
        RunWorkload(config, store->get(), log->get(), start, &counters);
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_GT(counters.turns.load(), 100u);
    EXPECT_GT(counters.immediate_acked.load(), 20u);
    EXPECT_GT(counters.deletes_acked.load(), 0u);
  }
  Oracle oracle;
  ASSERT_TRUE(oracle.Load(log_path).ok());
  Options reopen;
  reopen.background_thread = false;
  auto store = Store<GatewaySession>::Open(reopen, dir);
  ASSERT_TRUE(store.ok()) << store.status();
  CheckResult r = oracle.Check(**store);
  EXPECT_TRUE(r.ok()) << r.problems[0];
  // A clean Close() committed every turn.
  EXPECT_EQ(r.batched_lost, 0u);
  EXPECT_EQ(r.in_flight, 0u);
  EXPECT_EQ(oracle.runs(), 2);
}

}  // namespace
}  // namespace workload
}  // namespace walstate
