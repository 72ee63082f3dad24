// What NatsReplicator says an acknowledgement is worth, per server version
// (docs/replication.md, "What JetStream promises here"). No cluster needed.
#include <string>

#include "absl/strings/match.h"
#include "engine/replication/nats/nats_replicator.h"
#include "gtest/gtest.h"

namespace walstate {
namespace replication {
namespace {

TEST(DurabilityTest, Nats29AcksAreInMemoryOnAQuorum) {
  const ServerDurability d = NatsReplicator::DurabilityOf("2.9.10");
  EXPECT_EQ(d.server_version, "2.9.10");
  EXPECT_FALSE(d.fsync_before_ack_possible);
  EXPECT_TRUE(absl::StrContains(d.description, "nats-server 2.9.10"));
  EXPECT_TRUE(absl::StrContains(d.description, "not fsynced"));
  EXPECT_TRUE(absl::StrContains(d.description, "power loss"));
}

TEST(DurabilityTest, Nats210NeedsSyncIntervalAlways) {
  const ServerDurability d = NatsReplicator::DurabilityOf("2.10.24");
  EXPECT_TRUE(d.fsync_before_ack_possible);
  EXPECT_TRUE(absl::StrContains(d.description, "sync_interval: always"));
  EXPECT_FALSE(absl::StrContains(d.description, "WARNING"));
  EXPECT_TRUE(NatsReplicator::DurabilityOf("2.12.1").fsync_before_ack_possible);
}

TEST(DurabilityTest, Nats210WithStreamLossBugIsWarnedAbout) {
  for (const char* v : {"2.10.20", "2.10.21", "2.10.22"}) {
    EXPECT_TRUE(absl::StrContains(NatsReplicator::DurabilityOf(v).description,
                                  "WARNING"))
        << v;
  }
  EXPECT_FALSE(absl::StrContains(
      NatsReplicator::DurabilityOf("2.10.23").description, "WARNING"));
}

TEST(DurabilityTest, UnknownVersionPromisesNoFsync) {
  const ServerDurability d = NatsReplicator::DurabilityOf("");
  EXPECT_EQ(d.server_version, "unknown");
  EXPECT_FALSE(d.fsync_before_ack_possible);
}

}  // namespace
}  // namespace replication
}  // namespace walstate
