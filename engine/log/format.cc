#include "engine/log/format.h"

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#define XXH_STATIC_LINKING_ONLY  // for XXH3_state_t on the stack
#include "xxhash.h"

namespace walstate {
namespace log {
namespace {

void PutFixed32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
void PutFixed64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
uint32_t GetFixed32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
uint64_t GetFixed64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

uint64_t HeaderHash(absl::string_view fixed56,
                    absl::string_view schema_padded) {
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  XXH3_64bits_update(&state, fixed56.data(), fixed56.size());
  XXH3_64bits_update(&state, schema_padded.data(), schema_padded.size());
  return XXH3_64bits_digest(&state);
}

bool ParseHexName(absl::string_view name, absl::string_view prefix,
                  absl::string_view suffix, uint64_t* value) {
  if (name.size() != prefix.size() + 16 + suffix.size()) return false;
  if (name.substr(0, prefix.size()) != prefix) return false;
  if (name.substr(name.size() - suffix.size()) != suffix) return false;
  absl::string_view hex = name.substr(prefix.size(), 16);
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return absl::SimpleHexAtoi(hex, value);
}

}  // namespace

std::string RecordTypeName(uint8_t type) {
  switch (type) {
    case kUpdate:
      return "update";
    case kDelete:
      return "delete";
    case kTickBegin:
      return "tick-begin";
    case kTickEntry:
      return "tick-entry";
    case kTickCommit:
      return "tick-commit";
    case kTickAbort:
      return "tick-abort";
    case kSnapshotSession:
      return "snapshot-session";
    case kSnapshotEnd:
      return "snapshot-end";
    case kManifest:
      return "manifest";
    case kSalvageFiller:
      return "salvage-filler";
    default:
      return absl::StrCat("type-", type);
  }
}

void EncodeFileHeader(const FileHeader& header, std::string* out) {
  const size_t start = out->size();
  const size_t padded_schema = AlignUp(header.schema.size());
  out->resize(start + kFileHeaderFixedSize + padded_schema, '\0');
  char* p = out->data() + start;
  std::memcpy(p, kMagic, 8);
  PutFixed32(p + 8, kFormatVersion);
  PutFixed32(p + 12,
             static_cast<uint32_t>(kFileHeaderFixedSize + padded_schema));
  PutFixed32(p + 16, static_cast<uint32_t>(header.kind));
  PutFixed32(p + 20, static_cast<uint32_t>(header.schema.size()));
  PutFixed64(p + 24, header.file_number);
  PutFixed64(p + 32, header.first_lsn);
  PutFixed64(p + 40, header.salt);
  PutFixed64(p + 48, header.created_micros);
  std::memcpy(p + kFileHeaderFixedSize, header.schema.data(),
              header.schema.size());
  uint64_t hash =
      HeaderHash(absl::string_view(p, 56),
                 absl::string_view(p + kFileHeaderFixedSize, padded_schema));
  PutFixed64(p + 56, hash);
}

HeaderStatus DecodeFileHeader(absl::string_view data, FileHeader* header,
                              std::string* detail) {
  if (data.size() < kFileHeaderFixedSize) {
    if (data.size() >= 8 && std::memcmp(data.data(), kMagic, 8) != 0) {
      *detail = "not a walstate file (bad magic)";
      return HeaderStatus::kBadMagic;
    }
    *detail = absl::StrCat("file header needs ", kFileHeaderFixedSize,
                           " bytes, file has ", data.size());
    return HeaderStatus::kTooShort;
  }
  const char* p = data.data();
  if (std::memcmp(p, kMagic, 8) != 0) {
    *detail = "not a walstate file (bad magic)";
    return HeaderStatus::kBadMagic;
  }
  uint32_t version = GetFixed32(p + 8);
  if (version != kFormatVersion) {
    *detail = absl::StrCat("format version ", version, ", this build reads ",
                           kFormatVersion, " (use a matching walstate)");
    return HeaderStatus::kBadVersion;
  }
  uint32_t header_size = GetFixed32(p + 12);
  uint32_t kind = GetFixed32(p + 16);
  uint32_t schema_size = GetFixed32(p + 20);
  if (schema_size > kMaxSchemaSize ||
      header_size != kFileHeaderFixedSize + AlignUp(schema_size)) {
    *detail = absl::StrCat("header sizes inconsistent (header_size ",
                           header_size, ", schema_size ", schema_size, ")");
    return HeaderStatus::kCorrupt;
  }
  if (data.size() < header_size) {
    *detail = absl::StrCat("file header needs ", header_size,
                           " bytes, file has ", data.size());
    return HeaderStatus::kTooShort;
  }
  uint64_t stored = GetFixed64(p + 56);
  uint64_t actual =
      HeaderHash(absl::string_view(p, 56),
                 absl::string_view(p + kFileHeaderFixedSize, header_size - 64));
  if (stored != actual) {
    *detail = "file header checksum mismatch";
    return HeaderStatus::kCorrupt;
  }
  if (kind < 1 || kind > 3) {
    *detail = absl::StrCat("unknown file kind ", kind);
    return HeaderStatus::kCorrupt;
  }
  *header = RawFileHeaderFields(data);
  header->schema.assign(p + kFileHeaderFixedSize, schema_size);
  return HeaderStatus::kOk;
}

FileHeader RawFileHeaderFields(absl::string_view data) {
  FileHeader header;
  if (data.size() < kFileHeaderFixedSize) return header;
  const char* p = data.data();
  header.header_size = GetFixed32(p + 12);
  header.kind = static_cast<FileKind>(GetFixed32(p + 16));
  header.file_number = GetFixed64(p + 24);
  header.first_lsn = GetFixed64(p + 32);
  header.salt = GetFixed64(p + 40);
  header.created_micros = GetFixed64(p + 48);
  return header;
}

void EncodeRecord(uint64_t salt, uint64_t lsn, uint8_t type,
                  absl::string_view payload, std::string* out) {
  char* p = StartRecord(payload.size(), out);
  if (!payload.empty()) std::memcpy(p, payload.data(), payload.size());
  FinishRecord(salt, lsn, type, payload.size(), p - kRecordHeaderSize);
}

char* StartRecord(size_t payload_size, std::string* out) {
  const size_t start = out->size();
  out->resize(start + FramedSize(payload_size), '\0');
  return out->data() + start + kRecordHeaderSize;
}

void FinishRecord(uint64_t salt, uint64_t lsn, uint8_t type,
                  size_t payload_size, char* frame) {
  PutFixed32(frame + 8, static_cast<uint32_t>(payload_size));
  frame[12] = static_cast<char>(type);
  frame[13] = 0;
  frame[14] = 0;
  frame[15] = 0;
  PutFixed64(frame + 16, lsn);
  PutFixed64(frame, XXH3_64bits_withSeed(frame + 8,
                                         FramedSize(payload_size) - 8, salt));
}

void SetRecordFlags(uint64_t salt, uint8_t flags, char* frame,
                    size_t frame_size) {
  frame[13] = static_cast<char>(static_cast<uint8_t>(frame[13]) | flags);
  PutFixed64(frame, XXH3_64bits_withSeed(frame + 8, frame_size - 8, salt));
}

RecordHeader DecodeRecordHeader(const char* p) {
  RecordHeader h;
  h.hash = GetFixed64(p);
  h.length = GetFixed32(p + 8);
  h.type = static_cast<uint8_t>(p[12]);
  h.flags = static_cast<uint8_t>(p[13]);
  h.reserved = static_cast<uint16_t>(static_cast<uint8_t>(p[14]) |
                                     (static_cast<uint8_t>(p[15]) << 8));
  h.lsn = GetFixed64(p + 16);
  return h;
}

bool RecordHashMatches(uint64_t salt, absl::string_view frame) {
  if (frame.size() < kRecordHeaderSize) return false;
  return GetFixed64(frame.data()) ==
         XXH3_64bits_withSeed(frame.data() + 8, frame.size() - 8, salt);
}

std::string SegmentFileName(uint64_t segment_number) {
  return absl::StrFormat("seg-%016x.wal", segment_number);
}

std::string SnapshotFileName(uint64_t lsn) {
  return absl::StrFormat("snap-%016x.snap", lsn);
}

bool ParseSegmentFileName(absl::string_view name, uint64_t* segment_number) {
  return ParseHexName(name, "seg-", ".wal", segment_number);
}

bool ParseSnapshotFileName(absl::string_view name, uint64_t* lsn) {
  return ParseHexName(name, "snap-", ".snap", lsn);
}

bool IsOwnTempFileName(absl::string_view name) {
  constexpr absl::string_view kTmp = ".tmp";
  if (name.size() <= kTmp.size() ||
      name.substr(name.size() - kTmp.size()) != kTmp) {
    return false;
  }
  const absl::string_view base = name.substr(0, name.size() - kTmp.size());
  uint64_t n = 0;
  return base == kManifestFileName || ParseSnapshotFileName(base, &n) ||
         ParseSegmentFileName(base, &n);
}

bool IsWalstateFileName(absl::string_view name) {
  uint64_t n = 0;
  return ParseSegmentFileName(name, &n) || ParseSnapshotFileName(name, &n) ||
         name == kManifestFileName || name == kLockFileName ||
         IsOwnTempFileName(name);
}

}  // namespace log
}  // namespace walstate
