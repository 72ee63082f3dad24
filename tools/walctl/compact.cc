// walctl compact: offline compaction through the engine itself, so that the
// snapshot, MANIFEST switch and deletions follow exactly the engine's atomic
// protocol (there is no second implementation to get wrong).
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/recovery.h"
#include "tools/walctl/compaction_plan.h"
#include "tools/walctl/walctl.h"
#include "walstate/walstate.h"

namespace walstate {
namespace walctl {
namespace {

constexpr char kHelp[] =
    R"(usage: walctl compact DIR [--json]

Compacts the data directory DIR offline: opens it with the engine (which takes
the directory's LOCK and recovers it like any open, cutting a torn tail),
writes a snapshot of every live session, publishes it through the MANIFEST
and deletes the files it makes unnecessary, then closes. Sessions are decoded
with the schema stored in the directory, so no user code is needed.

A store with no record since its current snapshot (and nothing for Open to
repair) has nothing to compact: it is read, not opened, and left exactly as
it is (opening it would start a new, empty log segment).

Refuses while another process (a running engine) holds the directory's lock.

flags:
  --json   one JSON object with the result

exit: 0 compacted, or nothing to compact; 2 unreadable input or damage recovery refuses (nothing is
      changed); 75 the directory is locked by another process; 64 usage error
)";

const CommandSpec kSpec = {"compact", kHelp, {{"json", false}}};

// Bytes of the files the store consists of (not LOCK or unrelated files).
uint64_t StoreBytes(FileSystem* fs, const std::string& dir, size_t* files) {
  absl::StatusOr<DirEntries> entries = ScanDir(fs, dir);
  uint64_t total = 0;
  *files = 0;
  if (!entries.ok()) return 0;
  std::vector<std::string> names;
  for (const auto& s : entries->segments) names.push_back(s.name);
  for (const auto& s : entries->snapshots) names.push_back(s.name);
  if (entries->has_manifest) names.push_back(log::kManifestFileName);
  for (const std::string& name : names) {
    absl::StatusOr<uint64_t> size = fs->FileSize(JoinPath(dir, name));
    if (size.ok()) total += *size;
  }
  *files = names.size();
  return total;
}

}  // namespace

int RunCompact(Context& ctx, const std::vector<std::string>& args) {
  ParsedArgs parsed;
  int code = kExitOk;
  if (!ParseOrExit(ctx, kSpec, args, &parsed, &code)) return code;
  const std::string dir = parsed.positional()[0];
  const bool json = parsed.Has("json");

  absl::StatusOr<DirEntries> entries = ScanDir(ctx.fs, dir);
  if (!entries.ok()) return FailStatus(ctx, "compact", entries.status());
  if (entries->empty()) {
    return Fail(ctx, "compact",
                absl::StrCat("no log segments, snapshots or MANIFEST in ", dir,
                             " (not a walstate data directory?)"),
                kExitError);
  }
  // Refuse early, before reading anything, when an engine is running: the
  // engine's own lock check below is the authoritative one.
  std::string holder = LockHolder(dir);
  if (!holder.empty()) {
    return Fail(
        ctx, "compact",
        absl::StrCat("lock ", JoinPath(dir, log::kLockFileName), ": held by ",
                     holder, "; stop the process using the directory first"),
        kExitBusy);
  }
  absl::StatusOr<std::unique_ptr<Schema>> schema =
      ReadStoredSchema(ctx.fs, dir);
  if (!schema.ok()) return FailStatus(ctx, "compact", schema.status());

  size_t files_before = 0;
  const uint64_t bytes_before = StoreBytes(ctx.fs, dir, &files_before);

  // Nothing written since the last compaction: the engine's Compact() would
  // return at once, and only Open would change the directory (a new empty
  // segment each run). Judged by a read-only recovery, as Open would do it.
  {
    RecoveryOptions ropts;
    ropts.fs = ctx.fs;
    ropts.dir = dir;
    ropts.lazy = true;
    absl::StatusOr<RecoveredState> state = Recover(ropts, **schema);
    std::string why;
    if (state.ok() && UnchangedSinceSnapshot(*state, *entries, &why)) {
      const record::Manifest::SnapshotRef& current = state->manifest.current();
      if (json) {
        ctx.out << JsonObject()
                       .Add("dir", dir)
                       .Add("compacted", false)
                       .Add("snapshot", current.file())
                       .Add("snapshot_lsn", current.lsn())
                       .Add("sessions",
                            static_cast<uint64_t>(state->table->size()))
                       .Add("files_before", static_cast<uint64_t>(files_before))
                       .Add("files_after", static_cast<uint64_t>(files_before))
                       .Add("bytes_before", bytes_before)
                       .Add("bytes_after", bytes_before)
                       .Add("torn_bytes_dropped", static_cast<uint64_t>(0))
                       .Add("ticks_aborted", static_cast<uint64_t>(0))
                       .Build()
                << "\n";
        return kExitOk;
      }
      ctx.out << "nothing to compact: " << why << ", "
              << Count(state->table->size(), "session")
              << "; the directory is unchanged\n"
              << "files: " << files_before << ", bytes " << bytes_before
              << "\n";
      return kExitOk;
    }
    // Otherwise (also when recovery fails) Open decides, and reports.
  }

  Options options;
  options.fs = ctx.fs;
  options.create_if_missing = false;
  options.background_thread = false;
  absl::StatusOr<std::unique_ptr<Engine>> engine =
      Engine::Open(options, (*schema)->prototype(), dir);
  if (!engine.ok()) return FailStatus(ctx, "compact", engine.status());
  const RecoveryReport report = (*engine)->recovery_report();
  if (report.fell_back) {
    // Stderr, also with --json: the store is one damage away from loss.
    ctx.err << "walctl compact: warning: the store opened from its previous "
               "snapshot "
            << report.snapshot_file << " because the current one is unusable ("
            << report.fallback_reason
            << "); the new snapshot is verified before anything is deleted, "
               "and the snapshot recovery used is kept as the fallback. Run "
               "'walctl verify "
            << dir << "' to see the damage\n";
  }
  absl::Status s = (*engine)->Compact();
  absl::Status closed = (*engine)->Close();
  if (s.ok()) s = closed;
  const Stats stats = (*engine)->stats();
  engine->reset();
  if (!s.ok()) return FailStatus(ctx, "compact", s);

  size_t files_after = 0;
  const uint64_t bytes_after = StoreBytes(ctx.fs, dir, &files_after);
  const std::string snapshot = log::SnapshotFileName(stats.snapshot_lsn);

  if (json) {
    ctx.out << JsonObject()
                   .Add("dir", dir)
                   .Add("compacted", true)
                   .Add("snapshot", snapshot)
                   .Add("snapshot_lsn", stats.snapshot_lsn)
                   .Add("sessions", stats.sessions)
                   .Add("files_before", static_cast<uint64_t>(files_before))
                   .Add("files_after", static_cast<uint64_t>(files_after))
                   .Add("bytes_before", bytes_before)
                   .Add("bytes_after", bytes_after)
                   .Add("torn_bytes_dropped", report.torn_bytes_dropped)
                   .Add("ticks_aborted", report.ticks_aborted)
                   .Build()
            << "\n";
    return kExitOk;
  }
  if (!report.torn_file.empty()) {
    ctx.out << "recovery cut a torn tail of " << report.torn_bytes_dropped
            << " bytes at " << BaseName(report.torn_file) << " offset "
            << report.torn_offset << "\n";
  } else if (report.torn_bytes_dropped > 0) {
    std::vector<std::string> set_aside;
    for (const Problem& p : report.problems) {
      if (p.kind == Problem::Kind::kTornTail)
        set_aside.push_back(BaseName(p.file));
    }
    ctx.out << "recovery set aside a last segment whose creation a crash "
               "interrupted ("
            << (set_aside.empty()
                    ? std::string()
                    : absl::StrCat(absl::StrJoin(set_aside, ", "), ", "))
            << report.torn_bytes_dropped << " bytes)\n";
  }
  if (!report.backup_dir.empty()) {
    ctx.out << "recovery backed up what it dropped: "
            << absl::StrJoin(report.backed_up, ", ") << " in "
            << report.backup_dir << "\n";
  }
  ctx.out << "compacted: snapshot " << snapshot << " at lsn "
          << stats.snapshot_lsn << ", " << Count(stats.sessions, "session")
          << "\n"
          << "files: " << files_before << " -> " << files_after << ", bytes "
          << bytes_before << " -> " << bytes_after << "\n";
  return kExitOk;
}

}  // namespace walctl
}  // namespace walstate
