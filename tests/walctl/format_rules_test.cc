// docs/FORMAT.md §9 "Deciding whether a store opens" and §10 "Replaying
// ticks": one case per rule, named as in the text. Each builds the exact
// directory the rule describes (segments written by LogWriter, snapshots by
// SnapshotWriter or by hand, the MANIFEST by WriteManifest, then byte-level
// damage), runs `walctl verify --json` (which says whether the store opens)
// and then Store::Open, and checks both against the text and each other.
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/log/format.h"
#include "engine/log/writer.h"
#include "engine/snapshot/manifest.h"
#include "engine/snapshot/snapshot_writer.h"
#include "engine/state/schema.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/example/gateway.pb.h"
#include "proto/walstate/record.pb.h"
#include "tests/walctl/walctl_test_util.h"
#include "walstate/file_system.h"
#include "walstate/walstate.h"

namespace walstate {
namespace walctl_test {
namespace {

using example::GatewaySession;
using ::testing::HasSubstr;

// The field every record sets: resolved_conversation_ttl (4, a string).
constexpr uint32_t kField = 4;

std::string Blob() {
  static const std::string* blob = [] {
    auto schema =
        Schema::FromPrototype(GatewaySession::default_instance(), BATCHED);
    return new std::string(schema.ok() ? (*schema)->blob() : "");
  }();
  return *blob;
}

std::string UpdateBytes(const std::string& session, const std::string& value,
                        uint64_t tick) {
  record::Update u;
  u.set_session(session);
  GatewaySession v;
  v.set_resolved_conversation_ttl(value);
  v.SerializeToString(u.mutable_values());
  u.add_fields(kField);
  if (tick != 0) u.set_tick(tick);
  return u.SerializeAsString();
}

TestRecord U(const std::string& s, const std::string& v) {
  return {log::kUpdate, UpdateBytes(s, v, 0)};
}
TestRecord D(const std::string& s) {
  record::Delete d;
  d.set_session(s);
  return {log::kDelete, d.SerializeAsString()};
}
TestRecord Begin() { return {log::kTickBegin, ""}; }
TestRecord Entry(uint64_t tick, const std::string& s, const std::string& v) {
  return {log::kTickEntry, UpdateBytes(s, v, tick)};
}
TestRecord End(uint8_t type, uint64_t tick, uint64_t entries = 0) {
  record::TickEnd e;
  e.set_tick(tick);
  e.set_entries(entries);
  return {type, e.SerializeAsString()};
}
TestRecord Commit(uint64_t tick, uint64_t entries = 1) {
  return End(log::kTickCommit, tick, entries);
}
TestRecord Abort(uint64_t tick) { return End(log::kTickAbort, tick); }

uint32_t U32At(const std::string& bytes, uint64_t off) {
  uint32_t v;
  std::memcpy(&v, bytes.data() + off, 4);
  return v;
}

// A directory being built for one rule.
class Dir {
 public:
  explicit Dir(const std::string& name) : path_(NewTempDir(name)) {}
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const {
    return JoinPath(path_, name);
  }
  std::string Seg(uint64_t n) const { return File(log::SegmentFileName(n)); }

  // Writes segments 1, 2, ... each holding one group of records, LSNs
  // consecutive from 1, and closes each.
  void Log(const std::vector<std::vector<TestRecord>>& segments) {
    uint64_t lsn = 1;
    for (size_t i = 0; i < segments.size(); ++i) {
      log::WriterOptions wo;
      wo.fs = FileSystem::Default();
      wo.dir = path_;
      wo.schema = Blob();
      auto w = log::LogWriter::Create(wo, i + 1, lsn);
      ASSERT_TRUE(w.ok()) << w.status();
      // Each record synced, so each frame carries the after-sync flag and
      // damage to one is never a torn tail (§7.1).
      for (const TestRecord& r : segments[i]) {
        auto at = (*w)->Append(r.type, r.payload);
        ASSERT_TRUE(at.ok()) << at.status();
        ASSERT_TRUE((*w)->SyncTo(*at).ok());
        ++lsn;
      }
      ASSERT_TRUE((*w)->Close().ok());
    }
  }
  // One record per segment: segment n holds LSN n.
  void LogOnePerSegment(const std::vector<TestRecord>& records) {
    std::vector<std::vector<TestRecord>> segs;
    for (const TestRecord& r : records) segs.push_back({r});
    Log(segs);
  }

  // Offset of the frame of `lsn` in segment `n` (a clean file).
  uint64_t FrameOffset(uint64_t n, uint64_t lsn) const {
    const std::string bytes = ReadFile(Seg(n));
    uint64_t off = U32At(bytes, 12);
    uint64_t at = 0;
    std::memcpy(&at, bytes.data() + 32, 8);  // first_lsn
    while (at < lsn && off < bytes.size()) {
      off += log::FramedSize(U32At(bytes, off + 8));
      ++at;
    }
    return off;
  }
  // Flips a byte of the payload of record `lsn` in segment `n`.
  void DamageRecord(uint64_t n, uint64_t lsn) {
    FlipByte(Seg(n), FrameOffset(n, lsn) + log::kRecordHeaderSize);
  }

  struct Ref {
    std::string file;
    uint64_t lsn = 0;
    uint64_t sessions = 0;
    uint64_t hint_segment = 0;
    uint64_t hint_offset = 0;
  };
  // A snapshot at `lsn` of `sessions` (id -> value), each captured at
  // `capture_lsn` (0: at `lsn`), written in subdirectory `subdir` if not
  // empty (the Ref's file is then "subdir/<name>").
  Ref Snapshot(uint64_t lsn, const std::map<std::string, std::string>& state,
               uint64_t capture_lsn = 0, const std::string& subdir = "") {
    const std::string dir = subdir.empty() ? path_ : JoinPath(path_, subdir);
    if (!subdir.empty()) {
      EXPECT_TRUE(FileSystem::Default()->CreateDir(dir).ok());
    }
    auto w = SnapshotWriter::Create(FileSystem::Default(), dir, lsn, Blob());
    EXPECT_TRUE(w.ok()) << w.status();
    if (!w.ok()) return {};
    for (const auto& [id, value] : state) {
      GatewaySession s;
      s.set_resolved_conversation_ttl(value);
      (*w)->Add(id, s, capture_lsn == 0 ? lsn : capture_lsn);
    }
    EXPECT_TRUE((*w)->Finish().ok());
    const std::string name = (*w)->file_name();
    return {subdir.empty() ? name : subdir + "/" + name, lsn, state.size()};
  }
  // A snapshot written frame by frame, its end record saying `end_sessions`
  // sessions at `end_lsn`.
  Ref RawSnapshot(uint64_t lsn, const std::map<std::string, std::string>& state,
                  uint64_t end_sessions, uint64_t end_lsn) {
    log::FileHeader h;
    h.kind = log::FileKind::kSnapshot;
    h.file_number = lsn;
    h.first_lsn = 1;
    h.salt = 77;
    h.schema = Blob();
    std::string bytes;
    log::EncodeFileHeader(h, &bytes);
    uint64_t ordinal = 1;
    for (const auto& [id, value] : state) {
      GatewaySession s;
      s.set_resolved_conversation_ttl(value);
      record::SessionState ss;
      ss.set_session(id);
      s.SerializeToString(ss.mutable_state());
      ss.set_lsn(lsn);
      log::EncodeRecord(h.salt, ordinal++, log::kSnapshotSession,
                        ss.SerializeAsString(), &bytes);
    }
    record::SnapshotEnd end;
    end.set_sessions(end_sessions);
    end.set_lsn(end_lsn);
    log::EncodeRecord(h.salt, ordinal, log::kSnapshotEnd,
                      end.SerializeAsString(), &bytes);
    const std::string name = log::SnapshotFileName(lsn);
    WriteFile(File(name), bytes);
    return {name, lsn, state.size()};
  }
  // The hint for snapshot `ref` when segment n holds LSN ref.lsn.
  static Ref Hinted(Ref ref, uint64_t segment, uint64_t offset) {
    ref.hint_segment = segment;
    ref.hint_offset = offset;
    return ref;
  }
  // The MANIFEST naming `current` and `previous`. With `file_number` not 0,
  // written by hand with that header file_number (the writer makes it
  // equal to the generation, 1 here).
  void Manifest(const Ref* current, const Ref* previous = nullptr,
                uint64_t file_number = 0) {
    record::Manifest m;
    m.set_generation(1);
    auto fill = [](const Ref& r, record::Manifest::SnapshotRef* out) {
      out->set_file(r.file);
      out->set_lsn(r.lsn);
      out->set_sessions(r.sessions);
      out->set_log_segment(r.hint_segment);
      out->set_log_offset(r.hint_offset);
    };
    if (current != nullptr) fill(*current, m.mutable_current());
    if (previous != nullptr) fill(*previous, m.mutable_previous());
    if (file_number == 0) {
      ASSERT_TRUE(WriteManifest(FileSystem::Default(), path_, m).ok());
      return;
    }
    log::FileHeader h;
    h.kind = log::FileKind::kManifest;
    h.file_number = file_number;
    h.first_lsn = 1;
    h.salt = 91;
    std::string bytes;
    log::EncodeFileHeader(h, &bytes);
    log::EncodeRecord(h.salt, 1, log::kManifest, m.SerializeAsString(), &bytes);
    WriteFile(File("MANIFEST"), bytes);
  }

 private:
  std::string path_;
};

struct Rule {
  const char* name;
  std::function<void(Dir&)> build;
  // Store::Open's outcome and, when it opens, each session's value ("" for
  // absent). `error` is a substring of the error otherwise.
  absl::StatusCode open_code = absl::StatusCode::kOk;
  std::map<std::string, std::string> sessions;
  std::string error;
  int verify_exit = 0;  // walctl verify's exit code
  RecoveryMode mode = RecoveryMode::kTolerateTornTail;
  // Extra checks after Open and Close.
  std::function<void(Dir&)> after;
  // A substring of walctl verify's output, if not empty.
  std::string verify_says;
};

// Snapshot at LSN 3 of a one-record-per-segment log of LSN 1..5, with its
// hint at segment 3: the base of the "below the snapshot" rules.
void FiveSegmentsSnapshotAt3(Dir& d) {
  d.LogOnePerSegment(
      {U("s", "1"), U("s", "2"), U("s", "3"), U("s", "4"), U("t", "5")});
  Dir::Ref snap =
      Dir::Hinted(d.Snapshot(3, {{"s", "3"}}), 3, d.FrameOffset(3, 3));
  d.Manifest(&snap);
}

// One segment, LSN 1..5, snapshot at 3 with the given hint offset (0: the
// frame of LSN 3), and the payload of LSN 1 damaged.
void OneSegmentDamagedAt1(Dir& d, bool good_hint) {
  d.Log({{U("s", "1"), U("s", "2"), U("s", "3"), U("s", "4"), U("t", "5")}});
  const uint64_t off = d.FrameOffset(1, good_hint ? 3 : 2);
  Dir::Ref snap = Dir::Hinted(d.Snapshot(3, {{"s", "3"}}), 1, off);
  d.Manifest(&snap);
  d.DamageRecord(1, 1);
}

std::vector<Rule> Rules() {
  std::vector<Rule> rules;
  auto add = [&](Rule r) { rules.push_back(std::move(r)); };

  // ---- §9: the MANIFEST.
  add({"NoManifest",
       [](Dir& d) {
         d.Log({{U("s", "a"), U("s", "b")}});
         d.Snapshot(1, {{"s", "leftover"}, {"x", "leftover"}});  // unnamed
       },
       absl::StatusCode::kOk,
       {{"s", "b"}, {"x", ""}}});
  add({"DamagedManifest",
       [](Dir& d) {
         d.Log({{U("s", "a"), U("s", "b")}});
         Dir::Ref snap = d.Snapshot(2, {{"s", "b"}});
         d.Manifest(&snap);
         FlipByte(d.File("MANIFEST"), FileSize(d.File("MANIFEST")) - 3);
       },
       absl::StatusCode::kDataLoss,
       {},
       "MANIFEST",
       2});

  add({"ManifestOfAnotherVersion",
       [](Dir& d) {
         d.Log({{U("s", "a"), U("s", "b")}});
         Dir::Ref snap = d.Snapshot(2, {{"s", "b"}});
         d.Manifest(&snap);
         std::string bytes = ReadFile(d.File("MANIFEST"));
         bytes[8] = 2;  // format_version 2
         WriteFile(d.File("MANIFEST"), bytes);
       },
       absl::StatusCode::kFailedPrecondition,
       {},
       "version",
       2});
  add({"ManifestGenerationNotComparedWithFileNumber",
       [](Dir& d) {
         d.Log({{U("s", "a"), U("s", "b"), U("t", "c")}});
         Dir::Ref snap = d.Snapshot(2, {{"s", "b"}, {"only-in-snap", "x"}});
         d.Manifest(&snap, nullptr, /*file_number=*/9);  // generation 1
       },
       absl::StatusCode::kOk,
       {{"s", "b"}, {"t", "c"}, {"only-in-snap", "x"}}});
  add({"ManifestBytesAfterFirstRecordNotRead",
       [](Dir& d) {
         d.Log({{U("s", "a"), U("s", "b")}});
         Dir::Ref snap = d.Snapshot(2, {{"s", "b"}, {"only-in-snap", "x"}});
         d.Manifest(&snap);
         const std::string bytes = ReadFile(d.File("MANIFEST"));
         WriteFile(d.File("MANIFEST"), bytes + std::string(40, '\x5a'));
       },
       absl::StatusCode::kOk,
       {{"s", "b"}, {"only-in-snap", "x"}},
       "",
       2});

  // ---- §9: the snapshot.
  add({"CurrentSnapshotUsed",
       [](Dir& d) {
         d.Log({{U("s", "a"), U("s", "b"), U("t", "c")}});
         Dir::Ref snap = d.Snapshot(2, {{"s", "b"}, {"only-in-snap", "x"}});
         d.Manifest(&snap);
       },
       absl::StatusCode::kOk,
       {{"s", "b"}, {"t", "c"}, {"only-in-snap", "x"}}});
  // Fallback: log LSN 1..3, previous snapshot at 1, current at 2 broken by
  // `cur` (which writes it): the state is the previous one's plus LSN 2..3.
  auto fallback = [&](const char* name, std::function<void(Dir&)> cur) {
    add({name,
         [cur](Dir& d) {
           d.Log({{U("s", "a"), U("s", "b"), U("t", "c")}});
           cur(d);
         },
         absl::StatusCode::kOk,
         {{"s", "b"}, {"t", "c"}, {"from-previous", "p"}, {"from-current", ""}},
         "",
         2});
  };
  auto previous = [](Dir& d) {
    return d.Snapshot(1, {{"s", "a"}, {"from-previous", "p"}});
  };
  const std::map<std::string, std::string> current = {{"s", "b"},
                                                      {"from-current", "c"}};
  fallback("SnapshotEndMismatch", [=](Dir& d) {
    Dir::Ref prev = previous(d);
    Dir::Ref cur = d.RawSnapshot(2, current, /*end_sessions=*/3, 2);
    d.Manifest(&cur, &prev);
  });
  fallback("SnapshotEndLsnMismatch", [=](Dir& d) {
    Dir::Ref prev = previous(d);
    Dir::Ref cur = d.RawSnapshot(2, current, 2, /*end_lsn=*/1);
    d.Manifest(&cur, &prev);
  });
  fallback("CurrentDamagedFallsBackToPrevious", [=](Dir& d) {
    Dir::Ref prev = previous(d);
    Dir::Ref cur = d.Snapshot(2, current);
    d.Manifest(&cur, &prev);
    FlipByte(d.File(cur.file), FileSize(d.File(cur.file)) - 5);
  });
  fallback("MissingCurrentFallsBackToPrevious", [=](Dir& d) {
    Dir::Ref prev = previous(d);
    Dir::Ref cur = d.Snapshot(2, current);
    d.Manifest(&cur, &prev);
    ASSERT_TRUE(FileSystem::Default()->DeleteFile(d.File(cur.file)).ok());
  });
  fallback("SnapshotNameWithSlash", [=](Dir& d) {
    Dir::Ref prev = previous(d);
    // A good snapshot, but in a subdirectory: the MANIFEST's name for it
    // ("sub/snap-...") is not a snapshot file name, so it is not read.
    Dir::Ref cur = d.Snapshot(2, current, 0, "sub");
    d.Manifest(&cur, &prev);
  });
  fallback("SnapshotOfAnotherVersionFallsBack", [=](Dir& d) {
    Dir::Ref prev = previous(d);
    Dir::Ref cur = d.Snapshot(2, current);
    d.Manifest(&cur, &prev);
    std::string bytes = ReadFile(d.File(cur.file));
    bytes[8] = 2;  // format_version 2
    WriteFile(d.File(cur.file), bytes);
  });
  add({"SnapshotEndMismatchWithoutPrevious",
       [](Dir& d) {
         d.Log({{U("s", "a"), U("s", "b")}});
         Dir::Ref cur =
             d.RawSnapshot(2, {{"s", "b"}}, /*end_sessions=*/2, /*end_lsn=*/2);
         d.Manifest(&cur);
       },
       absl::StatusCode::kDataLoss,
       {},
       "no usable snapshot",
       2,
       RecoveryMode::kTolerateTornTail,
       nullptr,
       "sessions"});
  add({"ManifestSessionsNotChecked",
       [](Dir& d) {
         d.Log({{U("s", "a"), U("s", "b")}});
         Dir::Ref cur = d.Snapshot(2, {{"s", "b"}});
         cur.sessions = 5;  // the file holds 1
         d.Manifest(&cur);
       },
       absl::StatusCode::kOk,
       {{"s", "b"}},
       "",
       2,
       RecoveryMode::kTolerateTornTail,
       nullptr,
       "sessions"});
  add({"CapturedRecordNotAppliedAgain",
       [](Dir& d) {
         d.Log({{U("s", "1"), U("s", "2"), U("s", "3"), U("t", "4")}});
         // Snapshot at 2 whose state of s was captured at LSN 3 (fuzzy):
         // LSN 3 is not applied again, LSN 4 is.
         Dir::Ref snap = d.Snapshot(2, {{"s", "captured"}}, /*capture_lsn=*/3);
         d.Manifest(&snap);
       },
       absl::StatusCode::kOk,
       {{"s", "captured"}, {"t", "4"}}});
  add({"NoUsableSnapshot",
       [](Dir& d) {
         d.Log({{U("s", "a"), U("s", "b")}});
         Dir::Ref cur = d.Snapshot(2, {{"s", "b"}});
         d.Manifest(&cur);
         FlipByte(d.File(cur.file), FileSize(d.File(cur.file)) - 5);
       },
       absl::StatusCode::kDataLoss,
       {},
       "no usable snapshot",
       2});
  add({"ManifestNamesNoSnapshot",
       [](Dir& d) {
         d.Log({{U("s", "a"), U("s", "b")}});
         d.Manifest(nullptr);
       },
       absl::StatusCode::kOk,
       {{"s", "b"}}});

  // ---- §9: the log below the snapshot.
  add({"DamagedHeaderBelowSnapshot",
       [](Dir& d) {
         FiveSegmentsSnapshotAt3(d);
         FlipByte(d.Seg(1), 50);  // created_micros: the header hash fails
       },
       absl::StatusCode::kDataLoss,
       {},
       "file header",
       2});
  add({"DamageInSkippedSegmentIgnored",
       [](Dir& d) {
         FiveSegmentsSnapshotAt3(d);
         d.DamageRecord(1, 1);
       },
       absl::StatusCode::kOk,
       {{"s", "4"}, {"t", "5"}},
       "",
       2});
  add({"DamageBeforeHintIgnored",
       [](Dir& d) { OneSegmentDamagedAt1(d, /*good_hint=*/true); },
       absl::StatusCode::kOk,
       {{"s", "4"}, {"t", "5"}},
       "",
       2});
  add({"BadHintReadsFromStart",
       [](Dir& d) { OneSegmentDamagedAt1(d, /*good_hint=*/false); },
       absl::StatusCode::kDataLoss,
       {},
       "corruption",
       2});
  add({"MissingSegmentsBelowSnapshot",
       [](Dir& d) {
         FiveSegmentsSnapshotAt3(d);
         ASSERT_TRUE(FileSystem::Default()->DeleteFile(d.Seg(2)).ok());
       },
       absl::StatusCode::kOk,
       {{"s", "4"}, {"t", "5"}},
       "",
       0});
  add({"MissingSegmentsAboveSnapshot",
       [](Dir& d) {
         d.LogOnePerSegment(
             {U("s", "1"), U("s", "2"), U("s", "3"), U("s", "4"), U("t", "5")});
         Dir::Ref snap =
             Dir::Hinted(d.Snapshot(2, {{"s", "2"}}), 2, d.FrameOffset(2, 2));
         d.Manifest(&snap);
         ASSERT_TRUE(FileSystem::Default()->DeleteFile(d.Seg(4)).ok());
       },
       absl::StatusCode::kDataLoss,
       {},
       "segments 4..4 are missing",
       2});
  add({"LogStartsAfterSnapshot",
       [](Dir& d) {
         d.LogOnePerSegment({U("s", "1"), U("s", "2"), U("s", "3")});
         ASSERT_TRUE(FileSystem::Default()->DeleteFile(d.Seg(1)).ok());
       },
       absl::StatusCode::kDataLoss,
       {},
       "log records 1..1 are missing",
       2});
  add({"BadVersionStopsEverything",
       [](Dir& d) {
         FiveSegmentsSnapshotAt3(d);
         std::string bytes = ReadFile(d.Seg(1));
         bytes[8] = 2;  // format_version 2
         WriteFile(d.Seg(1), bytes);
       },
       absl::StatusCode::kFailedPrecondition,
       {},
       "version",
       2,
       RecoveryMode::kSalvage});

  // ---- §9: after the snapshot, and salvage.
  add({"TornTailCut",
       [](Dir& d) {
         d.Log({{U("s", "a"), U("s", "b")}});
         std::string bytes = ReadFile(d.Seg(1));
         WriteFile(d.Seg(1), bytes + std::string(40, '\x5a'));
       },
       absl::StatusCode::kOk,
       {{"s", "b"}},
       "",
       1});
  add({"CorruptionAfterSnapshotStops",
       [](Dir& d) {
         d.Log({{U("s", "a"), U("s", "b")}, {U("s", "c")}});
         d.DamageRecord(1, 1);
       },
       absl::StatusCode::kDataLoss,
       {},
       "corruption",
       2});
  add({"SalvageKeepsRecordsBehindDamagedHeader",
       [](Dir& d) {
         d.Log({{U("s", "a"), U("t", "b")}, {U("u", "c")}});
         FlipByte(d.Seg(1), 50);  // created_micros; the salt is intact
       },
       absl::StatusCode::kOk,
       {{"s", "a"}, {"t", "b"}, {"u", "c"}},
       "",
       2,
       RecoveryMode::kSalvage,
       [](Dir& d) {
         // dump lists the records salvage kept.
         RunResult r = RunWalctl({"dump", d.path()});
         EXPECT_THAT(r.out, HasSubstr("lsn=1 type=update"));
         EXPECT_THAT(r.out, HasSubstr("lsn=2 type=update"));
       }});

  // ---- §10: replaying ticks.
  add({"UpdateAndDeleteApplyAtTheirLsn",
       [](Dir& d) {
         d.Log({{U("s", "a"), U("t", "b"), D("t")}});
       },
       absl::StatusCode::kOk,
       {{"s", "a"}, {"t", ""}}});
  add({"CommittedTickEntriesApply",
       [](Dir& d) {
         d.Log({{Begin(), Entry(1, "s", "a"), Commit(1)}});
       },
       absl::StatusCode::kOk,
       {{"s", "a"}}});
  add({"ImmediateUpdateBetweenEntryAndCommitWins",
       [](Dir& d) {
         d.Log({{Begin(), Entry(1, "s", "a"), U("s", "b"), Commit(1)}});
       },
       absl::StatusCode::kOk,
       {{"s", "b"}}});
  add({"DeleteBetweenEntryAndCommitDeletes",
       [](Dir& d) {
         d.Log({{U("s", "x"), Begin(), Entry(2, "s", "a"), D("s"), Commit(2)}});
       },
       absl::StatusCode::kOk,
       {{"s", ""}}});
  add({"AbortedTickDropped",
       [](Dir& d) {
         d.Log({{U("s", "x"), Begin(), Entry(2, "s", "a"), Abort(2)}});
       },
       absl::StatusCode::kOk,
       {{"s", "x"}}});
  add({"UnfinishedTickDropped",
       [](Dir& d) {
         d.Log({{U("s", "x"), Begin(), Entry(2, "s", "a")}});
       },
       absl::StatusCode::kOk,
       {{"s", "x"}},
       "",
       0,
       RecoveryMode::kTolerateTornTail,
       [](Dir& d) {
         // Open ended the tick with an abort.
         RunResult r = RunWalctl({"dump", d.path(), "--type", "tick-abort"});
         EXPECT_THAT(r.out, HasSubstr("tick=2"));
       }});
  add({"EntryOfTickNeverBegun",
       [](Dir& d) {
         d.Log({{U("s", "x"), Entry(1, "s", "a"), Commit(1)}});
       },
       absl::StatusCode::kDataLoss,
       {},
       "never begun",
       2});
  add({"TickSpanningSnapshot",
       [](Dir& d) {
         d.Log({{U("s", "x"), Begin(), Entry(2, "s", "a"), Entry(2, "t", "b"),
                 Commit(2, 2)}});
         Dir::Ref snap =
             Dir::Hinted(d.Snapshot(3, {{"s", "a"}}), 1, d.FrameOffset(1, 3));
         d.Manifest(&snap);
       },
       absl::StatusCode::kOk,
       {{"s", "a"}, {"t", "b"}}});
  add({"CommitOfTickNotOpen",
       [](Dir& d) {
         d.Log({{U("s", "x"), Commit(1)}});
       },
       absl::StatusCode::kDataLoss,
       {},
       "",
       2});
  add({"AbortOfTickNotOpen",
       [](Dir& d) {
         d.Log({{U("s", "x"), Begin(), Abort(2), Abort(2)}});
       },
       absl::StatusCode::kDataLoss,
       {},
       "",
       2});
  add({"CommitEntryCountNotChecked",
       [](Dir& d) {
         d.Log({{Begin(), Entry(1, "s", "a"), Commit(1, /*entries=*/7)}});
       },
       absl::StatusCode::kOk,
       {{"s", "a"}}});
  add({"PayloadThatDoesNotDecode",
       [](Dir& d) {
         d.Log({{U("s", "a"), TestRecord{log::kUpdate, "\xff\xff\xff"}}});
       },
       absl::StatusCode::kDataLoss,
       {},
       "does not parse",
       2,
       RecoveryMode::kSalvage});
  return rules;
}

class FormatRulesTest : public ::testing::TestWithParam<Rule> {};

TEST_P(FormatRulesTest, WalctlAndOpenAgreeWithTheText) {
  const Rule& rule = GetParam();
  Dir dir(rule.name);
  ASSERT_NO_FATAL_FAILURE(rule.build(dir));

  RunResult v = RunWalctl({"verify", dir.path(), "--json"});
  const bool want_open = rule.open_code == absl::StatusCode::kOk;
  google::protobuf::Value json = ParseJson(v.out);
  const auto& fields = json.struct_value().fields();
  ASSERT_TRUE(fields.count("opens")) << v.out << v.err;
  EXPECT_EQ(v.code, rule.verify_exit) << v.out << v.err;
  EXPECT_THAT(v.out + v.err, HasSubstr(rule.verify_says));
  // verify runs default recovery: it agrees with Open in the default mode.
  if (rule.mode == RecoveryMode::kTolerateTornTail) {
    EXPECT_EQ(fields.at("opens").bool_value(), want_open) << v.out;
  }

  Options options;
  options.background_thread = false;
  options.create_if_missing = false;
  options.recovery_mode = rule.mode;
  auto store = Store<GatewaySession>::Open(options, dir.path());
  if (!want_open) {
    ASSERT_FALSE(store.ok());
    EXPECT_EQ(store.status().code(), rule.open_code) << store.status();
    EXPECT_THAT(store.status().message(), HasSubstr(rule.error));
    return;
  }
  ASSERT_TRUE(store.ok()) << store.status();
  for (const auto& [id, value] : rule.sessions) {
    auto got = (*store)->Get(id);
    if (value.empty()) {
      EXPECT_FALSE(got.ok()) << id << " should be absent";
    } else {
      ASSERT_TRUE(got.ok()) << id << ": " << got.status();
      EXPECT_EQ(got->resolved_conversation_ttl(), value) << id;
    }
  }
  ASSERT_TRUE((*store)->Close().ok());
  store->reset();
  if (rule.after) rule.after(dir);
}

INSTANTIATE_TEST_SUITE_P(Format, FormatRulesTest, ::testing::ValuesIn(Rules()),
                         [](const ::testing::TestParamInfo<Rule>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace walctl_test
}  // namespace walstate
