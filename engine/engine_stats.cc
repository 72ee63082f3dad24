// What EngineImpl reports about itself: stats() and its memory use.
#include "engine/engine_impl.h"
#include "engine/log/writer.h"
#include "engine/replication/shipper.h"
#include "engine/state/session_table.h"
#include "engine/util/mutex.h"

namespace walstate {
namespace internal {

Stats EngineImpl::stats() const {
  Stats st;
  st.sessions = table_->size();
  st.dirty_sessions = table_->dirty_count();
  st.lazy_sessions = table_->lazy_count();
  st.lazy_bytes = table_->lazy_bytes();
  st.lazy_mapped_bytes = table_->lazy_mapped_bytes();
  log::WriterStats ws = writer_->stats();
  st.last_lsn = ws.last_lsn;
  st.durable_lsn = ws.durable_lsn;
  st.fsyncs = ws.syncs;
  st.synced_records = ws.synced_records;
  st.group_commit_waits = ws.lingers;
  st.group_commit_waits_in_vain = ws.fruitless_lingers;
  st.immediate_updates = immediate_updates_.load();
  st.batched_updates = batched_updates_.load();
  st.deletes = deletes_.load();
  st.expired = expired_.load();
  {
    MutexLock lock(&snapshot_info_mu_);
    st.log_bytes = base_log_bytes_ + ws.bytes_written;
    st.log_bytes_since_snapshot =
        ws.bytes_written + recovered_log_bytes_ - log_bytes_at_snapshot_;
    st.snapshot_bytes = snapshot_bytes_;
    st.snapshot_lsn = snapshot_lsn_;
    st.snapshot_time = snapshot_time_;
    st.snapshots_written = snapshots_written_;
  }
  st.log_segments = ws.segments_created + report_.segments_read;
  {
    MutexLock lock(&status_mu_);
    st.ticks = ticks_;
    st.last_tick_sessions = last_tick_sessions_;
    st.last_tick_yields = last_tick_yields_;
    st.last_tick_time = last_tick_time_;
    st.last_tick_duration = last_tick_duration_;
    st.last_tick_status = last_tick_status_;
    st.last_compaction_status = last_compaction_status_;
  }
  if (shipper_ != nullptr) {
    const replication::ShipperStats rs = shipper_->stats();
    st.replication_mode = replication::ModeName(options_.replication.mode);
    st.replication_writer = writer_id_;
    st.replication_durability =
        options_.replication.replicator->durability().description;
    st.replicated_lsn = rs.published_lsn;
    st.replication_lag_records = rs.lag_records;
    st.replication_lag_bytes = rs.lag_bytes;
    st.replication_lag = rs.lag;
    st.replication_publishes = rs.publishes;
    st.replication_publish_failures = rs.publish_failures;
    st.snapshots_replicated = rs.snapshots_published;
    st.replication_status = rs.last_error;
  }
  return st;
}

uint64_t EngineImpl::ApproximateMemoryUsage() const {
  return table_->ApproximateMemory();
}

}  // namespace internal
}  // namespace walstate
