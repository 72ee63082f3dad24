// Replication without a NATS server: an in-memory stream behind the
// Replicator and StreamSource interfaces, with a small message size so that
// frames are split across messages. Runs in the plain suite (and under TSan:
// the shipper's threads).
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "walstate/file_system.h"
#include "engine/replication/restore.h"
#include "engine/replication/wire.h"
#include "walstate/walstate.h"
#include "gtest/gtest.h"
#include "proto/example/gateway.pb.h"

namespace walstate {
namespace {

using example::GatewaySession;
using replication::MessageHeader;
using replication::MessageKind;

// A stream in memory: the log subject fenced like JetStream's, messages cut
// at `max_body` bytes, failures injectable.
class MemoryStream : public replication::Replicator,
                     public replication::StreamSource {
 public:
  explicit MemoryStream(size_t max_body) : max_body_(max_body) {}

  absl::StatusOr<replication::StreamPosition> Claim(
      const std::string& writer, bool takeover,
      const std::string& schema) override {
    std::lock_guard<std::mutex> lock(mu_);
    replication::StreamPosition pos;
    pos.last_lsn = last_lsn_;
    pos.last_writer = last_writer_;
    pos.last_seq = log_.size();
    if (!last_writer_.empty() && last_writer_ != writer && !takeover) {
      return absl::FailedPreconditionError("held by " + last_writer_);
    }
    MessageHeader h;
    h.kind = MessageKind::kClaim;
    h.first_lsn = h.last_lsn = last_lsn_;
    std::string m;
    replication::EncodeMessage(h, replication::EncodeClaim(writer, schema), &m);
    log_.push_back({m, writer});
    last_writer_ = writer;
    fence_[writer] = log_.size();
    return pos;
  }

  absl::Status PublishLog(uint64_t salt, uint64_t first_lsn, uint64_t last_lsn,
                          absl::string_view frames) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (fail_next_ > 0) {
      --fail_next_;
      return absl::UnavailableError("memory stream: injected outage");
    }
    for (const auto& part :
         replication::SplitFrames(frames, first_lsn, max_body_)) {
      if (fence_[writer_of_] != log_.size()) {
        return absl::AbortedError("deposed: wrong last sequence");
      }
      MessageHeader h;
      h.kind = MessageKind::kLog;
      h.flags = part.continues ? replication::kFlagContinues : 0;
      h.salt = salt;
      h.first_lsn = part.first_lsn;
      h.last_lsn = part.last_lsn;
      std::string m;
      replication::EncodeMessage(h, frames.substr(part.offset, part.size), &m);
      log_.push_back({m, writer_of_});
      fence_[writer_of_] = log_.size();
      ++messages_;
    }
    last_lsn_ = last_lsn;
    return absl::OkStatus();
  }

  absl::Status PublishSnapshot(FileSystem* fs, const std::string& path,
                               uint64_t lsn) override {
    std::string file;
    absl::Status s = fs->ReadFile(path, &file);
    if (!s.ok()) return s;
    std::lock_guard<std::mutex> lock(mu_);
    replication::SnapshotManifest m;
    m.lsn = lsn;
    m.file_bytes = file.size();
    m.file_name = path.substr(path.find_last_of('/') + 1);
    m.first_chunk_seq = snap_.size() + 1;
    for (size_t off = 0; off < file.size(); off += max_body_) {
      MessageHeader h;
      h.kind = MessageKind::kSnapshotChunk;
      h.salt = off;
      h.first_lsn = lsn;
      h.last_lsn = 7;  // epoch
      std::string c;
      replication::EncodeMessage(
          h, absl::string_view(file).substr(off, max_body_), &c);
      snap_.push_back(c);
      m.chunks++;
    }
    m.file_hash = XXH3(file);
    MessageHeader h;
    h.kind = MessageKind::kSnapshotManifest;
    h.salt = 7;
    h.first_lsn = lsn;
    h.last_lsn = last_lsn_;
    std::string msg;
    replication::EncodeMessage(h, replication::EncodeSnapshotManifest(m), &msg);
    log_.push_back({msg, writer_of_});
    fence_[writer_of_] = log_.size();
    ++snapshots_;
    return absl::OkStatus();
  }

  replication::ServerDurability durability() const override {
    replication::ServerDurability d;
    d.description = "memory";
    return d;
  }

  absl::Status ReadLog(
      const std::function<absl::Status(uint64_t, absl::string_view,
                                       absl::string_view)>& fn) override {
    for (size_t i = 0; i < log_.size(); ++i) {
      absl::Status s = fn(i + 1, log_[i].first, log_[i].second);
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }
  absl::Status ReadSnapshot(
      uint64_t from,
      const std::function<absl::StatusOr<bool>(uint64_t, absl::string_view)>&
          fn) override {
    for (size_t i = from - 1; i < snap_.size(); ++i) {
      auto more = fn(i + 1, snap_[i]);
      if (!more.ok()) return more.status();
      if (!*more) break;
    }
    return absl::OkStatus();
  }
  std::string Describe() const override { return "memory stream"; }

  // Which writer the next publishes come from (one replicator per writer in
  // a real deployment; here one stream object serves both).
  void set_writer(const std::string& w) {
    std::lock_guard<std::mutex> lock(mu_);
    writer_of_ = w;
  }
  void FailNext(int n) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_next_ = n;
  }
  size_t messages() const { return messages_; }
  int snapshots() const { return snapshots_; }

 private:
  static uint64_t XXH3(const std::string& s);
  const size_t max_body_;
  std::mutex mu_;
  std::vector<std::pair<std::string, std::string>> log_;  // message, writer
  std::vector<std::string> snap_;
  std::map<std::string, size_t> fence_;  // writer -> log size it expects
  std::string last_writer_;
  std::string writer_of_ = "w1";
  uint64_t last_lsn_ = 0;
  int fail_next_ = 0;
  size_t messages_ = 0;
  int snapshots_ = 0;
};

}  // namespace
}  // namespace walstate

#include <xxhash.h>

namespace walstate {
namespace {

uint64_t MemoryStream::XXH3(const std::string& s) {
  return XXH3_64bits(s.data(), s.size());
}

std::string TempDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", name);
  return dir;
}

Options Replicated(replication::Mode mode,
                   std::shared_ptr<replication::Replicator> r,
                   const std::string& writer, bool takeover = false) {
  Options o;
  o.background_thread = false;
  o.replication.mode = mode;
  o.replication.replicator = std::move(r);
  o.replication.writer_id = writer;
  o.replication.takeover = takeover;
  return o;
}

// Records split across 64-byte messages (a 3 KB value spans ~50), a
// snapshot in chunks, a tail after it: the restore equals the original.
TEST(MemoryStreamTest, SplitFramesRestoreExactly) {
  auto stream = std::make_shared<MemoryStream>(64);
  const std::string dir = TempDir("split");
  {
    auto s = Store<GatewaySession>::Open(
        Replicated(replication::Mode::kSync, stream, "w1"), dir);
    ASSERT_TRUE(s.ok()) << s.status();
    for (int i = 0; i < 60; ++i) {
      GatewaySession v;
      v.set_fingerprint(absl::StrCat("fp-", i, "-", std::string(3000, 'x')));
      ASSERT_TRUE(
          (*s)->Update(absl::StrCat("s", i % 7), v, {"fingerprint"}).ok());
      if (i == 30) {
        ASSERT_TRUE((*s)->Compact().ok());
      }
    }
    ASSERT_TRUE((*s)->Close().ok());
  }
  EXPECT_GT(stream->messages(), 60u * 40);
  EXPECT_EQ(stream->snapshots(), 1);
  const std::string restored = TempDir("split-restored");
  auto report =
      replication::Restore(stream.get(), FileSystem::Default(), restored);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_FALSE(report->snapshot_file.empty());
  Options o;
  o.background_thread = false;
  auto a = Store<GatewaySession>::Open(o, dir);
  auto b = Store<GatewaySession>::Open(o, restored);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)->stats().sessions, (*b)->stats().sessions);
  (*a)->ForEach([&](absl::string_view id, const GatewaySession& st) {
    auto got = (*b)->Get(id);
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(got->SerializeAsString(), st.SerializeAsString());
  });
}

// Sync mode: a publish that fails stops the store like a failed fdatasync;
// the reopened store publishes what the stream lacks (catch-up).
TEST(MemoryStreamTest, SyncPublishFailureIsFailStopAndCatchUpRepairs) {
  auto stream = std::make_shared<MemoryStream>(1 << 20);
  const std::string dir = TempDir("failstop");
  {
    auto s = Store<GatewaySession>::Open(
        Replicated(replication::Mode::kSync, stream, "w1"), dir);
    ASSERT_TRUE(s.ok()) << s.status();
    GatewaySession v;
    v.set_fingerprint("a");
    ASSERT_TRUE((*s)->Update("s1", v, {"fingerprint"}).ok());
    stream->FailNext(1);
    v.set_fingerprint("b");
    absl::Status st = (*s)->Update("s1", v, {"fingerprint"});
    ASSERT_FALSE(st.ok());
    EXPECT_TRUE(absl::StrContains(st.message(), "injected outage")) << st;
    EXPECT_FALSE((*s)->health().ok());
    v.set_fingerprint("c");
    EXPECT_FALSE((*s)->Update("s1", v, {"fingerprint"}).ok());
  }
  {
    // "b" is durable locally, not in the stream: the reopen publishes it.
    auto s = Store<GatewaySession>::Open(
        Replicated(replication::Mode::kSync, stream, "w1"), dir);
    ASSERT_TRUE(s.ok()) << s.status();
    ASSERT_TRUE((*s)->Close().ok());
  }
  const std::string restored = TempDir("failstop-restored");
  ASSERT_TRUE(
      replication::Restore(stream.get(), FileSystem::Default(), restored).ok());
  Options o;
  o.background_thread = false;
  auto r = Store<GatewaySession>::Open(o, restored);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->Get("s1")->fingerprint(), "b");
}

// Async mode: an outage is retried while the lag shows in stats(); Close
// drains it.
TEST(MemoryStreamTest, AsyncRetriesAndReportsLag) {
  auto stream = std::make_shared<MemoryStream>(1 << 20);
  stream->FailNext(3);
  auto s = Store<GatewaySession>::Open(
      Replicated(replication::Mode::kAsync, stream, "w1"), TempDir("async"));
  ASSERT_TRUE(s.ok()) << s.status();
  for (int i = 0; i < 20; ++i) {
    GatewaySession v;
    v.set_fingerprint(absl::StrCat(i));
    ASSERT_TRUE((*s)->Update("s", v, {"fingerprint"}).ok());
  }
  EXPECT_EQ((*s)->stats().replication_mode, "async");
  ASSERT_TRUE((*s)->Close().ok());
  const Stats st = (*s)->stats();
  EXPECT_EQ(st.replication_lag_records, 0u);
  EXPECT_EQ(st.replicated_lsn, st.durable_lsn);
  EXPECT_GE(st.replication_publish_failures, 3u);
}

// A second writer without takeover is refused; with it, the first is
// deposed at its next publish and stops.
TEST(MemoryStreamTest, TakeoverDeposesTheFirstWriter) {
  auto stream = std::make_shared<MemoryStream>(1 << 20);
  stream->set_writer("a");
  auto a = Store<GatewaySession>::Open(
      Replicated(replication::Mode::kSync, stream, "a"), TempDir("dep-a"));
  ASSERT_TRUE(a.ok()) << a.status();
  GatewaySession v;
  v.set_fingerprint("1");
  ASSERT_TRUE((*a)->Update("s", v, {"fingerprint"}).ok());
  EXPECT_FALSE(
      Store<GatewaySession>::Open(
          Replicated(replication::Mode::kSync, stream, "b"), TempDir("dep-b0"))
          .ok());
  const std::string dir_b = TempDir("dep-b");
  ASSERT_TRUE(
      replication::Restore(stream.get(), FileSystem::Default(), dir_b).ok());
  stream->set_writer("b");
  auto b = Store<GatewaySession>::Open(
      Replicated(replication::Mode::kSync, stream, "b", true), dir_b);
  ASSERT_TRUE(b.ok()) << b.status();
  stream->set_writer("a");
  v.set_fingerprint("2");
  absl::Status st = (*a)->Update("s", v, {"fingerprint"});
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(absl::StrContains(st.message(), "deposed")) << st;
  EXPECT_FALSE((*a)->health().ok());
}

}  // namespace
}  // namespace walstate
