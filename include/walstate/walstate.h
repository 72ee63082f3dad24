// walstate: per-session state kept in memory, made durable by a write-ahead log
// and snapshots. This header is the whole public API.
//
// A session's state is one protobuf message of the user's type. Updates are
// partial: they set the listed top-level fields and touch nothing else. Each
// field has a durability tier, declared in the .proto with
// `[(walstate.durability) = IMMEDIATE]` or `BATCHED`
// (walstate/options.proto):
//
//  - IMMEDIATE: Update() returns once the change is in the log and
//    fdatasynced; concurrent callers share one fdatasync (group commit).
//  - BATCHED: Update() applies the change in memory and marks the session
//    dirty; no I/O call on the caller's thread (but see "Thread safety" for
//    a lazily recovered session's first use). Every flush interval a background
//    thread writes one record per dirty session with the current values of its
//    dirty batched fields, and commits the whole tick atomically with one sync.
//    A crash loses at most the changes since the last committed tick.
//
// A restart (Open) loads the newest snapshot, replays the log after it, cuts
// off a torn tail and rebuilds the secondary indexes. By default it verifies
// what it reads but parses no state: each session is parsed on its first use
// (Options::lazy_recovery).
//
//   walstate::Options options;
//   auto store = walstate::Store<GatewaySession>::Open(options, "/var/lib/gw");
//   GatewaySession values;
//   values.set_fingerprint("ab12...");
//   absl::Status s = (*store)->Update("session-1", values, {"fingerprint"});
//
// Thread safety: every method may be called from any number of threads. Reads
// (Get, ForEach, Lookup) make no read, write or sync call and never wait for
// the log; but with lazy_recovery (the default) a recovered session's first
// use parses its state from the memory-mapped snapshot, and that may wait
// for the page to come from disk (a page fault) the first time it is touched.
#ifndef WALSTATE_WALSTATE_H_
#define WALSTATE_WALSTATE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "google/protobuf/message.h"
#include "walstate/file_system.h"
#include "walstate/options.pb.h"
#include "walstate/recovery_report.h"
#include "walstate/replicator.h"
#include "walstate/version.h"

namespace walstate {

// Shipping the log and snapshots to a replicated stream (NATS JetStream:
// engine/replication/nats/), so that the store outlives its machine.
// docs/replication.md says what each mode promises.
struct ReplicationOptions {
  // kOff: none. kAsync: records are published after their local fdatasync
  // by a background thread; a failover loses up to the lag in stats().
  // kSync: an IMMEDIATE Update, a Delete and a tick commit return only once
  // the stream acknowledged their records too; a publish failure stops the
  // store like a failed fdatasync.
  replication::Mode mode = replication::Mode::kOff;
  // Where to publish; required unless mode is kOff.
  std::shared_ptr<replication::Replicator> replicator;
  // This writer's identity, recorded in the stream with every message.
  // Empty: "<hostname>:<dir>".
  std::string writer_id;
  // Open refuses a store whose stream another writer published to last,
  // unless this is set: the other writer is then fenced (its next publish
  // is refused and it stops).
  bool takeover = false;
  // Close() waits at most this long for the stream to acknowledge what is
  // not yet (async mode), and for a snapshot being published.
  absl::Duration close_timeout = absl::Seconds(30);
};

struct Options {
  // All I/O goes through this; nullptr means FileSystem::Default().
  FileSystem* fs = nullptr;
  // Create the directory and an empty store if there is none.
  bool create_if_missing = true;
  // With fs == nullptr: files are created 0600 and directories 0700
  // (before the umask), since session data is private; true makes them
  // 0640 and 0750, readable by the group.
  bool group_readable = false;
  // Open refuses a data directory in which one of walstate's own names
  // (a segment, snapshot, MANIFEST, LOCK) is a symbolic link, naming it: a
  // link there is how another file gets overwritten by whoever opens the
  // store. True lets Open read through such links (e.g. a snapshot kept on
  // another disk); walstate still never writes, truncates, syncs for
  // appending or locks through one, so a linked log segment Open must cut
  // or sync still fails, naming it.
  bool allow_symlinked_files = false;

  // How often dirty sessions' BATCHED fields are written. A crash loses at
  // most this much of BATCHED changes; shorter costs more log writes (one
  // record per dirty session per tick) and more syncs.
  absl::Duration flush_interval = absl::Seconds(30);
  // Tier of fields that declare none.
  Durability default_durability = BATCHED;

  // A log segment is closed once it reaches this size. Compaction deletes
  // whole segments, so smaller ones free disk sooner, at the price of more
  // files and more segment switches.
  uint64_t max_segment_bytes = 64ull << 20;
  // Reserve each segment's space when it is created: the file system then
  // has less metadata to sync per fdatasync, at the price of the segment's
  // full size on disk from its creation.
  bool preallocate_segments = false;
  // Group commit: when concurrent IMMEDIATE callers released by the last
  // fdatasync have not all written again, the next sync waits for them, at
  // most one average sync's duration and never longer than this. Busy
  // callers then share syncs instead of alternating in two halves (more
  // records per sync, fewer syncs), at the price of that wait when they do
  // not come back (Stats::group_commit_waits_in_vain). A lone caller never
  // waits. Zero: never wait (lowest latency under light concurrency).
  absl::Duration group_commit_max_wait = absl::Milliseconds(2);

  // A snapshot is written once the log since the last one exceeds
  // max(compaction_min_log_bytes, compaction_log_fraction x the size of the
  // last snapshot). The rule is checked after every tick (the background
  // thread's, or a Flush() the application calls) and as IMMEDIATE updates
  // and deletes grow the log (every 256 of them); the snapshot is then
  // written on the background thread, never on the caller's (without
  // Options::background_thread, only Compact() writes one). The defaults
  // keep the log a restart reads after the snapshot under half the
  // snapshot (plus one tick), at the price of writing a snapshot per half
  // a snapshot of log: 2 bytes of snapshot per byte of log at steady state.
  uint64_t compaction_min_log_bytes = 16ull << 20;
  double compaction_log_fraction = 0.5;
  // Also write one at least this often (zero: only by size or Compact()).
  absl::Duration compaction_interval = absl::ZeroDuration();

  // Sessions not updated for this long are deleted (zero: never).
  absl::Duration session_ttl = absl::ZeroDuration();

  // What Open does with damage in the log (walstate/recovery_report.h).
  RecoveryMode recovery_mode = RecoveryMode::kTolerateTornTail;
  // Threads Open uses to load the snapshot and replay the log (0: one per
  // core plus one, at most 8, as workers wait on memory much of the time;
  // 1: the opening thread only).
  size_t recovery_threads = 0;
  // Open keeps each recovered session's state as the bytes it read (the
  // snapshot's state, then the session's update records after it), checked
  // but not parsed, and parses it on the session's first use: a read, an
  // update, or a snapshot of a session with records. Open then costs a
  // copy per session instead of a parse, and sessions never used take
  // their serialized size in memory. The first use of each session pays
  // the parse (microseconds, under its shard's lock). Bytes that verify
  // but do not parse (a writer's bug, not damage: every frame is
  // checksummed) are then found on first use, which fails with DataLoss
  // naming the session, rather than by Open; for the same reason Open does
  // not fall back to the previous snapshot over such a state, as a parsing
  // Open does for a snapshot with a state that does not parse. The bytes
  // are freed once no state needs them. False: Open parses everything.
  bool lazy_recovery = true;
  // With lazy_recovery, the log's records after the snapshot are kept
  // unparsed only while that part of the log is at most the snapshot's size
  // plus this many bytes (automatic compaction keeps it so). A longer tail
  // is applied at Open, as without lazy_recovery (states still parsed only
  // as their first record comes): kept records would cost their size in
  // memory, and a session with many would parse them all on first use.
  uint64_t lazy_replay_slack_bytes = 64ull << 20;

  // Run the flush/compaction/expiry thread. Tests turn it off and call
  // Flush(), Compact() and ExpireIdleSessions() themselves.
  bool background_thread = true;
  // The clock used for expiry and stats; tests substitute a fake one.
  std::function<absl::Time()> clock = absl::Now;

  // During a tick, buffered records are written every tick_write_bytes (and
  // their writeback started), so that an IMMEDIATE update's fdatasync in the
  // middle of a tick finds most of it on its way to the disk already. A
  // tick is synced once, at its commit, unless it writes more than
  // tick_sync_bytes: then also every tick_sync_bytes, so that such an
  // fdatasync never carries more than that. At the default of 64 MiB (one
  // segment) a tick of the gateway's sessions (~400 B each) is one sync up
  // to ~1.6x10^5 dirty sessions; a tick of 3x10^5 (30% of 10^6) is two.
  // A smaller value bounds an IMMEDIATE update's latency during a huge
  // tick, at one more sync per tick_sync_bytes.
  uint64_t tick_write_bytes = 256 << 10;
  uint64_t tick_sync_bytes = 64ull << 20;

  ReplicationOptions replication;
};

struct UpdateOptions {
  // Overrides the tier of every field of the update (DURABILITY_DEFAULT:
  // use each field's declared tier).
  Durability durability = DURABILITY_DEFAULT;
};

struct Stats {
  uint64_t sessions = 0;
  uint64_t dirty_sessions = 0;
  // Sessions whose state is still as Open read it, not yet parsed
  // (Options::lazy_recovery), and the bytes kept for them: heap, and the
  // snapshot file mapped read-only (page cache; where the file system can
  // map it). Both are freed by the first tick (Flush) after the last of
  // them is parsed.
  uint64_t lazy_sessions = 0;
  uint64_t lazy_bytes = 0;
  uint64_t lazy_mapped_bytes = 0;
  uint64_t last_lsn = 0;
  uint64_t durable_lsn = 0;
  uint64_t log_bytes = 0;  // bytes in the log segments on disk
  uint64_t log_segments = 0;
  uint64_t log_bytes_since_snapshot = 0;
  uint64_t snapshot_bytes = 0;
  uint64_t snapshot_lsn = 0;
  absl::Time snapshot_time = absl::InfinitePast();
  uint64_t snapshots_written = 0;
  uint64_t fsyncs = 0;          // fdatasyncs of log segments
  uint64_t synced_records = 0;  // records made durable by them
  // Syncs that waited for released callers (Options::group_commit_max_wait),
  // and those of them that waited in vain.
  uint64_t group_commit_waits = 0;
  uint64_t group_commit_waits_in_vain = 0;
  uint64_t immediate_updates = 0;
  uint64_t batched_updates = 0;
  uint64_t deletes = 0;
  uint64_t expired = 0;
  uint64_t ticks = 0;
  uint64_t last_tick_sessions = 0;
  // Times the last tick gave up its core to let other threads run: once
  // per 128 sessions written (none before the first), and only while a
  // caller waits for an fdatasync of the log (an IMMEDIATE update, a
  // Delete) and might need the core when it returns.
  uint64_t last_tick_yields = 0;
  absl::Time last_tick_time = absl::InfinitePast();
  absl::Duration last_tick_duration;
  absl::Status last_tick_status;  // why the last tick failed, if it did
  // Why the last snapshot (background or Compact()) failed, if it did. A
  // failed snapshot leaves the store healthy: the log still holds
  // everything, and the next attempt starts afresh.
  absl::Status last_compaction_status;
  // Replication (Options::replication); "off" and zeros when it is off.
  std::string replication_mode = "off";
  std::string replication_writer;
  // What the stream's acknowledgements mean, from the server version read
  // at connect (e.g. "in memory on a quorum, not fsynced" on nats-server
  // 2.9).
  std::string replication_durability;
  uint64_t replicated_lsn = 0;  // every record <= this is in the stream
  // Synced locally, not yet acknowledged by the stream: what a failover
  // would lose in async mode.
  uint64_t replication_lag_records = 0;
  uint64_t replication_lag_bytes = 0;
  absl::Duration replication_lag;  // age of the oldest of them
  uint64_t replication_publishes = 0;
  uint64_t replication_publish_failures = 0;
  uint64_t snapshots_replicated = 0;
  absl::Status replication_status;  // the last failed publish, if any
  // Mean records per fdatasync: how well group commit batches.
  double mean_group_commit_size() const {
    return fsyncs == 0 ? 0 : static_cast<double>(synced_records) / fsyncs;
  }
};

// The type-erased engine. Most users want Store<M> below.
class Engine {
 public:
  // Opens (or creates) the store in `dir` for sessions of `prototype`'s type,
  // recovering what is on disk. Fails if another process holds the
  // directory, or if recovery finds damage that options.recovery_mode refuses;
  // the error names the file, offset and what to do.
  static absl::StatusOr<std::unique_ptr<Engine>> Open(
      const Options& options, const google::protobuf::Message& prototype,
      const std::string& dir);

  // Closes without flushing if Close() was not called.
  virtual ~Engine() = default;

  // Sets the top-level `fields` (names) of `session` to their values in
  // `values`; a listed field unset in `values` is cleared. Creates the
  // session if it does not exist. Returns once IMMEDIATE fields are durable.
  // Errors: InvalidArgument (unknown field, wrong message type, empty session
  // id), AlreadyExists (a UNIQUE index value held by another session),
  // FailedPrecondition (the engine stopped after an I/O error; reopen).
  virtual absl::Status Update(absl::string_view session,
                              const google::protobuf::Message& values,
                              absl::Span<const std::string> fields,
                              const UpdateOptions& options = {}) = 0;

  // The same, but the values of `fields` are moved out of `values` (their
  // strings and submessages are handed over, not copied): the cheapest way
  // to apply a message built for the call. Afterwards the listed fields of
  // `values` hold unspecified values; its other fields are untouched. After
  // an error `values` may or may not have been moved from.
  virtual absl::Status Update(absl::string_view session,
                              google::protobuf::Message&& values,
                              absl::Span<const std::string> fields,
                              const UpdateOptions& options = {}) = 0;

  // The same, from serialized bytes: `serialized` is a message of the
  // store's type in the protobuf wire format, and the listed `fields` are
  // set to their values in it (a listed field absent from it is cleared;
  // fields present but not listed are ignored). For callers that hold bytes
  // (a wire protocol, a language binding): they need not build a message.
  // The bytes are parsed into a message the engine keeps and reuses, and the
  // fields' old values are left there, to be overwritten by the next parse:
  // in steady state nothing is allocated or freed for them on the caller's
  // thread. Tiers, errors and guarantees as Update(); InvalidArgument also
  // if the bytes do not parse. Like Update(), it does not check that
  // proto2 required fields are set.
  virtual absl::Status UpdateSerialized(absl::string_view session,
                                        absl::string_view serialized,
                                        absl::Span<const std::string> fields,
                                        const UpdateOptions& options = {}) = 0;

  // Deletes `session` with a durable tombstone. NotFound if it does not exist.
  virtual absl::Status Delete(absl::string_view session) = 0;

  // Copies the state of `session` into `out` (same type as the prototype).
  // NotFound if it does not exist.
  virtual absl::Status Get(absl::string_view session,
                           google::protobuf::Message* out) const = 0;
  virtual bool Contains(absl::string_view session) const = 0;

  // Calls `fn` for every session. Sessions are visited shard by shard under
  // that shard's lock: `fn` must not call back into the engine.
  virtual void ForEach(
      const std::function<void(absl::string_view session,
                               const google::protobuf::Message& state)>& fn)
      const = 0;

  // Sessions whose indexed `field` equals `value` (integers as decimal,
  // bools as "true"/"false", enums by number). InvalidArgument if the field
  // is not indexed.
  virtual absl::StatusOr<std::vector<std::string>> Lookup(
      absl::string_view field, absl::string_view value) const = 0;

  // Writes a tick now for every dirty session and syncs it.
  virtual absl::Status Flush() = 0;
  // Writes a snapshot now and deletes what it makes unnecessary.
  virtual absl::Status Compact() = 0;
  // Deletes sessions idle longer than Options::session_ttl; returns how many.
  // None while session_ttl is zero.
  virtual absl::StatusOr<uint64_t> ExpireIdleSessions() = 0;
  // Deletes sessions not updated for more than `idle` (sessions recovered
  // at Open count as updated then), whatever Options::session_ttl is; each
  // with a durable tombstone. Returns how many. InvalidArgument if `idle`
  // is negative.
  virtual absl::StatusOr<uint64_t> ExpireIdleSessions(absl::Duration idle) = 0;

  // Flushes, stops the background thread, syncs and releases the directory.
  virtual absl::Status Close() = 0;

  // OK, or the I/O error that stopped the engine accepting updates.
  virtual absl::Status health() const = 0;
  // Counters kept as things change: O(1), and no lock that an update, a
  // tick or a compaction holds for long. The store's memory is
  // ApproximateMemoryUsage().
  virtual Stats stats() const = 0;
  // Bytes the store's memory takes (states, ids, entries, indexes, table
  // overhead, bytes kept for lazy states), estimated by walking every
  // session under its shard's lock: O(sessions), ~100 ms at 10^5 sessions,
  // holding up each shard's updates meanwhile. For an occasional look, not
  // for a metrics exporter's every scrape.
  virtual uint64_t ApproximateMemoryUsage() const = 0;
  virtual const RecoveryReport& recovery_report() const = 0;
};

// Typed front end: Store<GatewaySession>.
template <typename M>
class Store {
 public:
  static absl::StatusOr<std::unique_ptr<Store>> Open(const Options& options,
                                                     const std::string& dir) {
    auto engine = Engine::Open(options, M::default_instance(), dir);
    if (!engine.ok()) return engine.status();
    return std::unique_ptr<Store>(new Store(std::move(*engine)));
  }

  absl::Status Update(absl::string_view session, const M& values,
                      absl::Span<const std::string> fields,
                      const UpdateOptions& options = {}) {
    return engine_->Update(session, values, fields, options);
  }
  absl::Status Update(absl::string_view session, const M& values,
                      std::initializer_list<std::string> fields,
                      const UpdateOptions& options = {}) {
    return engine_->Update(
        session, values,
        absl::Span<const std::string>(fields.begin(), fields.size()), options);
  }
  // Moves the listed fields out of `values` (see Engine::Update).
  absl::Status Update(absl::string_view session, M&& values,
                      absl::Span<const std::string> fields,
                      const UpdateOptions& options = {}) {
    return engine_->Update(session,
                           static_cast<google::protobuf::Message&&>(values),
                           fields, options);
  }
  absl::Status Update(absl::string_view session, M&& values,
                      std::initializer_list<std::string> fields,
                      const UpdateOptions& options = {}) {
    return Update(session, std::move(values),
                  absl::Span<const std::string>(fields.begin(), fields.size()),
                  options);
  }
  // Sets the listed fields from serialized bytes (see
  // Engine::UpdateSerialized).
  absl::Status UpdateSerialized(absl::string_view session,
                                absl::string_view serialized,
                                absl::Span<const std::string> fields,
                                const UpdateOptions& options = {}) {
    return engine_->UpdateSerialized(session, serialized, fields, options);
  }
  absl::Status UpdateSerialized(absl::string_view session,
                                absl::string_view serialized,
                                std::initializer_list<std::string> fields,
                                const UpdateOptions& options = {}) {
    return UpdateSerialized(
        session, serialized,
        absl::Span<const std::string>(fields.begin(), fields.size()), options);
  }
  absl::Status Delete(absl::string_view session) {
    return engine_->Delete(session);
  }
  absl::StatusOr<M> Get(absl::string_view session) const {
    M out;
    absl::Status s = engine_->Get(session, &out);
    if (!s.ok()) return s;
    return out;
  }
  bool Contains(absl::string_view session) const {
    return engine_->Contains(session);
  }
  void ForEach(
      const std::function<void(absl::string_view, const M&)>& fn) const {
    engine_->ForEach([&fn](absl::string_view session,
                           const google::protobuf::Message& state) {
      fn(session, static_cast<const M&>(state));
    });
  }
  absl::StatusOr<std::vector<std::string>> Lookup(
      absl::string_view field, absl::string_view value) const {
    return engine_->Lookup(field, value);
  }
  absl::Status Flush() { return engine_->Flush(); }
  absl::Status Compact() { return engine_->Compact(); }
  absl::StatusOr<uint64_t> ExpireIdleSessions() {
    return engine_->ExpireIdleSessions();
  }
  absl::StatusOr<uint64_t> ExpireIdleSessions(absl::Duration idle) {
    return engine_->ExpireIdleSessions(idle);
  }
  absl::Status Close() { return engine_->Close(); }
  absl::Status health() const { return engine_->health(); }
  Stats stats() const { return engine_->stats(); }
  uint64_t ApproximateMemoryUsage() const {
    return engine_->ApproximateMemoryUsage();
  }
  const RecoveryReport& recovery_report() const {
    return engine_->recovery_report();
  }
  Engine* engine() { return engine_.get(); }

 private:
  explicit Store(std::unique_ptr<Engine> engine) : engine_(std::move(engine)) {}
  std::unique_ptr<Engine> engine_;
};

}  // namespace walstate

#endif  // WALSTATE_WALSTATE_H_
