// Issue 5 part 3: damage at rest, at the engine level. An engine-written
// directory (several segments, a current and a previous snapshot, the
// MANIFEST) gets one damage at a time: the file cut at a byte offset, or one
// bit flipped. Each Open is classified:
//
//   identical      opens with the state of the last acknowledged event
//   torn tail      opens, reports a torn tail, state = an earlier event's
//   cut at a frame boundary
//                  the newest segment cut exactly at a frame boundary (or
//                  after its header): indistinguishable from a log that
//                  ended there, so it opens with an earlier event's state
//                  and reports nothing; allowed for that case only
//   fell back      opens from the previous snapshot, state correct
//   refused        Open fails with DataLoss naming the damaged file and an
//                  offset
//   refused (other) Open fails otherwise (another code, or no offset); safe,
//                  listed for the diagnostics' sake
// and never, whatever the damage:
//   ALTERED        opens with a state no event of the history had, loses
//                  acknowledged data without reporting damage, falls back to
//                  a wrong state, gives another state when opened a second
//                  time, or refuses without naming the file.
//
// CI samples the offsets and bits (headers, tails, random ones). The full
// sweep (every truncation, every bit of every byte):
//   bazel test //tests/crash:damage_sweep_test
//   --test_env=WALSTATE_DAMAGE_FULL=1
//     --test_output=streamed
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/log/format.h"
#include "gtest/gtest.h"
#include "tests/crash/crash_driver.h"

namespace walstate {
namespace crash {
namespace {

enum Class {
  kIdentical,
  kTornPrefix,
  kCutPrefix,
  kFellBack,
  kRefused,
  kRefusedOther,
  kAltered,
  kClasses
};
const char* const kClassNames[kClasses] = {"identical",
                                           "torn tail (prefix)",
                                           "cut at a frame boundary (prefix)",
                                           "fell back (correct)",
                                           "refused (DataLoss, file+offset)",
                                           "refused (other)",
                                           "ALTERED"};

struct Damage {
  std::string file;  // path
  bool truncate = false;
  uint64_t offset = 0;  // truncate: the new size; flip: the byte
  int bit = 0;
  std::string ToString() const {
    return truncate ? absl::StrCat("truncate ", file, " to ", offset)
                    : absl::StrCat("flip bit ", bit, " of byte ", offset,
                                   " of ", file);
  }
};

std::string KindOf(const std::string& path) {
  const std::string name = path.substr(path.rfind('/') + 1);
  uint64_t n = 0;
  if (log::ParseSegmentFileName(name, &n)) return "segment";
  if (log::ParseSnapshotFileName(name, &n)) return "snapshot";
  if (name == log::kManifestFileName) return "manifest";
  return "other";
}

class DamageSweepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs_.ResetOpLog();
    options_ = TestOptions(&fs_, &clock_);
    options_.max_segment_bytes = 2048;
    driver_ = std::make_unique<Driver>(&fs_, options_);
    ASSERT_TRUE(driver_->Open().ok());
    WorkloadOptions w;
    w.seed = 11;
    w.steps = 70;
    w.flush_before_compact = true;
    w.max_text = 600;
    ASSERT_TRUE(RunWorkload(*driver_, w).ok());
    // Two more snapshots, so that the MANIFEST names a current and a
    // previous one, with log records between and after them.
    for (int round = 0; round < 2; ++round) {
      w.seed = 12 + round;
      w.steps = 12;
      w.compact = false;
      w.reopen = false;
      ASSERT_TRUE(RunWorkload(*driver_, w).ok());
      ASSERT_TRUE(driver_->Flush().ok());
      ASSERT_TRUE(driver_->Compact().ok());
    }
    w.seed = 20;
    w.steps = 15;
    ASSERT_TRUE(RunWorkload(*driver_, w).ok());
    ASSERT_TRUE(driver_->Close().ok());
    for (const Call& c : driver_->calls()) {
      ASSERT_TRUE(c.status.ok() || absl::IsAlreadyExists(c.status) ||
                  absl::IsNotFound(c.status))
          << c.what << ": " << c.status;
    }
    final_ = driver_->history().events().back().durable;
    for (const std::string& path : fs_.ListFiles()) {
      if (KindOf(path) == "segment") newest_segment_ = path;  // sorted
    }
  }

  // Opens a damaged copy and classifies the outcome.
  Class Classify(const Damage& d, std::string* why) {
    std::unique_ptr<FIFS> copy = fs_.Clone();
    absl::Status s = d.truncate ? copy->TruncateInPlace(d.file, d.offset)
                                : copy->FlipBit(d.file, d.offset, d.bit);
    if (!s.ok()) {
      *why = s.ToString();
      return kAltered;
    }
    Options o = options_;
    o.fs = copy.get();
    auto store = Store<GatewaySession>::Open(o, kDir);
    const std::string name = d.file.substr(d.file.rfind('/') + 1);
    if (!store.ok()) {
      const std::string msg(store.status().message());
      *why = store.status().ToString();
      if (!absl::StrContains(msg, name)) {
        *why = absl::StrCat("does not name ", name, ": ", *why);
        return kRefusedOther;
      }
      return absl::IsDataLoss(store.status()) &&
                     absl::StrContains(msg, "offset")
                 ? kRefused
                 : kRefusedOther;
    }
    const State got = ReadAll(**store);
    const RecoveryReport report = (*store)->recovery_report();
    const std::string idx = CheckIndexes(**store, got);
    (void)(*store)->Close();
    store->reset();
    if (!idx.empty()) {
      *why = idx;
      return kAltered;
    }
    // Opening a second time gives the same state.
    auto again = Store<GatewaySession>::Open(o, kDir);
    if (!again.ok()) {
      *why = absl::StrCat("second open failed: ", again.status().ToString());
      return kAltered;
    }
    const State second = ReadAll(**again);
    if (second != got) {
      *why = absl::StrCat("second open differs:\n", DiffStates(second, got));
      return kAltered;
    }
    if (got == final_) return report.fell_back ? kFellBack : kIdentical;
    const History& h = driver_->history();
    size_t match = h.events().size();
    for (size_t j = 0; j < h.events().size(); ++j) {
      if (h.events()[j].durable == got) match = j;
    }
    if (match == h.events().size()) {
      *why = absl::StrCat("a state no event had:\n", DiffStates(got, final_),
                          report.ToString());
      return kAltered;
    }
    const bool reported = report.torn_bytes_dropped > 0 || report.fell_back ||
                          !report.problems.empty();
    if (!reported && d.truncate && d.file == newest_segment_) {
      *why = absl::StrCat("state of event ", h.Describe(match));
      return kCutPrefix;
    }
    if (!reported) {
      *why = absl::StrCat("state of event ", h.Describe(match),
                          " with no damage reported:\n",
                          DiffStates(got, final_), report.ToString());
      return kAltered;
    }
    if (report.fell_back) {
      *why = absl::StrCat("fell back to a state older than the last event:\n",
                          DiffStates(got, final_), report.ToString());
      return kAltered;
    }
    return kTornPrefix;
  }

  FIFS fs_;
  absl::Time clock_ = absl::FromUnixSeconds(1800000000);
  Options options_;
  std::unique_ptr<Driver> driver_;
  State final_;
  std::string newest_segment_;
};

TEST_F(DamageSweepTest, TruncationsAndBitFlipsNeverServeAnAlteredState) {
  const bool full = EnvFlag("WALSTATE_DAMAGE_FULL");
  std::mt19937_64 rng(EnvInt("WALSTATE_DAMAGE_SEED", 5));
  std::vector<Damage> damages;
  std::map<std::string, int> files_per_kind;
  for (const std::string& path : fs_.ListFiles()) {
    const std::string kind = KindOf(path);
    if (kind == "other") continue;  // LOCK
    ++files_per_kind[kind];
    auto bytes = fs_.ReadFileBytes(path);
    ASSERT_TRUE(bytes.ok());
    const uint64_t size = bytes->size();
    std::set<uint64_t> cuts, flips;
    if (full) {
      for (uint64_t i = 0; i < size; ++i) cuts.insert(i);
      for (uint64_t i = 0; i < size; ++i) flips.insert(i);
    } else {
      // The fixed header, the last records, and a random sample between.
      const uint64_t head = kSanitized ? 16 : 72;
      const uint64_t tail = kSanitized ? 32 : 96;
      const int random = kSanitized ? 10 : 40;
      for (uint64_t i = 0; i < std::min<uint64_t>(size, head); ++i) {
        cuts.insert(i);
        flips.insert(i);
      }
      for (uint64_t i = size > tail ? size - tail : 0; i < size; ++i) {
        cuts.insert(i);
        flips.insert(i);
      }
      for (int k = 0; k < random && size > 0; ++k) {
        cuts.insert(rng() % size);
        flips.insert(rng() % size);
      }
    }
    for (uint64_t c : cuts) damages.push_back({path, true, c, 0});
    for (uint64_t f : flips) {
      if (full) {
        for (int bit = 0; bit < 8; ++bit)
          damages.push_back({path, false, f, bit});
      } else {
        damages.push_back({path, false, f, static_cast<int>(rng() % 8)});
      }
    }
  }
  ASSERT_GE(files_per_kind["segment"], 3);
  ASSERT_GE(files_per_kind["snapshot"], 2);
  ASSERT_EQ(files_per_kind["manifest"], 1);

  const auto start = std::chrono::steady_clock::now();
  std::map<std::string, std::vector<uint64_t>> by_kind;
  std::vector<uint64_t> total(kClasses, 0);
  std::map<std::string, std::string> example;
  int shown = 0;
  for (const Damage& d : damages) {
    std::string why;
    const Class c = Classify(d, &why);
    ++total[c];
    auto& counts =
        by_kind[absl::StrCat(KindOf(d.file), d.truncate ? " cut" : " flip")];
    counts.resize(kClasses, 0);
    ++counts[c];
    const std::string key = absl::StrCat(kClassNames[c], " (", KindOf(d.file),
                                         d.truncate ? " cut)" : " flip)");
    if (!example.count(key))
      example[key] = absl::StrCat(d.ToString(), ": ", why);
    if (c == kAltered && ++shown <= 5) {
      ADD_FAILURE() << "altered state served after " << d.ToString() << "\n"
                    << why;
    }
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  auto line = [](const std::vector<uint64_t>& counts) {
    std::string out;
    for (int c = 0; c < kClasses; ++c) {
      absl::StrAppend(&out, c ? ", " : "", kClassNames[c], ": ", counts[c]);
    }
    return out;
  };
  std::printf(
      "damage cases: %zu (%s sweep, %.1f s; %d segments, %d snapshots, "
      "MANIFEST)\n",
      damages.size(), full ? "full" : "CI", secs, files_per_kind["segment"],
      files_per_kind["snapshot"]);
  std::printf("  all: %s\n", line(total).c_str());
  for (const auto& [kind, counts] : by_kind) {
    std::printf("  %s: %s\n", kind.c_str(), line(counts).c_str());
  }
  for (const auto& [key, text] : example) {
    std::string t = text.substr(0, 260);
    std::replace(t.begin(), t.end(), '\n', ' ');
    std::printf("  e.g. %s: %s\n", key.c_str(), t.c_str());
  }
  std::fflush(stdout);
  EXPECT_EQ(total[kAltered], 0u);
}

}  // namespace
}  // namespace crash
}  // namespace walstate
