// Reading a data directory the way walctl's subcommands need it: every record
// of the log in LSN order with every problem reported where it occurs, and
// single files (snapshots, MANIFEST) likewise.
//
// The tools read in salvage mode so that one damaged frame does not hide
// everything after it, and then classify what they found the way default
// recovery (tolerate torn tail) would: a torn tail only is exit 1, anything
// else is exit 2.
#ifndef WALSTATE_TOOLS_WALCTL_SCAN_H_
#define WALSTATE_TOOLS_WALCTL_SCAN_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/log/reader.h"
#include "tools/walctl/common.h"
#include "walstate/file_system.h"

namespace walstate {
namespace walctl {

// A problem as walctl reports it. Beyond the reader's damage classes the
// tools add their own checks (payloads, snapshots, manifest).
struct Finding {
  enum class Severity {
    kWarning,   // worth knowing, recovery is unaffected (exit code unchanged)
    kTornTail,  // default recovery cuts it off (exit 1)
    kDamage,    // default recovery refuses it, or it cannot be read (exit 2)
  };
  Severity severity = Severity::kDamage;
  std::string kind;  // "torn-tail", "corruption", "undecodable", ...
  std::string file;  // name relative to the data directory
  uint64_t offset = 0;
  uint64_t bytes = 0;
  std::string detail;
};

Finding FromProblem(const log::Problem& problem);

// The exit code a list of findings calls for (0, 1 or 2).
int ExitCodeFor(const std::vector<Finding>& findings);

// "file offset N" (or just "file" for a whole-file problem at offset 0 with no
// span) followed by the detail: one line, no severity.
std::string DescribeFinding(const Finding& f);
// {"severity":..,"kind":..,"file":..,"offset":..,"bytes":..,"detail":..}
std::string FindingJson(const Finding& f);

// A torn tail is what a crash of a working store leaves. When nothing else in
// the directory is readable (no record, no usable snapshot), an empty or
// zero-filled segment header is instead input walctl cannot read: such
// findings become damage (exit 2).
void TornWithNothingReadable(bool anything_readable,
                             std::vector<Finding>* findings);

struct LogScanResult {
  std::vector<std::string> segments;  // names, in read order
  uint64_t records = 0;
  uint64_t first_lsn = 0;
  uint64_t last_lsn = 0;
  uint64_t bytes = 0;  // sizes of the segments
  // End of the last record read before the first problem: what is known
  // good. good_file is empty when no record precedes the first problem.
  std::string good_file;
  uint64_t good_offset = 0;
  uint64_t good_lsn = 0;
  // The reader's own last good position (where a torn tail is cut).
  std::string cut_file;
  uint64_t cut_offset = 0;
  uint64_t torn_bytes = 0;
  std::vector<Finding> findings;  // in the order found
  // The error that stopped reading early, if any (also in findings).
  absl::Status status;
};

struct LogScanCallbacks {
  // Called for each record in LSN order; `file` is the name of its segment.
  std::function<void(const log::Record& record)> on_record;
  // Called for each problem as soon as it is known, before later records.
  std::function<void(const Finding& finding)> on_finding;
};

// Reads every segment of `dir` with the log reader in `mode` (salvage by
// default so that all damage is seen). `progress` may be null. Returns an
// error only if the reader cannot start at all (then nothing was called).
absl::StatusOr<LogScanResult> ScanLog(
    FileSystem* fs, const std::string& dir, const LogScanCallbacks& callbacks,
    Progress* progress, log::RecoveryMode mode = log::RecoveryMode::kSalvage);

struct FileScanResult {
  HeaderInfo header;
  uint64_t records = 0;
  std::vector<Finding> findings;
  bool header_ok = false;
};

// Reads one non-log file (snapshot or MANIFEST) in salvage mode. Damage in it
// is never a torn tail: such files are published by rename once complete.
FileScanResult ScanFile(
    FileSystem* fs, const std::string& dir, const std::string& name,
    const std::function<void(const log::Record&)>& on_record);

}  // namespace walctl
}  // namespace walstate

#endif  // WALSTATE_TOOLS_WALCTL_SCAN_H_
