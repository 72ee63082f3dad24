// What a store's recovery found: how Open treats damage (RecoveryMode), each
// piece of damage it met (Problem), and the whole account (RecoveryReport,
// from Engine::recovery_report()). Public: include <walstate/walstate.h>.
#ifndef WALSTATE_RECOVERY_REPORT_H_
#define WALSTATE_RECOVERY_REPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace walstate {

// What Open (and walctl) do with damage found in the log. Damage classes:
//  - torn tail: a bad or partial frame in the LAST segment after which no
//    valid frame of that file follows (what a crash mid-append leaves: a
//    partial record, zeros, garbage sectors). A missing, empty or zero-filled
//    header of the last segment is a torn tail too (crash right after create).
//  - corruption: a bad frame followed by a valid one, any bad frame in an
//    earlier segment, a bad header, an LSN out of sequence, a gap between
//    segments, an unknown required record type.
//  - foreign file: a file whose name matches ours but whose magic does not.
enum class RecoveryMode {
  // Any damage stops reading with an error: Open fails and changes nothing.
  kStrict,
  // The default: a torn tail ends the log cleanly (it is cut off and
  // reported: only unacknowledged writes can be in it); corruption stops
  // reading with an error.
  kTolerateTornTail,
  // Damaged frames are skipped (reading resynchronizes at the next valid
  // frame) and each is reported; nothing stops reading except an unreadable
  // file. Opens what can be opened, at the price of losing what was in the
  // damaged frames: for getting a damaged store back, not for everyday use.
  kSalvage,
};

// "strict", "tolerate-torn-tail", "salvage".
const char* RecoveryModeName(RecoveryMode mode);

// One piece of damage: what, where, how large.
struct Problem {
  enum class Kind { kTornTail, kCorruption, kForeignFile, kUnreadable };
  Kind kind = Kind::kCorruption;
  std::string file;
  uint64_t offset = 0;  // where the damage starts
  uint64_t bytes = 0;   // how many bytes it spans (skipped or cut off)
  std::string detail;   // what is wrong, human-readable
};

// "torn-tail", "corruption", "foreign-file", "unreadable".
const char* ProblemKindName(Problem::Kind kind);

// What Open found and did.
struct RecoveryReport {
  std::string snapshot_file;  // empty if none was used
  uint64_t snapshot_lsn = 0;
  uint64_t snapshot_sessions = 0;
  // True if the newest snapshot was unusable and the previous one was used.
  bool fell_back = false;
  std::string fallback_reason;
  uint64_t segments_read = 0;
  uint64_t records_replayed = 0;
  uint64_t bytes_replayed = 0;
  // Log bytes before the snapshot's LSN that were not read: the MANIFEST
  // says where the snapshot's last record is.
  uint64_t bytes_skipped = 0;
  // Whether the records after the snapshot were kept unparsed
  // (Options::lazy_recovery and lazy_replay_slack_bytes) or applied.
  bool lazy_replay = false;
  uint64_t ticks_committed = 0;
  uint64_t ticks_aborted = 0;  // left open by a crash; their entries dropped
  uint64_t torn_bytes_dropped = 0;
  std::string torn_file;  // where the torn tail was cut
  uint64_t torn_offset = 0;
  uint64_t last_lsn = 0;
  uint64_t sessions = 0;
  absl::Duration duration;
  // Where the time went: loading the snapshot, reading and applying the log
  // after it, and building the secondary indexes: after the snapshot when
  // the replay keeps records (lazy_replay; the replay then keeps them
  // current), else after the replay.
  absl::Duration snapshot_duration;
  absl::Duration replay_duration;
  absl::Duration index_duration;
  std::vector<Problem> problems;  // every damage found, also salvaged
  // Where Open put what it dropped before dropping it (a torn tail, a
  // segment whose create a crash interrupted, a snapshot that failed
  // verification), and what: empty if it dropped nothing. Open deletes
  // nothing else, except temporaries in the exact names it gives them.
  std::string backup_dir;
  std::vector<std::string> backed_up;  // file names, as in the backup

  // A few human-readable lines.
  std::string ToString() const;
};

}  // namespace walstate

#endif  // WALSTATE_RECOVERY_REPORT_H_
