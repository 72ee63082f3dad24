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
// Input (an update's values) is encoded by encode.h with the same rules.
// Output lists only fields that are set (proto3 JSON's rule); an absent key
// means the field's default.
#ifndef WALSTATE_BINDINGS_NODE_CONVERT_H_
#define WALSTATE_BINDINGS_NODE_CONVERT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "google/protobuf/message.h"
#include "napi.h"

namespace walstate {
namespace node {

// The InvalidArgument error for `value` given to `f`, naming the field,
// the `expected` type and what `value` is.
absl::Status Mismatch(const google::protobuf::FieldDescriptor* f,
                      const char* expected, const Napi::Value& value);

// A JS integer (an integral number within 2^53, or a bigint) within
// [lo, hi]; false otherwise.
bool ToSigned(const Napi::Value& v, int64_t lo, int64_t hi, int64_t* out);
bool ToUnsigned(const Napi::Value& v, uint64_t hi, uint64_t* out);

// The bytes of a Uint8Array (a Buffer is one); false for anything else.
bool ToBytes(const Napi::Value& v, std::string* out);

// The set fields of `message` as a plain object.
Napi::Object MessageToJs(Napi::Env env,
                         const google::protobuf::Message& message);

// The message types `root` reaches, for lib/encode.js's plan: an array of
// { fullName, fields }, `root` first. A field is { name, fullName, number,
// type (FieldDescriptor::Type), index, repeated, message (index in the
// array, or -1), enumName, enumValues ({ NAME: number }), closedEnum }; a
// map field also has `key` and `value`: its entry's two fields, alike.
Napi::Array DescribeSchema(Napi::Env env,
                           const google::protobuf::Descriptor* root);

// The key the engine's index holds for `value` of `field` (integers as
// decimal, bools as "true"/"false", enums by number, bytes as their bytes).
absl::Status IndexKeyFromJs(const Napi::Value& value,
                            const google::protobuf::FieldDescriptor* field,
                            std::string* key);

}  // namespace node
}  // namespace walstate

#endif  // WALSTATE_BINDINGS_NODE_CONVERT_H_
