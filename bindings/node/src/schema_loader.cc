#include "schema_loader.h"

#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/compiler/importer.h"
#include "google/protobuf/compiler/parser.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/io/zero_copy_stream.h"
#include "walstate/options.pb.h"

namespace walstate {
namespace node {
namespace {

using google::protobuf::DescriptorPool;
using google::protobuf::FileDescriptor;
using google::protobuf::FileDescriptorProto;

// The name the compiled-in options.proto has in the generated pool.
const std::string& OptionsFileName() {
  return walstate::Durability_descriptor()->file()->name();
}

// Names a user's .proto may import walstate's options by.
std::string ResolveAlias(const std::string& name) {
  if (name == "walstate/options.proto" ||
      name == "proto/walstate/options.proto") {
    return OptionsFileName();
  }
  return name;
}

// Collects parser errors as "file:line:column: message" lines.
class ParseErrors : public google::protobuf::io::ErrorCollector {
 public:
  explicit ParseErrors(std::string file) : file_(std::move(file)) {}
  void AddError(int line, int column, const std::string& message) override {
    lines_.push_back(
        absl::StrCat(file_, ":", line + 1, ":", column + 1, ": ", message));
  }
  void AddWarning(int, int, const std::string&) override {}
  const std::vector<std::string>& lines() const { return lines_; }

 private:
  std::string file_;
  std::vector<std::string> lines_;
};

// Collects the pool's errors (unknown types, bad options) the same way,
// with line and column where the parser recorded them.
class BuildErrors : public DescriptorPool::ErrorCollector {
 public:
  explicit BuildErrors(
      const google::protobuf::compiler::SourceLocationTable* locations)
      : locations_(locations) {}
  void AddError(const std::string& filename, const std::string& element_name,
                const google::protobuf::Message* descriptor,
                ErrorLocation location, const std::string& message) override {
    int line = 0, column = 0;
    if (locations_ != nullptr && descriptor != nullptr &&
        locations_->Find(descriptor, location, &line, &column)) {
      lines_.push_back(absl::StrCat(filename, ":", line + 1, ":", column + 1,
                                    ": ", message));
      return;
    }
    lines_.push_back(absl::StrCat(filename, ": ", element_name, ": ", message));
  }
  std::string Joined() const { return absl::StrJoin(lines_, "; "); }

 private:
  const google::protobuf::compiler::SourceLocationTable* locations_;
  std::vector<std::string> lines_;
};

std::unique_ptr<LoadedSchema> NewSchema() {
  auto schema = std::make_unique<LoadedSchema>();
  schema->pool =
      std::make_unique<DescriptorPool>(DescriptorPool::generated_pool());
  return schema;
}

// Builds `file` (its dependencies renamed by ResolveAlias) into the pool.
absl::Status BuildInto(DescriptorPool* pool, FileDescriptorProto file,
                       const google::protobuf::compiler::SourceLocationTable*
                           locations = nullptr) {
  for (std::string& dep : *file.mutable_dependency()) dep = ResolveAlias(dep);
  BuildErrors errors(locations);
  if (pool->BuildFileCollectingErrors(file, &errors) == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "schema file ", file.name(), " does not build: ", errors.Joined()));
  }
  return absl::OkStatus();
}

absl::Status Finish(LoadedSchema* schema, const std::string& message) {
  const google::protobuf::Descriptor* d =
      schema->pool->FindMessageTypeByName(message);
  if (d == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "message type ", message,
        " is not defined in the schema (give its full name, package "
        "included, e.g. \"walstate.example.GatewaySession\")"));
  }
  schema->factory = std::make_unique<google::protobuf::DynamicMessageFactory>(
      schema->pool.get());
  schema->factory->SetDelegateToGeneratedFactory(true);
  schema->prototype = schema->factory->GetPrototype(d);
  return absl::OkStatus();
}

// Parses .proto files from a source tree and builds them, imports first.
class ProtoParser {
 public:
  ProtoParser(google::protobuf::compiler::DiskSourceTree* tree,
              DescriptorPool* pool)
      : tree_(tree), pool_(pool) {}

  absl::Status Build(const std::string& requested) {
    const std::string name = ResolveAlias(requested);
    if (pool_->FindFileByName(name) != nullptr) return absl::OkStatus();
    if (!building_.insert(name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("import cycle through ", name));
    }
    std::unique_ptr<google::protobuf::io::ZeroCopyInputStream> in(
        tree_->Open(name));
    if (in == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("cannot open ", name, ": ", tree_->GetLastErrorMessage(),
                       " (add its directory to includeDirs)"));
    }
    ParseErrors errors(name);
    google::protobuf::io::Tokenizer tokenizer(in.get(), &errors);
    google::protobuf::compiler::Parser parser;
    parser.RecordErrorsTo(&errors);
    google::protobuf::compiler::SourceLocationTable locations;
    parser.RecordSourceLocationsTo(&locations);
    FileDescriptorProto file;
    if (!parser.Parse(&tokenizer, &file) || !errors.lines().empty()) {
      return absl::InvalidArgumentError(absl::StrJoin(errors.lines(), "\n"));
    }
    file.set_name(name);
    for (const std::string& dep : file.dependency()) {
      absl::Status s = Build(dep);
      if (!s.ok()) return s;
    }
    return BuildInto(pool_, std::move(file), &locations);
  }

 private:
  google::protobuf::compiler::DiskSourceTree* tree_;
  DescriptorPool* pool_;
  std::set<std::string> building_;
};

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

absl::StatusOr<std::unique_ptr<LoadedSchema>> LoadFromProtoFile(
    const std::string& proto_file, const std::vector<std::string>& include_dirs,
    const std::string& message) {
  google::protobuf::compiler::DiskSourceTree tree;
  for (const std::string& dir : include_dirs) tree.MapPath("", dir);
  std::string virtual_file, shadowing;
  if (tree.DiskFileToVirtualFile(proto_file, &virtual_file, &shadowing) !=
      google::protobuf::compiler::DiskSourceTree::SUCCESS) {
    // Not under an include directory: its own directory is searched last.
    tree.MapPath("", DirName(proto_file));
    if (tree.DiskFileToVirtualFile(proto_file, &virtual_file, &shadowing) !=
        google::protobuf::compiler::DiskSourceTree::SUCCESS) {
      return absl::NotFoundError(absl::StrCat("cannot read the schema file ",
                                              proto_file, ": ",
                                              tree.GetLastErrorMessage()));
    }
  }
  std::unique_ptr<LoadedSchema> schema = NewSchema();
  ProtoParser parser(&tree, schema->pool.get());
  absl::Status s = parser.Build(virtual_file);
  if (s.ok()) s = Finish(schema.get(), message);
  if (!s.ok()) return s;
  return schema;
}

absl::StatusOr<std::unique_ptr<LoadedSchema>> LoadFromDescriptorSet(
    absl::string_view serialized, const std::string& message) {
  google::protobuf::FileDescriptorSet set;
  if (!set.ParseFromArray(serialized.data(),
                          static_cast<int>(serialized.size()))) {
    return absl::InvalidArgumentError(
        "descriptorSet does not parse as a google.protobuf.FileDescriptorSet");
  }
  std::unique_ptr<LoadedSchema> schema = NewSchema();
  // protoc writes imports first; a set in another order is built in passes.
  std::vector<const FileDescriptorProto*> left;
  for (const auto& f : set.file()) left.push_back(&f);
  while (!left.empty()) {
    std::vector<const FileDescriptorProto*> later;
    absl::Status last;
    for (const FileDescriptorProto* f : left) {
      const std::string name = ResolveAlias(f->name());
      if (schema->pool->FindFileByName(name) != nullptr) continue;
      bool ready = true;
      for (const std::string& dep : f->dependency()) {
        if (schema->pool->FindFileByName(ResolveAlias(dep)) == nullptr) {
          ready = false;
        }
      }
      if (!ready) {
        later.push_back(f);
        continue;
      }
      absl::Status s = BuildInto(schema->pool.get(), *f);
      if (!s.ok()) return s;
    }
    if (later.size() == left.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("descriptorSet: ", later.front()->name(),
                       " imports a file the set does not contain (use protoc "
                       "--include_imports)"));
    }
    left = std::move(later);
  }
  absl::Status s = Finish(schema.get(), message);
  if (!s.ok()) return s;
  return schema;
}

}  // namespace node
}  // namespace walstate
