// A data directory written by the real engine with a known history, for
// walctl's golden and equivalence tests.
#ifndef WALSTATE_TESTS_WALCTL_ENGINE_HISTORY_H_
#define WALSTATE_TESTS_WALCTL_ENGINE_HISTORY_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "proto/example/gateway.pb.h"

namespace walstate {
namespace walctl_test {

// Every session's state right after the record with LSN `lsn`.
struct Checkpoint {
  uint64_t lsn = 0;
  std::map<std::string, example::GatewaySession> sessions;
};

// Writes the known history into `dir` (must not hold a store yet):
//   s1 identity (immediate), s2 fingerprint (immediate),
//   s1 calibration + ttl (batched tick), s2 cost (batched tick), delete s2,
//   compaction (snapshot holding s1 only),
//   s1 header_name (immediate), s3 warmup (batched tick),
//   s3 fingerprint (immediate).
// Each tick holds one session so that record order is deterministic. Appends
// the state after every step to `checkpoints` (if not null).
absl::Status WriteKnownHistory(const std::string& dir,
                               std::vector<Checkpoint>* checkpoints);

// A longer history with small segments and two compactions, so that the log
// before the previous snapshot is deleted: `first_kept_lsn` receives the LSN
// the retained history starts at.
absl::Status WriteCompactedHistory(const std::string& dir,
                                   std::vector<Checkpoint>* checkpoints,
                                   uint64_t* first_kept_lsn);

}  // namespace walctl_test
}  // namespace walstate

#endif  // WALSTATE_TESTS_WALCTL_ENGINE_HISTORY_H_
