// ApplyPool: recovery's work spread over threads. The reading thread verifies
// records in log order and hands each one to the worker owning its session's
// shard; a worker applies its records in the order it got them. So records
// of one session keep their log order, sessions in different shards are
// applied in parallel, and no two workers ever touch the same shard.
//
// Payloads are copied into per-worker batches (the reader's buffer is reused
// by the next read); a worker takes a batch at a time, and the reader waits
// when a worker falls behind by more than a few batches.
#ifndef WALSTATE_ENGINE_STATE_APPLY_POOL_H_
#define WALSTATE_ENGINE_STATE_APPLY_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace walstate {

class ApplyPool {
 public:
  struct Item {
    uint64_t lsn = 0;
    uint8_t type = 0;
    absl::string_view payload;
    uint64_t hash = 0;  // as given to Add
    // Which worker applies it (0 to workers() - 1; 0 without workers): a
    // worker's items are applied by one thread at a time.
    size_t worker = 0;
  };
  using ApplyFn = std::function<absl::Status(const Item& item)>;
  // Called on a worker for the items it will apply next, a few items ahead,
  // `step` 0 to kPrefetchSteps - 1 in turn for each item (the step before
  // some items earlier than the next): so that what applying an item will
  // touch, a chain of dependent cache misses, is on its way into cache step
  // by step when its turn comes. `hash` is the item's.
  using PrefetchFn = std::function<void(uint64_t hash, int step)>;
  static constexpr int kPrefetchSteps = 3;

  // `workers` threads; with 0 or 1, Add applies on the caller's thread (and
  // nothing is prefetched). `prefetch` is called for steps 0 to
  // `prefetch_steps` - 1 (at most kPrefetchSteps) only.
  ApplyPool(size_t workers, ApplyFn apply, PrefetchFn prefetch = nullptr,
            int prefetch_steps = kPrefetchSteps);
  ~ApplyPool();  // waits for the workers, as Finish() does
  ApplyPool(const ApplyPool&) = delete;
  ApplyPool& operator=(const ApplyPool&) = delete;

  // The worker count recovery uses by default: one per core plus one, at
  // most 8. A worker spends much of its time waiting for memory (each
  // record's lookup is a chain of cache misses into a table far larger than
  // the caches), and one more thread than cores keeps the cores busy
  // meanwhile: on 2 cores, Open of 10^6 sessions plus a 10^6-record tail
  // took 0.84 s (median of 7) with 3 workers against 0.91 s with 2.
  static size_t DefaultWorkers();

  size_t workers() const { return workers_.size(); }

  // Applies `payload` (copied) on worker `route % workers()`, after every
  // item added before with a route that maps to the same worker. With
  // `stable`, the payload is not copied: the caller keeps it valid and
  // unchanged until the pool is finished (a mapped file). `hash` is
  // handed to the worker in Item::hash (the session key's hash, which the
  // reading thread computed to route it). `file` and `offset` name the
  // record in errors. LSNs must increase from call to
  // call. Once an item has failed, waits for the workers and returns what
  // Finish() does; the caller should stop adding then.
  absl::Status Add(uint64_t route, uint64_t hash, uint64_t lsn, uint8_t type,
                   absl::string_view payload, absl::string_view file,
                   uint64_t offset, bool stable = false);

  // For damage the reading thread found in a record after every one added:
  // waits for the workers and returns the earliest error they met (it is
  // about an earlier record), or else `damage`. So the error names the first
  // damage whatever the number of workers.
  absl::Status StopAt(absl::Status damage);

  // Waits until every item is applied. The error of the failed item with the
  // lowest LSN, prefixed with its file and offset; OK if none failed.
  absl::Status Finish();

 private:
  struct Entry {
    uint64_t lsn;
    uint64_t hash;
    uint64_t offset;
    size_t begin;
    const char* stable;  // the payload if it was not copied, else null
    uint32_t size;
    uint32_t file;
    uint8_t type;
  };
  struct Batch {
    std::string bytes;
    size_t stable_bytes = 0;  // of the payloads not copied
    std::vector<Entry> entries;
  };
  struct Worker {
    std::mutex mu;
    std::condition_variable cv;  // batches arrived, or room freed
    std::deque<std::unique_ptr<Batch>> queue;
    bool done = false;
    std::unique_ptr<Batch> filling;  // the reader's, not yet queued
    size_t index = 0;                // in workers_
    std::thread thread;
  };

  void Run(Worker* w);
  void Push(Worker* w);  // queues w->filling
  absl::Status Apply(const Entry& e, const std::string& bytes, size_t worker);
  void RecordError(uint64_t lsn, absl::Status s);
  absl::Status FirstError() const;

  const ApplyFn apply_;
  const PrefetchFn prefetch_;
  const int prefetch_steps_;
  std::vector<std::unique_ptr<Worker>> workers_;
  bool finished_ = false;

  // Emptied batches, kept for reuse: a batch is a 256 KiB buffer, and
  // allocating (and growing) one per batch showed up as malloc time.
  std::unique_ptr<Batch> TakeSpare();
  std::mutex spare_mu_;
  std::vector<std::unique_ptr<Batch>> spare_;

  mutable std::mutex files_mu_;
  std::vector<std::string> files_;  // names Entry::file indexes

  std::atomic<bool> failed_{false};
  std::atomic<uint64_t> stop_after_lsn_{~uint64_t{0}};  // the failure's LSN
  mutable std::mutex error_mu_;
  uint64_t error_lsn_ = 0;
  absl::Status error_;
};

}  // namespace walstate

#endif  // WALSTATE_ENGINE_STATE_APPLY_POOL_H_
