// LoadSnapshot on one thread and on several: the same table, and damage
// reported the same way.
#include "engine/snapshot/snapshot_loader.h"

#include <map>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/snapshot/snapshot_writer.h"
#include "gtest/gtest.h"
#include "proto/example/gateway.pb.h"
#include "proto/walstate/record.pb.h"
#include "tests/fs/fault_injection_fs.h"

namespace walstate {
namespace {

using example::GatewaySession;

class SnapshotLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto schema =
        Schema::FromPrototype(GatewaySession::default_instance(), BATCHED);
    ASSERT_TRUE(schema.ok());
    schema_ = std::move(*schema);
    ASSERT_TRUE(fs_.CreateDir("/d").ok());
  }

  // Writes snapshot `lsn` holding `ids` (in that order) and returns its path.
  std::string Write(uint64_t lsn, const std::vector<std::string>& ids) {
    auto w = SnapshotWriter::Create(&fs_, "/d", lsn, schema_->blob());
    EXPECT_TRUE(w.ok()) << w.status();
    for (const std::string& id : ids) {
      GatewaySession s;
      s.set_fingerprint("fp-" + id);
      s.mutable_calibration()->set_last_layer(static_cast<int>(id.size()));
      s.mutable_ltm()->set_cache_text(std::string(300, 'x') + id);
      (*w)->Add(id, s, lsn);
    }
    EXPECT_TRUE((*w)->Finish().ok());
    return JoinPath("/d", (*w)->file_name());
  }

  FaultInjectionFileSystem fs_;
  std::unique_ptr<Schema> schema_;
};

TEST_F(SnapshotLoaderTest, OneOrManyThreadsLoadTheSameSessions) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5000; ++i) ids.push_back(absl::StrCat("session-", i));
  const std::string path = Write(77, ids);
  std::map<std::string, std::string> first;
  for (size_t workers : {1, 2, 3, 8}) {
    SessionTable table(*schema_);
    auto loaded = LoadSnapshot(&fs_, path, 77, &table, workers);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_EQ(loaded->sessions, ids.size());
    std::map<std::string, std::string> got;
    table.ForEach(
        [&](absl::string_view id, const google::protobuf::Message& m) {
          got[std::string(id)] = m.SerializeAsString();
        });
    EXPECT_EQ(got.size(), ids.size());
    if (first.empty()) {
      first = got;
    } else {
      EXPECT_TRUE(got == first) << workers << " workers";
    }
  }
}

TEST_F(SnapshotLoaderTest, ASessionTwiceIsDataLossNamingIt) {
  std::vector<std::string> ids;
  for (int i = 0; i < 3000; ++i) ids.push_back(absl::StrCat("s", i));
  ids.push_back("s1234");  // again, far from the first
  const std::string path = Write(9, ids);
  for (size_t workers : {1, 2}) {
    SessionTable table(*schema_);
    auto loaded = LoadSnapshot(&fs_, path, 9, &table, workers);
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_NE(loaded.status().message().find(
                  "session s1234 appears twice in the snapshot"),
              std::string::npos)
        << loaded.status();
    EXPECT_NE(loaded.status().message().find(path + " offset "),
              std::string::npos)
        << loaded.status();
  }
}

// A node keeps a session's capture LSN in 63 bits: a larger one (no log
// gets there) is damage, not silently cut.
TEST_F(SnapshotLoaderTest, ACaptureLsnFrom2To63IsDataLoss) {
  for (uint64_t capture :
       {(uint64_t{1} << 63) - 1, uint64_t{1} << 63, ~uint64_t{0}}) {
    auto w = SnapshotWriter::Create(&fs_, "/d", 5, schema_->blob());
    ASSERT_TRUE(w.ok()) << w.status();
    GatewaySession s;
    s.set_fingerprint("fp");
    (*w)->Add("a", s, 5);
    (*w)->Add("big", s, capture);
    ASSERT_TRUE((*w)->Finish().ok());
    const std::string path = JoinPath("/d", (*w)->file_name());
    for (size_t workers : {1, 2}) {
      SessionTable table(*schema_);
      auto loaded = LoadSnapshot(&fs_, path, 5, &table, workers);
      if (capture < (uint64_t{1} << 63)) {
        ASSERT_TRUE(loaded.ok()) << loaded.status();
        auto& shard = table.ShardFor("big");
        std::lock_guard<std::mutex> lock(shard.mu);
        EXPECT_EQ(table.FindLocked(shard, "big")->entry.snapshot_lsn(),
                  capture);
        continue;
      }
      EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
      EXPECT_NE(loaded.status().message().find(absl::StrCat(
                    "session big: capture LSN ", capture, " is out of range")),
                std::string::npos)
          << loaded.status();
    }
    ASSERT_TRUE(fs_.DeleteFile(path).ok());
  }
}

// The loader decodes a session record in place: what a protobuf parse of
// record::SessionState gives. Payloads: the writer's layout (what
// SerializeAsString writes too), fields in another order, repeated (the
// last wins), followed by a field of a later version, a varint with a
// redundant byte, and each of those cut short.
TEST(DecodeSessionStateTest, ReadsWhatAParseReads) {
  std::mt19937_64 rng(11);
  auto random_bytes = [&](size_t max) {
    std::string s(rng() % (max + 1), '\0');
    for (char& c : s) c = static_cast<char>(rng());
    return s;
  };
  auto encode = [](uint64_t lsn, absl::string_view session,
                   absl::string_view state) {
    record::SessionState r;
    r.set_session(std::string(session));
    r.set_state(std::string(state));
    r.set_lsn(lsn);
    return r.SerializeAsString();
  };
  int fast_layouts = 0;
  for (int round = 0; round < 3000; ++round) {
    const std::string session = random_bytes(40);
    const std::string state = random_bytes(round % 10 == 0 ? 300 : 20);
    uint64_t lsn = 0;
    switch (rng() % 4) {
      case 0:
        break;
      case 1:
        lsn = rng() % 300;
        break;
      case 2:
        lsn = rng() >> (rng() % 64);
        break;
      default:
        lsn = ~uint64_t{0} - rng() % 3;
        break;
    }
    std::string payload = encode(lsn, session, state);
    switch (round % 6) {
      case 0:
        ++fast_layouts;
        break;
      case 1: {  // the LSN first
        record::SessionState only_lsn;
        only_lsn.set_lsn(lsn + 1);
        payload = only_lsn.SerializeAsString() + encode(0, session, state);
        break;
      }
      case 2:  // everything again: the second wins
        payload += encode(lsn / 2, state, session);
        break;
      case 3:  // a field of a later version (9, varint)
        payload += std::string("\x48\x05", 2);
        break;
      case 4:  // the session's length with a redundant byte
        if (!session.empty() && session.size() < 128) {
          payload = std::string("\x0a") +
                    static_cast<char>(0x80 | session.size()) + '\0' +
                    payload.substr(2);
        }
        break;
      default:  // an unknown length-delimited field between the two
        payload = encode(0, session, "") +
                  std::string(
                      "\x3a\x02"
                      "ab",
                      4) +
                  encode(lsn, "", state);
        break;
    }
    for (const std::string& p :
         {payload, payload.substr(0, rng() % (payload.size() + 1))}) {
      record::SessionState want;
      const bool parses = want.ParseFromString(p);
      absl::string_view got_session, got_state;
      uint64_t got_lsn = 7;
      const bool decoded =
          DecodeSessionState(p, &got_session, &got_state, &got_lsn);
      ASSERT_EQ(decoded, parses) << "round " << round;
      if (!parses) continue;
      EXPECT_EQ(got_session, want.session()) << "round " << round;
      EXPECT_EQ(got_state, want.state()) << "round " << round;
      EXPECT_EQ(got_lsn, want.lsn()) << "round " << round;
    }
  }
  EXPECT_EQ(fast_layouts, 500);
}

}  // namespace
}  // namespace walstate
