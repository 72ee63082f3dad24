// Compaction of EngineImpl: a fuzzy snapshot of every shard, verified after
// it is written, published by a new MANIFEST, then the snapshots and log it
// made obsolete are deleted; and the rule that says when one is due.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "engine/engine_impl.h"
#include "engine/fs/backup.h"
#include "engine/fs/kill_point.h"
#include "engine/log/format.h"
#include "engine/log/writer.h"
#include "engine/replication/shipper.h"
#include "engine/snapshot/manifest.h"
#include "engine/snapshot/snapshot_loader.h"
#include "engine/snapshot/snapshot_writer.h"
#include "engine/state/session_table.h"
#include "engine/util/mutex.h"
#include "proto/walstate/record.pb.h"

namespace walstate {
namespace internal {

namespace {

// A snapshot that could not be written or published leaves the previous one
// in effect; the log is untouched and updates go on.
absl::Status SnapshotFailed(const absl::Status& s) {
  return absl::Status(
      s.code(), absl::StrCat(s.message(),
                             ". The previous snapshot stays in effect and "
                             "updates go on; fix the cause and call "
                             "Compact() again"));
}

}  // namespace

absl::Status EngineImpl::Compact() {
  absl::Status s = CompactNow();
  MutexLock lock(&status_mu_);
  last_compaction_status_ = s;
  return s;
}

absl::Status EngineImpl::CompactNow() {
  MutexLock compact_lock(&compact_mu_);
  absl::Status health_status = CheckWritable();
  if (!health_status.ok()) return health_status;
  // The LSN and where its record is, read together.
  const log::WriterStats at_start = writer_->stats();
  const uint64_t lsn = at_start.last_lsn;
  if (!on_fallback_ && manifest_.has_current() &&
      manifest_.current().lsn() == lsn) {
    return absl::OkStatus();  // nothing new since the last snapshot
  }
  // The log up to the snapshot's LSN must be durable first: otherwise a crash
  // could leave a gap between the log's durable end and the LSNs written
  // after the snapshot.
  absl::Status s = writer_->SyncTo(lsn);
  if (!s.ok()) return Fail(s, "syncing log before snapshot");
  const uint64_t writer_bytes = writer_->stats().bytes_written;

  auto snapshot = SnapshotWriter::Create(fs_, dir_, lsn, schema_->blob());
  if (!snapshot.ok()) return SnapshotFailed(snapshot.status());
  SnapshotWriter& w = **snapshot;
  // Fuzzy snapshot: shards are captured one after the other while updates go
  // on. A shard captured late may already hold changes with LSN > lsn, and
  // BATCHED changes no tick has written yet. Re-applying its records with
  // LSN > lsn is not harmless: a tick entry written before the capture holds
  // older values of only the fields it lists, so it would leave the session
  // half one version, half another. So each session records the log's last
  // LSN at its capture (every record of a shard is appended and applied
  // under the shard's lock, so the state holds all of them up to it), and
  // replay skips the session's records up to that LSN.
  uint64_t max_captured = lsn;
  for (size_t i = 0; i < table_->shard_count(); ++i) {
    SessionTable::Shard& shard = table_->shard(i);
    {
      MutexLock lock(&shard.mu);
      const uint64_t captured = writer_->last_lsn();
      max_captured = std::max(max_captured, captured);
      for (const SessionTable::Node* node : shard.sessions) {
        // A state Open kept serialized, with no record since, is copied
        // as it is; one with records is parsed (and stays parsed).
        absl::string_view serialized;
        if (SessionTable::SerializedState(*node, &serialized)) {
          w.AddSerialized(node->id(), serialized, captured);
          continue;
        }
        s = table_->ParseLocked(node);
        if (!s.ok()) return SnapshotFailed(s);
        w.Add(node->id(), *node->entry.state.parsed(), captured);
      }
    }
    if (w.buffered_bytes() >= (1u << 20)) {
      s = w.WriteBuffered();
      if (!s.ok()) return SnapshotFailed(s);
    }
  }
  // Records up to the highest capture LSN must be durable before the
  // snapshot is: otherwise a crash could lose them from the log, new records
  // would reuse their LSNs, and replay would skip those as captured.
  s = writer_->SyncTo(max_captured);
  if (!s.ok()) return Fail(s, "syncing log before publishing snapshot");
  s = w.Finish();
  if (!s.ok()) return SnapshotFailed(s);
  // Read back before anything is deleted because of it: a snapshot that
  // does not verify is never published, so never kept as a fallback either.
  s = VerifySnapshot(fs_, JoinPath(dir_, w.file_name()), lsn, w.sessions());
  if (!s.ok()) {
    (void)fs_->DeleteFile(JoinPath(dir_, w.file_name()));  // ours, unpublished
    return SnapshotFailed(absl::Status(
        s.code(), absl::StrCat("snapshot ", w.file_name(),
                               " failed verification after it was written: ",
                               s.message())));
  }

  record::Manifest next;
  next.set_generation(manifest_.generation() + 1);
  auto* current = next.mutable_current();
  current->set_file(w.file_name());
  current->set_lsn(lsn);
  if (at_start.last_record_segment != 0) {
    current->set_log_segment(at_start.last_record_segment);
    current->set_log_offset(at_start.last_record_offset);
  }
  current->set_sessions(w.sessions());
  current->set_bytes(w.bytes());
  // The previous snapshot is the one recovery could fall back to: after a
  // fallback at Open, the snapshot Open used (and, by DeleteObsoleteFiles,
  // its log), never the one that failed to load.
  if (on_fallback_) {
    if (!fallback_snapshot_.file().empty()) {
      *next.mutable_previous() = fallback_snapshot_;
    }
  } else if (manifest_.has_current()) {
    *next.mutable_previous() = manifest_.current();
  }
  s = WriteManifest(fs_, dir_, next);
  if (!s.ok()) return SnapshotFailed(s);
  KillPoint("compact.before_delete");
  // Sessions not used since Open still point into the snapshot file Open
  // mapped, which is about to be deleted: copied to the heap first, so that
  // its disk space is given back.
  table_->CopyMappedLazyStates();
  const record::Manifest replaced = manifest_;
  const bool was_on_fallback = on_fallback_;
  manifest_ = next;
  if (shipper_ != nullptr) {
    // After every record the snapshot may hold effects of.
    shipper_->PublishSnapshotLater(fs_, JoinPath(dir_, w.file_name()), lsn,
                                   max_captured);
  }
  on_fallback_ = false;
  {
    MutexLock info_lock(&snapshot_info_mu_);
    log_bytes_at_snapshot_ = writer_bytes;
    recovered_log_bytes_ = 0;
    snapshot_bytes_ = next.current().bytes();
    snapshot_lsn_ = next.current().lsn();
    snapshot_time_ = options_.clock();
    ++snapshots_written_;
  }
  s = DeleteObsoleteFiles(replaced, manifest_, was_on_fallback);
  if (!s.ok()) {
    return absl::Status(
        s.code(), absl::StrCat(s.message(), ". Snapshot ", w.file_name(),
                               " is in effect, but files it made obsolete "
                               "remain; fix the cause, the next Compact() "
                               "deletes them"));
  }
  return s;
}

absl::Status EngineImpl::DeleteObsoleteFiles(const record::Manifest& replaced,
                                             const record::Manifest& manifest,
                                             bool was_on_fallback) {
  bool changed = false;
  // Only snapshots the replaced MANIFEST named (walstate's own, published)
  // and the new one does not. One that failed to load at Open is evidence,
  // not garbage: it goes to the backup folder. Snapshots no MANIFEST named
  // are not provably walstate's and stay.
  for (const auto* ref : {&replaced.current(), &replaced.previous()}) {
    const std::string& name = ref->file();
    uint64_t lsn = 0;
    if (name.empty() || !log::ParseSnapshotFileName(name, &lsn) ||
        name == manifest.current().file() ||
        name == manifest.previous().file()) {
      continue;
    }
    const std::string path = JoinPath(dir_, name);
    auto exists = fs_->FileExists(path);
    if (!exists.ok()) return exists.status();
    if (!*exists) continue;
    const bool failed = was_on_fallback && ref == &replaced.current();
    absl::Status s = failed ? backup_->Move(name) : fs_->DeleteFile(path);
    if (!s.ok()) return s;
    changed = true;
  }
  // The log after the previous snapshot stays, so that recovery can fall back
  // to it if the current one is damaged.
  if (manifest.has_previous()) {
    const uint64_t keep_after = manifest.previous().lsn();
    auto segments = ListSegments();
    if (!segments.ok()) return segments.status();
    for (size_t i = 0; i + 1 < segments->size(); ++i) {
      const uint64_t last_lsn = (*segments)[i + 1].first_lsn - 1;
      if (last_lsn > keep_after) break;
      absl::Status s = fs_->DeleteFile(JoinPath(dir_, (*segments)[i].name));
      if (!s.ok()) return s;
      KillPoint("compact.mid_delete");
      {
        MutexLock info_lock(&snapshot_info_mu_);
        base_log_bytes_ -= std::min(base_log_bytes_, (*segments)[i].bytes);
      }
      changed = true;
    }
  }
  return changed ? fs_->SyncDir(dir_) : absl::OkStatus();
}

bool EngineImpl::CompactionDue() {
  const uint64_t written = writer_->stats().bytes_written;
  MutexLock lock(&snapshot_info_mu_);
  const uint64_t since =
      written + recovered_log_bytes_ - log_bytes_at_snapshot_;
  const uint64_t snapshot_bytes = snapshot_bytes_;
  const uint64_t threshold =
      std::max(options_.compaction_min_log_bytes,
               static_cast<uint64_t>(options_.compaction_log_fraction *
                                     static_cast<double>(snapshot_bytes)));
  if (since > threshold) return true;
  if (options_.compaction_interval > absl::ZeroDuration() && since > 0) {
    absl::Time last =
        snapshot_time_ == absl::InfinitePast() ? opened_at_ : snapshot_time_;
    return options_.clock() - last >= options_.compaction_interval;
  }
  return false;
}

}  // namespace internal
}  // namespace walstate
