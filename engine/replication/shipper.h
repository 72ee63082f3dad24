// Shipper: the engine's side of replication. It is the log writer's
// LogObserver: it keeps a copy of what the writer wrote until the stream
// acknowledged it, and publishes through a Replicator.
//
//  - sync mode: Synced() publishes everything the fdatasync covered before
//    it returns, on the writer's I/O thread, so the callers that sync
//    releases (an IMMEDIATE Update, a Delete, a tick commit) share one
//    publish batch as they share the fdatasync. A failed publish fails the
//    sync: the writer stops like after a failed fdatasync.
//  - async mode: Synced() hands the records to a background thread, which
//    publishes them in LSN order. A deposed writer's refusal stops the
//    engine (on_failure); a stream that does not answer is retried (same
//    message ids, so the stream drops repeats) while the lag grows.
// Snapshots are always published by the background thread, after every
// record they may contain (PublishSnapshotLater).
#ifndef WALSTATE_ENGINE_REPLICATION_SHIPPER_H_
#define WALSTATE_ENGINE_REPLICATION_SHIPPER_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/log/writer.h"
#include "engine/util/mutex.h"
#include "walstate/file_system.h"
#include "walstate/replicator.h"

namespace walstate {
namespace replication {

struct ShipperStats {
  uint64_t published_lsn = 0;  // every record <= this is acknowledged
  uint64_t durable_lsn = 0;    // every record <= this is synced locally
  uint64_t lag_records = 0;    // durable locally, not yet acknowledged
  uint64_t lag_bytes = 0;
  absl::Duration lag;             // how long the oldest of them has waited
  uint64_t publishes = 0;         // PublishLog calls that succeeded
  uint64_t publish_failures = 0;  // and those that did not
  uint64_t snapshots_published = 0;
  absl::Status last_error;  // of the last failed publish, if any
  absl::Status last_snapshot_status;
};

class Shipper : public log::LogObserver {
 public:
  // `replicator` must outlive the shipper. `on_failure` is called (from the
  // background thread) when async publishing can never succeed again.
  Shipper(Replicator* replicator, Mode mode, uint64_t published_lsn,
          std::function<absl::Time()> clock,
          std::function<void(const absl::Status&)> on_failure);
  ~Shipper() override;  // Stop()

  void Written(uint64_t salt, uint64_t first_lsn, uint64_t last_lsn,
               absl::string_view frames) override;
  absl::Status Synced(uint64_t lsn) override;

  // Publishes snapshot `path` of LSN `lsn` once every record <= `after_lsn`
  // is published (a fuzzy snapshot may hold effects of those). A newer
  // request replaces one not started yet; a file gone by then is skipped.
  void PublishSnapshotLater(FileSystem* fs, const std::string& path,
                            uint64_t lsn, uint64_t after_lsn);

  // Waits (at most `timeout`) until everything synced so far is published
  // and no snapshot is pending. DeadlineExceeded otherwise.
  absl::Status Drain(absl::Duration timeout);

  // Stops the background thread; what is not published stays unpublished.
  void Stop();

  ShipperStats stats() const;

 private:
  struct Chunk {
    uint64_t salt = 0;
    uint64_t first_lsn = 0;
    uint64_t last_lsn = 0;
    std::string frames;
    absl::Time synced_at = absl::InfinitePast();
  };
  struct SnapshotJob {
    FileSystem* fs = nullptr;
    std::string path;
    uint64_t lsn = 0;
    uint64_t after_lsn = 0;
  };

  // Publishes `chunks` (consecutive, synced) in order, each run of one salt
  // as one PublishLog. On error returns it with the unpublished ones left
  // at the front of `chunks`.
  absl::Status PublishChunks(std::deque<Chunk>* chunks)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);
  // Something for the background thread: synced chunks, or a snapshot whose
  // records are all published.
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !ready_.empty() || (snapshot_ != nullptr &&
                               stats_.published_lsn >= snapshot_->after_lsn);
  }
  // What Drain waits for: everything synced is published and no snapshot is
  // pending (or publishing failed for good).
  bool Drained() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return failed_ || (stats_.published_lsn >= stats_.durable_lsn &&
                       snapshot_ == nullptr && !snapshot_running_);
  }

  Replicator* const replicator_;
  const Mode mode_;
  const std::function<absl::Time()> clock_;
  const std::function<void(const absl::Status&)> on_failure_;

  mutable Mutex mu_;
  CondVar cv_;
  // Written, not yet synced (only the writer's I/O thread adds or takes).
  std::deque<Chunk> written_ ABSL_GUARDED_BY(mu_);
  // Synced, waiting for the background thread (async mode).
  std::deque<Chunk> ready_ ABSL_GUARDED_BY(mu_);
  bool publishing_ ABSL_GUARDED_BY(mu_) = false;      // the thread holds some
  absl::Time publishing_since_ ABSL_GUARDED_BY(mu_);  // oldest it holds
  std::unique_ptr<SnapshotJob> snapshot_ ABSL_GUARDED_BY(mu_);
  bool snapshot_running_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool failed_ ABSL_GUARDED_BY(mu_) = false;
  ShipperStats stats_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace replication
}  // namespace walstate

#endif  // WALSTATE_ENGINE_REPLICATION_SHIPPER_H_
