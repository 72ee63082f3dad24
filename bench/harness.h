// Scenarios shared by //bench:peers and //bench:walstate_bench: building a
// store of a given shape, timing the operations, checking what is recovered.
#ifndef WALSTATE_BENCH_HARNESS_H_
#define WALSTATE_BENCH_HARNESS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bench/contestant.h"
#include "bench/workload.h"

namespace walstate {
namespace bench {

// ---- machine helpers ----------------------------------------------------

// Monotonic nanoseconds.
int64_t NowNanos();
// CPU time of this thread / of the whole process (all threads), nanoseconds.
// On a shared, oversubscribed machine these are steadier than wall time.
int64_t ThreadCpuNanos();
int64_t ProcessCpuNanos();
// Bytes the allocator has handed out (mallinfo2: arenas plus mmapped).
uint64_t HeapBytes();
// Bytes this process has caused to be written to storage (/proc/self/io).
uint64_t ProcessWriteBytes();
// A fresh directory under $TEST_TMPDIR, $WALSTATE_BENCH_DIR or /tmp.
std::string MakeTempDir(const std::string& tag);
void RemoveTree(const std::string& path);
absl::Status CopyTree(const std::string& from, const std::string& to);
// Sum of the sizes of the regular files under `dir`.
uint64_t TreeBytes(const std::string& dir);
// Syncs every file under `dir` and drops it from the page cache, so the next
// read comes from the disk ("cold" recovery).
void EvictFromCache(const std::string& dir);
// Syncs every file under `dir`: a copy's dirty pages are written back now,
// not by the kernel's flusher threads while the Open timed next runs (on
// 2 cores they would take CPU from it).
void SyncTree(const std::string& dir);

// p in [0, 1]; sorts `v`.
double Percentile(std::vector<double>* v, double p);
double Median(std::vector<double> v);

// ---- workload drivers --------------------------------------------------

// Creates sessions [first, first + n) with their whole state (version 0) as
// batched writes, ticking every `tick_every` sessions.
absl::Status Populate(Contestant* c, const Workload& w, ExpectedState* e,
                      uint64_t first, uint64_t n, uint64_t tick_every);

// Applies `records` turn updates to sessions [0, sessions) in a fixed
// strided order starting at *cursor, ticking every `tick_size` updates (and
// at the end); tick_size 0 leaves them dirty, for the caller to tick. Returns
// caller-thread nanoseconds spent in UpdateBatched and the number of ticks in
// *ticks. With `call_nanos`, also the wall time of each UpdateBatched call
// (one clock read per call, which each figure includes), for its median: the
// mean alone hides whether a few slow calls or every call are slow.
struct TailResult {
  int64_t update_nanos = 0;
  int64_t update_cpu_nanos = 0;  // thread CPU time of the same calls
  int64_t tick_nanos = 0;
  uint64_t ticks = 0;
};
absl::StatusOr<TailResult> ApplyTail(Contestant* c, const Workload& w,
                                     ExpectedState* e, uint64_t sessions,
                                     uint64_t records, uint64_t tick_size,
                                     uint64_t* cursor,
                                     std::vector<double>* call_nanos = nullptr);

// Verifies the contestant's in-memory state against `e`.
absl::Status VerifyContestant(const Contestant& c, const Workload& w,
                              const ExpectedState& e);

// Closes, reopens `dir` and verifies: the recovered state must match.
absl::Status ReopenAndVerify(Contestant* c, const std::string& dir,
                             const Workload& w, const ExpectedState& e);

}  // namespace bench
}  // namespace walstate

#endif  // WALSTATE_BENCH_HARNESS_H_
