// The POSIX file system's calls that the fault-injecting one only models.
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "walstate/file_system.h"

namespace walstate {
namespace {

using ::testing::HasSubstr;

std::string TempPath(const std::string &name) {
  const char *dir = std::getenv("TEST_TMPDIR");
  return JoinPath(dir != nullptr ? dir : "/tmp", name);
}

TEST(PosixFileSystemTest, StartWritebackQueuesWritesAndKeepsTheFileUsable) {
  FileSystem *fs = FileSystem::Default();
  const std::string path = TempPath("writeback");
  auto f = fs->NewWritableFile(path);
  ASSERT_TRUE(f.ok()) << f.status();
  const std::string a(300 << 10, 'a');
  const std::string b(5000, 'b');
  ASSERT_TRUE((*f)->Append(a).ok());
  EXPECT_TRUE((*f)->StartWriteback(0, a.size()).ok());
  ASSERT_TRUE((*f)->Append(b).ok());
  // A range reaching past the end, and an unaligned one, are fine too.
  EXPECT_TRUE((*f)->StartWriteback(a.size(), 1 << 20).ok());
  EXPECT_TRUE((*f)->StartWriteback(7, 3).ok());
  EXPECT_EQ((*f)->Size(), a.size() + b.size());
  ASSERT_TRUE((*f)->Sync().ok());
  ASSERT_TRUE((*f)->Close().ok());
  std::string got;
  ASSERT_TRUE(fs->ReadFile(path, &got).ok());
  EXPECT_TRUE(got == a + b);

  // Its errors name the call, the range and the file.
  absl::Status s = (*f)->StartWriteback(0, 10);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()),
              HasSubstr(absl::StrCat("sync_file_range (start writeback) of 10 "
                                     "bytes at offset 0 ",
                                     path)));
  ASSERT_TRUE(fs->DeleteFile(path).ok());
}

}  // namespace
}  // namespace walstate
