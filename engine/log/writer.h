// LogWriter appends records to a directory's log segments.
//
// Append() only encodes into memory and assigns the next LSN; it never does
// I/O, so callers may hold their own locks around it. Flush() writes what is
// buffered; SyncTo() makes a prefix durable. Concurrent SyncTo() callers share
// fdatasyncs (group commit): one caller becomes the leader, writes everything
// buffered, calls fdatasync once and wakes every waiter its sync covered;
// callers whose records arrived later form the next group, and the leader
// wakes one of them first to lead it. Each SyncTo() waiter sleeps on its own
// condition variable: a sync wakes only the callers it covered (plus that
// next leader), and they return without taking the writer's mutex again.
//
// A leader may linger before it takes the batch: when the callers the
// previous sync released have not all appended again yet, it waits for them,
// at most until one sync's duration after that release. Without this, busy
// callers settle into two cohorts that take turns, each fdatasync carrying
// half of them. A caller alone never lingers (it is the only one released),
// and lingers that gather nothing turn lingering off for a while.
//
// A segment is closed and a new one started when the next record would take
// it past `max_segment_bytes` (a record larger than that gets a segment of its
// own). The old segment is fdatasynced before the new one is created, and the
// directory is fsynced after the create, so what is durable is always a
// prefix of the log.
//
// Flush() also starts the writeback of what it wrote (WritableFile::
// StartWriteback), so that the next fdatasync, often an IMMEDIATE caller's,
// finds those pages written or in flight rather than pushing them itself.
//
// Any failed write, sync or create poisons the writer: that call and every
// later one return the same error, nothing after it is acknowledged, and the
// failed fdatasync is never retried. The owner must reopen through recovery.
#ifndef WALSTATE_ENGINE_LOG_WRITER_H_
#define WALSTATE_ENGINE_LOG_WRITER_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/log/format.h"
#include "walstate/file_system.h"

namespace walstate {
namespace log {

// Told what the writer wrote and when it became durable: the hook
// replication ships the log through (engine/replication/shipper.h). Called
// only by the thread doing the writer's I/O, so calls never overlap and come
// in LSN order.
class LogObserver {
 public:
  virtual ~LogObserver() = default;
  // `frames` are the framed records first_lsn..last_lsn just handed to the
  // file system, byte for byte as in the segment, hashed with `salt` (the
  // segment's). Not durable yet.
  virtual void Written(uint64_t salt, uint64_t first_lsn, uint64_t last_lsn,
                       absl::string_view frames) = 0;
  // Every record <= `lsn` is fdatasynced. The writer reports them durable
  // (SyncTo returns) only after this returns OK; an error stops the writer
  // like a failed fdatasync.
  virtual absl::Status Synced(uint64_t lsn) = 0;
};

struct WriterOptions {
  FileSystem* fs = nullptr;  // required
  std::string dir;           // required; must exist
  uint64_t max_segment_bytes = 64ull << 20;
  // Reserve each new segment's space up front (fallocate, keep size).
  bool preallocate = false;
  // Stored in every segment header: the session message's descriptor set.
  std::string schema;
  // Longest a sync leader lingers for released callers (see LogWriter); the
  // wait also ends one smoothed sync duration after their release. 0: never.
  std::chrono::microseconds max_linger = std::chrono::milliseconds(2);
  // Told of every write and sync (may be null; not owned).
  LogObserver* observer = nullptr;
};

struct WriterStats {
  uint64_t last_lsn = 0;        // last LSN assigned by Append
  uint64_t durable_lsn = 0;     // every record <= this is fdatasynced
  uint64_t syncs = 0;           // fdatasyncs issued on segments
  uint64_t synced_records = 0;  // records made durable by those syncs
  uint64_t sync_requests = 0;   // SyncTo calls that had to wait for a sync
  // Syncs whose leader waited for released callers to append again, and how
  // many of those waits ended at the deadline with none of them back.
  uint64_t lingers = 0;
  uint64_t fruitless_lingers = 0;
  uint64_t bytes_written = 0;  // record and header bytes written
  // Writeback started right after a write that was not synced at once (a
  // Flush), and how many of those hints the file system refused.
  uint64_t writeback_hints = 0;
  uint64_t writeback_hint_failures = 0;
  uint64_t segments_created = 0;
  uint64_t current_segment = 0;
  uint64_t current_segment_bytes = 0;  // including buffered bytes
  uint64_t buffered_bytes = 0;
  // Where the frame of record last_lsn starts: segment number and offset
  // (0, 0 before this writer's first append). A snapshot at last_lsn stores
  // it so that recovery can start reading the log right after that record.
  uint64_t last_record_segment = 0;
  uint64_t last_record_offset = 0;
};

class LogWriter {
 public:
  // Creates segment `segment_number` in options.dir whose first record will
  // have LSN `next_lsn`, and fsyncs the directory. The file must not exist.
  // LSNs start at 1 (`next_lsn` 0 is InvalidArgument). The newest existing
  // segment below `segment_number` is fdatasynced first (recovery may have
  // read records of it that only reached the page cache), and the header is
  // synced before Create returns. After recovery, cut any torn tail the reader
  // tolerated before creating the next segment (docs/FORMAT.md, 7.4), or it
  // becomes damage in a segment that is no longer the last.
  static absl::StatusOr<std::unique_ptr<LogWriter>> Create(
      const WriterOptions& options, uint64_t segment_number, uint64_t next_lsn);

  ~LogWriter();  // Does not sync; call Close() for that.

  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  // Buffers one record and returns its LSN. No I/O. Fails only when the writer
  // is poisoned, closed, or `payload` exceeds kMaxRecordSize.
  absl::StatusOr<uint64_t> Append(uint8_t type, absl::string_view payload);

  // Append() of a `payload_size`-byte payload that `encode` writes straight
  // into the writer's buffer (exactly payload_size bytes at the pointer it
  // is given), which saves building the payload elsewhere and copying it.
  // The frame is the one Append() would write for the same bytes. `encode`
  // runs with the writer's lock held, so it must be short and must not call
  // the writer. If it fails, its error is returned and nothing is appended:
  // no LSN is used, and the writer is not poisoned (no I/O failed).
  absl::StatusOr<uint64_t> AppendEncoded(
      uint8_t type, size_t payload_size,
      absl::FunctionRef<absl::Status(char* payload)> encode);

  // Writes everything buffered to the segment files (no fdatasync).
  absl::Status Flush();

  // Returns once every record with LSN <= `lsn` is durable (group commit).
  // An `lsn` beyond the last assigned one means the last assigned one.
  absl::Status SyncTo(uint64_t lsn);

  // SyncTo(last assigned LSN).
  absl::Status Sync();

  // Flushes, syncs and closes the current segment. Further calls fail, except
  // Close(), which returns the first Close()'s result again.
  absl::Status Close();

  // OK, or the error that poisoned the writer.
  absl::Status status() const;

  uint64_t last_lsn() const;
  uint64_t durable_lsn() const;
  WriterStats stats() const;

  // Threads inside SyncTo() (or Sync()) right now: waiting for a sync,
  // doing one, or woken by one and not yet returned. Read without the
  // writer's lock, for a thread that keeps a core busy and wants to know
  // whether yielding it could let such a caller run (the engine's tick).
  uint32_t sync_callers() const {
    return sync_callers_.load(std::memory_order_relaxed);
  }

  // For tests: sets the smoothed write + fdatasync duration that bounds a
  // linger (with max_linger), as if the syncs so far had taken that long,
  // so that a test controls the linger deadline without timing a real sync.
  void SetSmoothedSyncTimeForTesting(std::chrono::nanoseconds sync_time);

 private:
  struct PendingSegment;  // a segment whose header or records await writing
  struct SyncWaiter;      // a SyncTo() caller asleep until a leader wakes it
  using WakeList = absl::InlinedVector<SyncWaiter*, 16>;

  explicit LogWriter(const WriterOptions& options);

  // Checks an Append's arguments and the writer's state, starts a new
  // segment if the record would not fit the current one, and returns the
  // buffer the record's frame is to be appended to (mu_ held).
  absl::StatusOr<std::string*> PrepareAppendLocked(uint8_t type,
                                                   size_t payload_size);
  // Accounts for the record just encoded at the end of that buffer (mu_
  // held).
  uint64_t FinishAppendLocked(size_t payload_size);
  // Starts a new logical segment for the next Append (mu_ held).
  void StartSegmentLocked();
  // The pending buffer records of the current segment go to (mu_ held).
  PendingSegment* PendingForCurrentLocked();
  // Waits until every record <= `lsn` is written (sync=false) or durable
  // (sync=true), leading the I/O when no one else does. Called with mu_ held;
  // may return with it released (see lock.owns_lock()).
  absl::Status WaitForLocked(std::unique_lock<std::mutex>& lock, uint64_t lsn,
                             bool sync);
  // Leader: takes all pending buffers, writes them with mu_ released, syncs if
  // `sync`, and publishes the result. Requires !io_busy_ and no poison.
  // Returns with mu_ held; the SyncTo() waiters it released are in `wake`,
  // for the caller to Wake() once it has dropped mu_.
  void WriteOutLocked(std::unique_lock<std::mutex>& lock, bool sync,
                      WakeList* wake);
  // After I/O ended (mu_ held, io_busy_ false): moves from sync_waiters_ to
  // `wake` those that can go on (durable, or the writer is poisoned) and, if
  // others still wait, one of them to lead their sync (first in `wake`).
  void TakeWakeableLocked(WakeList* wake);
  // Wakes each waiter with the state chosen for it (mu_ not held).
  static void Wake(const WakeList& wake);
  // A sync leader holding io_busy_ waits, with mu_ released, for the callers
  // the previous sync released to append again (see the file comment).
  void LingerLocked(std::unique_lock<std::mutex>& lock);
  // I/O helpers; called only by the thread owning io_busy_ (or by Create).
  absl::Status OpenSegmentFile(uint64_t number, const std::string& header);
  absl::Status SyncFile();

  const WriterOptions options_;

  std::atomic<uint32_t> sync_callers_{0};  // see sync_callers()

  // mu_ guards everything below up to file_; it is never held across I/O.
  // io_busy_ marks the one thread doing I/O (the group-commit leader or a
  // flusher).
  mutable std::mutex mu_;
  // For Flush() and Close(), which wait for written_lsn_ or !io_busy_.
  std::condition_variable cv_;
  // SyncTo() callers waiting for a sync, in arrival order.
  std::vector<SyncWaiter*> sync_waiters_;
  // Lingering: SyncTo() callers the last sync released, when, Appends since
  // then, and the smoothed duration of a write + fdatasync.
  uint64_t released_callers_ = 0;
  std::chrono::steady_clock::time_point released_at_;
  uint64_t appends_since_release_ = 0;
  std::chrono::nanoseconds sync_time_{0};
  bool lingering_ = false;
  std::condition_variable linger_cv_;
  uint32_t linger_backoff_ = 0;  // syncs to go before lingering again
  bool io_busy_ = false;
  bool closed_ = false;
  absl::Status poison_;
  uint64_t next_lsn_ = 0;     // LSN the next Append assigns
  uint64_t written_lsn_ = 0;  // last LSN handed to the file system
  uint64_t durable_lsn_ = 0;
  uint64_t segment_number_ = 0;  // of the segment Append encodes into
  uint64_t segment_salt_ = 0;
  uint64_t segment_bytes_ = 0;    // size of that segment once all is written
  uint64_t segment_records_ = 0;  // records Append put in that segment
  std::vector<std::unique_ptr<PendingSegment>> pending_;
  // Emptied buffers kept for reuse so steady appends do not allocate.
  std::vector<std::unique_ptr<PendingSegment>> spare_;
  WriterStats stats_;

  // Owned by the thread holding io_busy_ (no lock needed while it does).
  std::unique_ptr<WritableFile> file_;  // the segment being written
  bool file_unsynced_ = false;          // file_ has bytes not yet fdatasynced
  uint64_t file_synced_size_ = 0;       // bytes of file_ known durable
  // After a failed fdatasync: cuts file_ back to its durable bytes (the page
  // cache keeps the others, which would never reach the disk) and returns
  // the failure annotated with what happened.
  absl::Status CutUnsynced(const absl::Status& sync_error,
                           const std::string& path, uint64_t size);
};

}  // namespace log
}  // namespace walstate

#endif  // WALSTATE_ENGINE_LOG_WRITER_H_
