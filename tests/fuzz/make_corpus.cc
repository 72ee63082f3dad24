// Writes the seed corpus of the fuzz targets: real segments, snapshots,
// manifests and directory images produced by the engine on an in-memory
// FaultInjectionFileSystem, including crash states (torn tails, a tick cut
// in half, a compaction interrupted before its manifest).
//
//   bazel run //tests/fuzz:make_corpus -- $PWD/tests/fuzz/corpus
//
// Files are written into <out>/{reader,snapshot,manifest,dir_image}/; an
// existing file of the same name is replaced. Salts and creation times are
// random, so every run writes different bytes; commit one run.
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "engine/log/format.h"
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

#define RETURN_IF_ERROR(expr) \
  do {                        \
    absl::Status _s = (expr); \
    if (!_s.ok()) return _s;  \
  } while (0)

Options StoreOptions(FileSystem* fs) {
  Options o;
  o.fs = fs;
  o.background_thread = false;
  o.clock = [] { return absl::FromUnixSeconds(1700000000); };
  // Small segments, so that a short history spans several.
  o.max_segment_bytes = 2560;
  return o;
}

// name -> bytes of every file in `dir` (LOCK excluded: it only holds the
// owner's description).
std::map<std::string, std::string> DirFiles(const FaultInjectionFileSystem& fs,
                                            const std::string& dir) {
  std::map<std::string, std::string> out;
  const std::string prefix = std::string(dir) + "/";
  for (const std::string& path : fs.ListFiles()) {
    if (!absl::StartsWith(path, prefix)) continue;
    const std::string name = path.substr(prefix.size());
    if (name == log::kLockFileName) continue;
    out[name] = fs.ReadFileBytes(path).value();
  }
  return out;
}

std::string NewestSegment(const std::map<std::string, std::string>& files) {
  std::string out;
  for (const auto& [name, data] : files) {
    if (absl::StartsWith(name, "seg-")) out = data;
  }
  return out;
}

class Corpus {
 public:
  explicit Corpus(std::string out) : out_(std::move(out)) {}

  void Add(const std::string& target, const std::string& name,
           const std::string& data) {
    const std::string path = absl::StrCat(out_, "/", target, "/", name);
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!f) {
      std::fprintf(stderr, "cannot write %s\n", path.c_str());
      ok_ = false;
      return;
    }
    std::printf("%-60s %6zu bytes\n", path.c_str(), data.size());
  }

  // One directory image; `options` is the image's option byte.
  void AddImage(const std::string& name,
                const std::map<std::string, std::string>& files,
                log::RecoveryMode mode, bool compact, bool fix) {
    Image image;
    image.mode = mode;
    for (const auto& [file, data] : files) {
      ImageEntry e;
      e.kind = KindForName(file, data);
      e.fix_checksums = fix;
      e.data = data;
      if (e.kind == NameKind::kOther) continue;
      image.entries.push_back(std::move(e));
    }
    std::string bytes = EncodeImage(image);
    std::printf("image %s:", name.c_str());
    for (const auto& [file, data] : files) {
      std::printf(" %s(%zu)", file.c_str(), data.size());
    }
    std::printf("\n");
    if (compact) bytes[0] = static_cast<char>(bytes[0] | 0x04);
    Add("dir_image", name, bytes);
  }

  bool ok() const { return ok_; }

 private:
  const std::string out_;
  bool ok_ = true;
};

absl::Status Run(Corpus* corpus) {
  FaultInjectionFileSystem fs;
  RETURN_IF_ERROR(fs.CreateDirs(kDir));
  fs.ResetOpLog();
  auto opened =
      Engine::Open(StoreOptions(&fs), GatewaySession::default_instance(), kDir);
  if (!opened.ok()) return opened.status();
  Engine& engine = **opened;

  // Identity (IMMEDIATE), then batched ticks, a delete, a compaction.
  GatewaySession v;
  v.set_fingerprint("fp-1");
  v.set_header_session_id("hs-1");
  v.set_header_name("x-session-affinity");
  RETURN_IF_ERROR(engine.Update(
      "s1", v, {"fingerprint", "header_session_id", "header_name"}));
  v.Clear();
  v.set_fingerprint("fp-2");
  RETURN_IF_ERROR(engine.Update("s2", v, {"fingerprint"}));
  v.Clear();
  v.mutable_calibration()->set_last_layer(2);
  v.mutable_calibration()->set_bust_rate_ema(-1);
  v.set_resolved_conversation_ttl("5m");
  RETURN_IF_ERROR(
      engine.Update("s1", v, {"calibration", "resolved_conversation_ttl"}));
  v.Clear();
  v.mutable_cost()->set_conversation_turns(3);
  v.mutable_cost()->set_conversation_cost(0.25);
  RETURN_IF_ERROR(engine.Update("s2", v, {"cost"}));
  RETURN_IF_ERROR(engine.Flush());
  const auto early = DirFiles(fs, kDir);  // one segment, no snapshot

  RETURN_IF_ERROR(engine.Delete("s2"));
  RETURN_IF_ERROR(engine.Compact());
  const auto first_manifest = DirFiles(fs, kDir).at(log::kManifestFileName);

  v.Clear();
  v.set_header_name("x-other");
  RETURN_IF_ERROR(engine.Update("s1", v, {"header_name"}));
  v.Clear();
  v.mutable_warmup()->set_warmup_count(1);
  v.mutable_warmup()->set_last_warmup_at_ms(1700000000123);
  RETURN_IF_ERROR(engine.Update("s3", v, {"warmup"}));
  v.Clear();
  v.mutable_ltm()->set_cache_text(std::string(1500, 'c'));
  v.mutable_ltm()->set_cache_tokens(375);
  RETURN_IF_ERROR(engine.Update("s1", v, {"ltm"}));
  RETURN_IF_ERROR(engine.Flush());
  v.Clear();
  v.set_fingerprint("fp-3");
  RETURN_IF_ERROR(engine.Update("s3", v, {"fingerprint"}));

  // A tick whose records are written but not yet synced: crash states of it
  // cut the tick in half.
  const uint64_t before_tick = fs.op_count();
  v.Clear();
  v.mutable_cost()->set_worker_cost(1.5);
  v.mutable_warmup()->set_warmup_hits(2);
  RETURN_IF_ERROR(engine.Update("s1", v, {"cost", "warmup"}));
  RETURN_IF_ERROR(engine.Update("s3", v, {"cost"}));
  RETURN_IF_ERROR(engine.Flush());
  const uint64_t after_tick = fs.op_count();

  // A second compaction: MANIFEST with current and previous.
  const uint64_t before_compact = fs.op_count();
  RETURN_IF_ERROR(engine.Compact());
  const uint64_t after_compact = fs.op_count();
  v.Clear();
  v.set_fingerprint("fp-4");
  v.set_header_session_id("hs-4");
  RETURN_IF_ERROR(engine.Update("s4", v, {"fingerprint", "header_session_id"}));
  RETURN_IF_ERROR(engine.Delete("s3"));
  const auto last = DirFiles(fs, kDir);
  RETURN_IF_ERROR(engine.Close());

  // ---- reader: segments, a snapshot, a manifest, torn tails.
  int n = 0;
  for (const auto& [name, data] : last) {
    if (absl::StartsWith(name, "seg-")) {
      corpus->Add("reader", absl::StrCat("segment-", ++n), data);
    }
  }
  corpus->Add("reader", "segment-first", early.begin()->second);
  for (const auto& [name, data] : last) {
    if (absl::StartsWith(name, "snap-")) {
      corpus->Add("reader", "snapshot", data);
      break;
    }
  }
  corpus->Add("reader", "manifest", last.at(log::kManifestFileName));

  // Crash states in the middle of the tick: unsynced data cut at random
  // points (a torn tail, and a tick left open).
  std::vector<std::map<std::string, std::string>> torn;
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    auto state = fs.StateAtOp((before_tick + after_tick) / 2);
    if (!state.ok()) return state.status();
    FaultInjectionFileSystem::CrashOptions copts;
    copts.mode = FaultInjectionFileSystem::CrashMode::kTearSectors;
    copts.names = FaultInjectionFileSystem::NameLoss::kNone;
    copts.seed = seed;
    copts.sector_size = 64;
    torn.push_back(DirFiles(*(*state)->Crash(copts), kDir));
  }
  {
    auto state = fs.StateAtOp(after_tick - 1);  // before the tick's sync
    if (!state.ok()) return state.status();
    FaultInjectionFileSystem::CrashOptions copts;
    copts.mode = FaultInjectionFileSystem::CrashMode::kCutUnsynced;
    copts.names = FaultInjectionFileSystem::NameLoss::kNone;
    copts.seed = 7;
    torn.push_back(DirFiles(*(*state)->Crash(copts), kDir));
  }
  // The newest segment of a crash state holds the torn tail.
  corpus->Add("reader", "torn-sectors", NewestSegment(torn[0]));
  corpus->Add("reader", "cut-tick", NewestSegment(torn[3]));

  // ---- snapshot and manifest.
  n = 0;
  for (const auto& [name, data] : last) {
    if (absl::StartsWith(name, "snap-")) {
      corpus->Add("snapshot", absl::StrCat("snapshot-", ++n), data);
    }
  }
  corpus->Add("manifest", "generation-1", first_manifest);
  corpus->Add("manifest", "generation-2", last.at(log::kManifestFileName));

  // ---- directory images.
  using log::RecoveryMode;
  corpus->AddImage("early-strict", early, RecoveryMode::kStrict, false, false);
  corpus->AddImage("last-tolerant", last, RecoveryMode::kTolerateTornTail,
                   false, true);
  corpus->AddImage("last-salvage-compact", last, RecoveryMode::kSalvage, true,
                   true);
  corpus->AddImage("torn-sectors-tolerant", torn[1],
                   RecoveryMode::kTolerateTornTail, false, false);
  corpus->AddImage("torn-sectors-salvage", torn[2], RecoveryMode::kSalvage,
                   true, true);
  corpus->AddImage("cut-tick-tolerant", torn[3],
                   RecoveryMode::kTolerateTornTail, true, true);
  {
    // A compaction cut short: snapshot (or its .tmp) written, MANIFEST.tmp
    // perhaps, names not yet synced.
    auto state = fs.StateAtOp((before_compact + after_compact) / 2);
    if (!state.ok()) return state.status();
    FaultInjectionFileSystem::CrashOptions copts;
    copts.mode = FaultInjectionFileSystem::CrashMode::kCutUnsynced;
    copts.names = FaultInjectionFileSystem::NameLoss::kNone;
    copts.seed = 11;
    corpus->AddImage("mid-compaction", DirFiles(*(*state)->Crash(copts), kDir),
                     RecoveryMode::kTolerateTornTail, false, true);
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace fuzz
}  // namespace walstate

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR (tests/fuzz/corpus)\n", argv[0]);
    return 64;
  }
  walstate::fuzz::Corpus corpus(argv[1]);
  absl::Status s = walstate::fuzz::Run(&corpus);
  if (!s.ok()) {
    std::fprintf(stderr, "make_corpus: %s\n", s.ToString().c_str());
    return 1;
  }
  return corpus.ok() ? 0 : 1;
}
