#include "engine/state/apply_pool.h"

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/wait_until.h"

namespace walstate {
namespace {

// Every item arrives exactly once, with its payload intact, and items of one
// route in the order they were added, for 0, 1, 2 and 5 workers.
TEST(ApplyPoolTest, KeepsTheOrderOfEachRoute) {
  for (size_t workers : {0, 1, 2, 5}) {
    std::mutex mu;
    std::map<uint64_t, std::vector<uint64_t>> seen;  // route -> lsns
    ApplyPool pool(workers, [&](const ApplyPool::Item& item) {
      // The payload names its route and LSN.
      EXPECT_EQ(item.payload, absl::StrCat("r", item.lsn % 13, "/", item.lsn,
                                           std::string(item.lsn % 300, 'x')));
      EXPECT_EQ(item.type, item.lsn % 3);
      EXPECT_EQ(item.hash, item.lsn * 31);  // handed through unchanged
      std::lock_guard<std::mutex> lock(mu);
      seen[item.lsn % 13].push_back(item.lsn);
      return absl::OkStatus();
    });
    // Enough bytes for many batches per worker, so the reader also waits.
    constexpr uint64_t kItems = 40000;
    for (uint64_t lsn = 1; lsn <= kItems; ++lsn) {
      const uint64_t route = lsn % 13;
      ASSERT_TRUE(pool.Add(route, lsn * 31, lsn, static_cast<uint8_t>(lsn % 3),
                           absl::StrCat("r", route, "/", lsn,
                                        std::string(lsn % 300, 'x')),
                           "file", lsn * 8)
                      .ok());
    }
    ASSERT_TRUE(pool.Finish().ok());
    uint64_t total = 0;
    for (const auto& [route, lsns] : seen) {
      total += lsns.size();
      for (size_t i = 1; i < lsns.size(); ++i) {
        ASSERT_LT(lsns[i - 1], lsns[i]) << "route " << route;
      }
    }
    EXPECT_EQ(total, kItems) << workers << " workers";
  }
}

// On a worker, each item is prefetched step by step, step 0 first, all
// before it is applied; the first items of a batch, which nothing came
// before, may miss steps. Nothing is prefetched for an item already applied.
TEST(ApplyPoolTest, PrefetchesEachItemStepByStepBeforeApplyingIt) {
  struct Event {
    bool apply;
    uint64_t hash;
    int step;
  };
  std::mutex mu;
  std::vector<Event> events;  // one route: one worker, in its order
  ApplyPool pool(
      2,
      [&](const ApplyPool::Item& item) {
        std::lock_guard<std::mutex> lock(mu);
        events.push_back({true, item.hash, -1});
        return absl::OkStatus();
      },
      [&](uint64_t hash, int step) {
        std::lock_guard<std::mutex> lock(mu);
        events.push_back({false, hash, step});
      });
  constexpr uint64_t kItems = 500;  // a few KiB: one batch
  for (uint64_t lsn = 1; lsn <= kItems; ++lsn) {
    ASSERT_TRUE(pool.Add(0, lsn * 1000, lsn, 0, "payload", "file", lsn).ok());
  }
  ASSERT_TRUE(pool.Finish().ok());
  std::map<uint64_t, std::vector<int>> steps;  // hash -> steps issued
  std::set<uint64_t> applied;
  uint64_t fully_prefetched = 0;
  for (const Event& e : events) {
    if (!e.apply) {
      EXPECT_EQ(applied.count(e.hash), 0u) << "prefetched after its apply";
      steps[e.hash].push_back(e.step);
      continue;
    }
    applied.insert(e.hash);
    const std::vector<int>& issued = steps[e.hash];
    for (size_t i = 1; i < issued.size(); ++i) {
      EXPECT_LT(issued[i - 1], issued[i]) << "hash " << e.hash;
    }
    if (issued.size() == ApplyPool::kPrefetchSteps) ++fully_prefetched;
  }
  EXPECT_EQ(applied.size(), kItems);
  EXPECT_GE(fully_prefetched, kItems - 16);
}

// A pool told to issue fewer steps (a snapshot load prefetches the slot
// only) issues only those.
TEST(ApplyPoolTest, IssuesOnlyTheStepsItWasGiven) {
  std::mutex mu;
  std::set<int> steps;
  uint64_t calls = 0;
  ApplyPool pool(
      2, [](const ApplyPool::Item&) { return absl::OkStatus(); },
      [&](uint64_t, int step) {
        std::lock_guard<std::mutex> lock(mu);
        steps.insert(step);
        ++calls;
      },
      /*prefetch_steps=*/1);
  for (uint64_t lsn = 1; lsn <= 200; ++lsn) {
    ASSERT_TRUE(pool.Add(0, lsn, lsn, 0, "payload", "file", lsn).ok());
  }
  ASSERT_TRUE(pool.Finish().ok());
  EXPECT_EQ(steps, std::set<int>{0});
  EXPECT_GE(calls, 200u - 16);
}

// The error reported is the failed item with the lowest LSN, with its file
// and offset, whichever worker met it first.
TEST(ApplyPoolTest, ReportsTheEarliestFailureWithItsPosition) {
  for (size_t workers : {0, 3}) {
    // With workers, 700 and 701 go to different ones (routed by LSN), and
    // the worker at 700 waits until 701 has failed: the earliest failure is
    // met last. (Without workers they are met in order.)
    std::atomic<bool> failed_701{false};
    ApplyPool pool(workers, [&](const ApplyPool::Item& item) {
      if (item.lsn == 701 || item.lsn == 9000) {
        if (item.lsn == 701) failed_701 = true;
        return absl::DataLossError(absl::StrCat("bad ", item.lsn));
      }
      if (item.lsn == 700) {
        if (workers > 1) {
          EXPECT_TRUE(walstate::testing::WaitUntil(
              [&] { return failed_701.load(); },
              "LSN 701 to fail on another worker"));
        }
        return absl::DataLossError(absl::StrCat("bad ", item.lsn));
      }
      return absl::OkStatus();
    });
    for (uint64_t lsn = 1; lsn <= 10000; ++lsn) {
      absl::Status s = pool.Add(lsn, 0, lsn, 1, "payload",
                                absl::StrCat("seg-", lsn / 5000), lsn * 16);
      if (!s.ok()) break;  // a later Add reports the failure early
    }
    absl::Status s = pool.Finish();
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
    EXPECT_EQ(s.message(), "seg-0 offset 11200: bad 700") << workers;
  }
}

}  // namespace
}  // namespace walstate
