#include "engine/state/update_codec.h"

#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "proto/example/gateway.pb.h"
#include "proto/walstate/record.pb.h"

namespace walstate {
namespace {

using example::GatewaySession;

class UpdateCodecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto schema =
        Schema::FromPrototype(GatewaySession::default_instance(), BATCHED);
    ASSERT_TRUE(schema.ok()) << schema.status();
    schema_ = std::move(*schema);
    full_.set_fingerprint("fp-0123456789abcdef");
    full_.set_header_session_id("hs-42");
    full_.set_header_name("x-session-id");
    full_.set_resolved_conversation_ttl("1h");
    full_.mutable_warmup()->set_warmup_count(3);
    full_.mutable_calibration()->set_bust_rate_ema(-1);
    full_.mutable_calibration()->set_last_layer(4);
    full_.mutable_cost()->set_conversation_cost(0.125);
    full_.mutable_ltm()->set_cache_text(std::string(5000, 'c'));
  }

  std::vector<const Schema::Field*> Fields(
      const std::vector<std::string>& names) {
    std::vector<const Schema::Field*> out;
    for (const std::string& n : names) out.push_back(schema_->FindByName(n));
    return out;
  }

  // What the engine wrote before the codec: a message holding only the
  // listed fields, wrapped by the generated record::Update.
  std::string GeneratedPayload(absl::string_view session, uint64_t tick,
                               const GatewaySession& from,
                               const std::vector<const Schema::Field*>& fs) {
    GatewaySession values;
    std::vector<const google::protobuf::FieldDescriptor*> descriptors;
    for (const Schema::Field* f : fs) descriptors.push_back(f->descriptor);
    GatewaySession copy = from;
    copy.GetReflection()->SwapFields(&copy, &values, descriptors);
    record::Update u;
    u.set_session(std::string(session));
    u.set_tick(tick);
    values.SerializeToString(u.mutable_values());
    for (const Schema::Field* f : fs) {
      u.add_fields(static_cast<uint32_t>(f->descriptor->number()));
    }
    return u.SerializeAsString();
  }

  std::unique_ptr<Schema> schema_;
  GatewaySession full_;
};

TEST_F(UpdateCodecTest, EncodesTheBytesTheGeneratedCodeWrites) {
  const std::vector<std::vector<std::string>> subsets = {
      {"fingerprint"},
      {"fingerprint", "header_session_id", "header_name"},
      {"warmup", "calibration", "cost"},
      {"resolved_conversation_ttl", "warmup", "calibration", "cost", "ltm"},
      {"calibration"},
  };
  std::string payload;
  for (const auto& names : subsets) {
    for (uint64_t tick : {uint64_t{0}, uint64_t{1}, uint64_t{1} << 40}) {
      auto fs = Fields(names);
      ASSERT_TRUE(EncodeUpdate("session-7", tick, full_, fs, &payload).ok());
      EXPECT_EQ(payload, GeneratedPayload("session-7", tick, full_, fs))
          << names.front() << " tick " << tick;
    }
  }
}

TEST_F(UpdateCodecTest, EncoderInPlaceWritesWhatEncodeUpdateWrites) {
  // Submessages take a path of their own (their generated serializer): an
  // empty but present one, an absent one, and one next to other fields.
  GatewaySession m = full_;
  m.mutable_warmup()->Clear();
  m.clear_calibration();
  const std::vector<std::vector<std::string>> subsets = {
      {"warmup"},
      {"calibration"},
      {"warmup", "calibration", "ltm"},
      {"fingerprint", "resolved_conversation_ttl", "cost", "ltm"},
      {},
  };
  UpdateEncoder encoder;
  std::string payload;
  for (const auto& names : subsets) {
    auto fs = Fields(names);
    const size_t size = encoder.Prepare("session-7", 42, m, fs);
    EXPECT_EQ(size, encoder.size());
    // Surrounded by guard bytes: it must write exactly `size` of them.
    std::string buffer(size + 32, '\x5a');
    ASSERT_TRUE(encoder.EncodeTo(&buffer[16]).ok());
    EXPECT_EQ(buffer.substr(0, 16), std::string(16, '\x5a'));
    EXPECT_EQ(buffer.substr(16 + size), std::string(16, '\x5a'));
    ASSERT_TRUE(EncodeUpdate("session-7", 42, m, fs, &payload).ok());
    // (EXPECT_TRUE: the payloads hold 5000-byte strings.)
    EXPECT_TRUE(buffer.substr(16, size) == payload);
    EXPECT_TRUE(payload == GeneratedPayload("session-7", 42, m, fs))
        << (names.empty() ? "no fields" : names.front());
  }
}

TEST_F(UpdateCodecTest, EncodesDynamicMessagesAsGeneratedOnes) {
  // Tools decode and re-encode with a schema from a file header: dynamic
  // messages, whose submessages are dynamic too.
  auto dynamic_schema = Schema::FromBlob(schema_->blob());
  ASSERT_TRUE(dynamic_schema.ok()) << dynamic_schema.status();
  std::unique_ptr<google::protobuf::Message> dynamic =
      (*dynamic_schema)->NewMessage();
  ASSERT_TRUE(dynamic->ParseFromString(full_.SerializeAsString()));
  std::vector<const Schema::Field*> fs;
  for (const char* name :
       {"fingerprint", "warmup", "calibration", "cost", "ltm"}) {
    fs.push_back((*dynamic_schema)->FindByName(name));
  }
  std::string payload;
  ASSERT_TRUE(EncodeUpdate("s", 5, *dynamic, fs, &payload).ok());
  EXPECT_TRUE(payload ==
              GeneratedPayload("s", 5, full_,
                               Fields({"fingerprint", "warmup", "calibration",
                                       "cost", "ltm"})));
}

TEST_F(UpdateCodecTest, EncoderReportsAMessageChangedSincePrepare) {
  GatewaySession m = full_;
  m.mutable_warmup()->set_last_warmup_at_ms(1700000000000);
  UpdateEncoder encoder;
  const size_t size =
      encoder.Prepare("s", 1, m, Fields({"warmup", "calibration"}));
  // Smaller than the size computed (a larger one could overrun the buffer,
  // which is why the engine holds the session's lock across both steps).
  m.mutable_warmup()->clear_last_warmup_at_ms();
  std::string buffer(size, '\0');
  absl::Status s = encoder.EncodeTo(&buffer[0]);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
}

TEST_F(UpdateCodecTest, UnsetListedFieldsAreAbsentFromValues) {
  GatewaySession partial;
  partial.mutable_cost()->set_worker_cost(2);
  std::string payload;
  ASSERT_TRUE(
      EncodeUpdate("s", 9, partial, Fields({"calibration", "cost"}), &payload)
          .ok());
  record::Update u;
  ASSERT_TRUE(u.ParseFromString(payload));
  EXPECT_EQ(u.fields_size(), 2);
  GatewaySession values;
  ASSERT_TRUE(values.ParseFromString(u.values()));
  EXPECT_FALSE(values.has_calibration());
  EXPECT_EQ(values.cost().worker_cost(), 2);
  // Unlisted fields of the source are never written.
  ASSERT_TRUE(
      EncodeUpdate("s", 0, full_, Fields({"header_name"}), &payload).ok());
  ASSERT_TRUE(u.ParseFromString(payload));
  ASSERT_TRUE(values.ParseFromString(u.values()));
  EXPECT_EQ(values.header_name(), "x-session-id");
  EXPECT_TRUE(values.fingerprint().empty());
  EXPECT_FALSE(values.has_ltm());
}

TEST_F(UpdateCodecTest, SessionIdsNeedNotBeUtf8) {
  const std::string id("\xff\xfe\x00id", 5);
  std::string payload;
  ASSERT_TRUE(
      EncodeUpdate(id, 0, full_, Fields({"fingerprint"}), &payload).ok());
  record::Update u;
  ASSERT_TRUE(u.ParseFromString(payload));  // bytes, not string
  EXPECT_EQ(u.session(), id);
  UpdateView view;
  ASSERT_TRUE(DecodeUpdate(payload, &view));
  EXPECT_EQ(view.session, id);
}

TEST_F(UpdateCodecTest, DecodesWhatTheGeneratedCodeWrites) {
  auto fs = Fields({"fingerprint", "calibration", "ltm"});
  const std::string payload = GeneratedPayload("abc", 77, full_, fs);
  UpdateView view;
  ASSERT_TRUE(DecodeUpdate(payload, &view));
  record::Update u;
  ASSERT_TRUE(u.ParseFromString(payload));
  EXPECT_EQ(view.session, u.session());
  EXPECT_EQ(view.values, u.values());
  EXPECT_EQ(view.tick, 77u);
  ASSERT_EQ(view.fields.size(), 3u);
  EXPECT_EQ(view.fields[0], 1u);
  EXPECT_EQ(view.fields[1], 6u);
  EXPECT_EQ(view.fields[2], 8u);
  // The views alias the payload: nothing was copied.
  EXPECT_GE(view.values.data(), payload.data());
  EXPECT_LE(view.values.data() + view.values.size(),
            payload.data() + payload.size());
}

TEST_F(UpdateCodecTest, AcceptsUnpackedNumbersAndUnknownFields) {
  // fields = 3 unpacked twice, an unknown field 9, session last.
  std::string payload;
  payload += '\x18';  // field 3, varint
  payload += '\x06';
  payload += '\x48';  // field 9, varint (unknown)
  payload += '\x01';
  payload += '\x18';
  payload += '\x07';
  payload += '\x0a';  // field 1, length-delimited
  payload += '\x01';
  payload += 'q';
  UpdateView view;
  ASSERT_TRUE(DecodeUpdate(payload, &view));
  EXPECT_EQ(view.session, "q");
  ASSERT_EQ(view.fields.size(), 2u);
  EXPECT_EQ(view.fields[0], 6u);
  EXPECT_EQ(view.fields[1], 7u);
  record::Update u;
  ASSERT_TRUE(u.ParseFromString(payload));
  EXPECT_EQ(u.fields_size(), 2);
}

// Differential test: on truncations and random damage of real payloads, the
// decoder accepts exactly what the generated parser accepts, with the same
// contents.
TEST_F(UpdateCodecTest, AgreesWithTheGeneratedParserOnDamagedInput) {
  std::string payload;
  ASSERT_TRUE(
      EncodeUpdate("session-agree", 123456789, full_,
                   Fields({"fingerprint", "warmup", "calibration", "cost"}),
                   &payload)
          .ok());
  auto check = [&](const std::string& input, const std::string& what) {
    record::Update u;
    UpdateView view;
    const bool generated = u.ParseFromString(input);
    const bool ours = DecodeUpdate(input, &view);
    ASSERT_EQ(ours, generated) << what;
    if (!ours) return;
    EXPECT_EQ(view.session, u.session()) << what;
    EXPECT_EQ(view.values, u.values()) << what;
    EXPECT_EQ(view.tick, u.tick()) << what;
    ASSERT_EQ(view.fields.size(), static_cast<size_t>(u.fields_size())) << what;
    for (int i = 0; i < u.fields_size(); ++i) {
      EXPECT_EQ(view.fields[i], u.fields(i)) << what;
    }
  };
  for (size_t cut = 0; cut <= payload.size(); ++cut) {
    check(payload.substr(0, cut), "cut at " + std::to_string(cut));
  }
  std::mt19937_64 rng(20261128);
  int accepted = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string damaged = payload;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int i = 0; i < flips; ++i) {
      // Damage the framing more often than the bulk of the values.
      size_t at = rng() % 2 == 0 ? rng() % 40 : rng() % damaged.size();
      damaged[at % damaged.size()] = static_cast<char>(rng());
    }
    record::Update u;
    accepted += u.ParseFromString(damaged);
    check(damaged, "round " + std::to_string(round));
    if (HasFatalFailure()) return;
  }
  // Both outcomes were exercised.
  EXPECT_GT(accepted, 100);
  EXPECT_LT(accepted, 19900);
}

}  // namespace
}  // namespace walstate
