// The engine: update paths for both tiers, the batched tick, compaction,
// expiry and the background thread. Recovery is engine/recovery.cc.
#include "walstate/walstate.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "engine/fs/backup.h"
#include "engine/fs/kill_point.h"
#include "engine/log/format.h"
#include "engine/log/writer.h"
#include "engine/recovery.h"
#include "engine/replication/catch_up.h"
#include "engine/replication/shipper.h"
#include "engine/snapshot/manifest.h"
#include "engine/snapshot/snapshot_loader.h"
#include "engine/snapshot/snapshot_writer.h"
#include "engine/state/schema.h"
#include "engine/state/session_id.h"
#include "engine/state/session_table.h"
#include "engine/state/update_codec.h"
#include "engine/util/mutex.h"
#include "proto/walstate/record.pb.h"

namespace walstate {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

namespace {

std::string ParentDir(const std::string& dir) {
  std::string d = dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  const size_t slash = d.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return d.substr(0, slash);
}

std::string LockOwner() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return absl::StrCat("pid ", getpid(), " on ", host, " since ",
                      absl::FormatTime(absl::Now()));
}

// Segment numbers and first LSNs of a directory's segments, in order.
struct SegmentInfo {
  uint64_t number = 0;
  uint64_t first_lsn = 0;
  uint64_t bytes = 0;
  std::string name;
};

// A snapshot that could not be written or published leaves the previous one
// in effect; the log is untouched and updates go on.
absl::Status SnapshotFailed(const absl::Status& s) {
  return absl::Status(
      s.code(), absl::StrCat(s.message(),
                             ". The previous snapshot stays in effect and "
                             "updates go on; fix the cause and call "
                             "Compact() again"));
}

// Upper bound on a session id: ids are keys, not payloads.
constexpr size_t kMaxSessionIdBytes = 4096;

// IMMEDIATE updates (and deletes) grow the log without a tick: every this
// many of them, the compaction rule is checked (it takes the writer's and
// the snapshot counters' locks, too much for every update).
constexpr uint64_t kCompactionCheckEvery = 256;

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
  absl::Status CompactNow();
  absl::StatusOr<uint64_t> ExpireIdleSessions() override;
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
  absl::Status Fail(const absl::Status& s, absl::string_view what);
  absl::Status DeleteLocked(SessionTable::Shard& shard,
                            absl::string_view session,
                            record::Delete::Reason reason, uint64_t* lsn);
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
                                   bool was_on_fallback);
  bool CompactionDue();
  // If CompactionDue(), asks the background thread (if any) to compact.
  void RequestCompactionIfDue();
  void BackgroundLoop();
  void StopBackground();

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

  // Serializes ticks with each other (and with Close).
  std::mutex tick_mu_;
  // Serializes compactions; guards manifest_.
  std::mutex compact_mu_;
  record::Manifest manifest_;
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
  // that failed. Guarded by compact_mu_ after Open.
  record::Manifest::SnapshotRef fallback_snapshot_;
  bool on_fallback_ = false;

  mutable std::mutex status_mu_;
  absl::Status failure_;  // the I/O error that stopped the engine
  bool closed_ = false;
  // Set, under status_mu_, once failure_ or closed_ is: every update checks
  // it, and a shared mutex there is a point all writers contend on.
  std::atomic<bool> stopped_{false};
  uint64_t ticks_ = 0;
  uint64_t last_tick_sessions_ = 0;
  uint64_t last_tick_yields_ = 0;
  absl::Time last_tick_time_ = absl::InfinitePast();
  absl::Duration last_tick_duration_;
  absl::Status last_tick_status_;
  absl::Status last_compaction_status_;

  std::atomic<uint64_t> immediate_updates_{0};
  std::atomic<uint64_t> batched_updates_{0};
  std::atomic<uint64_t> deletes_{0};
  std::atomic<uint64_t> expired_{0};

  // Messages UpdateSerialized parses into, kept for reuse: their strings
  // and submessages, holding old values after an update, are overwritten by
  // the next parse rather than freed and allocated again.
  Mutex scratch_mu_;
  std::vector<std::unique_ptr<Message>> scratch_ ABSL_GUARDED_BY(scratch_mu_);

  std::mutex bg_mu_;
  std::condition_variable bg_cv_;
  bool bg_stop_ = false;
  bool compaction_requested_ = false;  // guarded by bg_mu_
  std::thread bg_thread_;
};

absl::Status EngineImpl::Init(const Message& prototype) {
  fs_ = options_.fs != nullptr    ? options_.fs
        : options_.group_readable ? FileSystem::DefaultGroupReadable()
                                  : FileSystem::Default();
  opened_at_ = options_.clock();
  auto exists = fs_->FileExists(dir_);
  if (!exists.ok()) return exists.status();
  if (!*exists) {
    if (!options_.create_if_missing) {
      return absl::NotFoundError(absl::StrCat(
          "data directory ", dir_,
          " does not exist (set Options::create_if_missing to create it)"));
    }
    absl::Status s = fs_->CreateDir(dir_);
    if (!s.ok()) return s;
  }
  // The directory's own name must survive a crash too. Synced at every Open,
  // not only after the mkdir: an earlier Open may have created the directory
  // and failed (or died) before this sync.
  absl::Status synced = fs_->SyncDir(ParentDir(dir_));
  if (!synced.ok()) return synced;
  auto lock = fs_->LockFile(JoinPath(dir_, log::kLockFileName), LockOwner());
  if (!lock.ok()) return lock.status();
  lock_ = std::move(*lock);
  backup_ = std::make_unique<BackupFolder>(fs_, dir_, "recovery-backup");
  if (!options_.allow_symlinked_files) {
    absl::Status refused = RefuseSymlinks();
    if (!refused.ok()) return refused;
  }

  auto schema = Schema::FromPrototype(prototype, options_.default_durability);
  if (!schema.ok()) return schema.status();
  schema_ = std::move(*schema);

  // A directory written for another message type would parse as garbage.
  auto stored = ReadStoredSchema(fs_, dir_);
  if (stored.ok() && (*stored)->descriptor()->full_name() !=
                         schema_->descriptor()->full_name()) {
    return absl::FailedPreconditionError(absl::StrCat(
        dir_, " holds sessions of type ", (*stored)->descriptor()->full_name(),
        ", but it was opened for ", schema_->descriptor()->full_name(),
        " (open it with the matching message type)"));
  }

  RecoveryOptions ropts;
  ropts.fs = fs_;
  ropts.dir = dir_;
  ropts.mode = options_.recovery_mode;
  ropts.workers = options_.recovery_threads;
  ropts.lazy = options_.lazy_recovery;
  ropts.lazy_replay_slack_bytes = options_.lazy_replay_slack_bytes;
  auto recovered = Recover(ropts, *schema_);
  if (!recovered.ok()) return recovered.status();
  table_ = std::move(recovered->table);
  report_ = recovered->report;
  manifest_ = recovered->manifest;
  if (manifest_.has_current()) {
    snapshot_bytes_ = manifest_.current().bytes();
    snapshot_lsn_ = manifest_.current().lsn();
  }
  if (report_.fell_back && !report_.snapshot_file.empty()) {
    on_fallback_ = true;
    for (const auto* ref : {&manifest_.current(), &manifest_.previous()}) {
      if (ref->file() == report_.snapshot_file) fallback_snapshot_ = *ref;
    }
  }

  absl::Status s = RepairTail(*recovered);
  if (!s.ok()) return s;
  s = RemoveOwnTemporaries();
  if (!s.ok()) return s;
  report_.backup_dir = backup_->path();
  report_.backed_up = backup_->names();

  auto segments = ListSegments();
  if (!segments.ok()) return segments.status();
  for (const SegmentInfo& seg : *segments) base_log_bytes_ += seg.bytes;
  // RepairTail deleted any segment whose header a crash tore; its number is
  // reused, since a gap in segment numbers reads as missing segments.
  uint64_t next_segment = recovered->next_segment_number;
  if (!segments->empty()) next_segment = segments->back().number + 1;

  log::WriterOptions wopts;
  wopts.fs = fs_;
  wopts.dir = dir_;
  wopts.max_segment_bytes = options_.max_segment_bytes;
  wopts.preallocate = options_.preallocate_segments;
  wopts.max_linger = absl::ToChronoMicroseconds(
      std::max(absl::ZeroDuration(), options_.group_commit_max_wait));
  wopts.schema = schema_->blob();
  if (options_.replication.mode != replication::Mode::kOff) {
    s = StartReplication(*recovered);
    if (!s.ok()) return s;
    wopts.observer = shipper_.get();
  }
  auto writer =
      log::LogWriter::Create(wopts, next_segment, recovered->next_lsn);
  if (!writer.ok()) return writer.status();
  writer_ = std::move(*writer);

  // Close the ticks a crash left open, so no later recovery has to hold
  // their entries until the end of the log.
  for (uint64_t tick : recovered->open_ticks) {
    record::TickEnd end;
    end.set_tick(tick);
    auto lsn = writer_->Append(log::kTickAbort, end.SerializeAsString());
    if (!lsn.ok()) return lsn.status();
  }
  if (!recovered->open_ticks.empty()) {
    s = writer_->Sync();
    if (!s.ok()) return s;
  }

  // The log replayed at Open counts toward the next compaction.
  recovered_log_bytes_ = report_.bytes_replayed;
  // A replay that parsed every state (a long tail) leaves no lazy state:
  // the snapshot's mapping and the arena go now, not at the first tick.
  table_->ReleaseLazyBytesIfUnused();

  if (options_.background_thread) {
    bg_thread_ = std::thread([this] { BackgroundLoop(); });
  }
  return absl::OkStatus();
}

absl::Status EngineImpl::RefuseSymlinks() {
  auto names = fs_->ListDir(dir_);
  if (!names.ok()) return names.status();
  for (const std::string& name : *names) {
    if (!log::IsWalstateFileName(name)) continue;
    const std::string path = JoinPath(dir_, name);
    auto link = fs_->IsSymlink(path);
    if (!link.ok()) return link.status();
    if (*link) {
      return absl::FailedPreconditionError(absl::StrCat(
          path,
          " is a symbolic link; walstate does not open a data directory "
          "whose own files are links (writing through one overwrites "
          "another file). Replace it by the file itself, or set "
          "Options::allow_symlinked_files to read through it"));
    }
  }
  return absl::OkStatus();
}

absl::Status EngineImpl::RepairTail(const RecoveredState& recovered) {
  bool changed = false;
  if (!recovered.report.torn_file.empty()) {
    // Cut the torn tail so that it can never be read as damage in the middle
    // of the log once new segments follow it; what is cut is copied first.
    const std::string& path = recovered.report.torn_file;
    absl::Status s = backup_->Save(path.substr(path.find_last_of('/') + 1));
    if (!s.ok()) return s;
    s = fs_->TruncateFile(path, recovered.report.torn_offset);
    if (!s.ok()) return s;
    KillPoint("open.after_truncate");
    changed = true;
  }
  for (const std::string& path : recovered.torn_header_segments) {
    // Recovery judged its create interrupted (log/reader.h): nothing in it
    // was synced. Moved, not deleted, all the same.
    absl::Status s = backup_->Move(path.substr(path.find_last_of('/') + 1));
    if (!s.ok()) return s;
    changed = true;
  }
  return changed ? fs_->SyncDir(dir_) : absl::OkStatus();
}

absl::Status EngineImpl::StartReplication(const RecoveredState& recovered) {
  const ReplicationOptions& r = options_.replication;
  if (r.replicator == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Options::replication.mode is ", replication::ModeName(r.mode),
        " but Options::replication.replicator is not set"));
  }
  if (r.writer_id.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    writer_id_ = absl::StrCat(host, ":", dir_);
  } else {
    writer_id_ = r.writer_id;
  }
  auto pos = r.replicator->Claim(writer_id_, r.takeover, schema_->blob());
  if (!pos.ok()) return pos.status();
  const uint64_t local_last = recovered.next_lsn - 1;
  if (pos->last_lsn > local_last) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the store's stream holds records up to LSN ", pos->last_lsn,
        " (last writer \"", pos->last_writer, "\") but ", dir_, " ends at LSN ",
        local_last,
        ": this directory is behind the stream (another writer went on, or "
        "this disk lost data). Restore a fresh directory from the stream "
        "(`walctl restore`) and open that"));
  }
  absl::Status s = replication::CatchUp(r.replicator.get(), fs_, dir_,
                                        pos->last_lsn, local_last, manifest_);
  if (!s.ok()) {
    return absl::Status(
        s.code(),
        absl::StrCat("publishing the records the stream lacks (LSN ",
                     pos->last_lsn + 1, "..", local_last, "): ", s.message()));
  }
  shipper_ = std::make_unique<replication::Shipper>(
      r.replicator.get(), r.mode, local_last, options_.clock,
      [this](const absl::Status& failure) {
        (void)Fail(failure, "replicating the log");
      });
  return absl::OkStatus();
}

absl::Status EngineImpl::RemoveOwnTemporaries() {
  auto names = fs_->ListDir(dir_);
  if (!names.ok()) return names.status();
  bool changed = false;
  for (const std::string& name : *names) {
    // An interrupted snapshot or MANIFEST write (or `walctl repair`), in the
    // exact names they use. Any other *.tmp, and a snapshot no MANIFEST
    // names, may be an operator's: left alone (`walctl verify` lists them).
    if (!log::IsOwnTempFileName(name)) continue;
    absl::Status s = fs_->DeleteFile(JoinPath(dir_, name));
    if (!s.ok()) return s;
    changed = true;
  }
  return changed ? fs_->SyncDir(dir_) : absl::OkStatus();
}

absl::StatusOr<std::vector<SegmentInfo>> EngineImpl::ListSegments() {
  auto names = fs_->ListDir(dir_);
  if (!names.ok()) return names.status();
  std::vector<SegmentInfo> out;
  for (const std::string& name : *names) {
    SegmentInfo seg;
    if (!log::ParseSegmentFileName(name, &seg.number)) continue;
    seg.name = name;
    const std::string path = JoinPath(dir_, name);
    auto size = fs_->FileSize(path);
    if (!size.ok()) return size.status();
    seg.bytes = *size;
    auto file = fs_->NewRandomAccessFile(path);
    if (!file.ok()) return file.status();
    char buf[log::kFileHeaderFixedSize];
    auto data = (*file)->Read(0, sizeof(buf), buf);
    if (!data.ok()) return data.status();
    // Only the fixed part is needed; its hash also covers the schema, so read
    // the first LSN without verifying (recovery already did).
    if (data->size() == sizeof(buf)) {
      uint64_t v = 0;
      for (int i = 7; i >= 0; --i)
        v = (v << 8) | static_cast<uint8_t>(buf[32 + i]);
      seg.first_lsn = v;
    }
    out.push_back(seg);
  }
  std::sort(out.begin(), out.end(),
            [](const SegmentInfo& a, const SegmentInfo& b) {
              return a.number < b.number;
            });
  return out;
}

absl::Status EngineImpl::health() const {
  std::lock_guard<std::mutex> lock(status_mu_);
  if (!failure_.ok()) return failure_;
  if (closed_) return absl::FailedPreconditionError("store is closed");
  return absl::OkStatus();
}

absl::Status EngineImpl::CheckWritable() const {
  if (!stopped_.load(std::memory_order_acquire)) return absl::OkStatus();
  return health();
}

absl::Status EngineImpl::Fail(const absl::Status& s, absl::string_view what) {
  std::lock_guard<std::mutex> lock(status_mu_);
  if (failure_.ok()) {
    stopped_.store(true, std::memory_order_release);
    failure_ = absl::FailedPreconditionError(absl::StrCat(
        "store ", dir_, " stopped accepting updates after an I/O error (", what,
        ": ", s.message(),
        "). Nothing after it was acknowledged; fix the cause and reopen the "
        "store to recover from disk"));
  }
  return absl::Status(s.code(), absl::StrCat(what, ": ", s.message()));
}

absl::Status EngineImpl::UpdateImpl(absl::string_view session, Message* values,
                                    bool move,
                                    absl::Span<const std::string> fields,
                                    const UpdateOptions& update_options) {
  if (session.empty() || session.size() > kMaxSessionIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("session id must be 1..", kMaxSessionIdBytes,
                     " bytes, got ", session.size()));
  }
  if (values->GetDescriptor() != schema_->descriptor()) {
    return absl::InvalidArgumentError(
        absl::StrCat("session ", QuoteSessionId(session), ": values are a ",
                     values->GetDescriptor()->full_name(), ", the store holds ",
                     schema_->descriptor()->full_name()));
  }
  if (fields.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "session ", QuoteSessionId(session), ": update lists no fields"));
  }
  absl::Status health_status = CheckWritable();
  if (!health_status.ok()) return health_status;
  // Hashed once, for the shard and the map. The shard (its lock and map
  // header) is a cache miss in a large table: start loading it now, while
  // the fields are resolved and encoded.
  const SessionTable::SessionKey key(session);
  SessionTable::Shard& shard = table_->ShardFor(key);
  __builtin_prefetch(&shard);
  __builtin_prefetch(reinterpret_cast<const char*>(&shard) + 64);

  // Resolve and split by tier.
  absl::InlinedVector<const Schema::Field*, 8> immediate, batched;
  FieldSet seen;
  FieldSet batched_set;
  for (const std::string& name : fields) {
    const Schema::Field* f = schema_->FindByName(name);
    if (f == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "session ", QuoteSessionId(session), ": ",
          schema_->descriptor()->full_name(), " has no field \"", name, "\""));
    }
    // Listed twice? Bit 63 stands for every later field: look those up.
    if (seen.Contains(f->index) &&
        (f->index < 63 ||
         std::find(immediate.begin(), immediate.end(), f) != immediate.end() ||
         std::find(batched.begin(), batched.end(), f) != batched.end())) {
      continue;
    }
    seen.Add(f->index);
    Durability tier = update_options.durability == DURABILITY_DEFAULT
                          ? f->durability
                          : update_options.durability;
    if (tier == IMMEDIATE) {
      immediate.push_back(f);
    } else {
      batched.push_back(f);
      batched_set.Add(f->index);
    }
  }

  // The IMMEDIATE record, encoded straight from the caller's message outside
  // any lock.
  std::string payload;
  if (!immediate.empty()) {
    absl::Status s = EncodeUpdate(session, 0, *values, immediate, &payload);
    if (!s.ok()) return s;
    if (payload.size() > log::kMaxRecordSize) {
      return absl::InvalidArgumentError(absl::StrCat(
          "session ", QuoteSessionId(session), ": update is ", payload.size(),
          " bytes, more than the ", log::kMaxRecordSize, " a record may hold"));
    }
  }

  uint64_t lsn = 0;
  {
    std::lock_guard<std::mutex> lock(shard.mu);
    table_->PrefetchSession(key.hash, SessionTable::PrefetchStep::kSlots);
    // A state Open kept serialized is parsed before anything is appended:
    // if it cannot be, the update is refused with memory and log unchanged.
    SessionTable::Node* existing = table_->FindLocked(shard, key);
    if (existing != nullptr && existing->entry.state.lazy()) {
      absl::Status parsed = table_->ParseLocked(existing);
      if (!parsed.ok()) return parsed;
    }
    absl::Status s = table_->CheckUniqueLocked(session, *values, immediate);
    if (!s.ok()) return s;
    s = table_->CheckUniqueLocked(session, *values, batched);
    if (!s.ok()) return s;
    // Append before applying, under the shard lock: the record's LSN order
    // matches the order in which changes to this session became visible,
    // and a refused append leaves memory untouched.
    SessionTable::Node* node = nullptr;
    if (!immediate.empty()) {
      auto appended = writer_->Append(log::kUpdate, payload);
      if (!appended.ok()) return Fail(appended.status(), "appending update");
      lsn = *appended;
      KillPoint("engine.after_append");
      node = table_->SetFieldsLocked(shard, key, values, immediate, move,
                                     existing);
    }
    if (!batched.empty()) {
      node = table_->SetFieldsLocked(shard, key, values, batched, move,
                                     node != nullptr ? node : existing);
      table_->MarkDirtyLocked(shard, node, batched_set);
    }
    node->entry.set_last_update(options_.clock());
  }
  if (immediate.empty()) {
    batched_updates_.fetch_add(1, std::memory_order_relaxed);
    return absl::OkStatus();
  }
  const uint64_t n = immediate_updates_.fetch_add(1, std::memory_order_relaxed);
  absl::Status s = writer_->SyncTo(lsn);
  if (!s.ok()) {
    return Fail(s, absl::StrCat("session ", QuoteSessionId(session),
                                ": syncing update LSN ", lsn));
  }
  if (n % kCompactionCheckEvery == kCompactionCheckEvery - 1) {
    RequestCompactionIfDue();
  }
  return absl::OkStatus();
}

absl::Status EngineImpl::UpdateSerialized(absl::string_view session,
                                          absl::string_view serialized,
                                          absl::Span<const std::string> fields,
                                          const UpdateOptions& options) {
  std::unique_ptr<Message> values;
  {
    std::lock_guard<std::mutex> lock(scratch_mu_);
    if (!scratch_.empty()) {
      values = std::move(scratch_.back());
      scratch_.pop_back();
    }
  }
  if (values == nullptr) values = schema_->NewMessage();
  absl::Status s;
  if (!values->ParseFromArray(serialized.data(),
                              static_cast<int>(serialized.size()))) {
    s = absl::InvalidArgumentError(
        absl::StrCat("session ", QuoteSessionId(session), ": ",
                     serialized.size(), " bytes of values do not parse as a ",
                     schema_->descriptor()->full_name()));
  } else {
    s = UpdateImpl(session, values.get(), /*move=*/true, fields, options);
  }
  // Enough for the callers at once of a busy store; more are freed.
  constexpr size_t kMaxScratch = 64;
  std::lock_guard<std::mutex> lock(scratch_mu_);
  if (scratch_.size() < kMaxScratch) scratch_.push_back(std::move(values));
  return s;
}

absl::Status EngineImpl::DeleteLocked(SessionTable::Shard& shard,
                                      absl::string_view session,
                                      record::Delete::Reason reason,
                                      uint64_t* lsn) {
  record::Delete del;
  del.set_session(std::string(session));
  del.set_reason(reason);
  auto appended = writer_->Append(log::kDelete, del.SerializeAsString());
  if (!appended.ok()) return Fail(appended.status(), "appending delete");
  *lsn = *appended;
  table_->EraseLocked(shard, session);
  return absl::OkStatus();
}

absl::Status EngineImpl::Delete(absl::string_view session) {
  absl::Status health_status = CheckWritable();
  if (!health_status.ok()) return health_status;
  uint64_t lsn = 0;
  {
    const SessionTable::SessionKey key(session);
    SessionTable::Shard& shard = table_->ShardFor(key);
    std::lock_guard<std::mutex> lock(shard.mu);
    if (table_->FindLocked(shard, key) == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("session ", QuoteSessionId(session), " not found"));
    }
    absl::Status s = DeleteLocked(shard, session, record::Delete::API, &lsn);
    if (!s.ok()) return s;
  }
  const uint64_t n = deletes_.fetch_add(1, std::memory_order_relaxed);
  absl::Status s = writer_->SyncTo(lsn);
  if (!s.ok()) {
    return Fail(s, absl::StrCat("session ", QuoteSessionId(session),
                                ": syncing delete LSN ", lsn));
  }
  if (n % kCompactionCheckEvery == kCompactionCheckEvery - 1) {
    RequestCompactionIfDue();
  }
  return absl::OkStatus();
}

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
  std::lock_guard<std::mutex> tick_lock(tick_mu_);
  absl::Status health_status = CheckWritable();
  if (!health_status.ok()) return health_status;
  const absl::Time start = absl::Now();

  // Clean sessions cost nothing: only the dirty sets are visited.
  bool any_dirty = false;
  for (size_t i = 0; i < table_->shard_count() && !any_dirty; ++i) {
    SessionTable::Shard& shard = table_->shard(i);
    std::lock_guard<std::mutex> lock(shard.mu);
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
      std::lock_guard<std::mutex> lock(shard.mu);
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
      std::lock_guard<std::mutex> lock(shard.mu);
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
    std::lock_guard<std::mutex> lock(status_mu_);
    ++ticks_;
    last_tick_sessions_ = entries;
    last_tick_yields_ = yields;
    last_tick_time_ = options_.clock();
    last_tick_duration_ = absl::Now() - start;
  }
  RequestCompactionIfDue();
  return absl::OkStatus();
}

absl::Status EngineImpl::Compact() {
  absl::Status s = CompactNow();
  std::lock_guard<std::mutex> lock(status_mu_);
  last_compaction_status_ = s;
  return s;
}

absl::Status EngineImpl::CompactNow() {
  std::lock_guard<std::mutex> compact_lock(compact_mu_);
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
      std::lock_guard<std::mutex> lock(shard.mu);
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
    std::lock_guard<std::mutex> info_lock(snapshot_info_mu_);
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
        std::lock_guard<std::mutex> info_lock(snapshot_info_mu_);
        base_log_bytes_ -= std::min(base_log_bytes_, (*segments)[i].bytes);
      }
      changed = true;
    }
  }
  return changed ? fs_->SyncDir(dir_) : absl::OkStatus();
}

absl::StatusOr<uint64_t> EngineImpl::ExpireIdleSessions() {
  if (options_.session_ttl <= absl::ZeroDuration()) return 0;
  absl::Status health_status = CheckWritable();
  if (!health_status.ok()) return health_status;
  const absl::Time now = options_.clock();
  uint64_t expired = 0;
  uint64_t last_lsn = 0;
  std::vector<std::string> victims;
  for (size_t i = 0; i < table_->shard_count(); ++i) {
    SessionTable::Shard& shard = table_->shard(i);
    std::lock_guard<std::mutex> lock(shard.mu);
    victims.clear();
    for (const SessionTable::Node* node : shard.sessions) {
      // Sessions recovered at Open count as touched then.
      absl::Time touched = std::max(node->entry.last_update(), opened_at_);
      if (now - touched > options_.session_ttl) {
        victims.emplace_back(node->id());
      }
    }
    for (const std::string& session : victims) {
      absl::Status s =
          DeleteLocked(shard, session, record::Delete::EXPIRED, &last_lsn);
      if (!s.ok()) return s;
      ++expired;
    }
  }
  if (expired > 0) {
    absl::Status s = writer_->SyncTo(last_lsn);
    if (!s.ok()) return Fail(s, "syncing expiry tombstones");
    expired_.fetch_add(expired, std::memory_order_relaxed);
  }
  return expired;
}

bool EngineImpl::CompactionDue() {
  const uint64_t written = writer_->stats().bytes_written;
  std::lock_guard<std::mutex> lock(snapshot_info_mu_);
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

void EngineImpl::BackgroundLoop() {
  absl::Time next_tick = absl::Now() + options_.flush_interval;
  absl::Time next_expiry = absl::Now() + options_.flush_interval;
  std::unique_lock<std::mutex> lock(bg_mu_);
  while (!bg_stop_) {
    const absl::Duration wait = std::max(
        absl::ZeroDuration(), std::min(next_tick, next_expiry) - absl::Now());
    bg_cv_.wait_for(
        lock, absl::ToChronoMilliseconds(wait) + std::chrono::milliseconds(1),
        [this] { return bg_stop_ || compaction_requested_; });
    if (bg_stop_) break;
    const bool compact = compaction_requested_;
    compaction_requested_ = false;
    lock.unlock();
    // Asked for by a tick or by the log's growth; checked again, as a
    // compaction may have run since.
    if (compact && CompactionDue()) {
      (void)Compact();  // its status is kept for stats()
    }
    const absl::Time now = absl::Now();
    if (now >= next_tick) {
      absl::Status s = Flush();  // asks for a compaction if one is due
      {
        std::lock_guard<std::mutex> status_lock(status_mu_);
        last_tick_status_ = s;
      }
      next_tick = now + options_.flush_interval;
    }
    if (now >= next_expiry) {
      (void)ExpireIdleSessions();
      next_expiry = now + options_.flush_interval;
    }
    lock.lock();
  }
}

void EngineImpl::RequestCompactionIfDue() {
  if (!options_.background_thread || !CompactionDue()) return;
  {
    std::lock_guard<std::mutex> lock(bg_mu_);
    compaction_requested_ = true;
  }
  bg_cv_.notify_all();
}

void EngineImpl::StopBackground() {
  {
    std::lock_guard<std::mutex> lock(bg_mu_);
    bg_stop_ = true;
  }
  bg_cv_.notify_all();
  if (bg_thread_.joinable()) bg_thread_.join();
}

absl::Status EngineImpl::Close() {
  StopBackground();
  {
    std::lock_guard<std::mutex> lock(status_mu_);
    if (closed_) return absl::OkStatus();
  }
  absl::Status s = absl::OkStatus();
  if (health().ok()) s = Flush();
  absl::Status c = writer_->Close();
  if (s.ok() && health().ok()) s = c;
  if (shipper_ != nullptr) {
    absl::Status d = shipper_->Drain(options_.replication.close_timeout);
    shipper_->Stop();
    if (s.ok()) s = d;
  }
  {
    std::lock_guard<std::mutex> lock(status_mu_);
    closed_ = true;
    stopped_.store(true, std::memory_order_release);
    if (s.ok() && !failure_.ok()) s = failure_;
  }
  lock_.reset();
  return s;
}

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
    std::lock_guard<std::mutex> lock(snapshot_info_mu_);
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
    std::lock_guard<std::mutex> lock(status_mu_);
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

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> Engine::Open(const Options& options,
                                                     const Message& prototype,
                                                     const std::string& dir) {
  auto engine = std::make_unique<EngineImpl>(options, dir);
  absl::Status s = engine->Init(prototype);
  if (!s.ok()) {
    switch (s.code()) {
      case absl::StatusCode::kDataLoss:
      case absl::StatusCode::kFailedPrecondition:
      case absl::StatusCode::kNotFound:
      case absl::StatusCode::kInvalidArgument:
      case absl::StatusCode::kAlreadyExists:
        return s;  // these say what is wrong and what to do themselves
      default:
        break;
    }
    // An I/O error: Open only repairs what recovery may repair again, so
    // opening again once the cause is fixed is safe.
    return absl::Status(
        s.code(), absl::StrCat("opening ", dir, ": ", s.message(),
                               ". The store was not opened; fix the cause "
                               "and open it again"));
  }
  return std::unique_ptr<Engine>(std::move(engine));
}

}  // namespace walstate
