// What is declared in walstate/recovery_report.h: names and the report's text.
#include "walstate/recovery_report.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace walstate {

const char* RecoveryModeName(RecoveryMode mode) {
  switch (mode) {
    case RecoveryMode::kStrict:
      return "strict";
    case RecoveryMode::kTolerateTornTail:
      return "tolerate-torn-tail";
    case RecoveryMode::kSalvage:
      return "salvage";
  }
  return "unknown";
}

const char* ProblemKindName(Problem::Kind kind) {
  switch (kind) {
    case Problem::Kind::kTornTail:
      return "torn-tail";
    case Problem::Kind::kCorruption:
      return "corruption";
    case Problem::Kind::kForeignFile:
      return "foreign-file";
    case Problem::Kind::kUnreadable:
      return "unreadable";
  }
  return "unknown";
}

std::string RecoveryReport::ToString() const {
  std::string out;
  if (snapshot_file.empty()) {
    absl::StrAppend(&out, "snapshot: none\n");
  } else {
    absl::StrAppend(&out, "snapshot: ", snapshot_file, " (LSN ", snapshot_lsn,
                    ", ", snapshot_sessions, " sessions)\n");
  }
  if (fell_back) absl::StrAppend(&out, "fell back: ", fallback_reason, "\n");
  absl::StrAppend(&out, "replayed: ", records_replayed, " records, ",
                  bytes_replayed, " bytes from ", segments_read, " segments (",
                  bytes_skipped, " bytes before the snapshot skipped; ",
                  lazy_replay ? "kept for first use" : "applied",
                  "); ticks committed ", ticks_committed, ", aborted ",
                  ticks_aborted, "\n");
  if (torn_bytes_dropped > 0 && !torn_file.empty()) {
    absl::StrAppend(&out, "torn tail dropped: ", torn_bytes_dropped,
                    " bytes at ", torn_file, " offset ", torn_offset, "\n");
  } else if (torn_bytes_dropped > 0) {
    // No tail was cut: a last segment whose create a crash interrupted was
    // set aside whole (the torn-tail problems name it).
    std::vector<std::string> set_aside;
    for (const Problem& p : problems) {
      if (p.kind == Problem::Kind::kTornTail) set_aside.push_back(p.file);
    }
    absl::StrAppend(&out, "torn tail dropped: ", torn_bytes_dropped, " bytes: ",
                    set_aside.empty() ? std::string("a last segment")
                                      : absl::StrJoin(set_aside, ", "),
                    ", whose creation a crash interrupted, set aside whole\n");
  }
  if (!backup_dir.empty()) {
    absl::StrAppend(&out, "backed up before dropping: ",
                    absl::StrJoin(backed_up, ", "), " in ", backup_dir, "\n");
  }
  for (const Problem& p : problems) {
    absl::StrAppend(&out, "problem: ", ProblemKindName(p.kind), " at ", p.file,
                    " offset ", p.offset, ": ", p.detail, "\n");
  }
  absl::StrAppend(&out, "sessions: ", sessions, ", last LSN ", last_lsn,
                  ", took ", absl::FormatDuration(duration), " (snapshot ",
                  absl::FormatDuration(snapshot_duration), ", log ",
                  absl::FormatDuration(replay_duration), ", indexes ",
                  absl::FormatDuration(index_duration), ")\n");
  return out;
}

}  // namespace walstate
