#include "bench/workload.h"

#include <cinttypes>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/message_differencer.h"

namespace walstate {
namespace bench {
namespace {

// SplitMix64: a fast, good-enough generator; the whole workload derives from
// it so every run (and every contestant) sees the same bytes.
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

uint64_t Mix(uint64_t a, uint64_t b, uint64_t c) {
  Rng r(a * 0x9e3779b97f4a7c15ull ^ b * 0xc2b2ae3d27d4eb4full ^
        c * 0x165667b19e3779f9ull);
  return r.Next();
}

constexpr int64_t kBaseMillis = 1735689600000;  // 2025-01-01

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
    auto* t = new std::vector<std::vector<std::string>>(64);
    for (uint32_t m = 0; m < 64; ++m) {
      auto& v = (*t)[m];
      if (m & kIdentityFields) {
        v.push_back("fingerprint");
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
  return (*table)[mask & 63];
}

void ApplyFields(const GatewaySession& from, uint32_t mask,
                 GatewaySession* to) {
  if (mask & kIdentityFields) {
    to->set_fingerprint(from.fingerprint());
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
  if (mask & kIdentityFields) {
    to->mutable_fingerprint()->swap(*from->mutable_fingerprint());
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

WorkloadConfig WorkloadConfig::Small() { return WorkloadConfig(); }

WorkloadConfig WorkloadConfig::Large() {
  WorkloadConfig c;
  c.ltm_cache_bytes = 16 << 10;
  c.ltm_pin_bytes = 4 << 10;
  return c;
}

std::string Workload::SessionId(uint64_t index) const {
  return absl::StrFormat("ses_%08x_%012x", index,
                         Mix(config_.seed, index, 1) & 0xffffffffffffull);
}

bool Workload::ParseSessionId(absl::string_view id, uint64_t* index) {
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
  *index = v;
  return true;
}

void Workload::Identity(uint64_t index, GatewaySession* out) const {
  static const char* const kHeaders[] = {
      "x-opencode-session", "x-claude-code-session-id", "x-session-affinity"};
  Hex(Mix(config_.seed, index, 2), 64, out->mutable_fingerprint());
  std::string h;
  Hex(Mix(config_.seed, index, 3), 32, &h);
  out->set_header_session_id(absl::StrCat(h.substr(0, 8), "-", h.substr(8, 4),
                                          "-", h.substr(12, 4), "-",
                                          h.substr(16, 4), "-", h.substr(20)));
  out->set_header_name(kHeaders[index % 3]);
}

uint32_t Workload::TurnMask(int32_t version) const {
  return LtmChanges(version) ? kBatchedFields : kTurnFields;
}

void Workload::Turn(uint64_t index, int32_t version,
                    GatewaySession* out) const {
  Rng r(Mix(config_.seed, index, 1000 + static_cast<uint64_t>(version)));
  const int64_t v = version;
  out->set_resolved_conversation_ttl(v % 7 == 3 ? "1h" : "5m");

  auto* w = out->mutable_warmup();
  w->set_last_warmup_at_ms(kBaseMillis + v * 30000 + r.Next() % 1000);
  w->set_warmup_count(static_cast<int32_t>(v / 3 + 1));
  w->set_warmup_hits(static_cast<int32_t>(v / 5));
  w->set_disabled(r.Next() % 97 == 0);
  w->set_force_keep_warm(r.Next() % 13 == 0);

  auto* c = out->mutable_calibration();
  c->set_dynamic_context_cap(100000 + r.Unit() * 80000);
  c->set_bust_rate_ema(v == 0 ? -1 : r.Unit());
  c->set_inter_bust_interval_ema(r.Unit() * 600000);
  c->set_last_layer(static_cast<int32_t>(r.Next() % 5));
  c->set_last_known_input(1000 + r.Next() % 190000);
  c->set_last_turn_at(kBaseMillis + v * 45000);
  c->set_last_bust_at(kBaseMillis + v * 40000 + r.Next() % 1000);

  auto* k = out->mutable_cost();
  k->set_conversation_cost(r.Unit() * 2 + v * 0.01);
  k->set_worker_cost(r.Unit() * 0.2);
  k->set_conversation_turns(v + 1);
  k->set_cache_read_tokens((v + 1) * 40000 + r.Next() % 1000);
  k->set_cache_write_tokens((v + 1) * 3000 + r.Next() % 1000);
  k->set_warmup_savings(r.Unit());
  k->set_warmup_hits(v / 5);
  k->set_ttl_savings(r.Unit() * 0.5);
  k->set_ttl_hits(v / 7);
  k->set_batch_savings(r.Unit() * 0.1);
  k->set_avoided_compactions(v / 50);
  k->set_avoided_compaction_cost(r.Unit() * 0.05);

  if (LtmChanges(version)) {
    auto* l = out->mutable_ltm();
    Text(Mix(config_.seed, index, 5000 + v), config_.ltm_cache_bytes,
         l->mutable_cache_text());
    Text(Mix(config_.seed, index, 9000 + v), config_.ltm_pin_bytes,
         l->mutable_pin_text());
    l->set_cache_tokens(static_cast<int32_t>(config_.ltm_cache_bytes / 4));
    l->set_pin_tokens(static_cast<int32_t>(config_.ltm_pin_bytes / 4));
    l->set_message_count(static_cast<int32_t>(10 + v));
    l->set_turns_since_curation(static_cast<int32_t>(v % 3));
  }
}

void Workload::Expected(uint64_t index, int32_t version,
                        GatewaySession* out) const {
  out->Clear();
  if (version == kAbsent) return;
  Identity(index, out);
  if (version == kIdentityOnly) return;
  if (!LtmChanges(version)) {
    // The ltm block was last written by the newest version that changed it.
    int32_t ltm_version = version - version % config_.ltm_every;
    GatewaySession ltm;
    Turn(index, ltm_version, &ltm);
    out->mutable_ltm()->Swap(ltm.mutable_ltm());
  }
  Turn(index, version, out);
}

size_t ExpectedState::LiveCount() const {
  size_t n = 0;
  for (int32_t v : versions_) n += v != kAbsent;
  return n;
}

absl::Status Verify(const Workload& workload, const ExpectedState& expected,
                    const ForEachFn& for_each) {
  std::vector<bool> seen(expected.capacity(), false);
  absl::Status status;
  size_t visited = 0;
  GatewaySession want;
  std::string want_bytes, got_bytes;
  for_each([&](absl::string_view id, const GatewaySession& got) {
    ++visited;
    if (!status.ok()) return;
    uint64_t index;
    if (!Workload::ParseSessionId(id, &index) ||
        workload.SessionId(index) != id) {
      status = absl::DataLossError(absl::StrCat("unexpected session id ", id));
      return;
    }
    int32_t version = expected.Get(index);
    if (version == kAbsent) {
      status = absl::DataLossError(
          absl::StrCat("session ", id, " recovered but should not exist"));
      return;
    }
    if (seen[index]) {
      status = absl::DataLossError(absl::StrCat("session ", id, " twice"));
      return;
    }
    seen[index] = true;
    workload.Expected(index, version, &want);
    // No map fields: serialization is deterministic, so equal messages give
    // equal bytes; the differencer only explains a mismatch.
    want.SerializeToString(&want_bytes);
    got.SerializeToString(&got_bytes);
    if (want_bytes != got_bytes) {
      std::string diff;
      google::protobuf::util::MessageDifferencer d;
      d.ReportDifferencesToString(&diff);
      d.Compare(want, got);
      if (diff.size() > 2000) diff.resize(2000);
      status = absl::DataLossError(absl::StrCat("session ", id, " (version ",
                                                version, ") differs:\n", diff));
    }
  });
  if (!status.ok()) return status;
  size_t live = expected.LiveCount();
  if (visited != live) {
    for (size_t i = 0; i < seen.size(); ++i) {
      if (!seen[i] && expected.Get(i) != kAbsent) {
        return absl::DataLossError(
            absl::StrCat("recovered ", visited, " sessions, expected ", live,
                         "; missing e.g. ", workload.SessionId(i)));
      }
    }
    return absl::DataLossError(
        absl::StrCat("recovered ", visited, " sessions, expected ", live));
  }
  return absl::OkStatus();
}

}  // namespace bench
}  // namespace walstate
