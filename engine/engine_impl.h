// EngineImpl: the Engine behind <walstate/walstate.h>, internal to
// //engine:walstate. Its jobs live in one file each:
//   walstate.cc          Open (recovery, repairing what Open may repair,
//                        starting replication and the writer), Close, health
//   engine_update.cc     the update paths (IMMEDIATE, BATCHED, serialized),
//                        Delete and session expiry
//   engine_tick.cc       the batched tick (Flush) and the background thread
//   engine_compaction.cc snapshots, the compaction rule, deleting what a
//                        snapshot made obsolete
//   engine_stats.cc      stats() and memory usage
#ifndef WALSTATE_ENGINE_ENGINE_IMPL_H_
#define WALSTATE_ENGINE_ENGINE_IMPL_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "engine/fs/backup.h"
#include "engine/log/writer.h"
#include "engine/recovery.h"
#include "engine/replication/shipper.h"
#include "engine/state/schema.h"
#include "engine/state/session_table.h"
#include "engine/util/mutex.h"
#include "proto/walstate/record.pb.h"
#include "walstate/walstate.h"

namespace walstate {
namespace internal {

using google::protobuf::Message;

// Segment numbers and first LSNs of a directory's segments, in order.
struct SegmentInfo {
  uint64_t number = 0;
  uint64_t first_lsn = 0;
  uint64_t bytes = 0;
  std::string name;
};

class EngineImpl : public Engine {
 public:
  EngineImpl(const Options& options, std::string dir)
      : options_(options), dir_(std::move(dir)) {}

  ~EngineImpl() override {
    StopBackground();
    if (shipper_ != nullptr) shipper_->Stop();
  }

  absl::Status Init(const Message& prototype);

  absl::Status Update(absl::string_view session, const Message& values,
                      absl::Span<const std::string> fields,
                      const UpdateOptions& options) override {
    // Not moved from, so not changed.
    return UpdateImpl(session, const_cast<Message*>(&values), /*move=*/false,
                      fields, options);
  }
  absl::Status Update(absl::string_view session, Message&& values,
                      absl::Span<const std::string> fields,
                      const UpdateOptions& options) override {
    return UpdateImpl(session, &values, /*move=*/true, fields, options);
  }
  absl::Status UpdateSerialized(absl::string_view session,
                                absl::string_view serialized,
                                absl::Span<const std::string> fields,
                                const UpdateOptions& options) override;
  absl::Status Delete(absl::string_view session) override;
  absl::Status Get(absl::string_view session, Message* out) const override {
    return table_->Get(session, out);
  }
  bool Contains(absl::string_view session) const override {
    return table_->Contains(session);
  }
  void ForEach(const std::function<void(absl::string_view, const Message&)>& fn)
      const override {
    table_->ForEach(fn);
  }
  absl::StatusOr<std::vector<std::string>> Lookup(
      absl::string_view field, absl::string_view value) const override {
    return table_->Lookup(field, value);
  }
  absl::Status Flush() override;
  absl::Status Compact() override;
  // Compact() without recording its status for stats().
  absl::Status CompactNow() ABSL_LOCKS_EXCLUDED(compact_mu_);
  absl::StatusOr<uint64_t> ExpireIdleSessions() override;
  absl::StatusOr<uint64_t> ExpireIdleSessions(absl::Duration idle) override;
  absl::Status Close() override;
  absl::Status health() const override;
  Stats stats() const override;
  uint64_t ApproximateMemoryUsage() const override;
  const RecoveryReport& recovery_report() const override { return report_; }

 private:
  absl::Status UpdateImpl(absl::string_view session, Message* values, bool move,
                          absl::Span<const std::string> fields,
                          const UpdateOptions& options);
  absl::Status CheckWritable() const;
  // The fields of `dirty`, in schema order (the tick's entries list them so).
  void CollectDirtyFields(FieldSet dirty,
                          std::vector<const Schema::Field*>* out) const;
  // Records `s` as the error that stops the engine; returns it with context.
  absl::Status Fail(const absl::Status& s, absl::string_view what)
      ABSL_LOCKS_EXCLUDED(status_mu_);
  // Appends a delete of `session` (in `shard`) and erases it from memory;
  // sets *lsn to the record's LSN. The caller syncs.
  absl::Status DeleteLocked(SessionTable::Shard& shard,
                            absl::string_view session,
                            record::Delete::Reason reason, uint64_t* lsn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  absl::Status RepairTail(const RecoveredState& recovered);
  // Claims the store's stream, publishes what the stream lacks of the local
  // log, and starts the shipper (Options::replication).
  absl::Status StartReplication(const RecoveredState& recovered);
  absl::Status RemoveOwnTemporaries();
  absl::Status RefuseSymlinks();
  absl::StatusOr<std::vector<SegmentInfo>> ListSegments();
  // Deletes the snapshots `replaced` named and `manifest` does not (moving
  // one that failed at Open to the backup folder) and the log before
  // `manifest`'s previous snapshot.
  absl::Status DeleteObsoleteFiles(const record::Manifest& replaced,
                                   const record::Manifest& manifest,
                                   bool was_on_fallback)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(compact_mu_);
  bool CompactionDue();
  // If CompactionDue(), asks the background thread (if any) to compact.
  void RequestCompactionIfDue();
  void BackgroundLoop() ABSL_LOCKS_EXCLUDED(bg_mu_);
  void StopBackground() ABSL_LOCKS_EXCLUDED(bg_mu_);

  const Options options_;
  const std::string dir_;
  FileSystem* fs_ = nullptr;
  std::unique_ptr<FileLock> lock_;
  // Where Open put what it dropped (created on first use).
  std::unique_ptr<BackupFolder> backup_;
  std::unique_ptr<Schema> schema_;
  std::unique_ptr<SessionTable> table_;
  // Replication; declared before writer_, which holds a pointer to it.
  std::unique_ptr<replication::Shipper> shipper_;
  std::string writer_id_;
  std::unique_ptr<log::LogWriter> writer_;
  RecoveryReport report_;
  absl::Time opened_at_;

  // Lock order: compact_mu_ and tick_mu_ are taken before a shard's mu;
  // snapshot_info_mu_, status_mu_, scratch_mu_ and bg_mu_ are leaves (nothing
  // is locked while one is held).
  // Serializes ticks with each other (and with Close).
  Mutex tick_mu_;
  // Serializes compactions; guards manifest_ and the fallback state below.
  Mutex compact_mu_;
  record::Manifest manifest_ ABSL_GUARDED_BY(compact_mu_);
  // The snapshot counters, held only to read or set them (never across a
  // compaction): stats() and CompactionDue() take it, and must not wait for
  // a snapshot to be written.
  mutable Mutex snapshot_info_mu_;
  // Writer bytes when it was taken; the log after the snapshot at Open;
  // bytes of the segments found at Open; manifest_.current()'s size and LSN.
  uint64_t log_bytes_at_snapshot_ ABSL_GUARDED_BY(snapshot_info_mu_) = 0;
  uint64_t recovered_log_bytes_ ABSL_GUARDED_BY(snapshot_info_mu_) = 0;
  uint64_t base_log_bytes_ ABSL_GUARDED_BY(snapshot_info_mu_) = 0;
  uint64_t snapshot_bytes_ ABSL_GUARDED_BY(snapshot_info_mu_) = 0;
  uint64_t snapshot_lsn_ ABSL_GUARDED_BY(snapshot_info_mu_) = 0;
  absl::Time snapshot_time_ ABSL_GUARDED_BY(snapshot_info_mu_) =
      absl::InfinitePast();
  uint64_t snapshots_written_ ABSL_GUARDED_BY(snapshot_info_mu_) = 0;
  // The snapshot Open recovered from after the MANIFEST's current one
  // failed to load (empty: no fallback, or a snapshot was written since).
  // The next compaction keeps it as the previous snapshot, never the one
  // that failed.
  record::Manifest::SnapshotRef fallback_snapshot_ ABSL_GUARDED_BY(compact_mu_);
  bool on_fallback_ ABSL_GUARDED_BY(compact_mu_) = false;

  mutable Mutex status_mu_;
  // The I/O error that stopped the engine.
  absl::Status failure_ ABSL_GUARDED_BY(status_mu_);
  bool closed_ ABSL_GUARDED_BY(status_mu_) = false;
  // Set, under status_mu_, once failure_ or closed_ is: every update checks
  // it, and a shared mutex there is a point all writers contend on.
  std::atomic<bool> stopped_{false};
  uint64_t ticks_ ABSL_GUARDED_BY(status_mu_) = 0;
  uint64_t last_tick_sessions_ ABSL_GUARDED_BY(status_mu_) = 0;
  uint64_t last_tick_yields_ ABSL_GUARDED_BY(status_mu_) = 0;
  absl::Time last_tick_time_ ABSL_GUARDED_BY(status_mu_) = absl::InfinitePast();
  absl::Duration last_tick_duration_ ABSL_GUARDED_BY(status_mu_);
  absl::Status last_tick_status_ ABSL_GUARDED_BY(status_mu_);
  absl::Status last_compaction_status_ ABSL_GUARDED_BY(status_mu_);

  std::atomic<uint64_t> immediate_updates_{0};
  std::atomic<uint64_t> batched_updates_{0};
  std::atomic<uint64_t> deletes_{0};
  std::atomic<uint64_t> expired_{0};

  // Messages UpdateSerialized parses into, kept for reuse: their strings
  // and submessages, holding old values after an update, are overwritten by
  // the next parse rather than freed and allocated again.
  Mutex scratch_mu_;
  std::vector<std::unique_ptr<Message>> scratch_ ABSL_GUARDED_BY(scratch_mu_);

  // The background thread's wake-ups (BackgroundLoop).
  Mutex bg_mu_;
  CondVar bg_cv_;  // signalled when bg_stop_ or compaction_requested_ is set
  bool bg_stop_ ABSL_GUARDED_BY(bg_mu_) = false;
  bool compaction_requested_ ABSL_GUARDED_BY(bg_mu_) = false;
  std::thread bg_thread_;
};

}  // namespace internal
}  // namespace walstate

#endif  // WALSTATE_ENGINE_ENGINE_IMPL_H_
