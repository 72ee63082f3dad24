#include "engine/replication/shipper.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"

namespace walstate {
namespace replication {

const char* ModeName(Mode mode) {
  switch (mode) {
    case Mode::kOff:
      return "off";
    case Mode::kAsync:
      return "async";
    case Mode::kSync:
      return "sync";
  }
  return "?";
}

Shipper::Shipper(Replicator* replicator, Mode mode, uint64_t published_lsn,
                 std::function<absl::Time()> clock,
                 std::function<void(const absl::Status&)> on_failure)
    : replicator_(replicator),
      mode_(mode),
      clock_(std::move(clock)),
      on_failure_(std::move(on_failure)) {
  stats_.published_lsn = published_lsn;
  stats_.durable_lsn = published_lsn;
  thread_ = std::thread([this] { Loop(); });
}

Shipper::~Shipper() { Stop(); }

void Shipper::Stop() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  cv_.NotifyAll();
  if (thread_.joinable()) thread_.join();
}

void Shipper::Written(uint64_t salt, uint64_t first_lsn, uint64_t last_lsn,
                      absl::string_view frames) {
  Chunk c;
  c.salt = salt;
  c.first_lsn = first_lsn;
  c.last_lsn = last_lsn;
  c.frames.assign(frames.data(), frames.size());
  MutexLock lock(&mu_);
  // Consecutive writes into one segment share a salt: one run, so that one
  // publish can carry several writes' records.
  if (!written_.empty() && written_.back().salt == salt) {
    written_.back().frames.append(c.frames);
    written_.back().last_lsn = last_lsn;
    return;
  }
  written_.push_back(std::move(c));
}

absl::Status Shipper::Synced(uint64_t lsn) {
  std::deque<Chunk> batch;
  {
    MutexLock lock(&mu_);
    if (failed_) return stats_.last_error;
    const absl::Time now = clock_();
    while (!written_.empty() && written_.front().last_lsn <= lsn) {
      written_.front().synced_at = now;
      stats_.lag_bytes += written_.front().frames.size();
      batch.push_back(std::move(written_.front()));
      written_.pop_front();
    }
    stats_.durable_lsn = std::max(stats_.durable_lsn, lsn);
    if (mode_ == Mode::kAsync) {
      for (Chunk& c : batch) ready_.push_back(std::move(c));
      cv_.NotifyAll();
      return absl::OkStatus();
    }
  }
  absl::Status s = PublishChunks(&batch);
  if (!s.ok()) {
    MutexLock lock(&mu_);
    failed_ = true;
    s = absl::Status(s.code(),
                     absl::StrCat("replicating the log (sync mode; records up "
                                  "to LSN ",
                                  lsn,
                                  " are synced locally but not acknowledged by "
                                  "the stream, so none of them was "
                                  "acknowledged to a caller): ",
                                  s.message()));
    stats_.last_error = s;
  }
  return s;
}

absl::Status Shipper::PublishChunks(std::deque<Chunk>* chunks) {
  while (!chunks->empty()) {
    const Chunk& c = chunks->front();
    absl::Status s =
        replicator_->PublishLog(c.salt, c.first_lsn, c.last_lsn, c.frames);
    MutexLock lock(&mu_);
    if (!s.ok()) {
      stats_.publish_failures++;
      stats_.last_error = s;
      return s;
    }
    stats_.publishes++;
    stats_.published_lsn = std::max(stats_.published_lsn, c.last_lsn);
    stats_.lag_bytes -= std::min<uint64_t>(stats_.lag_bytes, c.frames.size());
    chunks->pop_front();
    cv_.NotifyAll();
  }
  return absl::OkStatus();
}

void Shipper::PublishSnapshotLater(FileSystem* fs, const std::string& path,
                                   uint64_t lsn, uint64_t after_lsn) {
  auto job = std::make_unique<SnapshotJob>();
  job->fs = fs;
  job->path = path;
  job->lsn = lsn;
  job->after_lsn = after_lsn;
  MutexLock lock(&mu_);
  snapshot_ = std::move(job);
  cv_.NotifyAll();
}

void Shipper::Loop() {
  // Waits between attempts while the stream does not answer (async mode).
  absl::Duration backoff = absl::Milliseconds(50);
  mu_.lock();
  while (true) {
    while (!stop_ && !failed_ && !HasWork()) cv_.Wait(&mu_);
    if (stop_ || failed_) {
      mu_.unlock();
      return;
    }
    absl::Status s;
    if (!ready_.empty()) {
      std::deque<Chunk> batch;
      batch.swap(ready_);
      publishing_ = true;
      publishing_since_ = batch.front().synced_at;
      mu_.unlock();
      s = PublishChunks(&batch);
      mu_.lock();
      publishing_ = false;
      // What was not published goes back in front, in order.
      while (!batch.empty()) {
        ready_.push_front(std::move(batch.back()));
        batch.pop_back();
      }
    } else {
      std::unique_ptr<SnapshotJob> job = std::move(snapshot_);
      snapshot_running_ = true;
      mu_.unlock();
      s = replicator_->PublishSnapshot(job->fs, job->path, job->lsn);
      // A newer snapshot deleted this one's file: the newer one follows.
      if (absl::IsNotFound(s)) s = absl::OkStatus();
      mu_.lock();
      snapshot_running_ = false;
      stats_.last_snapshot_status = s;
      if (s.ok()) {
        stats_.snapshots_published++;
      } else if (!absl::IsAborted(s) && snapshot_ == nullptr) {
        snapshot_ = std::move(job);  // try again
      }
      cv_.NotifyAll();
    }
    if (s.ok()) {
      backoff = absl::Milliseconds(50);
      continue;
    }
    if (absl::IsAborted(s)) {
      // Deposed: another writer claimed the store. Never publish again.
      failed_ = true;
      stats_.last_error = s;
      cv_.NotifyAll();
      mu_.unlock();
      on_failure_(s);
      return;
    }
    // The stream did not answer: try again later; the lag shows it.
    const auto retry_at =
        std::chrono::steady_clock::now() + absl::ToChronoMilliseconds(backoff);
    while (!stop_) {
      if (!cv_.WaitUntil(&mu_, retry_at)) break;
    }
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

absl::Status Shipper::Drain(absl::Duration timeout) {
  MutexLock lock(&mu_);
  const auto deadline =
      std::chrono::steady_clock::now() + absl::ToChronoMilliseconds(timeout);
  bool done = Drained();
  while (!done) {
    if (!cv_.WaitUntil(&mu_, deadline)) {
      done = Drained();
      break;
    }
    done = Drained();
  }
  if (failed_) return stats_.last_error;
  if (!done) {
    return absl::DeadlineExceededError(absl::StrCat(
        "replication: records up to LSN ", stats_.durable_lsn,
        " are synced locally but the stream acknowledged only up to LSN ",
        stats_.published_lsn, " after waiting ", absl::FormatDuration(timeout),
        " (last error: ", stats_.last_error.ToString(), ")"));
  }
  return absl::OkStatus();
}

ShipperStats Shipper::stats() const {
  MutexLock lock(&mu_);
  ShipperStats s = stats_;
  s.lag_records =
      s.durable_lsn > s.published_lsn ? s.durable_lsn - s.published_lsn : 0;
  absl::Time oldest = absl::InfiniteFuture();
  if (publishing_) {
    oldest = publishing_since_;
  } else if (!ready_.empty()) {
    oldest = ready_.front().synced_at;
  }
  if (s.lag_records > 0 && oldest != absl::InfiniteFuture()) {
    s.lag = std::max(absl::ZeroDuration(), clock_() - oldest);
  }
  return s;
}

}  // namespace replication
}  // namespace walstate
