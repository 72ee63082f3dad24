#include "tests/crash/crash_driver.h"

#include <algorithm>
#include <cstdlib>
#include <random>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/descriptor.h"
#include "walstate/options.pb.h"

namespace walstate {
namespace crash {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Reflection;

namespace {

constexpr char kProbe[] = "probe";

// dst.field = src.field for the listed top-level fields (cleared if unset in
// src): the engine's partial-update rule, restated independently.
void ApplyFields(const GatewaySession& src,
                 const std::vector<std::string>& fields, GatewaySession* dst) {
  const Descriptor* d = GatewaySession::descriptor();
  const Reflection* r = GatewaySession::GetReflection();
  for (const std::string& name : fields) {
    const FieldDescriptor* f = d->FindFieldByName(name);
    if (f == nullptr) continue;
    r->ClearField(dst, f);
    if (!r->HasField(src, f)) continue;
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      r->MutableMessage(dst, f)->CopyFrom(r->GetMessage(src, f));
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
      r->SetString(dst, f, r->GetString(src, f));
    }
  }
}

Durability DeclaredTier(const std::string& name) {
  const FieldDescriptor* f =
      GatewaySession::descriptor()->FindFieldByName(name);
  if (f == nullptr) return BATCHED;
  Durability d = f->options().GetExtension(walstate::durability);
  return d == IMMEDIATE ? IMMEDIATE : BATCHED;
}

std::string Short(const std::string& bytes) {
  GatewaySession m;
  if (!m.ParseFromString(bytes)) return "<unparsable>";
  std::string s = m.ShortDebugString();
  if (s.size() > 220) s = absl::StrCat(s.substr(0, 220), "...");
  return absl::StrCat("{", s, "}");
}

State ToState(const std::map<std::string, GatewaySession>& m) {
  State out;
  for (const auto& [id, msg] : m) out[id] = msg.SerializeAsString();
  return out;
}

// Which events' durable state gives `session` the value `got` (nullptr:
// absent).
std::vector<size_t> MatchingEvents(const History& h, const std::string& session,
                                   const std::string* got) {
  std::vector<size_t> out;
  for (size_t j = 0; j < h.events().size(); ++j) {
    const State& d = h.events()[j].durable;
    auto it = d.find(session);
    const bool same =
        it == d.end() ? got == nullptr : got != nullptr && *got == it->second;
    if (same) out.push_back(j);
  }
  return out;
}

}  // namespace

bool EnvFlag(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && v[0] != '\0' && std::string(v) != "0";
}

uint64_t EnvInt(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  uint64_t n = 0;
  if (v == nullptr || !absl::SimpleAtoi(v, &n)) return fallback;
  return n;
}

std::string DiffStates(const State& a, const State& b, int max_lines) {
  std::set<std::string> ids;
  for (const auto& [id, unused] : a) ids.insert(id);
  for (const auto& [id, unused] : b) ids.insert(id);
  std::string out;
  int lines = 0;
  for (const std::string& id : ids) {
    auto ia = a.find(id);
    auto ib = b.find(id);
    if (ia != a.end() && ib != b.end() && ia->second == ib->second) continue;
    if (++lines > max_lines) {
      absl::StrAppend(&out, "    ...\n");
      break;
    }
    absl::StrAppend(&out, "    ", id, ": ",
                    ia == a.end() ? "<absent>" : Short(ia->second), " vs ",
                    ib == b.end() ? "<absent>" : Short(ib->second), "\n");
  }
  return out;
}

Options TestOptions(FIFS* fs, const absl::Time* clock) {
  Options o;
  o.fs = fs;
  o.background_thread = false;
  o.clock = [clock] { return *clock; };
  return o;
}

// ---------------------------------------------------------------- History

History::History() {
  Event initial;
  initial.what = "empty store";
  initial.acked = true;
  events_.push_back(std::move(initial));
}

History::Window History::WindowAt(uint64_t p) const {
  Window w;
  for (size_t j = 0; j < events_.size(); ++j) {
    const Event& e = events_[j];
    if (e.acked && e.op_end <= p) w.lo = j;
    if (e.op_begin < p) w.hi = j;
  }
  w.hi = std::max(w.hi, w.lo);
  return w;
}

void History::NoteWritten(const std::string& session,
                          const GatewaySession& values,
                          const std::vector<std::string>& fields) {
  auto& per_field = written_[session];
  for (const std::string& name : fields) {
    const FieldDescriptor* f =
        GatewaySession::descriptor()->FindFieldByName(name);
    if (f == nullptr) continue;
    per_field[f->number()].insert(FieldBytes(values, f->number()));
  }
}

bool History::WasWritten(const std::string& session, int field_number,
                         const std::string& field_bytes) const {
  auto s = written_.find(session);
  if (s == written_.end()) return false;
  auto f = s->second.find(field_number);
  return f != s->second.end() && f->second.count(field_bytes) > 0;
}

bool History::EverWritten(const std::string& session) const {
  return written_.count(session) > 0;
}

std::string History::Describe(size_t j) const {
  const Event& e = events_[j];
  return absl::StrCat("#", j, " ", e.what, " (ops ", e.op_begin + 1, "..",
                      e.op_end, e.acked ? ", acked" : ", not acked", ")");
}

// ---------------------------------------------------------------- Judge

const char* VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kOk:
      return "ok";
    case Verdict::kAckedLost:
      return "acked lost";
    case Verdict::kHole:
      return "hole";
    case Verdict::kCorrupt:
      return "corrupt accepted";
    case Verdict::kFailedOpen:
      return "failed open";
  }
  return "?";
}

std::string FieldBytes(const GatewaySession& m, int field_number) {
  const FieldDescriptor* f =
      GatewaySession::descriptor()->FindFieldByNumber(field_number);
  GatewaySession only;
  if (f != nullptr) ApplyFields(m, {f->name()}, &only);
  return only.SerializeAsString();
}

Judgement Judge(const History& history, History::Window w, const State& got) {
  const auto& events = history.events();
  Judgement out;
  for (size_t j = w.hi + 1; j-- > w.lo;) {
    if (events[j].durable == got) {
      out.matched = j;
      return out;
    }
  }
  const std::string window =
      absl::StrCat("allowed: events ", history.Describe(w.lo), " .. ",
                   history.Describe(w.hi));
  // I3: every value must have been written by some attempted update.
  const Descriptor* d = GatewaySession::descriptor();
  for (const auto& [id, bytes] : got) {
    GatewaySession m;
    if (!m.ParseFromString(bytes)) {
      out.verdict = Verdict::kCorrupt;
      out.detail = absl::StrCat("session ", id, " does not parse");
      return out;
    }
    if (!history.EverWritten(id)) {
      out.verdict = Verdict::kCorrupt;
      out.detail = absl::StrCat(
          "session ", id, " was never written: ", Short(bytes), "; ", window);
      return out;
    }
    if (!m.GetReflection()->GetUnknownFields(m).empty()) {
      out.verdict = Verdict::kCorrupt;
      out.detail = absl::StrCat("session ", id, " has unknown fields");
      return out;
    }
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* f = d->field(i);
      if (!m.GetReflection()->HasField(m, f)) continue;
      if (!history.WasWritten(id, f->number(), FieldBytes(m, f->number()))) {
        out.verdict = Verdict::kCorrupt;
        out.detail = absl::StrCat(
            "session ", id, " field ", f->name(),
            " holds a value never written: ", Short(bytes), "; ", window);
        return out;
      }
    }
  }
  // Which events each session's recovered value belongs to.
  std::set<std::string> ids;
  for (const Event& e : events) {
    for (const auto& [id, unused] : e.durable) ids.insert(id);
  }
  for (const auto& [id, unused] : got) ids.insert(id);
  std::vector<bool> common(events.size(), true);
  std::string lost, torn;
  for (const std::string& id : ids) {
    auto it = got.find(id);
    std::vector<size_t> match =
        MatchingEvents(history, id, it == got.end() ? nullptr : &it->second);
    std::vector<bool> in(events.size(), false);
    for (size_t j : match) in[j] = true;
    for (size_t j = 0; j < events.size(); ++j) common[j] = common[j] && in[j];
    const bool fits = std::any_of(match.begin(), match.end(), [&](size_t j) {
      return j >= w.lo && j <= w.hi;
    });
    if (fits) continue;
    const State& want = events[w.hi].durable;
    auto iw = want.find(id);
    const std::string line = absl::StrCat(
        "    ", id, ": got ", it == got.end() ? "<absent>" : Short(it->second),
        ", as of events [", absl::StrJoin(match, ","),
        "]; at the newest allowed event: ",
        iw == want.end() ? "<absent>" : Short(iw->second), "\n");
    if (match.empty()) {
      torn += line;
    } else if (match.back() < w.lo) {
      lost += line;
    } else if (match.front() > w.hi) {
      out.verdict = Verdict::kCorrupt;
      out.detail =
          absl::StrCat("a value from after the crash point\n", line, window);
      return out;
    } else {
      torn += line;  // states before and after the window, none inside
    }
  }
  if (!lost.empty()) {
    out.verdict = Verdict::kAckedLost;
    out.detail = absl::StrCat("older than the last acknowledged event\n", lost,
                              torn, window);
    return out;
  }
  out.verdict = Verdict::kHole;
  if (torn.empty()) {
    // Each session fits the window, but no single event explains them all.
    std::vector<size_t> all;
    for (size_t j = 0; j < events.size(); ++j) {
      if (common[j]) all.push_back(j);
    }
    out.detail = absl::StrCat(
        "sessions from different points of the history (a hole); events "
        "matching all: [",
        absl::StrJoin(all, ","), "]\n", DiffStates(got, events[w.hi].durable),
        window);
  } else {
    out.detail =
        absl::StrCat("a session state no prefix gives\n", torn, window);
  }
  return out;
}

State ReadAll(Store<GatewaySession>& store) {
  State out;
  store.ForEach([&](absl::string_view id, const GatewaySession& s) {
    out[std::string(id)] = s.SerializeAsString();
  });
  return out;
}

std::string CheckIndexes(Store<GatewaySession>& store, const State& state) {
  for (const char* field : {"fingerprint", "header_session_id"}) {
    const FieldDescriptor* f =
        GatewaySession::descriptor()->FindFieldByName(field);
    std::map<std::string, std::vector<std::string>> want;
    for (const auto& [id, bytes] : state) {
      GatewaySession m;
      m.ParseFromString(bytes);
      const std::string v = m.GetReflection()->GetString(m, f);
      if (!v.empty()) want[v].push_back(id);
    }
    for (const auto& [value, ids] : want) {
      auto got = store.Lookup(field, value);
      if (!got.ok())
        return absl::StrCat("Lookup failed: ", got.status().ToString());
      if (*got != ids) {
        return absl::StrCat("index ", field, " \"", value, "\" gives [",
                            absl::StrJoin(*got, ","), "], sessions hold [",
                            absl::StrJoin(ids, ","), "]");
      }
    }
  }
  return "";
}

// ---------------------------------------------------------------- Driver

Driver::Driver(FIFS* fs, const Options& options)
    : fs_(fs), options_(options), now_(absl::FromUnixSeconds(1800000000)) {
  options_.fs = fs_;
  options_.background_thread = false;
  options_.clock = [this] { return now_; };
}

Driver::~Driver() = default;

void Driver::NoteCall(const std::string& what, const absl::Status& s,
                      uint64_t begin, bool acking) {
  Call c;
  c.what = what;
  c.status = s;
  c.op_begin = begin;
  c.op_end = fs_->op_count();
  c.acking = acking;
  calls_.push_back(std::move(c));
}

void Driver::AddEvent(const std::string& what, uint64_t begin, bool acked) {
  Event e;
  e.what = what;
  e.op_begin = begin;
  e.op_end = fs_->op_count();
  e.acked = acked;
  e.durable = ToState(durable_);
  history_.Add(std::move(e));
}

void Driver::Tick() {
  for (const auto& [id, fields] : dirty_) {
    auto it = mem_.find(id);
    if (it == mem_.end()) continue;
    ApplyFields(it->second,
                std::vector<std::string>(fields.begin(), fields.end()),
                &durable_[id]);
  }
}

absl::Status Driver::Open() {
  now_ += absl::Seconds(1);
  const uint64_t begin = fs_->op_count();
  auto store = Store<GatewaySession>::Open(options_, kDir);
  absl::Status s = store.status();
  if (s.ok()) {
    store_ = std::move(*store);
    mem_ = durable_;
    dirty_.clear();
  } else {
    failed_ = true;
  }
  AddEvent("open", begin, s.ok());
  NoteCall("open", s, begin, false);
  return s;
}

absl::Status Driver::Update(const std::string& session,
                            const GatewaySession& values,
                            const std::vector<std::string>& fields,
                            Durability override_tier) {
  now_ += absl::Seconds(1);
  history_.NoteWritten(session, values, fields);
  std::vector<std::string> imm, bat;
  std::set<std::string> seen;
  for (const std::string& f : fields) {
    if (!seen.insert(f).second) continue;
    Durability tier =
        override_tier == DURABILITY_DEFAULT ? DeclaredTier(f) : override_tier;
    (tier == IMMEDIATE ? imm : bat).push_back(f);
  }
  std::string what =
      absl::StrCat("update ", session, " [", absl::StrJoin(imm, ","), "]");
  if (!bat.empty())
    absl::StrAppend(&what, " batched [", absl::StrJoin(bat, ","), "]");
  const uint64_t begin = fs_->op_count();
  absl::Status s = store_ == nullptr
                       ? absl::FailedPreconditionError("store not open")
                       : store_->Update(session, values, fields,
                                        UpdateOptions{override_tier});
  NoteCall(what, s, begin, true);
  if (s.ok()) {
    ApplyFields(values, fields, &mem_[session]);
    for (const std::string& f : bat) dirty_[session].insert(f);
    if (!imm.empty()) {
      ApplyFields(values, imm, &durable_[session]);
      AddEvent(what, begin, true);
    }
    return s;
  }
  if (absl::IsInvalidArgument(s) || absl::IsAlreadyExists(s)) return s;
  failed_ = true;
  if (!imm.empty() && fs_->op_count() != begin) {
    // Attempted: the record may have reached the disk.
    ApplyFields(values, imm, &durable_[session]);
    AddEvent(what, begin, false);
  }
  return s;
}

absl::Status Driver::Delete(const std::string& session) {
  now_ += absl::Seconds(1);
  const std::string what = absl::StrCat("delete ", session);
  const uint64_t begin = fs_->op_count();
  absl::Status s = store_ == nullptr
                       ? absl::FailedPreconditionError("store not open")
                       : store_->Delete(session);
  NoteCall(what, s, begin, true);
  if (absl::IsNotFound(s)) return s;
  if (!s.ok()) {
    failed_ = true;
    if (fs_->op_count() == begin) return s;
  }
  mem_.erase(session);
  dirty_.erase(session);
  durable_.erase(session);
  AddEvent(what, begin, s.ok());
  return s;
}

absl::Status Driver::Flush() {
  now_ += absl::Seconds(1);
  const uint64_t begin = fs_->op_count();
  absl::Status s = store_ == nullptr
                       ? absl::FailedPreconditionError("store not open")
                       : store_->Flush();
  NoteCall("tick", s, begin, true);
  if (!s.ok()) {
    failed_ = true;
    if (fs_->op_count() == begin) return s;
  }
  Tick();
  std::string what = "tick";
  if (!dirty_.empty()) {
    std::vector<std::string> ids;
    for (const auto& [id, unused] : dirty_) ids.push_back(id);
    what = absl::StrCat("tick [", absl::StrJoin(ids, ","), "]");
  }
  AddEvent(what, begin, s.ok());
  if (s.ok()) dirty_.clear();
  return s;
}

absl::Status Driver::Compact() {
  now_ += absl::Seconds(1);
  const uint64_t begin = fs_->op_count();
  if (store_ == nullptr) {
    absl::Status s = absl::FailedPreconditionError("store not open");
    NoteCall("snapshot", s, begin, false);
    return s;
  }
  const uint64_t before = store_->stats().snapshots_written;
  absl::Status s = store_->Compact();
  const bool wrote = store_->stats().snapshots_written > before;
  NoteCall("snapshot", s, begin, false);
  if (!s.ok()) {
    // The snapshot may or may not be in effect. Both are the same state only
    // if nothing BATCHED is pending; otherwise the model is ambiguous from
    // here on (tests that inject faults flush before compacting).
    if (ToState(mem_) != ToState(durable_)) failed_ = true;
    if (fs_->op_count() == begin) return s;
    AddEvent("snapshot (failed)", begin, false);
    return s;
  }
  if (wrote) durable_ = mem_;
  AddEvent(wrote ? "snapshot" : "snapshot (none needed)", begin, true);
  return s;
}

absl::Status Driver::Close() {
  now_ += absl::Seconds(1);
  const uint64_t begin = fs_->op_count();
  if (store_ == nullptr) return absl::OkStatus();
  absl::Status s = store_->Close();
  store_.reset();
  NoteCall("close", s, begin, true);
  if (!s.ok()) failed_ = true;
  Tick();
  dirty_.clear();
  AddEvent("close (tick)", begin, s.ok());
  return s;
}

void Driver::Drop() {
  store_.reset();
  dirty_.clear();
}

absl::Status Driver::CheckMemory() {
  if (failed_ || store_ == nullptr) return absl::OkStatus();
  State got = ReadAll(*store_);
  State want = ToState(mem_);
  if (got == want) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat("store and model disagree after ",
                   calls_.empty() ? "" : calls_.back().what,
                   " (store vs model):\n", DiffStates(got, want)));
}

// ---------------------------------------------------------------- Workload

namespace {

class Generator {
 public:
  Generator(Driver& d, const WorkloadOptions& w) : d_(d), w_(w), rng_(w.seed) {}

  absl::Status Run() {
    for (int step = 0; step < w_.steps; ++step) {
      if (!d_.is_open()) {
        absl::Status s = d_.Open();
        if (!s.ok() && w_.stop_on_error) return absl::OkStatus();
        if (!s.ok()) continue;
      }
      if (w_.compact_every > 0 &&
          step % w_.compact_every == w_.compact_every - 1) {
        if (w_.flush_before_compact) (void)d_.Flush();
        if (!d_.failed()) (void)d_.Compact();
      } else if (w_.reopen_every > 0 &&
                 step % w_.reopen_every == w_.reopen_every - 1) {
        if (d_.Close().ok()) (void)d_.Open();
      } else {
        Step();
      }
      if (w_.check_memory) {
        absl::Status s = d_.CheckMemory();
        if (!s.ok()) return s;
      }
      if (w_.stop_on_error && d_.failed()) return absl::OkStatus();
    }
    return absl::OkStatus();
  }

 private:
  uint64_t R(uint64_t n) { return n == 0 ? 0 : rng_() % n; }
  std::string Session() { return absl::StrCat("s", R(w_.sessions)); }

  std::string Text(size_t n) {
    std::string t(n, 'a');
    for (char& c : t) c = static_cast<char>('a' + R(26));
    return t;
  }

  // Fills `field` of `m` with a fresh value (a counter makes every value
  // ever written distinct, so that I3 sees any mix-up).
  void Fill(const std::string& field, const std::string& session,
            GatewaySession* m) {
    const uint64_t n = ++counter_;
    if (R(12) == 0) return;  // listed but unset: clears the field
    if (field == "fingerprint") {
      // Few distinct values per session, shared across sessions (MULTI).
      m->set_fingerprint(absl::StrCat("fp", R(4), "-", n));
    } else if (field == "header_session_id") {
      if (R(10) == 0) {
        // Try another session's id: a UNIQUE conflict (AlreadyExists).
        for (const auto& [id, state] : d_.memory()) {
          if (id != session && !state.header_session_id().empty()) {
            m->set_header_session_id(state.header_session_id());
            return;
          }
        }
      }
      m->set_header_session_id(absl::StrCat("h-", session, "-", n));
    } else if (field == "header_name") {
      m->set_header_name(absl::StrCat("x-session-", n));
    } else if (field == "resolved_conversation_ttl") {
      m->set_resolved_conversation_ttl(absl::StrCat(R(60), "m#", n));
    } else if (field == "warmup") {
      auto* w = m->mutable_warmup();
      w->set_last_warmup_at_ms(1800000000000 + n);
      w->set_warmup_count(static_cast<int>(R(100)));
      w->set_disabled(R(2) == 0);
    } else if (field == "calibration") {
      auto* c = m->mutable_calibration();
      c->set_dynamic_context_cap(R(1000) / 1000.0);
      c->set_bust_rate_ema(-1);
      c->set_last_layer(static_cast<int>(R(5)));
      c->set_last_turn_at(1800000000000 + n);
    } else if (field == "cost") {
      auto* c = m->mutable_cost();
      c->set_conversation_cost(R(100000) / 100.0);
      c->set_conversation_turns(static_cast<int64_t>(n));
    } else if (field == "ltm") {
      auto* l = m->mutable_ltm();
      l->set_cache_text(Text(R(w_.max_text + 1)));
      l->set_pin_text(absl::StrCat("pin#", n));
      l->set_message_count(static_cast<int>(R(50)));
    }
  }

  void UpdateWith(const std::string& session, std::vector<std::string> fields,
                  Durability tier = DURABILITY_DEFAULT) {
    GatewaySession v;
    for (const std::string& f : fields) Fill(f, session, &v);
    (void)d_.Update(session, v, fields, tier);
  }

  std::vector<std::string> Pick(const std::vector<std::string>& from,
                                size_t max) {
    std::vector<std::string> out;
    const size_t n = 1 + R(std::min(max, from.size()));
    std::vector<std::string> pool = from;
    for (size_t i = 0; i < n; ++i) {
      const size_t k = R(pool.size());
      out.push_back(pool[k]);
      pool.erase(pool.begin() + k);
    }
    return out;
  }

  void Step() {
    static const std::vector<std::string> kIdentity = {
        "fingerprint", "header_session_id", "header_name"};
    static const std::vector<std::string> kBatched = {
        "resolved_conversation_ttl", "warmup", "calibration", "cost", "ltm"};
    const uint64_t r = R(100);
    const std::string s = Session();
    if (r < 26) {
      UpdateWith(s, Pick(kIdentity, 3));
    } else if (r < 54) {
      UpdateWith(s, Pick(kBatched, 2));
    } else if (r < 61) {
      std::vector<std::string> f = Pick(kIdentity, 2);
      for (const std::string& b : Pick(kBatched, 2)) f.push_back(b);
      UpdateWith(s, f);
    } else if (r < 65) {
      if (w_.overrides) {
        if (R(2) == 0) {
          UpdateWith(s, Pick(kBatched, 2), IMMEDIATE);
        } else {
          UpdateWith(s, Pick(kIdentity, 2), BATCHED);
        }
      } else {
        UpdateWith(s, Pick(kBatched, 1));
      }
    } else if (r < 71) {
      std::vector<std::string> ids;
      for (const auto& [id, unused] : d_.memory()) ids.push_back(id);
      if (!ids.empty()) (void)d_.Delete(ids[R(ids.size())]);
    } else if (r < 85) {
      (void)d_.Flush();
    } else if (r < 90) {
      if (w_.compact) {
        if (w_.flush_before_compact) (void)d_.Flush();
        (void)d_.Compact();
      } else {
        (void)d_.Flush();
      }
    } else if (r < 93) {
      if (w_.reopen) {
        (void)d_.Close();
        (void)d_.Open();
      } else {
        (void)d_.Flush();
      }
    } else {
      // A turn for every session, then one large tick (several writes and
      // syncs before its commit when tick_write_bytes is small).
      for (int i = 0; i < w_.sessions; ++i) {
        UpdateWith(absl::StrCat("s", i), {"calibration", "ltm"});
      }
      (void)d_.Flush();
    }
  }

  Driver& d_;
  const WorkloadOptions w_;
  std::mt19937_64 rng_;
  uint64_t counter_ = 0;
};

}  // namespace

absl::Status RunWorkload(Driver& driver, const WorkloadOptions& w) {
  return Generator(driver, w).Run();
}

// ---------------------------------------------------------------- Summary

void Summary::Add(Verdict v) {
  ++states;
  switch (v) {
    case Verdict::kOk:
      break;
    case Verdict::kAckedLost:
      ++acked_lost;
      break;
    case Verdict::kHole:
      ++holes;
      break;
    case Verdict::kCorrupt:
      ++corrupt;
      break;
    case Verdict::kFailedOpen:
      ++failed_opens;
      break;
  }
}

void Summary::AddFailedOpenCause(const std::string& detail) {
  static const char* const kKeys[] = {"so this is not a torn tail",
                                      "are missing",
                                      "bad magic",
                                      "zero-filled",
                                      "not the last",
                                      "update after recovery",
                                      "close after recovery",
                                      "second open"};
  for (const char* key : kKeys) {
    if (detail.find(key) != std::string::npos) {
      ++failed_open_causes[key];
      return;
    }
  }
  ++failed_open_causes["other"];
}

std::string Summary::Causes() const {
  std::string out;
  for (const auto& [key, n] : failed_open_causes) {
    absl::StrAppend(&out, out.empty() ? "" : ", ", "\"", key, "\": ", n);
  }
  return out;
}

std::string Summary::Line() const {
  return absl::StrCat("crash states: ", states, ", acked lost: ", acked_lost,
                      ", holes: ", holes, ", corrupt accepted: ", corrupt,
                      ", failed opens: ", failed_opens);
}

// ---------------------------------------------------------------- Recovery

RecoveryCheck RecoverTwice(FIFS& crashed, const Options& base,
                           const History& history, History::Window w,
                           uint64_t seed) {
  Options o = base;
  o.fs = &crashed;
  o.background_thread = false;
  RecoveryCheck out;
  State first;
  GatewaySession probe;
  probe.set_fingerprint(absl::StrCat("probe-", seed));
  {
    auto store = Store<GatewaySession>::Open(o, kDir);
    if (!store.ok()) {
      out.verdict = Verdict::kFailedOpen;
      out.detail = absl::StrCat("first open: ", store.status().ToString());
      return out;
    }
    first = ReadAll(**store);
    const std::string report = (*store)->recovery_report().ToString();
    Judgement j = Judge(history, w, first);
    if (j.verdict != Verdict::kOk) {
      out.verdict = j.verdict;
      out.detail = absl::StrCat("first open: ", j.detail,
                                "\nrecovery report:\n", report);
      return out;
    }
    std::string idx = CheckIndexes(**store, first);
    if (!idx.empty()) {
      out.verdict = Verdict::kCorrupt;
      out.detail = absl::StrCat("first open: ", idx);
      return out;
    }
    absl::Status s = (*store)->Update(kProbe, probe, {"fingerprint"});
    if (!s.ok()) {
      out.verdict = Verdict::kFailedOpen;
      out.detail = absl::StrCat("update after recovery: ", s.ToString(),
                                "\nrecovery report:\n", report);
      return out;
    }
    s = (*store)->Close();
    if (!s.ok()) {
      out.verdict = Verdict::kFailedOpen;
      out.detail = absl::StrCat("close after recovery: ", s.ToString());
      return out;
    }
  }
  FIFS::CrashOptions c;
  c.mode = FIFS::CrashMode::kDropUnsynced;
  c.names = FIFS::NameLoss::kDropUnsynced;
  c.seed = seed;
  std::unique_ptr<FIFS> again = crashed.Crash(c);
  o.fs = again.get();
  auto store = Store<GatewaySession>::Open(o, kDir);
  if (!store.ok()) {
    out.verdict = Verdict::kFailedOpen;
    out.detail = absl::StrCat("second open: ", store.status().ToString());
    return out;
  }
  State second = ReadAll(**store);
  State want = first;
  want[kProbe] = probe.SerializeAsString();
  if (second != want) {
    State rest = second;
    rest.erase(kProbe);
    Judgement j = Judge(history, w, rest);
    out.verdict = j.verdict == Verdict::kOk || second.count(kProbe) == 0
                      ? Verdict::kAckedLost
                      : j.verdict;
    out.detail = absl::StrCat(
        "second open differs from the first plus the probe (second vs want):\n",
        DiffStates(second, want), "recovery report:\n",
        (*store)->recovery_report().ToString());
    return out;
  }
  (void)(*store)->Close();
  return out;
}

}  // namespace crash
}  // namespace walstate
