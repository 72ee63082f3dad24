// Helpers for walctl's tests: scratch directories, logs written through the
// real LogWriter, byte-level damage, in-process and out-of-process runs, and
// JSON parsing (via protobuf's Struct, so no extra dependency).
#ifndef WALSTATE_TESTS_WALCTL_WALCTL_TEST_UTIL_H_
#define WALSTATE_TESTS_WALCTL_WALCTL_TEST_UTIL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "google/protobuf/struct.pb.h"

namespace walstate {
namespace walctl_test {

// A fresh empty directory under TEST_TMPDIR.
std::string NewTempDir(const std::string& name);

struct RunResult {
  int code = -1;
  std::string out;
  std::string err;
};

// Runs walctl in-process: args exclude the program name.
RunResult RunWalctl(const std::vector<std::string>& args);

// Runs the walctl binary (path from the test's first argument) through the
// shell, capturing exit code, stdout and stderr.
RunResult RunBinary(const std::string& binary,
                    const std::vector<std::string>& args);

struct TestRecord {
  uint8_t type;
  std::string payload;
};

// Writes `records` with LSNs 1.. to segments of `dir` through LogWriter,
// rotating at `max_segment_bytes`, syncing after each record if `sync_each`.
// Returns the segment paths in order.
std::vector<std::string> WriteLog(const std::string& dir,
                                  const std::vector<TestRecord>& records,
                                  uint64_t max_segment_bytes,
                                  const std::string& schema = "",
                                  bool sync_each = true);

// `n` kUpdate records of sessions "s1".."s<n>" that set no field.
std::vector<TestRecord> SimpleRecords(int n);

std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& data);
void TruncateFile(const std::string& path, uint64_t size);
void FlipByte(const std::string& path, uint64_t offset);
uint64_t FileSize(const std::string& path);
std::vector<std::string> ListDir(const std::string& dir);
bool Exists(const std::string& path);
// Copies every regular file of `from` into `to` (created).
void CopyDir(const std::string& from, const std::string& to);

// Parses one JSON value; fails the test (ADD_FAILURE) if it does not parse.
google::protobuf::Value ParseJson(const std::string& text);
// Splits text into lines (without the newlines).
std::vector<std::string> Lines(const std::string& text);
// Replaces every occurrence of `from` in `s` by `to`.
std::string ReplaceAll(std::string s, const std::string& from,
                       const std::string& to);

}  // namespace walctl_test
}  // namespace walstate

#endif  // WALSTATE_TESTS_WALCTL_WALCTL_TEST_UTIL_H_
