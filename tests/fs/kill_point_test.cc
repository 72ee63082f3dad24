// The kill points' two halves: engine/fs/kill_point.h alone does nothing;
// linking //engine/fs:kill_point_env (as this test does) makes
// WALSTATE_KILL_POINT=<name>[:<n>] SIGKILL at the n-th passage of <name>.
#include "engine/fs/kill_point.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <string>

#include "engine/fs/kill_point_env.h"
#include "gtest/gtest.h"

namespace walstate {
namespace {

class KillPointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Each death test re-executes this binary, whose static initializer
    // reads the variable set here; this process read it unset.
    ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  }
  void TearDown() override { unsetenv("WALSTATE_KILL_POINT"); }
};

TEST_F(KillPointTest, NoHookWithoutTheVariable) {
  ASSERT_EQ(getenv("WALSTATE_KILL_POINT"), nullptr)
      << "run this test without WALSTATE_KILL_POINT set";
  EXPECT_EQ(kill_point_internal::hook.load(), nullptr);
  KillPoint("writer.after_sync");  // returns: nothing is armed
}

TEST_F(KillPointTest, KillsAtTheArmedPoint) {
  setenv("WALSTATE_KILL_POINT", "writer.after_sync", 1);
  EXPECT_EXIT(
      {
        KillPoint("writer.before_write");
        KillPoint("writer.after_sync");
        _exit(0);
      },
      ::testing::KilledBySignal(SIGKILL), "");
}

TEST_F(KillPointTest, KillsAtTheNthPassage) {
  setenv("WALSTATE_KILL_POINT", "engine.tick_mid:3", 1);
  EXPECT_EXIT(
      {
        KillPoint("engine.tick_mid");
        KillPoint("engine.tick_mid");
        _exit(7);
      },
      ::testing::ExitedWithCode(7), "");
  EXPECT_EXIT(
      {
        for (int i = 0; i < 3; ++i) KillPoint("engine.tick_mid");
        _exit(7);
      },
      ::testing::KilledBySignal(SIGKILL), "");
}

TEST_F(KillPointTest, OtherNamesDoNotKill) {
  setenv("WALSTATE_KILL_POINT", "compact.mid_delete", 1);
  EXPECT_EXIT(
      {
        for (const char* const* n = KillPointNames(); *n != nullptr; ++n) {
          if (std::strcmp(*n, "compact.mid_delete") != 0) KillPoint(*n);
        }
        _exit(7);
      },
      ::testing::ExitedWithCode(7), "");
}

TEST_F(KillPointTest, NamesAreUnique) {
  std::set<std::string> seen;
  for (const char* const* n = KillPointNames(); *n != nullptr; ++n) {
    EXPECT_TRUE(seen.insert(*n).second) << *n;
  }
  EXPECT_EQ(seen.size(), 17u);
}

}  // namespace
}  // namespace walstate
