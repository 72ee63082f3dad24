#include "tools/workload/gateway_model.h"

#include <xxhash.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace walstate {
namespace workload {
namespace {

// 2024-01-01T00:00:00Z: the turn times are synthetic (base + v seconds) so
// that they are reproducible, not wall-clock times.
constexpr int64_t kBaseMs = 1704067200000;

constexpr const char* kHeaderNames[] = {"x-session-id", "x-opencode-session",
                                        "x-claude-code-session-id"};

constexpr const char* kWords[] = {
    "the",      "user",     "prefers", "tests",   "before",  "refactor",
    "module",   "gateway",  "cache",   "prompt",  "token",   "budget",
    "session",  "retry",    "with",    "backoff", "layer",   "context",
    "summary",  "decision", "keep",    "compact", "history", "tool",
    "call",     "schema",   "proto",   "field",   "durable", "flush",
    "snapshot", "replay",   "index",   "header",  "project", "memory",
    "pinned",   "note",     "avoid",   "rewrite", "branch",  "commit",
};

// Pseudo-prose of about `bytes` bytes, seeded by `h`: LTM blocks are rendered
// text, and random words compress about as badly as real notes.
std::string Text(uint64_t h, size_t bytes) {
  std::string out;
  out.reserve(bytes + 16);
  uint64_t x = h | 1;
  while (out.size() < bytes) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out += kWords[x % (sizeof(kWords) / sizeof(kWords[0]))];
    out += (x >> 32) % 11 == 0 ? ". " : " ";
  }
  return out;
}

// Which optional groups turn v sets.
bool SetsLtm(uint32_t idx, uint64_t v) { return Mix(idx, v, 11) % 6 == 0; }
bool SetsWarmup(uint32_t idx, uint64_t v) { return Mix(idx, v, 12) % 4 == 0; }

void SetCalibration(uint32_t idx, uint64_t v, GatewaySession* m) {
  const uint64_t h = Mix(idx, v, 21);
  auto* c = m->mutable_calibration();
  c->set_dynamic_context_cap(80000 + static_cast<double>(h % 120000));
  // -1 means "no data yet", as in the seed.
  c->set_bust_rate_ema(
      h % 7 == 0 ? -1.0 : static_cast<double>((h >> 8) % 1000) / 1000);
  c->set_inter_bust_interval_ema(static_cast<double>((h >> 20) % 600000) +
                                 0.25);
  c->set_last_layer(static_cast<int32_t>((h >> 40) % 5));
  c->set_last_known_input(static_cast<int64_t>((h >> 12) % 180000));
  c->set_last_turn_at(kBaseMs + static_cast<int64_t>(v) * 1000);
  c->set_last_bust_at(kBaseMs + static_cast<int64_t>(v) * 1000 -
                      static_cast<int64_t>((h >> 30) % 60000));
}

void SetCost(uint32_t idx, uint64_t v, GatewaySession* m) {
  const uint64_t h = Mix(idx, v, 22);
  const int64_t n = static_cast<int64_t>(v);
  auto* c = m->mutable_cost();
  c->set_conversation_cost(0.0137 * n + static_cast<double>(h % 100) / 1e4);
  c->set_worker_cost(0.0011 * n);
  c->set_conversation_turns(n);  // the version stamp
  c->set_cache_read_tokens(n * 1200 + static_cast<int64_t>(h % 1000));
  c->set_cache_write_tokens(n * 300);
  c->set_warmup_savings(0.002 * n);
  c->set_warmup_hits(n / 3);
  c->set_ttl_savings(0.001 * n);
  c->set_ttl_hits(n / 5);
  c->set_batch_savings(0.0005 * n);
  c->set_avoided_compactions(n / 40);
  c->set_avoided_compaction_cost(0.01 * (n / 40));
}

void SetLtm(uint32_t idx, uint64_t v, GatewaySession* m) {
  const uint64_t h = Mix(idx, v, 23);
  auto* l = m->mutable_ltm();
  // KBs of rendered text (use-case.md: KBs to tens of KBs; kept at the low
  // end so that thousands of sessions fit a short run).
  l->set_cache_text(Text(h, 1024 + h % 7168));
  l->set_pin_text(Text(h >> 1, 128 + (h >> 16) % 768));
  l->set_cache_tokens(static_cast<int32_t>(l->cache_text().size() / 4));
  l->set_pin_tokens(static_cast<int32_t>(l->pin_text().size() / 4));
  l->set_message_count(static_cast<int32_t>(v * 2));
  l->set_turns_since_curation(static_cast<int32_t>((h >> 24) % 20));
}

void SetWarmup(uint32_t idx, uint64_t v, GatewaySession* m) {
  const uint64_t h = Mix(idx, v, 24);
  m->set_resolved_conversation_ttl(h % 3 == 0 ? "1h" : "5m");
  auto* w = m->mutable_warmup();
  w->set_last_warmup_at_ms(kBaseMs + static_cast<int64_t>(v) * 1000 - 500);
  w->set_warmup_count(static_cast<int32_t>(v / 2));
  w->set_warmup_hits(static_cast<int32_t>(v / 3));
  w->set_disabled((h >> 8) % 17 == 0);
  w->set_force_keep_warm((h >> 9) % 5 == 0);
}

}  // namespace

std::string SessionId(uint32_t idx) {
  return absl::StrFormat("proj%d/sess-%06u", idx % kProjects, idx);
}

bool ParseSessionId(absl::string_view id, uint32_t sessions, uint32_t* idx) {
  const size_t dash = id.rfind("/sess-");
  if (dash == absl::string_view::npos) return false;
  uint32_t n = 0;
  if (!absl::SimpleAtoi(id.substr(dash + 6), &n) || n >= sessions) return false;
  if (SessionId(n) != id) return false;
  *idx = n;
  return true;
}

uint64_t Mix(uint64_t a, uint64_t b, uint64_t c) {
  // splitmix64 over a combination: cheap and well mixed.
  uint64_t z = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull) ^
               (c * 0xD1B54A32D192ED03ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

Identity CreateIdentity(uint32_t idx, uint64_t seq) {
  Identity id;
  for (int k = 0; k < 4; ++k) {
    absl::StrAppend(&id.fingerprint,
                    absl::Hex(Mix(idx, seq, 100 + k), absl::kZeroPad16));
  }
  // Unique across sessions (the index is UNIQUE): it names the index.
  id.header_session_id = absl::StrFormat("hs-%06u-%llu", idx, seq);
  id.header_name = kHeaderNames[Mix(idx, seq, 3) % 3];
  return id;
}

Identity RekeyIdentity(const Identity& current, uint32_t idx, uint64_t seq,
                       std::vector<std::string>* fields) {
  Identity next = current;
  const Identity fresh = CreateIdentity(idx, seq);
  fields->clear();
  if (Mix(idx, seq, 4) % 5 == 0) {
    // The client switched header: both header fields change together.
    next.header_session_id = fresh.header_session_id;
    next.header_name = fresh.header_name;
    fields->push_back("header_session_id");
    fields->push_back("header_name");
  } else {
    next.fingerprint = fresh.fingerprint;
    fields->push_back("fingerprint");
  }
  return next;
}

const std::vector<std::string>& IdentityFields() {
  static const std::vector<std::string>* fields = new std::vector<std::string>{
      "fingerprint", "header_session_id", "header_name"};
  return *fields;
}

void SetIdentity(const Identity& id, GatewaySession* values) {
  values->set_fingerprint(id.fingerprint);
  values->set_header_session_id(id.header_session_id);
  values->set_header_name(id.header_name);
}

Identity IdentityOf(const GatewaySession& state) {
  return Identity{state.fingerprint(), state.header_session_id(),
                  state.header_name()};
}

uint64_t IdentityHash(const Identity& id) {
  std::string all = absl::StrCat(id.fingerprint, "\n", id.header_session_id,
                                 "\n", id.header_name);
  return XXH64(all.data(), all.size(), 0);
}

void TurnValues(uint32_t idx, uint64_t v, bool full, GatewaySession* values,
                std::vector<std::string>* fields) {
  SetCalibration(idx, v, values);
  SetCost(idx, v, values);
  fields->push_back("calibration");
  fields->push_back("cost");
  if (full || SetsLtm(idx, v)) {
    SetLtm(idx, v, values);
    fields->push_back("ltm");
  }
  if (full || SetsWarmup(idx, v)) {
    SetWarmup(idx, v, values);
    fields->push_back("warmup");
    fields->push_back("resolved_conversation_ttl");
  }
}

GatewaySession ExpectedBatched(uint32_t idx, uint64_t inc_start, uint64_t v,
                               const std::function<bool(uint64_t)>& is_full) {
  GatewaySession m;
  if (v == 0 || v <= inc_start) return m;
  SetCalibration(idx, v, &m);
  SetCost(idx, v, &m);
  // Each optional group holds the value of the latest turn that set it.
  bool ltm = false, warmup = false;
  for (uint64_t u = v; u > inc_start && !(ltm && warmup); --u) {
    const bool full = is_full(u);
    if (!ltm && (full || SetsLtm(idx, u))) {
      SetLtm(idx, u, &m);
      ltm = true;
    }
    if (!warmup && (full || SetsWarmup(idx, u))) {
      SetWarmup(idx, u, &m);
      warmup = true;
    }
  }
  return m;
}

GatewaySession BatchedPart(const GatewaySession& state) {
  GatewaySession m = state;
  m.clear_fingerprint();
  m.clear_header_session_id();
  m.clear_header_name();
  return m;
}

uint64_t BatchedVersion(const GatewaySession& state) {
  return state.has_cost()
             ? static_cast<uint64_t>(state.cost().conversation_turns())
             : 0;
}

}  // namespace workload
}  // namespace walstate
