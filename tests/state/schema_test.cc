// Schema::FromBlob on schemas stored by older releases.
#include "engine/state/schema.h"

#include "google/protobuf/descriptor.pb.h"
#include "gtest/gtest.h"
#include "proto/walstate/record.pb.h"
#include "walstate/options.pb.h"

namespace walstate {
namespace {

using google::protobuf::FieldDescriptorProto;

// Before release 0.1 the options file was "proto/walstate/options.proto" and
// every stored schema names it so, in its own entry and as a dependency.
TEST(SchemaTest, LoadsSchemaNamingTheOldOptionsFile) {
  record::Schema stored;
  stored.set_message_type("walstate.test.Old");
  google::protobuf::FileDescriptorProto* options =
      stored.mutable_files()->add_file();
  Durability_descriptor()->file()->CopyTo(options);
  options->set_name("proto/walstate/options.proto");
  options->clear_dependency();
  options->add_dependency("google/protobuf/descriptor.proto");

  google::protobuf::FileDescriptorProto* file =
      stored.mutable_files()->add_file();
  file->set_name("old.proto");
  file->set_package("walstate.test");
  file->set_syntax("proto3");
  file->add_dependency("proto/walstate/options.proto");
  auto* msg = file->add_message_type();
  msg->set_name("Old");
  auto* f = msg->add_field();
  f->set_name("fingerprint");
  f->set_number(1);
  f->set_type(FieldDescriptorProto::TYPE_STRING);
  f->set_label(FieldDescriptorProto::LABEL_OPTIONAL);
  f->mutable_options()->SetExtension(walstate::durability, IMMEDIATE);
  f->mutable_options()->SetExtension(walstate::index, UNIQUE);

  auto schema = Schema::FromBlob(stored.SerializeAsString(), BATCHED);
  ASSERT_TRUE(schema.ok()) << schema.status();
  const Schema::Field* field = (*schema)->FindByName("fingerprint");
  ASSERT_NE(field, nullptr);
  EXPECT_EQ(field->durability, IMMEDIATE);
  EXPECT_EQ(field->index_kind, UNIQUE);
}

}  // namespace
}  // namespace walstate
