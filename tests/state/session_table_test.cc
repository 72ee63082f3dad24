// SessionTable: one-word index slots, the dirty list, inline ids, the
// three ways fields are set (copy, move, encoded), on a runtime-built message
// with string, integer and bool indexes.
#include "engine/state/session_table.h"


#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/dynamic_message.h"
#include "gtest/gtest.h"
#include "tests/state/field_kinds.h"
#include "walstate/options.pb.h"

namespace walstate {
namespace {

using google::protobuf::FieldDescriptorProto;
using google::protobuf::Message;

class SessionTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    google::protobuf::FileDescriptorProto file;
    file.set_name("tests/state/indexed.proto");
    file.set_package("walstate.test");
    file.set_syntax("proto3");
    file.add_dependency("walstate/options.proto");
    auto* msg = file.add_message_type();
    msg->set_name("Indexed");
    auto add = [&](const char* name, int number, FieldDescriptorProto::Type t,
                   IndexKind index) {
      auto* f = msg->add_field();
      f->set_name(name);
      f->set_number(number);
      f->set_type(t);
      f->set_label(FieldDescriptorProto::LABEL_OPTIONAL);
      if (index != NO_INDEX) {
        f->mutable_options()->SetExtension(walstate::index, index);
      }
    };
    add("tag", 1, FieldDescriptorProto::TYPE_STRING, MULTI);
    add("account", 2, FieldDescriptorProto::TYPE_INT64, UNIQUE);
    add("vip", 3, FieldDescriptorProto::TYPE_BOOL, MULTI);
    add("note", 4, FieldDescriptorProto::TYPE_STRING, NO_INDEX);
    add("handle", 5, FieldDescriptorProto::TYPE_STRING, UNIQUE);
    pool_ = std::make_unique<google::protobuf::DescriptorPool>(
        google::protobuf::DescriptorPool::generated_pool());
    const auto* built = pool_->BuildFile(file);
    ASSERT_NE(built, nullptr);
    factory_ =
        std::make_unique<google::protobuf::DynamicMessageFactory>(pool_.get());
    const Message* prototype =
        factory_->GetPrototype(built->FindMessageTypeByName("Indexed"));
    auto schema = Schema::FromPrototype(*prototype, BATCHED);
    ASSERT_TRUE(schema.ok()) << schema.status();
    schema_ = std::move(*schema);
    table_ = std::make_unique<SessionTable>(*schema_, 4);
  }

  const Schema::Field* F(const char* name) { return schema_->FindByName(name); }

  std::unique_ptr<Message> Values(const std::string& tag, int64_t account,
                                  bool vip, const std::string& handle = "") {
    auto m = schema_->NewMessage();
    const auto* r = m->GetReflection();
    r->SetString(m.get(), F("tag")->descriptor, tag);
    r->SetInt64(m.get(), F("account")->descriptor, account);
    r->SetBool(m.get(), F("vip")->descriptor, vip);
    r->SetString(m.get(), F("handle")->descriptor, handle);
    r->SetString(m.get(), F("note")->descriptor, "note of " + tag);
    return m;
  }

  void Set(const std::string& session, Message* values,
           std::vector<const Schema::Field*> fields, bool move = false) {
    auto& shard = table_->ShardFor(session);
    std::lock_guard<std::mutex> lock(shard.mu);
    table_->SetFieldsLocked(shard, session, values, fields, move);
  }

  bool Erase(const std::string& session) {
    auto& shard = table_->ShardFor(session);
    std::lock_guard<std::mutex> lock(shard.mu);
    return table_->EraseLocked(shard, session);
  }

  std::vector<std::string> Lookup(const char* field, const std::string& v) {
    auto got = table_->Lookup(field, v);
    EXPECT_TRUE(got.ok()) << got.status();
    return got.ok() ? *got : std::vector<std::string>{};
  }

  // Random operations against a model that recomputes every index by
  // scanning the states.
  void RandomIndexOperations();

  std::unique_ptr<google::protobuf::DescriptorPool> pool_;
  std::unique_ptr<google::protobuf::DynamicMessageFactory> factory_;
  std::unique_ptr<Schema> schema_;
  std::unique_ptr<SessionTable> table_;
};

using Names = std::vector<std::string>;

TEST_F(SessionTableTest, MultiIndexSurvivesTheHolderItsKeyPointsIntoChanging) {
  std::vector<const Schema::Field*> tag = {F("tag")};
  for (const char* s : {"a", "b", "c"})
    Set(s, Values("t", 0, false).get(), tag);
  EXPECT_EQ(Lookup("tag", "t"), (Names{"a", "b", "c"}));
  // "a" inserted the key first, so the index's key is a view of a's value.
  Set("a", Values("u", 0, false).get(), tag);
  EXPECT_EQ(Lookup("tag", "t"), (Names{"b", "c"}));
  EXPECT_EQ(Lookup("tag", "u"), (Names{"a"}));
  EXPECT_TRUE(Erase("b"));
  EXPECT_EQ(Lookup("tag", "t"), (Names{"c"}));
  Set("c", Values("u", 0, false).get(), tag, /*move=*/true);
  EXPECT_EQ(Lookup("tag", "t"), Names{});
  EXPECT_EQ(Lookup("tag", "u"), (Names{"a", "c"}));
  EXPECT_FALSE(Erase("b"));
}

TEST_F(SessionTableTest, IntegerAndBoolKeysAreLookedUpByTheirText) {
  Set("s1", Values("x", -5, true).get(), {F("account"), F("vip")});
  Set("s2", Values("x", 7, true).get(), {F("account"), F("vip")});
  EXPECT_EQ(Lookup("account", "-5"), (Names{"s1"}));
  EXPECT_EQ(Lookup("account", "7"), (Names{"s2"}));
  EXPECT_EQ(Lookup("vip", "true"), (Names{"s1", "s2"}));
  // proto3 false is the default: unset, not indexed.
  EXPECT_EQ(Lookup("vip", "false"), Names{});
  EXPECT_EQ(Lookup("account", "seven"), Names{});
  EXPECT_EQ(Lookup("vip", "yes"), Names{});
  EXPECT_EQ(table_->Lookup("note", "x").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SessionTableTest, UniqueCheckNamesTheHolder) {
  Set("owner", Values("x", 42, false, "@h").get(), {F("account"), F("handle")});
  auto& shard = table_->ShardFor("other");
  std::lock_guard<std::mutex> lock(shard.mu);
  auto clash = Values("y", 42, false, "@h");
  absl::Status s = table_->CheckUniqueLocked("other", *clash, {F("account")});
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(s.message().find("account \"42\" is already held by session owner"),
            std::string::npos)
      << s;
  s = table_->CheckUniqueLocked("other", *clash, {F("handle")});
  EXPECT_NE(s.message().find("handle \"@h\""), std::string::npos) << s;
  // The holder itself may write its own value again.
  EXPECT_TRUE(table_->CheckUniqueLocked("owner", *clash, {F("account")}).ok());
  // An unlisted unique field is not checked.
  EXPECT_TRUE(table_->CheckUniqueLocked("other", *clash, {F("tag")}).ok());
}

TEST_F(SessionTableTest, MoveHandsTheValuesOverWithoutCopying) {
  auto values =
      Values("long tag value, longer than any small-string buffer", 9, true);
  const std::string* before = &values->GetReflection()->GetStringReference(
      *values, F("tag")->descriptor, nullptr);
  const char* bytes = before->data();
  Set("m", values.get(), {F("tag"), F("account")}, /*move=*/true);
  auto& shard = table_->ShardFor("m");
  std::lock_guard<std::mutex> lock(shard.mu);
  const Message& state = *table_->FindLocked(shard, "m")->entry.state.parsed();
  const std::string& now = state.GetReflection()->GetStringReference(
      state, F("tag")->descriptor, nullptr);
  EXPECT_EQ(now.data(), bytes);  // the same buffer, handed over
  EXPECT_EQ(state.GetReflection()->GetInt64(state, F("account")->descriptor),
            9);
  // Unlisted fields were neither moved nor set.
  EXPECT_EQ(state.GetReflection()->GetString(state, F("note")->descriptor), "");
  EXPECT_EQ(values->GetReflection()->GetString(*values, F("note")->descriptor),
            "note of long tag value, longer than any small-string buffer");
}

// Moving values in (SetFieldsLocked with `move`) leaves every kind of field
// as copying them does (testing::FieldKinds: strings short and long, each
// scalar type, an enum, a submessage, a repeated field, a map and a oneof),
// each set or unset in the values and in the state before, listed in any
// order.
TEST(SessionTableMoveTest, MovingValuesInGivesWhatCopyingThemGives) {
  testing::FieldKinds kinds;
  auto schema = Schema::FromPrototype(kinds.prototype(), BATCHED);
  ASSERT_TRUE(schema.ok()) << schema.status();
  std::mt19937 rng(11);
  for (int round = 0; round < 300; ++round) {
    SessionTable moved_into(**schema, 1);
    SessionTable copied_into(**schema, 1);
    auto before = (*schema)->NewMessage();
    testing::FieldKinds::RandomValues(before.get(), &rng);
    auto values = (*schema)->NewMessage();
    testing::FieldKinds::RandomValues(values.get(), &rng);
    const std::string values_bytes = values->SerializeAsString();
    std::vector<const Schema::Field*> fields;
    for (const std::string& name : kinds.RandomFieldNames(&rng)) {
      fields.push_back((*schema)->FindByName(name));
    }
    std::string moved_state, copied_state;
    for (SessionTable* t : {&moved_into, &copied_into}) {
      const bool move = t == &moved_into;
      auto& shard = t->ShardFor("x");
      std::lock_guard<std::mutex> lock(shard.mu);
      auto start = (*schema)->NewMessage();
      start->CopyFrom(*before);
      t->PutLocked(shard, "x", std::move(start));
      auto given = (*schema)->NewMessage();
      ASSERT_TRUE(given->ParseFromString(values_bytes));
      t->SetFieldsLocked(shard, "x", given.get(), fields, move);
      const Message& state = *t->FindLocked(shard, "x")->entry.state.parsed();
      (move ? moved_state : copied_state) = state.DebugString();
      if (!move) {
        EXPECT_EQ(given->SerializeAsString(), values_bytes);
      }
    }
    std::string listed;
    for (const Schema::Field* f : fields) {
      absl::StrAppend(&listed, f->descriptor->name(), " ");
    }
    ASSERT_EQ(moved_state, copied_state)
        << "round " << round << "\nbefore " << before->ShortDebugString()
        << "\nvalues " << values->ShortDebugString() << "\nlisted " << listed;
  }
}

TEST_F(SessionTableTest, EncodedValuesMustHoldOnlyListedFields) {
  auto values = Values("t", 3, true);
  std::string encoded = values->SerializeAsString();  // fields 1..5
  auto& shard = table_->ShardFor("e");
  std::lock_guard<std::mutex> lock(shard.mu);
  bool unknown = false;
  auto bad =
      table_->SetEncodedFieldsLocked(shard, "e", encoded, {1, 2}, &unknown);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(table_->FindLocked(shard, "e"),
            nullptr);  // refused before creating it
  auto ok = table_->SetEncodedFieldsLocked(shard, "e", encoded,
                                           {1, 2, 3, 4, 5, 77}, &unknown);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE(unknown);  // 77 is not in this schema
  // A listed field absent from the values is cleared.
  auto cleared = table_->SetEncodedFieldsLocked(shard, "e", "", {1}, &unknown);
  ASSERT_TRUE(cleared.ok());
  const Message& state = *(*cleared)->entry.state.parsed();
  EXPECT_EQ(state.GetReflection()->GetString(state, F("tag")->descriptor), "");
  EXPECT_EQ(state.GetReflection()->GetInt64(state, F("account")->descriptor),
            3);
  EXPECT_EQ(table_->Lookup("tag", "t")->size(), 0u);
  EXPECT_EQ(*table_->Lookup("account", "3"), (Names{"e"}));
  EXPECT_EQ(table_->SetEncodedFieldsLocked(shard, "e", "\xff", {1}, &unknown)
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(SessionTableTest, ErasedSessionsLeaveTheDirtySet) {
  auto values = Values("t", 1, false);
  {
    auto& shard = table_->ShardFor("d");
    std::lock_guard<std::mutex> lock(shard.mu);
    auto* node =
        table_->SetFieldsLocked(shard, "d", values.get(), {F("note")}, false);
    table_->MarkDirtyLocked(shard, node, FieldSet(1));
    table_->MarkDirtyLocked(shard, node, FieldSet(2));
    EXPECT_EQ(shard.dirty.size(), 1u);
    EXPECT_EQ(shard.dirty_count, 1u);
    EXPECT_EQ(node->entry.dirty.bits(), 3u);
  }
  EXPECT_EQ(table_->dirty_count(), 1u);
  EXPECT_TRUE(Erase("d"));
  EXPECT_EQ(table_->dirty_count(), 0u);
}

// The dirty list as the tick uses it: positions taken at the start stay
// valid while sessions are cleared, erased and newly marked, and the list
// always holds exactly the dirty sessions, in the order they became dirty.
TEST_F(SessionTableTest, DirtyListFollowsMarksClearsAndErases) {
  std::mt19937_64 rng(11);
  auto values = Values("t", 1, false);
  auto& shard = table_->shard(0);
  std::vector<std::string> ids;  // sessions of shard 0
  for (int i = 0; ids.size() < 24; ++i) {
    std::string id = absl::StrCat("d", i);
    if (&table_->ShardFor(id) == &shard) ids.push_back(id);
  }
  std::vector<std::string> model;  // dirty sessions, oldest first
  std::lock_guard<std::mutex> lock(shard.mu);
  for (int op = 0; op < 4000; ++op) {
    const std::string& id = ids[rng() % ids.size()];
    SessionTable::Node* node = table_->FindLocked(shard, id);
    const bool dirty = std::find(model.begin(), model.end(), id) != model.end();
    switch (rng() % 5) {
      case 0:
      case 1:
        node = table_->SetFieldsLocked(shard, id, values.get(), {F("note")},
                                       /*move=*/false);
        table_->MarkDirtyLocked(shard, node, FieldSet(1u << (rng() % 3)));
        if (!dirty) model.push_back(id);
        break;
      case 2:
        if (node != nullptr && dirty) {
          table_->ClearDirtyLocked(shard, node);
          model.erase(std::find(model.begin(), model.end(), id));
        }
        break;
      case 3:
        if (table_->EraseLocked(shard, id) && dirty) {
          model.erase(std::find(model.begin(), model.end(), id));
        }
        break;
      default:
        table_->CompactDirtyLocked(shard);
        EXPECT_EQ(shard.dirty.size(), model.size());
        break;
    }
    std::vector<std::string> listed;
    for (const SessionTable::Node* n : shard.dirty) {
      if (n == nullptr) continue;
      EXPECT_FALSE(n->entry.dirty.empty()) << n->id();
      listed.emplace_back(n->id());
    }
    ASSERT_EQ(listed, model) << "after op " << op;
    ASSERT_EQ(shard.dirty_count, model.size());
  }
}

// Ids are stored inline after the node: any length and any bytes.
TEST_F(SessionTableTest, IdsOfAnyLengthAndBytes) {
  const std::vector<std::string> ids = {
      "", std::string("a\0b", 3), std::string(1000, 'x'), "\xff\xfe", "short",
      "1", "12", std::string(25, 'q'),
      // Around the one-byte length's limit, where the length moves into
      // four bytes before the id.
      std::string(254, 'a'), std::string(255, 'b'), std::string(256, 'c'),
      std::string(70000, 'd')};
  auto values = Values("t", 0, false);
  for (const std::string& id : ids) Set(id, values.get(), {F("note")});
  EXPECT_EQ(table_->size(), ids.size());
  for (const std::string& id : ids) {
    auto& shard = table_->ShardFor(id);
    std::lock_guard<std::mutex> lock(shard.mu);
    const SessionTable::Node* node = table_->FindLocked(shard, id);
    ASSERT_NE(node, nullptr) << id.size();
    EXPECT_EQ(node->id(), id);
  }
  std::set<std::string> seen;
  table_->ForEach(
      [&](absl::string_view id, const Message&) { seen.emplace(id); });
  EXPECT_EQ(seen, std::set<std::string>(ids.begin(), ids.end()));
  for (const std::string& id : ids) EXPECT_TRUE(Erase(id));
  EXPECT_EQ(table_->size(), 0u);
  // An empty view with no data pointer (a snapshot record's missing id)
  // is the empty id, not undefined behaviour (UBSan checks the copy).
  auto& shard = table_->ShardFor(absl::string_view());
  std::lock_guard<std::mutex> lock(shard.mu);
  bool inserted = false;
  table_->PutLocked(shard, absl::string_view(), schema_->NewMessage(),
                    &inserted);
  EXPECT_TRUE(inserted);
  ASSERT_NE(table_->FindLocked(shard, ""), nullptr);
  EXPECT_EQ(table_->FindLocked(shard, "")->id(), "");
}

// A node is one heap block of a 29-byte header and the id: with the
// gateway's 25-byte ids, glibc's 64-byte class (at most 56 usable bytes).
TEST_F(SessionTableTest, NodeWithA25ByteIdFitsA64ByteBlock) {
  auto values = Values("t", 0, false);
  for (size_t size : {size_t{0}, size_t{25}, size_t{27}}) {
    const std::string id(size, 'n');
    Set(id, values.get(), {F("note")});
    auto& shard = table_->ShardFor(id);
    std::lock_guard<std::mutex> lock(shard.mu);
    SessionTable::Node* node = table_->FindLocked(shard, id);
    ASSERT_NE(node, nullptr);
    // The block's size, not malloc_usable_size: under ASan that is the
    // size asked for, and could not fail.
    EXPECT_LE(SessionTable::Node::BlockSize(size), 56u) << size;
    EXPECT_EQ(node->id(), id);
  }
}

// The entry's one word holds the snapshot LSN during recovery and the time
// of the last update afterwards.
TEST(SessionTableEntryTest, SnapshotLsnUntilTheFirstUpdate) {
  SessionTable::Entry e;
  EXPECT_EQ(e.snapshot_lsn(), 0u);
  EXPECT_EQ(e.last_update(), absl::UnixEpoch());
  const uint64_t big = (uint64_t{1} << 63) - 1;
  for (uint64_t lsn : {uint64_t{0}, uint64_t{1}, uint64_t{123456789}, big}) {
    e.set_snapshot_lsn(lsn);
    EXPECT_EQ(e.snapshot_lsn(), lsn);
    // Recovered, not updated since: older than any Open.
    EXPECT_EQ(e.last_update(), absl::InfinitePast());
  }
  const absl::Time t = absl::FromUnixNanos(1700000000123456789);
  e.set_last_update(t);
  EXPECT_EQ(e.last_update(), t);
  EXPECT_EQ(e.snapshot_lsn(), 0u);
  e.set_last_update(absl::InfiniteFuture());
  EXPECT_EQ(e.snapshot_lsn(), 0u);
  EXPECT_GT(e.last_update(), t);
  // Before the epoch reads as the epoch, never as a snapshot LSN.
  e.set_last_update(absl::FromUnixSeconds(-5));
  EXPECT_EQ(e.last_update(), absl::UnixEpoch());
  EXPECT_EQ(e.snapshot_lsn(), 0u);
  e.set_last_update(absl::InfinitePast());
  EXPECT_EQ(e.last_update(), absl::UnixEpoch());
  EXPECT_EQ(e.snapshot_lsn(), 0u);
}

// Random operations against a model that recomputes every index by scanning
// the states: the views never go stale (ASan would see a dangling one).
TEST_F(SessionTableTest, IndexesMatchAScanAfterRandomOperations) {
  // As a new store's table (one set per index), and with indexes split
  // into many parts (as recovery sizes them).
  for (size_t reserve : {size_t{0}, size_t{200000}}) {
    table_ = std::make_unique<SessionTable>(*schema_, 4);
    if (reserve != 0) table_->Reserve(reserve);
    for (size_t i = 0; i < schema_->indexed_fields().size(); ++i) {
      if (reserve == 0) {
        EXPECT_EQ(table_->IndexParts(i), 1u);
      } else {
        EXPECT_GT(table_->IndexParts(i), 8u);
      }
    }
    RandomIndexOperations();
    if (HasFailure()) return;
  }
}

void SessionTableTest::RandomIndexOperations() {
  std::mt19937_64 rng(7);
  const std::vector<std::string> tags = {"", "red", "green",
                                         "a-much-longer-tag-value-0123456789"};
  std::vector<const Schema::Field*> all = {F("tag"), F("account"), F("vip"),
                                           F("note"), F("handle")};
  for (int op = 0; op < 6000; ++op) {
    const std::string session = absl::StrCat("s", rng() % 40);
    const int kind = static_cast<int>(rng() % 10);
    if (kind == 0) {
      Erase(session);
      continue;
    }
    auto v =
        Values(tags[rng() % tags.size()], static_cast<int64_t>(rng() % 5) - 2,
               rng() % 2, absl::StrCat("h", rng() % 60));
    std::vector<const Schema::Field*> fields;
    for (const Schema::Field* f : all) {
      if (rng() % 2) fields.push_back(f);
    }
    if (fields.empty()) fields.push_back(F("tag"));
    if (kind == 1) {
      auto& shard = table_->ShardFor(session);
      std::lock_guard<std::mutex> lock(shard.mu);
      table_->PutLocked(shard, session, std::move(v));
      continue;
    }
    // UNIQUE fields are only written when free, as the engine checks.
    {
      auto& shard = table_->ShardFor(session);
      std::lock_guard<std::mutex> lock(shard.mu);
      if (!table_->CheckUniqueLocked(session, *v, fields).ok()) continue;
      if (kind == 2) {
        auto e = schema_->NewMessage();
        std::vector<uint32_t> numbers;
        for (const Schema::Field* f : fields) {
          numbers.push_back(f->descriptor->number());
        }
        e->CopyFrom(*v);
        for (const Schema::Field* f : all) {
          if (std::find(fields.begin(), fields.end(), f) == fields.end()) {
            e->GetReflection()->ClearField(e.get(), f->descriptor);
          }
        }
        bool unknown = false;
        ASSERT_TRUE(table_
                        ->SetEncodedFieldsLocked(shard, session,
                                                 e->SerializeAsString(),
                                                 numbers, &unknown)
                        .ok());
      } else {
        table_->SetFieldsLocked(shard, session, v.get(), fields, kind % 2);
      }
    }
    if (op % 200 != 0) continue;
    // Model: scan every state.
    std::map<std::pair<std::string, std::string>, std::set<std::string>> want;
    table_->ForEach([&](absl::string_view id, const Message& state) {
      const auto* r = state.GetReflection();
      auto put = [&](const char* field, const std::string& key) {
        want[{field, key}].insert(std::string(id));
      };
      if (!r->GetString(state, F("tag")->descriptor).empty()) {
        put("tag", r->GetString(state, F("tag")->descriptor));
      }
      if (r->GetInt64(state, F("account")->descriptor) != 0) {
        put("account",
            absl::StrCat(r->GetInt64(state, F("account")->descriptor)));
      }
      if (r->GetBool(state, F("vip")->descriptor)) put("vip", "true");
      if (!r->GetString(state, F("handle")->descriptor).empty()) {
        put("handle", r->GetString(state, F("handle")->descriptor));
      }
    });
    for (const char* field : {"tag", "account", "vip", "handle"}) {
      std::vector<std::string> keys = {"true", "-2", "-1", "1", "2"};
      for (const auto& t : tags) keys.push_back(t);
      for (int h = 0; h < 60; ++h) keys.push_back(absl::StrCat("h", h));
      for (const std::string& key : keys) {
        if (key.empty()) continue;
        const auto& expected = want[{field, key}];
        EXPECT_EQ(Lookup(field, key),
                  std::vector<std::string>(expected.begin(), expected.end()))
            << field << "=" << key << " after op " << op;
      }
    }
    if (HasFailure()) return;
  }
}

// SplitFor's sets, reserved for per_set elements, hold them without
// growing (absl's 7/8 load, which it assumes), and land well filled.
TEST(SessionTableSplitTest, SetsHoldTheirShareAndLandWellFilled) {
  for (size_t n :
       {size_t{0}, size_t{1}, size_t{1000}, size_t{12345}, size_t{128000},
        size_t{200000}, size_t{1000000}, size_t{3000000}}) {
    for (auto [min_sets, max_sets] :
         {std::pair<size_t, size_t>{1, 1024},
          {SessionTable::kDefaultShards, SessionTable::kMaxShards}}) {
      const SessionTable::Split split =
          SessionTable::SplitFor(n, min_sets, max_sets);
      ASSERT_GE(split.sets, min_sets) << n;
      ASSERT_LE(split.sets, max_sets) << n;
      ASSERT_GE(split.per_set * split.sets, n) << n;
      // Room for the fullest set: four standard deviations over the mean.
      const double mean = std::ceil(static_cast<double>(n) / split.sets);
      EXPECT_GE(static_cast<double>(split.per_set),
                mean + 4 * std::sqrt(mean) - 1e-9)
          << n;
      absl::flat_hash_set<uint64_t> set;
      set.reserve(split.per_set);
      const size_t capacity = set.bucket_count();
      for (uint64_t i = 0; i < split.per_set; ++i) set.insert(i);
      EXPECT_EQ(set.bucket_count(), capacity) << n << " " << split.per_set;
      if (n >= 100000) {
        const double load = static_cast<double>(n) /
                            (split.sets * static_cast<double>(capacity));
        EXPECT_GE(load, 0.7)
            << n << ": " << split.sets << " sets of " << capacity;
      }
    }
  }
  // 10^6 sessions in 256 shards would be at 0.48 (3,906 a shard, one more
  // than 4,095 slots take).
  EXPECT_GT(SessionTable::ShardCountFor(1000000), 256u);
  for (auto [min_sets, max_sets] :
       {std::pair<size_t, size_t>{1, 1024},
        {SessionTable::kDefaultShards, SessionTable::kMaxShards}}) {
    const SessionTable::Split split =
        SessionTable::SplitFor(1000000, min_sets, max_sets);
    absl::flat_hash_set<uint64_t> set;
    set.reserve(split.per_set);
    EXPECT_GE(1e6 / (split.sets * static_cast<double>(set.bucket_count())), 0.8)
        << min_sets;
  }
  EXPECT_EQ(SessionTable::ShardCountFor(0), SessionTable::kDefaultShards);
  EXPECT_EQ(SessionTable::ShardCountFor(1000), SessionTable::kDefaultShards);
}

// Shard i holds a range of hashes: sessions in the order of one shard
// count reach the shards of another in order (a snapshot written by a table
// of 256 shards loads into 289 a shard or two at a time).
TEST(SessionTableRangeTest, RangesAreOrderedBalancedAndInBounds) {
  for (size_t n : {size_t{1}, size_t{2}, size_t{7}, size_t{256}, size_t{289},
                   size_t{4096}, size_t{65536}}) {
    std::vector<size_t> count(n, 0);
    size_t last = 0;
    for (uint64_t top = 0; top < 65536; ++top) {
      const size_t hash = static_cast<size_t>(top << 48 | 0x123456789abcULL);
      const size_t r = SessionTable::RangeOf(hash, n);
      ASSERT_LT(r, n);
      ASSERT_GE(r, last) << n << " " << top;
      last = r;
      ++count[r];
    }
    for (size_t c : count) {
      EXPECT_GE(c, 65536 / n) << n;
      EXPECT_LE(c, 65536 / n + 1) << n;
    }
  }
  // Consecutive hashes of a 256-shard order go to at most three of 289
  // shards (a range 1.13 shards wide).
  for (size_t old_shard = 0; old_shard < 256; ++old_shard) {
    std::set<size_t> reached;
    for (uint64_t top = old_shard * 256; top < (old_shard + 1) * 256; ++top) {
      const size_t hash = static_cast<size_t>(top << 48);
      ASSERT_EQ(SessionTable::RangeOf(hash, 256), old_shard);
      reached.insert(SessionTable::RangeOf(hash, 289));
    }
    EXPECT_LE(reached.size(), 3u) << old_shard;
  }
}

// A table filled as recovery fills it (shard count and maps sized for the
// sessions, indexes built at the end) has its maps and indexes well filled;
// 128,000 sessions in 256 shards, or one index set, would be at 0.49.
TEST_F(SessionTableTest, RecoveredMapsAndIndexesAreWellFilled) {
  const size_t n = 128000;
  table_ =
      std::make_unique<SessionTable>(*schema_, SessionTable::ShardCountFor(n));
  table_->SuspendIndexes();
  table_->Reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string id = absl::StrCat("session-", i);
    auto& shard = table_->ShardFor(id);
    std::lock_guard<std::mutex> lock(shard.mu);
    table_->PutLocked(shard, id,
                      Values(absl::StrCat("t", i), static_cast<int64_t>(i) + 1,
                             i % 2 == 0, absl::StrCat("h", i)));
  }
  table_->RebuildIndexes();
  size_t slots = 0;
  for (size_t i = 0; i < table_->shard_count(); ++i) {
    slots += table_->shard(i).sessions.bucket_count();
  }
  EXPECT_GE(static_cast<double>(n) / slots, 0.7) << slots;
  const auto& indexed = schema_->indexed_fields();
  for (size_t i = 0; i < indexed.size(); ++i) {
    const std::string name = indexed[i]->descriptor->name();
    if (name == "vip") {
      // One key: the set reserved for a key per session is given back.
      EXPECT_LT(table_->IndexSlots(i), 64u);
    } else {
      EXPECT_GE(static_cast<double>(n) / table_->IndexSlots(i), 0.7) << name;
    }
  }
  EXPECT_EQ(Lookup("tag", "t4321"), std::vector<std::string>{"session-4321"});
  EXPECT_EQ(Lookup("account", "4322"),
            std::vector<std::string>{"session-4321"});
  EXPECT_EQ(Lookup("handle", "h127999"),
            std::vector<std::string>{"session-127999"});
  EXPECT_EQ(Lookup("vip", "true").size(), n / 2);
}

TEST_F(SessionTableTest, IndexesBuiltAfterASuspendedFillMatchLiveOnes) {
  SessionTable live(*schema_, 4);
  table_->SuspendIndexes();
  std::vector<const Schema::Field*> all = {F("tag"), F("account"), F("vip"),
                                           F("handle")};
  for (int i = 0; i < 300; ++i) {
    const std::string id = absl::StrCat("s", i % 120);
    auto v = Values(absl::StrCat("tag", i % 7), i % 50 + 1, i % 3 == 0,
                    absl::StrCat("@", i));
    for (SessionTable* t : {table_.get(), &live}) {
      auto& shard = t->ShardFor(id);
      std::lock_guard<std::mutex> lock(shard.mu);
      if (i % 11 == 10) {
        t->EraseLocked(shard, id);
      } else {
        t->CopyFieldsLocked(shard, id, *v, all);
      }
    }
  }
  // Nothing is indexed while suspended.
  EXPECT_EQ(Lookup("tag", "tag1"), Names{});
  table_->RebuildIndexes();
  for (int k = 0; k < 7; ++k) {
    EXPECT_EQ(Lookup("tag", absl::StrCat("tag", k)),
              *live.Lookup("tag", absl::StrCat("tag", k)));
  }
  for (int a = 1; a <= 50; ++a) {
    EXPECT_EQ(Lookup("account", absl::StrCat(a)),
              *live.Lookup("account", absl::StrCat(a)));
  }
  EXPECT_EQ(Lookup("vip", "true"), *live.Lookup("vip", "true"));
  EXPECT_FALSE(Lookup("vip", "true").empty());
  // And they are maintained again afterwards.
  Set("s1", Values("fresh", 999, false).get(), {F("tag"), F("account")});
  EXPECT_EQ(Lookup("tag", "fresh"), (Names{"s1"}));
  EXPECT_EQ(Lookup("account", "999"), (Names{"s1"}));
}

// Recovery builds the indexes right after a lazy snapshot load from the
// values and hashes the load found (the first two indexed fields here), and
// reads the states for the rest: the same answers as indexes kept current
// from the start. Among the sessions: shared keys (MULTI), unset ones, and
// states whose first indexed field comes after 64 KiB, where the load notes
// no value and the build reads the state.
TEST_F(SessionTableTest, IndexesBuiltFromALazyLoadMatchLiveOnes) {
  for (bool one_more : {false, true}) {
    SCOPED_TRACE(one_more ? "and a session the load did not put in"
                          : "the load's sessions only");
    SessionTable live(*schema_, 4);
    table_ = std::make_unique<SessionTable>(*schema_, 4);
    table_->SuspendIndexes();
    table_->Reserve(400);
    table_->BeginLazy(/*writers=*/2, "snapshot-test");
    std::vector<const Schema::Field*> all = {F("tag"), F("account"), F("vip"),
                                             F("handle"), F("note")};
    for (int i = 0; i < 400; ++i) {
      const std::string id = absl::StrCat("s", i);
      auto v = Values(i % 10 == 0 ? "" : absl::StrCat("tag", i % 13), i + 1,
                      i % 3 == 0, absl::StrCat("@", i));
      std::string bytes;
      if (i % 50 == 7) {
        // The note first, then the rest: "tag" starts past 64 KiB.
        auto note = schema_->NewMessage();
        note->GetReflection()->SetString(note.get(), F("note")->descriptor,
                                         std::string(70000, 'n'));
        v->GetReflection()->SetString(v.get(), F("note")->descriptor,
                                      std::string(70000, 'n'));
        bytes = note->SerializeAsString();
        auto rest = schema_->NewMessage();
        rest->CopyFrom(*v);
        rest->GetReflection()->ClearField(rest.get(), F("note")->descriptor);
        bytes += rest->SerializeAsString();
      } else {
        bytes = v->SerializeAsString();
      }
      {
        auto& shard = table_->ShardFor(id);
        std::lock_guard<std::mutex> lock(shard.mu);
        auto node = table_->PutLazyLocked(shard, id, bytes, i % 2,
                                          /*mapped=*/false);
        ASSERT_TRUE(node.ok()) << node.status();
      }
      auto& shard = live.ShardFor(id);
      std::lock_guard<std::mutex> lock(shard.mu);
      live.CopyFieldsLocked(shard, id, *v, all);
    }
    if (one_more) {
      auto v = Values("tag3", 1000, true, "@late");
      for (SessionTable* t : {table_.get(), &live}) {
        auto& shard = t->ShardFor("late");
        std::lock_guard<std::mutex> lock(shard.mu);
        t->CopyFieldsLocked(shard, "late", *v, all);
      }
    }
    table_->RebuildIndexes(/*from_load=*/true);
    for (int k = 0; k < 13; ++k) {
      const std::string tag = absl::StrCat("tag", k);
      EXPECT_EQ(Lookup("tag", tag), *live.Lookup("tag", tag)) << tag;
      EXPECT_FALSE(Lookup("tag", tag).empty()) << tag;
    }
    EXPECT_EQ(Lookup("tag", "tag8"), *live.Lookup("tag", "tag8"));
    for (int a : {1, 8, 58, 400, 1000}) {
      EXPECT_EQ(Lookup("account", absl::StrCat(a)),
                *live.Lookup("account", absl::StrCat(a)))
          << a;
    }
    EXPECT_EQ(Lookup("account", "8"), (Names{"s7"}));
    EXPECT_EQ(Lookup("vip", "true"), *live.Lookup("vip", "true"));
    EXPECT_EQ(Lookup("handle", "@57"), (Names{"s57"}));
    EXPECT_EQ(Lookup("handle", "@late"), one_more ? Names{"late"} : Names{});
  }
}

// An empty state (a session with every field unset) is kept lazily too,
// as the first thing its writer keeps (nothing allocated yet), and reads
// back empty. (The sanitized build fails here if zero bytes are copied to
// or from a null pointer.)
TEST_F(SessionTableTest, EmptyStatesAreKeptLazily) {
  table_->SuspendIndexes();
  table_->BeginLazy(/*writers=*/1, "snapshot-test");
  for (const char* id : {"empty", "empty-too"}) {
    auto& shard = table_->ShardFor(id);
    std::lock_guard<std::mutex> lock(shard.mu);
    auto node = table_->PutLazyLocked(shard, id, absl::string_view(), 0,
                                      /*mapped=*/false);
    ASSERT_TRUE(node.ok()) << node.status();
  }
  table_->RebuildIndexes(/*from_load=*/true);
  EXPECT_EQ(table_->lazy_count(), 2u);
  auto got = schema_->NewMessage();
  ASSERT_TRUE(table_->Get("empty", got.get()).ok());
  EXPECT_EQ(got->ByteSizeLong(), 0u);
  EXPECT_EQ(Lookup("tag", ""), Names{});
}

// Lookups read index keys that point into other shards' states while those
// shards change unindexed fields: the views must not race (TSan).
TEST_F(SessionTableTest, LookupsRaceNothingWhileOtherFieldsChange) {
  for (int i = 0; i < 8; ++i) {
    Set(absl::StrCat("s", i), Values("shared", i + 1, true).get(),
        {F("tag"), F("account"), F("vip")});
  }
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int n = 0; n < 2000; ++n) {
      auto v = Values("ignored", 0, false);
      v->GetReflection()->SetString(v.get(), F("note")->descriptor,
                                    absl::StrCat("n", n));
      Set(absl::StrCat("s", n % 8), v.get(), {F("note")}, n % 2);
    }
    stop = true;
  });
  int lookups = 0;
  while (!stop) {
    EXPECT_EQ(Lookup("tag", "shared").size(), 8u);
    ++lookups;
  }
  writer.join();
  EXPECT_GT(lookups, 0);
}

}  // namespace
}  // namespace walstate
