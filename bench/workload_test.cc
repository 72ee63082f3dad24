// The bench workload is a function of its seed: these digests pin the bytes
// every contestant is given and must recover, so that a change to the model
// that would change what the benchmark figures measure shows up here.
#include "bench/workload.h"

#include <xxhash.h>

#include <string>

#include "gtest/gtest.h"

namespace walstate {
namespace bench {
namespace {

struct Digest {
  XXH64_hash_t h = 0;
  size_t bytes = 0;
  void Add(const std::string& s) {
    h = XXH64(s.data(), s.size(), h);
    bytes += s.size();
  }
  void Add(const GatewaySession& m) { Add(m.SerializeAsString()); }
};

Digest DigestOf(const WorkloadConfig& config, uint64_t sessions) {
  const Workload w(config);
  Digest d;
  GatewaySession m;
  for (uint64_t i = 0; i < sessions; ++i) {
    d.Add(w.SessionId(i));
    m.Clear();
    w.Identity(i, &m);
    d.Add(m);
    for (int32_t v : {kIdentityOnly, 0, 1, 2, 7, 19, 20, 21, 39, 40, 41, 123}) {
      w.Expected(i, v, &m);
      d.Add(m);
      if (v < 0) continue;
      m.Clear();
      w.Turn(i, v, &m);
      d.Add(m);
      for (const std::string& f : FieldNames(w.TurnMask(v))) d.Add(f);
    }
  }
  return d;
}

TEST(WorkloadTest, SmallIsPinned) {
  Digest d = DigestOf(WorkloadConfig::Small(), 2000);
  EXPECT_EQ(d.h, 2178873840829726368u);
  EXPECT_EQ(d.bytes, 12412934u);
}

TEST(WorkloadTest, LargeIsPinned) {
  Digest d = DigestOf(WorkloadConfig::Large(), 50);
  EXPECT_EQ(d.h, 12674497745816919554u);
  EXPECT_EQ(d.bytes, 14606430u);
}

}  // namespace
}  // namespace bench
}  // namespace walstate
