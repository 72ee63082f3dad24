// The batched tick of EngineImpl (Flush: every dirty session's dirty fields
// in one committed tick) and the background thread that runs ticks, expiry
// and the compactions they ask for.
#include <algorithm>
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/engine_impl.h"
#include "engine/fs/kill_point.h"
#include "engine/log/format.h"
#include "engine/log/writer.h"
#include "engine/state/schema.h"
#include "engine/state/session_table.h"
#include "engine/state/update_codec.h"
#include "engine/util/mutex.h"
#include "proto/walstate/record.pb.h"

namespace walstate {
namespace internal {

void EngineImpl::CollectDirtyFields(
    FieldSet dirty, std::vector<const Schema::Field*>* out) const {
  out->clear();
  const std::vector<Schema::Field>& fields = schema_->fields();
  // A field's index is its position in fields(); bit 63 stands for every
  // field from index 63 on. Visiting only the set bits, in ascending order,
  // gives the fields in the order a scan of fields() would.
  uint64_t bits = dirty.bits();
  const uint64_t kRest = uint64_t{1} << 63;
  for (uint64_t low = bits & ~kRest; low != 0; low &= low - 1) {
    const size_t i = static_cast<size_t>(__builtin_ctzll(low));
    if (i < fields.size()) out->push_back(&fields[i]);
  }
  if (bits & kRest) {
    for (size_t i = 63; i < fields.size(); ++i) out->push_back(&fields[i]);
  }
}

absl::Status EngineImpl::Flush() {
  // Once every state Open kept serialized was parsed or deleted, the bytes
  // they were kept in go (here: the tick's thread, never a caller's).
  table_->ReleaseLazyBytesIfUnused();
  MutexLock tick_lock(&tick_mu_);
  absl::Status health_status = CheckWritable();
  if (!health_status.ok()) return health_status;
  const absl::Time start = absl::Now();

  // Clean sessions cost nothing: only the dirty sets are visited.
  bool any_dirty = false;
  for (size_t i = 0; i < table_->shard_count() && !any_dirty; ++i) {
    SessionTable::Shard& shard = table_->shard(i);
    MutexLock lock(&shard.mu);
    any_dirty = shard.dirty_count > 0;
  }
  if (!any_dirty) return absl::OkStatus();

  auto begin = writer_->Append(log::kTickBegin, "");
  if (!begin.ok()) return Fail(begin.status(), "appending tick begin");
  const uint64_t tick = *begin;

  uint64_t entries = 0;
  uint64_t unsynced_bytes = 0;
  uint64_t unwritten_bytes = 0;
  uint64_t last_lsn = tick;
  UpdateEncoder encoder;
  std::vector<const Schema::Field*> dirty_fields;
  // Sessions written between two yields of the core (none before the
  // first slice), and at most per hold of a shard's lock.
  constexpr size_t kSessionsPerSlice = 128;
  size_t slice_budget = kSessionsPerSlice;
  uint64_t yields = 0;
  for (size_t i = 0; i < table_->shard_count(); ++i) {
    SessionTable::Shard& shard = table_->shard(i);
    size_t end = 0;
    {
      MutexLock lock(&shard.mu);
      if (shard.dirty_count == 0) continue;
      // The sessions dirty now. Those made dirty while the tick runs go to
      // the end of the list, past `end`, and wait for the next tick; one
      // erased meanwhile leaves a null in its place, so the positions below
      // `end` stay valid without holding the lock throughout.
      end = shard.dirty.size();
    }
    // The shard lock is taken per slice of sessions, so updates of other
    // sessions in the shard wait at most one slice. A slice ends where the
    // tick's budget of sessions between two yields runs out, so a slice can
    // be shorter than kSessionsPerSlice, never longer.
    for (size_t k = 0; k < end;) {
      if (slice_budget == 0) {
        // A tick keeps a core busy for a long time; on a small machine an
        // IMMEDIATE caller woken from its fdatasync would otherwise wait up
        // to a scheduler slice (4 ms at HZ=250) for a core. Yielding every
        // kSessionsPerSlice sessions (~0.2 ms of work) costs a large tick
        // ~5% and bounds that wait (tests/log:tick_latency measured busy p99
        // 2.8 ms -> 0.4 ms). Counted across shards, not per shard: a small
        // tick has a session or two in each shard, and a yield per shard
        // (79 for a tick of 100 sessions) was a fifth of its CPU time.
        // And only while such a caller exists, one inside SyncTo (waiting,
        // syncing, or woken and not yet out): with none, a yield helps no
        // one, and on a busy machine it may hand the core to another
        // process for a whole time slice.
        if (writer_->sync_callers() > 0) {
          std::this_thread::yield();
          ++yields;
        }
        slice_budget = kSessionsPerSlice;
      }
      MutexLock lock(&shard.mu);
      const size_t slice_end = std::min(end, k + slice_budget);
      slice_budget -= slice_end - k;
      for (size_t j = k; j < slice_end; ++j) {
        SessionTable::Node* node = shard.dirty[j];
        if (node == nullptr) continue;
        SessionTable::Entry& entry = node->entry;
        // Every dirty field, whatever its declared tier: a field declared
        // IMMEDIATE is dirty only when an update overrode it to BATCHED.
        CollectDirtyFields(entry.dirty, &dirty_fields);
        // Straight from the session's state into the writer's buffer: no
        // copy of the values, and the shard lock keeps the state still
        // meanwhile. Sized here, so that the writer's lock, which IMMEDIATE
        // updates need too, is held only for the serialization.
        const size_t size = encoder.Prepare(
            node->id(), tick, *entry.state.parsed(), dirty_fields);
        absl::Status encoded;
        auto lsn = writer_->AppendEncoded(log::kTickEntry, size, [&](char* p) {
          encoded = encoder.EncodeTo(p);
          return encoded;
        });
        if (!encoded.ok()) return Fail(encoded, "encoding tick entry");
        if (!lsn.ok()) return Fail(lsn.status(), "appending tick entry");
        last_lsn = *lsn;
        table_->ClearDirtyLocked(shard, node);
        ++entries;
        unwritten_bytes += log::FramedSize(size);
      }
      if (slice_end == end) table_->CompactDirtyLocked(shard);
      k = slice_end;
    }
    // Bound what an IMMEDIATE update's fdatasync would have to carry.
    if (unwritten_bytes >= options_.tick_write_bytes) {
      KillPoint("engine.tick_mid");
      absl::Status s = writer_->Flush();
      if (!s.ok()) return Fail(s, "writing tick");
      unsynced_bytes += unwritten_bytes;
      unwritten_bytes = 0;
      if (unsynced_bytes >= options_.tick_sync_bytes) {
        s = writer_->SyncTo(last_lsn);
        if (!s.ok()) return Fail(s, "syncing tick");
        unsynced_bytes = 0;
      }
    }
  }
  KillPoint("engine.before_tick_commit");
  record::TickEnd commit;
  commit.set_tick(tick);
  commit.set_entries(entries);
  auto commit_lsn =
      writer_->Append(log::kTickCommit, commit.SerializeAsString());
  if (!commit_lsn.ok())
    return Fail(commit_lsn.status(), "appending tick commit");
  absl::Status s = writer_->SyncTo(*commit_lsn);
  if (!s.ok()) return Fail(s, absl::StrCat("syncing tick ", tick));
  KillPoint("engine.after_tick_commit");

  {
    MutexLock lock(&status_mu_);
    ++ticks_;
    last_tick_sessions_ = entries;
    last_tick_yields_ = yields;
    last_tick_time_ = options_.clock();
    last_tick_duration_ = absl::Now() - start;
  }
  RequestCompactionIfDue();
  return absl::OkStatus();
}

void EngineImpl::BackgroundLoop() {
  absl::Time next_tick = absl::Now() + options_.flush_interval;
  absl::Time next_expiry = absl::Now() + options_.flush_interval;
  while (true) {
    bool compact = false;
    {
      MutexLock lock(&bg_mu_);
      if (bg_stop_) break;
      const absl::Duration wait = std::max(
          absl::ZeroDuration(), std::min(next_tick, next_expiry) - absl::Now());
      const auto deadline = std::chrono::steady_clock::now() +
                            absl::ToChronoMilliseconds(wait) +
                            std::chrono::milliseconds(1);
      while (!bg_stop_ && !compaction_requested_) {
        if (!bg_cv_.WaitUntil(&bg_mu_, deadline)) break;  // time for a tick
      }
      if (bg_stop_) break;
      compact = compaction_requested_;
      compaction_requested_ = false;
    }
    // Asked for by a tick or by the log's growth; checked again, as a
    // compaction may have run since.
    if (compact && CompactionDue()) {
      (void)Compact();  // its status is kept for stats()
    }
    const absl::Time now = absl::Now();
    if (now >= next_tick) {
      absl::Status s = Flush();  // asks for a compaction if one is due
      {
        MutexLock status_lock(&status_mu_);
        last_tick_status_ = s;
      }
      next_tick = now + options_.flush_interval;
    }
    if (now >= next_expiry) {
      (void)ExpireIdleSessions();
      next_expiry = now + options_.flush_interval;
    }
  }
}

void EngineImpl::RequestCompactionIfDue() {
  if (!options_.background_thread || !CompactionDue()) return;
  {
    MutexLock lock(&bg_mu_);
    compaction_requested_ = true;
  }
  bg_cv_.NotifyAll();
}

void EngineImpl::StopBackground() {
  {
    MutexLock lock(&bg_mu_);
    bg_stop_ = true;
  }
  bg_cv_.NotifyAll();
  if (bg_thread_.joinable()) bg_thread_.join();
}

}  // namespace internal
}  // namespace walstate
