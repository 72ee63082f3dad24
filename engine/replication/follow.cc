#include "engine/replication/follow.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "engine/log/format.h"
#include "engine/replication/log_applier.h"
#include "engine/replication/wire.h"

namespace walstate {
namespace replication {

std::string FollowReport::ToString() const {
  std::string out = restore.ToString();
  absl::StrAppend(&out, "followed: ", messages_followed, " log messages, ",
                  records_applied, " records applied after the restore; ",
                  "durable up to LSN ", durable_lsn, "\n");
  if (dropped_partial_bytes > 0) {
    absl::StrAppend(&out, "left out: ", dropped_partial_bytes,
                    " bytes of a record whose end had not arrived\n");
  }
  return out;
}

absl::StatusOr<FollowReport> Follow(StreamSource* source, FileSystem* fs,
                                    const std::string& dir,
                                    const FollowOptions& options) {
  auto restored = RestoreAndKeepOpen(source, fs, dir);
  if (!restored.ok()) return restored.status();
  // The restore is complete and synced; from here on the directory is
  // only added to. The lock keeps a Store (or a second follower) out.
  auto lock =
      fs->LockFile(JoinPath(dir, log::kLockFileName), options.lock_owner);
  if (!lock.ok()) {
    (void)restored->applier->Close();
    return lock.status();
  }
  LogApplier* applier = restored->applier.get();
  FollowReport report;
  report.restore = restored->report;
  const uint64_t written_before = applier->records_written();
  const uint64_t messages_before = applier->log_messages();
  uint64_t unsynced = 0;
  uint64_t reported = applier->durable_lsn();
  if (options.on_progress) options.on_progress(reported);

  auto sync = [&]() -> absl::Status {
    if (unsynced == 0) return absl::OkStatus();
    absl::Status s = applier->Sync();
    if (!s.ok()) return s;
    unsynced = 0;
    if (applier->durable_lsn() > reported) {
      reported = applier->durable_lsn();
      if (options.on_progress) options.on_progress(reported);
    }
    return absl::OkStatus();
  };
  auto stopping = [&]() { return options.stop && options.stop(); };
  absl::Status idle_error;

  absl::Status result = source->TailLog(
      restored->next_seq, options.idle_wait,
      [&](uint64_t seq, absl::string_view msg,
          absl::string_view) -> absl::StatusOr<bool> {
        MessageHeader h;
        absl::string_view body;
        absl::Status s = DecodeMessage(msg, &h, &body);
        if (!s.ok()) {
          return absl::DataLossError(absl::StrCat(
              source->Describe(), " message ", seq, ": ", s.message(),
              ". The stream's copy is damaged; the follower stopped with ", dir,
              " consistent up to the last record before it"));
        }
        const uint64_t before = applier->records_written();
        s = applier->Apply(seq, h, body);
        if (!s.ok()) return s;
        unsynced += applier->records_written() - before;
        if (unsynced >= options.sync_every_records) {
          s = sync();
          if (!s.ok()) return s;
        }
        return !stopping();
      },
      [&]() {
        // Nothing arrived for a moment: make what came durable.
        idle_error = sync();
        return idle_error.ok() && !stopping();
      });
  if (result.ok()) result = idle_error;
  report.dropped_partial_bytes = applier->DropPartial();
  absl::Status c = applier->Close();
  if (result.ok()) result = c;
  report.messages_followed = applier->log_messages() - messages_before;
  report.records_applied = applier->records_written() - written_before;
  report.durable_lsn = applier->durable_lsn();
  if (options.on_progress && report.durable_lsn > reported) {
    options.on_progress(report.durable_lsn);
  }
  if (!result.ok()) {
    return absl::Status(
        result.code(),
        absl::StrCat("following ", source->Describe(), " into ", dir, ": ",
                     result.message(), " (", dir, " is consistent up to LSN ",
                     report.durable_lsn, ")"));
  }
  return report;
}

}  // namespace replication
}  // namespace walstate
