// The field-level operations on a session message that SessionTable's
// updates and replay are made of: copying or moving listed top-level fields
// from one message into another, and applying a record's serialized values.
#ifndef WALSTATE_ENGINE_STATE_MESSAGE_FIELDS_H_
#define WALSTATE_ENGINE_STATE_MESSAGE_FIELDS_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "engine/state/schema.h"
#include "google/protobuf/message.h"

namespace walstate {

// Copies top-level field `f` of `src` into `dst` (clearing it if unset).
void CopyField(const google::protobuf::Message& src,
               const google::protobuf::FieldDescriptor* f,
               google::protobuf::Message* dst);

// Moves the listed fields of `from` into `to` (same type): each gets
// `from`'s value and presence; strings and submessages are handed over, not
// copied. `from`'s listed fields are left with unspecified values.
void MoveListedFields(google::protobuf::Message* to,
                      google::protobuf::Message* from,
                      absl::Span<const Schema::Field* const> fields);

// True if every top-level field in `encoded` is one of `numbers`, and its
// framing holds together. A replayed record's values must not reach fields
// it does not list: the indexes only follow the listed ones.
bool OnlyListedFields(absl::string_view encoded,
                      absl::Span<const uint32_t> numbers);

// Sets the top-level fields numbered `numbers` of `state` to their values in
// `encoded` (a serialized `schema` message); a listed field absent from it is
// cleared, and numbers `schema` does not know are kept as unknown fields
// (sets *kept_unknown). False if `encoded` does not parse.
bool ApplyEncodedFields(const Schema& schema, google::protobuf::Message* state,
                        absl::string_view encoded,
                        absl::Span<const uint32_t> numbers, bool* kept_unknown);

}  // namespace walstate

#endif  // WALSTATE_ENGINE_STATE_MESSAGE_FIELDS_H_
