#include "tools/workload/runner.h"

#include <algorithm>
#include <mutex>
#include <queue>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace walstate {
namespace workload {
namespace {

class Run {
 public:
  Run(const RunConfig& config, Store<GatewaySession>* store, AckLogWriter* log,
      std::vector<SessionStart> start, RunCounters* counters)
      : config_(config),
        store_(store),
        log_(log),
        state_(std::move(start)),
        counters_(counters),
        applied_(new std::atomic<uint64_t>[config.sessions]) {
    for (uint32_t i = 0; i < config_.sessions; ++i) applied_[i] = 0;
  }

  absl::Status Go() {
    begin_ = absl::Now();
    end_ = config_.duration == absl::InfiniteDuration()
               ? absl::InfiniteFuture()
               : begin_ + config_.duration;
    std::vector<std::thread> workers;
    for (int w = 0; w < config_.threads; ++w) {
      workers.emplace_back([this, w] { Worker(w); });
    }
    std::thread ticker([this] { Ticker(); });
    for (std::thread& t : workers) t.join();
    stop_ = true;
    ticker.join();
    if (!error().ok()) {
      (void)log_->Append(
          absl::StrCat("X ", NowMs(), " error: ", error().ToString()));
      return error();
    }
    if (config_.close_at_end) {
      // Close() flushes: every turn applied so far is committed after it.
      std::string covered = Capture();
      absl::Status s = store_->Close();
      if (!s.ok()) {
        Failed(s, "Close");
        return error();
      }
      s = log_->Append(
          absl::StrCat("T ", NowMs(), " ", NowMs(), " F", covered));
      if (!s.ok()) return s;
    }
    return log_->Append(absl::StrCat("X ", NowMs(), " clean end"));
  }

 private:
  bool Stopping() const { return stop_.load(std::memory_order_relaxed); }

  absl::Status error() {
    std::lock_guard<std::mutex> lock(error_mu_);
    return error_;
  }

  // Records the first failure and stops every thread.
  void Failed(const absl::Status& s, absl::string_view what) {
    absl::Status annotated(s.code(), absl::StrCat(what, ": ", s.message()));
    std::lock_guard<std::mutex> lock(error_mu_);
    if (error_.ok()) error_ = annotated;
    stop_ = true;
  }

  // Sleeps until `t`, waking early when the run stops.
  void SleepUntil(absl::Time t) {
    while (!Stopping()) {
      const absl::Duration left = t - absl::Now();
      if (left <= absl::ZeroDuration()) return;
      absl::SleepFor(std::min(left, absl::Milliseconds(20)));
    }
  }

  bool Log(const std::string& line) {
    absl::Status s = log_->Append(line);
    if (!s.ok()) Failed(s, "ack log");
    return s.ok();
  }

  void Worker(int w) {
    std::mt19937_64 rng(Mix(config_.seed, static_cast<uint64_t>(w), 7));
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    auto exp_delay = [&](absl::Duration mean) {
      std::exponential_distribution<double> e(1.0);
      return mean * std::min(e(rng), 8.0);
    };
    using Due = std::pair<absl::Time, uint32_t>;
    std::priority_queue<Due, std::vector<Due>, std::greater<Due>> heap;
    for (uint32_t idx = w; idx < config_.sessions; idx += config_.threads) {
      const absl::Time due = state_[idx].present
                                 ? begin_ + exp_delay(config_.mean_op_interval)
                                 : begin_ + config_.ramp * uniform(rng);
      heap.emplace(due, idx);
    }
    while (!heap.empty() && !Stopping()) {
      auto [due, idx] = heap.top();
      heap.pop();
      if (due >= end_) break;
      SleepUntil(due);
      if (Stopping()) break;
      absl::Duration next = exp_delay(config_.mean_op_interval);
      if (!Op(idx, rng, &next)) break;
      heap.emplace(absl::Now() + next, idx);
    }
  }

  // Adds turn `ver` of session `idx` to `values`/`mask`, after logging it.
  bool AddTurn(uint32_t idx, GatewaySession* values, uint32_t* mask,
               uint64_t* ver) {
    SessionStart& st = state_[idx];
    *ver = st.next_ver++;
    const uint32_t turn = model_.TurnMask(idx, *ver, st.first_turn_full);
    model_.Turn(idx, *ver, turn, values);
    *mask |= turn;
    st.first_turn_full = false;
    return Log(absl::StrCat("b ", idx, " ", *ver, " ", NowMs()));
  }

  // One op of session `idx`; false once the run must stop.
  bool Op(uint32_t idx, std::mt19937_64& rng, absl::Duration* next) {
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    SessionStart& st = state_[idx];
    const std::string id = model_.SessionId(idx);
    GatewaySession values;
    uint32_t mask = 0;
    uint64_t ver = 0;
    const double r = uniform(rng);
    if (!st.present || r < config_.p_delete + config_.p_rekey) {
      if (st.present && r < config_.p_delete) {
        // The conversation ended: a durable tombstone.
        const uint64_t seq = st.next_seq++;
        const uint64_t inc_start = st.next_ver - 1;
        if (!Log(absl::StrCat("D ", idx, " ", seq, " ", inc_start, " ",
                              NowMs()))) {
          return false;
        }
        absl::Status s = store_->Delete(id);
        if (!s.ok()) {
          Failed(s, absl::StrCat("Delete ", id));
          return false;
        }
        if (!Log(absl::StrCat("A ", idx, " ", seq, " ", NowMs()))) return false;
        st.present = false;
        st.inc_start = inc_start;
        counters_->deletes_acked.fetch_add(1, std::memory_order_relaxed);
        *next = config_.recreate_pause * (0.5 + uniform(rng));
        return true;
      }
      // An identity event: a new session, or a re-key of a live one.
      const uint64_t seq = st.next_seq++;
      Identity id_next;
      if (st.present) {
        id_next = model_.RekeyIdentity(st.identity, idx, seq, &mask);
      } else {
        id_next = model_.CreateIdentity(idx, seq);
        mask = kIdentityFields;
      }
      SetIdentity(id_next, &values);
      if (uniform(rng) < config_.p_combined &&
          !AddTurn(idx, &values, &mask, &ver)) {
        return false;
      }
      if (!Log(absl::StrCat("I ", idx, " ", seq, " ",
                            absl::Hex(IdentityHash(id_next)), " ", NowMs()))) {
        return false;
      }
      absl::Status s = store_->Update(id, values, FieldNames(mask));
      if (!s.ok()) {
        Failed(s, absl::StrCat("Update ", id));
        return false;
      }
      if (!Log(absl::StrCat("A ", idx, " ", seq, " ", NowMs()))) return false;
      st.present = true;
      st.identity = id_next;
      counters_->immediate_acked.fetch_add(1, std::memory_order_relaxed);
    } else {
      // A turn: BATCHED only, no I/O on this thread.
      if (!AddTurn(idx, &values, &mask, &ver)) return false;
      absl::Status s = store_->Update(id, values, FieldNames(mask));
      if (!s.ok()) {
        Failed(s, absl::StrCat("Update ", id));
        return false;
      }
    }
    if (ver != 0) {
      counters_->turns.fetch_add(1, std::memory_order_relaxed);
      applied_[idx].store(ver, std::memory_order_release);
    }
    return true;
  }

  // " idx:ver..." for every turn applied since the last recorded tick.
  std::string Capture() {
    std::string out;
    if (last_recorded_.empty()) last_recorded_.assign(config_.sessions, 0);
    for (uint32_t i = 0; i < config_.sessions; ++i) {
      const uint64_t v = applied_[i].load(std::memory_order_acquire);
      if (v > last_recorded_[i]) {
        absl::StrAppend(&out, " ", i, ":", v);
        last_recorded_[i] = v;
      }
    }
    return out;
  }

  void Ticker() {
    std::mt19937_64 rng(Mix(config_.seed, 1000, 9));
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    absl::Time next_compact =
        config_.compact_interval > absl::ZeroDuration()
            ? absl::Now() + config_.compact_interval * (0.5 + uniform(rng))
            : absl::InfiniteFuture();
    while (!Stopping()) {
      SleepUntil(absl::Now() +
                 config_.tick_record_interval * (0.5 + uniform(rng)));
      if (Stopping()) break;
      // Turns applied before `capture` are in any tick that starts after it.
      std::vector<uint64_t> before = last_recorded_;
      std::string covered = Capture();
      const absl::Time capture = absl::Now();
      if (covered.empty()) continue;
      char how = 'F';
      if (uniform(rng) < config_.p_explicit_flush) {
        absl::Status s = store_->Flush();
        if (!s.ok()) {
          Failed(s, "Flush");
          break;
        }
      } else {
        // Wait for the background tick. Its start is not in Stats, but
        // last_tick_time - last_tick_duration is at or before it.
        how = 'P';
        bool committed = false;
        const absl::Time give_up = absl::Now() + absl::Seconds(5);
        while (!Stopping() && absl::Now() < give_up) {
          Stats st = store_->stats();
          if (st.last_tick_time - st.last_tick_duration > capture) {
            committed = true;
            break;
          }
          absl::SleepFor(absl::Milliseconds(5));
        }
        if (!committed) {
          // Not known committed: record these turns with a later tick.
          last_recorded_ = before;
          continue;
        }
      }
      if (!Log(absl::StrCat("T ", NowMs(), " ", absl::ToUnixMillis(capture),
                            " ", std::string(1, how), covered))) {
        break;
      }
      counters_->ticks_recorded.fetch_add(1, std::memory_order_relaxed);
      if (absl::Now() >= next_compact) {
        absl::Status s = store_->Compact();
        if (!s.ok()) {
          Failed(s, "Compact");
          break;
        }
        if (!Log(absl::StrCat("C ", NowMs()))) break;
        counters_->compactions.fetch_add(1, std::memory_order_relaxed);
        next_compact =
            absl::Now() + config_.compact_interval * (0.5 + uniform(rng));
      }
    }
  }

  const RunConfig config_;
  const GatewayModel& model_ = AckLogModel();
  Store<GatewaySession>* const store_;
  AckLogWriter* const log_;
  std::vector<SessionStart> state_;  // state_[idx] only by its worker
  RunCounters* const counters_;
  std::unique_ptr<std::atomic<uint64_t>[]> applied_;
  std::vector<uint64_t> last_recorded_;  // ticker only (and Go at the end)
  absl::Time begin_, end_;
  std::atomic<bool> stop_{false};
  std::mutex error_mu_;
  absl::Status error_;
};

}  // namespace

absl::Status RunWorkload(const RunConfig& config, Store<GatewaySession>* store,
                         AckLogWriter* log, std::vector<SessionStart> start,
                         RunCounters* counters) {
  if (start.size() != config.sessions) {
    return absl::InvalidArgumentError(
        absl::StrCat("RunWorkload: ", start.size(), " start states for ",
                     config.sessions, " sessions"));
  }
  Run run(config, store, log, std::move(start), counters);
  return run.Go();
}

}  // namespace workload
}  // namespace walstate
