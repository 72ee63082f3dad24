#include "engine/state/update_codec.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "engine/state/proto_wire.h"
#include "engine/state/session_id.h"
#include "google/protobuf/io/coded_stream.h"

namespace walstate {

using google::protobuf::io::CodedInputStream;
using google::protobuf::io::CodedOutputStream;

namespace {

// record::Update's field numbers (proto/walstate/record.proto).
constexpr int kSessionField = 1;
constexpr int kValuesField = 2;
constexpr int kFieldsField = 3;
constexpr int kTickField = 4;

constexpr uint32_t Tag(int field, wire::WireType type) {
  return wire::MakeTag(field, type);
}

// A length-delimited field of this record (field numbers below 16: one tag
// byte).
size_t LengthDelimitedSize(size_t len) {
  return 1 + wire::LengthDelimitedSize(len);
}

uint8_t* WriteLengthDelimited(int field, absl::string_view bytes, uint8_t* p) {
  p = CodedOutputStream::WriteVarint32ToArray(
      Tag(field, wire::kLengthDelimited), p);
  p = CodedOutputStream::WriteVarint32ToArray(
      static_cast<uint32_t>(bytes.size()), p);
  std::memcpy(p, bytes.data(), bytes.size());
  return p + bytes.size();
}

}  // namespace

size_t UpdateEncoder::Prepare(absl::string_view session, uint64_t tick,
                              const google::protobuf::Message& message,
                              absl::Span<const Schema::Field* const> fields) {
  session_ = session;
  tick_ = tick;
  message_ = &message;
  parts_.clear();
  values_size_ = 0;
  numbers_size_ = 0;
  // Which fields are present first, then their sizes: a tick visits
  // sessions whose submessages are separate, cold allocations, and finding
  // them all before sizing any lets their cache misses overlap (one miss
  // latency per session rather than one per submessage).
  const google::protobuf::Reflection* reflection = message.GetReflection();
  for (const Schema::Field* f : fields) {
    const google::protobuf::FieldDescriptor* d = f->descriptor;
    wire::FieldPart part{d, nullptr, true};
    if (d->is_repeated()) {
      // Sized below by reflection.
    } else if (!reflection->HasField(message, d)) {
      // Not sized or written (protobuf's own field sizer would count a
      // length byte for an absent singular field).
      part.present = false;
    } else if (d->type() == google::protobuf::FieldDescriptor::TYPE_MESSAGE) {
      // What wire::FieldSize and WriteFields do for this field, less their
      // reflection (each looks the field up again, and this is most of a
      // tick's fields): the size comes from the submessage's own
      // ByteSizeLong(), and EncodeTo calls its serializer.
      part.submessage = &reflection->GetMessage(message, d);
      // Two lines: the larger submessages (CostTracker's twelve fields)
      // span more than one.
      __builtin_prefetch(part.submessage);
      __builtin_prefetch(reinterpret_cast<const char*>(part.submessage) + 64);
    }
    numbers_size_ +=
        CodedOutputStream::VarintSize32(static_cast<uint32_t>(d->number()));
    parts_.push_back(part);
  }
  // Sizes also cache the submessages' sizes, which EncodeTo relies on.
  for (const wire::FieldPart& part : parts_) {
    if (!part.present) continue;
    if (part.submessage != nullptr) {
      values_size_ += wire::SubmessageFieldSize(part.descriptor->number(),
                                                *part.submessage);
    } else {
      values_size_ += wire::FieldSize(message, part.descriptor);
    }
  }
  // Field order and omitted defaults as the generated serializer has them.
  total_ = 0;
  if (!session.empty()) total_ += LengthDelimitedSize(session.size());
  if (values_size_ > 0) total_ += LengthDelimitedSize(values_size_);
  if (numbers_size_ > 0) total_ += LengthDelimitedSize(numbers_size_);
  if (tick != 0) total_ += 1 + CodedOutputStream::VarintSize64(tick);
  return total_;
}

absl::Status UpdateEncoder::SizeChanged() const {
  return absl::InternalError(
      absl::StrCat("encoding an update of session ", QuoteSessionId(session_),
                   ": its fields no longer take the ", total_,
                   " bytes computed before writing (was the message changed "
                   "concurrently? Changes must hold the session's lock)"));
}

absl::Status UpdateEncoder::EncodeTo(char* out) const {
  uint8_t* const begin = reinterpret_cast<uint8_t*>(out);
  uint8_t* p = begin;
  if (!session_.empty()) p = WriteLengthDelimited(kSessionField, session_, p);
  if (values_size_ > 0) {
    p = CodedOutputStream::WriteVarint32ToArray(
        Tag(kValuesField, wire::kLengthDelimited), p);
    p = CodedOutputStream::WriteVarint32ToArray(
        static_cast<uint32_t>(values_size_), p);
    uint8_t* const values = p;
    p = wire::WriteFields(*message_, parts_, values_size_, values);
    if (p == nullptr || static_cast<size_t>(p - values) != values_size_) {
      return SizeChanged();
    }
  }
  if (numbers_size_ > 0) {
    p = CodedOutputStream::WriteVarint32ToArray(
        Tag(kFieldsField, wire::kLengthDelimited), p);
    p = CodedOutputStream::WriteVarint32ToArray(
        static_cast<uint32_t>(numbers_size_), p);
    for (const wire::FieldPart& part : parts_) {
      p = CodedOutputStream::WriteVarint32ToArray(
          static_cast<uint32_t>(part.descriptor->number()), p);
    }
  }
  if (tick_ != 0) {
    p = CodedOutputStream::WriteVarint32ToArray(Tag(kTickField, wire::kVarint),
                                                p);
    p = CodedOutputStream::WriteVarint64ToArray(tick_, p);
  }
  // The length prefixes written above are only right if the serializer
  // wrote what the sizing pass predicted; a record with a wrong prefix would
  // be damage behind a valid checksum, so check rather than trust.
  if (static_cast<size_t>(p - begin) != total_) return SizeChanged();
  return absl::OkStatus();
}

absl::Status EncodeUpdate(absl::string_view session, uint64_t tick,
                          const google::protobuf::Message& message,
                          absl::Span<const Schema::Field* const> fields,
                          std::string* out) {
  UpdateEncoder encoder;
  out->resize(encoder.Prepare(session, tick, message, fields));
  absl::Status s = encoder.EncodeTo(&(*out)[0]);
  if (!s.ok()) out->clear();
  return s;
}

bool DecodeUpdate(absl::string_view payload, UpdateView* out) {
  out->session = absl::string_view();
  out->values = absl::string_view();
  out->tick = 0;
  out->fields.clear();
  CodedInputStream in(reinterpret_cast<const uint8_t*>(payload.data()),
                      static_cast<int>(payload.size()));
  auto read_bytes = [&](absl::string_view* view) {
    uint32_t len = 0;
    if (!in.ReadVarint32(&len)) return false;
    const size_t pos = static_cast<size_t>(in.CurrentPosition());
    if (len > payload.size() - pos || !in.Skip(static_cast<int>(len))) {
      return false;
    }
    *view = payload.substr(pos, len);
    return true;
  };
  while (uint32_t tag = in.ReadTag()) {
    switch (tag) {
      case Tag(kSessionField, wire::kLengthDelimited):
        if (!read_bytes(&out->session)) return false;
        break;
      case Tag(kValuesField, wire::kLengthDelimited):
        if (!read_bytes(&out->values)) return false;
        break;
      case Tag(kFieldsField, wire::kLengthDelimited): {
        absl::string_view packed;
        if (!read_bytes(&packed)) return false;
        CodedInputStream numbers(
            reinterpret_cast<const uint8_t*>(packed.data()),
            static_cast<int>(packed.size()));
        while (static_cast<size_t>(numbers.CurrentPosition()) < packed.size()) {
          uint32_t n = 0;
          if (!numbers.ReadVarint32(&n)) return false;
          out->fields.push_back(n);
        }
        break;
      }
      case Tag(kFieldsField, wire::kVarint): {
        uint32_t n = 0;
        if (!in.ReadVarint32(&n)) return false;
        out->fields.push_back(n);
        break;
      }
      case Tag(kTickField, wire::kVarint):
        if (!in.ReadVarint64(&out->tick)) return false;
        break;
      default:
        // A later version's field, or a known one with another wire type:
        // the generated parser keeps both as unknown fields, i.e. ignores
        // them here.
        if (!wire::SkipField(&in, tag)) return false;
        break;
    }
  }
  return in.ConsumedEntireMessage();
}

}  // namespace walstate
