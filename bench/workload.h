// The benchmark workload: the sessions of the gateway model
// (tools/workload/gateway_model.h), generated deterministically from a seed,
// and the state every contestant must recover.
//
// A session is named by its index i. Its state is a function of
// (seed, i, version):
//  - version kIdentityOnly: only the identity fields (a session just created
//    by an IMMEDIATE identity write);
//  - version v >= 0: identity plus every batched field group; v counts the
//    "turn" updates applied after the initial load (v = 0). A turn rewrites
//    warmup, calibration, cost and the conversation TTL; every ltm.every-th
//    turn (20th) also re-renders the long-term-memory text.
// So the expected state of a whole store is one small integer per session.
#ifndef WALSTATE_BENCH_WORKLOAD_H_
#define WALSTATE_BENCH_WORKLOAD_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "proto/example/gateway.pb.h"
#include "tools/workload/gateway_model.h"

namespace walstate {
namespace bench {

using example::GatewaySession;

// The field groups and the partial-update helpers the contestants use.
using workload::ApplyFields;
using workload::FieldMask;
using workload::FieldNames;
using workload::kAllFields;
using workload::kBatchedFields;
using workload::kCalibrationField;
using workload::kCostField;
using workload::kIdentityFields;
using workload::kLtmField;
using workload::kTtlField;
using workload::kTurnFields;
using workload::kWarmupField;
using workload::MoveFields;
using workload::MoveSetFields;

// The shape of the sessions: ModelConfig::Small() or ::Large().
using WorkloadConfig = workload::ModelConfig;

inline constexpr int32_t kIdentityOnly = -1;
inline constexpr int32_t kAbsent = -2;

// The gateway model seen the bench's way: a session is created once (identity
// op 0), loaded with version 0 (a full turn) and then turned 1, 2, ...
class Workload {
 public:
  explicit Workload(const WorkloadConfig& config) : model_(config) {}
  const WorkloadConfig& config() const { return model_.config(); }
  const workload::GatewayModel& model() const { return model_; }

  // "ses_<8 hex index>_<12 hex hash>": unique, unordered across indexes.
  std::string SessionId(uint64_t index) const {
    return model_.SessionId(index);
  }
  // Only the identity fields of session `index`.
  void Identity(uint64_t index, GatewaySession* out) const;
  // The batched fields a turn with `version` writes (kTurnFields, plus
  // kLtmField every ltm.every-th version); version 0 writes all batched
  // fields. The bench shapes' cadences are periodic, so the mask does not
  // depend on the session.
  uint32_t TurnMask(int32_t version) const {
    return model_.TurnMask(0, static_cast<uint64_t>(version), version == 0);
  }
  void Turn(uint64_t index, int32_t version, GatewaySession* out) const {
    model_.Turn(index, static_cast<uint64_t>(version), TurnMask(version), out);
  }
  // The full state of session `index` at `version` (see the file comment).
  void Expected(uint64_t index, int32_t version, GatewaySession* out) const;

 private:
  workload::GatewayModel model_;
};

// What state the store must hold: a version per session index (or kAbsent).
class ExpectedState {
 public:
  void Resize(size_t n) { versions_.resize(n, kAbsent); }
  size_t capacity() const { return versions_.size(); }
  void Set(uint64_t index, int32_t version) {
    if (index >= versions_.size()) versions_.resize(index + 1, kAbsent);
    versions_[index] = version;
  }
  int32_t Get(uint64_t index) const {
    return index < versions_.size() ? versions_[index] : kAbsent;
  }
  size_t LiveCount() const;

 private:
  std::vector<int32_t> versions_;
};

// Visits every recovered session of a contestant.
using SessionVisitor =
    std::function<void(absl::string_view id, const GatewaySession& state)>;
using ForEachFn = std::function<void(const SessionVisitor&)>;

// Checks that `for_each` visits exactly the live sessions of `expected`, each
// with the expected state. The error names the first mismatch.
absl::Status Verify(const Workload& workload, const ExpectedState& expected,
                    const ForEachFn& for_each);

}  // namespace bench
}  // namespace walstate

#endif  // WALSTATE_BENCH_WORKLOAD_H_
