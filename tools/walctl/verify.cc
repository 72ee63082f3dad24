// walctl verify: checks everything recovery would read and says, by exit
// code, whether default recovery accepts the directory as it is.
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/recovery.h"
#include "tools/walctl/checks.h"
#include "tools/walctl/decode.h"
#include "tools/walctl/scan.h"
#include "tools/walctl/walctl.h"

namespace walstate {
namespace walctl {
namespace {

constexpr char kHelp[] =
    R"(usage: walctl verify DIR [--json]

Checks everything recovery would read in the data directory DIR: file
headers, record checksums, LSN order and gaps within and between segments,
that every payload decodes (session values with the schema stored in the
file), each snapshot (complete, counts match) and the MANIFEST (the snapshots
it names exist and match), and that the log continues where the current
snapshot ends. When all that passes, it also runs recovery itself (in memory,
writing nothing) to catch what only a replay shows, such as tick records of a
tick that was never begun. Prints each problem with its file and offset and the last good
position before the first problem.

flags:
  --json   one JSON object with the result, counts and every problem

exit: 0 clean
      1 only a torn tail (the default recovery mode cuts it off on open)
      2 damage, or input that cannot be read (missing directory, empty or
        garbage segment header, foreign file); the last line (and "opens"
        in --json) says whether default recovery still opens the store,
        which it does when the damage is only in records the current
        snapshot covers
      64 usage error
)";

const CommandSpec kSpec = {"verify", kHelp, {{"json", false}}};

Finding Make(Finding::Severity severity, const std::string& kind,
             const std::string& file, std::string detail) {
  Finding f;
  f.severity = severity;
  f.kind = kind;
  f.file = file;
  f.detail = std::move(detail);
  return f;
}

struct SnapshotInfo {
  SnapshotCheck check;
  std::string role;  // "current", "previous" or "unpublished"
};

// Turns a context's progress display off for a scope when `off`.
class ProgressOff {
 public:
  ProgressOff(Context& ctx, bool off) : ctx_(ctx), saved_(ctx.progress) {
    if (off) ctx_.progress = false;
  }
  ~ProgressOff() { ctx_.progress = saved_; }

 private:
  Context& ctx_;
  const bool saved_;
};

// The bytes the MANIFEST says snapshot `name` was written with (0: it does
// not name it, or says nothing).
uint64_t ManifestBytes(const ManifestCheck& manifest, const std::string& name) {
  if (!manifest.ok) return 0;
  for (const auto* ref :
       {&manifest.manifest.current(), &manifest.manifest.previous()}) {
    if (ref->file() == name) return ref->bytes();
  }
  return 0;
}

// The rule recovery applies before mapping a snapshot (engine/recovery.cc):
// a file far larger than the MANIFEST says is not that snapshot.
bool TooLargeForManifest(uint64_t file_bytes, uint64_t named_bytes) {
  return named_bytes != 0 && file_bytes > 2 * named_bytes + (64ull << 20);
}

}  // namespace

int RunVerify(Context& ctx, const std::vector<std::string>& args) {
  ParsedArgs parsed;
  int code = kExitOk;
  if (!ParseOrExit(ctx, kSpec, args, &parsed, &code)) return code;
  const std::string dir = parsed.positional()[0];
  const bool json = parsed.Has("json");
  // Progress goes to stderr only on a terminal (ctx.progress), and never
  // with --json, whose consumer is a program.
  ProgressOff no_progress(ctx, json);

  auto unreadable = [&](const std::string& message) {
    if (json) {
      ctx.out << JsonObject()
                     .Add("dir", dir)
                     .Add("result", "unreadable")
                     .Add("exit_code", static_cast<int>(kExitDamage))
                     .Add("error", message)
                     .Build()
              << "\n";
    }
    return Fail(ctx, "verify", message, kExitDamage);
  };

  absl::StatusOr<DirEntries> entries = ScanDir(ctx.fs, dir);
  if (!entries.ok()) return unreadable(std::string(entries.status().message()));
  if (entries->empty()) {
    return unreadable(absl::StrCat("no log segments, snapshots or MANIFEST in ",
                                   dir, " (not a walstate data directory?)"));
  }

  std::vector<Finding> findings;
  Decoder decoder;

  // The log, in salvage mode so that all damage is seen.
  std::map<std::string, const Schema*> schemas;  // by segment name
  std::set<std::string> schema_failed;
  uint64_t first_segment_lsn = 0;
  bool have_first_segment_lsn = false;
  uint64_t total = 0;
  // Segments with a good header of their own number, and their first LSN;
  // and those whose number does not follow the previous segment's.
  std::map<std::string, uint64_t> good_first_lsn;
  std::set<std::string> after_gap;
  for (size_t i = 0; i < entries->segments.size(); ++i) {
    const auto& seg = entries->segments[i];
    if (i > 0 && seg.number != entries->segments[i - 1].number + 1) {
      after_gap.insert(seg.name);
    }
    absl::StatusOr<HeaderInfo> info =
        ReadHeader(ctx.fs, JoinPath(dir, seg.name));
    if (!info.ok() || info->status != log::HeaderStatus::kOk) continue;
    if (info->header.kind == log::FileKind::kSegment &&
        info->header.file_number == seg.number) {
      good_first_lsn[seg.name] = info->header.first_lsn;
    }
    total += info->file_size;
    if (!have_first_segment_lsn) {
      have_first_segment_lsn = true;
      first_segment_lsn = info->header.first_lsn;
    }
    std::string error;
    const Schema* schema = decoder.SchemaFor(info->header.schema, &error);
    schemas[seg.name] = schema;
    if (schema == nullptr && !info->header.schema.empty()) {
      findings.push_back(Make(Finding::Severity::kDamage, "undecodable",
                              seg.name,
                              "stored schema does not load: " + error));
    }
  }
  LogScanResult log;
  if (!entries->segments.empty()) {
    Progress progress(ctx, "verify", total);
    LogScanCallbacks callbacks;
    callbacks.on_record = [&](const log::Record& record) {
      std::string name = BaseName(record.file);
      auto it = schemas.find(name);
      const Schema* schema = it == schemas.end() ? nullptr : it->second;
      DecodedRecord d = decoder.Decode(record.type, record.payload, record.lsn,
                                       schema, Decoder::Render::kCheck);
      if (!d.error.empty()) {
        Finding f = Make(Finding::Severity::kDamage, "undecodable", name,
                         absl::StrCat("lsn ", record.lsn, ": ", d.error));
        f.offset = record.offset;
        f.bytes = record.framed_size;
        findings.push_back(f);
      }
    };
    absl::StatusOr<LogScanResult> scan =
        ScanLog(ctx.fs, dir, callbacks, &progress);
    if (!scan.ok()) return unreadable(std::string(scan.status().message()));
    log = std::move(*scan);
    // Reader findings first: they explain what later decode errors follow.
    findings.insert(findings.begin(), log.findings.begin(), log.findings.end());
  }

  // MANIFEST and snapshots.
  ManifestCheck manifest = CheckManifest(ctx.fs, dir);
  for (const Finding& f : manifest.findings) findings.push_back(f);
  std::map<std::string, std::string> roles;
  if (manifest.ok) {
    const record::Manifest& m = manifest.manifest;
    if (!m.current().file().empty()) roles[m.current().file()] = "current";
    if (!m.previous().file().empty()) roles[m.previous().file()] = "previous";
  }
  std::vector<SnapshotInfo> snapshots;
  for (const auto& snap : entries->snapshots) {
    SnapshotInfo info;
    absl::StatusOr<uint64_t> size = ctx.fs->FileSize(JoinPath(dir, snap.name));
    const uint64_t named_bytes = ManifestBytes(manifest, snap.name);
    if (size.ok() && TooLargeForManifest(*size, named_bytes)) {
      // Not the snapshot the MANIFEST names (a sparse file of several GiB,
      // say): not read to find out, as recovery does not map it.
      info.check.file = snap.name;
      info.check.lsn = snap.number;
      info.check.bytes = *size;
      info.check.findings.push_back(Make(
          Finding::Severity::kDamage, "snapshot", snap.name,
          absl::StrCat("the file has ", *size, " bytes, the MANIFEST says ",
                       named_bytes,
                       ": not the snapshot it names, so not read (recovery "
                       "does not use it either)")));
    } else {
      Progress progress(ctx, absl::StrCat("verify ", snap.name),
                        size.ok() ? *size : 0);
      info.check =
          CheckSnapshot(ctx.fs, dir, snap.name, snap.number, &decoder,
                        [&progress](uint64_t done) { progress.Update(done); });
    }
    auto role = roles.find(snap.name);
    info.role = role == roles.end() ? "unpublished" : role->second;
    for (Finding f : info.check.findings) {
      if (info.role == "unpublished") {
        // Recovery never reads a snapshot no MANIFEST names.
        f.severity = Finding::Severity::kWarning;
        f.detail += " (unpublished snapshot: recovery ignores it)";
      }
      findings.push_back(f);
    }
    if (info.role == "unpublished") {
      findings.push_back(Make(
          Finding::Severity::kWarning, "unpublished", snap.name,
          manifest.ok ? "snapshot not named by MANIFEST (an interrupted "
                        "compaction's, or a copy): not walstate's to delete; "
                        "recovery ignores it and leaves it alone"
                      : "snapshot but no readable MANIFEST names it: not "
                        "walstate's to delete; recovery ignores it and leaves "
                        "it alone"));
    }
    snapshots.push_back(std::move(info));
  }
  // The snapshots the MANIFEST names must exist and match it.
  uint64_t current_lsn = 0;
  bool has_current = false;
  if (manifest.ok) {
    for (const auto* ref :
         {&manifest.manifest.current(), &manifest.manifest.previous()}) {
      if (ref->file().empty()) continue;
      const bool is_current = ref == &manifest.manifest.current();
      const SnapshotInfo* found = nullptr;
      for (const SnapshotInfo& s : snapshots) {
        if (s.check.file == ref->file()) found = &s;
      }
      const std::string role = is_current ? "current" : "previous";
      uint64_t name_lsn = 0;
      if (found == nullptr &&
          !log::ParseSnapshotFileName(ref->file(), &name_lsn)) {
        findings.push_back(Make(
            Finding::Severity::kDamage, "manifest", log::kManifestFileName,
            absl::StrCat("names ", role, " snapshot ", ref->file(),
                         ", which recovery refuses: not a snapshot file name "
                         "of this directory (snap-<16 hex>.snap; a path, "
                         "absolute or with '..', is never followed)")));
        continue;
      }
      if (found == nullptr) {
        findings.push_back(
            Make(Finding::Severity::kDamage, "manifest", log::kManifestFileName,
                 absl::StrCat("names ", role, " snapshot ", ref->file(),
                              ", which does not exist")));
        continue;
      }
      if (found->check.lsn != ref->lsn() ||
          (found->check.complete && found->check.sessions != ref->sessions())) {
        findings.push_back(Make(
            Finding::Severity::kDamage, "manifest", log::kManifestFileName,
            absl::StrCat("names ", role, " snapshot ", ref->file(), " at lsn ",
                         ref->lsn(), " with ",
                         Count(ref->sessions(), "session"),
                         "; the file is at lsn ", found->check.lsn, " with ",
                         Count(found->check.sessions, "session"))));
      }
      if (is_current) {
        has_current = true;
        current_lsn = ref->lsn();
      }
    }
  }
  // Missing segment numbers before a segment whose header is good and whose
  // first LSN is at most one past the current snapshot held only records the
  // snapshot covers (docs/FORMAT.md §7.5, §9): not damage, but worth a word
  // (compaction deletes old segments; a crash can interrupt it). The reader
  // reports such a gap at offset 0 of the segment after it; with that
  // segment's header good, nothing else is reported there.
  if (has_current) {
    for (Finding& f : findings) {
      auto first = good_first_lsn.find(f.file);
      if (f.severity != Finding::Severity::kDamage || f.offset != 0 ||
          after_gap.count(f.file) == 0 || first == good_first_lsn.end() ||
          first->second > current_lsn + 1) {
        continue;
      }
      f.severity = Finding::Severity::kWarning;
      f.kind = "gap";
      absl::StrAppend(&f.detail,
                      ": they held only records the current "
                      "snapshot covers (this segment starts at lsn ",
                      first->second, "), so recovery does not need them");
    }
  }
  // The log must continue where the snapshot ends: a gap between them means
  // records that neither holds.
  if (have_first_segment_lsn) {
    const uint64_t need = has_current ? current_lsn + 1 : 1;
    if (first_segment_lsn > need) {
      findings.push_back(Make(
          Finding::Severity::kDamage, "gap", entries->segments.front().name,
          absl::StrCat("the log starts at lsn ", first_segment_lsn, " but ",
                       has_current ? absl::StrCat("the current snapshot ends "
                                                  "at lsn ",
                                                  current_lsn)
                                   : std::string("there is no snapshot"),
                       ": lsn ", need, "..", first_segment_lsn - 1,
                       " are missing")));
    }
  }
  for (const std::string& tmp : entries->tmp_files) {
    findings.push_back(Make(Finding::Severity::kWarning, "leftover", tmp,
                            "temporary file of an interrupted write; the next "
                            "open removes it"));
  }
  for (const std::string& name : entries->other) {
    // Backup folders of recovery and repair are walstate's, but kept for
    // the operator: never read, never deleted.
    if (absl::StartsWith(name, "recovery-backup-") ||
        absl::StartsWith(name, "walctl-backup-")) {
      continue;
    }
    findings.push_back(Make(Finding::Severity::kWarning, "foreign", name,
                            "not walstate's: recovery ignores it and never "
                            "deletes it"));
  }
  std::string holder = LockHolder(dir);
  if (!holder.empty()) {
    findings.push_back(Make(
        Finding::Severity::kWarning, "locked", log::kLockFileName,
        absl::StrCat("held by ", holder,
                     ": an engine has the directory open, so the log may be "
                     "changing while it is read")));
  }

  bool snapshot_ok = false;
  for (const SnapshotInfo& s : snapshots) snapshot_ok |= s.check.ok();
  TornWithNothingReadable(log.records > 0 || snapshot_ok, &findings);

  // Last, what only a replay shows (ticks that were never begun, records
  // that contradict the log): run recovery itself, writing nothing. With
  // damage found already, it says whether the store still opens: recovery
  // reads nothing the current snapshot covers (its MANIFEST entry says where
  // the log after it starts), so damage there alone does not stop it.
  bool opens = false;
  {
    absl::StatusOr<std::unique_ptr<Schema>> schema =
        ReadStoredSchema(ctx.fs, dir);
    if (schema.ok()) {
      RecoveryOptions options;
      options.fs = ctx.fs;
      options.dir = dir;
      absl::StatusOr<RecoveredState> state = Recover(options, **schema);
      opens = state.ok();
      if (!state.ok() && ExitCodeFor(findings) != kExitDamage) {
        findings.push_back(Make(Finding::Severity::kDamage, "recovery", "",
                                absl::StrCat("default recovery fails: ",
                                             state.status().message())));
      }
    }
  }

  code = ExitCodeFor(findings);
  // An unreadable file is not damage: repairing would not help.
  std::string denied;
  for (const Finding& f : findings) {
    if (f.severity == Finding::Severity::kDamage && denied.empty() &&
        absl::StrContains(f.detail, "Permission denied")) {
      denied = f.file.empty() ? dir : f.file;
    }
  }
  const char* result = code == kExitOk         ? "clean"
                       : code == kExitTornTail ? "torn-tail"
                                               : "damage";
  uint64_t torn_bytes = 0;
  std::string torn_file;
  uint64_t torn_offset = 0;
  for (const Finding& f : findings) {
    if (f.severity == Finding::Severity::kTornTail) {
      if (torn_file.empty()) {
        torn_file = f.file;
        torn_offset = f.offset;
      }
      torn_bytes += f.bytes;
    }
  }

  if (json) {
    std::vector<std::string> problems;
    for (const Finding& f : findings) problems.push_back(FindingJson(f));
    std::vector<std::string> snaps;
    for (const SnapshotInfo& s : snapshots) {
      snaps.push_back(JsonObject()
                          .Add("file", s.check.file)
                          .Add("lsn", s.check.lsn)
                          .Add("sessions", s.check.sessions)
                          .Add("bytes", s.check.bytes)
                          .Add("role", s.role)
                          .Add("ok", s.check.ok())
                          .Build());
    }
    JsonObject o;
    o.Add("dir", dir)
        .Add("result", result)
        .Add("exit_code", code)
        .Add("opens", opens)
        .Add("segments", static_cast<uint64_t>(log.segments.size()))
        .Add("records", log.records)
        .Add("first_lsn", log.first_lsn)
        .Add("last_lsn", log.last_lsn)
        .Add("log_bytes", log.bytes);
    if (log.good_file.empty()) {
      o.AddNull("last_good");
    } else {
      o.AddRaw("last_good", JsonObject()
                                .Add("file", log.good_file)
                                .Add("offset", log.good_offset)
                                .Add("lsn", log.good_lsn)
                                .Build());
    }
    if (torn_file.empty()) {
      o.AddNull("torn_tail");
    } else {
      o.AddRaw("torn_tail", JsonObject()
                                .Add("file", torn_file)
                                .Add("offset", torn_offset)
                                .Add("bytes", torn_bytes)
                                .Build());
    }
    o.AddRaw("snapshots", JsonArray(snaps));
    if (manifest.ok) {
      const record::Manifest& m = manifest.manifest;
      o.AddRaw("manifest",
               JsonObject()
                   .Add("generation", static_cast<uint64_t>(m.generation()))
                   .Add("current", m.current().file())
                   .Add("previous", m.previous().file())
                   .Build());
    } else {
      o.AddNull("manifest");
    }
    o.AddRaw("problems", JsonArray(problems));
    ctx.out << o.Build() << "\n";
    return code;
  }

  std::ostream& out = ctx.out;
  out << "log: " << Count(log.segments.size(), "segment") << ", "
      << Count(log.records, "record");
  if (log.records > 0) out << ", lsn " << log.first_lsn << ".." << log.last_lsn;
  out << ", " << log.bytes << " bytes\n";
  for (const SnapshotInfo& s : snapshots) {
    out << "snapshot: " << s.check.file << " lsn " << s.check.lsn << ", "
        << Count(s.check.sessions, "session") << ", " << s.check.bytes
        << " bytes, " << s.role << (s.check.ok() ? "" : ", DAMAGED") << "\n";
  }
  if (manifest.ok) {
    const record::Manifest& m = manifest.manifest;
    out << "manifest: generation " << m.generation() << ", current "
        << (m.current().file().empty() ? "none" : m.current().file())
        << ", previous "
        << (m.previous().file().empty() ? "none" : m.previous().file()) << "\n";
  } else if (!manifest.present) {
    out << "manifest: none\n";
  }
  for (const Finding& f : findings) {
    out << (f.severity == Finding::Severity::kWarning ? "warning: "
                                                      : "problem: ")
        << f.kind << " " << DescribeFinding(f) << "\n";
  }
  if (!log.segments.empty()) {
    if (log.good_file.empty()) {
      out << "last good: none (the problem comes before the first record)\n";
    } else {
      out << "last good: " << log.good_file << " offset " << log.good_offset
          << " (lsn " << log.good_lsn << ")\n";
    }
  }
  switch (code) {
    case kExitOk:
      out << "result: clean\n";
      break;
    case kExitTornTail:
      out << "result: torn tail only: default recovery cuts " << torn_bytes
          << " bytes at " << torn_file << " offset " << torn_offset
          << " (exit 1)\n";
      break;
    default:
      if (!denied.empty()) {
        out << "result: permission denied reading " << denied
            << " (exit 2): run walctl as the store's owner, or fix the "
               "file's mode; this is not damage, do not repair it\n";
        break;
      }
      out << (opens ? "result: damage (exit 2), only in records the current "
                      "snapshot covers: default recovery does not read them "
                      "and opens the store"
                    : "result: damage that default recovery refuses (exit 2)")
          << "; 'walctl repair " << dir
          << " --salvage' shows what can be dropped\n";
      break;
  }
  return code;
}

}  // namespace walctl
}  // namespace walstate
