// FaultInjectionFileSystem: an in-memory walstate::FileSystem for tests that
// can fail operations on demand and compute the states a power loss leaves.
//
// Model. Files are inodes with two byte strings: `current` (what reads see,
// the page cache) and `durable` (what survives a power loss, the disk). Names
// are directory entries pointing at inodes, also in two views: the current
// namespace and the durable one. The rules follow POSIX/Linux, not any
// particular file system's generosity:
//  - WritableFile::Sync() (fdatasync) makes the file's bytes durable, but not
//    its name. TruncateFile() syncs the data, as the POSIX implementation
//    does.
//  - A create, rename, delete or mkdir becomes durable only when SyncDir() is
//    called on the directory holding the entry (for a rename: both parents,
//    each side separately). Renamed files keep their inode and data.
//  - A failed Sync() marks the unsynced writes of that file as lost: they are
//    never written to disk, even if a later Sync() succeeds (Linux reports a
//    writeback error once and marks the pages clean). Reads still see them.
//  - WritableFile::StartWriteback() (sync_file_range WRITE) changes nothing:
//    unsynced bytes stay unsynced, for Crash() as for everything else, and a
//    failed one loses nothing. It is counted and can be failed by a rule of
//    its own kind, but it is not logged: it creates no state that a crash at
//    its index could show, so logging it would only lengthen crash sweeps
//    (and kAny rules, which match logged kinds only, leave it alone).
//
// Every state-changing call (and every sync) gets an operation index 1, 2, ...
// and is kept in an op log, with its data, so any earlier state can be
// rebuilt (StateAtOp) and crashed. That is the intended crash-test driver:
//
//   FaultInjectionFileSystem fs;
//   fs.CreateDirs("/db");  fs.ResetOpLog();   // baseline = StateAtOp(0)
//   ... run the workload; with each acknowledgment remember fs.op_count() ...
//   for (uint64_t n = 0; n <= fs.op_count(); n += k) {
//     FaultInjectionFileSystem::CrashOptions opts;
//     opts.mode = ...;  opts.seed = base_seed + n;  // print it on failure
//     auto crashed = fs.StateAtOp(n).value()->Crash(opts);
//     auto copy = crashed->Clone();
//     // Recover from *crashed (acknowledged as of op n must be there), then
//     // crash that recovery (crashed->Crash(...)) and recover again, or
//     // recover a second time from *copy and compare.
//   }
//
// Thread-safe: one std::mutex guards everything (not absl::Mutex, whose
// Debian build is not TSan-instrumented). Files and locks handed out share
// ownership of the state, so they may outlive the FaultInjectionFileSystem.
//
// Paths are normalized lexically ("//", trailing "/", "." and ".." removed).
// "/" and "" (the root of relative paths) always exist; every other directory
// must be created (CreateDir, or CreateDirs() for setup) before files go in.
#ifndef WALSTATE_TESTS_FS_FAULT_INJECTION_FS_H_
#define WALSTATE_TESTS_FS_FAULT_INJECTION_FS_H_

#include <cerrno>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "walstate/file_system.h"

namespace walstate {

class FaultInjectionFileSystem : public FileSystem {
 public:
  // Kinds of calls, for counters and fault rules. Kinds marked [logged] get an
  // op index and an op-log entry (including failed attempts); the others are
  // only counted.
  enum class OpKind {
    kAny,          // Fault rules only: every [logged] kind except kPlant.
    kCreate,       // NewWritableFile [logged]
    kReopen,       // ReopenWritableFile
    kAppend,       // WritableFile::Append [logged]
    kSync,         // WritableFile::Sync [logged]
    kPreallocate,  // WritableFile::Preallocate [logged]
    kWriteback,    // WritableFile::StartWriteback (a hint; see above)
    kClose,        // WritableFile::Close
    kOpenRead,     // NewRandomAccessFile (and so ReadFile)
    kRead,         // RandomAccessFile::Read
    kStat,         // FileExists, FileSize, RandomAccessFile::Size
    kListDir,      // ListDir
    kCreateDir,    // CreateDir [logged]
    kDelete,       // DeleteFile [logged]
    kRename,       // RenameFile [logged]
    kTruncate,     // TruncateFile [logged]
    kSyncDir,      // SyncDir [logged]
    kLock,         // LockFile [logged]
    kPlant,        // test helpers that write or damage files [logged]
  };
  static const char* OpKindName(OpKind kind);
  static bool IsLogged(OpKind kind);

  // One op-log entry. `path` is the file (for Append/Sync: the path the file
  // was opened with), `path2` the rename target. For appends `offset` and
  // `length` are what was actually written (a short write logs its prefix).
  struct OpRecord {
    uint64_t index = 0;
    OpKind kind = OpKind::kAny;
    std::string path;
    std::string path2;
    uint64_t offset = 0;
    uint64_t length = 0;
    bool failed = false;
    std::string ToString() const;  // "#12 append /db/x offset=0 length=9"
  };

  // Fails matching calls. Matching calls are counted from when the rule is
  // added; the `nth` one fails (and, if `persistent`, every later one). A
  // failed call changes nothing, except a short write (below) and a failed
  // Sync (which loses the unsynced data, see the model above). The status is
  // what PosixFileSystem returns for `error`, e.g. EIO on Append gives
  // InternalError "write at offset 42 /db/x: Input/output error", ENOSPC gives
  // ResourceExhaustedError with the "free disk space" advice.
  struct FaultRule {
    OpKind kind = OpKind::kAny;
    uint64_t nth = 1;  // 1-based
    bool persistent = false;
    int error = EIO;
    // Append only: write this many bytes (at most all of them) before failing,
    // like a write(2) that returned short and then errored on the retry.
    std::optional<uint64_t> short_write_bytes;
    // Only calls whose path (either path, for renames) contains this match.
    std::string path_contains;
  };

  // What a crash does to data that was not made durable.
  enum class CrashMode {
    kNoLoss,        // Everything written reached the disk (names per NameLoss).
    kDropUnsynced,  // (a) Each file keeps exactly its durable bytes.
    kCutUnsynced,  // (b) Each file keeps its durable bytes plus a random-length
                   // prefix of its unsynced writes, in order.
    kTearSectors,  // (d) Each sector_size unit holding unsynced bytes is
                   // independently kept, dropped (old bytes or zeros; the file
                   // is cut after the last surviving sector) or filled with
                   // garbage. Durable bytes sharing a sector are kept.
    kLeaveOneOut,  // (e) Every unsynced operation (data and names) is applied
                   // except one: an unsynced write becomes a hole (old bytes
                   // or zeros, file size kept), a namespace op is skipped.
                   // `names` is ignored.
  };
  // What a crash does to creates, renames, deletes and mkdirs that no SyncDir
  // covered. Entries whose parent directory did not survive are dropped.
  enum class NameLoss {
    kNone,          // All of them survive.
    kDropUnsynced,  // (c) All of them are undone.
    kRandomPrefix,  // A random prefix of them survives (a journaling file
                    // system commits namespace ops in order).
  };
  struct CrashOptions {
    CrashMode mode = CrashMode::kDropUnsynced;
    NameLoss names = NameLoss::kDropUnsynced;
    uint64_t seed = 0;  // All randomness comes from mt19937_64(seed).
    uint64_t sector_size = 512;
    // kTearSectors: relative weights of each sector's fate.
    uint32_t keep_weight = 1;
    uint32_t drop_weight = 1;
    uint32_t garbage_weight = 1;
    // kLeaveOneOut: the op index to leave out, one of UnsyncedOps(); 0 picks
    // one at random.
    uint64_t leave_out_op = 0;
  };

  FaultInjectionFileSystem();
  ~FaultInjectionFileSystem() override;
  FaultInjectionFileSystem(const FaultInjectionFileSystem&) = delete;
  FaultInjectionFileSystem& operator=(const FaultInjectionFileSystem&) = delete;

  // ---- walstate::FileSystem. Errors mirror PosixFileSystem's messages.
  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::string& path) override;
  absl::StatusOr<std::unique_ptr<WritableFile>> ReopenWritableFile(
      const std::string& path) override;
  absl::StatusOr<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path) override;
  absl::StatusOr<bool> FileExists(const std::string& path) override;
  absl::StatusOr<std::vector<std::string>> ListDir(
      const std::string& dir) override;
  absl::Status CreateDir(const std::string& dir) override;
  absl::Status DeleteFile(const std::string& path) override;
  // Renaming directories is not supported (Unimplemented): walstate only
  // renames files.
  absl::Status RenameFile(const std::string& from,
                          const std::string& to) override;
  absl::Status TruncateFile(const std::string& path, uint64_t size) override;
  absl::StatusOr<uint64_t> FileSize(const std::string& path) override;
  absl::Status SyncDir(const std::string& dir) override;
  // Locks are per inode and in memory; they vanish in every crashed copy.
  absl::StatusOr<std::unique_ptr<FileLock>> LockFile(
      const std::string& path, const std::string& owner) override;

  // ---- Op log and counters.

  // Number of ops logged since construction or ResetOpLog(); the index of the
  // last one.
  uint64_t op_count() const;
  std::vector<OpRecord> OpLog() const;
  // The log entries with first <= index <= last, one per line, for failure
  // messages.
  std::string DumpOpLog(
      uint64_t first = 1,
      uint64_t last = std::numeric_limits<uint64_t>::max()) const;
  // Sync calls (successful or not, through any handle) on a file whose sync
  // had already failed: each is a retry the engine must never make. Only
  // calls logged since ResetOpLog() are seen.
  std::vector<OpRecord> RetriedSyncs() const;
  // Calls made of `kind` (kAny: all logged kinds), including failed ones,
  // since construction or ResetCounters(); optionally only on `path` (as
  // normalized; for Append/Sync/Close the path the file was opened with, for
  // renames the source).
  uint64_t CountOps(OpKind kind) const;
  uint64_t CountOps(OpKind kind, const std::string& path) const;
  // Calls failed by fault rules or SetCrashAfterOp, per kind (kAny: all).
  uint64_t CountInjectedFaults(OpKind kind = OpKind::kAny) const;
  void ResetCounters();
  // Makes the current state the baseline StateAtOp(0) returns and empties the
  // op log (op indices restart at 1). Counters are kept.
  void ResetOpLog();

  // ---- Fault injection.

  // Returns an id for RemoveFault. Rules are checked in the order added; the
  // first that fires decides the error.
  int InjectFault(const FaultRule& rule);
  void RemoveFault(int id);
  void ClearFaults();
  // Simulates power loss after op `n`: every later call of any kind fails with
  // InternalError ("...: Input/output error (simulated power loss after op
  // n)"), has no effect and is not logged. Take Crash() afterwards.
  void SetCrashAfterOp(uint64_t n);
  void ClearCrashAfter();

  // ---- Crash states. The results are new, independent file systems in which
  // every byte and name is durable, with an empty op log (baseline = the
  // crash state), no faults, no locks and zero counters.

  // Indices of the ops whose effects are not yet durable: unsynced writes and
  // O_TRUNC truncations, creates/renames/deletes/mkdirs without a covering
  // SyncDir. The candidates for CrashMode::kLeaveOneOut.
  std::vector<uint64_t> UnsyncedOps() const;
  std::unique_ptr<FaultInjectionFileSystem> Crash(
      const CrashOptions& options) const;
  // A human-readable account of what the crash that made this file system
  // did (mode, seed, per file kept/total bytes, undone names); empty if it
  // was not made by Crash().
  std::string crash_description() const;
  // An exact copy of the state after op `n` (0 = baseline), unsynced data and
  // names included, so it can be Crash()ed. OutOfRange if n > op_count().
  // Rebuilt by replaying the log; replaying forward from the last call's n is
  // incremental.
  absl::StatusOr<std::unique_ptr<FaultInjectionFileSystem>> StateAtOp(
      uint64_t n) const;
  // An exact copy of the current state (unsynced parts included).
  std::unique_ptr<FaultInjectionFileSystem> Clone() const;

  // ---- Test helpers. None is counted or subject to faults; those that
  // change state are logged as kPlant so StateAtOp stays exact.

  // Current bytes of a file; durable bytes of the inode a current name points
  // to.
  absl::StatusOr<std::string> ReadFileBytes(const std::string& path) const;
  absl::StatusOr<std::string> DurableFileBytes(const std::string& path) const;
  // Creates or replaces a file's contents, creating missing parent
  // directories. durable=true makes the bytes and all the names durable;
  // durable=false leaves them as an unsynced create+write would.
  absl::Status WriteFileBytes(const std::string& path, absl::string_view data,
                              bool durable = true);
  // mkdir -p, durable.
  absl::Status CreateDirs(const std::string& dir);
  // Files (not directories) in the current / durable namespace, sorted.
  std::vector<std::string> ListFiles() const;
  std::vector<std::string> ListDurableFiles() const;
  // Damage on disk, for damage sweeps. The file's unsynced writes are made
  // durable first, then the change applies to both views; the name's
  // durability is untouched. OutOfRange if the byte is past the end.
  absl::Status FlipBit(const std::string& path, uint64_t offset, int bit);
  absl::Status OverwriteBytes(const std::string& path, uint64_t offset,
                              absl::string_view data);
  absl::Status TruncateInPlace(const std::string& path, uint64_t size);

  // Writes the current files and directories under `fs_dir` into `real_dir`
  // (created if missing; FailedPrecondition if not empty), e.g. to run walctl
  // on a crash state (Crash() first) or to seed a fuzz corpus.
  absl::Status SaveImage(const std::string& fs_dir,
                         const std::string& real_dir) const;
  // A file system holding the tree under `real_dir` at `fs_dir` (parents
  // created), all durable. Only regular files and directories are accepted.
  static absl::StatusOr<std::unique_ptr<FaultInjectionFileSystem>> LoadImage(
      const std::string& real_dir, const std::string& fs_dir);

  struct Core;  // Implementation; shared with open files and locks.

 private:
  explicit FaultInjectionFileSystem(std::shared_ptr<Core> core);
  std::shared_ptr<Core> core_;
};

}  // namespace walstate

#endif  // WALSTATE_TESTS_FS_FAULT_INJECTION_FS_H_
