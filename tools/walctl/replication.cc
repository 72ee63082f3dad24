// walctl restore, takeover and stream: a store's replica in NATS JetStream
// (docs/replication.md).
#include <signal.h>

#include <csignal>
#include <map>

#include "absl/strings/str_cat.h"
#include "engine/recovery.h"
#include "engine/replication/follow.h"
#include "engine/replication/nats/nats_replicator.h"
#include "engine/replication/restore.h"
#include "engine/replication/wire.h"
#include "tools/walctl/walctl.h"

namespace walstate {
namespace walctl {
namespace {

constexpr char kRestoreHelp[] =
    R"(usage: walctl restore --nats URL --store NAME DIR [--json]

Rebuilds a data directory from store NAME's stream in NATS JetStream: the
newest snapshot the stream holds (its whole-file checksum and every frame
verified), then every log record after it, each frame's checksum verified as
recovery verifies it. DIR must not exist or be empty; on any error what was
written is removed again and nothing is left to open. The result passes
`walctl verify` and opens with the same sessions and indexes.

Restoring does not claim the store: open the result with
Options::replication.takeover (or run `walctl takeover` first) to write.

flags:
  --nats URL     comma-separated server URLs (nats://127.0.0.1:4222,...)
  --store NAME   the store's name in the stream (Options of the writer)
  --json         one JSON object with the result

exit: 0 restored; 2 damaged message, missing records or unreachable stream
      (the error names the message); 64 usage error
)";

constexpr char kTakeoverHelp[] =
    R"(usage: walctl takeover --nats URL --store NAME --writer ID

Makes ID the writer of store NAME: publishes a claim fenced on the end of the
store's log subject. From then on the stream refuses every publish of the
previous writer, which stops itself (deposed). Open the store as writer ID
afterwards (its directory restored from the stream, or its own if it is the
same machine and it was not ahead of the stream).

exit: 0 claimed; 2 the stream is unreachable; 64 usage error
)";

constexpr char kStreamHelp[] =
    R"(usage: walctl stream --nats URL --store NAME [DIR] [--messages] [--json]

What store NAME's stream holds and what its server can promise: the server
version and the durability of an acknowledgement, the last LSN and writer on
the log subject. With DIR (stopped or running), the local last LSN too, and
the lag: records the local log has and the stream does not. --messages
lists every message of the log subject (sequence, kind, LSNs).

exit: 0 ok; 2 the stream is unreachable or damaged; 64 usage error
)";

constexpr char kFollowHelp[] =
    R"(usage: walctl follow --nats URL --store NAME DIR

A warm standby of store NAME: restores DIR from the store's stream as
`walctl restore` does, then keeps applying the stream's new log records to
DIR as they arrive (every frame's checksum verified; walstate segments in
the same format), fdatasyncing them at least every 4096 records and
whenever the stream is quiet for 100 ms. Prints "durable LSN N" after each
sync that advanced it. Snapshots published meanwhile are not applied (DIR's
own log holds their records).

The follower never publishes and never claims the store; it holds DIR's
LOCK while it runs. SIGINT or SIGTERM stop it cleanly: DIR then passes
`walctl verify` and opens with the state up to the last durable LSN.
To fail over to it: stop it, `walctl takeover --writer ID`, and open DIR
as writer ID (Open refuses DIR if the stream holds records DIR lacks).

exit: 0 stopped by a signal; 2 damaged message, missing records or
      unreachable stream (DIR stays consistent up to the LSN named);
      64 usage error
)";

const CommandSpec kFollowSpec = {
    "follow", kFollowHelp, {{"nats", true}, {"store", true}}};

const CommandSpec kRestoreSpec = {
    "restore",
    kRestoreHelp,
    {{"nats", true}, {"store", true}, {"json", false}}};
const CommandSpec kTakeoverSpec = {
    "takeover",
    kTakeoverHelp,
    {{"nats", true}, {"store", true}, {"writer", true}},
    0,
    0};
const CommandSpec kStreamSpec = {
    "stream",
    kStreamHelp,
    {{"nats", true}, {"store", true}, {"messages", false}, {"json", false}},
    0,
    1};

absl::StatusOr<std::unique_ptr<replication::NatsReplicator>> Connect(
    const ParsedArgs& parsed) {
  if (!parsed.Has("nats") || !parsed.Has("store")) {
    return absl::InvalidArgumentError(
        "--nats URL and --store NAME are required");
  }
  replication::NatsOptions o;
  o.url = parsed.Get("nats");
  o.store = parsed.Get("store");
  o.create_stream = false;
  return replication::NatsReplicator::Connect(o);
}

const char* KindName(replication::MessageKind kind) {
  switch (kind) {
    case replication::MessageKind::kLog:
      return "log";
    case replication::MessageKind::kClaim:
      return "claim";
    case replication::MessageKind::kSnapshotChunk:
      return "snapshot-chunk";
    case replication::MessageKind::kSnapshotManifest:
      return "snapshot-manifest";
  }
  return "?";
}

volatile std::sig_atomic_t follow_stop = 0;
void StopFollowing(int) { follow_stop = 1; }

}  // namespace

int RunFollow(Context& ctx, const std::vector<std::string>& args) {
  ParsedArgs parsed;
  int code = kExitOk;
  if (!ParseOrExit(ctx, kFollowSpec, args, &parsed, &code)) return code;
  auto r = Connect(parsed);
  if (!r.ok()) {
    return Fail(ctx, "follow", r.status().ToString(),
                absl::IsInvalidArgument(r.status()) ? kExitUsage : kExitError);
  }
  const std::string dir = parsed.positional()[0];
  follow_stop = 0;
  struct sigaction sa = {};
  sa.sa_handler = StopFollowing;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int = {}, old_term = {};
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  replication::FollowOptions o;
  o.stop = [] { return follow_stop != 0; };
  o.on_progress = [&](uint64_t lsn) {
    ctx.out << "durable LSN " << lsn << std::endl;
  };
  ctx.out << "following " << (*r)->Describe() << " into " << dir << "\n"
          << "server: " << (*r)->durability().description << std::endl;
  auto report = replication::Follow(r->get(), ctx.fs, dir, o);
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  if (!report.ok()) return FailStatus(ctx, "follow", report.status());
  ctx.out << "stopped; " << dir << " is consistent up to LSN "
          << report->durable_lsn << "\n"
          << report->ToString() << std::flush;
  return kExitOk;
}

int RunRestore(Context& ctx, const std::vector<std::string>& args) {
  ParsedArgs parsed;
  int code = kExitOk;
  if (!ParseOrExit(ctx, kRestoreSpec, args, &parsed, &code)) return code;
  auto r = Connect(parsed);
  if (!r.ok()) {
    return Fail(ctx, "restore", r.status().ToString(),
                absl::IsInvalidArgument(r.status()) ? kExitUsage : kExitError);
  }
  const std::string dir = parsed.positional()[0];
  auto report = replication::Restore(r->get(), ctx.fs, dir);
  if (!report.ok()) return FailStatus(ctx, "restore", report.status());
  if (parsed.Has("json")) {
    ctx.out << JsonObject()
                   .Add("dir", dir)
                   .Add("snapshot", report->snapshot_file)
                   .Add("snapshot_lsn", report->snapshot_lsn)
                   .Add("snapshot_sessions", report->snapshot_sessions)
                   .Add("log_messages", report->log_messages)
                   .Add("records_verified", report->records_verified)
                   .Add("records_written", report->records_written)
                   .Add("last_lsn", report->last_lsn)
                   .Add("last_writer", report->last_writer)
                   .Build()
            << "\n";
  } else {
    ctx.out << "restored " << dir << " from " << (*r)->Describe() << "\n"
            << report->ToString();
  }
  return kExitOk;
}

int RunTakeover(Context& ctx, const std::vector<std::string>& args) {
  ParsedArgs parsed;
  int code = kExitOk;
  if (!ParseOrExit(ctx, kTakeoverSpec, args, &parsed, &code)) return code;
  if (!parsed.Has("writer")) {
    return Fail(ctx, "takeover", "--writer ID is required", kExitUsage);
  }
  auto r = Connect(parsed);
  if (!r.ok()) return FailStatus(ctx, "takeover", r.status());
  auto pos = (*r)->Claim(parsed.Get("writer"), /*takeover=*/true, "");
  if (!pos.ok()) return FailStatus(ctx, "takeover", pos.status());
  ctx.out << "store " << parsed.Get("store") << ": writer \""
          << parsed.Get("writer") << "\" claimed it at LSN " << pos->last_lsn
          << " (previous writer \"" << pos->last_writer << "\", now fenced)\n";
  return kExitOk;
}

int RunStream(Context& ctx, const std::vector<std::string>& args) {
  ParsedArgs parsed;
  int code = kExitOk;
  if (!ParseOrExit(ctx, kStreamSpec, args, &parsed, &code)) return code;
  auto r = Connect(parsed);
  if (!r.ok()) return FailStatus(ctx, "stream", r.status());
  auto pos = (*r)->Peek();
  if (!pos.ok()) return FailStatus(ctx, "stream", pos.status());
  const replication::ServerDurability d = (*r)->durability();
  uint64_t local_last = 0;
  const bool has_dir = !parsed.positional().empty();
  if (has_dir) {
    const std::string dir = parsed.positional()[0];
    auto schema = ReadStoredSchema(ctx.fs, dir);
    if (!schema.ok()) return FailStatus(ctx, "stream", schema.status());
    RecoveryOptions ro;
    ro.fs = ctx.fs;
    ro.dir = dir;
    ro.lazy = true;
    auto recovered = Recover(ro, **schema);
    if (!recovered.ok()) return FailStatus(ctx, "stream", recovered.status());
    local_last = recovered->next_lsn - 1;
  }
  const uint64_t lag =
      local_last > pos->last_lsn ? local_last - pos->last_lsn : 0;
  if (parsed.Has("json")) {
    JsonObject o;
    o.Add("stream", (*r)->stream_name())
        .Add("server_version", d.server_version)
        .Add("durability", d.description)
        .Add("fsync_before_ack_possible", d.fsync_before_ack_possible)
        .Add("stream_last_lsn", pos->last_lsn)
        .Add("last_writer", pos->last_writer);
    if (has_dir) o.Add("local_last_lsn", local_last).Add("lag_records", lag);
    ctx.out << o.Build() << "\n";
  } else {
    ctx.out << (*r)->Describe() << "\n"
            << "server: " << d.description << "\n"
            << "log subject: last LSN " << pos->last_lsn << ", last writer \""
            << pos->last_writer << "\"\n";
    if (has_dir) {
      ctx.out << "local: last LSN " << local_last << "; lag " << lag
              << " records (what a failover now would lose)\n";
    }
  }
  if (parsed.Has("messages")) {
    absl::Status s = (*r)->ReadLog(
        [&](uint64_t seq, absl::string_view msg, absl::string_view writer) {
          replication::MessageHeader h;
          absl::string_view body;
          absl::Status d = replication::DecodeMessage(msg, &h, &body);
          if (!d.ok()) {
            ctx.out << seq << " damaged: " << d.message() << "\n";
            return absl::OkStatus();
          }
          ctx.out << seq << " " << KindName(h.kind) << " lsn " << h.first_lsn
                  << ".." << h.last_lsn << " " << body.size()
                  << " bytes writer \"" << writer << "\"\n";
          return absl::OkStatus();
        });
    if (!s.ok()) return FailStatus(ctx, "stream", s);
  }
  return kExitOk;
}

}  // namespace walctl
}  // namespace walstate
