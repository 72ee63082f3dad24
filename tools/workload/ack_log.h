// The ack log: the workload's record, kept OUTSIDE the data directory, of
// what it asked the engine to do and what the engine acknowledged. It is the
// oracle a crash check compares the recovered directory with.
//
// One line per event, fields separated by spaces:
//   H walstate-acklog 1 <sessions> <seed>     first line
//   R <run> <ms> <pid>                        a run started (after its S lines)
//   S <idx> <present> <idhash> <inc_start> <ver> <full_ver>
//                                             state resolved at a run's start
//   I <idx> <seq> <idhash> <ms>               IMMEDIATE update pending
//   D <idx> <seq> <inc_start> <ms>            delete pending
//   A <idx> <seq> <ms>                        the pending op returned OK
//   b <idx> <ver> <ms>                        BATCHED turn pending
//   T <ms> <capture_ms> <F|P> <idx>:<ver>...  a tick known committed covers
//                                             these turns (F: our Flush(),
//                                             P: a background tick, polled)
//   C <ms>                                    a Compact() returned OK
//   X <ms> <text>                             the run ended (clean or error)
// <ms> are Unix milliseconds; <idhash> is IdentityHash() in hex.
//
// Pending lines are written before the engine call and acked lines after it
// returns, each with one write(2) on an O_APPEND descriptor: a SIGKILL can
// only lose (or cut) the line being written, and the page cache keeps the
// rest, so no fsync is needed for kill tests.
#ifndef WALSTATE_TOOLS_WORKLOAD_ACK_LOG_H_
#define WALSTATE_TOOLS_WORKLOAD_ACK_LOG_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace walstate {
namespace workload {

class AckLogWriter {
 public:
  // Opens `path` for appending, creating it if missing. A line cut short by
  // a kill is removed first, so that the next line does not run into it.
  static absl::StatusOr<std::unique_ptr<AckLogWriter>> Open(
      const std::string& path);
  ~AckLogWriter();

  // Appends `line` and a newline with one write(2). Thread-safe.
  absl::Status Append(absl::string_view line);
  absl::Status Sync();
  const std::string& path() const { return path_; }

 private:
  AckLogWriter(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  const std::string path_;
  const int fd_;
};

// The complete lines of the ack log at `path` (a cut last line is dropped and
// counted in `*cut_lines`).
absl::StatusOr<std::vector<std::string>> ReadAckLog(const std::string& path,
                                                    int* cut_lines);

// Unix milliseconds now.
int64_t NowMs();

}  // namespace workload
}  // namespace walstate

#endif  // WALSTATE_TOOLS_WORKLOAD_ACK_LOG_H_
