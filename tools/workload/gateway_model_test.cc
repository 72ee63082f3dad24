// The model's promises to its two users: ids round-trip, a group's values do
// not depend on which other groups a turn sets, and Batched() is what
// applying the turns one by one leaves behind.
#include "tools/workload/gateway_model.h"

#include <set>
#include <string>

#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace walstate {
namespace workload {
namespace {

using google::protobuf::util::MessageDifferencer;

TEST(GatewayModelTest, SessionIdsRoundTripAndAreDistinct) {
  const GatewayModel model(ModelConfig::Stress());
  ModelConfig reseeded = ModelConfig::Stress();
  reseeded.seed = 7;
  const GatewayModel other(reseeded);  // another seed's ids
  std::set<std::string> ids;
  for (uint64_t idx = 0; idx < 1000; ++idx) {
    const std::string id = model.SessionId(idx);
    uint64_t back = 0;
    ASSERT_TRUE(model.ParseSessionId(id, &back)) << id;
    EXPECT_EQ(back, idx);
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 1000u);
  uint64_t idx = 0;
  EXPECT_FALSE(model.ParseSessionId("intruder", &idx));
  EXPECT_FALSE(model.ParseSessionId(other.SessionId(7), &idx));
}

TEST(GatewayModelTest, GroupValuesDoNotDependOnTheMask) {
  const GatewayModel model(ModelConfig::Stress());
  for (uint64_t idx = 0; idx < 20; ++idx) {
    for (uint64_t v = 1; v < 30; ++v) {
      GatewaySession all;
      model.Turn(idx, v, kBatchedFields, &all);
      for (uint32_t group : {kTtlField, kWarmupField, kCalibrationField,
                             kCostField, kLtmField}) {
        GatewaySession one, want;
        model.Turn(idx, v, group, &one);
        ApplyFields(all, group, &want);
        EXPECT_TRUE(MessageDifferencer::Equals(one, want))
            << "session " << idx << " turn " << v << " group " << group;
      }
    }
  }
}

TEST(GatewayModelTest, BatchedIsTheTurnsAppliedInOrder) {
  const GatewayModel model(ModelConfig::Stress());
  auto is_full = [](uint64_t u) { return u % 17 == 5; };
  for (uint64_t idx = 0; idx < 10; ++idx) {
    for (uint64_t first : {1, 4}) {
      GatewaySession state;
      for (uint64_t v = first; v < first + 60; ++v) {
        GatewaySession turn;
        const uint32_t mask = model.TurnMask(idx, v, is_full(v));
        model.Turn(idx, v, mask, &turn);
        ApplyFields(turn, mask, &state);
        GatewaySession want;
        model.Batched(idx, first, v, is_full, &want);
        ASSERT_TRUE(MessageDifferencer::Equals(state, want))
            << "session " << idx << " turns " << first << ".." << v;
        uint64_t stamp = 0;
        ASSERT_TRUE(TurnVersion(state, &stamp));
        EXPECT_EQ(stamp, v);
      }
    }
  }
}

TEST(GatewayModelTest, StressShapeMixesGroupsAndSizes) {
  const GatewayModel model(ModelConfig::Stress());
  int ltm = 0, warmup = 0;
  constexpr int kTurns = 6000;
  for (uint64_t v = 1; v <= kTurns; ++v) {
    const uint32_t mask = model.TurnMask(v % 50, v, false);
    EXPECT_EQ(mask & (kCalibrationField | kCostField),
              kCalibrationField | kCostField);
    if (mask & kLtmField) {
      ++ltm;
      GatewaySession m;
      model.Turn(v % 50, v, kLtmField, &m);
      EXPECT_GE(m.ltm().cache_text().size(), 1024u);
      EXPECT_LT(m.ltm().cache_text().size(), 8192u);
      EXPECT_GE(m.ltm().pin_text().size(), 128u);
      EXPECT_LT(m.ltm().pin_text().size(), 896u);
    }
    if (mask & kWarmupField) {
      ++warmup;
      EXPECT_TRUE(mask & kTtlField);
    }
  }
  EXPECT_NEAR(ltm, kTurns / 6, kTurns / 30);
  EXPECT_NEAR(warmup, kTurns / 4, kTurns / 30);
  EXPECT_EQ(model.TurnMask(3, 9, true), kBatchedFields);
}

TEST(GatewayModelTest, RekeyChangesOnlyTheFieldsItNames) {
  const GatewayModel model(ModelConfig::Stress());
  int header_switches = 0;
  for (uint64_t seq = 2; seq < 200; ++seq) {
    const Identity before = model.CreateIdentity(11, 1);
    uint32_t mask = 0;
    const Identity after = model.RekeyIdentity(before, 11, seq, &mask);
    GatewaySession a, b;
    SetIdentity(before, &a);
    SetIdentity(after, &b);
    ApplyFields(b, mask, &a);
    EXPECT_TRUE(MessageDifferencer::Equals(a, b));
    EXPECT_NE(IdentityHash(before), IdentityHash(after));
    if (mask == kHeaderFields) {
      ++header_switches;
    } else {
      EXPECT_EQ(mask, kFingerprintField);
    }
  }
  EXPECT_GT(header_switches, 10);
  EXPECT_LT(header_switches, 80);
}

}  // namespace
}  // namespace workload
}  // namespace walstate
