// walctl stats: what a data directory holds and what compaction would gain.
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/recovery.h"
#include "tools/walctl/checks.h"
#include "tools/walctl/compaction_plan.h"
#include "tools/walctl/decode.h"
#include "tools/walctl/scan.h"
#include "tools/walctl/walctl.h"

namespace walstate {
namespace walctl {
namespace {

constexpr char kHelp[] =
    R"(usage: walctl stats DIR [--json]

Summarizes the data directory DIR: live sessions (as recovery would rebuild
them), records of the log by type and by tier (immediate = kUpdate, batched =
kTickEntry), bytes and LSN range per segment, each snapshot, the oldest and
newest LSN, and how much an offline 'walctl compact' would reclaim (an
estimate: compaction writes a snapshot of the live sessions, keeps the
snapshot recovery uses as the previous one and the log after it, and deletes
the older snapshot the MANIFEST names and the log before; a store with no
record since its snapshot is left as it is, so nothing is reclaimed).

flags:
  --json   one JSON object

exit: 0 ok; 2 unreadable input or damage that keeps recovery from counting
      sessions (the rest is still printed); 64 usage error
)";

const CommandSpec kSpec = {"stats", kHelp, {{"json", false}}};

struct SegmentStats {
  std::string name;
  uint64_t bytes = 0;
  uint64_t records = 0;
  uint64_t first_lsn = 0;
  uint64_t last_lsn = 0;
};

}  // namespace

int RunStats(Context& ctx, const std::vector<std::string>& args) {
  ParsedArgs parsed;
  int code = kExitOk;
  if (!ParseOrExit(ctx, kSpec, args, &parsed, &code)) return code;
  const std::string dir = parsed.positional()[0];
  const bool json = parsed.Has("json");

  absl::StatusOr<DirEntries> entries = ScanDir(ctx.fs, dir);
  if (!entries.ok()) return FailStatus(ctx, "stats", entries.status());
  if (entries->empty()) {
    return Fail(ctx, "stats",
                absl::StrCat("no log segments, snapshots or MANIFEST in ", dir,
                             " (not a walstate data directory?)"),
                kExitError);
  }

  // The log: records by type, per-segment ranges.
  std::vector<SegmentStats> segments;
  std::map<std::string, size_t> segment_index;
  for (const auto& seg : entries->segments) {
    SegmentStats s;
    s.name = seg.name;
    absl::StatusOr<uint64_t> size = ctx.fs->FileSize(JoinPath(dir, seg.name));
    s.bytes = size.ok() ? *size : 0;
    segment_index[seg.name] = segments.size();
    segments.push_back(s);
  }
  std::map<uint8_t, uint64_t> by_type;
  uint64_t log_bytes = 0;
  for (const SegmentStats& s : segments) log_bytes += s.bytes;
  LogScanResult log;
  if (!segments.empty()) {
    Progress progress(ctx, "stats", log_bytes);
    LogScanCallbacks callbacks;
    callbacks.on_record = [&](const log::Record& record) {
      by_type[record.type]++;
      auto it = segment_index.find(BaseName(record.file));
      if (it == segment_index.end()) return;
      SegmentStats& s = segments[it->second];
      if (s.records == 0) s.first_lsn = record.lsn;
      s.last_lsn = record.lsn;
      s.records++;
    };
    absl::StatusOr<LogScanResult> scan =
        ScanLog(ctx.fs, dir, callbacks, &progress);
    if (!scan.ok()) return FailStatus(ctx, "stats", scan.status());
    log = std::move(*scan);
  }
  std::vector<Finding> findings = log.findings;

  // Snapshots and MANIFEST.
  ManifestCheck manifest = CheckManifest(ctx.fs, dir);
  for (const Finding& f : manifest.findings) findings.push_back(f);
  Decoder decoder;
  std::vector<SnapshotCheck> snapshots;
  std::vector<std::string> roles;
  uint64_t snapshot_bytes = 0;
  for (const auto& snap : entries->snapshots) {
    snapshots.push_back(
        CheckSnapshot(ctx.fs, dir, snap.name, snap.number, &decoder));
    snapshot_bytes += snapshots.back().bytes;
    std::string role = "unpublished";
    if (manifest.ok && manifest.manifest.current().file() == snap.name) {
      role = "current";
    } else if (manifest.ok &&
               manifest.manifest.previous().file() == snap.name) {
      role = "previous";
    }
    roles.push_back(role);
  }

  // Sessions as recovery rebuilds them, and the size of the snapshot a
  // compaction would write.
  std::string recovery_error;
  uint64_t sessions = 0;
  uint64_t recovered_lsn = 0;
  uint64_t new_snapshot_bytes = 0;
  bool unchanged = false;
  std::string unchanged_why;
  CompactionDeletes deletes;
  absl::StatusOr<std::unique_ptr<Schema>> schema =
      ReadStoredSchema(ctx.fs, dir);
  if (!schema.ok()) {
    recovery_error = std::string(schema.status().message());
  } else {
    RecoveryOptions options;
    options.fs = ctx.fs;
    options.dir = dir;
    absl::StatusOr<RecoveredState> state = Recover(options, **schema);
    if (!state.ok()) {
      recovery_error = std::string(state.status().message());
    } else {
      sessions = state->table->size();
      recovered_lsn = state->report.last_lsn;
      new_snapshot_bytes =
          log::kFileHeaderFixedSize + log::AlignUp((*schema)->blob().size());
      record::SessionState scratch;
      state->table->ForEach(
          [&](absl::string_view session, const google::protobuf::Message& m) {
            scratch.set_session(std::string(session));
            m.SerializeToString(scratch.mutable_state());
            new_snapshot_bytes += log::FramedSize(scratch.ByteSizeLong());
          });
      record::SnapshotEnd end;
      end.set_sessions(sessions);
      end.set_lsn(recovered_lsn);
      new_snapshot_bytes += log::FramedSize(end.ByteSizeLong());
      // What the engine's compaction deletes (the same rules as `compact`).
      unchanged = UnchangedSinceSnapshot(*state, *entries, &unchanged_why);
      if (unchanged) new_snapshot_bytes = 0;
      deletes = PlanCompactionDeletes(ctx.fs, dir, *state, *entries);
    }
  }
  if (!recovery_error.empty()) {
    Finding f;
    f.severity = Finding::Severity::kDamage;
    f.kind = "recovery";
    f.detail = recovery_error;
    findings.push_back(f);
  }

  const uint64_t delete_bytes = deletes.bytes;
  const int64_t reclaim = static_cast<int64_t>(delete_bytes) -
                          static_cast<int64_t>(new_snapshot_bytes);
  const uint64_t manifest_bytes = manifest.bytes;
  const uint64_t total = log_bytes + snapshot_bytes + manifest_bytes;

  code = recovery_error.empty() ? kExitOk : kExitError;
  uint64_t first_lsn = log.first_lsn;
  uint64_t last_lsn = std::max(log.last_lsn, recovered_lsn);
  // Sessions of the oldest snapshot reach back to its LSN.
  for (const SnapshotCheck& s : snapshots) {
    if (s.ok() && (first_lsn == 0 || s.lsn < first_lsn)) first_lsn = s.lsn;
  }
  const uint64_t immediate = by_type[log::kUpdate];
  const uint64_t batched = by_type[log::kTickEntry];

  if (json) {
    JsonObject types;
    for (const auto& [type, count] : by_type) {
      types.Add(log::RecordTypeName(type), count);
    }
    std::vector<std::string> segs;
    for (const SegmentStats& s : segments) {
      segs.push_back(JsonObject()
                         .Add("file", s.name)
                         .Add("bytes", s.bytes)
                         .Add("records", s.records)
                         .Add("first_lsn", s.first_lsn)
                         .Add("last_lsn", s.last_lsn)
                         .Build());
    }
    std::vector<std::string> snaps;
    for (size_t i = 0; i < snapshots.size(); ++i) {
      snaps.push_back(JsonObject()
                          .Add("file", snapshots[i].file)
                          .Add("bytes", snapshots[i].bytes)
                          .Add("lsn", snapshots[i].lsn)
                          .Add("sessions", snapshots[i].sessions)
                          .Add("role", roles[i])
                          .Add("ok", snapshots[i].ok())
                          .Build());
    }
    std::vector<std::string> problems;
    for (const Finding& f : findings) problems.push_back(FindingJson(f));
    JsonObject o;
    o.Add("dir", dir);
    if (recovery_error.empty()) {
      o.Add("sessions", sessions);
    } else {
      o.AddNull("sessions");
    }
    o.Add("first_lsn", first_lsn)
        .Add("last_lsn", last_lsn)
        .Add("records", log.records)
        .AddRaw("records_by_type", types.Build())
        .AddRaw("records_by_tier", JsonObject()
                                       .Add("immediate", immediate)
                                       .Add("batched", batched)
                                       .Build())
        .AddRaw("segments", JsonArray(segs))
        .AddRaw("snapshots", JsonArray(snaps))
        .Add("log_bytes", log_bytes)
        .Add("snapshot_bytes", snapshot_bytes)
        .Add("manifest_bytes", manifest_bytes)
        .Add("total_bytes", total);
    if (recovery_error.empty()) {
      o.AddRaw("compaction",
               JsonObject()
                   .Add("unchanged", unchanged)
                   .AddRaw("deletes", JsonStringArray(deletes.files))
                   .Add("delete_bytes", delete_bytes)
                   .Add("new_snapshot_bytes", new_snapshot_bytes)
                   .Add("reclaim_bytes", static_cast<int64_t>(reclaim))
                   .Build());
    } else {
      o.AddNull("compaction");
    }
    o.AddRaw("problems", JsonArray(problems));
    ctx.out << o.Build() << "\n";
    return code;
  }

  std::ostream& out = ctx.out;
  if (recovery_error.empty()) {
    out << "sessions: " << sessions << " (as of lsn " << recovered_lsn << ")\n";
  } else {
    out << "sessions: unknown (recovery fails: " << recovery_error << ")\n";
  }
  out << "lsn: " << first_lsn << ".." << last_lsn << "\n";
  out << "records: " << log.records << " in the log; tiers: immediate "
      << immediate << ", batched " << batched << "\n";
  for (const auto& [type, count] : by_type) {
    out << absl::StrFormat("  %-17s %d\n", log::RecordTypeName(type), count);
  }
  out << "segments: " << segments.size() << ", " << log_bytes << " bytes\n";
  for (const SegmentStats& s : segments) {
    out << "  " << s.name << "  " << s.bytes << " bytes, "
        << Count(s.records, "record");
    if (s.records > 0) out << ", lsn " << s.first_lsn << ".." << s.last_lsn;
    out << "\n";
  }
  out << "snapshots: " << snapshots.size() << ", " << snapshot_bytes
      << " bytes\n";
  for (size_t i = 0; i < snapshots.size(); ++i) {
    const SnapshotCheck& s = snapshots[i];
    out << "  " << s.file << "  " << s.bytes << " bytes, lsn " << s.lsn << ", "
        << Count(s.sessions, "session") << ", " << roles[i]
        << (s.ok() ? "" : ", DAMAGED") << "\n";
  }
  if (manifest.ok) {
    out << "manifest: generation " << manifest.manifest.generation() << ", "
        << manifest_bytes << " bytes\n";
  } else {
    out << "manifest: " << (manifest.present ? "DAMAGED" : "none") << "\n";
  }
  out << "total: " << total << " bytes\n";
  if (recovery_error.empty() && unchanged) {
    out << "compaction would change nothing: " << unchanged_why
        << "; reclaims 0 bytes\n";
  } else if (recovery_error.empty()) {
    out << "compaction would delete " << Count(deletes.files.size(), "file")
        << " (" << delete_bytes << " bytes) and write a snapshot of about "
        << new_snapshot_bytes << " bytes: ";
    if (reclaim >= 0) {
      out << "reclaims about " << reclaim << " bytes\n";
    } else {
      out << "grows the directory by about " << -reclaim
          << " bytes (the log is kept until a second snapshot)\n";
    }
  }
  for (const Finding& f : findings) {
    out << (f.severity == Finding::Severity::kWarning ? "warning: "
                                                      : "problem: ")
        << f.kind << " " << DescribeFinding(f) << "\n";
  }
  return code;
}

}  // namespace walctl
}  // namespace walstate
