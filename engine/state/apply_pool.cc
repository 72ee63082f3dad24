#include "engine/state/apply_pool.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace walstate {

namespace {

// A batch is handed over once it holds this much; a worker may have this
// many queued before the reader waits for it.
constexpr size_t kBatchBytes = 256 << 10;
constexpr size_t kMaxQueued = 8;
// How many items ahead of the one applied each prefetch step is issued: far
// enough for the lines to arrive (a few hundred ns each), near enough for
// them to still be in L1/L2 when used.
constexpr size_t kPrefetchAhead[ApplyPool::kPrefetchSteps] = {12, 8, 4};

}  // namespace

size_t ApplyPool::DefaultWorkers() {
  const unsigned cores = std::thread::hardware_concurrency();
  return std::min<size_t>(cores == 0 ? 1 : cores + 1, 8);
}

ApplyPool::ApplyPool(size_t workers, ApplyFn apply, PrefetchFn prefetch,
                     int prefetch_steps)
    : apply_(std::move(apply)),
      prefetch_(std::move(prefetch)),
      prefetch_steps_(
          prefetch_ == nullptr ? 0 : std::min(prefetch_steps, kPrefetchSteps)) {
  if (workers <= 1) return;
  for (size_t i = 0; i < workers; ++i) {
    workers_.push_back(std::make_unique<Worker>());
    workers_.back()->index = i;
  }
  for (auto& w : workers_) {
    Worker* raw = w.get();
    raw->thread = std::thread([this, raw] { Run(raw); });
  }
}

ApplyPool::~ApplyPool() { Finish().IgnoreError(); }

void ApplyPool::RecordError(uint64_t lsn, absl::Status s) {
  std::lock_guard<std::mutex> lock(error_mu_);
  if (error_.ok() || lsn < error_lsn_) {
    error_ = std::move(s);
    error_lsn_ = lsn;
    stop_after_lsn_.store(lsn, std::memory_order_relaxed);
  }
  failed_.store(true, std::memory_order_relaxed);
}

absl::Status ApplyPool::FirstError() const {
  std::lock_guard<std::mutex> lock(error_mu_);
  return error_;
}

absl::Status ApplyPool::Apply(const Entry& e, const std::string& bytes,
                              size_t worker) {
  Item item;
  item.worker = worker;
  item.lsn = e.lsn;
  item.type = e.type;
  item.hash = e.hash;
  item.payload = e.stable != nullptr
                     ? absl::string_view(e.stable, e.size)
                     : absl::string_view(bytes).substr(e.begin, e.size);
  absl::Status s = apply_(item);
  if (s.ok()) return s;
  std::string file;
  {
    std::lock_guard<std::mutex> lock(files_mu_);
    file = files_[e.file];
  }
  return absl::Status(
      s.code(), absl::StrCat(file, " offset ", e.offset, ": ", s.message()));
}

absl::Status ApplyPool::Add(uint64_t route, uint64_t hash, uint64_t lsn,
                            uint8_t type, absl::string_view payload,
                            absl::string_view file, uint64_t offset,
                            bool stable) {
  // Wait for the workers, so the error is the lowest-LSN one, whichever
  // worker met it first.
  if (failed_.load(std::memory_order_relaxed)) return Finish();
  if (workers_.empty()) {
    // One thread: apply straight from the reader's buffer, no copy.
    Item item{lsn, type, payload, hash, /*worker=*/0};
    absl::Status s = apply_(item);
    if (!s.ok()) {
      s = absl::Status(
          s.code(), absl::StrCat(file, " offset ", offset, ": ", s.message()));
      RecordError(lsn, s);
    }
    return s;
  }
  // Only this thread appends to files_, so it may read it unlocked; the lock
  // is for the workers, which read it (on an error) while it may grow.
  if (files_.empty() || files_.back() != file) {
    std::lock_guard<std::mutex> lock(files_mu_);
    files_.emplace_back(file);
  }
  Entry e{lsn,
          hash,
          offset,
          0,
          stable ? payload.data() : nullptr,
          static_cast<uint32_t>(payload.size()),
          static_cast<uint32_t>(files_.size() - 1),
          type};
  Worker* w = workers_[route % workers_.size()].get();
  if (w->filling == nullptr) w->filling = TakeSpare();
  Batch& b = *w->filling;
  if (stable) {
    b.stable_bytes += payload.size();
  } else {
    e.begin = b.bytes.size();
    b.bytes.append(payload.data(), payload.size());
  }
  b.entries.push_back(e);
  if (b.bytes.size() + b.stable_bytes >= kBatchBytes) Push(w);
  return absl::OkStatus();
}

std::unique_ptr<ApplyPool::Batch> ApplyPool::TakeSpare() {
  {
    std::lock_guard<std::mutex> lock(spare_mu_);
    if (!spare_.empty()) {
      std::unique_ptr<Batch> b = std::move(spare_.back());
      spare_.pop_back();
      return b;
    }
  }
  auto b = std::make_unique<Batch>();
  // Room for a full batch and the record that tips it over, usually.
  b->bytes.reserve(kBatchBytes + (64 << 10));
  b->entries.reserve(1024);
  return b;
}

void ApplyPool::Push(Worker* w) {
  if (w->filling == nullptr || w->filling->entries.empty()) return;
  std::unique_lock<std::mutex> lock(w->mu);
  w->cv.wait(lock, [&] { return w->queue.size() < kMaxQueued; });
  w->queue.push_back(std::move(w->filling));
  w->cv.notify_all();
}

void ApplyPool::Run(Worker* w) {
  for (;;) {
    std::unique_ptr<Batch> batch;
    {
      std::unique_lock<std::mutex> lock(w->mu);
      w->cv.wait(lock, [&] { return !w->queue.empty() || w->done; });
      if (w->queue.empty()) return;  // done and drained
      batch = std::move(w->queue.front());
      w->queue.pop_front();
      w->cv.notify_all();  // room for the reader
    }
    const std::vector<Entry>& entries = batch->entries;
    for (size_t i = 0; i < entries.size(); ++i) {
      const Entry& e = entries[i];
      // After a failure only records before it still matter: an earlier
      // one may fail too, and the earliest failure is the one reported.
      if (e.lsn > stop_after_lsn_.load(std::memory_order_relaxed)) break;
      for (int step = 0; step < prefetch_steps_; ++step) {
        const size_t ahead = i + kPrefetchAhead[step];
        if (ahead < entries.size()) prefetch_(entries[ahead].hash, step);
      }
      absl::Status s = Apply(e, batch->bytes, w->index);
      if (!s.ok()) RecordError(e.lsn, std::move(s));
    }
    batch->bytes.clear();
    batch->stable_bytes = 0;
    batch->entries.clear();
    std::lock_guard<std::mutex> lock(spare_mu_);
    spare_.push_back(std::move(batch));
  }
}

absl::Status ApplyPool::StopAt(absl::Status damage) {
  absl::Status earlier = Finish();
  return earlier.ok() ? damage : earlier;
}

absl::Status ApplyPool::Finish() {
  if (!finished_) {
    finished_ = true;
    for (auto& w : workers_) {
      Push(w.get());
      {
        std::lock_guard<std::mutex> lock(w->mu);
        w->done = true;
      }
      w->cv.notify_all();
    }
    for (auto& w : workers_) w->thread.join();
  }
  return FirstError();
}

}  // namespace walstate
