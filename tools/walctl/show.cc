// walctl show: one session's state now, or as it was at an LSN.
#include <limits>

#include "absl/strings/str_cat.h"
#include "engine/recovery.h"
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
it was right after record N (uncommitted batched ticks do not count).

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
