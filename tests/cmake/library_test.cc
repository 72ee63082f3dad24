// Built only by the CMake build (WALSTATE_BUILD_TESTS=ON, run by ctest): the
// CMake-built library opens a store, keeps a value across a reopen, and
// reports the version its headers state. The Bazel suite tests the engine
// itself; this checks that the CMake build links and works.
#include <stdlib.h>

#include <string>

#include "google/protobuf/duration.pb.h"
#include "gtest/gtest.h"
#include "walstate/walstate.h"

namespace {

TEST(CMakeLibrary, VersionMatchesHeader) {
  EXPECT_EQ(std::string(walstate::Version()),
            std::to_string(WALSTATE_VERSION_MAJOR) + "." +
                std::to_string(WALSTATE_VERSION_MINOR) + "." +
                std::to_string(WALSTATE_VERSION_PATCH));
  EXPECT_EQ(walstate::FormatVersion(), WALSTATE_FORMAT_VERSION);
}

TEST(CMakeLibrary, ValueSurvivesReopen) {
  char tmpl[] = "/tmp/walstate-cmake-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = std::string(tmpl) + "/store";
  walstate::Options options;
  options.background_thread = false;
  using Store = walstate::Store<google::protobuf::Duration>;
  {
    auto store = Store::Open(options, dir);
    ASSERT_TRUE(store.ok()) << store.status();
    google::protobuf::Duration v;
    v.set_seconds(42);
    ASSERT_TRUE((*store)->Update("s1", v, {"seconds"}).ok());
    ASSERT_TRUE((*store)->Close().ok());
  }
  auto store = Store::Open(options, dir);
  ASSERT_TRUE(store.ok()) << store.status();
  auto got = (*store)->Get("s1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->seconds(), 42);
  EXPECT_TRUE((*store)->Close().ok());
}

}  // namespace
