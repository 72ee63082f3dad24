// Schema: what walstate knows about the user's session message type: its
// fields' durability tiers and indexes (from the .proto field options), and
// the descriptor blob written into every file header so that tools can decode
// state without the user's generated code.
#ifndef WALSTATE_ENGINE_STATE_SCHEMA_H_
#define WALSTATE_ENGINE_STATE_SCHEMA_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/message.h"
#include "walstate/options.pb.h"

namespace walstate {

class Schema {
 public:
  struct Field {
    const google::protobuf::FieldDescriptor* descriptor = nullptr;
    absl::string_view name;  // the descriptor's
    int index = 0;           // position among the message's top-level fields
    Durability durability = BATCHED;  // never DURABILITY_DEFAULT
    IndexKind index_kind = NO_INDEX;
    int index_position = -1;  // in indexed_fields(), if indexed
  };

  // From compiled-in generated code. `default_durability` applies to fields
  // that declare none. InvalidArgument if an index option is on a field type
  // that cannot be indexed (message, float, double, repeated).
  static absl::StatusOr<std::unique_ptr<Schema>> FromPrototype(
      const google::protobuf::Message& prototype,
      Durability default_durability);

  // From a file header's schema blob (serialized walstate.record.Schema),
  // for tools. Builds its own descriptor pool and dynamic messages.
  static absl::StatusOr<std::unique_ptr<Schema>> FromBlob(
      absl::string_view blob, Durability default_durability = BATCHED);

  ~Schema();

  const google::protobuf::Descriptor* descriptor() const { return descriptor_; }
  const google::protobuf::Message& prototype() const { return *prototype_; }
  std::unique_ptr<google::protobuf::Message> NewMessage() const {
    return std::unique_ptr<google::protobuf::Message>(prototype_->New());
  }

  // The serialized walstate.record.Schema for file headers.
  const std::string& blob() const { return blob_; }

  const std::vector<Field>& fields() const { return fields_; }
  const Field* FindByName(absl::string_view name) const;
  const Field* FindByNumber(int number) const;
  const std::vector<const Field*>& indexed_fields() const { return indexed_; }

  // The value of indexed field `field` in `message` as an index key; empty if
  // unset (unset values are not indexed).
  std::string IndexKey(const google::protobuf::Message& message,
                       const Field& field) const;

 private:
  Schema() = default;
  absl::Status Init(const google::protobuf::Message* prototype,
                    Durability default_durability);

  // Set only for schemas built from a blob.
  std::unique_ptr<google::protobuf::DescriptorPool> pool_;
  std::unique_ptr<google::protobuf::DynamicMessageFactory> factory_;

  const google::protobuf::Descriptor* descriptor_ = nullptr;
  const google::protobuf::Message* prototype_ = nullptr;
  std::string blob_;
  std::vector<Field> fields_;
  // Field number -> index in fields_. A map, not a table indexed by number:
  // field numbers go up to 2^29 - 1, and a table sized by the largest one
  // (a schema blob in a file header is untrusted input) could take gigabytes.
  absl::flat_hash_map<int, int> by_number_;
  // Field name -> index in fields_ (keys point into the descriptors).
  absl::flat_hash_map<absl::string_view, int> by_name_;
  std::vector<const Field*> indexed_;
};

}  // namespace walstate

#endif  // WALSTATE_ENGINE_STATE_SCHEMA_H_
