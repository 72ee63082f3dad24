// A probe, not a benchmark of anything walstate does today: what would Open
// cost if session state stayed serialized until first written (lazy state)?
// It writes a data directory of --sessions sessions (snapshot) plus a
// --tail of turn updates with the engine, then alternates, --rounds times:
//   open:  walstate's Store::Open as it is (parse every state, apply every
//          record, build the indexes), on --threads recovery threads;
//   lazy:  what a lazy Open would have to do at least, on one thread: read
//          and verify every frame of the snapshot and the log after it (both
//          replay passes), copy each session's state bytes into its own
//          heap block keyed by id, and apply each committed update by
//          splicing its values into the state bytes at the wire level (the
//          listed top-level fields dropped, the record's appended: the same
//          result as parsing and setting them), then index the two indexed
//          fields by scanning the bytes.
// It prints both times and the lazy table's heap bytes per session. The
// lazy path skips what a real one would still need (per-session error
// positions, unknown-field bookkeeping, a second thread), so it is a floor
// for that design, not a promise.
//
//   bazel run -c opt //bench:lazy_open_probe -- --sessions 1000000
//       --tail 1000000   (one command line)
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "bench/workload.h"
#include "engine/log/format.h"
#include "engine/log/reader.h"
#include "engine/snapshot/manifest.h"
#include "engine/state/update_codec.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "proto/walstate/record.pb.h"
#include "walstate/walstate.h"

ABSL_FLAG(uint64_t, sessions, 200000, "sessions in the snapshot");
ABSL_FLAG(uint64_t, tail, 200000, "turn updates in the log after it");
ABSL_FLAG(int, rounds, 3, "alternations of open and lazy");
ABSL_FLAG(int, threads, 0, "walstate recovery threads (0: one per core)");
ABSL_FLAG(std::string, dir, "", "data directory (default: a new temp dir)");
ABSL_FLAG(bool, reuse, false,
          "open --dir as it is, without building it (an earlier run's "
          "directory): each run is then a fresh process's Open, as at a "
          "restart");
ABSL_FLAG(bool, open_only, false,
          "time Store::Open only (no lazy pass), printing its recovery "
          "phases: for profiling a fresh process's Open");

namespace walstate {
namespace bench {
namespace {

using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedInputStream;

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
      .count();
}

void Check(const absl::Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "lazy_open_probe: %s\n", s.ToString().c_str());
    std::exit(1);
  }
}

size_t HeapBytes() {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

void Build(const std::string& dir, uint64_t sessions, uint64_t tail) {
  const Workload w(WorkloadConfig::Small());
  Options o;
  o.background_thread = false;
  o.compaction_min_log_bytes = ~0ull >> 2;
  auto store = Store<GatewaySession>::Open(o, dir);
  Check(store.status());
  UpdateOptions batched;
  batched.durability = BATCHED;
  GatewaySession s;
  for (uint64_t i = 0; i < sessions; ++i) {
    s.Clear();
    w.Expected(i, 0, &s);
    Check((*store)->Update(w.SessionId(i), std::move(s), FieldNames(kAllFields),
                           batched));
    if ((i + 1) % 10000 == 0) Check((*store)->Flush());
  }
  Check((*store)->Flush());
  Check((*store)->Compact());
  uint64_t stride = 7919;
  while (sessions % stride == 0) ++stride;
  for (uint64_t k = 0; k < tail; ++k) {
    const uint64_t index = k * stride % sessions;
    const int32_t version = static_cast<int32_t>(k / sessions) + 1;
    s.Clear();
    w.Turn(index, version, &s);
    Check((*store)->Update(w.SessionId(index), std::move(s),
                           FieldNames(w.TurnMask(version)), batched));
    if ((k + 1) % 10000 == 0) Check((*store)->Flush());
  }
  Check((*store)->Flush());
  Check((*store)->Close());
}

// A session as a lazy table would hold it: its id and serialized state.
struct Cold {
  std::string id;
  std::string state;
};

// Top-level fields of `state` not in `numbers`, then `values`.
bool Splice(absl::string_view state, absl::string_view values,
            absl::Span<const uint32_t> numbers, std::string* out) {
  out->clear();
  out->reserve(state.size() + values.size());
  CodedInputStream in(reinterpret_cast<const uint8_t*>(state.data()),
                      static_cast<int>(state.size()));
  int start = 0;
  while (uint32_t tag = in.ReadTag()) {
    if (!WireFormatLite::SkipField(&in, tag)) return false;
    const int end = in.CurrentPosition();
    const uint32_t number =
        static_cast<uint32_t>(WireFormatLite::GetTagFieldNumber(tag));
    if (std::find(numbers.begin(), numbers.end(), number) == numbers.end()) {
      out->append(state.data() + start, end - start);
    }
    start = end;
  }
  out->append(values.data(), values.size());
  return true;
}

// The value of top-level length-delimited field `number` (last one wins).
absl::string_view StringField(absl::string_view state, uint32_t number) {
  CodedInputStream in(reinterpret_cast<const uint8_t*>(state.data()),
                      static_cast<int>(state.size()));
  absl::string_view found;
  while (uint32_t tag = in.ReadTag()) {
    if (WireFormatLite::GetTagFieldNumber(tag) == static_cast<int>(number) &&
        WireFormatLite::GetTagWireType(tag) ==
            WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      uint32_t size;
      if (!in.ReadVarint32(&size)) return found;
      const void* data;
      int avail;
      if (!in.GetDirectBufferPointer(&data, &avail) ||
          avail < static_cast<int>(size)) {
        return found;
      }
      found = absl::string_view(static_cast<const char*>(data), size);
      in.Skip(static_cast<int>(size));
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return found;
    }
  }
  return found;
}

struct LazyResult {
  double seconds = 0;
  // Phases: snapshot, the log's two passes, the indexes.
  double snapshot_s = 0, scan_s = 0, apply_s = 0, index_s = 0;
  size_t sessions = 0;
  uint64_t records = 0;
  double heap_bytes_per_session = 0;
};

LazyResult LazyOpen(const std::string& dir) {
  LazyResult result;
  const size_t heap0 = HeapBytes();
  const auto t0 = std::chrono::steady_clock::now();
  auto manifest = ReadManifest(FileSystem::Default(), dir);
  Check(manifest.status());
  const auto& ref = manifest->current();
  using Table = absl::flat_hash_map<absl::string_view, Cold*>;
  auto table = std::make_unique<Table>();
  table->reserve(ref.sessions());
  {
    auto reader =
        log::FileReader::Open(FileSystem::Default(), JoinPath(dir, ref.file()),
                              log::RecoveryMode::kStrict, /*is_last=*/false);
    Check(reader.status());
    log::Record rec;
    record::SessionState st;
    while ((*reader)->Next(&rec)) {
      if (rec.type != log::kSnapshotSession) continue;
      // The fields by hand, as a lazy loader would: views, no message.
      CodedInputStream in(reinterpret_cast<const uint8_t*>(rec.payload.data()),
                          static_cast<int>(rec.payload.size()));
      absl::string_view id, state;
      while (uint32_t tag = in.ReadTag()) {
        const int n = WireFormatLite::GetTagFieldNumber(tag);
        if ((n == 1 || n == 2) &&
            WireFormatLite::GetTagWireType(tag) ==
                WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
          uint32_t size;
          const void* data;
          int avail;
          if (!in.ReadVarint32(&size) ||
              !in.GetDirectBufferPointer(&data, &avail) ||
              avail < static_cast<int>(size)) {
            break;
          }
          (n == 1 ? id : state) =
              absl::string_view(static_cast<const char*>(data), size);
          in.Skip(static_cast<int>(size));
        } else if (!WireFormatLite::SkipField(&in, tag)) {
          break;
        }
      }
      Cold* c = new Cold{std::string(id), std::string(state)};
      (*table)[c->id] = c;
    }
    Check((*reader)->status());
  }
  log::LogReaderOptions ropts;
  ropts.fs = FileSystem::Default();
  ropts.dir = dir;
  ropts.start_lsn = ref.lsn() + 1;
  ropts.start_hint_segment = ref.log_segment();
  ropts.start_hint_offset = ref.log_offset();
  result.snapshot_s = Seconds(t0);
  absl::flat_hash_set<uint64_t> committed;
  {
    auto scan = log::LogReader::Open(ropts);
    Check(scan.status());
    log::Record rec;
    record::TickEnd end;
    while ((*scan)->Next(&rec)) {
      if (rec.type == log::kTickCommit &&
          end.ParseFromArray(rec.payload.data(),
                             static_cast<int>(rec.payload.size()))) {
        committed.insert(end.tick());
      }
    }
    Check((*scan)->status());
  }
  result.scan_s = Seconds(t0) - result.snapshot_s;
  {
    auto reader = log::LogReader::Open(ropts);
    Check(reader.status());
    log::Record rec;
    UpdateView view;
    std::string spliced;
    while ((*reader)->Next(&rec)) {
      if (rec.type != log::kUpdate && rec.type != log::kTickEntry) continue;
      if (!DecodeUpdate(rec.payload, &view))
        Check(absl::DataLossError("update"));
      if (rec.type == log::kTickEntry && !committed.contains(view.tick)) {
        continue;
      }
      auto it = table->find(view.session);
      Cold* c;
      if (it == table->end()) {
        c = new Cold{std::string(view.session), ""};
        (*table)[c->id] = c;
      } else {
        c = it->second;
      }
      if (!Splice(c->state, view.values, view.fields, &spliced)) {
        Check(absl::DataLossError("state"));
      }
      c->state.assign(spliced);
      ++result.records;
    }
    Check((*reader)->status());
  }
  result.apply_s = Seconds(t0) - result.snapshot_s - result.scan_s;
  // The two indexed fields (fingerprint 1, header_session_id 2).
  absl::flat_hash_set<absl::string_view> by_fingerprint, by_header;
  by_fingerprint.reserve(table->size());
  by_header.reserve(table->size());
  for (const auto& [id, c] : *table) {
    by_fingerprint.insert(StringField(c->state, 1));
    by_header.insert(StringField(c->state, 2));
  }
  result.seconds = Seconds(t0);
  result.index_s =
      result.seconds - result.snapshot_s - result.scan_s - result.apply_s;
  result.sessions = table->size();
  result.heap_bytes_per_session = static_cast<double>(HeapBytes() - heap0) /
                                  std::max<size_t>(1, result.sessions);
  for (const auto& [id, c] : *table) delete c;
  return result;
}

int Main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::string dir = absl::GetFlag(FLAGS_dir);
  if (dir.empty()) {
    char tmpl[] = "/tmp/lazy-open-probe-XXXXXX";
    dir = mkdtemp(tmpl);
    dir += "/db";
  }
  const uint64_t sessions = absl::GetFlag(FLAGS_sessions);
  const uint64_t tail = absl::GetFlag(FLAGS_tail);
  if (absl::GetFlag(FLAGS_reuse)) {
    if (absl::GetFlag(FLAGS_dir).empty()) {
      std::fprintf(stderr, "--reuse needs --dir\n");
      return 2;
    }
    std::printf("opening %s as it is\n", dir.c_str());
  } else {
    std::printf("building %lu sessions + %lu tail records in %s\n",
                static_cast<unsigned long>(sessions),
                static_cast<unsigned long>(tail), dir.c_str());
    Build(dir, sessions, tail);
  }
  std::vector<double> open_s, lazy_s;
  for (int r = 0; r < absl::GetFlag(FLAGS_rounds); ++r) {
    Options o;
    o.background_thread = false;
    o.compaction_min_log_bytes = ~0ull >> 2;
    o.recovery_threads = absl::GetFlag(FLAGS_threads);
    const size_t heap0 = HeapBytes();
    auto t0 = std::chrono::steady_clock::now();
    auto store = Store<GatewaySession>::Open(o, dir);
    const double open = Seconds(t0);
    Check(store.status());
    const RecoveryReport rep = (*store)->recovery_report();
    // Heap plus the snapshot file a lazy Open mapped.
    const double open_heap =
        static_cast<double>(HeapBytes() - heap0 +
                            (*store)->stats().lazy_mapped_bytes) /
        rep.sessions;
    if (absl::GetFlag(FLAGS_open_only)) {
      // Neither closed nor freed: a profile should show the Open only.
      (void)store->release();
      std::printf(
          "round %d: open %.3f s (snapshot %.3f, log %.3f, indexes %.3f; "
          "%.0f B/session)\n",
          r, open, absl::ToDoubleSeconds(rep.snapshot_duration),
          absl::ToDoubleSeconds(rep.replay_duration),
          absl::ToDoubleSeconds(rep.index_duration), open_heap);
      open_s.push_back(open);
      continue;
    }
    Check((*store)->Close());
    store->reset();
    LazyResult lazy = LazyOpen(dir);
    open_s.push_back(open);
    lazy_s.push_back(lazy.seconds);
    std::printf(
        "round %d: open %.3f s (%.0f B/session), lazy %.3f s (snapshot "
        "%.3f, scan %.3f, apply %.3f, indexes %.3f; %.0f B/session, %zu "
        "sessions, %lu records), lazy/open %.2f\n",
        r, open, open_heap, lazy.seconds, lazy.snapshot_s, lazy.scan_s,
        lazy.apply_s, lazy.index_s, lazy.heap_bytes_per_session, lazy.sessions,
        static_cast<unsigned long>(lazy.records), lazy.seconds / open);
  }
  std::sort(open_s.begin(), open_s.end());
  if (lazy_s.empty()) {
    std::printf("median: open %.3f s\n", open_s[open_s.size() / 2]);
    std::fflush(stdout);
    // The stores were not freed (see above): leave without running
    // destructors, so that a profile of this process is its Opens.
    std::_Exit(0);
  }
  std::sort(lazy_s.begin(), lazy_s.end());
  std::printf("median: open %.3f s, lazy %.3f s, lazy/open %.2f\n",
              open_s[open_s.size() / 2], lazy_s[lazy_s.size() / 2],
              lazy_s[lazy_s.size() / 2] / open_s[open_s.size() / 2]);
  return 0;
}

}  // namespace
}  // namespace bench
}  // namespace walstate

int main(int argc, char** argv) { return walstate::bench::Main(argc, argv); }
