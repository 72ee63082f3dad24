// The only file in walstate that uses protobuf internals (see proto_wire.h).
#include "engine/state/proto_wire.h"

#include <cstring>
#include <string>

#include "absl/base/casts.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

#if WALSTATE_PROTOBUF_FAST_PATH
#include "google/protobuf/wire_format.h"
#include "google/protobuf/wire_format_lite.h"
#endif

namespace walstate {
namespace wire {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;
using google::protobuf::io::CodedInputStream;
using google::protobuf::io::CodedOutputStream;

// ---------------------------------------------------------------------------
// Fast path: protobuf 3.21's internal serializer (WireFormat::FieldByteSize,
// InternalSerializeField, InternalWriteMessage on an EpsCopyOutputStream)
// and skipper (WireFormatLite::SkipField).
//
// What it buys, measured with callgrind (instructions per iteration of
// bench/codec_bench.cc, -c opt, 10^5 iterations less the setup-only run; one
// run of each binary, docs/bench/notes.md "proto_wire"): encode (a tick's
// five BATCHED fields plus the three IMMEDIATE ones of a GatewaySession)
// fast 14,357, portable 13,347 (portable/fast 0.93); decode 1,634.5 both;
// scan 1,795 both. So on this schema the internal serializer does NOT pay:
// it is kept as the path 3.21 builds use because it is the one the store
// was written with until now; the portable path is the candidate to become
// the only one. Before this file (the internals called from update_codec.cc
// and lazy_state.cc directly): encode 14,299 (fast now +0.4%), decode 1,807
// (-9.5%), scan 2,123 (-15.4%: SkipField's common wire types are inline in
// proto_wire.h now).
#if WALSTATE_PROTOBUF_FAST_PATH
static_assert(GOOGLE_PROTOBUF_VERSION >= 3021000 &&
                  GOOGLE_PROTOBUF_VERSION < 3022000,
              "the fast path was written against protobuf 3.21.x");

namespace fast {

using google::protobuf::internal::WireFormat;
using google::protobuf::internal::WireFormatLite;

bool SkipField(CodedInputStream* in, uint32_t tag) {
  return WireFormatLite::SkipField(in, tag);
}

size_t FieldSize(const Message& message, const FieldDescriptor* field) {
  return WireFormat::FieldByteSize(field, message);
}

uint8_t* WriteFields(const Message& message, absl::Span<const FieldPart> parts,
                     size_t size, uint8_t* p) {
  // A flat-array stream: the exact size is known, nothing is buffered.
  google::protobuf::io::EpsCopyOutputStream stream(p, static_cast<int>(size),
                                                   /*deterministic=*/false);
  for (const FieldPart& part : parts) {
    if (!part.present) continue;
    if (part.submessage != nullptr) {
      p = WireFormatLite::InternalWriteMessage(
          part.descriptor->number(), *part.submessage,
          part.submessage->GetCachedSize(), p, &stream);
    } else {
      p = WireFormat::InternalSerializeField(part.descriptor, message, p,
                                             &stream);
    }
  }
  // Past `size`, the stream writes to its own scratch buffer.
  if (stream.HadError()) return nullptr;
  return p;
}

}  // namespace fast
#endif  // WALSTATE_PROTOBUF_FAST_PATH

// ---------------------------------------------------------------------------
// Portable path: public API only. Written from the encoding rules (and
// checked against the fast path and the generated serializer by
// proto_wire_test), so it must stay byte-identical with them.
namespace portable {
namespace {

bool SkipGroupBody(CodedInputStream* in) {
  for (;;) {
    const uint32_t tag = in->ReadTag();
    if (tag == 0) return true;  // the end of the input
    if (TagWireType(tag) == kEndGroup) return true;
    if (!SkipField(in, tag)) return false;
  }
}

// Sizes what Writer writes, with the same calls. Message() caches the
// submessage's size, which Writer then uses.
class Counter {
 public:
  void Tag(uint32_t tag) { n_ += CodedOutputStream::VarintSize32(tag); }
  void Varint32(uint32_t v) { n_ += CodedOutputStream::VarintSize32(v); }
  void Varint64(uint64_t v) { n_ += CodedOutputStream::VarintSize64(v); }
  void SignExtended(int32_t v) {
    n_ += CodedOutputStream::VarintSize32SignExtended(v);
  }
  void Fixed32(uint32_t) { n_ += 4; }
  void Fixed64(uint64_t) { n_ += 8; }
  void Bytes(absl::string_view s) { n_ += LengthDelimitedSize(s.size()); }
  void Message(const google::protobuf::Message& m) {
    n_ += LengthDelimitedSize(m.ByteSizeLong());
  }
  void GroupBody(const google::protobuf::Message& m) { n_ += m.ByteSizeLong(); }
  size_t size() const { return n_; }

 private:
  size_t n_ = 0;
};

// Writes what Counter sized. A stream rather than raw pointers: a message
// that grew since it was sized makes the stream fail instead of writing
// past the buffer (and a submessage's serializer is only public as
// SerializeWithCachedSizes on a stream).
class Writer {
 public:
  explicit Writer(CodedOutputStream* out) : out_(out) {}
  void Tag(uint32_t tag) { out_->WriteTag(tag); }
  void Varint32(uint32_t v) { out_->WriteVarint32(v); }
  void Varint64(uint64_t v) { out_->WriteVarint64(v); }
  void SignExtended(int32_t v) { out_->WriteVarint32SignExtended(v); }
  void Fixed32(uint32_t v) { out_->WriteLittleEndian32(v); }
  void Fixed64(uint64_t v) { out_->WriteLittleEndian64(v); }
  void Bytes(absl::string_view s) {
    out_->WriteVarint32(static_cast<uint32_t>(s.size()));
    out_->WriteRaw(s.data(), static_cast<int>(s.size()));
  }
  void Message(const google::protobuf::Message& m) {
    out_->WriteVarint32(static_cast<uint32_t>(m.GetCachedSize()));
    m.SerializeWithCachedSizes(out_);
  }
  void GroupBody(const google::protobuf::Message& m) {
    m.SerializeWithCachedSizes(out_);
  }

 private:
  CodedOutputStream* out_;
};

template <typename Out>
void PutValue(Out* out, const Reflection* r, const Message& m,
              const FieldDescriptor* f, int index) {
  const bool rep = index >= 0;
#define WALSTATE_GET(TYPE) \
  (rep ? r->GetRepeated##TYPE(m, f, index) : r->Get##TYPE(m, f))
  switch (f->type()) {
    case FieldDescriptor::TYPE_DOUBLE:
      out->Fixed64(absl::bit_cast<uint64_t>(WALSTATE_GET(Double)));
      break;
    case FieldDescriptor::TYPE_FLOAT:
      out->Fixed32(absl::bit_cast<uint32_t>(WALSTATE_GET(Float)));
      break;
    case FieldDescriptor::TYPE_INT64:
      out->Varint64(static_cast<uint64_t>(WALSTATE_GET(Int64)));
      break;
    case FieldDescriptor::TYPE_UINT64:
      out->Varint64(WALSTATE_GET(UInt64));
      break;
    case FieldDescriptor::TYPE_INT32:
      out->SignExtended(WALSTATE_GET(Int32));
      break;
    case FieldDescriptor::TYPE_FIXED64:
      out->Fixed64(WALSTATE_GET(UInt64));
      break;
    case FieldDescriptor::TYPE_FIXED32:
      out->Fixed32(WALSTATE_GET(UInt32));
      break;
    case FieldDescriptor::TYPE_BOOL:
      out->Varint32(WALSTATE_GET(Bool) ? 1 : 0);
      break;
    case FieldDescriptor::TYPE_STRING:
    case FieldDescriptor::TYPE_BYTES: {
      std::string scratch;
      const std::string& s =
          rep ? r->GetRepeatedStringReference(m, f, index, &scratch)
              : r->GetStringReference(m, f, &scratch);
      out->Bytes(s);
      break;
    }
    case FieldDescriptor::TYPE_GROUP:
      out->GroupBody(WALSTATE_GET(Message));
      break;
    case FieldDescriptor::TYPE_MESSAGE:
      // A map entry too: through the public API a map is read as its
      // repeated entry messages (in the map's iteration order).
      out->Message(WALSTATE_GET(Message));
      break;
    case FieldDescriptor::TYPE_UINT32:
      out->Varint32(WALSTATE_GET(UInt32));
      break;
    case FieldDescriptor::TYPE_ENUM:
      out->SignExtended(WALSTATE_GET(EnumValue));
      break;
    case FieldDescriptor::TYPE_SFIXED32:
      out->Fixed32(static_cast<uint32_t>(WALSTATE_GET(Int32)));
      break;
    case FieldDescriptor::TYPE_SFIXED64:
      out->Fixed64(static_cast<uint64_t>(WALSTATE_GET(Int64)));
      break;
    case FieldDescriptor::TYPE_SINT32: {
      const int32_t v = WALSTATE_GET(Int32);
      out->Varint32((static_cast<uint32_t>(v) << 1) ^
                    static_cast<uint32_t>(v >> 31));
      break;
    }
    case FieldDescriptor::TYPE_SINT64: {
      const int64_t v = WALSTATE_GET(Int64);
      out->Varint64((static_cast<uint64_t>(v) << 1) ^
                    static_cast<uint64_t>(v >> 63));
      break;
    }
  }
#undef WALSTATE_GET
}

// The value with its tag (a group with its start and end tags).
template <typename Out>
void PutTagged(Out* out, const Reflection* r, const Message& m,
               const FieldDescriptor* f, int index) {
  if (f->type() == FieldDescriptor::TYPE_GROUP) {
    out->Tag(MakeTag(f->number(), kStartGroup));
    PutValue(out, r, m, f, index);
    out->Tag(MakeTag(f->number(), kEndGroup));
    return;
  }
  out->Tag(MakeTag(f->number(), WireTypeOf(f)));
  PutValue(out, r, m, f, index);
}

// Field `f` of `m` as the generated serializer writes it.
template <typename Out>
void PutField(Out* out, const Message& m, const FieldDescriptor* f) {
  const Reflection* r = m.GetReflection();
  if (!f->is_repeated()) {
    if (r->HasField(m, f)) PutTagged(out, r, m, f, -1);
    return;
  }
  const int n = r->FieldSize(m, f);
  if (n == 0) return;
  if (f->is_packed()) {
    Counter data;
    for (int i = 0; i < n; ++i) PutValue(&data, r, m, f, i);
    out->Tag(MakeTag(f->number(), kLengthDelimited));
    out->Varint32(static_cast<uint32_t>(data.size()));
    for (int i = 0; i < n; ++i) PutValue(out, r, m, f, i);
    return;
  }
  for (int i = 0; i < n; ++i) PutTagged(out, r, m, f, i);
}

}  // namespace

bool SkipField(CodedInputStream* in, uint32_t tag) {
  if (TagFieldNumber(tag) == 0) return false;
  switch (TagWireType(tag)) {
    case kVarint: {
      uint64_t v;
      return in->ReadVarint64(&v);
    }
    case kFixed64: {
      uint64_t v;
      return in->ReadLittleEndian64(&v);
    }
    case kLengthDelimited: {
      uint32_t len;
      // Skip() refuses a negative count, i.e. a length over INT_MAX.
      return in->ReadVarint32(&len) && in->Skip(static_cast<int>(len));
    }
    case kStartGroup: {
      if (!in->IncrementRecursionDepth()) return false;
      if (!SkipGroupBody(in)) return false;
      in->DecrementRecursionDepth();
      return in->LastTagWas(MakeTag(TagFieldNumber(tag), kEndGroup));
    }
    case kFixed32: {
      uint32_t v;
      return in->ReadLittleEndian32(&v);
    }
    default:  // kEndGroup, or the unused wire types 6 and 7
      return false;
  }
}

size_t FieldSize(const Message& message, const FieldDescriptor* field) {
  Counter c;
  PutField(&c, message, field);
  return c.size();
}

uint8_t* WriteFields(const Message& message, absl::Span<const FieldPart> parts,
                     size_t size, uint8_t* p) {
  google::protobuf::io::ArrayOutputStream array(p, static_cast<int>(size));
  CodedOutputStream stream(&array);
  Writer out(&stream);
  for (const FieldPart& part : parts) {
    if (!part.present) continue;
    if (part.submessage != nullptr) {
      out.Tag(MakeTag(part.descriptor->number(), kLengthDelimited));
      out.Message(*part.submessage);
    } else {
      PutField(&out, message, part.descriptor);
    }
  }
  stream.Trim();
  if (stream.HadError()) return nullptr;
  return p + stream.ByteCount();
}

}  // namespace portable
}  // namespace wire
}  // namespace walstate
