// proto_wire's two implementations (engine/state/proto_wire.h) write the
// same bytes as each other and as the generated serializer, and skip fields
// alike: over a proto2 message with a field of every type (singular with
// presence, repeated packed and unpacked, groups, maps, closed enums), over
// tests/state/field_kinds (proto3, a oneof, a map) and over random bytes.
// Under --config=portable_protobuf (or another protobuf) only the portable
// path is compiled: it is then checked against the generated serializer.
#include "engine/state/proto_wire.h"

#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "engine/state/schema.h"
#include "engine/state/update_codec.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "proto/example/gateway.pb.h"
#include "tests/state/field_kinds.h"

namespace walstate {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::FieldDescriptorProto;
using google::protobuf::Message;
using google::protobuf::Reflection;
using google::protobuf::util::MessageDifferencer;

// walstate.wiretest.All (proto2): every field type singular, repeated
// unpacked and repeated packed; a group and a repeated group; a closed
// enum; map<string, Sub> and map<sint32, int64>.
class AllTypes {
 public:
  AllTypes() : pool_(google::protobuf::DescriptorPool::generated_pool()) {
    google::protobuf::FileDescriptorProto file;
    file.set_name("tests/state/wiretest.proto");
    file.set_package("walstate.wiretest");
    file.set_syntax("proto2");
    auto* color = file.add_enum_type();
    color->set_name("Color");
    for (int v : {0, 1, 5}) {
      auto* value = color->add_value();
      value->set_name("C" + std::to_string(v));
      value->set_number(v);
    }
    auto* sub = file.add_message_type();
    sub->set_name("Sub");
    AddField(sub, "text", 1, FieldDescriptorProto::TYPE_STRING);
    AddField(sub, "n", 2, FieldDescriptorProto::TYPE_SINT64);
    AddField(sub, "child", 3, FieldDescriptorProto::TYPE_MESSAGE,
             ".walstate.wiretest.Sub");
    auto* all = file.add_message_type();
    all->set_name("All");
    const std::vector<std::pair<const char*, FieldDescriptorProto::Type>>
        scalars = {{"double", FieldDescriptorProto::TYPE_DOUBLE},
                   {"float", FieldDescriptorProto::TYPE_FLOAT},
                   {"int64", FieldDescriptorProto::TYPE_INT64},
                   {"uint64", FieldDescriptorProto::TYPE_UINT64},
                   {"int32", FieldDescriptorProto::TYPE_INT32},
                   {"fixed64", FieldDescriptorProto::TYPE_FIXED64},
                   {"fixed32", FieldDescriptorProto::TYPE_FIXED32},
                   {"bool", FieldDescriptorProto::TYPE_BOOL},
                   {"uint32", FieldDescriptorProto::TYPE_UINT32},
                   {"sfixed32", FieldDescriptorProto::TYPE_SFIXED32},
                   {"sfixed64", FieldDescriptorProto::TYPE_SFIXED64},
                   {"sint32", FieldDescriptorProto::TYPE_SINT32},
                   {"sint64", FieldDescriptorProto::TYPE_SINT64},
                   {"color", FieldDescriptorProto::TYPE_ENUM}};
    int number = 0;
    for (const auto& [name, type] : scalars) {
      const char* type_name = type == FieldDescriptorProto::TYPE_ENUM
                                  ? ".walstate.wiretest.Color"
                                  : nullptr;
      AddField(all, std::string("o_") + name, ++number, type, type_name);
      AddField(all, std::string("r_") + name, ++number, type, type_name,
               FieldDescriptorProto::LABEL_REPEATED);
      AddField(all, std::string("p_") + name, ++number, type, type_name,
               FieldDescriptorProto::LABEL_REPEATED)
          ->mutable_options()
          ->set_packed(true);
    }
    for (auto type : {FieldDescriptorProto::TYPE_STRING,
                      FieldDescriptorProto::TYPE_BYTES}) {
      const char* name =
          type == FieldDescriptorProto::TYPE_STRING ? "string" : "bytes";
      AddField(all, std::string("o_") + name, ++number, type);
      AddField(all, std::string("r_") + name, ++number, type, nullptr,
               FieldDescriptorProto::LABEL_REPEATED);
    }
    AddField(all, "o_sub", ++number, FieldDescriptorProto::TYPE_MESSAGE,
             ".walstate.wiretest.Sub");
    AddField(all, "r_sub", ++number, FieldDescriptorProto::TYPE_MESSAGE,
             ".walstate.wiretest.Sub", FieldDescriptorProto::LABEL_REPEATED);
    for (const char* group : {"Grp", "Rgrp"}) {
      auto* type = all->add_nested_type();
      type->set_name(group);
      AddField(type, "a", 1, FieldDescriptorProto::TYPE_INT32);
      AddField(type, "s", 2, FieldDescriptorProto::TYPE_STRING);
      std::string field = group;
      field[0] = static_cast<char>(field[0] - 'A' + 'a');
      AddField(all, field, ++number, FieldDescriptorProto::TYPE_GROUP,
               (std::string(".walstate.wiretest.All.") + group).c_str(),
               group[0] == 'R' ? FieldDescriptorProto::LABEL_REPEATED
                               : FieldDescriptorProto::LABEL_OPTIONAL);
    }
    AddMap(all, "SubsEntry", "subs", ++number,
           FieldDescriptorProto::TYPE_STRING,
           FieldDescriptorProto::TYPE_MESSAGE, ".walstate.wiretest.Sub");
    AddMap(all, "NumbersEntry", "numbers", ++number,
           FieldDescriptorProto::TYPE_SINT32, FieldDescriptorProto::TYPE_INT64,
           nullptr);
    const auto* built = pool_.BuildFile(file);
    if (built == nullptr) std::abort();
    factory_ =
        std::make_unique<google::protobuf::DynamicMessageFactory>(&pool_);
    prototype_ = factory_->GetPrototype(built->FindMessageTypeByName("All"));
  }

  const Message& prototype() const { return *prototype_; }

  // Sets or adds random values (extremes included) to most fields of `m`.
  static void Fill(Message* m, std::mt19937_64* rng, int depth = 0) {
    const auto* d = m->GetDescriptor();
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* f = d->field(i);
      if ((*rng)() % 3 == 0) continue;
      if (!f->is_repeated()) {
        SetValue(m, f, rng, depth, /*add=*/false);
        continue;
      }
      for (int k = static_cast<int>((*rng)() % 4); k > 0; --k) {
        SetValue(m, f, rng, depth, /*add=*/true);
      }
    }
  }

 private:
  static FieldDescriptorProto* AddField(
      google::protobuf::DescriptorProto* m, const std::string& name, int number,
      FieldDescriptorProto::Type type, const char* type_name = nullptr,
      FieldDescriptorProto::Label label =
          FieldDescriptorProto::LABEL_OPTIONAL) {
    auto* f = m->add_field();
    f->set_name(name);
    f->set_number(number);
    f->set_type(type);
    f->set_label(label);
    if (type_name != nullptr) f->set_type_name(type_name);
    return f;
  }

  static void AddMap(google::protobuf::DescriptorProto* m, const char* entry,
                     const char* field, int number,
                     FieldDescriptorProto::Type key,
                     FieldDescriptorProto::Type value, const char* value_type) {
    auto* e = m->add_nested_type();
    e->set_name(entry);
    e->mutable_options()->set_map_entry(true);
    AddField(e, "key", 1, key);
    AddField(e, "value", 2, value, value_type);
    AddField(m, field, number, FieldDescriptorProto::TYPE_MESSAGE,
             (std::string(".walstate.wiretest.All.") + entry).c_str(),
             FieldDescriptorProto::LABEL_REPEATED);
  }

  template <typename T>
  static T Pick(std::mt19937_64* rng) {
    switch ((*rng)() % 5) {
      case 0:
        return std::numeric_limits<T>::min();
      case 1:
        return std::numeric_limits<T>::max();
      case 2:
        return T{0};
      case 3:
        return static_cast<T>(-1);
      default:
        return static_cast<T>((*rng)() >> ((*rng)() % 64));
    }
  }

  static void SetValue(Message* m, const FieldDescriptor* f,
                       std::mt19937_64* rng, int depth, bool add) {
    const Reflection* r = m->GetReflection();
#define WALSTATE_SET(TYPE, VALUE) \
  do {                            \
    if (add) {                    \
      r->Add##TYPE(m, f, VALUE);  \
    } else {                      \
      r->Set##TYPE(m, f, VALUE);  \
    }                             \
  } while (0)
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        WALSTATE_SET(Int32, Pick<int32_t>(rng));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        WALSTATE_SET(Int64, Pick<int64_t>(rng));
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        WALSTATE_SET(UInt32, Pick<uint32_t>(rng));
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        WALSTATE_SET(UInt64, Pick<uint64_t>(rng));
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        WALSTATE_SET(Double, (*rng)() % 4 == 0
                                 ? -0.0
                                 : static_cast<double>(Pick<int64_t>(rng)) / 3);
        break;
      case FieldDescriptor::CPPTYPE_FLOAT:
        WALSTATE_SET(Float, (*rng)() % 4 == 0
                                ? std::numeric_limits<float>::infinity()
                                : static_cast<float>(Pick<int32_t>(rng)) / 7);
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        WALSTATE_SET(Bool, (*rng)() % 2 == 0);
        break;
      case FieldDescriptor::CPPTYPE_ENUM: {
        const auto* e = f->enum_type();
        WALSTATE_SET(
            EnumValue,
            e->value(static_cast<int>((*rng)() % e->value_count()))->number());
        break;
      }
      case FieldDescriptor::CPPTYPE_STRING: {
        // Lengths either side of 127, where the length prefix grows.
        static const size_t kLengths[] = {0, 1, 127, 128, 300};
        std::string s(kLengths[(*rng)() % 5], 'x');
        for (char& c : s) c = static_cast<char>('a' + (*rng)() % 26);
        WALSTATE_SET(String, s);
        break;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE: {
        Message* sub = add ? r->AddMessage(m, f) : r->MutableMessage(m, f);
        if (depth < 2) Fill(sub, rng, depth + 1);
        break;
      }
    }
#undef WALSTATE_SET
  }

  google::protobuf::DescriptorPool pool_;
  std::unique_ptr<google::protobuf::DynamicMessageFactory> factory_;
  const Message* prototype_ = nullptr;
};

std::vector<wire::FieldPart> Parts(const Message& m) {
  std::vector<wire::FieldPart> parts;
  const auto* d = m.GetDescriptor();
  const Reflection* r = m.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    wire::FieldPart part{f, nullptr, true};
    if (!f->is_repeated() && !r->HasField(m, f)) {
      part.present = false;
    } else if (!f->is_repeated() &&
               f->type() == FieldDescriptor::TYPE_MESSAGE) {
      part.submessage = &r->GetMessage(m, f);
    }
    parts.push_back(part);
  }
  return parts;
}

// Sizes and writes all fields of `m` with one implementation, as
// UpdateEncoder does; checks the size.
template <typename SizeFn, typename WriteFn>
std::string Encode(const Message& m, SizeFn field_size, WriteFn write) {
  const std::vector<wire::FieldPart> parts = Parts(m);
  size_t size = 0;
  for (const wire::FieldPart& part : parts) {
    if (!part.present) continue;
    size += part.submessage != nullptr
                ? wire::SubmessageFieldSize(part.descriptor->number(),
                                            *part.submessage)
                : field_size(m, part.descriptor);
  }
  std::string out(size, '\0');
  uint8_t* begin = reinterpret_cast<uint8_t*>(&out[0]);
  uint8_t* end = write(m, parts, size, begin);
  EXPECT_EQ(static_cast<size_t>(end - begin), size);
  return out;
}

std::string EncodePortable(const Message& m) {
  return Encode(m, wire::portable::FieldSize, wire::portable::WriteFields);
}

// The generated serializer of a message holding only `f` of `m`.
std::string SerializeOnly(const Message& m, const FieldDescriptor* f) {
  std::unique_ptr<Message> only(m.New());
  only->CopyFrom(m);
  const auto* d = m.GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    if (d->field(i) != f)
      only->GetReflection()->ClearField(only.get(), d->field(i));
  }
  return only->SerializeAsString();
}

// Checks one message: both paths give the same bytes, those parse back to
// `m`, and field by field they are the generated serializer's (a map only
// with one entry: copying a map may reorder it).
void CheckMessage(const Message& m) {
  const std::string portable = EncodePortable(m);
  std::unique_ptr<Message> back(m.New());
  ASSERT_TRUE(back->ParseFromString(portable));
  EXPECT_TRUE(MessageDifferencer::Equals(*back, m)) << m.DebugString();
#if WALSTATE_PROTOBUF_FAST_PATH
  const std::string fast =
      Encode(m, wire::fast::FieldSize, wire::fast::WriteFields);
  EXPECT_EQ(fast, portable) << m.DebugString();
#endif
  const auto* d = m.GetDescriptor();
  const Reflection* r = m.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->is_map() && r->FieldSize(m, f) > 1) continue;
    if (!f->is_repeated() && !r->HasField(m, f)) continue;
    std::string one;
    if (!f->is_repeated() && f->type() == FieldDescriptor::TYPE_MESSAGE) {
      const Message& sub = r->GetMessage(m, f);
      one.resize(wire::SubmessageFieldSize(f->number(), sub));
      wire::FieldPart part{f, &sub, true};
      wire::portable::WriteFields(m, {&part, 1}, one.size(),
                                  reinterpret_cast<uint8_t*>(&one[0]));
    } else {
      one.resize(wire::portable::FieldSize(m, f));
      wire::FieldPart part{f, nullptr, true};
      wire::portable::WriteFields(m, {&part, 1}, one.size(),
                                  reinterpret_cast<uint8_t*>(&one[0]));
#if WALSTATE_PROTOBUF_FAST_PATH
      EXPECT_EQ(wire::fast::FieldSize(m, f), one.size()) << f->name();
#endif
    }
    EXPECT_EQ(one, SerializeOnly(m, f)) << f->name();
  }
}

TEST(ProtoWireTest, EveryTypeWritesAsTheGeneratedSerializer) {
  AllTypes types;
  std::mt19937_64 rng(18);
  for (int i = 0; i < 300; ++i) {
    std::unique_ptr<Message> m(types.prototype().New());
    AllTypes::Fill(m.get(), &rng);
    CheckMessage(*m);
    // The same values after a parse: maps now live in their map, not in the
    // repeated entries reflection added.
    std::unique_ptr<Message> parsed(m->New());
    ASSERT_TRUE(parsed->ParseFromString(m->SerializeAsString()));
    CheckMessage(*parsed);
    if (HasFailure()) break;
  }
}

TEST(ProtoWireTest, FieldKindsWriteAsTheGeneratedSerializer) {
  testing::FieldKinds kinds;
  std::mt19937 rng(6);
  for (int i = 0; i < 300; ++i) {
    std::unique_ptr<Message> m(kinds.prototype().New());
    testing::FieldKinds::RandomValues(m.get(), &rng);
    CheckMessage(*m);
    if (HasFailure()) break;
  }
}

TEST(ProtoWireTest, GeneratedMessageWritesAsTheGeneratedSerializer) {
  example::GatewaySession s;
  s.set_fingerprint("fp");
  s.mutable_ltm()->set_cache_text(std::string(200, 'c'));
  s.mutable_cost()->set_conversation_turns(-3);
  CheckMessage(s);
}

// What a loop of ReadTag/SkipField does with `bytes`: each tag, where the
// skip ended and whether it succeeded, up to the first failure.
template <typename Skip>
std::vector<std::tuple<uint32_t, int, bool>> Walk(const std::string& bytes,
                                                  Skip skip) {
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t*>(bytes.data()),
      static_cast<int>(bytes.size()));
  in.SetRecursionLimit(8);
  std::vector<std::tuple<uint32_t, int, bool>> steps;
  while (uint32_t tag = in.ReadTag()) {
    const bool ok = skip(&in, tag);
    steps.emplace_back(tag, in.CurrentPosition(), ok);
    if (!ok) break;
  }
  steps.emplace_back(0, in.CurrentPosition(), in.ConsumedEntireMessage());
  return steps;
}

TEST(ProtoWireTest, SkipFieldAgreesOnValidAndDamagedBytes) {
  AllTypes types;
  std::mt19937_64 rng(3);
  std::vector<std::string> inputs = {
      "",
      std::string("\x00", 1),
      "\x0b\x0c",
      "\x0b\x14\x0c",
      "\x0c",
      "\x0b\x08\x01\x0c",
      "\x0e",
      "\x0f",
      "\x0a\xff\xff\xff\xff\x0f",
      std::string(20, '\x0b') + std::string(20, '\x0c')};
  for (int i = 0; i < 400; ++i) {
    std::unique_ptr<Message> m(types.prototype().New());
    AllTypes::Fill(m.get(), &rng);
    std::string bytes = m->SerializeAsString();
    inputs.push_back(bytes);
    // Damaged: a byte changed, and cut short.
    if (!bytes.empty()) {
      std::string flipped = bytes;
      flipped[rng() % flipped.size()] ^= static_cast<char>(1 + rng() % 255);
      inputs.push_back(flipped);
      inputs.push_back(bytes.substr(0, rng() % bytes.size()));
    }
    std::string noise(rng() % 40, '\0');
    for (char& c : noise) c = static_cast<char>(rng());
    inputs.push_back(noise);
  }
  for (const std::string& in : inputs) {
    const auto portable = Walk(in, wire::portable::SkipField);
    EXPECT_EQ(Walk(in, wire::SkipField), portable);
#if WALSTATE_PROTOBUF_FAST_PATH
    EXPECT_EQ(Walk(in, wire::fast::SkipField), portable);
#endif
    if (HasFailure()) break;
  }
}

TEST(ProtoWireTest, WireTypeOfEveryType) {
  AllTypes types;
  const auto* d = types.prototype().GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    std::unique_ptr<Message> m(types.prototype().New());
    std::mt19937_64 rng(i);
    // One unpacked element: its tag's wire type is the field's.
    if (f->is_packed() || f->is_map()) continue;
    while (f->is_repeated() ? m->GetReflection()->FieldSize(*m, f) == 0
                            : !m->GetReflection()->HasField(*m, f)) {
      AllTypes::Fill(m.get(), &rng);
      for (int k = 0; k < d->field_count(); ++k) {
        if (d->field(k) != f)
          m->GetReflection()->ClearField(m.get(), d->field(k));
      }
    }
    const std::string bytes = m->SerializeAsString();
    google::protobuf::io::CodedInputStream in(
        reinterpret_cast<const uint8_t*>(bytes.data()),
        static_cast<int>(bytes.size()));
    const uint32_t tag = in.ReadTag();
    EXPECT_EQ(tag, wire::MakeTag(f->number(), wire::WireTypeOf(f)))
        << f->name();
  }
}

TEST(ProtoWireTest, ZigZag) {
  EXPECT_EQ(wire::ZigZagDecode32(0), 0);
  EXPECT_EQ(wire::ZigZagDecode32(1), -1);
  EXPECT_EQ(wire::ZigZagDecode32(2), 1);
  EXPECT_EQ(wire::ZigZagDecode32(0xffffffffu),
            std::numeric_limits<int32_t>::min());
  EXPECT_EQ(wire::ZigZagDecode64(0xfffffffffffffffeull),
            std::numeric_limits<int64_t>::max());
  EXPECT_EQ(wire::ZigZagDecode64(0xffffffffffffffffull),
            std::numeric_limits<int64_t>::min());
}

// The update codec over the fields of every kind (its only use of
// WriteFields): the payload's values parse back to the listed fields.
TEST(ProtoWireTest, UpdateOfEveryTypeRoundTrips) {
  AllTypes types;
  auto schema = Schema::FromPrototype(types.prototype(), BATCHED);
  ASSERT_TRUE(schema.ok()) << schema.status();
  std::vector<const Schema::Field*> fields;
  for (const Schema::Field& f : (*schema)->fields()) fields.push_back(&f);
  std::mt19937_64 rng(5);
  for (int i = 0; i < 100; ++i) {
    std::unique_ptr<Message> m(types.prototype().New());
    AllTypes::Fill(m.get(), &rng);
    std::string payload;
    ASSERT_TRUE(EncodeUpdate("s", 1, *m, fields, &payload).ok());
    UpdateView view;
    ASSERT_TRUE(DecodeUpdate(payload, &view));
    EXPECT_EQ(view.values, EncodePortable(*m));
  }
}

}  // namespace
}  // namespace walstate

namespace walstate {
namespace {

// Proto3 map entries holding default keys and values (left unset, or set to
// the default) in a dynamic message, before a parse (the map is its
// repeated entries) and after one (the map lives in the map): the fast path
// writes the entry from the map, the portable path through the entry
// message; the bytes are the same.
TEST(ProtoWireTest, Proto3MapEntriesWithDefaults) {
  testing::FieldKinds kinds;
  std::unique_ptr<Message> m(kinds.prototype().New());
  const FieldDescriptor* counts = m->GetDescriptor()->FindFieldByName("counts");
  Message* entry = m->GetReflection()->AddMessage(m.get(), counts);
  entry->GetReflection()->SetString(
      entry, entry->GetDescriptor()->FindFieldByName("key"), "");
  m->GetReflection()->AddMessage(m.get(), counts);  // nothing set
  entry = m->GetReflection()->AddMessage(m.get(), counts);
  entry->GetReflection()->SetInt32(
      entry, entry->GetDescriptor()->FindFieldByName("value"), 0);
  entry->GetReflection()->SetString(
      entry, entry->GetDescriptor()->FindFieldByName("key"), "k");
  CheckMessage(*m);
  std::unique_ptr<Message> parsed(m->New());
  ASSERT_TRUE(parsed->ParseFromString(m->SerializeAsString()));
  CheckMessage(*parsed);
}

}  // namespace
}  // namespace walstate
