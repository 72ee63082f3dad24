// Manual latency check of the log layer (not a test): IMMEDIATE-style
// Append + SyncTo latency while another thread writes a large tick the way
// the engine does (Flush every --write_kib, SyncTo every --sync_kib), and
// idle, with the writeback hints the writer gives after each Flush on and off
// (off: a file system wrapper that ignores StartWriteback), alternating
// within one process so both see the same disk.
//
//   bazel run -c opt //tests/log:tick_latency -- --rounds 6 --interval_us 0
//
// --interval_us is the pause between IMMEDIATE updates: 0 is back to back
// (as bench BM_ImmediateDuringTick), a few ms is a sparse production-like
// stream whose fdatasyncs otherwise find a whole sync slice still dirty.
// --encode_ns is CPU time spent per tick record outside the writer, standing
// in for the engine's encoding, so the tick is not unrealistically fast.
// --yield_every N makes the tick thread call sched_yield() every N records,
// to see how much of the busy tail is per-CPU kernel work (I/O submission
// and completion) waiting for the CPU the tick thread keeps busy.
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/log/writer.h"
#include "tests/log/test_util.h"

namespace walstate {
namespace log {
namespace {

// Passes everything to the POSIX file system except StartWriteback, which
// does nothing: the writer as it was before it gave writeback hints.
class NoHintFileSystem : public FileSystem {
 public:
  class File : public WritableFile {
   public:
    explicit File(std::unique_ptr<WritableFile> base)
        : base_(std::move(base)) {}
    absl::Status Append(absl::string_view data) override {
      return base_->Append(data);
    }
    absl::Status Sync() override { return base_->Sync(); }
    absl::Status Preallocate(uint64_t bytes) override {
      return base_->Preallocate(bytes);
    }
    absl::Status StartWriteback(uint64_t, uint64_t) override {
      return absl::OkStatus();
    }
    uint64_t Size() const override { return base_->Size(); }
    absl::Status Close() override { return base_->Close(); }
    const std::string &path() const override { return base_->path(); }

   private:
    std::unique_ptr<WritableFile> base_;
  };

  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::string &path) override {
    auto f = base_->NewWritableFile(path);
    if (!f.ok()) return f.status();
    return std::unique_ptr<WritableFile>(new File(std::move(*f)));
  }
  absl::StatusOr<std::unique_ptr<WritableFile>> ReopenWritableFile(
      const std::string &path) override {
    auto f = base_->ReopenWritableFile(path);
    if (!f.ok()) return f.status();
    return std::unique_ptr<WritableFile>(new File(std::move(*f)));
  }
  absl::StatusOr<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string &path) override {
    return base_->NewRandomAccessFile(path);
  }
  absl::StatusOr<bool> FileExists(const std::string &path) override {
    return base_->FileExists(path);
  }
  absl::StatusOr<std::vector<std::string>> ListDir(
      const std::string &dir) override {
    return base_->ListDir(dir);
  }
  absl::Status CreateDir(const std::string &dir) override {
    return base_->CreateDir(dir);
  }
  absl::Status DeleteFile(const std::string &path) override {
    return base_->DeleteFile(path);
  }
  absl::Status RenameFile(const std::string &from,
                          const std::string &to) override {
    return base_->RenameFile(from, to);
  }
  absl::Status TruncateFile(const std::string &path, uint64_t size) override {
    return base_->TruncateFile(path, size);
  }
  absl::StatusOr<uint64_t> FileSize(const std::string &path) override {
    return base_->FileSize(path);
  }
  absl::Status SyncDir(const std::string &dir) override {
    return base_->SyncDir(dir);
  }
  absl::StatusOr<std::unique_ptr<FileLock>> LockFile(
      const std::string &path, const std::string &owner) override {
    return base_->LockFile(path, owner);
  }

 private:
  FileSystem *const base_ = FileSystem::Default();
};

struct Flags {
  int rounds = 6;
  int interval_us = 0;
  int idle_ops = 200;
  uint64_t tick_mib = 64;
  size_t record = 200;
  uint64_t write_kib = 256;
  uint64_t sync_kib = 4096;
  int encode_ns = 2000;
  int yield_every = 0;  // tick records between sched_yield() calls; 0: never
};

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void Spin(int ns) {
  const int64_t end = NowNanos() + ns;
  while (NowNanos() < end) {
  }
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * (v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

void Check(const absl::Status &s) {
  if (!s.ok()) {
    std::fprintf(stderr, "FAILED: %s\n", s.ToString().c_str());
    std::exit(1);
  }
}

double Immediate(LogWriter *w, const std::string &payload) {
  const int64_t t0 = NowNanos();
  auto lsn = w->Append(kUpdate, payload);
  Check(lsn.status());
  Check(w->SyncTo(*lsn));
  return (NowNanos() - t0) / 1e3;
}

struct Result {
  std::vector<double> idle, busy;
  double tick_ms = 0;
  uint64_t hints = 0;
};

// One round: idle updates, then updates while a tick is written.
void Round(FileSystem *fs, const Flags &f, Result *r) {
  const std::string dir = testing::NewTempDir();
  WriterOptions options;
  options.fs = fs;
  options.dir = dir;
  options.max_segment_bytes = 1ull << 30;
  auto w = LogWriter::Create(options, 1, 1);
  Check(w.status());
  const std::string small(184, 'i');
  const std::string entry = testing::MakePayload(7, f.record);
  auto pause = [&] {
    if (f.interval_us > 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(f.interval_us));
    }
  };
  for (int i = 0; i < f.idle_ops; ++i) {
    r->idle.push_back(Immediate(w->get(), small));
    pause();
  }
  std::atomic<bool> done{false};
  int64_t t0 = NowNanos(), t1 = 0;
  std::thread tick([&] {
    const uint64_t total = f.tick_mib << 20;
    uint64_t unwritten = 0, unsynced = 0, bytes = 0;
    uint64_t records = 0;
    while (bytes < total) {
      Spin(f.encode_ns);
      if (f.yield_every > 0 && ++records % f.yield_every == 0) {
        sched_yield();
      }
      auto lsn = (*w)->Append(kTickEntry, entry);
      Check(lsn.status());
      unwritten += FramedSize(entry.size());
      bytes += FramedSize(entry.size());
      if (unwritten >= (f.write_kib << 10)) {
        Check((*w)->Flush());
        unsynced += unwritten;
        unwritten = 0;
        if (unsynced >= (f.sync_kib << 10)) {
          Check((*w)->SyncTo(*lsn));
          unsynced = 0;
        }
      }
    }
    Check((*w)->Sync());
    t1 = NowNanos();
    done = true;
  });
  const size_t before = r->busy.size();
  while (!done || r->busy.size() == before) {
    r->busy.push_back(Immediate(w->get(), small));
    pause();
  }
  tick.join();
  r->tick_ms += (t1 - t0) / 1e6;
  r->hints += (*w)->stats().writeback_hints;
  Check((*w)->Close());
  std::string cmd = "rm -rf " + dir;
  if (std::system(cmd.c_str()) != 0) std::exit(1);
}

void Print(const char *name, const Result &r, int rounds) {
  std::printf(
      "%-9s idle p50 %7.0f p99 %7.0f | busy p50 %7.0f p99 %7.0f max %7.0f "
      "us (n=%zu) | busy/idle p99 %.1fx | tick %.0f ms, %llu hints\n",
      name, Percentile(r.idle, 0.5), Percentile(r.idle, 0.99),
      Percentile(r.busy, 0.5), Percentile(r.busy, 0.99),
      Percentile(r.busy, 1.0), r.busy.size(),
      Percentile(r.busy, 0.99) / Percentile(r.idle, 0.99), r.tick_ms / rounds,
      static_cast<unsigned long long>(r.hints));
}

}  // namespace
}  // namespace log
}  // namespace walstate

int main(int argc, char **argv) {
  using walstate::log::Flags;
  Flags f;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const long long v = std::strtoll(argv[i + 1], nullptr, 10);
    if (k == "--rounds")
      f.rounds = static_cast<int>(v);
    else if (k == "--interval_us")
      f.interval_us = static_cast<int>(v);
    else if (k == "--idle_ops")
      f.idle_ops = static_cast<int>(v);
    else if (k == "--tick_mib")
      f.tick_mib = v;
    else if (k == "--record")
      f.record = v;
    else if (k == "--write_kib")
      f.write_kib = v;
    else if (k == "--sync_kib")
      f.sync_kib = v;
    else if (k == "--encode_ns")
      f.encode_ns = static_cast<int>(v);
    else if (k == "--yield_every")
      f.yield_every = static_cast<int>(v);
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  walstate::log::NoHintFileSystem no_hints;
  walstate::log::Result with, without;
  for (int r = 0; r < f.rounds; ++r) {
    // Alternate which goes first, so a drift in the disk hits both alike.
    if (r % 2 == 0) {
      walstate::log::Round(walstate::FileSystem::Default(), f, &with);
      walstate::log::Round(&no_hints, f, &without);
    } else {
      walstate::log::Round(&no_hints, f, &without);
      walstate::log::Round(walstate::FileSystem::Default(), f, &with);
    }
  }
  walstate::log::Print("no hints", without, f.rounds);
  walstate::log::Print("hints", with, f.rounds);
  return 0;
}
