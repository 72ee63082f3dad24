#include "engine/state/lazy_state.h"

#include <cstdlib>
#include <new>

#include "engine/state/proto_wire.h"
#include "google/protobuf/io/coded_stream.h"

namespace walstate {
namespace lazy {

using google::protobuf::FieldDescriptor;

Arena::Arena(size_t writers) : cursors_(writers == 0 ? 1 : writers) {}

Arena::~Arena() {
  for (auto& chunk : chunks_) std::free(chunk.first);
}

char* Arena::NewChunk(size_t n) {
  char* p = static_cast<char*>(std::malloc(n));
  if (p == nullptr) throw std::bad_alloc();
  std::lock_guard<std::mutex> lock(mu_);
  chunks_.emplace_back(p, n);
  bytes_.fetch_add(n, std::memory_order_relaxed);
  return p;
}

char* Arena::Allocate(size_t n, size_t writer) {
  // At least 8: a block of 0 bytes is still a block (never null), which
  // memcpy and friends require even for 0 bytes.
  n = n == 0 ? 8 : (n + 7) & ~size_t{7};
  // A large state gets a chunk of its own rather than wasting the end of
  // the writer's.
  if (n > kChunkBytes / 4) return NewChunk(n);
  Cursor& c = cursors_[writer];
  if (static_cast<size_t>(c.end - c.pos) < n) {
    c.pos = NewChunk(kChunkBytes);
    c.end = c.pos + kChunkBytes;
  }
  char* p = c.pos;
  c.pos += n;
  return p;
}

SnapshotState* Arena::NewSnapshotState(size_t writer) {
  Cursor& c = cursors_[writer];
  if (c.states_in_last == kStatesPerBlock) {
    c.state_blocks.push_back(reinterpret_cast<SnapshotState*>(
        NewChunk(kStatesPerBlock * sizeof(SnapshotState))));
    c.states_in_last = 0;
  }
  return new (&c.state_blocks.back()[c.states_in_last++]) SnapshotState{};
}

size_t Arena::snapshot_states() const {
  size_t n = 0;
  for (const Cursor& c : cursors_) {
    if (!c.state_blocks.empty()) {
      n += (c.state_blocks.size() - 1) * kStatesPerBlock + c.states_in_last;
    }
  }
  return n;
}

bool WellFormed(absl::string_view message) {
  return WellFormed(message, nullptr, 0, nullptr);
}

namespace {

// The tags WellFormed looks for (wanted[i] for fields[i]), with `hints` set
// to kAbsent for those and kNoHint for the rest; how many are looked for.
size_t PrepareHints(const FieldDescriptor* const* fields, size_t field_count,
                    uint32_t* wanted, uint16_t* hints) {
  const size_t hinted =
      field_count < kHintedFields ? field_count : kHintedFields;
  for (size_t i = 0; i < hinted; ++i) {
    wanted[i] = wire::MakeTag(fields[i]->number(), wire::WireTypeOf(fields[i]));
    hints[i] = kAbsent;
  }
  for (size_t i = hinted; hints != nullptr && i < kHintedFields; ++i) {
    hints[i] = kNoHint;
  }
  return hinted;
}

// WellFormed's walk. `hints` as PrepareHints left them.
bool ScanForHints(absl::string_view message, const uint32_t* wanted,
                  size_t hinted, uint16_t* hints) {
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t*>(message.data()),
      static_cast<int>(message.size()));
  for (;;) {
    const int at = in.CurrentPosition();
    const uint32_t tag = in.ReadTag();
    if (tag == 0) break;
    for (size_t i = 0; i < hinted; ++i) {
      if (tag == wanted[i]) {
        hints[i] = at < kNoHint ? static_cast<uint16_t>(at) : kNoHint;
      }
    }
    if (wire::TagFieldNumber(tag) == 0 || !wire::SkipField(&in, tag)) {
      return false;
    }
  }
  return in.ConsumedEntireMessage();
}

}  // namespace

bool WellFormed(absl::string_view message, const FieldDescriptor* const* fields,
                size_t field_count, uint16_t* hints) {
  uint32_t wanted[kHintedFields] = {};
  const size_t hinted = PrepareHints(fields, field_count, wanted, hints);
  return ScanForHints(message, wanted, hinted, hints);
}

namespace {

// `raw` (a varint or fixed value as read) as the number an index keeps for
// `field`; false if a parse would not take it as the field's value (a closed
// enum's unknown number goes to the unknown fields).
bool ToIndexNumber(const FieldDescriptor* field, uint64_t raw,
                   uint64_t* number) {
  switch (field->type()) {
    case FieldDescriptor::TYPE_INT32:
    case FieldDescriptor::TYPE_SFIXED32:
      *number = static_cast<uint64_t>(
          int64_t{static_cast<int32_t>(static_cast<uint32_t>(raw))});
      return true;
    case FieldDescriptor::TYPE_SINT32:
      *number = static_cast<uint64_t>(
          int64_t{wire::ZigZagDecode32(static_cast<uint32_t>(raw))});
      return true;
    case FieldDescriptor::TYPE_INT64:
    case FieldDescriptor::TYPE_SFIXED64:
    case FieldDescriptor::TYPE_UINT64:
    case FieldDescriptor::TYPE_FIXED64:
      *number = raw;
      return true;
    case FieldDescriptor::TYPE_SINT64:
      *number = static_cast<uint64_t>(wire::ZigZagDecode64(raw));
      return true;
    case FieldDescriptor::TYPE_UINT32:
    case FieldDescriptor::TYPE_FIXED32:
      *number = static_cast<uint32_t>(raw);
      return true;
    case FieldDescriptor::TYPE_BOOL:
      *number = raw != 0 ? 1 : 0;
      return true;
    case FieldDescriptor::TYPE_ENUM: {
      const int32_t value = static_cast<int32_t>(static_cast<uint32_t>(raw));
      if (field->file()->syntax() ==
              google::protobuf::FileDescriptor::SYNTAX_PROTO2 &&
          field->enum_type()->FindValueByNumber(value) == nullptr) {
        return false;
      }
      *number = static_cast<uint64_t>(int64_t{value});
      return true;
    }
    default:
      return false;
  }
}

}  // namespace

namespace {

// Scans `message` for `field`'s occurrences with its wire type, from the
// start, taking the last; with `first_only`, stops at the first one (which
// the caller knows to be the last).
bool Scan(absl::string_view message, const FieldDescriptor* field,
          bool first_only, absl::string_view* text, uint64_t* number) {
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t*>(message.data()),
      static_cast<int>(message.size()));
  const int wanted = field->number();
  const wire::WireType wire_type = wire::WireTypeOf(field);
  bool found = false;
  while (uint32_t tag = in.ReadTag()) {
    if (wire::TagFieldNumber(tag) != wanted ||
        wire::TagWireType(tag) != wire_type) {
      if (!wire::SkipField(&in, tag)) return false;
      continue;
    }
    uint64_t raw = 0;
    switch (wire_type) {
      case wire::kLengthDelimited: {
        uint32_t len = 0;
        if (!in.ReadVarint32(&len)) return false;
        const size_t pos = static_cast<size_t>(in.CurrentPosition());
        if (len > message.size() - pos || !in.Skip(static_cast<int>(len))) {
          return false;
        }
        *text = message.substr(pos, len);
        found = true;
        if (first_only) return true;
        continue;
      }
      case wire::kVarint:
        if (!in.ReadVarint64(&raw)) return false;
        break;
      case wire::kFixed32: {
        uint32_t v = 0;
        if (!in.ReadLittleEndian32(&v)) return false;
        raw = v;
        break;
      }
      case wire::kFixed64:
        if (!in.ReadLittleEndian64(&raw)) return false;
        break;
      default:
        return false;
    }
    if (ToIndexNumber(field, raw, number)) found = true;
    if (first_only) return found;
  }
  return found;
}

}  // namespace

bool FindValue(absl::string_view message, const FieldDescriptor* field,
               absl::string_view* text, uint64_t* number) {
  return Scan(message, field, /*first_only=*/false, text, number);
}

bool FindValue(absl::string_view message, uint16_t hint,
               const FieldDescriptor* field, absl::string_view* text,
               uint64_t* number) {
  // A closed enum's last occurrence may hold a number a parse would not
  // take, and then an earlier one counts: walk.
  if (hint == kNoHint || field->type() == FieldDescriptor::TYPE_ENUM) {
    return Scan(message, field, /*first_only=*/false, text, number);
  }
  if (hint == kAbsent || hint >= message.size()) return false;
  // The last occurrence starts at `hint`.
  const absl::string_view from = message.substr(hint);
  if (!Scan(from, field, /*first_only=*/true, text, number)) return false;
  return true;
}

}  // namespace lazy
}  // namespace walstate
