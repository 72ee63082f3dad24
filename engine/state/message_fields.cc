#include "engine/state/message_fields.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "engine/state/proto_wire.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/unknown_field_set.h"

namespace walstate {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

void CopyField(const Message& src, const FieldDescriptor* f, Message* dst) {
  const auto* rs = src.GetReflection();
  const auto* rd = dst->GetReflection();
  rd->ClearField(dst, f);
  if (f->is_repeated()) {
    const int n = rs->FieldSize(src, f);
    for (int i = 0; i < n; ++i) {
      switch (f->cpp_type()) {
#define WALSTATE_COPY_REPEATED(CPPTYPE, TYPE)                \
  case FieldDescriptor::CPPTYPE:                             \
    rd->Add##TYPE(dst, f, rs->GetRepeated##TYPE(src, f, i)); \
    break;
        WALSTATE_COPY_REPEATED(CPPTYPE_INT32, Int32)
        WALSTATE_COPY_REPEATED(CPPTYPE_INT64, Int64)
        WALSTATE_COPY_REPEATED(CPPTYPE_UINT32, UInt32)
        WALSTATE_COPY_REPEATED(CPPTYPE_UINT64, UInt64)
        WALSTATE_COPY_REPEATED(CPPTYPE_DOUBLE, Double)
        WALSTATE_COPY_REPEATED(CPPTYPE_FLOAT, Float)
        WALSTATE_COPY_REPEATED(CPPTYPE_BOOL, Bool)
        WALSTATE_COPY_REPEATED(CPPTYPE_STRING, String)
        WALSTATE_COPY_REPEATED(CPPTYPE_ENUM, EnumValue)
#undef WALSTATE_COPY_REPEATED
        case FieldDescriptor::CPPTYPE_MESSAGE:
          rd->AddMessage(dst, f)->MergeFrom(rs->GetRepeatedMessage(src, f, i));
          break;
      }
    }
    return;
  }
  if (!rs->HasField(src, f)) return;
  switch (f->cpp_type()) {
#define WALSTATE_COPY(CPPTYPE, TYPE)              \
  case FieldDescriptor::CPPTYPE:                  \
    rd->Set##TYPE(dst, f, rs->Get##TYPE(src, f)); \
    break;
    WALSTATE_COPY(CPPTYPE_INT32, Int32)
    WALSTATE_COPY(CPPTYPE_INT64, Int64)
    WALSTATE_COPY(CPPTYPE_UINT32, UInt32)
    WALSTATE_COPY(CPPTYPE_UINT64, UInt64)
    WALSTATE_COPY(CPPTYPE_DOUBLE, Double)
    WALSTATE_COPY(CPPTYPE_FLOAT, Float)
    WALSTATE_COPY(CPPTYPE_BOOL, Bool)
    WALSTATE_COPY(CPPTYPE_STRING, String)
    WALSTATE_COPY(CPPTYPE_ENUM, EnumValue)
#undef WALSTATE_COPY
    case FieldDescriptor::CPPTYPE_MESSAGE:
      // The field was just cleared: MergeFrom is a copy, without CopyFrom's
      // check that src is not a descendant of dst (a walk of every set field
      // in protobuf 3.21, most of the cost of a BATCHED update).
      rd->MutableMessage(dst, f)->MergeFrom(rs->GetMessage(src, f));
      break;
  }
}

// Moves the listed fields of `from` into `to` (same type): each gets
// `from`'s value and presence; strings and submessages are handed over, not
// copied. `from`'s listed fields are left with unspecified values (in
// practice `to`'s old ones, whose memory is then reused or freed with
// `from`, not on this path). Protobuf's SwapFields does it, except for a
// member of a oneof: SwapFields swaps the whole oneof, which would carry an
// unlisted sibling set in `from` into `to`, so a member moves alone, as
// CopyField copies it. (Moving every singular field that way, by a few
// reflection calls each, took twice SwapFields' instructions: ~160 for each
// Release/SetAllocated call and ~200 for HasField, under callgrind.)
void MoveListedFields(Message* to, Message* from,
                      absl::Span<const Schema::Field* const> fields) {
  const auto* r = to->GetReflection();
  // Reflection::SwapFields takes a std::vector; one per thread, reused.
  thread_local std::vector<const FieldDescriptor*> rest;
  rest.clear();
  const bool same_arena = to->GetArena() == from->GetArena();
  for (const Schema::Field* field : fields) {
    const FieldDescriptor* f = field->descriptor;
    if (f->real_containing_oneof() == nullptr) {
      rest.push_back(f);
      continue;
    }
    if (!same_arena ||
        (f->cpp_type() == FieldDescriptor::CPPTYPE_STRING &&
         f->options().ctype() != google::protobuf::FieldOptions::STRING)) {
      CopyField(*from, f, to);  // no pointer to hand over
      continue;
    }
    if (!r->HasField(*from, f)) {
      r->ClearField(to, f);
      continue;
    }
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_MESSAGE: {
        // Both on the same arena (or none): the pointers change hands.
        Message* given = r->UnsafeArenaReleaseMessage(from, f);
        Message* old = r->UnsafeArenaReleaseMessage(to, f);
        r->UnsafeArenaSetAllocatedMessage(to, given, f);
        if (old != nullptr) r->UnsafeArenaSetAllocatedMessage(from, old, f);
        break;
      }
      case FieldDescriptor::CPPTYPE_STRING: {
        // `from` is the caller's to give away (the field is a plain string,
        // not a cord, so this is the field's own string): moved out, its
        // heap buffer goes with it.
        std::string& value =
            const_cast<std::string&>(r->GetStringReference(*from, f, nullptr));
        r->SetString(to, f, std::move(value));
        break;
      }
#define WALSTATE_MOVE_SCALAR(CPPTYPE, TYPE)      \
  case FieldDescriptor::CPPTYPE:                 \
    r->Set##TYPE(to, f, r->Get##TYPE(*from, f)); \
    break;
        WALSTATE_MOVE_SCALAR(CPPTYPE_INT32, Int32)
        WALSTATE_MOVE_SCALAR(CPPTYPE_INT64, Int64)
        WALSTATE_MOVE_SCALAR(CPPTYPE_UINT32, UInt32)
        WALSTATE_MOVE_SCALAR(CPPTYPE_UINT64, UInt64)
        WALSTATE_MOVE_SCALAR(CPPTYPE_DOUBLE, Double)
        WALSTATE_MOVE_SCALAR(CPPTYPE_FLOAT, Float)
        WALSTATE_MOVE_SCALAR(CPPTYPE_BOOL, Bool)
        WALSTATE_MOVE_SCALAR(CPPTYPE_ENUM, EnumValue)
#undef WALSTATE_MOVE_SCALAR
    }
  }
  if (!rest.empty()) r->SwapFields(to, from, rest);
}

// True if every top-level field in `encoded` is one of `numbers`, and its
// framing holds together. A replayed record's values must not reach fields it
// does not list: the indexes only follow the listed ones.
bool OnlyListedFields(absl::string_view encoded,
                      absl::Span<const uint32_t> numbers) {
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t*>(encoded.data()),
      static_cast<int>(encoded.size()));
  while (uint32_t tag = in.ReadTag()) {
    const uint32_t number = static_cast<uint32_t>(wire::TagFieldNumber(tag));
    if (std::find(numbers.begin(), numbers.end(), number) == numbers.end()) {
      return false;
    }
    if (!wire::SkipField(&in, tag)) return false;
  }
  return in.ConsumedEntireMessage();
}

bool ApplyEncodedFields(const Schema& schema, Message* state,
                        absl::string_view encoded,
                        absl::Span<const uint32_t> numbers,
                        bool* kept_unknown) {
  // Known fields are cleared, then merged into; unknown numbers replaced.
  const auto* r = state->GetReflection();
  bool unknown = false;
  for (uint32_t number : numbers) {
    const Schema::Field* f = schema.FindByNumber(static_cast<int>(number));
    if (f == nullptr) {
      unknown = true;
    } else {
      r->ClearField(state, f->descriptor);
    }
  }
  if (unknown) {
    auto* set = r->MutableUnknownFields(state);
    for (uint32_t number : numbers) {
      if (schema.FindByNumber(static_cast<int>(number)) == nullptr) {
        set->DeleteByNumber(static_cast<int>(number));
      }
    }
    *kept_unknown = true;
  }
  // Cleared fields merged into are set; one parse, straight into the state.
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t*>(encoded.data()),
      static_cast<int>(encoded.size()));
  return state->MergeFromCodedStream(&in) && in.ConsumedEntireMessage();
}

}  // namespace walstate
