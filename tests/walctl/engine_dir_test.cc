// walctl on data directories written by the engine with a known history:
// golden text output, parsed --json, show --at-lsn against the engine's own
// states, compact, repair, and exit codes on damaged inputs.
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/log/format.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "proto/example/gateway.pb.h"
#include "tests/walctl/engine_history.h"
#include "tests/walctl/walctl_test_util.h"
#include "walstate/walstate.h"

namespace walstate {
namespace walctl_test {
namespace {

using example::GatewaySession;
using google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;
using ::testing::Not;

const char* const kSeg1 = "seg-0000000000000001.wal";
const char* const kSnap9 = "snap-0000000000000009.snap";

Options EngineOptions() {
  Options o;
  o.background_thread = false;
  o.create_if_missing = false;
  return o;
}

// Every session of the directory as the engine recovers it.
std::map<std::string, GatewaySession> EngineState(const std::string& dir) {
  std::map<std::string, GatewaySession> out;
  auto store = Store<GatewaySession>::Open(EngineOptions(), dir);
  EXPECT_TRUE(store.ok()) << store.status();
  if (!store.ok()) return out;
  (*store)->ForEach([&](absl::string_view s, const GatewaySession& m) {
    out[std::string(s)] = m;
  });
  EXPECT_TRUE((*store)->Close().ok());
  return out;
}

// `show --json`'s state parsed back into the message.
bool ShowState(const std::string& dir, const std::string& session,
               const std::string& at_lsn, GatewaySession* out, int* code) {
  std::vector<std::string> args = {"show", dir, session, "--json"};
  if (!at_lsn.empty()) {
    args.push_back("--at-lsn");
    args.push_back(at_lsn);
  }
  RunResult r = RunWalctl(args);
  *code = r.code;
  if (r.code != 0) return false;
  auto v = ParseJson(r.out);
  const auto& fields = v.struct_value().fields();
  EXPECT_EQ(fields.at("session").string_value(), session);
  std::string state;
  EXPECT_TRUE(
      google::protobuf::util::MessageToJsonString(fields.at("state"), &state)
          .ok());
  return google::protobuf::util::JsonStringToMessage(state, out).ok();
}

class EngineDirTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(NewTempDir("history"));
    checkpoints_ = new std::vector<Checkpoint>();
    absl::Status s = WriteKnownHistory(*dir_, checkpoints_);
    ASSERT_TRUE(s.ok()) << s;
  }
  // A private copy to damage or change.
  std::string Copy(const std::string& name) {
    std::string dir = NewTempDir(name);
    CopyDir(*dir_, dir);
    return dir;
  }
  static std::string* dir_;
  static std::vector<Checkpoint>* checkpoints_;
};
std::string* EngineDirTest::dir_ = nullptr;
std::vector<Checkpoint>* EngineDirTest::checkpoints_ = nullptr;

// ---------------------------------------------------------------------------
// Golden text output.

void ExpectGolden(const std::string& name, const std::string& actual) {
  // WALCTL_GOLDEN_OUT=<dir>: write what the tool printed, to review and copy
  // into tests/walctl/testdata/ after a deliberate change.
  if (const char* out = std::getenv("WALCTL_GOLDEN_OUT")) {
    WriteFile(absl::StrCat(out, "/", name), actual);
  }
  const std::string path = "tests/walctl/testdata/" + name;
  ASSERT_TRUE(Exists(path)) << path;
  EXPECT_EQ(actual, ReadFile(path)) << "golden " << name << " differs";
}

struct GoldenCase {
  const char* golden;
  std::vector<std::string> args;  // "$DIR" is replaced by the directory
  int code;
};

TEST_F(EngineDirTest, GoldenText) {
  const std::vector<GoldenCase> cases = {
      {"dump.golden", {"dump", "$DIR"}, 0},
      {"dump_session_s1.golden", {"dump", "$DIR", "--session", "s1"}, 0},
      {"dump_ticks.golden",
       {"dump", "$DIR", "--type", "tick-begin,tick-commit", "--from-lsn", "6"},
       0},
      {"verify.golden", {"verify", "$DIR"}, 0},
      {"stats.golden", {"stats", "$DIR"}, 0},
      {"show_s1.golden", {"show", "$DIR", "s1"}, 0},
      {"show_s2_at_8.golden", {"show", "$DIR", "s2", "--at-lsn", "8"}, 0},
      {"repair_clean.golden", {"repair", "$DIR"}, 0},
  };
  for (const GoldenCase& c : cases) {
    std::vector<std::string> args;
    for (const std::string& a : c.args) {
      args.push_back(a == "$DIR" ? *dir_ : a);
    }
    RunResult r = RunWalctl(args);
    EXPECT_EQ(r.code, c.code) << c.golden << ": " << r.err;
    EXPECT_EQ(r.err, "") << c.golden;
    ExpectGolden(c.golden, ReplaceAll(r.out, *dir_, "$DIR"));
  }
}

TEST_F(EngineDirTest, GoldenDamaged) {
  // A torn tail and a damaged record: verify and repair explain both.
  std::string torn = Copy("golden-torn");
  TruncateFile(torn + "/" + kSeg1, FileSize(torn + "/" + kSeg1) - 7);
  RunResult r = RunWalctl({"verify", torn});
  EXPECT_EQ(r.code, 1);
  ExpectGolden("verify_torn.golden", ReplaceAll(r.out, torn, "$DIR"));
  r = RunWalctl({"repair", torn});
  EXPECT_EQ(r.code, 1);
  ExpectGolden("repair_torn.golden", ReplaceAll(r.out, torn, "$DIR"));

  std::string bad = Copy("golden-bad");
  // The tick-begin record of the second tick (lsn 6), from dump.golden.
  FlipByte(bad + "/" + kSeg1, 1888 + 3);
  r = RunWalctl({"verify", bad});
  EXPECT_EQ(r.code, 2);
  ExpectGolden("verify_damaged.golden", ReplaceAll(r.out, bad, "$DIR"));
  r = RunWalctl({"repair", bad, "--salvage"});
  EXPECT_EQ(r.code, 2);
  ExpectGolden("repair_damaged.golden", ReplaceAll(r.out, bad, "$DIR"));
}

// ---------------------------------------------------------------------------
// --json, parsed.

TEST_F(EngineDirTest, DumpJson) {
  RunResult r = RunWalctl({"dump", *dir_, "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  int records = 0, snapshot_records = 0;
  std::map<std::string, int> by_type;
  uint64_t last_lsn = 0;
  for (const std::string& line : Lines(r.out)) {
    auto v = ParseJson(line);
    const auto& f = v.struct_value().fields();
    if (f.at("entry").string_value() != "record") continue;
    const std::string type = f.at("type").string_value();
    by_type[type]++;
    const uint64_t lsn = static_cast<uint64_t>(f.at("lsn").number_value());
    if (type == "manifest") continue;
    EXPECT_GE(lsn, last_lsn) << "LSN order: " << line;
    last_lsn = lsn;
    if (f.count("ordinal")) {
      ++snapshot_records;
      EXPECT_EQ(lsn, 9u);
      continue;
    }
    ++records;
    if (type == "update") {
      EXPECT_EQ(f.at("tier").string_value(), "immediate");
      EXPECT_TRUE(f.count("set"));
    }
    if (type == "tick-entry") {
      EXPECT_EQ(f.at("tier").string_value(), "batched");
      EXPECT_GT(f.at("tick").number_value(), 0);
    }
    if (lsn == 4) {
      // s1's calibration, decoded through the stored schema.
      EXPECT_EQ(f.at("session").string_value(), "s1");
      const auto& set = f.at("set").struct_value().fields();
      EXPECT_EQ(set.at("calibration")
                    .struct_value()
                    .fields()
                    .at("last_layer")
                    .number_value(),
                2);
      EXPECT_EQ(set.at("resolved_conversation_ttl").string_value(), "5m");
    }
  }
  EXPECT_EQ(records, 14);
  EXPECT_EQ(snapshot_records, 2);
  EXPECT_EQ(by_type["update"], 4);
  EXPECT_EQ(by_type["tick-entry"], 3);
  EXPECT_EQ(by_type["delete"], 1);
  EXPECT_EQ(by_type["manifest"], 1);
  EXPECT_EQ(by_type["snapshot-session"], 1);

  // --hex adds the raw payload.
  r = RunWalctl({"dump", *dir_, "--json", "--hex", "--from-lsn", "9",
                 "--to-lsn", "9", "--type", "delete"});
  std::vector<std::string> lines;
  for (const std::string& line : Lines(r.out)) {
    if (line.find("\"record\"") != std::string::npos) lines.push_back(line);
  }
  ASSERT_EQ(lines.size(), 1u) << r.out;
  auto v = ParseJson(lines[0]);
  EXPECT_EQ(v.struct_value().fields().at("hex").string_value(),
            "0a0273321001");  // session "s2", reason API
}

TEST_F(EngineDirTest, VerifyAndStatsJson) {
  RunResult r = RunWalctl({"verify", *dir_, "--json"});
  ASSERT_EQ(r.code, 0);
  auto v = ParseJson(r.out);
  const auto& f = v.struct_value().fields();
  EXPECT_EQ(f.at("result").string_value(), "clean");
  EXPECT_EQ(f.at("exit_code").number_value(), 0);
  EXPECT_EQ(f.at("records").number_value(), 14);
  EXPECT_EQ(f.at("last_lsn").number_value(), 14);
  EXPECT_EQ(f.at("problems").list_value().values_size(), 0);
  EXPECT_EQ(f.at("last_good").struct_value().fields().at("lsn").number_value(),
            14);
  ASSERT_EQ(f.at("snapshots").list_value().values_size(), 1);
  const auto& snap = f.at("snapshots").list_value().values(0).struct_value();
  EXPECT_EQ(snap.fields().at("role").string_value(), "current");
  EXPECT_TRUE(snap.fields().at("ok").bool_value());

  r = RunWalctl({"stats", *dir_, "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  v = ParseJson(r.out);
  const auto& s = v.struct_value().fields();
  EXPECT_EQ(s.at("sessions").number_value(), 2);  // s1 and s3; s2 deleted
  EXPECT_EQ(s.at("first_lsn").number_value(), 1);
  EXPECT_EQ(s.at("last_lsn").number_value(), 14);
  const auto& tiers = s.at("records_by_tier").struct_value().fields();
  EXPECT_EQ(tiers.at("immediate").number_value(), 4);
  EXPECT_EQ(tiers.at("batched").number_value(), 3);
  const auto& types = s.at("records_by_type").struct_value().fields();
  EXPECT_EQ(types.at("tick-commit").number_value(), 3);
  EXPECT_EQ(s.at("total_bytes").number_value(),
            FileSize(*dir_ + "/" + kSeg1) + FileSize(*dir_ + "/" + kSnap9) +
                FileSize(*dir_ + "/MANIFEST"));
  EXPECT_TRUE(
      s.at("compaction").struct_value().fields().count("reclaim_bytes"));
}

// ---------------------------------------------------------------------------
// show: equal to the engine's state at every point of the history.

TEST_F(EngineDirTest, ShowAtEveryLsnEqualsTheEngine) {
  ASSERT_FALSE(checkpoints_->empty());
  for (const Checkpoint& c : *checkpoints_) {
    for (const std::string session : {"s1", "s2", "s3"}) {
      GatewaySession shown;
      int code = -1;
      bool found =
          ShowState(*dir_, session, absl::StrCat(c.lsn), &shown, &code);
      auto it = c.sessions.find(session);
      if (it == c.sessions.end()) {
        EXPECT_EQ(code, 1) << session << " at " << c.lsn;
        continue;
      }
      ASSERT_TRUE(found) << session << " at " << c.lsn << " code " << code;
      EXPECT_TRUE(MessageDifferencer::Equals(shown, it->second))
          << session << " at " << c.lsn << ":\n"
          << shown.DebugString() << "vs\n"
          << it->second.DebugString();
    }
  }
  // Without --at-lsn: the end state, as the engine recovers it.
  for (const auto& [session, state] : EngineState(Copy("show-now"))) {
    GatewaySession shown;
    int code = -1;
    ASSERT_TRUE(ShowState(*dir_, session, "", &shown, &code));
    EXPECT_TRUE(MessageDifferencer::Equals(shown, state)) << session;
  }
}

TEST(ShowHistory, OlderThanRetainedHistoryIsAClearError) {
  std::string dir = NewTempDir("compacted");
  std::vector<Checkpoint> checkpoints;
  uint64_t first_kept = 0;
  absl::Status s = WriteCompactedHistory(dir, &checkpoints, &first_kept);
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_GT(first_kept, 2u) << "compaction should have deleted old segments";
  RunResult r = RunWalctl({"show", dir, "s1", "--at-lsn", "1"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(Lines(r.err).size(), 1u);
  EXPECT_THAT(r.err, HasSubstr("older than the retained history"));
  // Points inside the retained history still match the engine.
  int compared = 0;
  for (const Checkpoint& c : checkpoints) {
    if (c.lsn + 1 < first_kept) continue;
    for (const auto& [session, state] : c.sessions) {
      GatewaySession shown;
      int code = -1;
      if (!ShowState(dir, session, absl::StrCat(c.lsn), &shown, &code)) {
        // Before the oldest snapshot with its log gone: refused, not wrong.
        EXPECT_EQ(code, 2) << session << " at " << c.lsn;
        continue;
      }
      EXPECT_TRUE(MessageDifferencer::Equals(shown, state))
          << session << " at " << c.lsn;
      ++compared;
    }
  }
  EXPECT_GT(compared, 10);
  // And the whole directory verifies clean.
  EXPECT_EQ(RunWalctl({"verify", dir}).code, 0);
}

// ---------------------------------------------------------------------------
// compact

TEST_F(EngineDirTest, CompactGivesTheStateTheEngineSees) {
  std::string dir = Copy("compact");
  const auto before = EngineState(Copy("compact-ref"));
  RunResult r = RunWalctl({"compact", dir});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("compacted: snapshot snap-000000000000000e.snap "
                               "at lsn 14, 2 sessions"));
  EXPECT_TRUE(Exists(dir + "/snap-000000000000000e.snap"));
  EXPECT_EQ(RunWalctl({"verify", dir}).code, 0);
  const auto after = EngineState(dir);
  ASSERT_EQ(after.size(), before.size());
  for (const auto& [session, state] : before) {
    ASSERT_TRUE(after.count(session)) << session;
    EXPECT_TRUE(MessageDifferencer::Equals(after.at(session), state))
        << session;
  }
  // A second compaction makes the first snapshot's log obsolete.
  r = RunWalctl({"compact", dir, "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto v = ParseJson(r.out);
  EXPECT_EQ(v.struct_value().fields().at("sessions").number_value(), 2);
  EXPECT_EQ(RunWalctl({"verify", dir}).code, 0);
}

TEST_F(EngineDirTest, CompactAndRepairRefuseWhileLocked) {
  std::string dir = Copy("locked");
  auto store = Store<GatewaySession>::Open(EngineOptions(), dir);
  ASSERT_TRUE(store.ok()) << store.status();
  RunResult r = RunWalctl({"compact", dir});
  EXPECT_EQ(r.code, 75);
  EXPECT_EQ(Lines(r.err).size(), 1u);
  EXPECT_THAT(r.err, HasSubstr("held by pid"));
  r = RunWalctl({"repair", dir, "--fix"});
  EXPECT_EQ(r.code, 75);
  EXPECT_THAT(r.err, HasSubstr("held by"));
  // Read-only commands still work, and verify says the log may be changing.
  r = RunWalctl({"verify", dir});
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("warning: locked LOCK: held by pid"));
  ASSERT_TRUE((*store)->Close().ok());
  r = RunWalctl({"compact", dir});
  EXPECT_EQ(r.code, 0) << r.err;
}

// ---------------------------------------------------------------------------
// Exit codes on torn, damaged, empty and foreign input, for every reader.

struct Expect {
  int dump, verify, stats, show;
};

void ExpectCodes(const std::string& what, const std::string& dir,
                 const Expect& e) {
  RunResult r = RunWalctl({"dump", dir});
  EXPECT_EQ(r.code, e.dump) << what << " dump: " << r.err;
  r = RunWalctl({"verify", dir});
  EXPECT_EQ(r.code, e.verify) << what << " verify:\n" << r.out << r.err;
  r = RunWalctl({"stats", dir});
  EXPECT_EQ(r.code, e.stats) << what << " stats: " << r.out << r.err;
  r = RunWalctl({"show", dir, "s1"});
  EXPECT_EQ(r.code, e.show) << what << " show: " << r.err;
  if (r.code != 0) {
    EXPECT_EQ(Lines(r.err).size(), 1u) << what << ": " << r.err;
  }
}

TEST_F(EngineDirTest, ExitCodesOnDamagedInputs) {
  ExpectCodes("clean", *dir_, {0, 0, 0, 0});

  std::string torn = Copy("x-torn");
  TruncateFile(torn + "/" + kSeg1, FileSize(torn + "/" + kSeg1) - 7);
  ExpectCodes("torn", torn, {1, 1, 0, 0});

  std::string zeros = Copy("x-zeros");
  WriteFile(zeros + "/" + kSeg1,
            ReadFile(zeros + "/" + kSeg1) + std::string(512, '\0'));
  ExpectCodes("zero tail", zeros, {1, 1, 0, 0});

  // Damage in a record the current snapshot (lsn 9) covers: recovery does
  // not read it (the MANIFEST says where the log after lsn 9 starts), so
  // stats counts and show shows; dump and verify still report it.
  std::string bad = Copy("x-bad");
  FlipByte(bad + "/" + kSeg1, 1752);  // inside lsn 2's payload
  ExpectCodes("damaged record before the snapshot", bad, {2, 2, 0, 0});
  RunResult v = RunWalctl({"verify", bad});
  EXPECT_THAT(v.out, HasSubstr("opens the store")) << v.out;
  v = RunWalctl({"verify", bad, "--json"});
  EXPECT_THAT(v.out, HasSubstr("\"opens\":true")) << v.out;

  std::string after = Copy("x-bad-after");
  FlipByte(after + "/" + kSeg1, 2052);  // inside lsn 10's payload
  ExpectCodes("damaged record after the snapshot", after, {2, 2, 2, 2});
  v = RunWalctl({"verify", after});
  EXPECT_THAT(v.out, HasSubstr("damage that default recovery refuses"))
      << v.out;

  std::string snap = Copy("x-snap");
  FlipByte(snap + "/" + kSnap9, 1692);
  ExpectCodes("damaged snapshot", snap, {2, 2, 2, 2});

  std::string manifest = Copy("x-manifest");
  WriteFile(manifest + "/MANIFEST", "not a manifest at all");
  ExpectCodes("foreign MANIFEST", manifest, {2, 2, 2, 2});

  // Another format's file where a segment that is not the last should be
  // (compaction starts a second segment). A short garbage LAST segment would
  // count as a create interrupted by a crash, i.e. a torn tail.
  std::string foreign = Copy("x-foreign");
  ASSERT_EQ(RunWalctl({"compact", foreign}).code, 0);
  WriteFile(foreign + "/" + kSeg1,
            std::string("PK\x03\x04", 4) + std::string(200, 'z'));
  ExpectCodes("foreign segment", foreign, {2, 2, 2, 2});

  std::string empty_seg = NewTempDir("x-emptyseg");
  WriteFile(empty_seg + "/" + kSeg1, "");
  ExpectCodes("empty segment only", empty_seg, {2, 2, 2, 2});

  std::string empty = NewTempDir("x-empty");
  ExpectCodes("empty directory", empty, {2, 2, 2, 2});
  ExpectCodes("missing directory", empty + "/nope", {2, 2, 2, 2});

  // A session that does not exist is exit 1 for show.
  EXPECT_EQ(RunWalctl({"show", *dir_, "nobody"}).code, 1);
  EXPECT_EQ(RunWalctl({"show", *dir_, "s2"}).code, 1);  // deleted
}

// Random directory images (engine-written, then damaged at random): every
// reader answers 0, 1 or 2 with output, and never crashes.
TEST_F(EngineDirTest, RandomImagesNeverCrash) {
  std::mt19937_64 rng(777);
  const std::vector<std::string> names = ListDir(*dir_);
  for (int round = 0; round < 25; ++round) {
    std::string dir = Copy("rand");
    for (const std::string& name : names) {
      if (name == "LOCK") continue;
      std::string path = dir + "/" + name;
      std::string data = ReadFile(path);
      switch (rng() % 4) {
        case 0:
          data.resize(rng() % (data.size() + 1));
          break;
        case 1:
          for (int k = 0; k < 4 && !data.empty(); ++k) {
            data[rng() % data.size()] ^= static_cast<char>(1 + rng() % 255);
          }
          break;
        case 2:
          for (char& c : data) c = static_cast<char>(rng());
          break;
        default:
          break;
      }
      WriteFile(path, data);
    }
    for (const std::vector<std::string>& args :
         std::vector<std::vector<std::string>>{{"dump", dir},
                                               {"dump", dir, "--json"},
                                               {"verify", dir},
                                               {"verify", dir, "--json"},
                                               {"stats", dir},
                                               {"stats", dir, "--json"},
                                               {"show", dir, "s1"},
                                               {"repair", dir, "--salvage"}}) {
      RunResult r = RunWalctl(args);
      EXPECT_TRUE(r.code == 0 || r.code == 1 || r.code == 2)
          << absl::StrJoin(args, " ") << " -> " << r.code << ": " << r.err;
      EXPECT_FALSE(r.out.empty() && r.err.empty()) << absl::StrJoin(args, " ");
      if (args.back() == "--json" && r.code != 64 && !r.out.empty()) {
        for (const std::string& line : Lines(r.out)) ParseJson(line);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// repair

TEST_F(EngineDirTest, RepairTornTailKeepsBackupAndVerifiesClean) {
  std::string dir = Copy("repair-torn");
  const std::string seg = dir + "/" + kSeg1;
  TruncateFile(seg, FileSize(seg) - 7);
  const std::string damaged = ReadFile(seg);

  // Without --fix nothing changes.
  RunResult r = RunWalctl({"repair", dir});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, HasSubstr("dry run: nothing changed"));
  EXPECT_EQ(ReadFile(seg), damaged);

  const std::string backup = dir + "-backup";
  r = RunWalctl({"repair", dir, "--fix", "--backup-dir", backup});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("backup: " + backup + " (1 file)"));
  EXPECT_THAT(r.out, HasSubstr("after repair, verify: clean"));
  EXPECT_EQ(ReadFile(backup + "/" + kSeg1), damaged);
  EXPECT_EQ(RunWalctl({"verify", dir}).code, 0);
  // The repaired directory holds what the engine would have recovered.
  const auto repaired = EngineState(dir);
  EXPECT_EQ(repaired.size(), 2u);
  EXPECT_EQ(repaired.at("s3").fingerprint(), "");  // lsn 14 was torn off
  EXPECT_EQ(repaired.at("s3").warmup().warmup_count(), 1);

  // The default backup folder lives in the directory and is named.
  std::string dir2 = Copy("repair-torn2");
  TruncateFile(dir2 + "/" + kSeg1, FileSize(dir2 + "/" + kSeg1) - 7);
  r = RunWalctl({"repair", dir2, "--fix"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("backup: " + dir2 + "/walctl-backup-"));
  EXPECT_EQ(RunWalctl({"verify", dir2}).code, 0);
}

TEST_F(EngineDirTest, RepairSalvageDropsDamageAndVerifiesClean) {
  std::string dir = Copy("repair-salvage");
  const std::string seg = dir + "/" + kSeg1;
  // Damage lsn 6 (the second tick's begin): its entry and commit go too.
  FlipByte(seg, 1888 + 3);
  const std::string damaged = ReadFile(seg);

  RunResult r = RunWalctl({"repair", dir, "--fix"});  // no --salvage
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("[needs --salvage]"));
  EXPECT_EQ(ReadFile(seg), damaged);

  r = RunWalctl(
      {"repair", dir, "--fix", "--salvage", "--backup-dir", dir + "-bak"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("fillers for lost lsn 6..8"));
  EXPECT_EQ(ReadFile(dir + "-bak/" + kSeg1), damaged);
  RunResult v = RunWalctl({"verify", dir});
  EXPECT_EQ(v.code, 0) << v.out;
  r = RunWalctl({"dump", dir, "--from-lsn", "6", "--to-lsn", "8"});
  EXPECT_THAT(r.out, HasSubstr("lsn=6 type=salvage-filler"));
  EXPECT_THAT(r.out, HasSubstr("salvage-filler"));
  // The engine opens it; s2's cost tick is lost, the rest is intact.
  const auto state = EngineState(dir);
  EXPECT_EQ(state.at("s1").header_name(), "x-other");
  EXPECT_EQ(state.at("s3").fingerprint(), "fp-3");
  GatewaySession s2;
  int code = -1;
  ASSERT_TRUE(ShowState(dir, "s2", "8", &s2, &code)) << code;
  EXPECT_EQ(s2.fingerprint(), "fp-2");
  EXPECT_FALSE(s2.has_cost());

  // The rewritten segment is durable as a whole: later damage inside it is
  // corruption, not a torn tail default recovery would quietly cut.
  FlipByte(seg, 1752);  // lsn 2's payload
  RunResult after = RunWalctl({"verify", dir});
  EXPECT_EQ(after.code, 2) << after.out;
  EXPECT_THAT(after.out, HasSubstr("problem: corruption"));
}

// A compacted history's segments and snapshots, in order.
struct Files {
  std::vector<std::string> segments, snapshots;
};
Files ListFiles(const std::string& dir) {
  Files f;
  for (const std::string& name : ListDir(dir)) {
    uint64_t n;
    if (log::ParseSegmentFileName(name, &n)) f.segments.push_back(name);
    if (log::ParseSnapshotFileName(name, &n)) f.snapshots.push_back(name);
  }
  return f;
}

TEST_F(EngineDirTest, RepairSalvageMissingSegmentAndDamagedSnapshot) {
  // Compacted twice: current and previous snapshots, several segments.
  std::string dir = NewTempDir("repair-many");
  std::vector<Checkpoint> checkpoints;
  uint64_t first_kept = 0;
  ASSERT_TRUE(WriteCompactedHistory(dir, &checkpoints, &first_kept).ok());
  const std::vector<std::string> segments = ListFiles(dir).segments;
  const std::vector<std::string> snapshots = ListFiles(dir).snapshots;
  ASSERT_GE(segments.size(), 4u);
  ASSERT_EQ(snapshots.size(), 2u);
  // Lose a middle segment and damage the current (newest) snapshot.
  ASSERT_EQ(::unlink((dir + "/" + segments[segments.size() - 2]).c_str()), 0);
  FlipByte(dir + "/" + snapshots[1], FileSize(dir + "/" + snapshots[1]) - 10);
  EXPECT_EQ(RunWalctl({"verify", dir}).code, 2);

  RunResult r = RunWalctl({"repair", dir, "--fix", "--salvage"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("create " + segments[segments.size() - 2]));
  EXPECT_THAT(r.out, HasSubstr("publish MANIFEST: current " + snapshots[0]));
  EXPECT_THAT(r.out, HasSubstr("remove " + snapshots[1]));
  RunResult v = RunWalctl({"verify", dir});
  EXPECT_EQ(v.code, 0) << v.out;
  // The engine opens the result.
  auto store = Store<GatewaySession>::Open(EngineOptions(), dir);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE((*store)->Close().ok());
}

// Repairs `dir` with --fix --salvage and checks that the result verifies
// clean, opens in the engine, and needs no further repair.
void SalvageAndCheck(const std::string& what, const std::string& dir) {
  RunResult r = RunWalctl({"repair", dir, "--fix", "--salvage"});
  EXPECT_EQ(r.code, 0) << what << "\n" << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("backup: ")) << what;
  RunResult v = RunWalctl({"verify", dir});
  EXPECT_EQ(v.code, 0) << what << "\n" << v.out;
  auto store = Store<GatewaySession>::Open(EngineOptions(), dir);
  EXPECT_TRUE(store.ok()) << what << ": " << store.status();
  if (store.ok()) {
    EXPECT_TRUE((*store)->Close().ok());
  }
  r = RunWalctl({"repair", dir});
  EXPECT_EQ(r.code, 0) << what << "\n" << r.out;
  EXPECT_THAT(r.out, HasSubstr("nothing to repair")) << what;
}

TEST(RepairCases, SalvageKinds) {
  std::string base = NewTempDir("cases-base");
  std::vector<Checkpoint> checkpoints;
  uint64_t first_kept = 0;
  ASSERT_TRUE(WriteCompactedHistory(base, &checkpoints, &first_kept).ok());
  const Files files = ListFiles(base);
  ASSERT_GE(files.segments.size(), 4u);

  {  // The header of a segment in the middle of the log.
    std::string dir = NewTempDir("case-header");
    CopyDir(base, dir);
    FlipByte(dir + "/" + files.segments[1], 30);
    EXPECT_EQ(RunWalctl({"verify", dir}).code, 2);
    RunResult plan = RunWalctl({"repair", dir, "--salvage"});
    EXPECT_THAT(plan.out, HasSubstr("rewrite " + files.segments[1]));
    EXPECT_THAT(plan.out, HasSubstr("replaced by fillers"));
    SalvageAndCheck("middle header", dir);
  }
  {  // A damaged MANIFEST: rebuilt from the intact snapshots.
    std::string dir = NewTempDir("case-manifest");
    CopyDir(base, dir);
    FlipByte(dir + "/MANIFEST", FileSize(dir + "/MANIFEST") - 4);
    EXPECT_EQ(RunWalctl({"verify", dir}).code, 2);
    SalvageAndCheck("manifest", dir);
    RunResult v = RunWalctl({"verify", dir});
    EXPECT_THAT(v.out, HasSubstr("current " + files.snapshots.back()));
  }
  {  // A torn header of a new last segment: no --salvage needed.
    std::string dir = NewTempDir("case-torn-header");
    CopyDir(base, dir);
    uint64_t n = 0;
    ASSERT_TRUE(log::ParseSegmentFileName(files.segments.back(), &n));
    const std::string extra = log::SegmentFileName(n + 1);
    WriteFile(dir + "/" + extra, std::string(40, '\0'));
    EXPECT_EQ(RunWalctl({"verify", dir}).code, 1);
    RunResult r = RunWalctl({"repair", dir, "--fix"});
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("remove " + extra));
    EXPECT_FALSE(Exists(dir + "/" + extra));
    EXPECT_EQ(RunWalctl({"verify", dir}).code, 0);
  }
  {  // Leftover temporary files are removed (and backed up).
    std::string dir = NewTempDir("case-tmp");
    CopyDir(base, dir);
    WriteFile(dir + "/MANIFEST.tmp", "half a manifest");
    RunResult v = RunWalctl({"verify", dir});
    EXPECT_EQ(v.code, 0);
    EXPECT_THAT(v.out, HasSubstr("warning: leftover MANIFEST.tmp"));
    RunResult r =
        RunWalctl({"repair", dir, "--fix", "--backup-dir", dir + "-bak"});
    EXPECT_EQ(r.code, 0);
    EXPECT_FALSE(Exists(dir + "/MANIFEST.tmp"));
    EXPECT_EQ(ReadFile(dir + "-bak/MANIFEST.tmp"), "half a manifest");
  }
}

// Random damage (cuts, flipped bytes, zeroed blocks, deleted files) to a
// compacted history: repair --fix --salvage ends in a directory that
// verifies clean and that the engine opens, or says why it cannot.
TEST(RepairCases, RandomDamageRepairsToClean) {
  std::string base = NewTempDir("rr-base");
  std::vector<Checkpoint> checkpoints;
  uint64_t first_kept = 0;
  ASSERT_TRUE(WriteCompactedHistory(base, &checkpoints, &first_kept).ok());
  std::vector<std::string> names;
  for (const std::string& n : ListDir(base)) {
    if (n != "LOCK") names.push_back(n);
  }
  std::mt19937_64 rng(4242);
  int repaired = 0;
  const int kRounds = 30;
  for (int round = 0; round < kRounds; ++round) {
    std::string dir = NewTempDir("rr");
    CopyDir(base, dir);
    for (int k = 0; k < 2; ++k) {
      const std::string path = dir + "/" + names[rng() % names.size()];
      if (!Exists(path)) continue;
      std::string data = ReadFile(path);
      switch (rng() % 4) {
        case 0:
          data.resize(rng() % (data.size() + 1));
          break;
        case 1:
          for (int j = 0; j < 3 && !data.empty(); ++j) {
            data[rng() % data.size()] ^= static_cast<char>(1 + rng() % 255);
          }
          break;
        case 2:
          ASSERT_EQ(::unlink(path.c_str()), 0);
          continue;
        default:
          if (data.size() > 100) {
            size_t at = 64 + rng() % (data.size() - 80);
            std::fill(data.begin() + at, data.begin() + at + 16, '\0');
          }
      }
      WriteFile(path, data);
    }
    RunResult r = RunWalctl({"repair", dir, "--fix", "--salvage"});
    RunResult v = RunWalctl({"verify", dir});
    EXPECT_EQ(r.code, v.code) << "round " << round << "\n" << r.out << r.err;
    if (r.code != 0) continue;
    ++repaired;
    auto store = Store<GatewaySession>::Open(EngineOptions(), dir);
    EXPECT_TRUE(store.ok())
        << "round " << round << ": " << store.status() << "\n"
        << r.out;
    if (store.ok()) {
      EXPECT_TRUE((*store)->Close().ok());
    }
  }
  EXPECT_GE(repaired, kRounds * 9 / 10);
}

TEST(RepairCases, UndecodableRecordIsReplaced) {
  std::string dir = NewTempDir("case-undecodable");
  std::vector<TestRecord> records = SimpleRecords(5);
  records[2].payload = std::string("\xff\xff\xff", 3);
  WriteLog(dir, records, 1 << 20);
  EXPECT_EQ(RunWalctl({"verify", dir}).code, 2);
  RunResult r = RunWalctl({"repair", dir, "--fix", "--salvage"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("lsn 3 undecodable"));
  EXPECT_EQ(RunWalctl({"verify", dir}).code, 0);
  RunResult d = RunWalctl({"dump", dir, "--json"});
  int fillers = 0;
  for (const std::string& line : Lines(d.out)) {
    auto v = ParseJson(line);
    if (v.struct_value().fields().count("filler")) ++fillers;
  }
  EXPECT_EQ(fillers, 1);
}

TEST_F(EngineDirTest, RepairUsage) {
  EXPECT_EQ(RunWalctl({"repair", *dir_, "--backup-dir", "/x"}).code, 64);
  EXPECT_EQ(RunWalctl({"repair"}).code, 64);
  RunResult r = RunWalctl({"repair", *dir_, "--fix"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("nothing to repair"));
  EXPECT_THAT(r.out, Not(HasSubstr("backup:")));
}

}  // namespace
}  // namespace walctl_test
}  // namespace walstate
