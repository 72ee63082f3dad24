// JS values <-> protobuf messages, by reflection (no JSON text in between).
//
// Representation, chosen once (lib/index.d.ts says the same):
//   int64, uint64, sint64, fixed64, sfixed64  -> bigint (a safe-integer number
//                                                is accepted on input)
//   int32, uint32, float, double              -> number
//   bool -> boolean; string -> string; bytes -> Uint8Array (Buffer accepted)
//   enum -> its value's name (a number is accepted on input; an unknown
//           number of an open enum comes back as a number)
//   message -> plain object keyed by the .proto field names
//   repeated -> array; map -> plain object keyed by the map key as a string
// Output lists only fields that are set (proto3 JSON's rule); an absent key
// means the field's default.
#ifndef WALSTATE_BINDINGS_NODE_CONVERT_H_
#define WALSTATE_BINDINGS_NODE_CONVERT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "google/protobuf/message.h"
#include "napi.h"

namespace walstate {
namespace node {

// Sets `field` of `message` from `value` (null/undefined: cleared). Errors
// are InvalidArgument naming the field path and the expected type.
absl::Status SetFieldFromJs(const Napi::Value& value,
                            const google::protobuf::FieldDescriptor* field,
                            google::protobuf::Message* message);

// Fills `message` from the keys of a plain object (unknown keys: an error).
// With `set`, appends the fields named by the keys (the update's mask).
absl::Status MessageFromJs(
    const Napi::Value& value, google::protobuf::Message* message,
    std::vector<const google::protobuf::FieldDescriptor*>* set = nullptr);

// The set fields of `message` as a plain object.
Napi::Object MessageToJs(Napi::Env env,
                         const google::protobuf::Message& message);

// The key the engine's index holds for `value` of `field` (integers as
// decimal, bools as "true"/"false", enums by number, bytes as their bytes).
absl::Status IndexKeyFromJs(const Napi::Value& value,
                            const google::protobuf::FieldDescriptor* field,
                            std::string* key);

}  // namespace node
}  // namespace walstate

#endif  // WALSTATE_BINDINGS_NODE_CONVERT_H_
