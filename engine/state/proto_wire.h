// The protobuf wire-format helpers the engine needs beyond protobuf's public
// API, in one place. Everything here is walstate's own interface; only
// proto_wire.cc may use protobuf internals (WireFormatLite, WireFormat,
// EpsCopyOutputStream), and only in its fast path.
//
// Two implementations sit behind these declarations:
//  - fast: protobuf's internal serializer and field skipper. It compiles only
//    against the protobuf it was written for (3.21.x: Debian 12), checked with
//    GOOGLE_PROTOBUF_VERSION below.
//  - portable: protobuf's public API only (CodedInputStream,
//    CodedOutputStream, Reflection, MessageLite::SerializeWithCachedSizes).
//    Selected for any other protobuf version, or when
//    WALSTATE_PORTABLE_PROTOBUF is defined (Bazel: --config=portable_protobuf;
//    CMake: -DWALSTATE_PORTABLE_PROTOBUF=ON).
// Both write the same bytes and accept the same input; proto_wire_test checks
// that when both are compiled. What the fast path buys, and how it was
// measured, is written next to it in proto_wire.cc.
#ifndef WALSTATE_ENGINE_STATE_PROTO_WIRE_H_
#define WALSTATE_ENGINE_STATE_PROTO_WIRE_H_

#include <cstddef>
#include <cstdint>

#include "absl/types/span.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/message.h"

// 1 when proto_wire.cc's fast path is compiled and used, 0 when the portable
// path is. GOOGLE_PROTOBUF_VERSION is 3021012 for 3.21.12; a protobuf that
// does not define it (or any other release) gets the portable path.
#if !defined(WALSTATE_PORTABLE_PROTOBUF) &&                                   \
    defined(GOOGLE_PROTOBUF_VERSION) && GOOGLE_PROTOBUF_VERSION >= 3021000 && \
    GOOGLE_PROTOBUF_VERSION < 3022000
#define WALSTATE_PROTOBUF_FAST_PATH 1
#else
#define WALSTATE_PROTOBUF_FAST_PATH 0
#endif

namespace walstate {
namespace wire {

// Wire types and tags (docs/FORMAT.md uses the protobuf encoding).
enum WireType : uint32_t {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kStartGroup = 3,
  kEndGroup = 4,
  kFixed32 = 5,
};

constexpr uint32_t MakeTag(int number, WireType type) {
  return (static_cast<uint32_t>(number) << 3) | static_cast<uint32_t>(type);
}
constexpr int TagFieldNumber(uint32_t tag) {
  return static_cast<int>(tag >> 3);
}
constexpr WireType TagWireType(uint32_t tag) {
  return static_cast<WireType>(tag & 7);
}
constexpr int32_t ZigZagDecode32(uint32_t n) {
  return static_cast<int32_t>((n >> 1) ^ (~(n & 1) + 1));
}
constexpr int64_t ZigZagDecode64(uint64_t n) {
  return static_cast<int64_t>((n >> 1) ^ (~(n & 1) + 1));
}

// The wire type a singular (or unpacked repeated) field of `field`'s type is
// written with.
inline WireType WireTypeOf(const google::protobuf::FieldDescriptor* field) {
  // Indexed by FieldDescriptor::Type (1..18; 0 is not a type).
  static constexpr WireType
      kByType[google::protobuf::FieldDescriptor::MAX_TYPE + 1] = {
          kVarint,           // 0
          kFixed64,          // TYPE_DOUBLE
          kFixed32,          // TYPE_FLOAT
          kVarint,           // TYPE_INT64
          kVarint,           // TYPE_UINT64
          kVarint,           // TYPE_INT32
          kFixed64,          // TYPE_FIXED64
          kFixed32,          // TYPE_FIXED32
          kVarint,           // TYPE_BOOL
          kLengthDelimited,  // TYPE_STRING
          kStartGroup,       // TYPE_GROUP
          kLengthDelimited,  // TYPE_MESSAGE
          kLengthDelimited,  // TYPE_BYTES
          kVarint,           // TYPE_UINT32
          kVarint,           // TYPE_ENUM
          kFixed32,          // TYPE_SFIXED32
          kFixed64,          // TYPE_SFIXED64
          kVarint,           // TYPE_SINT32
          kVarint};          // TYPE_SINT64
  return kByType[field->type()];
}

// Bytes a length-delimited field of payload `len` takes after its tag.
inline size_t LengthDelimitedSize(size_t len) {
  return google::protobuf::io::CodedOutputStream::VarintSize32(
             static_cast<uint32_t>(len)) +
         len;
}

// Bytes field `number` holding `sub` as a length-delimited submessage takes,
// tag included. Caches `sub`'s size (ByteSizeLong) for WriteFields.
inline size_t SubmessageFieldSize(int number,
                                  const google::protobuf::Message& sub) {
  return google::protobuf::io::CodedOutputStream::VarintSize32(
             MakeTag(number, kLengthDelimited)) +
         LengthDelimitedSize(sub.ByteSizeLong());
}

// One field WriteFields writes.
struct FieldPart {
  const google::protobuf::FieldDescriptor* descriptor;
  // Set for a present singular TYPE_MESSAGE field: written from this
  // submessage with the size SubmessageFieldSize cached.
  const google::protobuf::Message* submessage;
  bool present;  // false: an absent singular field, not written
};

namespace portable {
bool SkipField(google::protobuf::io::CodedInputStream* in, uint32_t tag);
size_t FieldSize(const google::protobuf::Message& message,
                 const google::protobuf::FieldDescriptor* field);
uint8_t* WriteFields(const google::protobuf::Message& message,
                     absl::Span<const FieldPart> parts, size_t size,
                     uint8_t* out);
}  // namespace portable

#if WALSTATE_PROTOBUF_FAST_PATH
namespace fast {
bool SkipField(google::protobuf::io::CodedInputStream* in, uint32_t tag);
size_t FieldSize(const google::protobuf::Message& message,
                 const google::protobuf::FieldDescriptor* field);
uint8_t* WriteFields(const google::protobuf::Message& message,
                     absl::Span<const FieldPart> parts, size_t size,
                     uint8_t* out);
}  // namespace fast
namespace active = fast;
#else
namespace active = portable;
#endif

// The selected implementation of:
//
// SkipField(in, tag) (below): skips the value of the field whose tag
// ReadTag() just returned (a group up to its end tag, bounded by the
// stream's recursion limit). False on malformed input, field number 0 or an
// end-group tag. As protobuf's parser skips an unknown field.
//
// FieldSize(message, field): bytes `field` of `message` takes as the
// generated serializer writes it, tags included: a repeated field (packed if
// the field is), a map, or a present singular field. Caches the sizes of the
// submessages it holds, which WriteFields relies on.
//
// WriteFields(message, parts, size, out): writes the present `parts` of
// `message` at `out` in the given order, exactly as the generated serializer
// writes each field, and returns the end. `size`: the sum of their
// FieldSize/SubmessageFieldSize, computed since `message` last changed
// (WriteFields uses the cached sizes). Never writes past out + size: null if
// the fields needed more (a message changed since it was sized); the caller
// must also check the end it gets against `size` (a message that shrank).
using active::FieldSize;
using active::WriteFields;

// SkipField with the common wire types inline (public API, the same in both
// paths: what protobuf's own skipper does for them); groups and malformed
// tags go to the selected implementation. Inlined because a lazy state's
// scan skips every field it does not look for (codec_bench scan: see
// docs/bench/notes.md).
inline bool SkipField(google::protobuf::io::CodedInputStream* in,
                      uint32_t tag) {
  if (TagFieldNumber(tag) != 0) {
    switch (TagWireType(tag)) {
      case kVarint: {
        uint64_t v;
        return in->ReadVarint64(&v);
      }
      case kLengthDelimited: {
        uint32_t len;
        // Skip() refuses a negative count, i.e. a length over INT_MAX.
        return in->ReadVarint32(&len) && in->Skip(static_cast<int>(len));
      }
      case kFixed64: {
        uint64_t v;
        return in->ReadLittleEndian64(&v);
      }
      case kFixed32: {
        uint32_t v;
        return in->ReadLittleEndian32(&v);
      }
      default:
        break;
    }
  }
  return active::SkipField(in, tag);
}

}  // namespace wire
}  // namespace walstate

#endif  // WALSTATE_ENGINE_STATE_PROTO_WIRE_H_
