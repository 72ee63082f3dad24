// The bodies of the messages a store's stream holds (docs/replication.md,
// "On the stream"). Every message starts with a 48-byte header:
//
//   offset size field
//        0    4 magic       "WSRP"
//        4    1 version     1
//        5    1 kind        1 log, 2 claim, 3 snapshot chunk, 4 snapshot
//        manifest 6    2 flags       bit 0 (log): the body starts inside a
//        frame that
//                           the previous log message began
//        8    8 salt        log: the frames' salt; chunk: offset in the file
//       16    8 first_lsn   log: first record with bytes here; claim: the
//                           stream's last LSN when claimed; snapshot: its LSN
//       24    8 last_lsn    log: last record with bytes here
//       32    4 body_size   bytes after the header
//       36    4 reserved    0
//       40    8 hash        XXH3-64 (seed 0) of bytes [0, 40)
//
// All integers little-endian. A log body is walstate record frames
// (docs/FORMAT.md §3) exactly as the writer framed them, so each record's
// own checksum travels with it; a frame larger than a message continues in
// the next one. A claim's body is the writer's identity. A snapshot's chunks
// are the bytes of its file; its manifest (EncodeSnapshotManifest) comes last.
#ifndef WALSTATE_ENGINE_REPLICATION_WIRE_H_
#define WALSTATE_ENGINE_REPLICATION_WIRE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace walstate {
namespace replication {

inline constexpr size_t kMessageHeaderSize = 48;

enum class MessageKind : uint8_t {
  kLog = 1,
  kClaim = 2,
  kSnapshotChunk = 3,
  kSnapshotManifest = 4,
};

inline constexpr uint16_t kFlagContinues = 1;

struct MessageHeader {
  MessageKind kind = MessageKind::kLog;
  uint16_t flags = 0;
  uint64_t salt = 0;
  uint64_t first_lsn = 0;
  uint64_t last_lsn = 0;
  uint32_t body_size = 0;  // set by EncodeMessage
};

// Appends header and body to `out` (body_size taken from `body`).
void EncodeMessage(MessageHeader header, absl::string_view body,
                   std::string* out);

// Checks magic, version, header hash and size; on success fills `header`
// and points `body` into `message`. DataLoss saying what is wrong.
absl::Status DecodeMessage(absl::string_view message, MessageHeader* header,
                           absl::string_view* body);

// One log message's share of a run of frames.
struct LogPart {
  size_t offset = 0;  // into the frames
  size_t size = 0;
  uint64_t first_lsn = 0;
  uint64_t last_lsn = 0;
  bool continues = false;  // starts inside a frame the previous part began
};

// Cuts `frames` (whole frames of records first_lsn.., as the writer framed
// them) into parts of at most `max_body` bytes, at frame boundaries where a
// frame fits and inside a frame only where one does not.
std::vector<LogPart> SplitFrames(absl::string_view frames, uint64_t first_lsn,
                                 size_t max_body);

std::string EncodeClaim(absl::string_view writer, absl::string_view schema);
absl::Status DecodeClaim(absl::string_view body, std::string* writer,
                         std::string* schema);

// The last message of a published snapshot.
struct SnapshotManifest {
  uint64_t lsn = 0;
  uint64_t file_bytes = 0;
  uint64_t file_hash = 0;        // XXH3-64 (seed 0) of the whole file
  uint64_t first_chunk_seq = 0;  // stream sequence of its first chunk
  uint64_t chunks = 0;
  // Stream sequence of the first log message that may hold records after
  // `lsn` (a restore reads the log subject from there).
  uint64_t log_start_seq = 0;
  std::string file_name;  // "snap-<16 hex>.snap"
};

std::string EncodeSnapshotManifest(const SnapshotManifest& manifest);
absl::Status DecodeSnapshotManifest(absl::string_view body,
                                    SnapshotManifest* manifest);

// A verified record taken out of log messages.
struct StreamRecord {
  uint64_t lsn = 0;
  uint8_t type = 0;
  std::string payload;
};

// Takes log messages in stream order, reassembles frames split across
// messages, and checks every frame as recovery does (sizes, reserved bits,
// its checksum under the message's salt, consecutive LSNs). Anything wrong
// is DataLoss naming the message (`where`), the LSN and what to do; nothing
// of a damaged frame is returned.
class LogDecoder {
 public:
  absl::Status Add(const MessageHeader& header, absl::string_view body,
                   const std::string& where);
  // Records completed by the Add calls so far, in LSN order; the caller
  // takes them (clear() the vector).
  std::vector<StreamRecord>* records() { return &records_; }
  // A claim (a new writer) follows: a frame its predecessor began and never
  // finished was never acknowledged; it is dropped. Returns its size.
  size_t DropPartial();
  // OK unless the last message ended inside a frame.
  absl::Status Finish() const;
  uint64_t last_lsn() const { return last_lsn_; }

 private:
  absl::Status TakeFrames(uint64_t salt, absl::string_view bytes,
                          const std::string& where);
  std::vector<StreamRecord> records_;
  std::string carry_;  // a frame begun by the previous message
  uint64_t carry_salt_ = 0;
  std::string carry_where_;
  uint64_t last_lsn_ = 0;
};

}  // namespace replication
}  // namespace walstate

#endif  // WALSTATE_ENGINE_REPLICATION_WIRE_H_
