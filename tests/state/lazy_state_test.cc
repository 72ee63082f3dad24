// lazy_state: reading an indexable field from serialized bytes must give
// what parsing them gives, for every indexable type; the arena hands out
// aligned, separate blocks.
#include "engine/state/lazy_state.h"

#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <string>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/message.h"
#include "gtest/gtest.h"

namespace walstate {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::FieldDescriptorProto;
using google::protobuf::Message;

// A message with a singular field of every indexable type, in a proto3
// (open enums) or proto2 (closed enums) file.
class Indexables {
 public:
  explicit Indexables(bool proto2) {
    google::protobuf::FileDescriptorProto file;
    file.set_name(proto2 ? "indexables2.proto" : "indexables3.proto");
    file.set_package(proto2 ? "t2" : "t3");
    file.set_syntax(proto2 ? "proto2" : "proto3");
    auto* color = file.add_enum_type();
    color->set_name("Color");
    color->add_value()->set_name("NONE");
    color->add_value()->set_name("RED");
    color->mutable_value(1)->set_number(1);
    auto* msg = file.add_message_type();
    msg->set_name("M");
    int number = 0;
    auto add = [&](const char* name, FieldDescriptorProto::Type type) {
      auto* f = msg->add_field();
      f->set_name(name);
      f->set_number(++number);
      f->set_type(type);
      f->set_label(FieldDescriptorProto::LABEL_OPTIONAL);
      if (type == FieldDescriptorProto::TYPE_ENUM) {
        f->set_type_name(proto2 ? ".t2.Color" : ".t3.Color");
      }
    };
    add("s", FieldDescriptorProto::TYPE_STRING);
    add("b", FieldDescriptorProto::TYPE_BYTES);
    add("i32", FieldDescriptorProto::TYPE_INT32);
    add("si32", FieldDescriptorProto::TYPE_SINT32);
    add("sf32", FieldDescriptorProto::TYPE_SFIXED32);
    add("i64", FieldDescriptorProto::TYPE_INT64);
    add("si64", FieldDescriptorProto::TYPE_SINT64);
    add("sf64", FieldDescriptorProto::TYPE_SFIXED64);
    add("u32", FieldDescriptorProto::TYPE_UINT32);
    add("f32", FieldDescriptorProto::TYPE_FIXED32);
    add("u64", FieldDescriptorProto::TYPE_UINT64);
    add("f64", FieldDescriptorProto::TYPE_FIXED64);
    add("flag", FieldDescriptorProto::TYPE_BOOL);
    add("color", FieldDescriptorProto::TYPE_ENUM);
    const auto* built = pool_.BuildFile(file);
    EXPECT_NE(built, nullptr);
    factory_ =
        std::make_unique<google::protobuf::DynamicMessageFactory>(&pool_);
    prototype_ = factory_->GetPrototype(built->FindMessageTypeByName("M"));
  }
  std::unique_ptr<Message> New() const {
    return std::unique_ptr<Message>(prototype_->New());
  }

 private:
  google::protobuf::DescriptorPool pool_;
  std::unique_ptr<google::protobuf::DynamicMessageFactory> factory_;
  const Message* prototype_ = nullptr;
};

void RandomValues(Message* m, std::mt19937_64* rng) {
  const auto* r = m->GetReflection();
  const auto* d = m->GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if ((*rng)() % 3 == 0) continue;
    const uint64_t v = (*rng)();
    // Small, negative and large values alike.
    const int64_t signed_v = (*rng)() % 2 ? static_cast<int64_t>(v)
                                          : static_cast<int64_t>(v % 5) - 2;
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        r->SetString(m, f, std::string(v % 4, 'a' + v % 7));
        break;
      case FieldDescriptor::CPPTYPE_INT32:
        r->SetInt32(m, f, static_cast<int32_t>(signed_v));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        r->SetInt64(m, f, signed_v);
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        r->SetUInt32(m, f, static_cast<uint32_t>(v >> (v % 32)));
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        r->SetUInt64(m, f, v >> (v % 64));
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        r->SetBool(m, f, v % 2);
        break;
      case FieldDescriptor::CPPTYPE_ENUM:
        r->SetEnumValue(m, f, static_cast<int>(v % 2));
        break;
      default:
        break;
    }
  }
}

// What SessionTable::ValueOf reads from a parsed message.
bool ParsedValue(const Message& m, const FieldDescriptor* f, std::string* text,
                 uint64_t* number) {
  const auto* r = m.GetReflection();
  if (!r->HasField(m, f)) return false;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      *text = r->GetString(m, f);
      return true;
    case FieldDescriptor::CPPTYPE_INT32:
      *number = static_cast<uint64_t>(int64_t{r->GetInt32(m, f)});
      return true;
    case FieldDescriptor::CPPTYPE_INT64:
      *number = static_cast<uint64_t>(r->GetInt64(m, f));
      return true;
    case FieldDescriptor::CPPTYPE_UINT32:
      *number = r->GetUInt32(m, f);
      return true;
    case FieldDescriptor::CPPTYPE_UINT64:
      *number = r->GetUInt64(m, f);
      return true;
    case FieldDescriptor::CPPTYPE_BOOL:
      *number = r->GetBool(m, f) ? 1 : 0;
      return true;
    case FieldDescriptor::CPPTYPE_ENUM:
      *number = static_cast<uint64_t>(int64_t{r->GetEnumValue(m, f)});
      return true;
    default:
      return false;
  }
}

// Every field of `bytes` read both ways.
void ExpectSameAsParsed(const Indexables& kinds, const std::string& bytes) {
  auto parsed = kinds.New();
  ASSERT_TRUE(parsed->ParseFromString(bytes));
  EXPECT_TRUE(lazy::WellFormed(bytes));
  const auto* d = parsed->GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    std::string want_text;
    uint64_t want_number = 0;
    const bool want = ParsedValue(*parsed, f, &want_text, &want_number);
    absl::string_view text;
    uint64_t number = 0;
    const bool got = lazy::FindValue(bytes, f, &text, &number);
    ASSERT_EQ(got, want) << f->name();
    if (got) {
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
        EXPECT_EQ(text, want_text) << f->name();
      } else {
        EXPECT_EQ(number, want_number) << f->name();
      }
    }
    // The same through the hint the well-formedness walk gives, with the
    // field first or second of the hinted ones.
    for (int slot = 0; slot < lazy::kHintedFields; ++slot) {
      const FieldDescriptor* fields[lazy::kHintedFields] = {
          d->field((i + 1) % d->field_count()),
          d->field((i + 1) % d->field_count())};
      fields[slot] = f;
      uint16_t hints[lazy::kHintedFields];
      ASSERT_TRUE(lazy::WellFormed(bytes, fields, lazy::kHintedFields, hints));
      absl::string_view hinted_text;
      uint64_t hinted_number = 0;
      ASSERT_EQ(
          lazy::FindValue(bytes, hints[slot], f, &hinted_text, &hinted_number),
          want)
          << f->name();
      if (!want) continue;
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
        EXPECT_EQ(hinted_text, want_text) << f->name();
      } else {
        EXPECT_EQ(hinted_number, want_number) << f->name();
      }
    }
  }
}

TEST(LazyStateTest, FindValueReadsWhatAParseReadsForEveryIndexableType) {
  for (bool proto2 : {false, true}) {
    Indexables kinds(proto2);
    std::mt19937_64 rng(proto2 ? 2 : 3);
    for (int round = 0; round < 300; ++round) {
      auto a = kinds.New();
      auto b = kinds.New();
      RandomValues(a.get(), &rng);
      RandomValues(b.get(), &rng);
      const std::string one = a->SerializeAsString();
      ExpectSameAsParsed(kinds, one);
      // Two messages end to end parse as their merge: the last value of a
      // field wins.
      ExpectSameAsParsed(kinds, one + b->SerializeAsString());
    }
  }
}

TEST(LazyStateTest, ClosedEnumNumbersAParseWouldNotTakeAreSkipped) {
  Indexables kinds(/*proto2=*/true);
  const FieldDescriptor* color =
      kinds.New()->GetDescriptor()->FindFieldByName("color");
  const uint8_t tag = static_cast<uint8_t>(color->number() << 3);
  // RED (1), then 5, which Color does not define: a parse keeps RED.
  const std::string bytes = {static_cast<char>(tag), 1, static_cast<char>(tag),
                             5};
  ExpectSameAsParsed(kinds, bytes);
  absl::string_view text;
  uint64_t number = 0;
  ASSERT_TRUE(lazy::FindValue(bytes, color, &text, &number));
  EXPECT_EQ(number, 1u);
}

TEST(LazyStateTest, WrongWireTypeIsNotTheFieldsValue) {
  Indexables kinds(/*proto2=*/false);
  const FieldDescriptor* i32 =
      kinds.New()->GetDescriptor()->FindFieldByName("i32");
  // Field i32 as a varint 7, then as a length-delimited "x" (an unknown
  // field to a parser).
  const std::string bytes = {static_cast<char>(i32->number() << 3), 7,
                             static_cast<char>(i32->number() << 3 | 2), 1, 'x'};
  ExpectSameAsParsed(kinds, bytes);
}

TEST(LazyStateTest, WellFormedRejectsCutAndShiftedBytes) {
  EXPECT_TRUE(lazy::WellFormed(""));
  EXPECT_TRUE(
      lazy::WellFormed(std::string("\x0a\x02"
                                   "ab",
                                   4)));
  EXPECT_FALSE(
      lazy::WellFormed(std::string("\x0a\x03"
                                   "ab",
                                   4)));  // cut
  EXPECT_FALSE(
      lazy::WellFormed(std::string("\x02\x01"
                                   "a",
                                   3)));                       // field 0
  EXPECT_FALSE(lazy::WellFormed(std::string("\x08\xff", 2)));  // varint cut
  EXPECT_FALSE(lazy::WellFormed(std::string("\x0f", 1)));      // wire type 7
}

// The hints WellFormed gives lead FindValue to the value a walk of the
// whole message finds (the last occurrence), and kAbsent only where the
// walk finds none: on serialized messages (one or several concatenated, a
// long string among them), cut short, with a byte changed, with a group,
// and with an overlong tag.
TEST(LazyStateTest, WellFormedHintsLeadToTheValueAWalkFinds) {
  Indexables kinds(/*proto2=*/true);
  const auto* d = kinds.New()->GetDescriptor();
  std::mt19937_64 rng(9);
  int accepted = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string bytes;
    const int parts = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < parts; ++k) {
      auto m = kinds.New();
      RandomValues(m.get(), &rng);
      bytes += m->SerializeAsString();
      if (rng() % 4 == 0) {
        // Field 1 with 300 bytes: a two-byte length.
        bytes += std::string("\x0a\xac\x02", 3) + std::string(300, 'x');
      }
    }
    switch (round % 5) {
      case 0:
        break;
      case 1:
        bytes.resize(rng() % (bytes.size() + 1));
        break;
      case 2:
        if (!bytes.empty()) {
          bytes[rng() % bytes.size()] ^= static_cast<char>(1 + rng() % 255);
        }
        break;
      case 3:  // an empty group, field 15
        bytes += std::string("\x7b\x7c", 2);
        break;
      default:  // field 16, length-delimited, its tag in 4 bytes
        bytes.insert(0, std::string("\x82\x80\x80\x00\x00", 5));
        break;
    }
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* fields[lazy::kHintedFields] = {
          d->field(i), d->field((i + 5) % d->field_count())};
      uint16_t hints[lazy::kHintedFields];
      if (!lazy::WellFormed(bytes, fields, lazy::kHintedFields, hints)) {
        continue;
      }
      ++accepted;
      for (int k = 0; k < lazy::kHintedFields; ++k) {
        absl::string_view walked_text, hinted_text;
        uint64_t walked = 0, hinted = 0;
        const bool found =
            lazy::FindValue(bytes, fields[k], &walked_text, &walked);
        ASSERT_NE(hints[k], lazy::kNoHint) << "round " << round;
        if (hints[k] == lazy::kAbsent) {
          EXPECT_FALSE(found) << "round " << round << " field " << i;
          continue;
        }
        EXPECT_EQ(
            lazy::FindValue(bytes, hints[k], fields[k], &hinted_text, &hinted),
            found)
            << "round " << round << " field " << i;
        if (!found) continue;
        EXPECT_EQ(hinted_text, walked_text) << "round " << round;
        EXPECT_EQ(hinted, walked) << "round " << round;
      }
    }
  }
  EXPECT_GT(accepted, 10000);
}

TEST(LazyStateTest, ArenaBlocksAreAlignedAndDoNotOverlap) {
  lazy::Arena arena(2);
  // A writer's first block may be empty: still a block.
  EXPECT_NE(arena.Allocate(0, 1), nullptr);
  std::set<std::pair<uintptr_t, uintptr_t>> blocks;
  std::mt19937 rng(5);
  for (int i = 0; i < 5000; ++i) {
    // Mostly small blocks, some larger than a chunk's quarter.
    const size_t n = rng() % 50 == 0 ? (1u << 18) + rng() % 100 : rng() % 300;
    char* p = arena.Allocate(n, i % 2);
    ASSERT_NE(p, nullptr);
    ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % 8, 0u);
    std::memset(p, i & 0xff, n);
    const uintptr_t begin = reinterpret_cast<uintptr_t>(p);
    auto next = blocks.lower_bound({begin, 0});
    if (next != blocks.end()) {
      ASSERT_GE(next->first, begin + n);
    }
    if (next != blocks.begin()) {
      ASSERT_LE(std::prev(next)->second, begin);
    }
    if (n > 0) blocks.insert({begin, begin + n});
  }
  EXPECT_GT(arena.bytes(), 0u);
}

}  // namespace
}  // namespace walstate
