// show --at-lsn on a snapshot taken while updates went on ("fuzzy"): a
// session captured after the LSN asked for already holds later changes, so
// walctl must not answer from that snapshot.
#include <memory>
#include <string>
#include <vector>

#include "engine/log/format.h"
#include "engine/log/writer.h"
#include "engine/snapshot/manifest.h"
#include "engine/snapshot/snapshot_writer.h"
#include "engine/state/schema.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/example/gateway.pb.h"
#include "proto/walstate/record.pb.h"
#include "tests/walctl/walctl_test_util.h"
#include "walstate/file_system.h"

namespace walstate {
namespace walctl_test {
namespace {

using example::GatewaySession;
using ::testing::HasSubstr;
using ::testing::Not;

std::string UpdatePayload(const std::string& session, const GatewaySession& v,
                          std::vector<uint32_t> fields) {
  record::Update u;
  u.set_session(session);
  v.SerializeToString(u.mutable_values());
  for (uint32_t f : fields) u.add_fields(f);
  return u.SerializeAsString();
}

// Log: lsn `first`.. : s1 fingerprint "a" (lsn 1, if first == 1), "b" (2),
// header_name "h" (3). Snapshot at lsn 1 holding s1 as captured at lsn 2.
void Build(const std::string& dir, uint64_t first) {
  auto schema =
      Schema::FromPrototype(GatewaySession::default_instance(), BATCHED);
  ASSERT_TRUE(schema.ok()) << schema.status();
  FileSystem* fs = FileSystem::Default();
  log::WriterOptions wo;
  wo.fs = fs;
  wo.dir = dir;
  wo.schema = (*schema)->blob();
  auto writer = log::LogWriter::Create(wo, 1, first);
  ASSERT_TRUE(writer.ok()) << writer.status();
  GatewaySession v;
  if (first == 1) {
    v.set_fingerprint("a");
    ASSERT_TRUE(
        (*writer)->Append(log::kUpdate, UpdatePayload("s1", v, {1})).ok());
  }
  v.set_fingerprint("b");
  ASSERT_TRUE(
      (*writer)->Append(log::kUpdate, UpdatePayload("s1", v, {1})).ok());
  v.Clear();
  v.set_header_name("h");
  ASSERT_TRUE(
      (*writer)->Append(log::kUpdate, UpdatePayload("s1", v, {3})).ok());
  ASSERT_TRUE((*writer)->Close().ok());

  auto snap = SnapshotWriter::Create(fs, dir, 1, (*schema)->blob());
  ASSERT_TRUE(snap.ok()) << snap.status();
  GatewaySession captured;
  captured.set_fingerprint("b");
  (*snap)->Add("s1", captured, /*lsn=*/2);
  ASSERT_TRUE((*snap)->Finish().ok());
  record::Manifest m;
  m.set_generation(1);
  m.mutable_current()->set_file((*snap)->file_name());
  m.mutable_current()->set_lsn(1);
  m.mutable_current()->set_sessions(1);
  m.mutable_current()->set_bytes((*snap)->bytes());
  ASSERT_TRUE(WriteManifest(fs, dir, m).ok());
}

std::string Show(const std::string& dir, const std::string& lsn, int* code) {
  RunResult r = RunWalctl({"show", dir, "s1", "--at-lsn", lsn});
  *code = r.code;
  return r.code == 0 ? r.out : r.err;
}

TEST(FuzzySnapshot, ShowAtLsnInsideTheCaptureReplaysTheLog) {
  std::string dir = NewTempDir("fuzzy");
  Build(dir, 1);
  EXPECT_EQ(RunWalctl({"verify", dir}).code, 0);
  RunResult d = RunWalctl({"dump", dir, "--type", "snapshot-session"});
  EXPECT_THAT(d.out, HasSubstr("captured-lsn=2 state {fingerprint: \"b\"}"));
  int code = -1;
  // At lsn 1 the snapshot (captured at 2) would say "b": the log says "a".
  std::string out = Show(dir, "1", &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("fingerprint: \"a\""));
  out = Show(dir, "2", &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("fingerprint: \"b\""));
  EXPECT_THAT(out, Not(HasSubstr("header_name")));
  out = Show(dir, "3", &code);
  EXPECT_THAT(out, HasSubstr("header_name: \"h\""));
}

TEST(FuzzySnapshot, RefusesWhenTheLogBeforeItIsGone) {
  std::string dir = NewTempDir("fuzzy-cut");
  Build(dir, 2);
  int code = -1;
  std::string err = Show(dir, "1", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(err, HasSubstr("falls inside the capture of snapshot"));
  EXPECT_EQ(Lines(err).size(), 1u);
  std::string out = Show(dir, "2", &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("fingerprint: \"b\""));
}

}  // namespace
}  // namespace walctl_test
}  // namespace walstate
