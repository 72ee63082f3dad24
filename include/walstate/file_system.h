// The file-system interface every byte of walstate's I/O goes through.
//
// Why an interface: crash-safety tests swap in a fault-injecting file system
// (tests/fs/fault_injection_fs.h) that records each write, sync, create,
// rename, delete and directory sync, and can then produce the states a power
// loss or a failing disk would leave. Code that called POSIX directly could
// not be tested that way.
//
// Every fallible call returns absl::Status naming the operation and the path.
// A failed Sync() is final for that file: the caller must not retry it (Linux
// reports a writeback error once and marks the pages clean), but stop using
// the file and recover from what is on disk.
#ifndef WALSTATE_FILE_SYSTEM_H_
#define WALSTATE_FILE_SYSTEM_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace walstate {

// A file opened for appending. Not thread-safe; one owner at a time.
class WritableFile {
 public:
  virtual ~WritableFile() = default;

  // Appends `data` at the end of the file. Either all bytes are written or an
  // error is returned (a short write is retried internally until it fails).
  virtual absl::Status Append(absl::string_view data) = 0;

  // Makes everything appended so far durable (fdatasync). After an error the
  // file must not be used again: the error is never retried.
  virtual absl::Status Sync() = 0;

  // Reserves `bytes` past the current end without changing the file size
  // (fallocate KEEP_SIZE); optional, used to avoid metadata syncs.
  virtual absl::Status Preallocate(uint64_t bytes) = 0;

  // Asks the OS to start writing bytes [offset, offset + length) to the
  // device now and returns without waiting for that I/O (Linux:
  // sync_file_range with SYNC_FILE_RANGE_WRITE only). It is a hint, not a
  // sync: it makes nothing durable (no metadata, no device cache flush), so
  // it never stands in for Sync(). Its use is latency: a later Sync() finds
  // those pages already written or in flight instead of having to push them
  // itself. An error is advisory too: it does not make the file unusable,
  // and whatever went wrong with the data is reported by the next Sync().
  virtual absl::Status StartWriteback(uint64_t offset, uint64_t length) = 0;

  // Bytes appended so far, including what the file held when opened.
  virtual uint64_t Size() const = 0;

  virtual absl::Status Close() = 0;

  // The path this file was opened with, for error messages.
  virtual const std::string& path() const = 0;
};

// A file opened for positional reads. Thread-safe.
// A file's bytes mapped into memory, read-only, for as long as this object
// lives. The file must not be truncated meanwhile (walstate never truncates
// a snapshot, and replaces a file only by renaming a new one over it).
class MappedFile {
 public:
  virtual ~MappedFile() = default;
  virtual absl::string_view data() const = 0;
};

class RandomAccessFile {
 public:
  virtual ~RandomAccessFile() = default;

  // The mapping of the whole file, if it was opened mapped
  // (FileSystem::NewMappedFile); a reader holding it may keep views into its
  // bytes. Null otherwise.
  virtual std::shared_ptr<const MappedFile> mapping() const { return nullptr; }

  // Reads up to `n` bytes at `offset` into `scratch`; returns the bytes read,
  // which are fewer than `n` only at end of file.
  virtual absl::StatusOr<absl::string_view> Read(uint64_t offset, size_t n,
                                                 char* scratch) const = 0;

  virtual absl::StatusOr<uint64_t> Size() const = 0;

  virtual const std::string& path() const = 0;
};

// An advisory whole-directory lock held until released or the process dies.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  // The process-wide POSIX implementation. It creates files 0600 and
  // directories 0700 (before the umask): session data is private. It never
  // follows a symlink for a file it creates or writes (O_NOFOLLOW): such a
  // call fails with FailedPrecondition naming the file.
  static FileSystem* Default();
  // The same, creating files 0640 and directories 0750
  // (Options::group_readable).
  static FileSystem* DefaultGroupReadable();

  // Creates (or truncates) `path` for appending. The caller must SyncDir() the
  // parent before relying on the new name surviving a crash.
  virtual absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::string& path) = 0;

  // Creates `path`, which must not exist yet (O_EXCL): AlreadyExists
  // otherwise. For names whose previous owner must never be truncated (a new
  // log segment). The default checks FileExists first (not atomic; file
  // systems for tests).
  virtual absl::StatusOr<std::unique_ptr<WritableFile>> NewExclusiveFile(
      const std::string& path) {
    auto exists = FileExists(path);
    if (!exists.ok()) return exists.status();
    if (*exists) {
      return absl::AlreadyExistsError("create (exclusive) " + path +
                                      ": File exists");
    }
    return NewWritableFile(path);
  }

  // Whether `path` itself is a symbolic link (lstat). The default: false (a
  // file system without links).
  virtual absl::StatusOr<bool> IsSymlink(const std::string& path) {
    (void)path;
    return false;
  }

  // The permission bits of `path` (lstat), and setting them; `repair` and
  // the backups of recovery keep a file's mode. Defaults: 0600, no-op.
  virtual absl::StatusOr<uint32_t> FileMode(const std::string& path) {
    (void)path;
    return 0600u;
  }
  virtual absl::Status SetFileMode(const std::string& path, uint32_t mode) {
    (void)path;
    (void)mode;
    return absl::OkStatus();
  }
  // The mode new files are created with (before the umask).
  virtual uint32_t new_file_mode() const { return 0600; }

  // Opens an existing file for appending at its current end.
  virtual absl::StatusOr<std::unique_ptr<WritableFile>> ReopenWritableFile(
      const std::string& path) = 0;

  virtual absl::StatusOr<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path) = 0;

  // The same, with the file's bytes mapped into memory (mapping() not
  // null), for a reader that keeps views into what it read. Where mapping
  // is not possible (this default, an empty file, mmap failing), an
  // unmapped file as NewRandomAccessFile gives.
  virtual absl::StatusOr<std::unique_ptr<RandomAccessFile>> NewMappedFile(
      const std::string& path) {
    return NewRandomAccessFile(path);
  }

  // Reads a whole file into `out`. NotFound if it does not exist.
  virtual absl::Status ReadFile(const std::string& path, std::string* out);

  virtual absl::StatusOr<bool> FileExists(const std::string& path) = 0;

  // Names (not paths) of the entries of `dir`, excluding "." and "..".
  virtual absl::StatusOr<std::vector<std::string>> ListDir(
      const std::string& dir) = 0;

  virtual absl::Status CreateDir(const std::string& dir) = 0;  // ok if exists
  virtual absl::Status DeleteFile(const std::string& path) = 0;

  // Atomically replaces `to` with `from` (rename(2)); SyncDir() makes it
  // durable.
  virtual absl::Status RenameFile(const std::string& from,
                                  const std::string& to) = 0;

  // Cuts `path` to `size` bytes and syncs it.
  virtual absl::Status TruncateFile(const std::string& path, uint64_t size) = 0;

  virtual absl::StatusOr<uint64_t> FileSize(const std::string& path) = 0;

  // fsyncs the directory so that creates, renames and deletes in it survive a
  // crash.
  virtual absl::Status SyncDir(const std::string& dir) = 0;

  // Takes an exclusive lock on `path` (created if missing) and writes `owner`
  // into it. LockHeldError (FailedPrecondition naming the holder the file
  // records) if another process holds it.
  virtual absl::StatusOr<std::unique_ptr<FileLock>> LockFile(
      const std::string& path, const std::string& owner) = 0;
};

// The status for a failed file-system call `op` on `path` with errno `err`:
// names both and, for errors an operator can act on (permissions, a full
// disk), says what to do. Every FileSystem implementation uses it, so code
// under test sees the statuses it will see in production.
absl::Status ErrnoToStatus(absl::string_view op, absl::string_view path,
                           int err);

// The status LockFile returns when another process holds the lock on
// `path`: FailedPrecondition naming the `holder` the lock file records, with
// the payload that IsLockHeld looks for, so callers (walctl's exit code 75)
// tell a busy directory from other failures without reading the message.
absl::Status LockHeldError(absl::string_view path, absl::string_view holder);

// Whether `status` is a LockHeldError (or keeps its payload).
bool IsLockHeld(const absl::Status& status);

// Joins a directory and a file name.
std::string JoinPath(absl::string_view dir, absl::string_view name);

}  // namespace walstate

#endif  // WALSTATE_FILE_SYSTEM_H_
