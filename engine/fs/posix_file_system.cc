// POSIX implementation of FileSystem: the one used outside tests.
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "walstate/file_system.h"

namespace walstate {
namespace {

absl::Status PosixError(absl::string_view op, const std::string& path,
                        int err) {
  return ErrnoToStatus(op, path, err);
}

class PosixWritableFile : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd, uint64_t size)
      : path_(std::move(path)), fd_(fd), size_(size) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  absl::Status Append(absl::string_view data) override {
    const char* p = data.data();
    size_t left = data.size();
    while (left > 0) {
      ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        return PosixError(absl::StrCat("write at offset ", size_), path_,
                          errno);
      }
      if (n == 0) {
        return absl::InternalError(
            absl::StrCat("write at offset ", size_, " ", path_,
                         ": wrote 0 bytes (device full or failing?)"));
      }
      p += n;
      left -= static_cast<size_t>(n);
      size_ += static_cast<uint64_t>(n);
    }
    return absl::OkStatus();
  }

  absl::Status Sync() override {
    if (::fdatasync(fd_) != 0) return PosixError("fdatasync", path_, errno);
    return absl::OkStatus();
  }

  absl::Status Preallocate(uint64_t bytes) override {
    int rc = ::fallocate(fd_, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(size_),
                         static_cast<off_t>(bytes));
    if (rc != 0) {
      // File systems without fallocate: preallocation is only an optimization.
      if (errno == EOPNOTSUPP || errno == ENOSYS) return absl::OkStatus();
      return PosixError("fallocate", path_, errno);
    }
    return absl::OkStatus();
  }

  absl::Status StartWriteback(uint64_t offset, uint64_t length) override {
    // SYNC_FILE_RANGE_WRITE alone, never the WAIT flags: waiting goes through
    // the kernel's per-file writeback error cursor (file_fdatawait_range), so
    // a waiting sync_file_range could take the error of a failed writeback
    // for itself and leave the next fdatasync returning success for pages
    // that never reached the disk. Without them, a writeback error stays for
    // fdatasync to report, and this call only queues I/O.
    if (::sync_file_range(fd_, static_cast<off_t>(offset),
                          static_cast<off_t>(length),
                          SYNC_FILE_RANGE_WRITE) != 0) {
      return PosixError(absl::StrCat("sync_file_range (start writeback) of ",
                                     length, " bytes at offset ", offset),
                        path_, errno);
    }
    return absl::OkStatus();
  }

  uint64_t Size() const override { return size_; }

  absl::Status Close() override {
    if (fd_ < 0) return absl::OkStatus();
    int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) return PosixError("close", path_, errno);
    return absl::OkStatus();
  }

  const std::string& path() const override { return path_; }

 private:
  std::string path_;
  int fd_;
  uint64_t size_;
};

class PosixRandomAccessFile : public RandomAccessFile {
 public:
  PosixRandomAccessFile(std::string path, int fd)
      : path_(std::move(path)), fd_(fd) {}
  ~PosixRandomAccessFile() override { ::close(fd_); }

  absl::StatusOr<absl::string_view> Read(uint64_t offset, size_t n,
                                         char* scratch) const override {
    size_t done = 0;
    while (done < n) {
      ssize_t r = ::pread(fd_, scratch + done, n - done,
                          static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        return PosixError(absl::StrCat("read at offset ", offset + done), path_,
                          errno);
      }
      if (r == 0) break;
      done += static_cast<size_t>(r);
    }
    return absl::string_view(scratch, done);
  }

  absl::StatusOr<uint64_t> Size() const override {
    struct stat st;
    if (::fstat(fd_, &st) != 0) return PosixError("fstat", path_, errno);
    return static_cast<uint64_t>(st.st_size);
  }

  const std::string& path() const override { return path_; }

 private:
  std::string path_;
  int fd_;
};

class PosixMapping : public MappedFile {
 public:
  PosixMapping(void* base, size_t size) : base_(base), size_(size) {}
  ~PosixMapping() override { ::munmap(base_, size_); }
  absl::string_view data() const override {
    return absl::string_view(static_cast<const char*>(base_), size_);
  }

 private:
  void* base_;
  size_t size_;
};

// A file read through its mapping: Read copies from it (the FileScanner
// does not call Read on a mapped file; it reads the mapping directly).
class PosixMappedFile : public RandomAccessFile {
 public:
  PosixMappedFile(std::string path, std::shared_ptr<const MappedFile> mapping)
      : path_(std::move(path)), mapping_(std::move(mapping)) {}

  absl::StatusOr<absl::string_view> Read(uint64_t offset, size_t n,
                                         char* scratch) const override {
    const absl::string_view all = mapping_->data();
    if (offset >= all.size()) return absl::string_view(scratch, 0);
    const absl::string_view part = all.substr(offset, n);
    std::memcpy(scratch, part.data(), part.size());
    return absl::string_view(scratch, part.size());
  }
  absl::StatusOr<uint64_t> Size() const override {
    return mapping_->data().size();
  }
  const std::string& path() const override { return path_; }
  std::shared_ptr<const MappedFile> mapping() const override {
    return mapping_;
  }

 private:
  std::string path_;
  std::shared_ptr<const MappedFile> mapping_;
};

// Two locks: the LOCK file's, which names the holder, and one on the
// directory's own descriptor, which `rm LOCK` cannot take away (a second
// process would create and lock a new LOCK file, but not the directory).
class PosixFileLock : public FileLock {
 public:
  PosixFileLock(int fd, int dir_fd) : fd_(fd), dir_fd_(dir_fd) {}
  ~PosixFileLock() override {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
    ::flock(dir_fd_, LOCK_UN);
    ::close(dir_fd_);
  }

 private:
  int fd_;
  int dir_fd_;
};

// Who holds the lock, as the LOCK file at `fd` says.
std::string LockHolder(int fd) {
  char buf[256];
  ssize_t n = fd < 0 ? -1 : ::pread(fd, buf, sizeof(buf) - 1, 0);
  std::string holder =
      n > 0 ? std::string(buf, static_cast<size_t>(n)) : "unknown";
  while (!holder.empty() && (holder.back() == '\n' || holder.back() == 0))
    holder.pop_back();
  return holder;
}

std::string DirOf(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Every file walstate writes is opened with O_NOFOLLOW: a symlink planted
// under one of its names (LOCK, a segment, MANIFEST.tmp) is refused (ELOOP),
// never written through. Reads follow links (reading destroys nothing); the
// engine refuses a directory whose files are links before reading, unless
// Options::allow_symlinked_files says otherwise.
class PosixFileSystem : public FileSystem {
 public:
  PosixFileSystem(mode_t file_mode, mode_t dir_mode)
      : file_mode_(file_mode), dir_mode_(dir_mode) {}

  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::string& path) override {
    int fd = ::open(path.c_str(),
                    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                    file_mode_);
    if (fd < 0) return PosixError("create", path, errno);
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      return absl::FailedPreconditionError(absl::StrCat(
          "create ", path, ": not a regular file (move it out of the way)"));
    }
    return std::unique_ptr<WritableFile>(new PosixWritableFile(path, fd, 0));
  }

  absl::StatusOr<std::unique_ptr<WritableFile>> NewExclusiveFile(
      const std::string& path) override {
    int fd = ::open(path.c_str(),
                    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                    file_mode_);
    if (fd < 0) return PosixError("create (exclusive)", path, errno);
    return std::unique_ptr<WritableFile>(new PosixWritableFile(path, fd, 0));
  }

  absl::StatusOr<bool> IsSymlink(const std::string& path) override {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0)
      return PosixError("lstat", path, errno);
    return S_ISLNK(st.st_mode);
  }

  absl::StatusOr<uint32_t> FileMode(const std::string& path) override {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0)
      return PosixError("lstat", path, errno);
    return static_cast<uint32_t>(st.st_mode & 07777);
  }

  absl::Status SetFileMode(const std::string& path, uint32_t mode) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return PosixError("open to set mode", path, errno);
    absl::Status s;
    if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) {
      s = PosixError("chmod", path, errno);
    }
    ::close(fd);
    return s;
  }

  uint32_t new_file_mode() const override { return file_mode_; }

  absl::StatusOr<std::unique_ptr<WritableFile>> ReopenWritableFile(
      const std::string& path) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return PosixError("open for append", path, errno);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return PosixError("fstat", path, err);
    }
    return std::unique_ptr<WritableFile>(
        new PosixWritableFile(path, fd, static_cast<uint64_t>(st.st_size)));
  }

  absl::StatusOr<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return PosixError("open", path, errno);
    struct stat st;
    if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
      ::close(fd);
      return absl::FailedPreconditionError(
          absl::StrCat("open ", path, ": is a directory, not a file"));
    }
    return std::unique_ptr<RandomAccessFile>(
        new PosixRandomAccessFile(path, fd));
  }

  absl::StatusOr<std::unique_ptr<RandomAccessFile>> NewMappedFile(
      const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return PosixError("open", path, errno);
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
      ::close(fd);
      return NewRandomAccessFile(path);  // its errors, or an unmapped file
    }
    const size_t size = static_cast<size_t>(st.st_size);
    // Populated: the pages (in the page cache after a recent write) are
    // mapped in one call rather than faulted in one by one.
    void* base =
        ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    ::close(fd);
    if (base == MAP_FAILED) return NewRandomAccessFile(path);
    return std::unique_ptr<RandomAccessFile>(
        new PosixMappedFile(path, std::make_shared<PosixMapping>(base, size)));
  }

  absl::StatusOr<bool> FileExists(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0) return true;
    if (errno == ENOENT) return false;
    return PosixError("stat", path, errno);
  }

  absl::StatusOr<std::vector<std::string>> ListDir(
      const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return PosixError("list directory", dir, errno);
    std::vector<std::string> names;
    while (struct dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0)
        continue;
      names.emplace_back(e->d_name);
    }
    ::closedir(d);
    return names;
  }

  absl::Status CreateDir(const std::string& dir) override {
    if (::mkdir(dir.c_str(), dir_mode_) != 0 && errno != EEXIST)
      return PosixError("mkdir", dir, errno);
    return absl::OkStatus();
  }

  absl::Status DeleteFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return PosixError("unlink", path, errno);
    return absl::OkStatus();
  }

  absl::Status RenameFile(const std::string& from,
                          const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0)
      return PosixError(absl::StrCat("rename to ", to, " from"), from, errno);
    return absl::OkStatus();
  }

  absl::Status TruncateFile(const std::string& path, uint64_t size) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return PosixError("open for truncate", path, errno);
    absl::Status s;
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
      s = PosixError(absl::StrCat("truncate to ", size, " bytes"), path, errno);
    } else if (::fsync(fd) != 0) {
      s = PosixError("fsync after truncate", path, errno);
    }
    ::close(fd);
    return s;
  }

  absl::StatusOr<uint64_t> FileSize(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return PosixError("stat", path, errno);
    return static_cast<uint64_t>(st.st_size);
  }

  absl::Status SyncDir(const std::string& dir) override {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return PosixError("open directory", dir, errno);
    absl::Status s;
    if (::fsync(fd) != 0) s = PosixError("fsync directory", dir, errno);
    ::close(fd);
    return s;
  }

  absl::StatusOr<std::unique_ptr<FileLock>> LockFile(
      const std::string& path, const std::string& owner) override {
    const std::string dir = DirOf(path);
    int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) return PosixError("open directory to lock", dir, errno);
    if (::flock(dir_fd, LOCK_EX | LOCK_NB) != 0) {
      int err = errno;
      ::close(dir_fd);
      if (err != EWOULDBLOCK) return PosixError("flock", dir, err);
      int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      std::string holder =
          fd >= 0 ? LockHolder(fd)
                  : "another process (its " + path + " file was removed)";
      if (fd >= 0) ::close(fd);
      return LockHeldError(path, holder);
    }
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
                    file_mode_);
    if (fd < 0) {
      int err = errno;
      ::close(dir_fd);
      return PosixError("open lock file", path, err);
    }
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      ::close(dir_fd);
      return absl::FailedPreconditionError(absl::StrCat(
          "lock ", path, ": not a regular file (move it out of the way)"));
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int err = errno;
      std::string holder = LockHolder(fd);
      ::close(fd);
      ::close(dir_fd);
      if (err == EWOULDBLOCK) {
        return LockHeldError(path, holder);
      }
      return PosixError("flock", path, err);
    }
    if (::ftruncate(fd, 0) == 0) {
      std::string line = owner + "\n";
      (void)!::pwrite(fd, line.data(), line.size(), 0);
    }
    return std::unique_ptr<FileLock>(new PosixFileLock(fd, dir_fd));
  }

 private:
  const mode_t file_mode_;
  const mode_t dir_mode_;
};

}  // namespace

FileSystem* FileSystem::Default() {
  static FileSystem* fs = new PosixFileSystem(0600, 0700);
  return fs;
}

FileSystem* FileSystem::DefaultGroupReadable() {
  static FileSystem* fs = new PosixFileSystem(0640, 0750);
  return fs;
}

absl::Status FileSystem::ReadFile(const std::string& path, std::string* out) {
  auto file = NewRandomAccessFile(path);
  if (!file.ok()) return file.status();
  auto size = (*file)->Size();
  if (!size.ok()) return size.status();
  out->resize(*size);
  auto data = (*file)->Read(0, *size, out->data());
  if (!data.ok()) return data.status();
  out->resize(data->size());
  return absl::OkStatus();
}

absl::Status ErrnoToStatus(absl::string_view op, absl::string_view path,
                           int err) {
  std::string msg = absl::StrCat(op, " ", path, ": ", strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(msg);
    case EEXIST:
      return absl::AlreadyExistsError(msg);
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(
          absl::StrCat(msg, " (check the directory's owner and mode)"));
    case ELOOP:
      return absl::FailedPreconditionError(absl::StrCat(
          msg,
          " (a symbolic link, or a loop of them: walstate never writes "
          "through a symlink in its directory; replace the link by the file "
          "itself or move it out)"));
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(
          absl::StrCat(msg, " (free disk space, then reopen the store)"));
    default:
      return absl::InternalError(msg);
  }
}

namespace {
// The payload type URL that marks a held lock; the value is not used.
constexpr char kLockHeldPayload[] = "walstate/lock-held";
}  // namespace

absl::Status LockHeldError(absl::string_view path, absl::string_view holder) {
  absl::Status s = absl::FailedPreconditionError(absl::StrCat(
      "lock ", path, ": held by ", holder,
      "; only one process may open a data directory (stop it first)"));
  s.SetPayload(kLockHeldPayload, absl::Cord(holder));
  return s;
}

bool IsLockHeld(const absl::Status& status) {
  return status.GetPayload(kLockHeldPayload).has_value();
}

std::string JoinPath(absl::string_view dir, absl::string_view name) {
  if (dir.empty()) return std::string(name);
  if (dir.back() == '/') return absl::StrCat(dir, name);
  return absl::StrCat(dir, "/", name);
}

}  // namespace walstate
