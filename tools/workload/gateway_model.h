// The gateway workload model: the per-session state of an LLM gateway
// (proto/example/gateway.proto, docs/use-case.md) as a pure
// function of (seed, session index, op sequence or turn version), so that a
// checker can tell what a recovered session must hold from a few integers,
// without anyone having to keep the values. The benchmarks (bench/workload.h)
// and the crash tools (//tools/demo, //tools/walstress, via oracle.h and
// runner.h) both draw their sessions from here; they differ only in the
// ModelConfig they pass (text sizes, how often the optional groups change).
//
// Session index `idx`:
//  - SessionId(idx): "ses_<8 hex idx>_<12 hex hash>", unique, unordered
//    across indexes (so no store is handed its keys in order).
//  - Identity (IMMEDIATE): identity op `seq` (0 for a session that is only
//    ever created once, as in the bench) gives a fingerprint (64 hex chars,
//    like the gateway's SHA-256), a UUID-shaped header_session_id (64 random
//    bits: unique in practice, as the UNIQUE index wants) and a header_name.
//  - Turn `v` (BATCHED): every turn sets calibration and cost; warmup with
//    resolved_conversation_ttl, and ltm (KBs of rendered text), only on the
//    turns their Cadence picks, or on a "full" turn. Each group's values
//    depend on (idx, v) only, never on which other groups the turn sets, so
//    a group holds the values of the newest turn that set it.
//    cost.conversation_turns = v + 1 stamps the turn (TurnVersion).
#ifndef WALSTATE_TOOLS_WORKLOAD_GATEWAY_MODEL_H_
#define WALSTATE_TOOLS_WORKLOAD_GATEWAY_MODEL_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "proto/example/gateway.pb.h"

namespace walstate {
namespace workload {

using example::GatewaySession;

// Top-level field groups of GatewaySession an update sets.
enum FieldMask : uint32_t {
  kFingerprintField = 1u << 0,
  kHeaderFields = 1u << 1,  // header_session_id, header_name: change together
  kTtlField = 1u << 2,      // resolved_conversation_ttl, set with warmup
  kWarmupField = 1u << 3,
  kCalibrationField = 1u << 4,
  kCostField = 1u << 5,
  kLtmField = 1u << 6,
  kIdentityFields = kFingerprintField | kHeaderFields,
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
// string, present message), moving the values out of `from`. The model never
// clears a field, so "set" and "listed" coincide.
void MoveSetFields(GatewaySession* from, GatewaySession* to);

// A well-mixed 64-bit value of (a, b, c): the model's only randomness, and
// what its users seed their own random choices with.
uint64_t Mix(uint64_t a, uint64_t b, uint64_t c);

// Which turns set an optional field group: those with v % every == 0, or, if
// `hashed`, one turn in `every` picked by a hash of (session, v).
struct Cadence {
  uint32_t every = 1;
  bool hashed = false;
};

struct ModelConfig {
  uint64_t seed = 42;
  // Bytes of rendered long-term-memory text a turn that sets ltm writes:
  // the base plus a per-turn amount below the spread.
  size_t ltm_cache_bytes = 48;
  size_t ltm_cache_spread = 0;
  size_t ltm_pin_bytes = 16;
  size_t ltm_pin_spread = 0;
  Cadence ltm{20, false};
  Cadence warmup{1, false};  // warmup and resolved_conversation_ttl

  // The benchmark shapes: every turn rewrites warmup, calibration, cost and
  // the TTL, every 20th also the ltm text.
  // ~350 B serialized: the 10^6-session shape.
  static ModelConfig Small();
  // ~20 KB serialized: the 10^3-session shape.
  static ModelConfig Large();
  // The crash tools' shape: LTM blocks of 1-8 KB on one turn in six, warming
  // on one in four, picked by hash so that sessions drift apart.
  static ModelConfig Stress();
};

struct Identity {
  std::string fingerprint;
  std::string header_session_id;
  std::string header_name;
};

void SetIdentity(const Identity& id, GatewaySession* values);
Identity IdentityOf(const GatewaySession& state);
// A digest of an identity (the crash tools' ack log records it, not the
// values, which are too long).
uint64_t IdentityHash(const Identity& id);

// The version of the newest turn `state` holds; false if it holds none.
bool TurnVersion(const GatewaySession& state, uint64_t* v);

class GatewayModel {
 public:
  explicit GatewayModel(const ModelConfig& config) : config_(config) {}
  const ModelConfig& config() const { return config_; }

  std::string SessionId(uint64_t idx) const;
  // The index `id` names; false if `id` is no SessionId() of this model.
  bool ParseSessionId(absl::string_view id, uint64_t* idx) const;

  // The identity session `idx` gets from identity op `seq`.
  Identity CreateIdentity(uint64_t idx, uint64_t seq) const;
  // A later identity op `seq`: a new fingerprint (the first user message was
  // edited) or, one time in five, another client header. Sets `*mask` to the
  // fields it changes.
  Identity RekeyIdentity(const Identity& current, uint64_t idx, uint64_t seq,
                         uint32_t* mask) const;

  // The fields turn `v` of session `idx` sets: kBatchedFields if `full`, else
  // calibration and cost plus the groups whose Cadence picks v.
  uint32_t TurnMask(uint64_t idx, uint64_t v, bool full) const;
  // Sets the groups of turn `v` in `mask` to their values; leaves the rest.
  void Turn(uint64_t idx, uint64_t v, uint32_t mask, GatewaySession* out) const;

  // Sets in `out` the batched fields session `idx` holds after turns
  // first..v (first <= v) were applied in order; `is_full(u)` says whether
  // turn u was a full one. A group no turn in the range set stays unset.
  void Batched(uint64_t idx, uint64_t first, uint64_t v,
               const std::function<bool(uint64_t)>& is_full,
               GatewaySession* out) const;

 private:
  bool Picks(const Cadence& c, uint64_t idx, uint64_t v, uint64_t salt) const;
  size_t Size(size_t base, size_t spread, uint64_t idx, uint64_t v,
              uint64_t salt) const;

  ModelConfig config_;
};

}  // namespace workload
}  // namespace walstate

#endif  // WALSTATE_TOOLS_WORKLOAD_GATEWAY_MODEL_H_
