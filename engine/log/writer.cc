#include "engine/log/writer.h"

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/fs/kill_point.h"

namespace walstate {
namespace log {

// One segment's bytes waiting to be written: for a new segment its header
// (the file is created first), then framed records.
struct LogWriter::PendingSegment {
  uint64_t number = 0;
  uint64_t salt = 0;    // of that segment
  bool create = false;  // the file does not exist yet; `header` starts it
  std::string header;
  std::string data;        // framed records
  uint64_t first_lsn = 0;  // of the first record in `data` (0: none)
  uint64_t last_lsn = 0;   // of the last record in `data` (0: none)

  void Reset() {
    number = 0;
    create = false;
    header.clear();
    data.clear();
    first_lsn = 0;
    last_lsn = 0;
  }
};

// A SyncTo() caller asleep until a leader's sync covers its LSN. It sleeps on
// its own mutex and condition variable rather than the writer's: a leader
// wakes only the callers its sync covered (waking every waiter made them all
// fight for mu_ on a 2-core machine just to see that most must sleep again),
// and those return without taking mu_ again.
struct LogWriter::SyncWaiter {
  enum State {
    kWaiting,
    kDurable,  // lsn is durable: return OK
    kRecheck,  // lead the next sync, or see the poison: retake mu_ and look
  };
  uint64_t lsn = 0;  // set before it is queued, then read-only
  // What the leader that dequeued it decided (guarded by the writer's mu_
  // until then, and only that leader reads it afterwards).
  State wake_as = kWaiting;
  std::mutex mu;
  std::condition_variable cv;
  State state = kWaiting;  // guarded by mu
};

namespace {

// Sets kRecordFlagAfterSync on the first frame of `data` (framed records
// encoded with `salt`) and rehashes that frame.
void MarkFirstFrameAfterSync(std::string* data, uint64_t salt) {
  const RecordHeader h = DecodeRecordHeader(data->data());
  SetRecordFlags(salt, kRecordFlagAfterSync, data->data(),
                 FramedSize(h.length));
}

// How many syncs skip lingering after one that gathered nothing.
constexpr uint32_t kLingerBackoff = 8;

// Buffers larger than this are freed after a write instead of being reused.
constexpr size_t kMaxSpareCapacity = 4u << 20;
constexpr size_t kMaxSpares = 4;

uint64_t NewSalt() {
  std::random_device rd;
  uint64_t salt = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  return salt;
}

// Keeps the status code, prefixes the message with what the writer was doing.
absl::Status Annotate(const absl::Status& s, absl::string_view context) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(context, ": ", s.message()));
}

// Set in a message when the page cache holds log bytes the disk does not.
constexpr char kPageCacheLies[] = "the page cache still serves";

// Appends what the owner must do after an I/O error stopped the writer.
absl::Status WithAdvice(const absl::Status& s, absl::string_view what) {
  if (s.ok()) return s;
  const bool restart = absl::StrContains(s.message(), kPageCacheLies);
  return absl::Status(
      s.code(),
      absl::StrCat(s.message(), ". ", what,
                   restart ? " Fix the cause, restart the machine (or remount "
                             "the file system), then reopen the store"
                           : " Fix the cause, then reopen the store",
                   " (recovery keeps every acknowledged record)."));
}

constexpr char kStopped[] =
    "The log writer has stopped and acknowledges nothing more.";
constexpr char kNotCreated[] = "The log segment was not created.";

// Makes the log before a new segment durable. The newest existing segment
// may hold records that only reached the page cache (the previous process
// crashed, or its fdatasync failed); recovery replayed them, so records that
// follow must never become durable ahead of them.
absl::Status SyncPreviousSegment(const WriterOptions& options,
                                 uint64_t segment_number, uint64_t* syncs) {
  auto names = options.fs->ListDir(options.dir);
  if (!names.ok()) return names.status();
  bool found = false;
  uint64_t previous = 0;
  for (const std::string& name : *names) {
    uint64_t n;
    if (ParseSegmentFileName(name, &n) && n < segment_number &&
        (!found || n > previous)) {
      found = true;
      previous = n;
    }
  }
  if (!found) return absl::OkStatus();
  const std::string path = JoinPath(options.dir, SegmentFileName(previous));
  auto file = options.fs->ReopenWritableFile(path);
  if (!file.ok()) {
    return Annotate(file.status(),
                    "opening the previous log segment to sync it");
  }
  absl::Status s = (*file)->Sync();
  ++*syncs;
  if (!s.ok()) {
    return Annotate(s, absl::StrCat("fdatasync of the previous log segment ",
                                    path, " (", (*file)->Size(), " bytes)"));
  }
  return Annotate((*file)->Close(), "closing the previous log segment");
}

}  // namespace

LogWriter::LogWriter(const WriterOptions& options) : options_(options) {}

LogWriter::~LogWriter() = default;

absl::StatusOr<std::unique_ptr<LogWriter>> LogWriter::Create(
    const WriterOptions& options, uint64_t segment_number, uint64_t next_lsn) {
  if (options.fs == nullptr || options.dir.empty()) {
    return absl::InvalidArgumentError(
        "LogWriter::Create: options.fs and options.dir are required");
  }
  if (next_lsn == 0) {
    return absl::InvalidArgumentError(
        "LogWriter::Create: LSNs start at 1 (0 means \"no record\")");
  }
  const std::string path =
      JoinPath(options.dir, SegmentFileName(segment_number));
  absl::StatusOr<bool> exists = options.fs->FileExists(path);
  if (!exists.ok()) return exists.status();
  if (*exists) {
    return absl::AlreadyExistsError(
        absl::StrCat("log segment ", path,
                     " already exists; a new writer must start a new segment "
                     "(recover the directory first)"));
  }

  uint64_t previous_syncs = 0;
  absl::Status synced =
      SyncPreviousSegment(options, segment_number, &previous_syncs);
  if (!synced.ok()) return WithAdvice(synced, kNotCreated);

  std::unique_ptr<LogWriter> w(new LogWriter(options));
  w->stats_.syncs += previous_syncs;
  w->next_lsn_ = next_lsn;
  w->written_lsn_ = next_lsn - 1;
  w->durable_lsn_ = next_lsn - 1;
  w->segment_number_ = segment_number;
  w->segment_salt_ = NewSalt();

  FileHeader header;
  header.kind = FileKind::kSegment;
  header.file_number = segment_number;
  header.first_lsn = next_lsn;
  header.salt = w->segment_salt_;
  header.created_micros =
      static_cast<uint64_t>(absl::ToUnixMicros(absl::Now()));
  header.schema = options.schema;
  std::string encoded;
  EncodeFileHeader(header, &encoded);
  w->segment_bytes_ = encoded.size();

  absl::Status s = w->OpenSegmentFile(segment_number, encoded);
  if (!s.ok()) {
    if (w->file_ != nullptr) w->file_->Close().IgnoreError();
    return WithAdvice(s, kNotCreated);
  }
  w->stats_.syncs++;  // OpenSegmentFile syncs the header
  w->stats_.bytes_written += encoded.size();
  w->stats_.segments_created++;
  return w;
}

absl::Status LogWriter::OpenSegmentFile(uint64_t number,
                                        const std::string& header) {
  const std::string path = JoinPath(options_.dir, SegmentFileName(number));
  auto file = options_.fs->NewExclusiveFile(path);
  if (!file.ok()) {
    return Annotate(file.status(), "creating log segment");
  }
  file_ = std::move(*file);
  file_unsynced_ = false;
  absl::Status s = file_->Append(header);
  if (!s.ok()) return Annotate(s, "writing log segment header");
  if (options_.preallocate && options_.max_segment_bytes > header.size()) {
    s = file_->Preallocate(options_.max_segment_bytes - header.size());
    if (!s.ok()) return Annotate(s, "preallocating log segment");
  }
  // The header is made durable before any record is written to the file, so
  // after a crash a damaged header of the last segment can only come from a
  // create that never completed (a torn tail), never from lost records.
  s = file_->Sync();
  if (!s.ok()) {
    file_synced_size_ = 0;
    return CutUnsynced(s, path, header.size());
  }
  file_synced_size_ = header.size();
  s = options_.fs->SyncDir(options_.dir);
  if (!s.ok()) return Annotate(s, absl::StrCat("after creating ", path));
  return absl::OkStatus();
}

absl::Status LogWriter::SyncFile() {
  absl::Status s = file_->Sync();
  if (!s.ok()) return CutUnsynced(s, file_->path(), file_->Size());
  file_unsynced_ = false;
  file_synced_size_ = file_->Size();
  return absl::OkStatus();
}

absl::Status LogWriter::CutUnsynced(const absl::Status& sync_error,
                                    const std::string& path, uint64_t size) {
  // Linux reports a writeback error once and marks the pages clean: the
  // unsynced bytes stay readable but never reach the disk, and a retried
  // fdatasync would not write them. Left in place, a reopen in this boot
  // would recover records that a later crash takes away, after newer records
  // built on them became durable. Cut them (none was acknowledged).
  absl::Status cut = options_.fs->TruncateFile(path, file_synced_size_);
  std::string what = absl::StrCat("fdatasync of log segment ", path,
                                  " (bytes up to offset ", size, ")");
  if (cut.ok()) {
    absl::StrAppend(&what, "; its unacknowledged bytes after offset ",
                    file_synced_size_, " were cut off");
  } else {
    absl::StrAppend(
        &what, "; cutting its unacknowledged bytes after offset ",
        file_synced_size_, " failed too (", cut.message(), "), so ",
        kPageCacheLies,
        " bytes the disk does not have: restart the machine (or remount the "
        "file system) before reopening the store, or recovery would build on "
        "records that are not durable");
  }
  return Annotate(sync_error, what);
}

void LogWriter::StartSegmentLocked() {
  segment_number_++;
  segment_salt_ = NewSalt();
  segment_records_ = 0;

  std::unique_ptr<PendingSegment> seg;
  if (!spare_.empty()) {
    seg = std::move(spare_.back());
    spare_.pop_back();
  } else {
    seg = std::make_unique<PendingSegment>();
  }
  seg->number = segment_number_;
  seg->salt = segment_salt_;
  seg->create = true;
  FileHeader header;
  header.kind = FileKind::kSegment;
  header.file_number = segment_number_;
  header.first_lsn = next_lsn_;
  header.salt = segment_salt_;
  header.created_micros =
      static_cast<uint64_t>(absl::ToUnixMicros(absl::Now()));
  header.schema = options_.schema;
  EncodeFileHeader(header, &seg->header);
  segment_bytes_ = seg->header.size();
  stats_.buffered_bytes += seg->header.size();
  pending_.push_back(std::move(seg));
}

LogWriter::PendingSegment* LogWriter::PendingForCurrentLocked() {
  if (!pending_.empty() && pending_.back()->number == segment_number_) {
    return pending_.back().get();
  }
  std::unique_ptr<PendingSegment> seg;
  if (!spare_.empty()) {
    seg = std::move(spare_.back());
    spare_.pop_back();
  } else {
    seg = std::make_unique<PendingSegment>();
  }
  seg->number = segment_number_;
  seg->salt = segment_salt_;
  pending_.push_back(std::move(seg));
  return pending_.back().get();
}

absl::StatusOr<std::string*> LogWriter::PrepareAppendLocked(
    uint8_t type, size_t payload_size) {
  if (payload_size > kMaxRecordSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("log record of ", payload_size,
                     " bytes exceeds the maximum of ", kMaxRecordSize));
  }
  if (type == kInvalid) {
    return absl::InvalidArgumentError("log record type 0 is invalid");
  }
  if (!poison_.ok()) return poison_;
  if (closed_) {
    return absl::FailedPreconditionError(
        absl::StrCat("log writer for ", options_.dir, " is closed"));
  }
  if (segment_records_ > 0 &&
      segment_bytes_ + FramedSize(payload_size) > options_.max_segment_bytes) {
    StartSegmentLocked();
  }
  return &PendingForCurrentLocked()->data;
}

uint64_t LogWriter::FinishAppendLocked(size_t payload_size) {
  const uint64_t framed = FramedSize(payload_size);
  const uint64_t lsn = next_lsn_++;
  if (pending_.back()->first_lsn == 0) pending_.back()->first_lsn = lsn;
  pending_.back()->last_lsn = lsn;
  stats_.last_record_segment = segment_number_;
  stats_.last_record_offset = segment_bytes_;
  segment_bytes_ += framed;
  segment_records_++;
  stats_.buffered_bytes += framed;
  if (++appends_since_release_ >= released_callers_ && lingering_) {
    linger_cv_.notify_one();
  }
  return lsn;
}

absl::StatusOr<uint64_t> LogWriter::Append(uint8_t type,
                                           absl::string_view payload) {
  std::lock_guard<std::mutex> lock(mu_);
  absl::StatusOr<std::string*> data = PrepareAppendLocked(type, payload.size());
  if (!data.ok()) return data.status();
  EncodeRecord(segment_salt_, next_lsn_, type, payload, *data);
  return FinishAppendLocked(payload.size());
}

absl::StatusOr<uint64_t> LogWriter::AppendEncoded(
    uint8_t type, size_t payload_size,
    absl::FunctionRef<absl::Status(char* payload)> encode) {
  std::lock_guard<std::mutex> lock(mu_);
  absl::StatusOr<std::string*> data = PrepareAppendLocked(type, payload_size);
  if (!data.ok()) return data.status();
  std::string& buffer = **data;
  const size_t start = buffer.size();
  char* payload = StartRecord(payload_size, &buffer);
  absl::Status s = encode(payload);
  if (!s.ok()) {
    // Only the frame goes. A segment started above for it stays, empty: the
    // next record goes there, and a segment of no records is valid (what
    // Create() then Close() leaves).
    buffer.resize(start);
    return s;
  }
  FinishRecord(segment_salt_, next_lsn_, type, payload_size,
               payload - kRecordHeaderSize);
  return FinishAppendLocked(payload_size);
}

void LogWriter::WriteOutLocked(std::unique_lock<std::mutex>& lock, bool sync,
                               WakeList* wake) {
  io_busy_ = true;
  if (sync) LingerLocked(lock);
  std::vector<std::unique_ptr<PendingSegment>> batch;
  batch.swap(pending_);
  stats_.buffered_bytes = 0;
  uint64_t written = written_lsn_;  // last LSN handed to the file system
  uint64_t durable = durable_lsn_;
  const uint64_t durable_before = durable;
  lock.unlock();
  const auto io_start = std::chrono::steady_clock::now();

  uint64_t syncs = 0;
  uint64_t bytes = 0;
  uint64_t created = 0;
  // The bytes of file_ this batch wrote, for the writeback hint.
  uint64_t hint_offset = 0;
  uint64_t hint_length = 0;
  absl::Status s;
  for (auto& seg : batch) {
    if (seg->create) {
      // Everything in the old segment must be durable before the new one
      // exists, so that what survives a crash is a prefix of the log.
      KillPoint("writer.before_rotate");
      if (file_ != nullptr) {
        if (file_unsynced_) {
          s = SyncFile();
          syncs++;
          if (!s.ok()) break;
          durable = written;
        }
        s = file_->Close();
        if (!s.ok()) {
          s = Annotate(s, "closing full log segment");
          break;
        }
        file_.reset();
      }
      s = OpenSegmentFile(seg->number, seg->header);
      syncs++;          // the header sync (counted even if it failed)
      hint_length = 0;  // the previous file was synced before it was closed
      if (!s.ok()) break;
      KillPoint("writer.after_create");
      created++;
      bytes += seg->header.size();
    }
    if (!seg->data.empty()) {
      // Everything in the file so far is durable: say so in the first frame,
      // so that a reader can tell damage before it from a torn end.
      if (!file_unsynced_) MarkFirstFrameAfterSync(&seg->data, seg->salt);
      const uint64_t offset = file_->Size();
      KillPoint("writer.before_write");
      s = file_->Append(seg->data);
      KillPoint("writer.after_write");
      if (!s.ok()) {
        s = Annotate(s, absl::StrCat("appending ", seg->data.size(),
                                     " bytes of records at offset ", offset,
                                     " of log segment ", file_->path()));
        break;
      }
      file_unsynced_ = true;
      if (options_.observer != nullptr) {
        options_.observer->Written(seg->salt, seg->first_lsn, seg->last_lsn,
                                   seg->data);
      }
      bytes += seg->data.size();
      written = seg->last_lsn;
      if (hint_length == 0) hint_offset = offset;
      hint_length += seg->data.size();
    }
  }
  uint64_t hints = 0;
  uint64_t hint_failures = 0;
  if (s.ok() && !sync && hint_length > 0) {
    // Without this, a tick's slices stay dirty in the page cache until an
    // fdatasync: the tick's own every tick_sync_bytes, or an IMMEDIATE
    // update's, which would then have to write up to that much before its
    // own record. The hint's result is deliberately not part of `s`: it
    // neither makes anything durable nor loses anything (the pages stay
    // dirty if it fails, and the next fdatasync writes them and reports any
    // real I/O error), so a refusal must not stop the writer.
    absl::Status hint = file_->StartWriteback(hint_offset, hint_length);
    hints++;
    if (!hint.ok()) hint_failures++;
  }
  if (s.ok() && sync && file_unsynced_) {
    s = SyncFile();
    syncs++;
    if (s.ok()) durable = written;
    KillPoint("writer.after_sync");
  }
  if (s.ok() && options_.observer != nullptr && durable > durable_before) {
    // Replication in sync mode publishes here: the callers this sync
    // covers are released only once it has returned.
    s = options_.observer->Synced(durable);
    if (!s.ok()) durable = durable_before;
  }

  const auto io_end = std::chrono::steady_clock::now();
  lock.lock();
  io_busy_ = false;
  if (sync && s.ok()) {
    sync_time_ = (3 * sync_time_ + (io_end - io_start)) / 4;
    released_at_ = io_end;
    released_callers_ = 0;  // counted as they are released
    appends_since_release_ = 0;
  }
  stats_.syncs += syncs;
  stats_.bytes_written += bytes;
  stats_.segments_created += created;
  stats_.writeback_hints += hints;
  stats_.writeback_hint_failures += hint_failures;
  if (durable > durable_lsn_) {
    stats_.synced_records += durable - durable_lsn_;
    durable_lsn_ = durable;
  }
  written_lsn_ = written;
  if (!s.ok() && poison_.ok()) poison_ = WithAdvice(s, kStopped);
  for (auto& seg : batch) {
    if (spare_.size() >= kMaxSpares ||
        seg->data.capacity() > kMaxSpareCapacity) {
      continue;
    }
    seg->Reset();
    spare_.push_back(std::move(seg));
  }
  TakeWakeableLocked(wake);
  cv_.notify_all();  // Flush() and Close() waiters; cheap when there are none
}

void LogWriter::TakeWakeableLocked(WakeList* wake) {
  if (sync_waiters_.empty()) return;
  const bool poisoned = !poison_.ok();
  // The next leader is woken first so that its write starts while the
  // others are still waking. Until it runs, a new SyncTo() caller finding
  // no I/O in progress may lead instead; the woken one then waits again.
  SyncWaiter* next_leader = nullptr;
  size_t kept = 0;
  for (SyncWaiter* w : sync_waiters_) {
    if (poisoned) {
      w->wake_as = SyncWaiter::kRecheck;
    } else if (w->lsn <= durable_lsn_) {
      w->wake_as = SyncWaiter::kDurable;
      released_callers_++;
    } else if (next_leader == nullptr && !io_busy_) {
      w->wake_as = SyncWaiter::kRecheck;
      next_leader = w;
      continue;
    } else {
      sync_waiters_[kept++] = w;
      continue;
    }
    wake->push_back(w);
  }
  sync_waiters_.resize(kept);
  if (next_leader != nullptr) wake->insert(wake->begin(), next_leader);
}

void LogWriter::SetSmoothedSyncTimeForTesting(
    std::chrono::nanoseconds sync_time) {
  std::lock_guard<std::mutex> lock(mu_);
  sync_time_ = sync_time;
}

void LogWriter::LingerLocked(std::unique_lock<std::mutex>& lock) {
  if (appends_since_release_ >= released_callers_) return;
  if (linger_backoff_ > 0) {
    linger_backoff_--;
    return;
  }
  const auto deadline = released_at_ + std::min<std::chrono::nanoseconds>(
                                           sync_time_, options_.max_linger);
  if (std::chrono::steady_clock::now() >= deadline) return;
  stats_.lingers++;
  const uint64_t appends_before = appends_since_release_;
  lingering_ = true;
  linger_cv_.wait_until(lock, deadline, [this] {
    return appends_since_release_ >= released_callers_;
  });
  lingering_ = false;
  if (appends_since_release_ == appends_before) {
    stats_.fruitless_lingers++;
    linger_backoff_ = kLingerBackoff;
  }
}

void LogWriter::Wake(const WakeList& wake) {
  for (SyncWaiter* w : wake) {
    // Notified under w->mu: the waiter may return and destroy w as soon as
    // it can see the new state, which needs w->mu.
    std::lock_guard<std::mutex> lock(w->mu);
    w->state = w->wake_as;
    w->cv.notify_one();
  }
}

absl::Status LogWriter::WaitForLocked(std::unique_lock<std::mutex>& lock,
                                      uint64_t lsn, bool sync) {
  while (true) {
    if (!poison_.ok()) return poison_;
    if ((sync ? durable_lsn_ : written_lsn_) >= lsn) return absl::OkStatus();
    if (!io_busy_) {
      WakeList wake;
      WriteOutLocked(lock, sync, &wake);
      // The leader comes back too, as much as the callers it released.
      if (sync && durable_lsn_ >= lsn) released_callers_++;
      if (wake.empty()) continue;
      // Settle this caller's own outcome before dropping mu_ for the wakes.
      absl::Status result = poison_;
      const bool done =
          !result.ok() || (sync ? durable_lsn_ : written_lsn_) >= lsn;
      lock.unlock();
      Wake(wake);
      if (done) return result;
      lock.lock();
      continue;
    }
    if (!sync) {
      cv_.wait(lock);
      continue;
    }
    SyncWaiter waiter;
    waiter.lsn = lsn;
    sync_waiters_.push_back(&waiter);
    lock.unlock();
    SyncWaiter::State state;
    {
      std::unique_lock<std::mutex> waiter_lock(waiter.mu);
      waiter.cv.wait(waiter_lock,
                     [&] { return waiter.state != SyncWaiter::kWaiting; });
      state = waiter.state;
    }
    // The leader published durable_lsn_ >= lsn under mu_ before it woke us.
    if (state == SyncWaiter::kDurable) return absl::OkStatus();
    lock.lock();
  }
}

absl::Status LogWriter::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  if (!poison_.ok()) return poison_;
  if (closed_) {
    return absl::FailedPreconditionError(
        absl::StrCat("log writer for ", options_.dir, " is closed"));
  }
  return WaitForLocked(lock, next_lsn_ - 1, /*sync=*/false);
}

absl::Status LogWriter::SyncTo(uint64_t lsn) {
  // Counted from before the lock: a caller waiting for mu_ is one too.
  sync_callers_.fetch_add(1, std::memory_order_relaxed);
  struct Leave {
    std::atomic<uint32_t>& n;
    ~Leave() { n.fetch_sub(1, std::memory_order_relaxed); }
  } leave{sync_callers_};
  std::unique_lock<std::mutex> lock(mu_);
  if (!poison_.ok()) return poison_;
  if (closed_) {
    return absl::FailedPreconditionError(
        absl::StrCat("log writer for ", options_.dir, " is closed"));
  }
  // An LSN not assigned yet cannot be waited for; sync what exists.
  lsn = std::min(lsn, next_lsn_ - 1);
  if (durable_lsn_ >= lsn) return absl::OkStatus();
  stats_.sync_requests++;
  return WaitForLocked(lock, lsn, /*sync=*/true);
}

absl::Status LogWriter::Sync() {
  uint64_t last;
  {
    std::lock_guard<std::mutex> lock(mu_);
    last = next_lsn_ - 1;
  }
  return SyncTo(last);
}

absl::Status LogWriter::Close() {
  std::unique_lock<std::mutex> lock(mu_);
  if (closed_) {
    // A second Close (or one racing the first) waits for the first to finish.
    while (io_busy_) cv_.wait(lock);
    return poison_;
  }
  closed_ = true;  // later Appends fail; buffered ones are still synced
  absl::Status s = poison_;
  if (s.ok()) s = WaitForLocked(lock, next_lsn_ - 1, /*sync=*/true);
  if (!lock.owns_lock()) lock.lock();
  while (io_busy_) cv_.wait(lock);
  io_busy_ = true;
  std::unique_ptr<WritableFile> file = std::move(file_);
  lock.unlock();
  absl::Status close_status;
  if (file != nullptr) close_status = file->Close();
  lock.lock();
  io_busy_ = false;
  if (s.ok() && !close_status.ok()) {
    s = WithAdvice(Annotate(close_status, "closing log segment"), kStopped);
    if (poison_.ok()) poison_ = s;
  }
  // A SyncTo() waiter woken to lead may have queued again meanwhile; all it
  // waited for is durable now, or the writer is poisoned.
  WakeList wake;
  TakeWakeableLocked(&wake);
  cv_.notify_all();
  lock.unlock();
  Wake(wake);
  return s;
}

absl::Status LogWriter::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return poison_;
}

uint64_t LogWriter::last_lsn() const {
  std::lock_guard<std::mutex> lock(mu_);
  return next_lsn_ - 1;
}

uint64_t LogWriter::durable_lsn() const {
  std::lock_guard<std::mutex> lock(mu_);
  return durable_lsn_;
}

WriterStats LogWriter::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  WriterStats s = stats_;
  s.last_lsn = next_lsn_ - 1;
  s.durable_lsn = durable_lsn_;
  s.current_segment = segment_number_;
  s.current_segment_bytes = segment_bytes_;
  return s;
}

}  // namespace log
}  // namespace walstate
