// Regression test for a torn session found by walstress's kill loop (seed
// 4242, iteration 31): a snapshot captured a session's in-memory state at
// turn 257 while a tick entry holding turn 256's calibration and cost had
// been written after the snapshot's LSN; recovery re-applied that entry over
// the snapshot and served turn 256's calibration and cost with turn 257's
// warmup, a state that never existed.
//
// The interleaving is forced through the file system: the hook runs inside
// Compact() after it has read the snapshot's LSN and before it captures the
// shards (SnapshotWriter::Create opens the .tmp file in between).
#include <stdlib.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "proto/example/gateway.pb.h"
#include "walstate/file_system.h"
#include "walstate/walstate.h"

namespace walstate {
namespace {

using example::GatewaySession;

// Forwards to the POSIX file system; runs `hook` once, when the first
// snapshot temporary file is created.
class HookFs : public FileSystem {
 public:
  std::function<void()> hook;

  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::string& path) override {
    if (hook && absl::EndsWith(path, ".snap.tmp")) {
      auto h = std::move(hook);
      hook = nullptr;
      h();
    }
    return base_->NewWritableFile(path);
  }
  absl::StatusOr<std::unique_ptr<WritableFile>> ReopenWritableFile(
      const std::string& path) override {
    return base_->ReopenWritableFile(path);
  }
  absl::StatusOr<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path) override {
    return base_->NewRandomAccessFile(path);
  }
  absl::StatusOr<bool> FileExists(const std::string& path) override {
    return base_->FileExists(path);
  }
  absl::StatusOr<std::vector<std::string>> ListDir(
      const std::string& dir) override {
    return base_->ListDir(dir);
  }
  absl::Status CreateDir(const std::string& dir) override {
    return base_->CreateDir(dir);
  }
  absl::Status DeleteFile(const std::string& path) override {
    return base_->DeleteFile(path);
  }
  absl::Status RenameFile(const std::string& from,
                          const std::string& to) override {
    return base_->RenameFile(from, to);
  }
  absl::Status TruncateFile(const std::string& path, uint64_t size) override {
    return base_->TruncateFile(path, size);
  }
  absl::StatusOr<uint64_t> FileSize(const std::string& path) override {
    return base_->FileSize(path);
  }
  absl::Status SyncDir(const std::string& dir) override {
    return base_->SyncDir(dir);
  }
  absl::StatusOr<std::unique_ptr<FileLock>> LockFile(
      const std::string& path, const std::string& owner) override {
    return base_->LockFile(path, owner);
  }

 private:
  FileSystem* base_ = FileSystem::Default();
};

// Turn `v`: calibration and cost always, warmup when `warmup`.
GatewaySession Turn(int v, bool warmup) {
  GatewaySession m;
  m.mutable_calibration()->set_last_turn_at(v);
  m.mutable_cost()->set_conversation_turns(v);
  if (warmup) m.mutable_warmup()->set_warmup_count(v);
  return m;
}

TEST(FuzzySnapshotTest, TickEntryOlderThanCapturedStateIsNotReapplied) {
  std::string dir = ::testing::TempDir() + "/fuzzy-XXXXXX";
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  HookFs fs;
  Options options;
  options.fs = &fs;
  options.background_thread = false;
  {
    auto store = Store<GatewaySession>::Open(options, dir);
    ASSERT_TRUE(store.ok()) << store.status();
    Store<GatewaySession>& s = **store;
    GatewaySession id;
    id.set_fingerprint("fp");
    ASSERT_TRUE(s.Update("s1", id, {"fingerprint"}).ok());
    ASSERT_TRUE(
        s.Update("s1", Turn(1, true), {"calibration", "cost", "warmup"}).ok());
    ASSERT_TRUE(s.Flush().ok());
    // Turn 2 is dirty when the snapshot starts.
    ASSERT_TRUE(s.Update("s1", Turn(2, false), {"calibration", "cost"}).ok());
    fs.hook = [&s] {
      // After the snapshot's LSN: a tick writes turn 2 (calibration, cost)...
      ASSERT_TRUE(s.Flush().ok());
      // ...and turn 3 changes all three groups in memory only.
      ASSERT_TRUE(
          s.Update("s1", Turn(3, true), {"calibration", "cost", "warmup"})
              .ok());
    };
    ASSERT_TRUE(s.Compact().ok());
    ASSERT_EQ(fs.hook, nullptr) << "the hook did not run";
    // A crash: the store goes away without Close(), so turn 3 is only in the
    // snapshot.
  }
  options.fs = nullptr;
  auto store = Store<GatewaySession>::Open(options, dir);
  ASSERT_TRUE(store.ok()) << store.status();
  auto got = (*store)->Get("s1");
  ASSERT_TRUE(got.ok()) << got.status();
  // Every group from one turn: either the snapshot's turn 3 or (had the
  // snapshot held only committed data) turn 2 with turn 1's warmup.
  const int turn = static_cast<int>(got->cost().conversation_turns());
  EXPECT_EQ(got->calibration().last_turn_at(), turn);
  EXPECT_EQ(got->warmup().warmup_count(), turn == 3 ? 3 : 1)
      << "calibration and cost of turn " << turn << " with warmup of turn "
      << got->warmup().warmup_count();
  EXPECT_EQ(got->fingerprint(), "fp");
}

}  // namespace
}  // namespace walstate
