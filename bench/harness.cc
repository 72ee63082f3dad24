#include "bench/harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace walstate {
namespace bench {

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

namespace {
int64_t ClockNanos(clockid_t clock) {
  struct timespec ts;
  ::clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}
}  // namespace

int64_t ThreadCpuNanos() { return ClockNanos(CLOCK_THREAD_CPUTIME_ID); }
int64_t ProcessCpuNanos() { return ClockNanos(CLOCK_PROCESS_CPUTIME_ID); }

uint64_t HeapBytes() {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

uint64_t ProcessWriteBytes() {
  std::ifstream in("/proc/self/io");
  std::string key;
  uint64_t value;
  while (in >> key >> value) {
    if (key == "write_bytes:") return value;
  }
  return 0;
}

std::string MakeTempDir(const std::string& tag) {
  const char* base = std::getenv("WALSTATE_BENCH_DIR");
  if (base == nullptr || *base == '\0') base = std::getenv("TEST_TMPDIR");
  if (base == nullptr || *base == '\0') base = "/tmp";
  std::string templ = absl::StrCat(base, "/walstate-bench-", tag, "-XXXXXX");
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    std::perror("mkdtemp");
    std::abort();
  }
  return std::string(buf.data());
}

namespace {

template <typename Fn>
void Walk(const std::string& path, Fn fn) {
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return;
  while (struct dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) {
      continue;
    }
    std::string child = path + "/" + e->d_name;
    struct stat st;
    if (::lstat(child.c_str(), &st) != 0) continue;
    fn(child, e->d_name, st);
  }
  ::closedir(d);
}

}  // namespace

void RemoveTree(const std::string& path) {
  Walk(path, [](const std::string& child, const char*, const struct stat& st) {
    if (S_ISDIR(st.st_mode)) {
      RemoveTree(child);
    } else {
      ::unlink(child.c_str());
    }
  });
  ::rmdir(path.c_str());
}

absl::Status CopyTree(const std::string& from, const std::string& to) {
  ::mkdir(to.c_str(), 0755);
  absl::Status status;
  std::vector<char> buf(1 << 20);
  Walk(from,
       [&](const std::string& child, const char* name, const struct stat& st) {
         if (!status.ok()) return;
         std::string dst = to + "/" + name;
         if (S_ISDIR(st.st_mode)) {
           status = CopyTree(child, dst);
           return;
         }
         int in = ::open(child.c_str(), O_RDONLY | O_CLOEXEC);
         int out = ::open(dst.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                          st.st_mode & 0777);
         if (in < 0 || out < 0) {
           status = absl::InternalError(
               absl::StrCat("copy ", child, ": ", std::strerror(errno)));
         }
         while (status.ok()) {
           ssize_t r = ::read(in, buf.data(), buf.size());
           if (r == 0) break;
           if (r < 0 || ::write(out, buf.data(), r) != r) {
             status = absl::InternalError(
                 absl::StrCat("copy ", child, ": ", std::strerror(errno)));
           }
         }
         if (in >= 0) ::close(in);
         if (out >= 0) ::close(out);
       });
  return status;
}

uint64_t TreeBytes(const std::string& dir) {
  uint64_t total = 0;
  Walk(dir, [&](const std::string& child, const char*, const struct stat& st) {
    if (S_ISDIR(st.st_mode)) {
      total += TreeBytes(child);
    } else if (S_ISREG(st.st_mode)) {
      total += st.st_size;
    }
  });
  return total;
}

namespace {

void SyncTreeAndMaybeDrop(const std::string& dir, bool drop) {
  Walk(dir,
       [drop](const std::string& child, const char*, const struct stat& st) {
         if (S_ISDIR(st.st_mode)) {
           SyncTreeAndMaybeDrop(child, drop);
           return;
         }
         int fd = ::open(child.c_str(), O_RDONLY | O_CLOEXEC);
         if (fd < 0) return;
         ::fdatasync(fd);
         if (drop) ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
         ::close(fd);
       });
}

}  // namespace

void EvictFromCache(const std::string& dir) { SyncTreeAndMaybeDrop(dir, true); }

void SyncTree(const std::string& dir) { SyncTreeAndMaybeDrop(dir, false); }

double Percentile(std::vector<double>* v, double p) {
  if (v->empty()) return 0;
  std::sort(v->begin(), v->end());
  double rank = p * (v->size() - 1);
  size_t lo = static_cast<size_t>(std::floor(rank));
  size_t hi = std::min(lo + 1, v->size() - 1);
  double f = rank - lo;
  return (*v)[lo] * (1 - f) + (*v)[hi] * f;
}

double Median(std::vector<double> v) { return Percentile(&v, 0.5); }

absl::Status Populate(Contestant* c, const Workload& w, ExpectedState* e,
                      uint64_t first, uint64_t n, uint64_t tick_every) {
  GatewaySession s;
  for (uint64_t i = first; i < first + n; ++i) {
    s.Clear();
    w.Expected(i, 0, &s);
    absl::Status st = c->UpdateBatched(w.SessionId(i), &s, kAllFields);
    if (!st.ok()) return st;
    e->Set(i, 0);
    if ((i - first + 1) % tick_every == 0) {
      st = c->Tick();
      if (!st.ok()) return st;
    }
  }
  return c->Tick();
}

absl::StatusOr<TailResult> ApplyTail(Contestant* c, const Workload& w,
                                     ExpectedState* e, uint64_t sessions,
                                     uint64_t records, uint64_t tick_size,
                                     uint64_t* cursor,
                                     std::vector<double>* call_nanos) {
  TailResult result;
  if (sessions == 0) return result;
  // A stride coprime with `sessions` visits every session once per pass, so
  // the sessions of one tick are distinct and spread over the key space.
  uint64_t stride = 7919;
  while (std::gcd(stride, sessions) != 1) ++stride;
  constexpr size_t kChunk = 4096;
  std::vector<GatewaySession> msgs(kChunk);
  std::vector<std::string> ids(kChunk);
  std::vector<uint32_t> masks(kChunk);
  uint64_t done = 0, in_tick = 0;
  const bool tick = tick_size != 0;
  if (!tick) tick_size = ~0ull;
  while (done < records) {
    size_t n = static_cast<size_t>(
        std::min<uint64_t>({kChunk, records - done, tick_size - in_tick}));
    for (size_t k = 0; k < n; ++k) {
      uint64_t index = (*cursor + k) * stride % sessions;
      int32_t version = e->Get(index) + 1;
      if (version < 1) version = 1;
      msgs[k].Clear();
      w.Turn(index, version, &msgs[k]);
      masks[k] = w.TurnMask(version);
      ids[k] = w.SessionId(index);
      e->Set(index, version);
    }
    int64_t t0 = NowNanos();
    int64_t c0 = ThreadCpuNanos();
    int64_t before = t0;
    for (size_t k = 0; k < n; ++k) {
      absl::Status st = c->UpdateBatched(ids[k], &msgs[k], masks[k]);
      if (!st.ok()) return st;
      if (call_nanos != nullptr) {
        const int64_t after = NowNanos();
        call_nanos->push_back(static_cast<double>(after - before));
        before = after;
      }
    }
    result.update_cpu_nanos += ThreadCpuNanos() - c0;
    result.update_nanos += NowNanos() - t0;
    *cursor += n;
    done += n;
    in_tick += n;
    if (tick && (in_tick == tick_size || done == records)) {
      int64_t t1 = NowNanos();
      absl::Status st = c->Tick();
      if (!st.ok()) return st;
      result.tick_nanos += NowNanos() - t1;
      ++result.ticks;
      in_tick = 0;
    }
  }
  return result;
}

absl::Status VerifyContestant(const Contestant& c, const Workload& w,
                              const ExpectedState& e) {
  absl::Status s =
      Verify(w, e, [&c](const SessionVisitor& visit) { c.ForEach(visit); });
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat(c.name(), ": ", s.message()));
  }
  return s;
}

absl::Status ReopenAndVerify(Contestant* c, const std::string& dir,
                             const Workload& w, const ExpectedState& e) {
  absl::Status s = c->Close();
  if (s.ok()) s = c->Open(dir);
  if (s.ok()) s = VerifyContestant(*c, w, e);
  return s;
}

}  // namespace bench
}  // namespace walstate
