#include "tests/walctl/walctl_test_util.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/log/format.h"
#include "engine/log/writer.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "proto/walstate/record.pb.h"
#include "tools/walctl/walctl.h"
#include "walstate/file_system.h"

namespace walstate {
namespace walctl_test {

std::string NewTempDir(const std::string& name) {
  static std::atomic<int> counter{0};
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(base != nullptr ? base : "/tmp", "/", name,
                                 "-", ::getpid(), "-", counter++);
  std::string cmd = "rm -rf '" + dir + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  EXPECT_EQ(::mkdir(dir.c_str(), 0755), 0) << dir;
  return dir;
}

RunResult RunWalctl(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  walctl::Context ctx(out, err);
  RunResult r;
  r.code = walctl::Run(ctx, args);
  r.out = out.str();
  r.err = err.str();
  return r;
}

namespace {
std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}
}  // namespace

RunResult RunBinary(const std::string& binary,
                    const std::vector<std::string>& args) {
  std::string dir = NewTempDir("run");
  std::string cmd = ShellQuote(binary);
  for (const std::string& a : args) cmd += " " + ShellQuote(a);
  cmd += " >" + dir + "/out 2>" + dir + "/err </dev/null";
  int status = std::system(cmd.c_str());
  RunResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = ReadFile(dir + "/out");
  r.err = ReadFile(dir + "/err");
  return r;
}

std::vector<std::string> WriteLog(const std::string& dir,
                                  const std::vector<TestRecord>& records,
                                  uint64_t max_segment_bytes,
                                  const std::string& schema, bool sync_each) {
  log::WriterOptions options;
  options.fs = FileSystem::Default();
  options.dir = dir;
  options.max_segment_bytes = max_segment_bytes;
  options.schema = schema;
  auto writer = log::LogWriter::Create(options, 1, 1);
  EXPECT_TRUE(writer.ok()) << writer.status();
  if (!writer.ok()) return {};
  for (const TestRecord& r : records) {
    auto lsn = (*writer)->Append(r.type, r.payload);
    EXPECT_TRUE(lsn.ok()) << lsn.status();
    // Each record durable before the next, as IMMEDIATE updates are: damage
    // before a later record is then damage in durable data (corruption), not
    // an unsynced end that a crash may tear anywhere.
    if (sync_each) {
      EXPECT_TRUE((*writer)->Sync().ok());
    }
  }
  EXPECT_TRUE((*writer)->Close().ok());
  std::vector<std::string> segments;
  for (const std::string& name : ListDir(dir)) {
    uint64_t n;
    if (log::ParseSegmentFileName(name, &n))
      segments.push_back(dir + "/" + name);
  }
  return segments;
}

std::vector<TestRecord> SimpleRecords(int n) {
  std::vector<TestRecord> records;
  for (int i = 1; i <= n; ++i) {
    // Valid Update payloads without a schema: enough for the log layer's
    // tests, and verify's payload check passes on them.
    record::Update update;
    update.set_session(absl::StrCat("s", i));
    records.push_back({log::kUpdate, update.SerializeAsString()});
  }
  return records;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  EXPECT_TRUE(out.good()) << path;
}

void TruncateFile(const std::string& path, uint64_t size) {
  EXPECT_EQ(::truncate(path.c_str(), static_cast<off_t>(size)), 0) << path;
}

void FlipByte(const std::string& path, uint64_t offset) {
  std::string data = ReadFile(path);
  ASSERT_LT(offset, data.size());
  data[offset] = static_cast<char>(data[offset] ^ 0x5a);
  WriteFile(path, data);
}

uint64_t FileSize(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_size);
}

std::vector<std::string> ListDir(const std::string& dir) {
  auto names = FileSystem::Default()->ListDir(dir);
  EXPECT_TRUE(names.ok()) << names.status();
  if (!names.ok()) return {};
  std::sort(names->begin(), names->end());
  return *names;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

void CopyDir(const std::string& from, const std::string& to) {
  ::mkdir(to.c_str(), 0755);
  for (const std::string& name : ListDir(from)) {
    struct stat st;
    std::string src = from + "/" + name;
    if (::stat(src.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      WriteFile(to + "/" + name, ReadFile(src));
    }
  }
}

google::protobuf::Value ParseJson(const std::string& text) {
  google::protobuf::Value value;
  auto status = google::protobuf::util::JsonStringToMessage(text, &value);
  if (!status.ok()) {
    ADD_FAILURE() << "not JSON: " << status.ToString() << ": " << text;
  }
  return value;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

std::string ReplaceAll(std::string s, const std::string& from,
                       const std::string& to) {
  if (from.empty()) return s;
  size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
  return s;
}

}  // namespace walctl_test
}  // namespace walstate
