// Crash-test driver for the engine (issue 5, parts 1, 3 and 4).
//
// A Driver runs calls against a Store<GatewaySession> whose I/O goes through a
// FaultInjectionFileSystem and keeps, outside the file system, a model of
// what recovery may show afterwards:
//
//  - the in-memory state (what Get() must return now), with the dirty
//    BATCHED fields of each session, and
//  - a History: one Event per call that did file-system I/O, each with the
//    op-index range [op_begin, op_end] the call spanned, whether it was
//    acknowledged (returned OK), and the DURABLE state once it took effect:
//      IMMEDIATE update / delete  -> its change applied;
//      committed tick (Flush, and the Flush inside Close) -> the current
//        values of every dirty BATCHED field applied;
//      snapshot (Compact that wrote one) -> the whole in-memory state, since
//        a snapshot also commits BATCHED values not yet ticked;
//      Open -> unchanged.
//
// The single-threaded driver never has two calls in flight, so a crash
// after op p must recover to the durable state of some event j with
//   lo(p) = the last acknowledged event that ended at or before op p, and
//   hi(p) = the last event that had started (done some op) by op p,
// lo <= j <= hi. That one rule is I1 (nothing acknowledged lost), I2 (a
// prefix, no holes), I4 (a snapshot is in effect entirely or not at all;
// BATCHED fields as of a tick committed at or after the last acknowledged
// one, never torn) and, with a registry of every value ever attempted, I3
// (nothing altered or invented). Judge() classifies what breaks it.
#ifndef WALSTATE_TESTS_CRASH_CRASH_DRIVER_H_
#define WALSTATE_TESTS_CRASH_CRASH_DRIVER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "proto/example/gateway.pb.h"
#include "tests/fs/fault_injection_fs.h"
#include "walstate/walstate.h"

namespace walstate {
namespace crash {

using example::GatewaySession;
using FIFS = FaultInjectionFileSystem;

// Where every test keeps its store.
inline constexpr char kDir[] = "/db";

// Sessions by id, each as its serialized GatewaySession (canonical: the
// generated code writes fields in number order).
using State = std::map<std::string, std::string>;

// Sanitizer builds (--config=asan/tsan define WALSTATE_SANITIZED) run
// several times slower; the CI samples shrink accordingly.
#ifdef WALSTATE_SANITIZED
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif

// True if the environment variable `name` is set to something other than ""
// or "0" (the full sweeps: WALSTATE_CRASH_FULL=1).
bool EnvFlag(const char* name);
// The integer value of `name`, or `fallback` if unset or unparsable.
uint64_t EnvInt(const char* name, uint64_t fallback);

// One line per session of `a` that differs from `b` (at most `max_lines`),
// with both values in text format; for failure messages.
std::string DiffStates(const State& a, const State& b, int max_lines = 6);

// Options for a store on `fs` with deterministic ticks (no background thread)
// and the given fake clock.
Options TestOptions(FIFS* fs, const absl::Time* clock);

struct Event {
  std::string what;       // "update s3 [fingerprint,header_name]", "tick", ...
  uint64_t op_begin = 0;  // op_count() before the call
  uint64_t op_end = 0;    // op_count() after it
  bool acked = false;
  State durable;  // what recovery may show once this event took effect
};

class History {
 public:
  History();  // event 0: the empty store before any call

  const std::vector<Event>& events() const { return events_; }
  void Add(Event e) { events_.push_back(std::move(e)); }

  // The events a crash right after op `p` may recover to (see the top).
  struct Window {
    size_t lo = 0;
    size_t hi = 0;
  };
  Window WindowAt(uint64_t p) const;

  // Every value ever attempted for a top-level field of a session (values
  // refused by validation included: a test never relies on their absence).
  void NoteWritten(const std::string& session, const GatewaySession& values,
                   const std::vector<std::string>& fields);
  bool WasWritten(const std::string& session, int field_number,
                  const std::string& field_bytes) const;
  bool EverWritten(const std::string& session) const;

  std::string Describe(size_t j) const;  // "#12 update s3 [...] ops 40..42"

 private:
  std::vector<Event> events_;
  std::map<std::string, std::map<int, std::set<std::string>>> written_;
};

// The verdicts a recovered state can get; one counter each in the summary.
enum class Verdict { kOk, kAckedLost, kHole, kCorrupt, kFailedOpen };
const char* VerdictName(Verdict v);

struct Judgement {
  Verdict verdict = Verdict::kOk;
  size_t matched = 0;  // the event whose durable state was recovered (kOk)
  std::string detail;  // what is wrong, for failure messages
};

// Classifies `got` against the events a crash in `w` may recover to:
// kOk if it equals the durable state of an event in [w.lo, w.hi]; kCorrupt
// if it holds a value never attempted or a state from after w.hi; kAckedLost
// if some session is older than w.lo allows; otherwise kHole (a mix of
// states no prefix of the history gives, e.g. part of a tick).
Judgement Judge(const History& history, History::Window w, const State& got);

// A field's value alone (serialized message holding only that field).
std::string FieldBytes(const GatewaySession& m, int field_number);

// Every session of a store, serialized.
State ReadAll(Store<GatewaySession>& store);

// Checks the secondary indexes of `store` against its sessions; a
// description of the first mismatch, or "".
std::string CheckIndexes(Store<GatewaySession>& store, const State& state);

// One call made through the Driver, whatever its outcome.
struct Call {
  std::string what;
  absl::Status status;
  uint64_t op_begin = 0;
  uint64_t op_end = 0;
  bool acking = false;  // an Update, Delete, Flush or Close (a durability ack)
};

class Driver {
 public:
  // `options` are used for every Open (options.fs is set to `fs`,
  // options.clock to the driver's fake clock).
  Driver(FIFS* fs, const Options& options);
  ~Driver();

  absl::Status Open();
  absl::Status Update(const std::string& session, const GatewaySession& values,
                      const std::vector<std::string>& fields,
                      Durability override_tier = DURABILITY_DEFAULT);
  absl::Status Delete(const std::string& session);
  absl::Status Flush();
  absl::Status Compact();
  absl::Status Close();  // closes and forgets the store
  // Forgets the store without closing it (what a process death leaves).
  void Drop();

  bool is_open() const { return store_ != nullptr; }
  Store<GatewaySession>* store() { return store_.get(); }
  const History& history() const { return history_; }
  const std::vector<Call>& calls() const { return calls_; }
  // Sessions in memory now, as the model has them.
  const std::map<std::string, GatewaySession>& memory() const { return mem_; }
  // Sessions with dirty BATCHED fields, as the model has them.
  bool any_dirty() const { return !dirty_.empty(); }
  // True once a call failed in a way that makes the model's in-memory view
  // unreliable (an I/O error); CheckMemory is skipped from then on.
  bool failed() const { return failed_; }
  // The store's sessions equal the model's in-memory view (OK) or not.
  absl::Status CheckMemory();
  // The options passed to Open (fs and clock filled in).
  const Options& options() const { return options_; }
  absl::Time now() const { return now_; }

 private:
  void AddEvent(const std::string& what, uint64_t begin, bool acked);
  void Tick();  // applies the dirty BATCHED fields to the durable view
  void NoteCall(const std::string& what, const absl::Status& s, uint64_t begin,
                bool acking);

  FIFS* fs_;
  Options options_;
  absl::Time now_;
  std::unique_ptr<Store<GatewaySession>> store_;
  std::map<std::string, GatewaySession> mem_;
  std::map<std::string, std::set<std::string>> dirty_;  // BATCHED fields
  std::map<std::string, GatewaySession> durable_;
  History history_;
  std::vector<Call> calls_;
  bool failed_ = false;
};

// A randomized gateway-like workload: identity updates (IMMEDIATE), turns
// (BATCHED calibration, cost, warm-up, long-term-memory text that makes
// records of hundreds to thousands of bytes), mixed updates, per-call tier
// overrides both ways, unique-index conflicts, deletes, ticks, compactions
// and reopens. Deterministic for a seed.
struct WorkloadOptions {
  uint64_t seed = 1;
  int steps = 150;
  int sessions = 8;
  int max_text = 1500;  // bytes of LtmBlocks.cache_text at most
  bool reopen = true;   // Close + Open now and then
  bool compact = true;
  // Flush before every Compact, so that a snapshot holds only committed
  // state (the damage sweep and I/O-error loops rely on it).
  bool flush_before_compact = false;
  // If > 0: every this many steps, a snapshot (after a tick if
  // flush_before_compact) instead of a random step.
  int compact_every = 0;
  // If > 0: every this many steps, Close + Open instead of a random step.
  int reopen_every = 0;
  // Per-call overrides (BATCHED on IMMEDIATE fields and vice versa).
  bool overrides = true;
  // Stop at the first call that fails for a reason other than validation.
  bool stop_on_error = false;
  // After every call, compare the store with the model (CheckMemory).
  bool check_memory = true;
};

// Runs the workload on an open driver. Returns the first CheckMemory
// mismatch (a model or engine bug), else OK; call failures are in
// driver.calls().
absl::Status RunWorkload(Driver& driver, const WorkloadOptions& w);

// Counters of one sweep; Line() is the summary the issue asks for.
struct Summary {
  uint64_t states = 0;
  uint64_t acked_lost = 0;
  uint64_t holes = 0;
  uint64_t corrupt = 0;
  uint64_t failed_opens = 0;
  void Add(Verdict v);
  // Failed opens by cause (a short key taken from the error), for the
  // summary.
  std::map<std::string, uint64_t> failed_open_causes;
  void AddFailedOpenCause(const std::string& detail);
  std::string Causes() const;  // "" if none
  bool clean() const {
    return acked_lost == 0 && holes == 0 && corrupt == 0 && failed_opens == 0;
  }
  // "crash states: N, acked lost: 0, holes: 0, corrupt accepted: 0, failed
  // opens: 0"
  std::string Line() const;
};

struct RecoveryCheck {
  Verdict verdict = Verdict::kOk;
  std::string detail;
};

// Recovers `crashed` twice as the issue asks: Open, read every session,
// check it (Judge) and the indexes, write one IMMEDIATE probe update, Close;
// then power-loss the result (unsynced data and names dropped), Open again
// and require the same sessions plus the probe. `crashed` is changed.
RecoveryCheck RecoverTwice(FIFS& crashed, const Options& base,
                           const History& history, History::Window w,
                           uint64_t seed);

}  // namespace crash
}  // namespace walstate

#endif  // WALSTATE_TESTS_CRASH_CRASH_DRIVER_H_
