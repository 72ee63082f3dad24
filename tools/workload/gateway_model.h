// The values of the gateway workload (proto/example/gateway.proto), all
// derived deterministically from (session index, sequence or version), so
// that a checker can tell what a recovered session must hold from the ack log
// alone, without the ack log having to carry the values.
//
// Identity (IMMEDIATE): op `seq` of session `idx` gives its fingerprint (64
// hex chars, like the seed's SHA-256), header_session_id and header_name.
//
// Turns (BATCHED): turn `v` of session `idx` (v counts every turn of the
// session's life, across deletes) always sets calibration and cost, and, on
// turns picked by a hash, the LTM text blocks (KBs) and the warming state.
// cost.conversation_turns holds v: it is the version stamp the checker reads.
// A "full" turn sets every batched group; the first turn after a restart is
// full, so that turns lost in a crash never leave holes in what follows.
#ifndef WALSTATE_TOOLS_WORKLOAD_GATEWAY_MODEL_H_
#define WALSTATE_TOOLS_WORKLOAD_GATEWAY_MODEL_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "proto/example/gateway.pb.h"

namespace walstate {
namespace workload {

using example::GatewaySession;

// Five projects, like the local gateway of use-case.md.
constexpr int kProjects = 5;

// "proj3/sess-000042": index 42 (projects take indexes round robin).
std::string SessionId(uint32_t idx);
// False if `id` is not a SessionId() of an index below `sessions`.
bool ParseSessionId(absl::string_view id, uint32_t sessions, uint32_t* idx);

// A well-mixed 64-bit value of (a, b, c): the workload's only randomness that
// a checker has to reproduce.
uint64_t Mix(uint64_t a, uint64_t b, uint64_t c);

struct Identity {
  std::string fingerprint;
  std::string header_session_id;
  std::string header_name;
};

// The identity a session gets when it is created by op `seq`.
Identity CreateIdentity(uint32_t idx, uint64_t seq);
// A later identity event (op `seq`): a new fingerprint (the first user message
// was edited) or, sometimes, another client header. Sets `*fields` to the
// fields it changes.
Identity RekeyIdentity(const Identity& current, uint32_t idx, uint64_t seq,
                       std::vector<std::string>* fields);
const std::vector<std::string>& IdentityFields();
void SetIdentity(const Identity& id, GatewaySession* values);
Identity IdentityOf(const GatewaySession& state);
// What the ack log records for an identity (the values are too long).
uint64_t IdentityHash(const Identity& id);

// Turn `v` of session `idx`: the BATCHED values and the fields it lists.
void TurnValues(uint32_t idx, uint64_t v, bool full, GatewaySession* values,
                std::vector<std::string>* fields);

// The batched fields of session `idx` after turn `v` of the incarnation that
// began after version `inc_start` (v == 0 or v <= inc_start: none yet).
// `is_full(u)` says whether turn u was a full turn.
GatewaySession ExpectedBatched(uint32_t idx, uint64_t inc_start, uint64_t v,
                               const std::function<bool(uint64_t)>& is_full);
// `state` without its IMMEDIATE identity fields.
GatewaySession BatchedPart(const GatewaySession& state);
// The version stamp (cost.conversation_turns); 0 if no turn is recorded.
uint64_t BatchedVersion(const GatewaySession& state);

}  // namespace workload
}  // namespace walstate

#endif  // WALSTATE_TOOLS_WORKLOAD_GATEWAY_MODEL_H_
