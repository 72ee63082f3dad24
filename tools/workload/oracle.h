// The crash oracle: replays an ack log (ack_log.h) into a per-session model
// of what may be in the store, and checks a recovered store against it:
//
//  - IMMEDIATE: every session holds the identity of its last acknowledged op
//    (update or delete), or that of the one op still pending after it (each
//    session is driven by one thread, so at most one is in flight);
//  - deletes: an acknowledged delete is not undone, nothing comes back;
//  - BATCHED: the version stamp is no older than the newest tick recorded as
//    committed, no newer than the newest turn asked for, within the current
//    incarnation, never one lost before; and every batched field equals what
//    that turn (and the turns before it) set: no torn or half-applied state;
//  - secondary indexes find every session by its identity.
#ifndef WALSTATE_TOOLS_WORKLOAD_ORACLE_H_
#define WALSTATE_TOOLS_WORKLOAD_ORACLE_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "tools/workload/gateway_model.h"
#include "walstate/walstate.h"

namespace walstate {
namespace workload {

// The model every ack log's values come from: ModelConfig::Stress(), with its
// fixed seed (a run's --seed drives its random choices, not the values), so
// that the log need only say which ops and turns happened.
const GatewayModel& AckLogModel();

struct IdState {
  bool present = false;
  uint64_t idhash = 0;
  uint64_t inc_start = 0;  // turns after this version belong to it
  uint64_t seq = 0;        // the op that made it (0: none)
};

struct SessionModel {
  IdState acked;
  bool has_pending = false;
  IdState pending;
  int64_t pending_ms = 0;
  uint64_t max_seq = 0;
  uint64_t max_ver = 0;        // newest turn asked for
  uint64_t committed_ver = 0;  // newest turn known committed
  std::vector<uint64_t> full_vers;
  // Turns lost in an earlier crash, (lo, hi]: they must never reappear.
  std::vector<std::pair<uint64_t, uint64_t>> dead;
  // Turns not known committed yet, with the time they were asked for.
  std::vector<std::pair<uint64_t, int64_t>> recent;
};

// Where a run resumes a session from (after a successful check).
struct SessionStart {
  bool present = false;
  Identity identity;
  uint64_t inc_start = 0;
  uint64_t next_seq = 1;
  uint64_t next_ver = 1;
  bool first_turn_full = false;
};

struct CheckResult {
  uint64_t acked = 0;  // acknowledged IMMEDIATE updates and deletes
  uint64_t lost = 0;   // sessions whose acknowledged op is not what recovered
  uint64_t batched_bad = 0;  // BATCHED state too old, invented or torn
  uint64_t other_bad = 0;    // index or unknown-session problems
  uint64_t in_flight = 0;    // ops pending when the run stopped
  uint64_t in_flight_applied = 0;
  uint64_t sessions_recovered = 0;
  uint64_t batched_turns = 0;  // turns asked for in the log
  uint64_t batched_lost = 0;   // turns newer than what recovered
  int64_t oldest_lost_ms = 0;  // when the oldest of them was asked for
  int64_t newest_lost_ms = 0;
  int64_t last_commit_capture_ms = 0;  // turns before this are committed
  int64_t last_commit_ms = 0;          // when that was learned
  std::vector<std::string> problems;   // one line each
  bool ok() const { return problems.empty(); }
};

class Oracle {
 public:
  // Reads and replays the ack log. InvalidArgument if it is malformed.
  absl::Status Load(const std::string& path);

  uint32_t sessions() const { return sessions_; }
  uint64_t seed() const { return seed_; }
  int runs() const { return runs_; }
  int cut_lines() const { return cut_lines_; }
  uint64_t acked() const { return acked_; }
  uint64_t deletes_acked() const { return deletes_acked_; }
  uint64_t turns() const { return turns_; }
  uint64_t ticks_recorded() const { return ticks_; }
  uint64_t compactions() const { return compactions_; }
  const std::vector<SessionModel>& models() const { return models_; }

  // Checks `store`, freshly recovered, against the model.
  CheckResult Check(const Store<GatewaySession>& store) const;

  // Where each session stands in `store` (call after a clean Check), and the
  // S lines that pin it in the ack log before a new run starts.
  std::vector<SessionStart> Resolve(const Store<GatewaySession>& store,
                                    std::vector<std::string>* s_lines) const;

 private:
  absl::Status ApplyLine(const std::string& line, int line_no);

  uint32_t sessions_ = 0;
  uint64_t seed_ = 0;
  int runs_ = 0;
  int cut_lines_ = 0;
  uint64_t acked_ = 0;
  uint64_t deletes_acked_ = 0;
  uint64_t turns_ = 0;
  uint64_t ticks_ = 0;
  uint64_t compactions_ = 0;
  int64_t last_capture_ms_ = 0;
  int64_t last_commit_ms_ = 0;
  std::vector<SessionModel> models_;
};

}  // namespace workload
}  // namespace walstate

#endif  // WALSTATE_TOOLS_WORKLOAD_ORACLE_H_
