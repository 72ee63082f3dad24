#include "tests/fuzz/fuzz_util.h"

#include <cstring>

#include "engine/log/format.h"
#include "google/protobuf/stubs/logging.h"
#define XXH_STATIC_LINKING_ONLY
#include "xxhash.h"

namespace walstate {
namespace fuzz {
namespace {

uint32_t Get32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

uint64_t Get64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

void Put32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
}

void Put64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * i));
}

void DropLog(google::protobuf::LogLevel, const char*, int, const std::string&) {
}

}  // namespace

void QuietProtobufLogging() {
  static const bool done = [] {
    google::protobuf::SetLogHandler(&DropLog);
    return true;
  }();
  (void)done;
}

std::string FixChecksums(absl::string_view file) {
  std::string f(file);
  if (f.size() < log::kFileHeaderFixedSize ||
      std::memcmp(f.data(), log::kMagic, sizeof(log::kMagic)) != 0) {
    return f;
  }
  const uint32_t header_size = Get32(f.data() + 12);
  const uint32_t schema_size = Get32(f.data() + 20);
  if (schema_size > log::kMaxSchemaSize ||
      header_size != log::kFileHeaderFixedSize + log::AlignUp(schema_size) ||
      f.size() < header_size) {
    return f;
  }
  std::string hashed = f.substr(0, 56);
  hashed.append(f, log::kFileHeaderFixedSize,
                header_size - log::kFileHeaderFixedSize);
  Put64(f.data() + 56, XXH3_64bits(hashed.data(), hashed.size()));

  const uint64_t salt = Get64(f.data() + 40);
  size_t off = header_size;
  while (f.size() - off >= log::kRecordHeaderSize) {
    const uint32_t length = Get32(f.data() + off + 8);
    if (length > log::kMaxRecordSize) break;
    const size_t framed = log::FramedSize(length);
    if (framed > f.size() - off) break;
    Put64(f.data() + off,
          XXH3_64bits_withSeed(f.data() + off + 8, framed - 8, salt));
    off += framed;
  }
  return f;
}

uint64_t HeaderFileNumber(absl::string_view file, uint64_t fallback) {
  if (file.size() < 32) return fallback;
  return Get64(file.data() + 24);
}

std::string EncodeImage(const Image& image) {
  std::string out;
  uint8_t options = 0;
  switch (image.mode) {
    case log::RecoveryMode::kTolerateTornTail:
      options = 0;
      break;
    case log::RecoveryMode::kStrict:
      options = 1;
      break;
    case log::RecoveryMode::kSalvage:
      options = 2;
      break;
  }
  out.push_back(static_cast<char>(options));
  for (const ImageEntry& e : image.entries) {
    const uint8_t tag = static_cast<uint8_t>(e.kind) |
                        (e.fix_checksums ? 0x08 : 0) |
                        static_cast<uint8_t>((e.n & 0x0f) << 4);
    out.push_back(static_cast<char>(tag));
    char len[4];
    Put32(len, static_cast<uint32_t>(e.data.size()));
    out.append(len, 4);
    out.append(e.data);
  }
  return out;
}

Image DecodeImage(absl::string_view input) {
  Image image;
  if (input.empty()) return image;
  switch (static_cast<uint8_t>(input[0]) & 3) {
    case 1:
      image.mode = log::RecoveryMode::kStrict;
      break;
    case 2:
      image.mode = log::RecoveryMode::kSalvage;
      break;
    default:
      image.mode = log::RecoveryMode::kTolerateTornTail;
      break;
  }
  input.remove_prefix(1);
  while (!input.empty() && image.entries.size() < kMaxImageFiles) {
    ImageEntry e;
    const uint8_t tag = static_cast<uint8_t>(input[0]);
    input.remove_prefix(1);
    e.kind = static_cast<NameKind>(tag & 0x07);
    e.fix_checksums = (tag & 0x08) != 0;
    e.n = static_cast<uint8_t>(tag >> 4);
    uint32_t len = 0;
    if (input.size() >= 4) {
      len = Get32(input.data());
      input.remove_prefix(4);
    } else {
      input = absl::string_view();
    }
    if (len > input.size()) len = static_cast<uint32_t>(input.size());
    e.data = std::string(input.substr(0, len));
    input.remove_prefix(len);
    image.entries.push_back(std::move(e));
  }
  return image;
}

std::map<std::string, std::string> ImageFiles(const Image& image) {
  std::map<std::string, std::string> files;
  for (const ImageEntry& e : image.entries) {
    std::string data = e.fix_checksums ? FixChecksums(e.data) : e.data;
    std::string name;
    switch (e.kind) {
      case NameKind::kSegmentByHeader:
        name = log::SegmentFileName(HeaderFileNumber(data, e.n));
        break;
      case NameKind::kSegmentByN:
        name = log::SegmentFileName(e.n);
        break;
      case NameKind::kSnapshotByHeader:
        name = log::SnapshotFileName(HeaderFileNumber(data, e.n));
        break;
      case NameKind::kSnapshotByN:
        name = log::SnapshotFileName(e.n);
        break;
      case NameKind::kManifest:
        name = log::kManifestFileName;
        break;
      case NameKind::kManifestTmp:
        name = std::string(log::kManifestFileName) + ".tmp";
        break;
      case NameKind::kSnapshotTmp:
        name = log::SnapshotFileName(HeaderFileNumber(data, e.n)) + ".tmp";
        break;
      case NameKind::kOther:
        name = (e.n % 2 == 0) ? log::kLockFileName : "notes.txt";
        break;
    }
    files[name] = std::move(data);
  }
  return files;
}

NameKind KindForName(absl::string_view name, absl::string_view data) {
  uint64_t n = 0;
  if (log::ParseSegmentFileName(name, &n)) {
    return HeaderFileNumber(data, ~n) == n ? NameKind::kSegmentByHeader
                                           : NameKind::kSegmentByN;
  }
  if (log::ParseSnapshotFileName(name, &n)) {
    return HeaderFileNumber(data, ~n) == n ? NameKind::kSnapshotByHeader
                                           : NameKind::kSnapshotByN;
  }
  if (name == log::kManifestFileName) return NameKind::kManifest;
  if (name == std::string(log::kManifestFileName) + ".tmp") {
    return NameKind::kManifestTmp;
  }
  return NameKind::kOther;
}

}  // namespace fuzz
}  // namespace walstate
