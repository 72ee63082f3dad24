// Manual throughput check of the log layer (not a test):
//   bazel run //tests/log:log_throughput -- [record_bytes] [total_mib]
// Writes a log with group commit off (one Sync at the end), then reads it
// back with LogReader, printing MB/s and records/s for both.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/log/reader.h"
#include "engine/log/writer.h"
#include "tests/log/test_util.h"

using walstate::FileSystem;
using namespace walstate::log;

int main(int argc, char** argv) {
  const size_t record = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1024;
  const size_t mib = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 256;
  const std::string dir = testing::NewTempDir();
  const size_t n = (mib << 20) / FramedSize(record);
  const std::string payload = testing::MakePayload(1, record);

  WriterOptions options;
  options.fs = FileSystem::Default();
  options.dir = dir;
  auto t0 = std::chrono::steady_clock::now();
  auto w = LogWriter::Create(options, 1, 1);
  if (!w.ok()) return 1;
  for (size_t i = 0; i < n; ++i) {
    if (!(*w)->Append(kUpdate, payload).ok()) return 1;
    if (i % 4096 == 4095 && !(*w)->Flush().ok()) return 1;
  }
  if (!(*w)->Close().ok()) return 1;
  auto t1 = std::chrono::steady_clock::now();

  LogReaderOptions ro;
  ro.fs = FileSystem::Default();
  ro.dir = dir;
  auto r = LogReader::Open(ro);
  if (!r.ok()) return 1;
  Record rec;
  size_t got = 0, bytes = 0;
  while ((*r)->Next(&rec)) {
    ++got;
    bytes += rec.payload.size();
  }
  auto t2 = std::chrono::steady_clock::now();
  if (!(*r)->status().ok() || got != n) {
    std::fprintf(stderr, "read failed: %zu of %zu\n", got, n);
    return 1;
  }
  const double ws = std::chrono::duration<double>(t1 - t0).count();
  const double rs = std::chrono::duration<double>(t2 - t1).count();
  const double mb = static_cast<double>(n * FramedSize(record)) / 1e6;
  std::printf("%zu records of %zu bytes (%.0f MB, %llu segments)\n", n, record,
              mb, static_cast<unsigned long long>((*r)->report().files));
  std::printf("write: %.2f s, %.0f MB/s, %.0f records/s\n", ws, mb / ws,
              n / ws);
  std::printf("read:  %.2f s, %.0f MB/s, %.0f records/s\n", rs, mb / rs,
              n / rs);
  std::string cmd = "rm -rf " + dir;
  return std::system(cmd.c_str()) == 0 ? 0 : 1;
}
