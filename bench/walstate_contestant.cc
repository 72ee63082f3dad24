// walstate through its public API (walstate/walstate.h), with the background
// thread off so that every tick is the benchmark's Flush() and nothing else
// runs behind it. Identity fields are IMMEDIATE by their declaration in
// proto/example/gateway.proto; the rest are BATCHED.
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "bench/contestant.h"
#include "walstate/walstate.h"

namespace walstate {
namespace bench {
namespace {

class WalstateContestant : public Contestant {
 public:
  explicit WalstateContestant(const ContestantOptions& o) : options_(o) {}
  ~WalstateContestant() override {
    if (store_ != nullptr) store_->Close().IgnoreError();
  }

  std::string name() const override { return "walstate"; }

  absl::Status Open(const std::string& dir) override {
    Options options;
    if (options_.walstate_defaults) {
      if (options_.walstate_never_compact) {
        options.compaction_min_log_bytes = ~0ull >> 2;
      }
      if (options_.walstate_tick_sync_bytes != 0) {
        options.tick_sync_bytes = options_.walstate_tick_sync_bytes;
      }
      auto store = Store<GatewaySession>::Open(options, dir);
      if (!store.ok()) return store.status();
      store_ = std::move(*store);
      return absl::OkStatus();
    }
    options.background_thread = false;
    options.preallocate_segments = options_.walstate_preallocate;
    options.compaction_min_log_bytes =
        options_.walstate_compaction_min_log_bytes;
    if (options_.walstate_tick_write_bytes != 0) {
      options.tick_write_bytes = options_.walstate_tick_write_bytes;
    }
    options.recovery_threads = options_.walstate_recovery_threads;
    if (options_.walstate_tick_sync_bytes != 0) {
      options.tick_sync_bytes = options_.walstate_tick_sync_bytes;
    }
    auto store = Store<GatewaySession>::Open(options, dir);
    if (!store.ok()) return store.status();
    store_ = std::move(*store);
    return absl::OkStatus();
  }

  absl::Status WriteIdentity(const std::string& id,
                             const GatewaySession& identity) override {
    return store_->Update(id, identity, FieldNames(kIdentityFields));
  }

  absl::Status UpdateBatched(const std::string& id, GatewaySession* values,
                             uint32_t mask) override {
    UpdateOptions o;
    // Bulk loading sets the identity too; it waits for the tick like the rest.
    if (mask & kIdentityFields) o.durability = BATCHED;
    // The values are the caller's to give away, as with every contestant's
    // UpdateBatched (the floor swaps them into its map): moved, not copied.
    return store_->Update(id, std::move(*values), FieldNames(mask), o);
  }

  absl::Status Tick() override { return store_->Flush(); }
  absl::Status Compact() override { return store_->Compact(); }

  absl::Status Close() override {
    if (store_ == nullptr) return absl::OkStatus();
    absl::Status s = store_->Close();
    store_.reset();
    return s;
  }

  void ForEach(const SessionVisitor& fn) const override { store_->ForEach(fn); }
  size_t SessionCount() const override { return store_->stats().sessions; }

  SyncCounters sync_counters() const override {
    Stats s = store_->stats();
    return SyncCounters{true, s.fsyncs, s.synced_records};
  }

  bool ReadStats() const override {
    // Before stats() was O(1) it also walked every session for the memory
    // estimate: walstate_never_compact stands for that engine here.
    if (options_.walstate_never_compact) {
      return store_->stats().sessions + store_->ApproximateMemoryUsage() != 0;
    }
    return store_->stats().sessions != ~0ull;
  }

  uint64_t MappedBytes() const override {
    return store_->stats().lazy_mapped_bytes;
  }
  std::string OpenDetails() const override {
    if (store_ == nullptr) return "";
    const RecoveryReport& r = store_->recovery_report();
    return absl::StrCat(
        "snapshot_sessions=", r.snapshot_sessions,
        " records_replayed=", r.records_replayed,
        " bytes_replayed=", r.bytes_replayed,
        " bytes_skipped=", r.bytes_skipped, " segments_read=", r.segments_read,
        " ticks_committed=", r.ticks_committed,
        " snapshot_s=", absl::ToDoubleSeconds(r.snapshot_duration),
        " log_s=", absl::ToDoubleSeconds(r.replay_duration),
        " index_s=", absl::ToDoubleSeconds(r.index_duration),
        " approximate_memory_bytes=", store_->ApproximateMemoryUsage());
  }

 private:
  ContestantOptions options_;
  std::unique_ptr<Store<GatewaySession>> store_;
};

ContestantRegistrar registrar("walstate", 0, [](const ContestantOptions& o) {
  return std::make_unique<WalstateContestant>(o);
});

}  // namespace
}  // namespace bench
}  // namespace walstate
