#include "engine/recovery.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/log/format.h"
#include "engine/snapshot/manifest.h"
#include "engine/snapshot/snapshot_loader.h"
#include "engine/state/apply_pool.h"
#include "engine/state/replayer.h"
#include "proto/walstate/record.pb.h"

namespace walstate {
namespace {

struct Candidate {
  std::string file;
  uint64_t lsn = 0;
  const char* role = "";
  uint64_t sessions = 0;  // as the MANIFEST says
  uint64_t bytes = 0;     // likewise (0: not recorded)
  // Where the record at `lsn` is in the log (a hint; 0, 0 if unknown).
  uint64_t log_segment = 0;
  uint64_t log_offset = 0;
};

Candidate CandidateOf(const record::Manifest::SnapshotRef& ref,
                      const char* role) {
  Candidate c;
  c.file = ref.file();
  c.lsn = ref.lsn();
  c.role = role;
  c.sessions = ref.sessions();
  c.bytes = ref.bytes();
  c.log_segment = ref.log_segment();
  c.log_offset = ref.log_offset();
  return c;
}

}  // namespace

void SetCreateEvidence(const std::string& schema_blob,
                       const record::Manifest& manifest,
                       log::LogReaderOptions* ropts) {
  ropts->max_header_bytes = std::max<uint64_t>(
      ropts->max_header_bytes,
      log::kFileHeaderFixedSize + log::AlignUp(schema_blob.size()));
  ropts->synced_segment =
      std::max({ropts->synced_segment, manifest.current().log_segment(),
                manifest.previous().log_segment()});
}

void SetCreateEvidence(FileSystem* fs, const std::string& dir,
                       log::LogReaderOptions* ropts) {
  auto manifest = ReadManifest(fs, dir);
  auto schema = ReadStoredSchema(fs, dir);
  if (schema.ok()) {
    SetCreateEvidence((*schema)->blob(),
                      manifest.ok() ? *manifest : record::Manifest(), ropts);
  } else if (manifest.ok()) {
    ropts->synced_segment =
        std::max({ropts->synced_segment, manifest->current().log_segment(),
                  manifest->previous().log_segment()});
  }
}

absl::StatusOr<RecoveredState> Recover(const RecoveryOptions& options,
                                       const Schema& schema) {
  const absl::Time start = absl::Now();
  FileSystem* fs = options.fs;
  auto names = fs->ListDir(options.dir);
  if (!names.ok()) return names.status();

  const size_t workers =
      options.workers == 0 ? ApplyPool::DefaultWorkers() : options.workers;
  RecoveredState out;
  RecoveryReport& report = out.report;
  uint64_t max_segment = 0;
  uint64_t number = 0;
  bool any_segment = false;
  for (const std::string& name : *names) {
    if (log::ParseSegmentFileName(name, &number)) {
      max_segment = std::max(max_segment, number);
      any_segment = true;
    }
  }
  if (any_segment && max_segment == std::numeric_limits<uint64_t>::max()) {
    // The engine never gets there; the next segment would be number 0 and
    // sort before every other, so appending could never be read back.
    return absl::DataLossError(absl::StrCat(
        JoinPath(options.dir, log::SegmentFileName(max_segment)),
        ": segment number ", max_segment,
        " leaves no number for a next segment (a foreign or damaged file). "
        "Run `walctl verify ",
        options.dir, "`"));
  }
  out.next_segment_number = any_segment ? max_segment + 1 : 1;

  auto manifest = ReadManifest(fs, options.dir);
  if (manifest.ok()) {
    out.manifest = *manifest;
    out.has_manifest = true;
  } else if (!absl::IsNotFound(manifest.status())) {
    return manifest.status();
  }

  // Newest first; for `--at-lsn`, only snapshots at or before the stop LSN.
  std::vector<Candidate> candidates;
  if (out.has_manifest) {
    if (out.manifest.has_current() && !out.manifest.current().file().empty()) {
      candidates.push_back(CandidateOf(out.manifest.current(), "current"));
    }
    if (out.manifest.has_previous() &&
        !out.manifest.previous().file().empty()) {
      candidates.push_back(CandidateOf(out.manifest.previous(), "previous"));
    }
  }
  const size_t published = candidates.size();
  uint64_t oldest_snapshot = 0;
  for (const Candidate& c : candidates) oldest_snapshot = c.lsn;
  candidates.erase(std::remove_if(candidates.begin(), candidates.end(),
                                  [&](const Candidate& c) {
                                    return c.lsn > options.stop_at_lsn;
                                  }),
                   candidates.end());
  const bool history_cut = published > 0 && candidates.empty();

  std::string failures;
  const Candidate* used = nullptr;
  for (const Candidate& c : candidates) {
    // The MANIFEST only ever names a snapshot file of this directory; a name
    // like "../x" must not make recovery read (and later trust) a file
    // outside it.
    uint64_t name_lsn = 0;
    if (!log::ParseSnapshotFileName(c.file, &name_lsn)) {
      absl::StrAppend(&failures, failures.empty() ? "" : "; ", c.role,
                      " snapshot ", c.file,
                      ": not a snapshot file name (the MANIFEST names files "
                      "of its own directory only)");
      report.fell_back = true;
      continue;
    }
    // The MANIFEST says how many sessions to expect: choose the shard count
    // for it (so that the shards' maps are well filled) and size the maps
    // once. It is not trusted beyond what the file could hold (a framed
    // record per session).
    const std::string path = JoinPath(options.dir, c.file);
    auto file_bytes = fs->FileSize(path);
    // The MANIFEST says how large the file was written: one far larger (a
    // sparse file of several GiB, say) is not that snapshot, and is not
    // mapped or read to find out. (Smaller differences are left to the
    // snapshot's own checks.)
    if (file_bytes.ok() && c.bytes != 0 &&
        *file_bytes > 2 * c.bytes + (64ull << 20)) {
      absl::StrAppend(&failures, failures.empty() ? "" : "; ", c.role,
                      " snapshot ", c.file, ": the file has ", *file_bytes,
                      " bytes, the MANIFEST says ", c.bytes);
      report.fell_back = true;
      continue;
    }
    const size_t expected =
        file_bytes.ok() ? static_cast<size_t>(std::min<uint64_t>(
                              c.sessions, *file_bytes / log::FramedSize(1)))
                        : 0;
    auto table = std::make_unique<SessionTable>(
        schema, SessionTable::ShardCountFor(expected));
    table->SuspendIndexes();  // built once, after the replay
    if (expected > 0) table->Reserve(expected);
    const absl::Time load_start = absl::Now();
    auto loaded =
        LoadSnapshot(fs, path, c.lsn, table.get(), workers, options.lazy);
    report.snapshot_duration += absl::Now() - load_start;
    if (loaded.ok()) {
      out.table = std::move(table);
      report.snapshot_file = c.file;
      report.snapshot_lsn = c.lsn;
      report.snapshot_sessions = loaded->sessions;
      used = &c;
      break;
    }
    absl::StrAppend(&failures, failures.empty() ? "" : "; ", c.role,
                    " snapshot ", c.file, ": ", loaded.status().message());
    report.fell_back = true;
  }
  report.fallback_reason = failures;
  if (out.table == nullptr) {
    if (!candidates.empty()) {
      return absl::DataLossError(
          absl::StrCat("no usable snapshot in ", options.dir, ": ", failures,
                       ". Run `walctl verify ", options.dir,
                       "`; restore the directory from a backup"));
    }
    out.table = std::make_unique<SessionTable>(schema);
    out.table->SuspendIndexes();
    if (options.lazy) out.table->BeginLazy(std::max<size_t>(workers, 1), "");
    report.fell_back = false;
  }

  const uint64_t base = report.snapshot_lsn;
  const absl::Time replay_start = absl::Now();
  log::LogReaderOptions ropts;
  ropts.fs = fs;
  ropts.dir = options.dir;
  ropts.mode = options.mode;
  ropts.start_lsn = base + 1;
  SetCreateEvidence(schema.blob(), out.manifest, &ropts);
  if (used != nullptr) {
    // The snapshot's records before `base` need not be read, not even to
    // skip them (up to a segment's worth, twice: both passes).
    ropts.start_hint_segment = used->log_segment;
    ropts.start_hint_offset = used->log_offset;
  }
  // Kept records cost their size in memory until their session's first use,
  // and a session with many of them parses them all then; parsing at Open
  // folds them into the states instead. So records are kept only when the
  // tail is small next to the snapshot (as automatic compaction keeps it):
  // then keeping is what is cheaper. A snapshot loaded lazily with a replay
  // that parses is fine: a state is parsed when its first record comes.
  bool lazy_replay = options.lazy;
  if (options.lazy) {
    uint64_t tail_bytes = 0;
    for (const std::string& name : *names) {
      if (!log::ParseSegmentFileName(name, &number)) continue;
      if (used != nullptr && number < used->log_segment) continue;
      auto size = fs->FileSize(JoinPath(options.dir, name));
      if (size.ok()) tail_bytes += *size;
    }
    if (used != nullptr && used->log_segment != 0) {
      tail_bytes -= std::min(tail_bytes, used->log_offset);
    }
    uint64_t snapshot_bytes = 0;
    if (used != nullptr) {
      auto size = fs->FileSize(JoinPath(options.dir, used->file));
      if (size.ok()) snapshot_bytes = *size;
    }
    lazy_replay =
        tail_bytes <= snapshot_bytes + options.lazy_replay_slack_bytes;
  }
  report.lazy_replay = lazy_replay;
  // A lazy replay keeps few records next to the snapshot's sessions, and
  // the lazy load found their indexed values: the indexes are built from
  // those now, and the replay keeps them current. Otherwise they are built
  // after the replay, from the final states.
  const bool index_from_load = lazy_replay && used != nullptr;
  if (index_from_load) {
    const absl::Time index_start = absl::Now();
    out.table->RebuildIndexes(/*from_load=*/true);
    report.index_duration = absl::Now() - index_start;
  }
  Replayer replayer(out.table.get(), base, workers, lazy_replay);
  if (!lazy_replay) {
    // First pass: which ticks committed. It reads exactly the records the
    // second pass will (same options, same stop), but only parses commits;
    // its problems are reported by the second pass, which meets them again.
    // A lazy replay reads once, and voids what did not commit at its end.
    auto scan = log::LogReader::Open(ropts);
    if (!scan.ok()) return scan.status();
    log::Record rec;
    record::TickEnd end;
    while ((*scan)->Next(&rec)) {
      if (rec.lsn <= base) continue;
      if (rec.lsn > options.stop_at_lsn) break;
      if (rec.type == log::kTickCommit &&
          end.ParseFromArray(rec.payload.data(),
                             static_cast<int>(rec.payload.size()))) {
        replayer.NoteCommitted(end.tick());
      }
    }
  }

  auto reader = log::LogReader::Open(ropts);
  if (!reader.ok()) return reader.status();
  log::Record rec;
  bool first = true;
  while ((*reader)->Next(&rec)) {
    if (rec.lsn <= base) continue;
    if (first) {
      first = false;
      if (rec.lsn != base + 1 && history_cut) {
        return absl::FailedPreconditionError(absl::StrCat(
            "LSN ", options.stop_at_lsn,
            " is older than the retained history: the oldest snapshot is at "
            "LSN ",
            oldest_snapshot, " and the log resumes at LSN ", rec.lsn));
      }
      if (rec.lsn != base + 1 && options.mode != log::RecoveryMode::kSalvage) {
        return absl::DataLossError(absl::StrCat(
            "log records ", base + 1, "..", rec.lsn - 1,
            " are missing (the log resumes at ", rec.file, " offset ",
            rec.offset, ")",
            base == 0 ? " and no snapshot covers them" : " after snapshot",
            ". Run `walctl verify ", options.dir, "`"));
      }
    }
    if (rec.lsn > options.stop_at_lsn) break;
    absl::Status s =
        replayer.Apply(rec.lsn, rec.type, rec.payload, rec.file, rec.offset);
    if (!s.ok()) return s;
    ++report.records_replayed;
    report.bytes_replayed += rec.framed_size;
  }
  // The workers' errors first: they are about records before the point
  // where the reader stopped.
  absl::Status replayed = replayer.Finish();
  if (!replayed.ok()) return replayed;
  if (!(*reader)->status().ok()) return (*reader)->status();
  if (first && history_cut) {
    return absl::FailedPreconditionError(absl::StrCat(
        "LSN ", options.stop_at_lsn,
        " is older than the retained history: the oldest snapshot is at LSN ",
        oldest_snapshot, " and no log before it is kept"));
  }

  out.open_ticks = replayer.open_ticks();
  const absl::Time index_start = absl::Now();
  report.replay_duration = index_start - replay_start - report.index_duration;
  if (!index_from_load) {
    out.table->RebuildIndexes();
    report.index_duration = absl::Now() - index_start;
  }

  const log::ReadReport& rr = (*reader)->report();
  report.segments_read = rr.files;
  report.bytes_skipped = rr.skipped_bytes;
  report.problems = rr.problems;
  report.ticks_committed = replayer.ticks_committed();
  report.ticks_aborted = replayer.ticks_aborted();
  for (const log::Problem& p : rr.problems) {
    if (p.kind != log::Problem::Kind::kTornTail) continue;
    report.torn_bytes_dropped += p.bytes;
    if (p.offset < log::kFileHeaderFixedSize) {
      // A crash right after the segment was created: no header to keep.
      out.torn_header_segments.push_back(p.file);
    } else {
      report.torn_file = p.file;
      report.torn_offset = p.offset;
    }
  }
  report.last_lsn = std::max(base, rr.last_lsn);
  if (options.stop_at_lsn != std::numeric_limits<uint64_t>::max()) {
    report.last_lsn = std::min(report.last_lsn, options.stop_at_lsn);
  }
  if (std::max(base, rr.last_lsn) == std::numeric_limits<uint64_t>::max()) {
    // Likewise for LSNs: the next record would get LSN 0, which is invalid.
    return absl::DataLossError(absl::StrCat(
        "LSN ", std::max(base, rr.last_lsn), " in ", options.dir,
        " leaves no LSN for a next record (a foreign or damaged file). Run "
        "`walctl verify ",
        options.dir, "`"));
  }
  out.next_lsn = std::max(base, rr.last_lsn) + 1;
  report.sessions = out.table->size();
  report.duration = absl::Now() - start;
  return out;
}

absl::StatusOr<std::unique_ptr<Schema>> ReadStoredSchema(
    FileSystem* fs, const std::string& dir) {
  auto names = fs->ListDir(dir);
  if (!names.ok()) return names.status();
  // Newest segment first, then snapshots: the schema a store last wrote.
  std::vector<std::pair<uint64_t, std::string>> files;
  uint64_t n = 0;
  for (const std::string& name : *names) {
    if (log::ParseSegmentFileName(name, &n)) files.push_back({n, name});
  }
  std::sort(files.rbegin(), files.rend());
  std::vector<std::pair<uint64_t, std::string>> snaps;
  for (const std::string& name : *names) {
    if (log::ParseSnapshotFileName(name, &n)) snaps.push_back({n, name});
  }
  std::sort(snaps.rbegin(), snaps.rend());
  files.insert(files.end(), snaps.begin(), snaps.end());
  std::string errors;
  for (const auto& [unused, name] : files) {
    auto reader = log::FileReader::Open(fs, JoinPath(dir, name),
                                        log::RecoveryMode::kSalvage,
                                        /*is_last=*/true);
    if (!reader.ok() || !(*reader)->header_ok() ||
        (*reader)->header().schema.empty()) {
      continue;
    }
    auto schema = Schema::FromBlob((*reader)->header().schema);
    if (schema.ok()) return schema;
    absl::StrAppend(&errors, "; ", name, ": ", schema.status().message());
  }
  return absl::NotFoundError(
      absl::StrCat("no file in ", dir, " holds a readable schema", errors));
}

}  // namespace walstate
