// The gateway workload driver shared by //tools/demo and //tools/walstress:
// worker threads play sessions' identity events (IMMEDIATE creates, re-keys,
// deletes) and turns (BATCHED calibration, cost, warming, LTM text) against a
// Store<GatewaySession>, and a ticker thread records in the ack log which
// turns are known committed and calls Compact() now and then.
//
// Each session is driven by exactly one worker thread, so a session has at
// most one op in flight: that is what lets the oracle (oracle.h) tell an op
// lost by the engine from one cut short by the kill.
#ifndef WALSTATE_TOOLS_WORKLOAD_RUNNER_H_
#define WALSTATE_TOOLS_WORKLOAD_RUNNER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "tools/workload/ack_log.h"
#include "tools/workload/oracle.h"
#include "walstate/walstate.h"

namespace walstate {
namespace workload {

struct RunConfig {
  uint32_t sessions = 1000;
  int threads = 8;
  uint64_t seed = 1;
  // Stop after this long (InfiniteDuration: until killed).
  absl::Duration duration = absl::InfiniteDuration();
  // Mean time between two ops of one session (exponential).
  absl::Duration mean_op_interval = absl::Milliseconds(500);
  // Sessions that do not exist yet arrive spread over this.
  absl::Duration ramp = absl::Seconds(1);
  // Per op of an existing session: chance of a delete, of a re-key.
  double p_delete = 0.002;
  double p_rekey = 0.01;
  // Chance that a create or re-key carries a turn in the same Update call
  // (the engine splits it by tier).
  double p_combined = 0.5;
  // Mean time before a deleted session comes back.
  absl::Duration recreate_pause = absl::Seconds(1);
  // How often the ticker records committed turns.
  absl::Duration tick_record_interval = absl::Milliseconds(200);
  // Per ticker round: chance of calling Flush() itself rather than waiting
  // for the engine's background tick.
  double p_explicit_flush = 0.0;
  // An explicit Compact() about this often (zero: never).
  absl::Duration compact_interval = absl::ZeroDuration();
  // Close() the store at the end of `duration`.
  bool close_at_end = true;
};

struct RunCounters {
  std::atomic<uint64_t> immediate_acked{0};
  std::atomic<uint64_t> deletes_acked{0};
  std::atomic<uint64_t> turns{0};
  std::atomic<uint64_t> ticks_recorded{0};
  std::atomic<uint64_t> compactions{0};
};

// Runs the workload on `store` from the state `start` (one per session;
// all absent for a new store) until config.duration passes or an engine call
// fails. Returns the first failure.
absl::Status RunWorkload(const RunConfig& config, Store<GatewaySession>* store,
                         AckLogWriter* log, std::vector<SessionStart> start,
                         RunCounters* counters);

}  // namespace workload
}  // namespace walstate

#endif  // WALSTATE_TOOLS_WORKLOAD_RUNNER_H_
