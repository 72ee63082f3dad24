// The raw floor: the least work a durable log of these sessions can do.
//
//  - Identity: append one record with write() and fdatasync() it; concurrent
//    writers share one fdatasync (a minimal leader/follower group commit).
//  - Tick: every dirty session's dirty fields as one record each, plus a
//    commit record, in one write() and one fdatasync().
//  - Compact: a snapshot file with one record per live session, then an
//    empty log.
//  - Open: read the snapshot then the log, check each record's XXH3, parse
//    it and apply it into the hash map.
// With ContestantOptions::floor_preallocate the log is extended ahead in
// chunks of zeros written and synced (at Open, and by a commit that would
// cross the end), records are written with pwrite at the end of the data, and
// replay stops at the first all-zero header. It does not cut torn tails, check
// sequence numbers, drop uncommitted ticks or keep indexes; it is a lower
// bound, not a store.
//
// Record: u32 payload length, u32 type, u64 XXH3-64 of the payload, payload.
// Payload: u8 id length, id, serialized GatewaySession of the set fields.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "bench/map_contestant.h"
#include "xxhash.h"

namespace walstate {
namespace bench {
namespace {

constexpr uint32_t kUpdate = 1;
constexpr uint32_t kCommit = 2;
constexpr size_t kHeader = 16;

absl::Status Errno(const std::string& what, const std::string& path) {
  return absl::InternalError(
      absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

absl::Status WriteAll(int fd, const char* p, size_t n,
                      const std::string& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Errno("write", path);
    }
    p += w;
    n -= w;
  }
  return absl::OkStatus();
}

void AppendRecord(uint32_t type, absl::string_view id,
                  const GatewaySession* values, std::string* out) {
  size_t start = out->size();
  size_t body = values == nullptr ? 0 : values->ByteSizeLong();
  size_t len = id.empty() && values == nullptr ? 0 : 1 + id.size() + body;
  out->resize(start + kHeader + len);
  char* h = &(*out)[start];
  uint32_t len32 = static_cast<uint32_t>(len);
  std::memcpy(h, &len32, 4);
  std::memcpy(h + 4, &type, 4);
  char* p = h + kHeader;
  if (len > 0) {
    *p = static_cast<char>(id.size());
    std::memcpy(p + 1, id.data(), id.size());
    if (values != nullptr) {
      values->SerializeWithCachedSizesToArray(
          reinterpret_cast<uint8_t*>(p + 1 + id.size()));
    }
  }
  uint64_t hash = XXH3_64bits(p, len);
  std::memcpy(h + 8, &hash, 8);
}

constexpr uint64_t kPreallocateChunk = 16 << 20;

class FloorContestant : public MapContestant {
 public:
  explicit FloorContestant(bool preallocate) : preallocate_(preallocate) {}
  std::string name() const override { return "floor"; }

  absl::Status Open(const std::string& dir) override {
    dir_ = dir;
    ::mkdir(dir.c_str(), 0755);
    uint64_t end = 0;
    absl::Status s = Replay(dir + "/floor.snap", &end);
    if (s.ok()) s = Replay(dir + "/floor.log", &end);
    if (!s.ok()) return s;
    log_path_ = dir + "/floor.log";
    const int append = preallocate_ ? 0 : O_APPEND;
    fd_ = ::open(log_path_.c_str(), O_WRONLY | append | O_CLOEXEC);
    bool created = false;
    if (fd_ < 0) {
      fd_ = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | append | O_CLOEXEC,
                   0644);
      if (fd_ < 0) return Errno("open", log_path_);
      created = true;
    }
    if (preallocate_) {
      struct stat st;
      if (::fstat(fd_, &st) != 0) return Errno("fstat", log_path_);
      offset_ = end;
      allocated_ = static_cast<uint64_t>(st.st_size);
      // A chunk ahead now, so the first writes do not pay for it.
      absl::Status s = Extend(kPreallocateChunk / 2);
      if (!s.ok()) return s;
    }
    // Only a new file needs its directory entry synced.
    return created ? SyncDir() : absl::OkStatus();
  }

  absl::Status WriteIdentity(const std::string& id,
                             const GatewaySession& identity) override {
    std::string record;
    AppendRecord(kUpdate, id, &identity, &record);
    {
      absl::MutexLock lock(&mu_);
      ApplyFields(identity, kIdentityFields, &map_[id]);
    }
    return Commit(record, 1);
  }

  absl::Status Tick() override {
    std::string buf;
    GatewaySession part;
    uint64_t records = 0;
    DrainDirty(
        [&](const std::string& id, const GatewaySession& state, uint32_t mask) {
          part.Clear();
          ApplyFields(state, mask, &part);
          AppendRecord(kUpdate, id, &part, &buf);
          ++records;
        });
    AppendRecord(kCommit, "", nullptr, &buf);
    return Commit(buf, records);
  }

  absl::Status Compact() override {
    std::string tmp = dir_ + "/floor.snap.tmp";
    int fd =
        ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return Errno("open", tmp);
    std::string buf;
    absl::Status s;
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [id, state] : map_) {
        AppendRecord(kUpdate, id, &state, &buf);
        if (buf.size() >= (4 << 20)) {
          s.Update(WriteAll(fd, buf.data(), buf.size(), tmp));
          buf.clear();
        }
      }
    }
    s.Update(WriteAll(fd, buf.data(), buf.size(), tmp));
    if (::fdatasync(fd) != 0) s.Update(Errno("fdatasync", tmp));
    ::close(fd);
    if (!s.ok()) return s;
    absl::MutexLock lock(&log_mu_);
    if (::rename(tmp.c_str(), (dir_ + "/floor.snap").c_str()) != 0) {
      return Errno("rename", tmp);
    }
    if (::ftruncate(fd_, 0) != 0) return Errno("ftruncate", log_path_);
    offset_ = allocated_ = 0;
    if (::fdatasync(fd_) != 0) return Errno("fdatasync", log_path_);
    return SyncDir();
  }

  absl::Status Close() override {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    ClearMemory();
    return absl::OkStatus();
  }

  SyncCounters sync_counters() const override {
    absl::MutexLock lock(&log_mu_);
    return SyncCounters{true, syncs_, synced_records_};
  }

 private:
  // Appends `data` and returns once it is durable; whoever finds no sync in
  // progress becomes the leader and writes everything queued so far.
  absl::Status Commit(const std::string& data, uint64_t records_in_data) {
    absl::MutexLock lock(&log_mu_);
    uint64_t mine = ++enqueued_;
    pending_.append(data);
    pending_records_ += records_in_data;
    while (durable_ < mine) {
      if (leader_active_) {
        cv_.Wait(&log_mu_);  // woken when the leader finishes
        continue;
      }
      leader_active_ = true;
      std::string buf;
      buf.swap(pending_);
      uint64_t upto = enqueued_;
      uint64_t records = pending_records_;
      pending_records_ = 0;
      log_mu_.Unlock();
      absl::Status s = preallocate_
                           ? WriteAt(buf)
                           : WriteAll(fd_, buf.data(), buf.size(), log_path_);
      if (s.ok() && ::fdatasync(fd_) != 0) s = Errno("fdatasync", log_path_);
      log_mu_.Lock();
      leader_active_ = false;
      ++syncs_;
      synced_records_ += records;
      durable_ = upto;
      if (!s.ok()) status_ = s;
      cv_.SignalAll();
    }
    return status_;
  }

  // Preallocated log: writes `buf` at the end of the data, first extending
  // the file with synced zeros if `buf` would cross its end. Called by the
  // group-commit leader only.
  absl::Status WriteAt(const std::string& buf) {
    absl::Status s = Extend(buf.size());
    if (!s.ok()) return s;
    for (size_t done = 0; done < buf.size();) {
      ssize_t w = ::pwrite(fd_, buf.data() + done, buf.size() - done,
                           static_cast<off_t>(offset_ + done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return Errno("pwrite", log_path_);
      done += static_cast<size_t>(w);
    }
    offset_ += buf.size();
    return absl::OkStatus();
  }

  // Preallocated log: makes room for `n` more bytes after the data with
  // chunks of zeros, written and synced now.
  absl::Status Extend(size_t n) {
    if (offset_ + n <= allocated_) return absl::OkStatus();
    const std::string zeros(kPreallocateChunk, '\0');
    while (offset_ + n > allocated_) {
      if (::pwrite(fd_, zeros.data(), zeros.size(),
                   static_cast<off_t>(allocated_)) !=
          static_cast<ssize_t>(zeros.size())) {
        return Errno("preallocating (pwrite)", log_path_);
      }
      allocated_ += zeros.size();
    }
    if (::fdatasync(fd_) != 0) return Errno("fdatasync", log_path_);
    return absl::OkStatus();
  }

  absl::Status SyncDir() {
    int fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Errno("open", dir_);
    int rc = ::fsync(fd);
    ::close(fd);
    return rc == 0 ? absl::OkStatus() : Errno("fsync", dir_);
  }

  // Applies the records of `path`; *end = the offset after the last one (a
  // preallocated log's data ends at the first all-zero header).
  absl::Status Replay(const std::string& path, uint64_t* end) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? absl::OkStatus() : Errno("open", path);
    std::string buf;
    size_t begin = 0;       // first unparsed byte of buf
    uint64_t consumed = 0;  // file offset of buf[0]
    bool zero_end = false;
    GatewaySession parsed;
    absl::MutexLock lock(&mu_);
    absl::Status s;
    for (;;) {
      // Keep the unparsed rest, then read up to 8 MiB more.
      consumed += begin;
      buf.erase(0, begin);
      begin = 0;
      size_t have = buf.size();
      buf.resize(have + (8 << 20));
      ssize_t r = ::read(fd, &buf[have], buf.size() - have);
      if (r < 0) {
        if (errno == EINTR) {
          buf.resize(have);
          continue;
        }
        s = Errno("read", path);
        break;
      }
      buf.resize(have + r);
      bool eof = r == 0;
      while (buf.size() - begin >= kHeader) {
        const char* h = buf.data() + begin;
        uint32_t len, type;
        uint64_t hash;
        std::memcpy(&len, h, 4);
        std::memcpy(&type, h + 4, 4);
        std::memcpy(&hash, h + 8, 8);
        if (len == 0 && type == 0 && hash == 0) {
          zero_end = true;  // the preallocated rest of the log
          break;
        }
        if (buf.size() - begin - kHeader < len) {
          if (buf.capacity() < kHeader + len) buf.reserve(kHeader + len);
          break;
        }
        const char* p = h + kHeader;
        if (XXH3_64bits(p, len) != hash) {
          s = absl::DataLossError(absl::StrCat("bad hash in ", path));
          break;
        }
        if (type == kUpdate && len > 0) {
          size_t id_len = static_cast<uint8_t>(*p);
          if (!parsed.ParseFromArray(p + 1 + id_len,
                                     static_cast<int>(len - 1 - id_len))) {
            s = absl::DataLossError(absl::StrCat("bad record in ", path));
            break;
          }
          MoveSetFields(&parsed, &map_[std::string(p + 1, id_len)]);
        }
        begin += kHeader + len;
      }
      if (!s.ok() || eof || zero_end) break;
    }
    ::close(fd);
    *end = consumed + begin;
    return s;
  }

  const bool preallocate_;
  std::string dir_, log_path_;
  int fd_ = -1;
  // Preallocated log: end of the data and of the zeroed space (leader only).
  uint64_t offset_ = 0;
  uint64_t allocated_ = 0;

  mutable absl::Mutex log_mu_;
  absl::CondVar cv_;
  std::string pending_;
  uint64_t pending_records_ = 0;
  uint64_t enqueued_ = 0;
  uint64_t durable_ = 0;
  bool leader_active_ = false;
  absl::Status status_;
  uint64_t syncs_ = 0;
  uint64_t synced_records_ = 0;
};

ContestantRegistrar registrar("floor", 100, [](const ContestantOptions& o) {
  return std::make_unique<FloorContestant>(o.floor_preallocate);
});

}  // namespace
}  // namespace bench
}  // namespace walstate
