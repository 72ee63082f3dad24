// One small interface for every store the benchmarks compare: walstate, the
// peers a user would pick instead (RocksDB, LevelDB, SQLite) and the raw floor
// (bare write+fdatasync of a record; recovery = read, hash, parse, apply).
//
// Each contestant keeps the application's view: every session's state in
// memory as a GatewaySession. The operations are the gateway's:
//  - WriteIdentity: the identity fields, durable before it returns;
//  - UpdateBatched: a partial update applied in memory, session marked dirty,
//    no I/O on the caller's thread;
//  - Tick: every dirty session written atomically, with one sync;
//  - Open: open the store and load all sessions into memory (recovery).
#ifndef WALSTATE_BENCH_CONTESTANT_H_
#define WALSTATE_BENCH_CONTESTANT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "bench/workload.h"

namespace walstate {
namespace bench {

struct ContestantOptions {
  // walstate: reserve log segment space up front
  // (Options::preallocate_segments).
  bool walstate_preallocate = false;
  // walstate: bytes of log after which a snapshot is written on its own.
  // The benchmarks control snapshots with Compact(), so this defaults to never.
  uint64_t walstate_compaction_min_log_bytes = ~0ull >> 2;
  // walstate: Options::tick_write_bytes / tick_sync_bytes (0: the default).
  uint64_t walstate_tick_write_bytes = 0;
  uint64_t walstate_tick_sync_bytes = 0;
  size_t walstate_recovery_threads = 0;  // 0: Options default (one per core)
  // walstate: the engine's default Options (background thread, compaction
  // by its own triggers), as an application would run it; the fields above
  // that are not 0 still apply, except the compaction one.
  bool walstate_defaults = false;
  // walstate, with walstate_defaults: no automatic compaction (what a
  // store whose application calls Flush() itself got before the triggers
  // followed the log).
  bool walstate_never_compact = false;
  // floor: write into a log whose space was written (zeros) and synced
  // ahead, so an fdatasync flushes data only, no size or extent change: the
  // floor the IMMEDIATE latency target is judged against.
  bool floor_preallocate = false;
};

struct SyncCounters {
  bool known = false;
  uint64_t syncs = 0;           // fdatasyncs of the log
  uint64_t synced_records = 0;  // records made durable by them
};

class Contestant {
 public:
  virtual ~Contestant() = default;
  virtual std::string name() const = 0;

  // Opens (creating if missing) the store in `dir` and loads every session
  // into memory. The benchmarks time this call as recovery.
  virtual absl::Status Open(const std::string& dir) = 0;

  // Sets the identity fields of `id` (creating the session) and returns once
  // they are durable. Thread-safe.
  virtual absl::Status WriteIdentity(const std::string& id,
                                     const GatewaySession& identity) = 0;

  // Sets the fields of `mask` of `id` in memory and marks it dirty; no I/O.
  // `values` may be moved from. Thread-safe. `mask` may include the identity
  // fields (bulk loading): they then wait for the next Tick too.
  virtual absl::Status UpdateBatched(const std::string& id,
                                     GatewaySession* values, uint32_t mask) = 0;

  // Writes every dirty session, atomically, and syncs. Thread-safe against
  // WriteIdentity (the "IMMEDIATE during a tick" benchmark runs both).
  virtual absl::Status Tick() = 0;

  // Rewrites the store compactly: a snapshot (walstate, floor), a full
  // compaction (RocksDB, LevelDB), a WAL checkpoint (SQLite).
  virtual absl::Status Compact() = 0;

  // Flushes nothing that Tick did not; syncs and releases the store.
  virtual absl::Status Close() = 0;

  // Visits the in-memory state of every session (not thread-safe with writes).
  virtual void ForEach(const SessionVisitor& fn) const = 0;
  virtual size_t SessionCount() const = 0;

  virtual SyncCounters sync_counters() const { return {}; }
  // Free-form details of the last Open (walstate: its recovery report).
  virtual std::string OpenDetails() const { return ""; }
  // Memory the store holds outside the heap: files it mapped (walstate's
  // lazy recovery maps the snapshot). Counted with its heap bytes.
  virtual uint64_t MappedBytes() const { return 0; }
  // The store's own statistics call, if it has one (walstate: stats()),
  // for its cost; false if none.
  virtual bool ReadStats() const { return false; }
};

using ContestantFactory =
    std::function<std::unique_ptr<Contestant>(const ContestantOptions&)>;

// Contestants register themselves from their own files (alwayslink).
struct ContestantRegistrar {
  ContestantRegistrar(const std::string& name, int order,
                      ContestantFactory factory);
};

// Registered names in a fixed order: walstate, rocksdb, leveldb, sqlite, floor.
std::vector<std::string> ContestantNames();
std::unique_ptr<Contestant> MakeContestant(const std::string& name,
                                           const ContestantOptions& options);

}  // namespace bench
}  // namespace walstate

#endif  // WALSTATE_BENCH_CONTESTANT_H_
