#include "engine/state/schema.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.pb.h"
#include "proto/walstate/record.pb.h"

namespace walstate {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::FileDescriptor;

// Adds `file` and everything it imports, dependencies first, so the set can
// be loaded into a fresh pool in order.
void CollectFiles(const FileDescriptor* file, std::set<std::string>* seen,
                  google::protobuf::FileDescriptorSet* out) {
  if (!seen->insert(file->name()).second) return;
  // Protobuf's own files are in every reader's generated pool already, and
  // descriptor.proto alone would add ~10 KB to every file header.
  if (file->name().rfind("google/protobuf/", 0) == 0) return;
  for (int i = 0; i < file->dependency_count(); ++i) {
    CollectFiles(file->dependency(i), seen, out);
  }
  file->CopyTo(out->add_file());
}

// Where walstate/options.proto was before release 0.1 (stored schemas name it).
constexpr char kOldOptionsFile[] = "proto/walstate/options.proto";

bool Indexable(const FieldDescriptor* f) {
  if (f->is_repeated()) return false;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64:
    case FieldDescriptor::CPPTYPE_BOOL:
    case FieldDescriptor::CPPTYPE_ENUM:
      return true;
    default:
      return false;
  }
}

}  // namespace

Schema::~Schema() = default;

absl::StatusOr<std::unique_ptr<Schema>> Schema::FromPrototype(
    const google::protobuf::Message& prototype, Durability default_durability) {
  std::unique_ptr<Schema> schema(new Schema());
  absl::Status s = schema->Init(&prototype, default_durability);
  if (!s.ok()) return s;
  return schema;
}

absl::StatusOr<std::unique_ptr<Schema>> Schema::FromBlob(
    absl::string_view blob, Durability default_durability) {
  record::Schema stored;
  if (!stored.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
    return absl::DataLossError("stored schema does not parse");
  }
  if (stored.message_type().empty()) {
    return absl::NotFoundError("no schema stored in this file");
  }
  std::unique_ptr<Schema> schema(new Schema());
  // Files the binary was compiled with (descriptor.proto, options.proto) come
  // from the generated pool, so the walstate field options stay readable.
  schema->pool_ = std::make_unique<google::protobuf::DescriptorPool>(
      google::protobuf::DescriptorPool::generated_pool());
  for (google::protobuf::FileDescriptorProto& file :
       *stored.mutable_files()->mutable_file()) {
    // Stores written before release 0.1 name the options file by its old
    // path in this repository; it holds the same definitions as the one the
    // binary was compiled with.
    if (file.name() == kOldOptionsFile) continue;
    for (std::string& dependency : *file.mutable_dependency()) {
      if (dependency == kOldOptionsFile) dependency = "walstate/options.proto";
    }
    if (google::protobuf::DescriptorPool::generated_pool()->FindFileByName(
            file.name()) != nullptr) {
      continue;
    }
    if (schema->pool_->BuildFile(file) == nullptr) {
      return absl::DataLossError(
          absl::StrCat("stored schema file ", file.name(), " does not load"));
    }
  }
  const Descriptor* d =
      schema->pool_->FindMessageTypeByName(stored.message_type());
  if (d == nullptr) {
    return absl::DataLossError(absl::StrCat("stored schema lacks message type ",
                                            stored.message_type()));
  }
  schema->factory_ = std::make_unique<google::protobuf::DynamicMessageFactory>(
      schema->pool_.get());
  schema->factory_->SetDelegateToGeneratedFactory(true);
  absl::Status s =
      schema->Init(schema->factory_->GetPrototype(d), default_durability);
  if (!s.ok()) return s;
  schema->blob_ = std::string(blob);
  return schema;
}

absl::Status Schema::Init(const google::protobuf::Message* prototype,
                          Durability default_durability) {
  if (default_durability == DURABILITY_DEFAULT) default_durability = BATCHED;
  prototype_ = prototype;
  descriptor_ = prototype->GetDescriptor();
  const int n = descriptor_->field_count();
  fields_.resize(n);
  for (int i = 0; i < n; ++i) {
    const FieldDescriptor* f = descriptor_->field(i);
    Field& field = fields_[i];
    field.descriptor = f;
    field.index = i;
    Durability d = f->options().GetExtension(walstate::durability);
    field.durability = d == DURABILITY_DEFAULT ? default_durability : d;
    field.index_kind = f->options().GetExtension(walstate::index);
    if (field.index_kind != NO_INDEX && !Indexable(f)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "field ", f->full_name(),
          " has a walstate.index option but its type cannot be indexed "
          "(use a singular string, bytes, integer, bool or enum field)"));
    }
  }
  by_number_.clear();
  by_number_.reserve(n);
  for (int i = 0; i < n; ++i) {
    by_number_[fields_[i].descriptor->number()] = i;
    fields_[i].name = fields_[i].descriptor->name();
    by_name_[fields_[i].name] = i;
    if (fields_[i].index_kind != NO_INDEX) {
      fields_[i].index_position = static_cast<int>(indexed_.size());
      indexed_.push_back(&fields_[i]);
    }
  }
  if (blob_.empty()) {
    record::Schema stored;
    stored.set_message_type(descriptor_->full_name());
    std::set<std::string> seen;
    CollectFiles(descriptor_->file(), &seen, stored.mutable_files());
    stored.SerializeToString(&blob_);
  }
  return absl::OkStatus();
}

const Schema::Field* Schema::FindByName(absl::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &fields_[it->second];
}

const Schema::Field* Schema::FindByNumber(int number) const {
  auto it = by_number_.find(number);
  return it == by_number_.end() ? nullptr : &fields_[it->second];
}

std::string Schema::IndexKey(const google::protobuf::Message& message,
                             const Field& field) const {
  const auto* r = message.GetReflection();
  const FieldDescriptor* f = field.descriptor;
  // Unset values are not indexed. Without explicit presence (proto3 plain
  // scalars) HasField is false for the default value, which is what "unset"
  // looks like there.
  if (!r->HasField(message, f)) return "";
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      return r->GetString(message, f);
    case FieldDescriptor::CPPTYPE_INT32:
      return absl::StrCat(r->GetInt32(message, f));
    case FieldDescriptor::CPPTYPE_INT64:
      return absl::StrCat(r->GetInt64(message, f));
    case FieldDescriptor::CPPTYPE_UINT32:
      return absl::StrCat(r->GetUInt32(message, f));
    case FieldDescriptor::CPPTYPE_UINT64:
      return absl::StrCat(r->GetUInt64(message, f));
    case FieldDescriptor::CPPTYPE_BOOL:
      return r->GetBool(message, f) ? "true" : "false";
    case FieldDescriptor::CPPTYPE_ENUM:
      return absl::StrCat(r->GetEnumValue(message, f));
    default:
      return "";
  }
}

}  // namespace walstate
