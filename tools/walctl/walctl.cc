#include "tools/walctl/walctl.h"

#include "absl/strings/str_cat.h"
#include "walstate/version.h"

namespace walstate {
namespace walctl {
namespace {

constexpr char kUsage[] =
    R"(usage: walctl COMMAND DIR [flags]

Looks inside, checks and fixes a walstate data directory.

commands:
  dump DIR      every record of the snapshots and log in LSN order, decoded
  verify DIR    check everything recovery reads; exit 0 clean, 1 torn tail
                only, 2 damage or unreadable
  stats DIR     sessions, records by type and tier, bytes per file, LSN
                range, what a compaction would reclaim
  show DIR SESSION [--at-lsn N]
                a session's state now or as of LSN N
  compact DIR   offline compaction through the engine (refused while an
                engine holds the directory's LOCK)
  repair DIR [--fix] [--salvage]
                what it takes to make DIR recoverable; with --fix, does it
                after backing up the files it changes
  restore --nats URL --store NAME DIR
                rebuild DIR from the store's NATS JetStream stream
  follow --nats URL --store NAME DIR
                restore DIR, then keep applying the stream to it (a warm
                standby) until SIGINT or SIGTERM
  takeover --nats URL --store NAME --writer ID
                make ID the store's writer; the previous one is fenced
  stream --nats URL --store NAME [DIR]
                the stream's end, its server's durability, DIR's lag
  help COMMAND  the flags of COMMAND (same as walctl COMMAND --help)
  --version     walctl's release and the on-disk format version it reads

exit codes: 0 ok; 1 torn tail only (verify, dump), session not found (show);
2 damage, unreadable input or failed operation; 64 usage error; 75 directory
locked by another process (compact, repair)
)";

struct Command {
  const char* name;
  int (*run)(Context&, const std::vector<std::string>&);
};

constexpr Command kCommands[] = {
    {"dump", RunDump},                                 //
    {"verify", RunVerify},                             //
    {"stats", RunStats},                               //
    {"show", RunShow},                                 //
    {"compact", RunCompact},                           //
    {"repair", RunRepair},                             //
    {"restore", RunRestore},                           //
    {"takeover", RunTakeover}, {"stream", RunStream},  //
    {"follow", RunFollow},                             //
};

}  // namespace

int Run(Context& ctx, const std::vector<std::string>& args) {
  if (args.empty()) {
    ctx.err << "walctl: missing command (see 'walctl --help')\n";
    return kExitUsage;
  }
  const std::string& command = args[0];
  if (command == "-h" || command == "--help" ||
      (command == "help" && args.size() == 1)) {
    ctx.out << kUsage;
    return kExitOk;
  }
  if (command == "--version" || command == "version") {
    ctx.out << "walctl (walstate) " << Version() << ", on-disk format "
            << FormatVersion() << "\n";
    return kExitOk;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  std::string name = command;
  if (command == "help") {
    name = args[1];
    rest = {"--help"};
  }
  for (const Command& c : kCommands) {
    if (name == c.name) return c.run(ctx, rest);
  }
  ctx.err << "walctl: unknown command '" << name << "' (see 'walctl --help')\n";
  return kExitUsage;
}

}  // namespace walctl
}  // namespace walstate
