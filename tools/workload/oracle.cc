#include "tools/workload/oracle.h"

#include <algorithm>
#include <limits>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/message_differencer.h"
#include "tools/workload/ack_log.h"

namespace walstate {
namespace workload {
namespace {

using google::protobuf::util::MessageDifferencer;

// The version stamp of `state`'s newest turn; 0 if it holds none (turns are
// numbered from 1).
uint64_t BatchedVersion(const GatewaySession& state) {
  uint64_t v = 0;
  return TurnVersion(state, &v) ? v : 0;
}

std::string Hex(uint64_t v) { return absl::StrCat(absl::Hex(v)); }

std::string Describe(const IdState& s) {
  if (s.seq == 0) return "never created";
  return s.present
             ? absl::StrCat("op ", s.seq, " (identity ", Hex(s.idhash), ")")
             : absl::StrCat("op ", s.seq, " (delete)");
}

// The model state a recovered session matches: the acknowledged one or the
// one pending after it; nullptr if neither.
const IdState* Match(const SessionModel& m, bool present, uint64_t idhash) {
  auto matches = [&](const IdState& s) {
    return s.present == present && (!present || s.idhash == idhash);
  };
  if (matches(m.acked)) return &m.acked;
  if (m.has_pending && matches(m.pending)) return &m.pending;
  return nullptr;
}

// A field's value for a problem report (long text shortened).
std::string FieldText(const google::protobuf::Message& m,
                      const google::protobuf::FieldDescriptor* f) {
  using google::protobuf::FieldDescriptor;
  const auto* r = m.GetReflection();
  if (!r->HasField(m, f)) return "unset";
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return absl::StrCat(r->GetInt32(m, f));
    case FieldDescriptor::CPPTYPE_INT64:
      return absl::StrCat(r->GetInt64(m, f));
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return absl::StrCat(r->GetDouble(m, f));
    case FieldDescriptor::CPPTYPE_BOOL:
      return r->GetBool(m, f) ? "true" : "false";
    case FieldDescriptor::CPPTYPE_STRING: {
      const std::string v = r->GetString(m, f);
      return v.size() <= 24 ? absl::StrCat("\"", v, "\"")
                            : absl::StrCat(v.size(), " bytes \"",
                                           v.substr(0, 16), "...\"");
    }
    default:
      return "(value)";
  }
}

// Where `got` and `want` differ: "group.field got X, want Y" per leaf
// field, or the whole group when one side lacks it.
std::vector<std::string> DiffGroups(const GatewaySession& got,
                                    const GatewaySession& want) {
  using google::protobuf::FieldDescriptor;
  std::vector<std::string> out;
  const auto* d = GatewaySession::descriptor();
  const auto* r = GatewaySession::GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const auto* f = d->field(i);
    const bool hg = r->HasField(got, f), hw = r->HasField(want, f);
    if (!hg && !hw) continue;
    if (hg != hw) {
      out.push_back(absl::StrCat(f->name(), hg ? " present" : " missing",
                                 hw ? "" : " (expected unset)"));
      continue;
    }
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
      if (r->GetString(got, f) != r->GetString(want, f)) {
        out.push_back(absl::StrCat(f->name(), " ", FieldText(got, f), ", want ",
                                   FieldText(want, f)));
      }
      continue;
    }
    const auto& g = r->GetMessage(got, f);
    const auto& w = r->GetMessage(want, f);
    if (MessageDifferencer::Equals(g, w)) continue;
    const auto* gd = g.GetDescriptor();
    for (int j = 0; j < gd->field_count(); ++j) {
      const auto* leaf = gd->field(j);
      const std::string a = FieldText(g, leaf), b = FieldText(w, leaf);
      if (a != b || (leaf->cpp_type() == FieldDescriptor::CPPTYPE_STRING &&
                     g.GetReflection()->GetString(g, leaf) !=
                         w.GetReflection()->GetString(w, leaf))) {
        out.push_back(
            absl::StrCat(f->name(), ".", leaf->name(), " ", a, ", want ", b));
      }
    }
  }
  return out;
}

}  // namespace

const GatewayModel& AckLogModel() {
  static const GatewayModel* model = new GatewayModel(ModelConfig::Stress());
  return *model;
}

absl::Status Oracle::Load(const std::string& path) {
  auto lines = ReadAckLog(path, &cut_lines_);
  if (!lines.ok()) return lines.status();
  if (lines->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("ack log ", path, " is empty (no header line)"));
  }
  for (size_t i = 0; i < lines->size(); ++i) {
    absl::Status s = ApplyLine((*lines)[i], static_cast<int>(i + 1));
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("ack log ", path, " line ", i + 1, ": ", s.message(),
                       ": \"", (*lines)[i].substr(0, 120), "\""));
    }
  }
  return absl::OkStatus();
}

absl::Status Oracle::ApplyLine(const std::string& line, int line_no) {
  std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
  if (f.empty() || f[0].size() != 1) {
    return absl::InvalidArgumentError("unknown line");
  }
  const char type = f[0][0];
  if (line_no == 1) {
    if (type != 'H' || f.size() != 5 || f[1] != "walstate-acklog" ||
        f[2] != "1" || !absl::SimpleAtoi(f[3], &sessions_) ||
        !absl::SimpleAtoi(f[4], &seed_) || sessions_ == 0) {
      return absl::InvalidArgumentError(
          "not a walstate ack log header (H walstate-acklog 1 N SEED)");
    }
    models_.assign(sessions_, SessionModel());
    return absl::OkStatus();
  }
  uint32_t idx = 0;
  auto session = [&](absl::string_view s) -> SessionModel* {
    if (!absl::SimpleAtoi(s, &idx) || idx >= sessions_) return nullptr;
    return &models_[idx];
  };
  auto bad = [](absl::string_view why) {
    return absl::InvalidArgumentError(why);
  };
  switch (type) {
    case 'R':
      ++runs_;
      return absl::OkStatus();
    case 'C':
      ++compactions_;
      return absl::OkStatus();
    case 'X':
      return absl::OkStatus();
    case 'I':
    case 'D': {
      SessionModel* m = f.size() == 5 ? session(f[1]) : nullptr;
      uint64_t seq = 0, value = 0;
      if (m == nullptr || !absl::SimpleAtoi(f[2], &seq) ||
          !(type == 'I' ? absl::SimpleHexAtoi(f[3], &value)
                        : absl::SimpleAtoi(f[3], &value))) {
        return bad("malformed pending line");
      }
      if (m->has_pending) return bad("a second op pending in one session");
      if (seq <= m->max_seq) return bad("op sequence went backwards");
      m->has_pending = true;
      m->pending.present = type == 'I';
      m->pending.idhash = type == 'I' ? value : 0;
      m->pending.inc_start = type == 'I' ? m->acked.inc_start : value;
      m->pending.seq = seq;
      m->max_seq = seq;
      return absl::OkStatus();
    }
    case 'A': {
      SessionModel* m = f.size() == 4 ? session(f[1]) : nullptr;
      uint64_t seq = 0;
      if (m == nullptr || !absl::SimpleAtoi(f[2], &seq)) {
        return bad("malformed ack line");
      }
      if (!m->has_pending || m->pending.seq != seq) {
        return bad("ack of an op that is not pending");
      }
      m->acked = m->pending;
      m->has_pending = false;
      ++acked_;
      if (!m->acked.present) ++deletes_acked_;
      return absl::OkStatus();
    }
    case 'b': {
      SessionModel* m = f.size() == 4 ? session(f[1]) : nullptr;
      uint64_t ver = 0;
      int64_t ms = 0;
      if (m == nullptr || !absl::SimpleAtoi(f[2], &ver) ||
          !absl::SimpleAtoi(f[3], &ms)) {
        return bad("malformed turn line");
      }
      if (ver <= m->max_ver) return bad("turn version went backwards");
      m->max_ver = ver;
      m->recent.emplace_back(ver, ms);
      ++turns_;
      return absl::OkStatus();
    }
    case 'T': {
      int64_t ms = 0, capture = 0;
      if (f.size() < 4 || !absl::SimpleAtoi(f[1], &ms) ||
          !absl::SimpleAtoi(f[2], &capture)) {
        return bad("malformed tick line");
      }
      for (size_t i = 4; i < f.size(); ++i) {
        std::pair<absl::string_view, absl::string_view> kv =
            absl::StrSplit(f[i], ':');
        SessionModel* m = session(kv.first);
        uint64_t ver = 0;
        if (m == nullptr || !absl::SimpleAtoi(kv.second, &ver)) {
          return bad("malformed session:version in tick line");
        }
        if (ver > m->max_ver) return bad("tick covers a turn never asked for");
        m->committed_ver = std::max(m->committed_ver, ver);
        auto& r = m->recent;
        r.erase(r.begin(), std::find_if(r.begin(), r.end(), [&](const auto& p) {
                  return p.first > m->committed_ver;
                }));
      }
      ++ticks_;
      last_capture_ms_ = std::max(last_capture_ms_, capture);
      last_commit_ms_ = std::max(last_commit_ms_, ms);
      return absl::OkStatus();
    }
    case 'S': {
      SessionModel* m = f.size() == 7 ? session(f[1]) : nullptr;
      int present = 0;
      uint64_t idhash = 0, inc_start = 0, ver = 0, full = 0;
      if (m == nullptr || !absl::SimpleAtoi(f[2], &present) ||
          !absl::SimpleHexAtoi(f[3], &idhash) ||
          !absl::SimpleAtoi(f[4], &inc_start) ||
          !absl::SimpleAtoi(f[5], &ver) || !absl::SimpleAtoi(f[6], &full)) {
        return bad("malformed resolved-state line");
      }
      if (full <= m->max_ver) return bad("full turn not after the last turn");
      m->acked.present = present != 0;
      m->acked.idhash = idhash;
      m->acked.inc_start = inc_start;
      m->acked.seq = m->max_seq;
      m->has_pending = false;
      if (m->max_ver > ver) m->dead.emplace_back(ver, m->max_ver);
      m->committed_ver = ver;
      m->recent.clear();
      m->full_vers.push_back(full);
      return absl::OkStatus();
    }
    default:
      return bad("unknown line type");
  }
}

CheckResult Oracle::Check(const Store<GatewaySession>& store) const {
  const GatewayModel& model = AckLogModel();
  CheckResult r;
  r.acked = acked_;
  r.batched_turns = turns_;
  r.last_commit_capture_ms = last_capture_ms_;
  r.last_commit_ms = last_commit_ms_;
  r.oldest_lost_ms = std::numeric_limits<int64_t>::max();
  r.newest_lost_ms = 0;
  for (uint32_t idx = 0; idx < sessions_; ++idx) {
    const SessionModel& m = models_[idx];
    const std::string id = model.SessionId(idx);
    if (m.has_pending) ++r.in_flight;
    auto got = store.Get(id);
    if (!got.ok() && !absl::IsNotFound(got.status())) {
      ++r.other_bad;
      r.problems.push_back(absl::StrCat(
          "session ", id, ": Get failed: ", got.status().ToString()));
      continue;
    }
    const bool present = got.ok();
    if (present) ++r.sessions_recovered;
    const uint64_t h = present ? IdentityHash(IdentityOf(*got)) : 0;
    const IdState* cand = Match(m, present, h);
    if (cand == nullptr) {
      ++r.lost;
      std::string pend =
          m.has_pending ? absl::StrCat(", nor pending ", Describe(m.pending))
                        : "";
      if (!present) {
        r.problems.push_back(absl::StrCat(
            "session ", id, ": LOST acknowledged ", Describe(m.acked),
            ": session missing after recovery"));
      } else if (!m.acked.present && m.acked.seq != 0) {
        r.problems.push_back(absl::StrCat(
            "session ", id, ": acknowledged ", Describe(m.acked),
            " undone: session present with identity ", Hex(h), pend));
      } else {
        r.problems.push_back(
            absl::StrCat("session ", id, ": recovered identity ", Hex(h),
                         " is neither acknowledged ", Describe(m.acked), pend));
      }
      continue;
    }
    if (cand == &m.pending) ++r.in_flight_applied;
    if (!present) continue;
    const uint64_t s = cand->inc_start;

    // BATCHED.
    const uint64_t rv = BatchedVersion(*got);
    std::string bad;
    if (rv != 0 && (rv <= s || rv > m.max_ver)) {
      bad = absl::StrCat("turn ", rv,
                         " recovered, outside this incarnation's "
                         "turns (",
                         s, ", ", m.max_ver, "]");
    } else if (std::any_of(m.dead.begin(), m.dead.end(), [&](const auto& d) {
                 return rv > d.first && rv <= d.second;
               })) {
      bad = absl::StrCat("turn ", rv,
                         " recovered, but it was lost in an earlier crash");
    } else if (m.committed_ver > s && rv < m.committed_ver) {
      bad = absl::StrCat("LOST committed BATCHED data: turn ", rv,
                         " recovered, but a committed tick covered turn ",
                         m.committed_ver);
    } else {
      // The turns of this incarnation, (s, rv], applied in order.
      GatewaySession want, part;
      if (rv > s) {
        model.Batched(
            idx, s + 1, rv,
            [&](uint64_t u) {
              return std::find(m.full_vers.begin(), m.full_vers.end(), u) !=
                     m.full_vers.end();
            },
            &want);
      }
      ApplyFields(*got, kBatchedFields, &part);
      std::vector<std::string> diff = DiffGroups(part, want);
      if (!diff.empty()) {
        bad = absl::StrCat("torn or altered BATCHED state at turn ", rv, ": ",
                           absl::StrJoin(diff, "; "));
      }
    }
    if (!bad.empty()) {
      ++r.batched_bad;
      r.problems.push_back(absl::StrCat("session ", id, ": ", bad));
    }
    for (const auto& [ver, ms] : m.recent) {
      if (ver <= rv || ver <= s) continue;
      ++r.batched_lost;
      r.oldest_lost_ms = std::min(r.oldest_lost_ms, ms);
      r.newest_lost_ms = std::max(r.newest_lost_ms, ms);
    }

    // Indexes, rebuilt by recovery (the seed's #304: empty after restart).
    const Identity ident = IdentityOf(*got);
    auto by_header = store.Lookup("header_session_id", ident.header_session_id);
    if (!by_header.ok() || by_header->size() != 1 || (*by_header)[0] != id) {
      ++r.other_bad;
      r.problems.push_back(absl::StrCat(
          "session ", id, ": index header_session_id=", ident.header_session_id,
          " does not find exactly this session"));
    }
    auto by_fp = store.Lookup("fingerprint", ident.fingerprint);
    if (!by_fp.ok() ||
        std::find(by_fp->begin(), by_fp->end(), id) == by_fp->end()) {
      ++r.other_bad;
      r.problems.push_back(
          absl::StrCat("session ", id, ": index fingerprint does not find it"));
    }
  }
  if (r.batched_lost == 0) r.oldest_lost_ms = 0;

  std::vector<std::string> unknown;
  uint64_t total = 0;
  store.ForEach([&](absl::string_view id, const GatewaySession&) {
    ++total;
    uint64_t idx = 0;
    if (!model.ParseSessionId(id, &idx) || idx >= sessions_) {
      unknown.emplace_back(id);
    }
  });
  for (const std::string& id : unknown) {
    ++r.other_bad;
    r.problems.push_back(
        absl::StrCat("session ", id, ": invented (never written)"));
  }
  if (total != r.sessions_recovered + unknown.size()) {
    ++r.other_bad;
    r.problems.push_back(absl::StrCat("iteration visits ", total,
                                      " sessions, lookups found ",
                                      r.sessions_recovered + unknown.size()));
  }
  return r;
}

std::vector<SessionStart> Oracle::Resolve(
    const Store<GatewaySession>& store,
    std::vector<std::string>* s_lines) const {
  std::vector<SessionStart> out(sessions_);
  for (uint32_t idx = 0; idx < sessions_; ++idx) {
    const SessionModel& m = models_[idx];
    SessionStart& st = out[idx];
    auto got = store.Get(AckLogModel().SessionId(idx));
    st.present = got.ok();
    uint64_t h = 0, ver = 0;
    if (st.present) {
      st.identity = IdentityOf(*got);
      h = IdentityHash(st.identity);
      const IdState* cand = Match(m, true, h);
      st.inc_start = cand != nullptr ? cand->inc_start : m.acked.inc_start;
      ver = BatchedVersion(*got);
    } else {
      // Every turn so far belonged to an incarnation that is gone.
      st.inc_start = m.max_ver;
    }
    st.next_seq = m.max_seq + 1;
    st.next_ver = m.max_ver + 1;
    st.first_turn_full = true;
    s_lines->push_back(absl::StrCat("S ", idx, " ", st.present ? 1 : 0, " ",
                                    Hex(h), " ", st.inc_start, " ", ver, " ",
                                    st.next_ver));
  }
  return out;
}

}  // namespace workload
}  // namespace walstate
