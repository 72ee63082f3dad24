#include "engine/replication/wire.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "engine/log/format.h"

namespace walstate {
namespace replication {
namespace {

constexpr char kMagic[4] = {'W', 'S', 'R', 'P'};
constexpr uint8_t kVersion = 1;

void Put32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void Put64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t Get(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i)
    v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// What every damaged-message error ends with.
constexpr char kAdvice[] =
    ". The stream's copy is damaged (a corrupted replica, or a bug): nothing "
    "from this record on was restored. Restore from another replica of the "
    "stream (once its leader changes) or restore the last good state and "
    "accept the loss";

}  // namespace

void EncodeMessage(MessageHeader header, absl::string_view body,
                   std::string* out) {
  const size_t start = out->size();
  out->append(kMagic, 4);
  out->push_back(static_cast<char>(kVersion));
  out->push_back(static_cast<char>(header.kind));
  out->push_back(static_cast<char>(header.flags & 0xff));
  out->push_back(static_cast<char>(header.flags >> 8));
  Put64(out, header.salt);
  Put64(out, header.first_lsn);
  Put64(out, header.last_lsn);
  Put32(out, static_cast<uint32_t>(body.size()));
  Put32(out, 0);
  Put64(out, XXH3_64bits(out->data() + start, 40));
  out->append(body.data(), body.size());
}

absl::Status DecodeMessage(absl::string_view message, MessageHeader* header,
                           absl::string_view* body) {
  if (message.size() < kMessageHeaderSize) {
    return absl::DataLossError(absl::StrCat(
        "message of ", message.size(), " bytes is shorter than the ",
        kMessageHeaderSize, "-byte walstate message header"));
  }
  const char* p = message.data();
  if (std::memcmp(p, kMagic, 4) != 0) {
    return absl::DataLossError("message does not start with walstate's magic");
  }
  if (XXH3_64bits(p, 40) != Get(p + 40, 8)) {
    return absl::DataLossError("message header checksum mismatch");
  }
  if (static_cast<uint8_t>(p[4]) != kVersion) {
    return absl::DataLossError(
        absl::StrCat("message format version ", static_cast<int>(p[4]),
                     " is not 1 (written by a newer walstate?)"));
  }
  header->kind = static_cast<MessageKind>(p[5]);
  header->flags = static_cast<uint16_t>(Get(p + 6, 2));
  header->salt = Get(p + 8, 8);
  header->first_lsn = Get(p + 16, 8);
  header->last_lsn = Get(p + 24, 8);
  header->body_size = static_cast<uint32_t>(Get(p + 32, 4));
  if (header->body_size != message.size() - kMessageHeaderSize) {
    return absl::DataLossError(absl::StrCat(
        "message says its body is ", header->body_size, " bytes but it has ",
        message.size() - kMessageHeaderSize));
  }
  *body = message.substr(kMessageHeaderSize);
  return absl::OkStatus();
}

std::vector<LogPart> SplitFrames(absl::string_view frames, uint64_t first_lsn,
                                 size_t max_body) {
  std::vector<LogPart> parts;
  LogPart cur;
  cur.first_lsn = first_lsn;
  cur.last_lsn = first_lsn - 1;
  uint64_t lsn = first_lsn;
  size_t pos = 0;
  while (pos < frames.size()) {
    const log::RecordHeader h = log::DecodeRecordHeader(frames.data() + pos);
    size_t left = log::FramedSize(h.length);
    bool first_piece = true;
    while (left > 0) {
      if (cur.size == max_body) {
        parts.push_back(cur);
        cur = LogPart{pos, 0, lsn, lsn - 1, !first_piece};
      }
      // A whole frame that does not fit what is left of this part, but
      // would fit an empty one, starts the next part.
      const size_t room = max_body - cur.size;
      if (first_piece && left > room && cur.size > 0 && left <= max_body) {
        parts.push_back(cur);
        cur = LogPart{pos, 0, lsn, lsn - 1, false};
        continue;
      }
      const size_t take = std::min(left, max_body - cur.size);
      if (cur.size == 0) cur.offset = pos;
      cur.size += take;
      pos += take;
      left -= take;
      if (left == 0) cur.last_lsn = lsn;  // the frame ends in this part
      first_piece = false;
    }
    ++lsn;
  }
  if (cur.size > 0) parts.push_back(cur);
  return parts;
}

std::string EncodeClaim(absl::string_view writer, absl::string_view schema) {
  std::string out;
  Put32(&out, static_cast<uint32_t>(writer.size()));
  out.append(writer.data(), writer.size());
  out.append(schema.data(), schema.size());
  Put64(&out, XXH3_64bits(out.data(), out.size()));
  return out;
}

absl::Status DecodeClaim(absl::string_view body, std::string* writer,
                         std::string* schema) {
  if (body.size() < 12 || XXH3_64bits(body.data(), body.size() - 8) !=
                              Get(body.data() + body.size() - 8, 8)) {
    return absl::DataLossError("claim message is damaged");
  }
  const uint64_t n = Get(body.data(), 4);
  if (n > body.size() - 12)
    return absl::DataLossError("claim message is damaged");
  writer->assign(body.data() + 4, n);
  schema->assign(body.data() + 4 + n, body.size() - 12 - n);
  return absl::OkStatus();
}

std::string EncodeSnapshotManifest(const SnapshotManifest& m) {
  std::string out;
  Put64(&out, m.lsn);
  Put64(&out, m.file_bytes);
  Put64(&out, m.file_hash);
  Put64(&out, m.first_chunk_seq);
  Put64(&out, m.chunks);
  Put64(&out, m.log_start_seq);
  out.append(m.file_name);
  Put64(&out, XXH3_64bits(out.data(), out.size()));
  return out;
}

absl::Status DecodeSnapshotManifest(absl::string_view body,
                                    SnapshotManifest* m) {
  if (body.size() < 56 || XXH3_64bits(body.data(), body.size() - 8) !=
                              Get(body.data() + body.size() - 8, 8)) {
    return absl::DataLossError("snapshot manifest message is damaged");
  }
  const char* p = body.data();
  m->lsn = Get(p, 8);
  m->file_bytes = Get(p + 8, 8);
  m->file_hash = Get(p + 16, 8);
  m->first_chunk_seq = Get(p + 24, 8);
  m->chunks = Get(p + 32, 8);
  m->log_start_seq = Get(p + 40, 8);
  m->file_name = std::string(body.substr(48, body.size() - 56));
  uint64_t lsn = 0;
  if (!log::ParseSnapshotFileName(m->file_name, &lsn) || lsn != m->lsn) {
    return absl::DataLossError(absl::StrCat(
        "snapshot manifest names \"", m->file_name, "\" for LSN ", m->lsn));
  }
  return absl::OkStatus();
}

absl::Status LogDecoder::Add(const MessageHeader& header,
                             absl::string_view body, const std::string& where) {
  const bool continues = (header.flags & kFlagContinues) != 0;
  if (continues != !carry_.empty()) {
    return absl::DataLossError(absl::StrCat(
        where,
        continues ? ": continues a record no earlier message began"
                  : absl::StrCat(": a record begun in ", carry_where_,
                                 " is not continued"),
        kAdvice));
  }
  if (continues) {
    if (header.salt != carry_salt_) {
      return absl::DataLossError(
          absl::StrCat(where, ": continues a record of another salt", kAdvice));
    }
    carry_.append(body.data(), body.size());
    std::string bytes;
    bytes.swap(carry_);
    return TakeFrames(header.salt, bytes, carry_where_);
  }
  return TakeFrames(header.salt, body, where);
}

absl::Status LogDecoder::TakeFrames(uint64_t salt, absl::string_view bytes,
                                    const std::string& where) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    const size_t left = bytes.size() - pos;
    if (left < log::kRecordHeaderSize) break;  // continues in the next one
    const log::RecordHeader h = log::DecodeRecordHeader(bytes.data() + pos);
    const uint64_t expected = last_lsn_ == 0 ? h.lsn : last_lsn_ + 1;
    if (h.type == 0 || h.reserved != 0 ||
        (h.flags & ~log::kKnownRecordFlags) != 0 ||
        h.length > log::kMaxRecordSize) {
      return absl::DataLossError(
          absl::StrCat(where, ": bad record frame at byte ", pos,
                       " (after LSN ", last_lsn_, ")", kAdvice));
    }
    const size_t framed = log::FramedSize(h.length);
    if (framed > left) break;  // continues in the next message
    if (!log::RecordHashMatches(salt, bytes.substr(pos, framed))) {
      return absl::DataLossError(absl::StrCat(
          where, ": checksum mismatch in the record frame at byte ", pos,
          " (the record after LSN ", last_lsn_, ")", kAdvice));
    }
    if (h.lsn != expected) {
      return absl::DataLossError(
          absl::StrCat(where, ": record LSN ", h.lsn, " where LSN ", expected,
                       " was expected (records missing or repeated)", kAdvice));
    }
    StreamRecord r;
    r.lsn = h.lsn;
    r.type = h.type;
    r.payload.assign(bytes.data() + pos + log::kRecordHeaderSize, h.length);
    records_.push_back(std::move(r));
    last_lsn_ = h.lsn;
    pos += framed;
  }
  if (pos < bytes.size()) {
    carry_.assign(bytes.data() + pos, bytes.size() - pos);
    carry_salt_ = salt;
    carry_where_ = where;
  }
  return absl::OkStatus();
}

size_t LogDecoder::DropPartial() {
  const size_t n = carry_.size();
  carry_.clear();
  return n;
}

absl::Status LogDecoder::Finish() const {
  if (carry_.empty()) return absl::OkStatus();
  return absl::DataLossError(
      absl::StrCat("the stream ends inside a record begun in ", carry_where_,
                   " (", carry_.size(), " bytes)", kAdvice));
}

}  // namespace replication
}  // namespace walstate
