// Fuzzes ReadManifest (engine/snapshot/manifest.h). The input is a MANIFEST
// file's bytes, read as is and with checksums fixed. Damage must give
// DataLoss or FailedPrecondition naming the file; a manifest that reads must
// survive WriteManifest/ReadManifest unchanged.
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/log/format.h"
#include "engine/snapshot/manifest.h"
#include "tests/fs/fault_injection_fs.h"
#include "tests/fuzz/fuzz_util.h"
#include "walstate/file_system.h"

namespace walstate {
namespace fuzz {
namespace {

void Check(absl::string_view data) {
  const std::string dir = "/d";
  FaultInjectionFileSystem fs;
  FUZZ_CHECK(fs.CreateDirs(dir).ok());
  FUZZ_CHECK(
      fs.WriteFileBytes(JoinPath(dir, log::kManifestFileName), data).ok());
  auto manifest = ReadManifest(&fs, dir);
  if (!manifest.ok()) {
    const absl::Status& s = manifest.status();
    FUZZ_CHECK(s.code() == absl::StatusCode::kDataLoss ||
                   s.code() == absl::StatusCode::kFailedPrecondition,
               s.ToString());
    FUZZ_CHECK(
        s.message().find(log::kManifestFileName) != absl::string_view::npos,
        s.ToString());
    return;
  }
  const std::string copy_dir = "/copy";
  FUZZ_CHECK(fs.CreateDirs(copy_dir).ok());
  absl::Status w = WriteManifest(&fs, copy_dir, *manifest);
  FUZZ_CHECK(w.ok(), w.ToString());
  auto again = ReadManifest(&fs, copy_dir);
  FUZZ_CHECK(again.ok(), again.status().ToString());
  FUZZ_CHECK(again->SerializeAsString() == manifest->SerializeAsString());
}

}  // namespace
}  // namespace fuzz
}  // namespace walstate

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using walstate::fuzz::Check;
  using walstate::fuzz::FixChecksums;
  walstate::fuzz::QuietProtobufLogging();
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  Check(input);
  const std::string fixed = FixChecksums(input);
  if (fixed != input) Check(fixed);
  return 0;
}
