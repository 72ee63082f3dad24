// Engine::Open and Close: recovery, what Open repairs (a torn tail, its own
// temporaries), replication's start, the writer; health and the error that
// stops the engine. The other jobs of EngineImpl: engine/engine_impl.h.
#include "walstate/walstate.h"

#include <unistd.h>

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "engine/engine_impl.h"
#include "engine/fs/backup.h"
#include "engine/fs/kill_point.h"
#include "engine/log/format.h"
#include "engine/log/writer.h"
#include "engine/recovery.h"
#include "engine/replication/catch_up.h"
#include "engine/replication/shipper.h"
#include "engine/snapshot/manifest.h"
#include "engine/state/schema.h"
#include "engine/state/session_table.h"
#include "engine/util/mutex.h"
#include "proto/walstate/record.pb.h"

namespace walstate {
namespace internal {
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

}  // namespace

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
  {
    // No other thread runs yet; the locks are taken for the analysis.
    MutexLock compact_lock(&compact_mu_);
    manifest_ = recovered->manifest;
    if (manifest_.has_current()) {
      MutexLock info_lock(&snapshot_info_mu_);
      snapshot_bytes_ = manifest_.current().bytes();
      snapshot_lsn_ = manifest_.current().lsn();
    }
    if (report_.fell_back && !report_.snapshot_file.empty()) {
      on_fallback_ = true;
      for (const auto* ref : {&manifest_.current(), &manifest_.previous()}) {
        if (ref->file() == report_.snapshot_file) fallback_snapshot_ = *ref;
      }
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
  {
    MutexLock info_lock(&snapshot_info_mu_);
    for (const SegmentInfo& seg : *segments) base_log_bytes_ += seg.bytes;
  }
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

  {
    // The log replayed at Open counts toward the next compaction.
    MutexLock info_lock(&snapshot_info_mu_);
    recovered_log_bytes_ = report_.bytes_replayed;
  }
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
  absl::Status s =
      replication::CatchUp(r.replicator.get(), fs_, dir_, pos->last_lsn,
                           local_last, recovered.manifest);
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
  MutexLock lock(&status_mu_);
  if (!failure_.ok()) return failure_;
  if (closed_) return absl::FailedPreconditionError("store is closed");
  return absl::OkStatus();
}

absl::Status EngineImpl::CheckWritable() const {
  if (!stopped_.load(std::memory_order_acquire)) return absl::OkStatus();
  return health();
}

absl::Status EngineImpl::Fail(const absl::Status& s, absl::string_view what) {
  MutexLock lock(&status_mu_);
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

absl::Status EngineImpl::Close() {
  StopBackground();
  {
    MutexLock lock(&status_mu_);
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
    MutexLock lock(&status_mu_);
    closed_ = true;
    stopped_.store(true, std::memory_order_release);
    if (s.ok() && !failure_.ok()) s = failure_;
  }
  lock_.reset();
  return s;
}

}  // namespace internal

using google::protobuf::Message;
using internal::EngineImpl;

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
