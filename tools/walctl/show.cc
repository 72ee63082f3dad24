// walctl show: one session's state now, or as it was at an LSN.
#include <algorithm>
#include <limits>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "engine/log/format.h"
#include "engine/recovery.h"
#include "engine/state/session_table.h"
#include "tools/walctl/decode.h"
#include "tools/walctl/walctl.h"

namespace walstate {
namespace walctl {
namespace {

constexpr char kHelp[] =
    R"(usage: walctl show DIR SESSION [--at-lsn N] [--json]

Prints the state of SESSION in the data directory DIR as recovery rebuilds
it (snapshot, then the log after it), decoded with the schema stored in the
directory. With --at-lsn N, replays only records with LSN <= N: the state as
it was right after record N (uncommitted batched ticks do not count). When N
falls inside the capture of a snapshot taken while updates went on, the whole
log is replayed instead, so the answer is exact.

flags:
  --at-lsn N   the state as of LSN N; fails when the retained history starts
               after N (compaction deleted the log before it)
  --json       one JSON object: session, lsn, state

exit: 0 found; 1 the session does not exist (at that LSN); 2 unreadable input,
      damage recovery refuses, or N older than the retained history;
      64 usage error
)";

const CommandSpec kSpec = {
    "show", kHelp, {{"at-lsn", true}, {"json", false}}, 2, 2};

// The directory as it would be without its MANIFEST: recovery then uses no
// snapshot and replays the whole log. Everything else passes through.
class WithoutManifest : public FileSystem {
 public:
  explicit WithoutManifest(FileSystem* base) : base_(base) {}

  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::string& path) override {
    return absl::PermissionDeniedError(
        absl::StrCat("walctl show writes nothing: ", path));
  }
  absl::StatusOr<std::unique_ptr<WritableFile>> ReopenWritableFile(
      const std::string& path) override {
    return NewWritableFile(path);
  }
  absl::StatusOr<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path) override {
    if (Hidden(path)) return absl::NotFoundError(path);
    return base_->NewRandomAccessFile(path);
  }
  absl::StatusOr<bool> FileExists(const std::string& path) override {
    if (Hidden(path)) return false;
    return base_->FileExists(path);
  }
  absl::StatusOr<std::vector<std::string>> ListDir(
      const std::string& dir) override {
    absl::StatusOr<std::vector<std::string>> names = base_->ListDir(dir);
    if (!names.ok()) return names;
    names->erase(
        std::remove(names->begin(), names->end(), log::kManifestFileName),
        names->end());
    return names;
  }
  absl::Status CreateDir(const std::string& dir) override {
    return base_->CreateDir(dir);
  }
  absl::Status DeleteFile(const std::string& path) override {
    return absl::PermissionDeniedError(path);
  }
  absl::Status RenameFile(const std::string& from,
                          const std::string& to) override {
    return absl::PermissionDeniedError(from + " -> " + to);
  }
  absl::Status TruncateFile(const std::string& path, uint64_t) override {
    return absl::PermissionDeniedError(path);
  }
  absl::StatusOr<uint64_t> FileSize(const std::string& path) override {
    if (Hidden(path)) return absl::NotFoundError(path);
    return base_->FileSize(path);
  }
  absl::Status SyncDir(const std::string& dir) override {
    return base_->SyncDir(dir);
  }
  absl::StatusOr<std::unique_ptr<FileLock>> LockFile(
      const std::string& path, const std::string& owner) override {
    return absl::PermissionDeniedError(path);
  }

 private:
  static bool Hidden(const std::string& path) {
    return BaseName(path) == log::kManifestFileName;
  }
  FileSystem* base_;
};

// The highest LSN at which any session of the recovered snapshot was
// captured (0 without a snapshot). Snapshots are fuzzy: a session captured
// after LSN N already holds changes made after N.
uint64_t MaxCaptureLsn(SessionTable& table) {
  uint64_t max_lsn = 0;
  for (size_t i = 0; i < table.shard_count(); ++i) {
    SessionTable::Shard& shard = table.shard(i);
    std::lock_guard<std::mutex> lock(shard.mu);
    for (const SessionTable::Node* node : shard.sessions) {
      max_lsn = std::max(max_lsn, node->entry.snapshot_lsn());
    }
  }
  return max_lsn;
}

}  // namespace

int RunShow(Context& ctx, const std::vector<std::string>& args) {
  ParsedArgs parsed;
  int code = kExitOk;
  if (!ParseOrExit(ctx, kSpec, args, &parsed, &code)) return code;
  const std::string dir = parsed.positional()[0];
  const std::string session = parsed.positional()[1];
  const bool json = parsed.Has("json");
  RecoveryOptions options;
  options.fs = ctx.fs;
  options.dir = dir;
  if (parsed.Has("at-lsn")) {
    absl::StatusOr<uint64_t> lsn = parsed.GetUint64("at-lsn");
    if (!lsn.ok()) {
      ctx.err << "walctl show: " << lsn.status().message()
              << " (see 'walctl show --help')\n";
      return kExitUsage;
    }
    options.stop_at_lsn = *lsn;
  }

  absl::StatusOr<DirEntries> entries = ScanDir(ctx.fs, dir);
  if (!entries.ok()) return FailStatus(ctx, "show", entries.status());
  if (entries->empty()) {
    return Fail(ctx, "show",
                absl::StrCat("no log segments, snapshots or MANIFEST in ", dir,
                             " (not a walstate data directory?)"),
                kExitError);
  }
  absl::StatusOr<std::unique_ptr<Schema>> schema =
      ReadStoredSchema(ctx.fs, dir);
  if (!schema.ok()) return FailStatus(ctx, "show", schema.status());
  absl::StatusOr<RecoveredState> state = Recover(options, **schema);
  if (!state.ok()) return FailStatus(ctx, "show", state.status());
  if (parsed.Has("at-lsn") && !state->report.snapshot_file.empty()) {
    const uint64_t captured = MaxCaptureLsn(*state->table);
    if (captured > options.stop_at_lsn) {
      // The snapshot was taken while updates went on, and some of its
      // sessions were captured after the LSN asked for: only a replay that
      // does not start from it is exact. Hide the MANIFEST from recovery so
      // that it replays the whole log, if the log still reaches LSN 1.
      const std::string snapshot = state->report.snapshot_file;
      WithoutManifest fs(ctx.fs);
      RecoveryOptions whole = options;
      whole.fs = &fs;
      state = Recover(whole, **schema);
      if (!state.ok()) {
        return Fail(
            ctx, "show",
            absl::StrCat("lsn ", options.stop_at_lsn,
                         " falls inside the capture of snapshot ", snapshot,
                         " (taken while updates went on; sessions captured "
                         "up to lsn ",
                         captured,
                         "), and the log before it, which an exact answer "
                         "needs, is not retained: ",
                         state.status().message()),
            kExitError);
      }
    }
  }

  const RecoveryReport& report = state->report;
  const uint64_t lsn = report.last_lsn;
  std::unique_ptr<google::protobuf::Message> message = (*schema)->NewMessage();
  absl::Status found = state->table->Get(session, message.get());
  if (absl::IsNotFound(found)) {
    return Fail(ctx, "show",
                absl::StrCat("session ", QuoteSession(session),
                             " does not exist at lsn ", lsn),
                kExitNotFound);
  }
  if (!found.ok()) return FailStatus(ctx, "show", found);

  if (json) {
    ctx.out << JsonObject()
                   .Add("session", session)
                   .Add("lsn", lsn)
                   .Add("type", (*schema)->descriptor()->full_name())
                   .AddRaw("state", Decoder::StateJson(*message))
                   .Build()
            << "\n";
    return kExitOk;
  }
  ctx.out << "# session " << QuoteSession(session) << " at lsn " << lsn << " ("
          << (*schema)->descriptor()->full_name();
  if (!report.snapshot_file.empty()) {
    ctx.out << "; snapshot " << report.snapshot_file << " + "
            << report.records_replayed << " log records";
  } else {
    ctx.out << "; " << report.records_replayed << " log records";
  }
  ctx.out << ")\n" << Decoder::StateTextMultiLine(*message);
  return kExitOk;
}

}  // namespace walctl
}  // namespace walstate
