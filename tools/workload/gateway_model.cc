#include "tools/workload/gateway_model.h"

#include <xxhash.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace walstate {
namespace workload {
namespace {

// SplitMix64: a fast, good-enough generator; the whole model derives from it
// so that every run (and every bench contestant) sees the same bytes.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t Next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double Unit() { return (Next() >> 11) * (1.0 / 9007199254740992.0); }

 private:
  uint64_t s_;
};

// The third argument of Mix(seed, idx, tag) names what a value is for:
//   1: the session id's hash;
//   2, 3, 4 (| seq << 32): identity op seq's fingerprint, header id, re-key
//     choice;
//   11, 12, 13, 14 (| v << 32): whether turn v sets ltm, warmup; the spread
//     of its cache and pin text sizes;
//   1000 + v: turn v's warmup, calibration and cost values (one stream);
//   5000 + v, 9000 + v: turn v's cache and pin text.
// The bench's digests (bench/workload_test.cc) pin the ones it uses.
uint64_t Tag(uint64_t tag, uint64_t n) { return tag | n << 32; }

constexpr int64_t kBaseMillis = 1735689600000;  // 2025-01-01

const char* const kHeaderNames[] = {
    "x-opencode-session", "x-claude-code-session-id", "x-session-affinity"};

const char* const kWords[] = {
    "the",      "session",  "user",     "asked",    "to",       "refactor",
    "module",   "tests",    "failing",  "because",  "cache",    "ttl",
    "context",  "window",   "tokens",   "agent",    "tool",     "call",
    "returned", "error",    "fixed",    "by",       "adding",   "a",
    "check",    "for",      "empty",    "input",    "pinned",   "memory",
    "project",  "uses",     "bazel",    "and",      "protobuf", "summary",
    "of",       "previous", "turns",    "decision", "keep",     "api",
    "stable",   "rename",   "function", "in",       "file",     "src",
    "handler",  "gateway",  "provider", "retry",    "budget",   "exceeded",
    "compact",  "history",  "note",     "prefer",   "small",    "diffs",
    "review",   "done",     "next",     "step"};
constexpr size_t kNumWords = sizeof(kWords) / sizeof(kWords[0]);

// Pseudo-prose of exactly `bytes` bytes: LTM blocks are rendered text, and
// random words compress about as badly as real notes.
void Text(uint64_t seed, size_t bytes, std::string* out) {
  out->clear();
  out->reserve(bytes + 16);
  Rng r(seed);
  while (out->size() < bytes) {
    uint64_t x = r.Next();
    for (int k = 0; k < 6 && out->size() < bytes; ++k) {
      out->append(kWords[(x >> (k * 10)) % kNumWords]);
      out->push_back(((x >> (k * 10 + 7)) & 7) == 0 ? '\n' : ' ');
    }
  }
  out->resize(bytes);
}

void Hex(uint64_t seed, size_t chars, std::string* out) {
  static const char kDigits[] = "0123456789abcdef";
  out->resize(chars);
  Rng r(seed);
  uint64_t x = 0;
  for (size_t k = 0; k < chars; ++k) {
    if (k % 16 == 0) x = r.Next();
    (*out)[k] = kDigits[x & 15];
    x >>= 4;
  }
}

}  // namespace

const std::vector<std::string>& FieldNames(uint32_t mask) {
  static const auto* table = [] {
    auto* t = new std::vector<std::vector<std::string>>(kAllFields + 1);
    for (uint32_t m = 0; m <= kAllFields; ++m) {
      auto& v = (*t)[m];
      if (m & kFingerprintField) v.push_back("fingerprint");
      if (m & kHeaderFields) {
        v.push_back("header_session_id");
        v.push_back("header_name");
      }
      if (m & kTtlField) v.push_back("resolved_conversation_ttl");
      if (m & kWarmupField) v.push_back("warmup");
      if (m & kCalibrationField) v.push_back("calibration");
      if (m & kCostField) v.push_back("cost");
      if (m & kLtmField) v.push_back("ltm");
    }
    return t;
  }();
  return (*table)[mask & kAllFields];
}

void ApplyFields(const GatewaySession& from, uint32_t mask,
                 GatewaySession* to) {
  if (mask & kFingerprintField) to->set_fingerprint(from.fingerprint());
  if (mask & kHeaderFields) {
    to->set_header_session_id(from.header_session_id());
    to->set_header_name(from.header_name());
  }
  if (mask & kTtlField) {
    to->set_resolved_conversation_ttl(from.resolved_conversation_ttl());
  }
  if (mask & kWarmupField) {
    if (from.has_warmup()) {
      *to->mutable_warmup() = from.warmup();
    } else {
      to->clear_warmup();
    }
  }
  if (mask & kCalibrationField) {
    if (from.has_calibration()) {
      *to->mutable_calibration() = from.calibration();
    } else {
      to->clear_calibration();
    }
  }
  if (mask & kCostField) {
    if (from.has_cost()) {
      *to->mutable_cost() = from.cost();
    } else {
      to->clear_cost();
    }
  }
  if (mask & kLtmField) {
    if (from.has_ltm()) {
      *to->mutable_ltm() = from.ltm();
    } else {
      to->clear_ltm();
    }
  }
}

void MoveFields(GatewaySession* from, uint32_t mask, GatewaySession* to) {
  if (mask & kFingerprintField) {
    to->mutable_fingerprint()->swap(*from->mutable_fingerprint());
  }
  if (mask & kHeaderFields) {
    to->mutable_header_session_id()->swap(*from->mutable_header_session_id());
    to->mutable_header_name()->swap(*from->mutable_header_name());
  }
  if (mask & kTtlField) {
    to->mutable_resolved_conversation_ttl()->swap(
        *from->mutable_resolved_conversation_ttl());
  }
  if (mask & kWarmupField) {
    if (from->has_warmup()) {
      to->mutable_warmup()->Swap(from->mutable_warmup());
    } else {
      to->clear_warmup();
    }
  }
  if (mask & kCalibrationField) {
    if (from->has_calibration()) {
      to->mutable_calibration()->Swap(from->mutable_calibration());
    } else {
      to->clear_calibration();
    }
  }
  if (mask & kCostField) {
    if (from->has_cost()) {
      to->mutable_cost()->Swap(from->mutable_cost());
    } else {
      to->clear_cost();
    }
  }
  if (mask & kLtmField) {
    if (from->has_ltm()) {
      to->mutable_ltm()->Swap(from->mutable_ltm());
    } else {
      to->clear_ltm();
    }
  }
}

void MoveSetFields(GatewaySession* from, GatewaySession* to) {
  if (!from->fingerprint().empty()) {
    to->mutable_fingerprint()->swap(*from->mutable_fingerprint());
  }
  if (!from->header_session_id().empty()) {
    to->mutable_header_session_id()->swap(*from->mutable_header_session_id());
  }
  if (!from->header_name().empty()) {
    to->mutable_header_name()->swap(*from->mutable_header_name());
  }
  if (!from->resolved_conversation_ttl().empty()) {
    to->mutable_resolved_conversation_ttl()->swap(
        *from->mutable_resolved_conversation_ttl());
  }
  if (from->has_warmup()) to->mutable_warmup()->Swap(from->mutable_warmup());
  if (from->has_calibration()) {
    to->mutable_calibration()->Swap(from->mutable_calibration());
  }
  if (from->has_cost()) to->mutable_cost()->Swap(from->mutable_cost());
  if (from->has_ltm()) to->mutable_ltm()->Swap(from->mutable_ltm());
}

uint64_t Mix(uint64_t a, uint64_t b, uint64_t c) {
  Rng r(a * 0x9e3779b97f4a7c15ull ^ b * 0xc2b2ae3d27d4eb4full ^
        c * 0x165667b19e3779f9ull);
  return r.Next();
}

ModelConfig ModelConfig::Small() { return ModelConfig(); }

ModelConfig ModelConfig::Large() {
  ModelConfig c;
  c.ltm_cache_bytes = 16 << 10;
  c.ltm_pin_bytes = 4 << 10;
  return c;
}

ModelConfig ModelConfig::Stress() {
  ModelConfig c;
  c.ltm_cache_bytes = 1024;
  c.ltm_cache_spread = 7168;
  c.ltm_pin_bytes = 128;
  c.ltm_pin_spread = 768;
  c.ltm = Cadence{6, true};
  c.warmup = Cadence{4, true};
  return c;
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

bool TurnVersion(const GatewaySession& state, uint64_t* v) {
  if (!state.has_cost() || state.cost().conversation_turns() < 1) return false;
  *v = static_cast<uint64_t>(state.cost().conversation_turns() - 1);
  return true;
}

std::string GatewayModel::SessionId(uint64_t idx) const {
  return absl::StrFormat("ses_%08x_%012x", idx,
                         Mix(config_.seed, idx, 1) & 0xffffffffffffull);
}

bool GatewayModel::ParseSessionId(absl::string_view id, uint64_t* idx) const {
  if (id.size() != 25 || id.substr(0, 4) != "ses_" || id[12] != '_') {
    return false;
  }
  uint64_t v = 0;
  for (char c : id.substr(4, 8)) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return false;
    }
    v = v * 16 + d;
  }
  if (SessionId(v) != id) return false;
  *idx = v;
  return true;
}

Identity GatewayModel::CreateIdentity(uint64_t idx, uint64_t seq) const {
  Identity id;
  Hex(Mix(config_.seed, idx, Tag(2, seq)), 64, &id.fingerprint);
  std::string h;
  Hex(Mix(config_.seed, idx, Tag(3, seq)), 32, &h);
  id.header_session_id =
      absl::StrCat(h.substr(0, 8), "-", h.substr(8, 4), "-", h.substr(12, 4),
                   "-", h.substr(16, 4), "-", h.substr(20));
  id.header_name = kHeaderNames[(idx + seq) % 3];
  return id;
}

Identity GatewayModel::RekeyIdentity(const Identity& current, uint64_t idx,
                                     uint64_t seq, uint32_t* mask) const {
  Identity next = current;
  Identity fresh = CreateIdentity(idx, seq);
  if (Mix(config_.seed, idx, Tag(4, seq)) % 5 == 0) {
    // The client switched header: both header fields change together.
    next.header_session_id = std::move(fresh.header_session_id);
    next.header_name = std::move(fresh.header_name);
    *mask = kHeaderFields;
  } else {
    next.fingerprint = std::move(fresh.fingerprint);
    *mask = kFingerprintField;
  }
  return next;
}

bool GatewayModel::Picks(const Cadence& c, uint64_t idx, uint64_t v,
                         uint64_t salt) const {
  if (c.every <= 1) return true;
  const uint64_t x = c.hashed ? Mix(config_.seed, idx, Tag(salt, v)) : v;
  return x % c.every == 0;
}

size_t GatewayModel::Size(size_t base, size_t spread, uint64_t idx, uint64_t v,
                          uint64_t salt) const {
  if (spread == 0) return base;
  return base + Mix(config_.seed, idx, Tag(salt, v)) % spread;
}

uint32_t GatewayModel::TurnMask(uint64_t idx, uint64_t v, bool full) const {
  if (full) return kBatchedFields;
  uint32_t mask = kCalibrationField | kCostField;
  if (Picks(config_.warmup, idx, v, 12)) mask |= kTtlField | kWarmupField;
  if (Picks(config_.ltm, idx, v, 11)) mask |= kLtmField;
  return mask;
}

void GatewayModel::Turn(uint64_t idx, uint64_t v, uint32_t mask,
                        GatewaySession* out) const {
  const int64_t n = static_cast<int64_t>(v);
  if (mask & kTtlField) {
    out->set_resolved_conversation_ttl(n % 7 == 3 ? "1h" : "5m");
  }
  if (mask & (kWarmupField | kCalibrationField | kCostField)) {
    // One stream for the three groups, drawn whole whichever of them `mask`
    // picks, so that each group's values depend on (idx, v) alone.
    Rng r(Mix(config_.seed, idx, 1000 + v));
    example::WarmupState scratch_w;
    example::Calibration scratch_c;
    example::CostTracker scratch_k;

    auto* w = mask & kWarmupField ? out->mutable_warmup() : &scratch_w;
    w->set_last_warmup_at_ms(kBaseMillis + n * 30000 + r.Next() % 1000);
    w->set_warmup_count(static_cast<int32_t>(n / 3 + 1));
    w->set_warmup_hits(static_cast<int32_t>(n / 5));
    w->set_disabled(r.Next() % 97 == 0);
    w->set_force_keep_warm(r.Next() % 13 == 0);

    auto* c =
        mask & kCalibrationField ? out->mutable_calibration() : &scratch_c;
    c->set_dynamic_context_cap(100000 + r.Unit() * 80000);
    c->set_bust_rate_ema(n == 0 ? -1 : r.Unit());  // -1: no data yet
    c->set_inter_bust_interval_ema(r.Unit() * 600000);
    c->set_last_layer(static_cast<int32_t>(r.Next() % 5));
    c->set_last_known_input(1000 + r.Next() % 190000);
    c->set_last_turn_at(kBaseMillis + n * 45000);
    c->set_last_bust_at(kBaseMillis + n * 40000 + r.Next() % 1000);

    auto* k = mask & kCostField ? out->mutable_cost() : &scratch_k;
    k->set_conversation_cost(r.Unit() * 2 + n * 0.01);
    k->set_worker_cost(r.Unit() * 0.2);
    k->set_conversation_turns(n + 1);  // the version stamp: TurnVersion()
    k->set_cache_read_tokens((n + 1) * 40000 + r.Next() % 1000);
    k->set_cache_write_tokens((n + 1) * 3000 + r.Next() % 1000);
    k->set_warmup_savings(r.Unit());
    k->set_warmup_hits(n / 5);
    k->set_ttl_savings(r.Unit() * 0.5);
    k->set_ttl_hits(n / 7);
    k->set_batch_savings(r.Unit() * 0.1);
    k->set_avoided_compactions(n / 50);
    k->set_avoided_compaction_cost(r.Unit() * 0.05);
  }
  if (mask & kLtmField) {
    const size_t cache =
        Size(config_.ltm_cache_bytes, config_.ltm_cache_spread, idx, v, 13);
    const size_t pin =
        Size(config_.ltm_pin_bytes, config_.ltm_pin_spread, idx, v, 14);
    auto* l = out->mutable_ltm();
    Text(Mix(config_.seed, idx, 5000 + v), cache, l->mutable_cache_text());
    Text(Mix(config_.seed, idx, 9000 + v), pin, l->mutable_pin_text());
    l->set_cache_tokens(static_cast<int32_t>(cache / 4));
    l->set_pin_tokens(static_cast<int32_t>(pin / 4));
    l->set_message_count(static_cast<int32_t>(10 + n));
    l->set_turns_since_curation(static_cast<int32_t>(n % 3));
  }
}

void GatewayModel::Batched(uint64_t idx, uint64_t first, uint64_t v,
                           const std::function<bool(uint64_t)>& is_full,
                           GatewaySession* out) const {
  const uint32_t mask = TurnMask(idx, v, is_full(v));
  Turn(idx, v, mask, out);
  // Each optional group holds the values of the newest turn that set it.
  uint32_t missing = kBatchedFields & ~mask;
  for (uint64_t u = v; missing != 0 && u > first;) {
    --u;
    const uint32_t m = TurnMask(idx, u, is_full(u)) & missing;
    if (m != 0) {
      Turn(idx, u, m, out);
      missing &= ~m;
    }
  }
}

}  // namespace workload
}  // namespace walstate
