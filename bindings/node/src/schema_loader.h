// Builds the session message's descriptor at run time from the user's .proto
// files (or a serialized FileDescriptorSet), so a JS caller never runs protoc.
//
// The pool's underlay is the generated pool, so `walstate.durability` and
// `walstate.index` are the very extensions the engine reads. The user's
// `import "walstate/options.proto"` (or "proto/walstate/options.proto") is
// resolved to that compiled-in file; google/protobuf/*.proto likewise.
#ifndef WALSTATE_BINDINGS_NODE_SCHEMA_LOADER_H_
#define WALSTATE_BINDINGS_NODE_SCHEMA_LOADER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/message.h"

namespace walstate {
namespace node {

// A pool, its message factory and the session prototype, kept together:
// the prototype lives as long as both.
struct LoadedSchema {
  std::unique_ptr<google::protobuf::DescriptorPool> pool;
  std::unique_ptr<google::protobuf::DynamicMessageFactory> factory;
  const google::protobuf::Message* prototype = nullptr;
};

// Parses `proto_file` and what it imports, searching `include_dirs` and then
// the file's own directory, and returns the prototype of `message` (a full
// name such as "walstate.example.GatewaySession"). Errors (InvalidArgument,
// NotFound) quote protoc-style "file:line:column: message" lines.
absl::StatusOr<std::unique_ptr<LoadedSchema>> LoadFromProtoFile(
    const std::string& proto_file, const std::vector<std::string>& include_dirs,
    const std::string& message);

// The same from a serialized google.protobuf.FileDescriptorSet (protoc
// --include_imports --descriptor_set_out=...).
absl::StatusOr<std::unique_ptr<LoadedSchema>> LoadFromDescriptorSet(
    absl::string_view serialized, const std::string& message);

}  // namespace node
}  // namespace walstate

#endif  // WALSTATE_BINDINGS_NODE_SCHEMA_LOADER_H_
