// The on-disk format of walstate's log segments, snapshots and manifest.
// docs/FORMAT.md explains it byte by byte; this header is its source of truth.
//
// All integers are little-endian. Every file starts with a FileHeader and is
// followed by 8-byte aligned record frames:
//
//   FileHeader (64 bytes + schema blob, padded to a multiple of 8)
//   offset size field
//        0    8 magic            "\x89WSTATE\n" (detects text-mode mangling)
//        8    4 format_version   kFormatVersion
//       12    4 header_size      64 + schema_size rounded up to 8; records
//                                start at this offset
//       16    4 file_kind        FileKind
//       20    4 schema_size      bytes of schema blob at offset 64
//       24    8 file_number      segment number / snapshot LSN / manifest gen
//       32    8 first_lsn        LSN of the first record in the file
//       40    8 salt             random per file; seeds every record hash
//       48    8 created_micros   creation time, Unix microseconds
//       56    8 header_hash      XXH3-64 (seed 0) of bytes [0,56) followed by
//                                the schema blob and its zero padding
//       64    n schema blob      a serialized walstate.record.Schema: the
//       session
//                                message's name and descriptor set (may be
//                                empty)
//
//   Record frame (24-byte header + payload + zero padding to 8 bytes)
//        0    8 hash             XXH3-64, seeded with the file's salt, of bytes
//                                [8,24) of this frame, the payload and padding
//        8    4 length           payload bytes (<= kMaxRecordSize)
//       12    1 type             RecordType
//       13    1 flags            RecordFlag bits; unknown bits are damage
//       14    2 reserved         0
//       16    8 lsn              first_lsn of the file + ordinal of the record
//       24    n payload          type-specific (see RecordType)
//
// Why this shape:
//  - The hash covers header fields and padding, not just the payload, so a flip
//    anywhere in a frame is caught (prior-art lesson 2).
//  - The salt seeds the hash, so bytes left by an earlier file, another
//    segment or preallocated zeros never parse as a record (lesson 4).
//  - LSNs must increase by exactly one, so a record replayed from elsewhere in
//    the same file is caught as well.
//  - A length is checked against kMaxRecordSize and the bytes left in the file
//    before anything is allocated (lesson 3).
//  - Frames are 8-byte aligned so a salvaging reader can resynchronize after
//    damage by probing each aligned offset.
//  - Records never span files: a record that does not fit starts a new segment.
#ifndef WALSTATE_ENGINE_LOG_FORMAT_H_
#define WALSTATE_ENGINE_LOG_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace walstate {
namespace log {

inline constexpr char kMagic[8] = {'\x89', 'W', 'S', 'T', 'A', 'T', 'E', '\n'};
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr size_t kFileHeaderFixedSize = 64;
inline constexpr size_t kRecordHeaderSize = 24;
inline constexpr size_t kAlignment = 8;
// Larger payloads are refused by the writer and treated as damage by readers.
inline constexpr uint32_t kMaxRecordSize = 64u << 20;
// A schema blob larger than this is treated as damage.
inline constexpr uint32_t kMaxSchemaSize = 16u << 20;

enum class FileKind : uint32_t {
  kSegment = 1,   // log segment: "seg-<16 hex segment number>.wal"
  kSnapshot = 2,  // snapshot: "snap-<16 hex LSN>.snap"
  kManifest = 3,  // "MANIFEST": names the current and previous snapshot
};

// Record types. 1..127 are required: a reader that does not know one must
// stop (the file was written by a newer walstate). 128..255 are optional: a
// reader that does not know one skips it. 0 is never valid, so zero-filled
// space is never mistaken for a record.
enum RecordType : uint8_t {
  kInvalid = 0,
  // An update of one session: payload walstate.record.Update.
  kUpdate = 1,
  // A durable tombstone: payload walstate.record.Delete.
  kDelete = 2,
  // Opens a batched tick; empty payload. Its LSN is the tick's id.
  kTickBegin = 3,
  // One session's batched fields in a tick: payload Update with `tick` set.
  kTickEntry = 4,
  // Commits a tick: payload walstate.record.TickEnd. Entries of a tick without
  // a commit never take effect.
  kTickCommit = 5,
  // Abandons a tick left open by a crash: payload TickEnd.
  kTickAbort = 6,
  // Snapshot files: one session's whole state: payload SessionState.
  kSnapshotSession = 16,
  // Snapshot files: the last record: payload SnapshotEnd.
  kSnapshotEnd = 17,
  // Manifest file: payload walstate.record.Manifest.
  kManifest = 24,
  kFirstOptionalType = 128,
  // Optional: stands in for a record `walctl repair --salvage` dropped, so
  // that LSNs stay consecutive. Empty payload; readers skip it.
  kSalvageFiller = 255,
};

inline bool IsOptionalType(uint8_t type) { return type >= kFirstOptionalType; }

// Bits of a frame's `flags` byte. Bits not defined here are reserved and must
// be zero; a reader treats a frame with any of them set as damaged.
//
// kRecordFlagAfterSync is set on the first frame the writer writes after an
// fdatasync that made every earlier byte of the file durable (the header's,
// for the first frame of a segment). Damage before an intact frame carrying
// it lies in data that was durable: corruption. Damage with no such frame
// after it may be the unsynced end of the log, which a crash can tear
// anywhere (disks persist unsynced sectors in any order): a torn tail.
inline constexpr uint8_t kRecordFlagAfterSync = 0x01;
inline constexpr uint8_t kKnownRecordFlags = kRecordFlagAfterSync;

// A short stable name for `type` ("update", "tick-entry", "type-200", ...).
std::string RecordTypeName(uint8_t type);

inline constexpr size_t AlignUp(size_t n) {
  return (n + kAlignment - 1) & ~(kAlignment - 1);
}

// Bytes a record with `payload_size` bytes of payload occupies on disk.
inline constexpr size_t FramedSize(size_t payload_size) {
  return kRecordHeaderSize + AlignUp(payload_size);
}

struct FileHeader {
  FileKind kind = FileKind::kSegment;
  uint64_t file_number = 0;
  uint64_t first_lsn = 0;
  uint64_t salt = 0;
  uint64_t created_micros = 0;
  std::string schema;  // serialized walstate.record.Schema, may be empty
  // Set by DecodeFileHeader: where the first record starts.
  uint64_t header_size = 0;
};

// Appends the encoded header (fixed part, schema, padding) to `out`.
void EncodeFileHeader(const FileHeader& header, std::string* out);

// Result of decoding a file header.
enum class HeaderStatus {
  kOk,
  kTooShort,    // fewer bytes than the header needs (empty or torn file)
  kBadMagic,    // not a walstate file
  kBadVersion,  // a walstate file of another format version
  kCorrupt,     // magic ok, but hash or sizes wrong
};

// Decodes the header at the start of `data`. On kOk fills `header`.
// `detail` receives a human-readable reason when not kOk.
HeaderStatus DecodeFileHeader(absl::string_view data, FileHeader* header,
                              std::string* detail);

// The fixed header fields of `data` (at least kFileHeaderFixedSize bytes)
// as they are, nothing checked and no schema: what DecodeFileHeader returns
// once it has checked them, and what salvage reads from a header that failed.
// A header that failed DecodeFileHeader may still hold an intact salt (the
// damage being elsewhere); records whose hash verifies with it are genuine.
FileHeader RawFileHeaderFields(absl::string_view data);

// Appends one framed record (header, payload, padding) to `out`.
void EncodeRecord(uint64_t salt, uint64_t lsn, uint8_t type,
                  absl::string_view payload, std::string* out);

// EncodeRecord in two steps, for a payload encoded in place: StartRecord
// appends a zero-filled frame for `payload_size` bytes to `out` and returns
// where the payload goes (kRecordHeaderSize bytes into the frame); once the
// payload is there, FinishRecord fills in the header of the frame at `frame`
// and hashes it. The result is the bytes EncodeRecord writes.
char* StartRecord(size_t payload_size, std::string* out);
void FinishRecord(uint64_t salt, uint64_t lsn, uint8_t type,
                  size_t payload_size, char* frame);

// The decoded fixed part of a record frame.
struct RecordHeader {
  uint64_t hash = 0;
  uint32_t length = 0;
  uint8_t type = 0;
  uint8_t flags = 0;
  uint16_t reserved = 0;
  uint64_t lsn = 0;
};

// ORs `flags` into the flags byte of the framed record at `frame` (header,
// payload and padding: `frame_size` bytes) and recomputes its hash.
void SetRecordFlags(uint64_t salt, uint8_t flags, char* frame,
                    size_t frame_size);

// Decodes the 24 bytes at `p` without validating them.
RecordHeader DecodeRecordHeader(const char* p);

// True if `frame` (the full framed bytes: header, payload, padding) hashes to
// the value stored in its header under `salt`.
bool RecordHashMatches(uint64_t salt, absl::string_view frame);

// File names.
std::string SegmentFileName(uint64_t segment_number);
std::string SnapshotFileName(uint64_t lsn);
inline constexpr char kManifestFileName[] = "MANIFEST";
inline constexpr char kLockFileName[] = "LOCK";
// Parses "seg-<hex>.wal"; false for other names.
bool ParseSegmentFileName(absl::string_view name, uint64_t* segment_number);
// Parses "snap-<hex>.snap"; false for other names.
bool ParseSnapshotFileName(absl::string_view name, uint64_t* lsn);
// True for the exact names walstate gives its temporaries: "MANIFEST.tmp",
// "snap-<hex>.snap.tmp" (the snapshot writer) and "seg-<hex>.wal.tmp"
// (`walctl repair`). Only these are removed at Open; any other "*.tmp" is
// someone else's.
bool IsOwnTempFileName(absl::string_view name);
// True for every name walstate creates in a data directory: segments,
// snapshots, MANIFEST, LOCK and its temporaries (not backup folders).
bool IsWalstateFileName(absl::string_view name);

}  // namespace log
}  // namespace walstate

#endif  // WALSTATE_ENGINE_LOG_FORMAT_H_
