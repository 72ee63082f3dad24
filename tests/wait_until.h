// Bounded waits for tests: poll a condition that another thread will make
// true, and fail with a message naming what was awaited if it does not come
// within a generous bound (a hung test then fails instead of timing out
// silently). The bound is not a pacing assumption: a passing run never waits
// for the clock, only for the condition.
#ifndef WALSTATE_TESTS_WAIT_UNTIL_H_
#define WALSTATE_TESTS_WAIT_UNTIL_H_

#include <chrono>
#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace walstate {
namespace testing {

// Polls `cond` (yielding, then sleeping 1 ms between polls once 10 ms have
// passed, so that a loaded machine is not kept busy) until it is true or
// `bound` has passed. Use as ASSERT_TRUE(WaitUntil(...)).
template <typename Cond>
::testing::AssertionResult WaitUntil(
    Cond cond, const std::string& what,
    std::chrono::milliseconds bound = std::chrono::seconds(60)) {
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    if (cond()) return ::testing::AssertionSuccess();
    const auto waited = std::chrono::steady_clock::now() - start;
    if (waited >= bound) {
      return ::testing::AssertionFailure()
             << "gave up after "
             << std::chrono::duration_cast<std::chrono::seconds>(bound).count()
             << " s waiting for " << what;
    }
    if (waited < std::chrono::milliseconds(10)) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
}

}  // namespace testing
}  // namespace walstate

#endif  // WALSTATE_TESTS_WAIT_UNTIL_H_
