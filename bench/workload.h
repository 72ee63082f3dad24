// The benchmark workload: the per-session state of an LLM gateway
// (proto/example/gateway.proto, ../shared/notes/use-case.md), generated
// deterministically from a seed, and the state every contestant must recover.
//
// A session is named by its index i. Its state is a function of
// (seed, i, version):
//  - version kIdentityOnly: only the identity fields (a session just created
//    by an IMMEDIATE identity write);
//  - version v >= 0: identity plus every batched field group; v counts the
//    "turn" updates applied after the initial load (v = 0). A turn rewrites
//    warmup, calibration, cost and the conversation TTL; every ltm_every-th
//    turn also re-renders the long-term-memory text.
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

namespace walstate {
namespace bench {

using example::GatewaySession;

// Top-level field groups of GatewaySession an update sets.
enum FieldMask : uint32_t {
  kIdentityFields = 1u << 0,  // fingerprint, header_session_id, header_name
  kTtlField = 1u << 1,        // resolved_conversation_ttl
  kWarmupField = 1u << 2,
  kCalibrationField = 1u << 3,
  kCostField = 1u << 4,
  kLtmField = 1u << 5,
  kTurnFields = kTtlField | kWarmupField | kCalibrationField | kCostField,
  kBatchedFields = kTurnFields | kLtmField,
  kAllFields = kIdentityFields | kBatchedFields,
};

// Names of the top-level fields in `mask`, as Store::Update takes them.
const std::vector<std::string>& FieldNames(uint32_t mask);

// Copies the top-level fields in `mask` from `from` into `to`, replacing what
// `to` held there (what a partial update means).
void ApplyFields(const GatewaySession& from, uint32_t mask, GatewaySession* to);

// Like ApplyFields, but moves the values out of `from`.
void MoveFields(GatewaySession* from, uint32_t mask, GatewaySession* to);

// Replaces in `to` every top-level field that is set in `from` (non-empty
// string, present message), moving the values out of `from`. This is how the
// peers and the floor apply a logged partial update: the workload never
// clears a field, so "set" and "listed" coincide.
void MoveSetFields(GatewaySession* from, GatewaySession* to);

struct WorkloadConfig {
  uint64_t seed = 42;
  // Bytes of rendered long-term-memory text per session.
  size_t ltm_cache_bytes = 48;
  size_t ltm_pin_bytes = 16;
  // Every this many turns the ltm text is re-rendered.
  uint32_t ltm_every = 20;

  // ~350 B serialized: the 10^6-session shape.
  static WorkloadConfig Small();
  // ~20 KB serialized: the 10^3-session shape.
  static WorkloadConfig Large();
};

inline constexpr int32_t kIdentityOnly = -1;
inline constexpr int32_t kAbsent = -2;

class Workload {
 public:
  explicit Workload(const WorkloadConfig& config) : config_(config) {}
  const WorkloadConfig& config() const { return config_; }

  // "ses_<8 hex index>_<12 hex hash>": unique, unordered across indexes.
  std::string SessionId(uint64_t index) const;
  // Inverse of SessionId; false if `id` is not one.
  static bool ParseSessionId(absl::string_view id, uint64_t* index);

  // Only the identity fields of session `index`.
  void Identity(uint64_t index, GatewaySession* out) const;
  // The batched fields a turn with `version` writes (kTurnFields, plus
  // kLtmField if LtmChanges(version)); version 0 writes all batched fields.
  uint32_t TurnMask(int32_t version) const;
  void Turn(uint64_t index, int32_t version, GatewaySession* out) const;
  // The full state of session `index` at `version` (see the file comment).
  void Expected(uint64_t index, int32_t version, GatewaySession* out) const;

 private:
  bool LtmChanges(int32_t version) const {
    return version == 0 || version % config_.ltm_every == 0;
  }
  WorkloadConfig config_;
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
