// Group commit under contention: many threads Append + SyncTo concurrently.
// Every acknowledged record must be readable after reopening, fdatasyncs must
// be shared, and the writer must be clean under TSan (run with
// --config=tsan).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/log/test_util.h"
#include "tests/wait_until.h"

namespace walstate {
namespace log {
namespace {

using testing::FaultyFileSystem;
using testing::ReadLog;
using testing::ReadResult;
using testing::WriterOptionsFor;

struct Acked {
  uint64_t lsn;
  std::string payload;
};

std::string ThreadPayload(int thread, int i) {
  // Sizes vary so segments roll over at different points.
  return absl::StrCat("t", thread, "-i", i, "-",
                      std::string((thread * 31 + i * 7) % 300, 'a' + thread));
}

void RunGroupCommit(int threads, int per_thread, uint64_t max_segment_bytes,
                    bool with_flushers) {
  FaultyFileSystem fs;  // counts syncs; injects nothing here
  WriterOptions options = WriterOptionsFor(&fs);
  const std::string dir = options.dir;
  options.max_segment_bytes = max_segment_bytes;
  auto w = LogWriter::Create(options, 1, 1);
  ASSERT_TRUE(w.ok()) << w.status();
  LogWriter* writer = w->get();

  const auto start = std::chrono::steady_clock::now();
  std::vector<std::vector<Acked>> acked(threads);
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        std::string payload = ThreadPayload(t, i);
        auto lsn = writer->Append(kUpdate, payload);
        if (!lsn.ok()) {
          failures++;
          return;
        }
        absl::Status s = writer->SyncTo(*lsn);
        if (!s.ok()) {
          failures++;
          return;
        }
        // Acknowledged: it must be durable now.
        if (writer->durable_lsn() < *lsn) failures++;
        acked[t].push_back({*lsn, std::move(payload)});
      }
    });
  }
  std::thread observer([&] {
    while (!stop.load()) {
      WriterStats st = writer->stats();
      if (st.durable_lsn > st.last_lsn) failures++;
      if (with_flushers && !writer->Flush().ok()) failures++;
      std::this_thread::yield();
    }
  });
  for (auto& th : pool) th.join();
  stop = true;
  observer.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  ASSERT_EQ(failures.load(), 0);

  const uint64_t appends = static_cast<uint64_t>(threads) * per_thread;
  WriterStats stats = writer->stats();
  EXPECT_EQ(stats.last_lsn, appends);
  EXPECT_EQ(stats.durable_lsn, appends);
  EXPECT_EQ(stats.synced_records, appends);
  EXPECT_GT(stats.segments_created, 1u);
  // Shared fdatasyncs: far fewer than one per append.
  EXPECT_LT(stats.syncs, appends);
  EXPECT_EQ(stats.syncs, static_cast<uint64_t>(fs.syncs()));
  std::printf(
      "%d threads x %d appends (%s): %llu syncs for %llu appends "
      "(%.2f records/sync, %llu sync requests, %llu segments) in %.2f s\n",
      threads, per_thread, with_flushers ? "with flusher" : "no flusher",
      static_cast<unsigned long long>(stats.syncs),
      static_cast<unsigned long long>(appends),
      static_cast<double>(appends) / static_cast<double>(stats.syncs),
      static_cast<unsigned long long>(stats.sync_requests),
      static_cast<unsigned long long>(stats.segments_created), seconds);
  ASSERT_TRUE(writer->Close().ok());

  // A fresh reader sees every acknowledged record, unaltered, with no gaps.
  ReadResult r = ReadLog(dir, RecoveryMode::kStrict);
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(r.records.size(), appends);
  for (size_t i = 0; i < r.records.size(); ++i) {
    ASSERT_EQ(r.records[i].lsn, i + 1);
  }
  for (int t = 0; t < threads; ++t) {
    ASSERT_EQ(acked[t].size(), static_cast<size_t>(per_thread));
    uint64_t prev = 0;
    for (const Acked& a : acked[t]) {
      ASSERT_GT(a.lsn, prev);  // a thread's own records stay in order
      prev = a.lsn;
      ASSERT_EQ(r.records[a.lsn - 1].payload, a.payload);
    }
  }
}

TEST(GroupCommitTest, EightThreadsShareSyncs) {
  RunGroupCommit(8, 400, 64 << 10, /*with_flushers=*/false);
}

TEST(GroupCommitTest, SixteenThreadsWithConcurrentFlushes) {
  RunGroupCommit(16, 150, 16 << 10, /*with_flushers=*/true);
}

// A sync failing while many threads wait: every waiter of that group and
// every later call gets the error; whatever was acknowledged before survives.
TEST(GroupCommitTest, FailureUnderContentionPoisonsEveryone) {
  FaultyFileSystem fs;
  WriterOptions options = WriterOptionsFor(&fs);
  const std::string dir = options.dir;
  options.max_segment_bytes = 8 << 10;
  auto w = LogWriter::Create(options, 1, 1);
  ASSERT_TRUE(w.ok()) << w.status();
  LogWriter* writer = w->get();
  const int syncs_before = fs.syncs();  // Create's header sync
  fs.FailSyncNumber(25);

  constexpr int kThreads = 8;
  std::vector<std::vector<Acked>> acked(kThreads);
  std::vector<absl::Status> first_error(kThreads);
  std::atomic<int> ok_after_error{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < kThreads; ++t) {
    pool.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        std::string payload = ThreadPayload(t, i);
        auto lsn = writer->Append(kUpdate, payload);
        absl::Status s = lsn.ok() ? writer->SyncTo(*lsn) : lsn.status();
        if (!s.ok()) {
          if (first_error[t].ok()) first_error[t] = s;
          continue;  // keep calling: every call must keep failing
        }
        if (!first_error[t].ok()) ok_after_error++;
        acked[t].push_back({*lsn, std::move(payload)});
      }
    });
  }
  for (auto& th : pool) th.join();
  EXPECT_EQ(ok_after_error.load(), 0);
  absl::Status poison = writer->status();
  ASSERT_FALSE(poison.ok());
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(first_error[t], poison) << "thread " << t;
  }
  // The failed sync was the last one: nothing retried it or synced after.
  EXPECT_EQ(fs.syncs(), syncs_before + 25);
  EXPECT_EQ(writer->Close(), poison);
  EXPECT_EQ(fs.syncs(), syncs_before + 25);

  ReadResult r = ReadLog(dir, RecoveryMode::kTolerateTornTail);
  ASSERT_TRUE(r.status.ok()) << r.status;
  for (int t = 0; t < kThreads; ++t) {
    for (const Acked& a : acked[t]) {
      ASSERT_LE(a.lsn, r.records.size());
      ASSERT_EQ(r.records[a.lsn - 1].payload, a.payload);
    }
  }
}

// Waits until `writer` counts `n` SyncTo calls that had to wait; such a call
// is queued (as leader or waiter) in the same critical section.
// Fails the test (and returns false) if they do not come.
bool WaitForSyncRequests(LogWriter* writer, uint64_t n) {
  ::testing::AssertionResult r = walstate::testing::WaitUntil(
      [&] { return writer->stats().sync_requests >= n; },
      absl::StrCat(n, " SyncTo calls to queue for a sync"));
  EXPECT_TRUE(r);
  return r;
}

// A sync wakes the callers it covered at once, even while the next group's
// sync is still running, and a caller it did not cover leads that next sync
// without any new caller arriving to lead it.
TEST(GroupCommitTest, CoveredWaitersReturnWhileTheNextGroupSyncs) {
  FaultyFileSystem fs;
  WriterOptions options = WriterOptionsFor(&fs);
  auto w = LogWriter::Create(options, 1, 1);
  ASSERT_TRUE(w.ok()) << w.status();
  LogWriter* writer = w->get();
  const int syncs_before = fs.syncs();

  auto lsn1 = writer->Append(kUpdate, "one");
  auto lsn2 = writer->Append(kUpdate, "two");
  ASSERT_TRUE(lsn1.ok() && lsn2.ok());
  fs.HoldSyncs();
  absl::Status s1, s2, s3;
  std::thread leader([&] { s1 = writer->SyncTo(*lsn1); });
  fs.WaitForHeldSyncs(1);
  std::thread covered([&] { s2 = writer->SyncTo(*lsn2); });
  WaitForSyncRequests(writer, 2);
  // Appended after the leader took its batch: the next group.
  auto lsn3 = writer->Append(kUpdate, "three");
  ASSERT_TRUE(lsn3.ok());
  std::atomic<bool> third_done{false};
  std::thread next([&] {
    s3 = writer->SyncTo(*lsn3);
    third_done = true;
  });
  WaitForSyncRequests(writer, 3);

  fs.LetSyncsThrough(1);
  leader.join();
  covered.join();
  EXPECT_TRUE(s1.ok()) << s1;
  EXPECT_TRUE(s2.ok()) << s2;
  // The third caller was woken to lead and is now in its own fdatasync.
  fs.WaitForHeldSyncs(1);
  EXPECT_FALSE(third_done.load());
  EXPECT_EQ(writer->durable_lsn(), *lsn2);

  fs.ReleaseSyncs();
  next.join();
  EXPECT_TRUE(s3.ok()) << s3;
  EXPECT_EQ(writer->durable_lsn(), *lsn3);
  EXPECT_EQ(fs.syncs(), syncs_before + 2);
  ASSERT_TRUE(writer->Close().ok());
}

// sync_callers() counts the threads inside SyncTo(): the leader in its
// fdatasync and the callers waiting for it, until each returns; a caller
// whose records are durable already passes through.
TEST(GroupCommitTest, SyncCallersCountsThreadsInsideSyncTo) {
  FaultyFileSystem fs;
  WriterOptions options = WriterOptionsFor(&fs);
  auto w = LogWriter::Create(options, 1, 1);
  ASSERT_TRUE(w.ok()) << w.status();
  LogWriter* writer = w->get();
  EXPECT_EQ(writer->sync_callers(), 0u);

  auto lsn1 = writer->Append(kUpdate, "one");
  ASSERT_TRUE(lsn1.ok());
  fs.HoldSyncs();
  absl::Status s1, s2;
  std::thread leader([&] { s1 = writer->SyncTo(*lsn1); });
  fs.WaitForHeldSyncs(1);
  EXPECT_EQ(writer->sync_callers(), 1u);
  std::thread waiter([&] { s2 = writer->SyncTo(*lsn1); });
  WaitForSyncRequests(writer, 2);
  EXPECT_EQ(writer->sync_callers(), 2u);

  fs.ReleaseSyncs();
  leader.join();
  waiter.join();
  EXPECT_TRUE(s1.ok()) << s1;
  EXPECT_TRUE(s2.ok()) << s2;
  EXPECT_EQ(writer->sync_callers(), 0u);
  ASSERT_TRUE(writer->SyncTo(*lsn1).ok());  // durable: no sync, no wait
  EXPECT_EQ(writer->sync_callers(), 0u);
  ASSERT_TRUE(writer->Close().ok());
  EXPECT_EQ(writer->sync_callers(), 0u);
}

// Two callers wait on one sync: the sync releases both. Then the smoothed
// sync time (which, with max_linger, bounds a linger) is set long, as if
// the syncs had been slow.
void ReleaseTwoCallersAfterASlowSync(LogWriter* writer, FaultyFileSystem* fs) {
  auto a = writer->Append(kUpdate, "a");
  auto b = writer->Append(kUpdate, "b");
  ASSERT_TRUE(a.ok() && b.ok());
  fs->HoldSyncs();
  absl::Status sa, sb;
  std::thread ta([&] { sa = writer->SyncTo(*a); });
  fs->WaitForHeldSyncs(1);
  std::thread tb([&] { sb = writer->SyncTo(*b); });
  const bool queued = WaitForSyncRequests(writer, 2);
  fs->ReleaseSyncs();
  ta.join();
  tb.join();
  ASSERT_TRUE(queued);
  ASSERT_TRUE(sa.ok() && sb.ok());
  writer->SetSmoothedSyncTimeForTesting(std::chrono::minutes(10));
}

// Two callers released by one sync: when one comes back, the leader of its
// sync waits for the other to append too, and one fdatasync carries both.
TEST(GroupCommitTest, LeaderLingersForReleasedCallers) {
  FaultyFileSystem fs;
  WriterOptions options = WriterOptionsFor(&fs);
  options.max_linger = std::chrono::seconds(60);
  auto w = LogWriter::Create(options, 1, 1);
  ASSERT_TRUE(w.ok()) << w.status();
  LogWriter* writer = w->get();

  // The smoothed sync time, and with it the linger deadline, is then far
  // beyond any delay of this test (the deadline is checked below through
  // the stats).
  ASSERT_NO_FATAL_FAILURE(ReleaseTwoCallersAfterASlowSync(writer, &fs));
  const int syncs_before = fs.syncs();

  auto c = writer->Append(kUpdate, "c");
  ASSERT_TRUE(c.ok());
  uint64_t d_lsn = 0;
  std::thread td([&] {
    // Only once the leader lingers: otherwise its batch would hold d anyway.
    // (Should the wait fail, d is still appended, which ends the linger.)
    EXPECT_TRUE(walstate::testing::WaitUntil(
        [&] { return writer->stats().lingers >= 1; }, "the leader to linger"));
    auto d = writer->Append(kUpdate, "d");
    ASSERT_TRUE(d.ok());
    d_lsn = *d;
  });
  absl::Status sc = writer->SyncTo(*c);
  td.join();
  ASSERT_TRUE(sc.ok()) << sc;
  WriterStats stats = writer->stats();
  EXPECT_EQ(stats.lingers, 1u);
  EXPECT_EQ(stats.fruitless_lingers, 0u);
  // d was appended during the linger and went out with c's fdatasync.
  EXPECT_EQ(stats.durable_lsn, d_lsn);
  EXPECT_EQ(fs.syncs(), syncs_before + 1);
  ASSERT_TRUE(writer->Close().ok());
}

// A caller that the previous sync released alone never lingers, and neither
// does anyone with max_linger 0.
TEST(GroupCommitTest, LoneCallerNeverLingers) {
  for (int max_linger_ms : {2, 0}) {
    FaultyFileSystem fs;
    WriterOptions options = WriterOptionsFor(&fs);
    options.max_linger = std::chrono::milliseconds(max_linger_ms);
    auto w = LogWriter::Create(options, 1, 1);
    ASSERT_TRUE(w.ok()) << w.status();
    for (int i = 0; i < 50; ++i) {
      auto lsn = (*w)->Append(kUpdate, absl::StrCat("r", i));
      ASSERT_TRUE(lsn.ok());
      ASSERT_TRUE((*w)->SyncTo(*lsn).ok());
    }
    EXPECT_EQ((*w)->stats().lingers, 0u) << max_linger_ms;
    ASSERT_TRUE((*w)->Close().ok());
  }
}

// A linger nobody answers ends at its deadline, and lingering then pauses.
TEST(GroupCommitTest, UnansweredLingerEndsAtItsDeadline) {
  FaultyFileSystem fs;
  WriterOptions options = WriterOptionsFor(&fs);
  options.max_linger = std::chrono::milliseconds(50);
  auto w = LogWriter::Create(options, 1, 1);
  ASSERT_TRUE(w.ok()) << w.status();
  LogWriter* writer = w->get();

  ASSERT_NO_FATAL_FAILURE(ReleaseTwoCallersAfterASlowSync(writer, &fs));

  // Only one of the two released callers comes back.
  auto c = writer->Append(kUpdate, "c");
  ASSERT_TRUE(c.ok());
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(writer->SyncTo(*c).ok());
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_LT(waited, std::chrono::seconds(5));
  WriterStats stats = writer->stats();
  EXPECT_LE(stats.lingers, 1u);
  EXPECT_EQ(stats.fruitless_lingers, stats.lingers);
  EXPECT_EQ(stats.durable_lsn, *c);
  ASSERT_TRUE(writer->Close().ok());
}

}  // namespace
}  // namespace log
}  // namespace walstate
