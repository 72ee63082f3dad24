// Helpers shared by the log tests: scratch directories, deterministic logs,
// reading a whole log back, raw file surgery, and a FileSystem wrapper that
// counts calls and injects failures.
#ifndef WALSTATE_TESTS_LOG_TEST_UTIL_H_
#define WALSTATE_TESTS_LOG_TEST_UTIL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/log/format.h"
#include "engine/log/reader.h"
#include "engine/log/writer.h"
#include "walstate/file_system.h"

namespace walstate {
namespace log {
namespace testing {

// A new empty directory under $TEST_TMPDIR (or /tmp).
std::string NewTempDir();

// Deterministic payload of `size` bytes for record `lsn`.
std::string MakePayload(uint64_t lsn, size_t size);

struct ExpectedRecord {
  uint64_t lsn = 0;
  uint8_t type = 0;
  std::string payload;
};

// Writes records of the given payload sizes (type kUpdate unless `types` is
// given) into a new log in `dir` starting at segment 1, LSN 1, syncs and
// closes it. Returns the records written. With `sync_every` n > 0 it syncs
// after every n-th record, so each sync group holds n records (their first
// frame carries kRecordFlagAfterSync); with 0 it syncs only at Close.
std::vector<ExpectedRecord> WriteLog(const std::string& dir,
                                     const std::vector<size_t>& sizes,
                                     uint64_t max_segment_bytes,
                                     const std::vector<uint8_t>& types = {},
                                     int sync_every = 1);

// Offsets of the frames of a clean file that carry kRecordFlagAfterSync.
std::vector<uint64_t> SyncedFrameOffsets(const std::string& path);

struct ReadResult {
  absl::Status open_status;  // of LogReader::Open
  absl::Status status;       // of LogReader after the last Next()
  std::vector<ExpectedRecord> records;
  ReadReport report;
  std::vector<std::string> segments;
};

ReadResult ReadLog(const std::string& dir, RecoveryMode mode,
                   uint64_t start_lsn = 0, uint64_t hint_segment = 0,
                   uint64_t hint_offset = 0);

// The segment files of `dir`, sorted.
std::vector<std::string> SegmentPaths(const std::string& dir);

// Raw file access for damaging files (tests only; bypasses FileSystem).
std::string ReadBytes(const std::string& path);
void WriteBytes(const std::string& path, const std::string& data);
// Overwrites bytes in place (no truncation).
void WriteAt(const std::string& path, uint64_t offset, const std::string& data);

// Frame boundaries of a clean file: the header end, then the end of each
// record.
std::vector<uint64_t> FrameEnds(const std::string& path);

// Human-readable summary of a report's problems, for failure messages.
std::string Describe(const ReadReport& report);

// Wraps FileSystem::Default(): counts syncs per file, logs operations, and
// fails chosen calls.
class FaultyFileSystem : public FileSystem {
 public:
  explicit FaultyFileSystem(FileSystem* base = FileSystem::Default())
      : base_(base) {}

  // The n-th (1-based, counted over all files) WritableFile::Sync from now
  // on fails with an I/O error; later syncs succeed again (they must never
  // be called on that file, which the tests check).
  void FailSyncNumber(int n) {
    std::lock_guard<std::mutex> l(mu_);
    fail_sync_at_ = syncs_ + n;
  }
  // The n-th Append from now on fails.
  void FailAppendNumber(int n) {
    std::lock_guard<std::mutex> l(mu_);
    fail_append_at_ = appends_ + n;
  }
  // Every TruncateFile fails.
  void FailTruncate() {
    std::lock_guard<std::mutex> l(mu_);
    fail_truncate_ = true;
  }
  // Every WritableFile::StartWriteback fails (it is passed on otherwise).
  void FailWritebacks() {
    std::lock_guard<std::mutex> l(mu_);
    fail_writebacks_ = true;
  }
  // Until ReleaseSyncs(), every WritableFile::Sync waits before it reaches
  // the file system, except as many as LetSyncsThrough() allowed.
  void HoldSyncs() {
    std::lock_guard<std::mutex> l(mu_);
    hold_syncs_ = true;
  }
  void LetSyncsThrough(int n) {
    std::lock_guard<std::mutex> l(mu_);
    sync_permits_ += n;
    held_cv_.notify_all();
  }
  void ReleaseSyncs() {
    std::lock_guard<std::mutex> l(mu_);
    hold_syncs_ = false;
    held_cv_.notify_all();
  }
  // Waits until `n` syncs are waiting to be let through.
  void WaitForHeldSyncs(int n) {
    std::unique_lock<std::mutex> l(mu_);
    held_cv_.wait(l, [&] { return held_syncs_ >= n; });
  }
  // NewWritableFile of a path containing `part` fails.
  void FailCreate(const std::string& part) {
    std::lock_guard<std::mutex> l(mu_);
    fail_create_part_ = part;
  }

  int syncs() const {
    std::lock_guard<std::mutex> l(mu_);
    return syncs_;
  }
  int syncs_of(const std::string& path) const {
    std::lock_guard<std::mutex> l(mu_);
    auto it = syncs_by_path_.find(path);
    return it == syncs_by_path_.end() ? 0 : it->second;
  }
  int writebacks() const {
    std::lock_guard<std::mutex> l(mu_);
    return writebacks_;
  }
  // "create PATH", "reopen PATH", "append PATH N", "sync PATH",
  // "writeback PATH OFFSET LENGTH", "syncdir DIR", "close PATH",
  // "rename FROM TO".
  std::vector<std::string> ops() const {
    std::lock_guard<std::mutex> l(mu_);
    return ops_;
  }

  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::string& path) override;
  absl::StatusOr<std::unique_ptr<WritableFile>> ReopenWritableFile(
      const std::string& path) override;
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
    Log("rename " + from + " " + to);
    return base_->RenameFile(from, to);
  }
  absl::Status TruncateFile(const std::string& path, uint64_t size) override {
    {
      std::lock_guard<std::mutex> l(mu_);
      ops_.push_back("truncate " + path + " " + std::to_string(size));
      if (fail_truncate_) {
        return absl::InternalError("truncate " + path +
                                   ": Input/output error (injected)");
      }
    }
    return base_->TruncateFile(path, size);
  }
  absl::StatusOr<uint64_t> FileSize(const std::string& path) override {
    return base_->FileSize(path);
  }
  absl::Status SyncDir(const std::string& dir) override;
  absl::StatusOr<std::unique_ptr<FileLock>> LockFile(
      const std::string& path, const std::string& owner) override {
    return base_->LockFile(path, owner);
  }

 private:
  class File;
  friend class File;

  absl::Status OnSync(const std::string& path);
  absl::Status OnAppend(const std::string& path, size_t n);
  absl::Status OnWriteback(const std::string& path, uint64_t offset,
                           uint64_t length);
  void Log(std::string op) {
    std::lock_guard<std::mutex> l(mu_);
    ops_.push_back(std::move(op));
  }

  FileSystem* const base_;
  mutable std::mutex mu_;
  int syncs_ = 0;
  int fail_sync_at_ = -1;
  int appends_ = 0;
  int fail_append_at_ = -1;
  std::string fail_create_part_;
  bool fail_truncate_ = false;
  int writebacks_ = 0;
  bool fail_writebacks_ = false;
  bool hold_syncs_ = false;
  int sync_permits_ = 0;
  int held_syncs_ = 0;
  std::condition_variable held_cv_;
  std::map<std::string, int> syncs_by_path_;
  std::vector<std::string> ops_;
};

// Options of a writer in a new temporary directory whose I/O goes through
// `fs` (the other fields at their defaults).
WriterOptions WriterOptionsFor(FileSystem* fs);

}  // namespace testing
}  // namespace log
}  // namespace walstate

#endif  // WALSTATE_TESTS_LOG_TEST_UTIL_H_
