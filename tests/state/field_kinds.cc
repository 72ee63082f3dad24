#include "tests/state/field_kinds.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "google/protobuf/descriptor.pb.h"

namespace walstate {
namespace testing {

using google::protobuf::FieldDescriptorProto;
using google::protobuf::Message;

FieldKinds::FieldKinds()
    : pool_(google::protobuf::DescriptorPool::generated_pool()) {
  google::protobuf::FileDescriptorProto file;
  file.set_name("tests/state/field_kinds.proto");
  file.set_package("walstate.test");
  file.set_syntax("proto3");
  auto* sub = file.add_message_type();
  sub->set_name("Sub");
  auto* sub_field = sub->add_field();
  sub_field->set_name("text");
  sub_field->set_number(1);
  sub_field->set_type(FieldDescriptorProto::TYPE_STRING);
  sub_field->set_label(FieldDescriptorProto::LABEL_OPTIONAL);
  auto* color = file.add_enum_type();
  color->set_name("Color");
  color->add_value()->set_name("NONE");
  color->add_value()->set_name("RED");
  color->mutable_value(1)->set_number(1);
  auto* msg = file.add_message_type();
  msg->set_name("Kinds");
  msg->add_oneof_decl()->set_name("choice");
  auto* entry = msg->add_nested_type();
  entry->set_name("CountsEntry");
  entry->mutable_options()->set_map_entry(true);
  for (int i = 1; i <= 2; ++i) {
    auto* f = entry->add_field();
    f->set_name(i == 1 ? "key" : "value");
    f->set_number(i);
    f->set_type(i == 1 ? FieldDescriptorProto::TYPE_STRING
                       : FieldDescriptorProto::TYPE_INT32);
    f->set_label(FieldDescriptorProto::LABEL_OPTIONAL);
  }
  int number = 0;
  auto add = [&](const char* name, FieldDescriptorProto::Type t,
                 const char* type_name = nullptr, bool repeated = false,
                 bool in_oneof = false) {
    auto* f = msg->add_field();
    f->set_name(name);
    f->set_number(++number);
    f->set_type(t);
    if (type_name != nullptr) f->set_type_name(type_name);
    f->set_label(repeated ? FieldDescriptorProto::LABEL_REPEATED
                          : FieldDescriptorProto::LABEL_OPTIONAL);
    if (in_oneof) f->set_oneof_index(0);
  };
  add("s", FieldDescriptorProto::TYPE_STRING);
  add("b", FieldDescriptorProto::TYPE_BYTES);
  add("i32", FieldDescriptorProto::TYPE_INT32);
  add("i64", FieldDescriptorProto::TYPE_INT64);
  add("u32", FieldDescriptorProto::TYPE_UINT32);
  add("u64", FieldDescriptorProto::TYPE_UINT64);
  add("d", FieldDescriptorProto::TYPE_DOUBLE);
  add("f", FieldDescriptorProto::TYPE_FLOAT);
  add("flag", FieldDescriptorProto::TYPE_BOOL);
  add("color", FieldDescriptorProto::TYPE_ENUM, ".walstate.test.Color");
  add("sub", FieldDescriptorProto::TYPE_MESSAGE, ".walstate.test.Sub");
  add("list", FieldDescriptorProto::TYPE_INT32, nullptr, /*repeated=*/true);
  add("counts", FieldDescriptorProto::TYPE_MESSAGE,
      ".walstate.test.Kinds.CountsEntry", /*repeated=*/true);
  add("one_s", FieldDescriptorProto::TYPE_STRING, nullptr, false, true);
  add("one_i", FieldDescriptorProto::TYPE_INT64, nullptr, false, true);
  const auto* built = pool_.BuildFile(file);
  if (built == nullptr) {
    std::fprintf(stderr, "field_kinds: the test schema does not build\n");
    std::abort();
  }
  factory_ = std::make_unique<google::protobuf::DynamicMessageFactory>(&pool_);
  prototype_ = factory_->GetPrototype(built->FindMessageTypeByName("Kinds"));
}

void FieldKinds::RandomValues(Message* m, std::mt19937* rng) {
  const auto* r = m->GetReflection();
  const auto* d = m->GetDescriptor();
  auto coin = [&] { return (*rng)() % 2 == 0; };
  auto field = [&](const char* name) { return d->FindFieldByName(name); };
  const std::string text = coin() ? "short" : std::string(40, 'L');
  if (coin()) r->SetString(m, field("s"), text + "s");
  if (coin()) r->SetString(m, field("b"), text + "b");
  if (coin()) r->SetInt32(m, field("i32"), (*rng)() % 3 - 1);
  if (coin()) r->SetInt64(m, field("i64"), (*rng)());
  if (coin()) r->SetUInt32(m, field("u32"), (*rng)() % 2);
  if (coin()) r->SetUInt64(m, field("u64"), (*rng)());
  if (coin()) r->SetDouble(m, field("d"), (*rng)() % 3 * 0.5);
  if (coin()) r->SetFloat(m, field("f"), 1.5f);
  if (coin()) r->SetBool(m, field("flag"), coin());
  if (coin()) r->SetEnumValue(m, field("color"), (*rng)() % 2);
  if (coin()) {
    Message* s = r->MutableMessage(m, field("sub"));
    if (coin()) {
      s->GetReflection()->SetString(
          s, s->GetDescriptor()->FindFieldByName("text"), text);
    }
  }
  for (int k = (*rng)() % 3; k > 0; --k) r->AddInt32(m, field("list"), k);
  for (int k = (*rng)() % 3; k > 0; --k) {
    Message* e = r->AddMessage(m, field("counts"));
    const auto* er = e->GetReflection();
    er->SetString(e, e->GetDescriptor()->FindFieldByName("key"),
                  std::to_string(k) + text);
    er->SetInt32(e, e->GetDescriptor()->FindFieldByName("value"), k);
  }
  switch ((*rng)() % 3) {
    case 0:
      r->SetString(m, field("one_s"), text);
      break;
    case 1:
      r->SetInt64(m, field("one_i"), 7);
      break;
  }
}

std::vector<std::string> FieldKinds::RandomFieldNames(std::mt19937* rng) const {
  std::vector<std::string> names;
  const auto* d = prototype_->GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    if ((*rng)() % 3 != 0) names.push_back(d->field(i)->name());
  }
  if (names.empty()) names.push_back(d->field(0)->name());
  std::shuffle(names.begin(), names.end(), *rng);
  return names;
}

}  // namespace testing
}  // namespace walstate
