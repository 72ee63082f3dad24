// Helpers shared by walstate's libFuzzer targets (tests/fuzz/*_fuzzer.cc),
// the corpus generator and the corpus replay tests.
//
// Checksums. Every file header and record frame carries an XXH3 hash, so
// almost every mutation of a real file is rejected at the first hash check
// and the fuzzer would never get past it into the code that interprets
// headers, LSNs, payloads, ticks and snapshots. The targets therefore read
// each input twice: as is (hash checking itself is fuzzed) and after
// FixChecksums() has recomputed every hash the file's structure lets it find
// (what a buggy or hostile writer could produce). The engine's checks are
// never bypassed.
//
// Directory images. The whole-directory target reads its input as a small
// archive (EncodeImage/DecodeImage):
//
//   byte 0        options: bits 0-1 recovery mode (0, 3: tolerate-torn-tail,
//                 1: strict, 2: salvage)
//   then up to kMaxImageFiles entries, each
//     1 byte      tag: bits 0-2 NameKind, bit 3 fix checksums, bits 4-7 n
//     4 bytes     length, little-endian (clamped to the bytes left)
//     length      file contents
//
// File names are chosen by kind, so that mutations keep most files where the
// engine looks for them (see NameKind).
#ifndef WALSTATE_TESTS_FUZZ_FUZZ_UTIL_H_
#define WALSTATE_TESTS_FUZZ_FUZZ_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "engine/log/reader.h"

namespace walstate {
namespace fuzz {

// Aborts (a crash for libFuzzer, which keeps the input) with a message when
// an invariant does not hold.
#define FUZZ_CHECK(cond, ...)                                         \
  do {                                                                \
    if (!(cond)) {                                                    \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, \
                   __LINE__, #cond);                                  \
      ::walstate::fuzz::PrintDetail(__VA_ARGS__);                     \
      std::abort();                                                   \
    }                                                                 \
  } while (0)

inline void PrintDetail() {}
inline void PrintDetail(const std::string& detail) {
  std::fprintf(stderr, "  %s\n", detail.c_str());
}

// Silences protobuf's error logging (descriptor pools built from fuzzed
// schemas complain on stderr at every iteration). Idempotent.
void QuietProtobufLogging();

// Recomputes the header hash and every record frame's hash of a file in
// walstate's format, as far as the header's sizes and the frames' lengths
// let it walk the file. Anything that does not look like a header is left
// unchanged.
std::string FixChecksums(absl::string_view file);

// The header's file_number field (bytes 24..31) if the data is long enough,
// otherwise `fallback`. Used to name files the way the engine would.
uint64_t HeaderFileNumber(absl::string_view file, uint64_t fallback);

// The recovery modes, in order of tolerance.
inline constexpr log::RecoveryMode kModes[] = {
    log::RecoveryMode::kStrict, log::RecoveryMode::kTolerateTornTail,
    log::RecoveryMode::kSalvage};

// ---- Directory images.

enum class NameKind : uint8_t {
  kSegmentByHeader = 0,   // seg-<header file_number>.wal
  kSegmentByN = 1,        // seg-<n>.wal
  kSnapshotByHeader = 2,  // snap-<header file_number>.snap
  kSnapshotByN = 3,       // snap-<n>.snap
  kManifest = 4,          // MANIFEST
  kManifestTmp = 5,       // MANIFEST.tmp
  kSnapshotTmp = 6,       // snap-<header file_number>.snap.tmp
  kOther = 7,             // LOCK (n even) or notes.txt (n odd)
};

inline constexpr size_t kMaxImageFiles = 8;

struct ImageEntry {
  NameKind kind = NameKind::kOther;
  bool fix_checksums = false;
  uint8_t n = 0;  // 0..15
  std::string data;
};

struct Image {
  log::RecoveryMode mode = log::RecoveryMode::kTolerateTornTail;
  std::vector<ImageEntry> entries;
};

std::string EncodeImage(const Image& image);
Image DecodeImage(absl::string_view input);

// The files an image puts in its directory: name -> contents (checksums
// fixed where asked). A later entry with the same name replaces an earlier.
std::map<std::string, std::string> ImageFiles(const Image& image);

// The kind that puts a file with this name (and these contents) back under
// the same name, for the generator; kOther if there is none.
NameKind KindForName(absl::string_view name, absl::string_view data);

}  // namespace fuzz
}  // namespace walstate

#endif  // WALSTATE_TESTS_FUZZ_FUZZ_UTIL_H_
