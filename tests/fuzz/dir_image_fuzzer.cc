// Fuzzes whole data directories: segments, snapshots and MANIFEST together
// (the input framing is in fuzz_util.h). For each image:
//  1. Recover (engine/recovery.h) in every mode, and as of an earlier LSN:
//     read-only, and what a stricter mode accepts a more tolerant one
//     accepts with the same state.
//  2. Engine::Open in the image's mode on an in-memory file system (every
//     path it touches must stay inside the directory). It may refuse the
//     image, but only with a status; if it opens, its sessions are exactly
//     what Recover found, ForEach agrees with Get, Contains, Lookup and
//     stats().sessions.
//  3. Writes on top of the recovered state (an IMMEDIATE update, a batched
//     tick, a delete, optionally a compaction), Close, and Open again: the
//     reopened store holds exactly the expected sessions.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "engine/recovery.h"
#include "engine/state/schema.h"
#include "proto/example/gateway.pb.h"
#include "tests/fs/fault_injection_fs.h"
#include "tests/fuzz/fuzz_util.h"
#include "walstate/file_system.h"
#include "walstate/walstate.h"

namespace walstate {
namespace fuzz {
namespace {

using example::GatewaySession;

constexpr char kDir[] = "/db";

// Forwards to another FileSystem and aborts if a path leaves `dir` (a
// MANIFEST naming "../x" must not make the engine read or touch files
// elsewhere).
class PathGuardFileSystem : public FileSystem {
 public:
  PathGuardFileSystem(FileSystem* base, std::string dir)
      : base_(base), dir_(std::move(dir)) {}

  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::string& path) override {
    Check(path);
    return base_->NewWritableFile(path);
  }
  absl::StatusOr<std::unique_ptr<WritableFile>> ReopenWritableFile(
      const std::string& path) override {
    Check(path);
    return base_->ReopenWritableFile(path);
  }
  absl::StatusOr<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path) override {
    Check(path);
    return base_->NewRandomAccessFile(path);
  }
  absl::StatusOr<bool> FileExists(const std::string& path) override {
    Check(path);
    return base_->FileExists(path);
  }
  absl::StatusOr<std::vector<std::string>> ListDir(
      const std::string& dir) override {
    Check(dir);
    return base_->ListDir(dir);
  }
  absl::Status CreateDir(const std::string& dir) override {
    Check(dir);
    return base_->CreateDir(dir);
  }
  absl::Status DeleteFile(const std::string& path) override {
    Check(path);
    return base_->DeleteFile(path);
  }
  absl::Status RenameFile(const std::string& from,
                          const std::string& to) override {
    Check(from);
    Check(to);
    return base_->RenameFile(from, to);
  }
  absl::Status TruncateFile(const std::string& path, uint64_t size) override {
    Check(path);
    return base_->TruncateFile(path, size);
  }
  absl::StatusOr<uint64_t> FileSize(const std::string& path) override {
    Check(path);
    return base_->FileSize(path);
  }
  absl::Status SyncDir(const std::string& dir) override {
    // Open syncs the parent so that the directory's own name is durable.
    if (dir != ParentOf(dir_)) Check(dir);
    return base_->SyncDir(dir);
  }
  absl::StatusOr<std::unique_ptr<FileLock>> LockFile(
      const std::string& path, const std::string& owner) override {
    Check(path);
    return base_->LockFile(path, owner);
  }

 private:
  static std::string ParentOf(const std::string& dir) {
    const size_t slash = dir.find_last_of('/');
    if (slash == std::string::npos) return "";
    return slash == 0 ? "/" : dir.substr(0, slash);
  }

  void Check(const std::string& path) const {
    bool inside = path == dir_;
    if (!inside && path.size() > dir_.size() + 1 &&
        path.compare(0, dir_.size(), dir_) == 0 && path[dir_.size()] == '/') {
      inside = true;
      int depth = 0;
      for (absl::string_view part : absl::StrSplit(
               absl::string_view(path).substr(dir_.size() + 1), '/')) {
        if (part == "..") {
          --depth;
        } else if (!part.empty() && part != ".") {
          ++depth;
        }
        if (depth < 0) inside = false;
      }
    }
    FUZZ_CHECK(inside, absl::StrCat("path outside ", dir_, ": ", path));
  }

  FileSystem* const base_;
  const std::string dir_;
};

const Schema& GatewaySchema() {
  static const Schema* schema =
      Schema::FromPrototype(GatewaySession::default_instance(), BATCHED)
          .value()
          .release();
  return *schema;
}

// Session -> serialized state.
using Sessions = std::map<std::string, std::string>;

Sessions TableSessions(const SessionTable& table) {
  Sessions out;
  table.ForEach(
      [&](absl::string_view session, const google::protobuf::Message& state) {
        FUZZ_CHECK(out.emplace(session, state.SerializeAsString()).second);
      });
  FUZZ_CHECK(out.size() == table.size());
  return out;
}

// The engine's sessions through ForEach, cross-checked with Get, Contains,
// Lookup and stats().
Sessions EngineSessions(const Engine& engine) {
  Sessions out;
  std::vector<std::pair<std::string, std::string>> fingerprints;
  engine.ForEach(
      [&](absl::string_view session, const google::protobuf::Message& state) {
        FUZZ_CHECK(out.emplace(session, state.SerializeAsString()).second);
        const auto& s = static_cast<const GatewaySession&>(state);
        if (!s.fingerprint().empty()) {
          fingerprints.emplace_back(s.fingerprint(), std::string(session));
        }
      });
  FUZZ_CHECK(engine.stats().sessions == out.size(),
             absl::StrCat(engine.stats().sessions, " vs ", out.size()));
  GatewaySession copy;
  for (const auto& [session, bytes] : out) {
    FUZZ_CHECK(engine.Contains(session));
    absl::Status s = engine.Get(session, &copy);
    FUZZ_CHECK(s.ok(), s.ToString());
    FUZZ_CHECK(copy.SerializeAsString() == bytes, session);
  }
  for (const auto& [fingerprint, session] : fingerprints) {
    auto found = engine.Lookup("fingerprint", fingerprint);
    FUZZ_CHECK(found.ok(), found.status().ToString());
    bool present = false;
    for (const std::string& s : *found) {
      present |= s == session;
      FUZZ_CHECK(out.count(s) == 1, absl::StrCat("index names ", s));
    }
    FUZZ_CHECK(present, session);
  }
  return out;
}

// A lazy Open of a directory a parsing Open refused, or recovered from an
// older snapshot: it refuses only with a status, or opens, and then every
// session ForEach visits reads back (the others fail Get with DataLoss,
// checked through the count) and the store closes cleanly.
void CheckLazyOpen(const Options& options);

// WALSTATE_FUZZ_VERBOSE=1 prints what each step returned (for triage).
void Verbose(const std::string& line) {
  static const bool on = std::getenv("WALSTATE_FUZZ_VERBOSE") != nullptr;
  if (on) std::fprintf(stderr, "%s\n", line.c_str());
}

int ModeIndex(log::RecoveryMode mode) {
  for (int i = 0; i < 3; ++i) {
    if (kModes[i] == mode) return i;
  }
  return 1;
}

std::string Describe(const Sessions& a, const Sessions& b) {
  std::string out = absl::StrCat(a.size(), " vs ", b.size(), " sessions:");
  for (const auto& [k, v] : a) {
    auto it = b.find(k);
    if (it == b.end()) {
      absl::StrAppend(&out, " only-left:", k);
    } else if (it->second != v) {
      absl::StrAppend(&out, " differs:", k);
    }
  }
  for (const auto& [k, v] : b) {
    if (a.count(k) == 0) absl::StrAppend(&out, " only-right:", k);
  }
  return out;
}

void Check(absl::string_view input) {
  if (input.empty()) return;
  const Image image = DecodeImage(input);
  const bool compact = (static_cast<uint8_t>(input[0]) & 0x04) != 0;

  FaultInjectionFileSystem base;
  FUZZ_CHECK(base.CreateDirs(kDir).ok());
  for (const auto& [name, data] : ImageFiles(image)) {
    FUZZ_CHECK(base.WriteFileBytes(JoinPath(kDir, name), data).ok());
  }
  base.ResetOpLog();
  PathGuardFileSystem fs(&base, kDir);

  // 1. Recovery, read-only, in every mode.
  std::optional<Sessions> recovered[3];
  uint64_t last_lsn = 0;  // what tolerant recovery reached
  for (int m = 0; m < 3; ++m) {
    RecoveryOptions ropts;
    ropts.fs = &fs;
    ropts.dir = kDir;
    ropts.mode = kModes[m];
    ropts.workers = 1;  // on this thread; the pool is checked against it
    auto r = Recover(ropts, GatewaySchema());
    // The same recovery on a pool of workers (engine/state/apply_pool.h):
    // the same sessions, or the same error naming the same first damage.
    {
      RecoveryOptions popts = ropts;
      popts.workers = 3;
      auto p = Recover(popts, GatewaySchema());
      FUZZ_CHECK(p.ok() == r.ok(),
                 absl::StrCat("1 worker: ", r.status().ToString(),
                              "; 3 workers: ", p.status().ToString()));
      if (r.ok()) {
        FUZZ_CHECK(TableSessions(*p->table) == TableSessions(*r->table),
                   "1 and 3 workers recover different sessions");
        FUZZ_CHECK(p->report.last_lsn == r->report.last_lsn);
        FUZZ_CHECK(p->open_ticks == r->open_ticks);
      } else {
        FUZZ_CHECK(p.status() == r.status(),
                   absl::StrCat("1 worker: ", r.status().ToString(),
                                "; 3 workers: ", p.status().ToString()));
      }
    }
    Verbose(absl::StrCat("Recover ", log::RecoveryModeName(kModes[m]), ": ",
                         r.ok() ? absl::StrCat(r->table->size(), " sessions")
                                : r.status().ToString()));
    if (!r.ok()) {
      const absl::StatusCode code = r.status().code();
      FUZZ_CHECK(code == absl::StatusCode::kDataLoss ||
                     code == absl::StatusCode::kFailedPrecondition,
                 r.status().ToString());
      continue;
    }
    recovered[m] = TableSessions(*r->table);
    FUZZ_CHECK(r->report.sessions == recovered[m]->size());
    FUZZ_CHECK(r->next_lsn > r->report.last_lsn);
    if (kModes[m] == log::RecoveryMode::kTolerateTornTail) {
      last_lsn = r->report.last_lsn;
    }
  }
  // The state as of an earlier LSN (`walctl show --at-lsn`): a state that
  // stops there, or a refusal because the history before it is gone.
  if (last_lsn > 1) {
    RecoveryOptions ropts;
    ropts.fs = &fs;
    ropts.dir = kDir;
    ropts.stop_at_lsn = last_lsn / 2;
    auto r = Recover(ropts, GatewaySchema());
    if (r.ok()) {
      FUZZ_CHECK(r->report.last_lsn <= ropts.stop_at_lsn,
                 absl::StrCat(r->report.last_lsn, " > ", ropts.stop_at_lsn));
      TableSessions(*r->table);
    } else {
      const absl::StatusCode code = r.status().code();
      FUZZ_CHECK(code == absl::StatusCode::kDataLoss ||
                     code == absl::StatusCode::kFailedPrecondition,
                 r.status().ToString());
    }
  }
  FUZZ_CHECK(base.op_count() == 0, base.DumpOpLog());
  for (int m = 0; m + 1 < 3; ++m) {
    if (!recovered[m].has_value()) continue;
    FUZZ_CHECK(recovered[m + 1].has_value(),
               absl::StrCat(log::RecoveryModeName(kModes[m]),
                            " recovers, the more tolerant mode does not"));
    FUZZ_CHECK(*recovered[m] == *recovered[m + 1],
               absl::StrCat(log::RecoveryModeName(kModes[m]), ": ",
                            Describe(*recovered[m], *recovered[m + 1])));
  }

  // 2. Open.
  Options options;
  options.fs = &fs;
  options.create_if_missing = false;
  options.background_thread = false;
  options.recovery_mode = image.mode;
  options.clock = [] { return absl::FromUnixSeconds(1700000000); };
  const int mi = ModeIndex(image.mode);
  // First an Open that parses every state (what Recover does), then the
  // default lazy one (engine/state/lazy_state.h).
  options.lazy_recovery = false;
  auto opened = Engine::Open(options, GatewaySession::default_instance(), kDir);
  Verbose(absl::StrCat("Open ", log::RecoveryModeName(image.mode), ": ",
                       opened.status().ToString()));
  if (!opened.ok()) {
    // Only recovery's refusal, or a directory of another message type.
    const absl::Status& s = opened.status();
    if (recovered[mi].has_value()) {
      FUZZ_CHECK(
          s.code() == absl::StatusCode::kFailedPrecondition,
          absl::StrCat("Recover succeeded but Open failed: ", s.ToString()));
    } else {
      FUZZ_CHECK(s.code() == absl::StatusCode::kDataLoss ||
                     s.code() == absl::StatusCode::kFailedPrecondition,
                 s.ToString());
    }
    // A lazy Open may accept what a parsing one refused: bytes that verify
    // but do not parse are found on their session's first use.
    options.lazy_recovery = true;
    CheckLazyOpen(options);
    return;
  }
  std::unique_ptr<Engine> engine = std::move(*opened);
  FUZZ_CHECK(recovered[mi].has_value(), "Open accepted what Recover refused");
  Sessions expected = EngineSessions(*engine);
  FUZZ_CHECK(expected == *recovered[mi], Describe(expected, *recovered[mi]));
  FUZZ_CHECK(engine->recovery_report().sessions == expected.size());
  FUZZ_CHECK(engine->health().ok(), engine->health().ToString());
  // A parsing Open falls back to the previous snapshot when a state of the
  // newest does not parse; a lazy one does not see that at Open (the
  // session fails its first use instead), so it may hold other states.
  const bool fell_back = engine->recovery_report().fell_back;
  {
    absl::Status closed = engine->Close();
    FUZZ_CHECK(closed.ok(), closed.ToString());
  }
  engine.reset();
  // The lazy Open of what the parsing one accepted: the same sessions, Get
  // and index answers; the writes below then run on it.
  options.lazy_recovery = true;
  if (fell_back) {
    CheckLazyOpen(options);
    return;
  }
  auto lazy = Engine::Open(options, GatewaySession::default_instance(), kDir);
  FUZZ_CHECK(lazy.ok(), absl::StrCat("lazy Open after a parsing one: ",
                                     lazy.status().ToString()));
  engine = std::move(*lazy);
  {
    const Sessions lazily = EngineSessions(*engine);
    FUZZ_CHECK(lazily == expected, Describe(lazily, expected));
  }

  // 3. Write on top, close, reopen.
  const std::string probe = "fuzz-probe";
  std::string victim;
  for (const auto& [session, unused] : expected) {
    if (session != probe) {
      victim = session;
      break;
    }
  }
  if (!victim.empty()) {
    absl::Status s = engine->Delete(victim);
    FUZZ_CHECK(s.ok(), s.ToString());
    expected.erase(victim);
  }
  GatewaySession values;
  values.set_fingerprint("fuzz-fingerprint");
  absl::Status s = engine->Update(probe, values, {"fingerprint"});
  FUZZ_CHECK(s.ok(), s.ToString());
  values.set_resolved_conversation_ttl("1h");
  values.mutable_calibration()->set_last_layer(3);
  s = engine->Update(probe, values,
                     {"resolved_conversation_ttl", "calibration"});
  FUZZ_CHECK(s.ok(), s.ToString());
  s = engine->Flush();
  FUZZ_CHECK(s.ok(), s.ToString());
  if (compact) {
    s = engine->Compact();
    FUZZ_CHECK(s.ok(), s.ToString());
  }
  GatewaySession now;
  FUZZ_CHECK(engine->Get(probe, &now).ok());
  FUZZ_CHECK(now.fingerprint() == "fuzz-fingerprint");
  FUZZ_CHECK(now.resolved_conversation_ttl() == "1h");
  expected[probe] = now.SerializeAsString();
  s = engine->Close();
  FUZZ_CHECK(s.ok(), s.ToString());
  engine.reset();

  auto reopened =
      Engine::Open(options, GatewaySession::default_instance(), kDir);
  FUZZ_CHECK(reopened.ok(), absl::StrCat("reopen after a clean close: ",
                                         reopened.status().ToString()));
  const Sessions after = EngineSessions(**reopened);
  FUZZ_CHECK(after == expected, Describe(after, expected));
  s = (*reopened)->Close();
  FUZZ_CHECK(s.ok(), s.ToString());
}

void CheckLazyOpen(const Options& options) {
  auto lazy = Engine::Open(options, GatewaySession::default_instance(), kDir);
  Verbose(absl::StrCat("lazy Open: ", lazy.status().ToString()));
  if (!lazy.ok()) {
    FUZZ_CHECK(
        lazy.status().code() == absl::StatusCode::kDataLoss ||
            lazy.status().code() == absl::StatusCode::kFailedPrecondition,
        lazy.status().ToString());
    return;
  }
  Sessions readable;
  (*lazy)->ForEach(
      [&](absl::string_view session, const google::protobuf::Message& state) {
        readable.emplace(session, state.SerializeAsString());
      });
  GatewaySession copy;
  for (const auto& [session, bytes] : readable) {
    FUZZ_CHECK((*lazy)->Get(session, &copy).ok());
    FUZZ_CHECK(copy.SerializeAsString() == bytes);
  }
  FUZZ_CHECK(readable.size() <= (*lazy)->stats().sessions);
  FUZZ_CHECK((*lazy)->health().ok(), (*lazy)->health().ToString());
  absl::Status closed = (*lazy)->Close();
  FUZZ_CHECK(closed.ok(), closed.ToString());
}

}  // namespace
}  // namespace fuzz
}  // namespace walstate

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  walstate::fuzz::QuietProtobufLogging();
  walstate::fuzz::Check(
      absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
