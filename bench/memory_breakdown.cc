// Where walstate's heap goes after recovery: builds a store of N gateway
// sessions the way `peers --scenarios recovery` does (load, compact, close),
// then measures the heap (mallinfo2, as bench/harness.cc does) held after
//  - Engine Open (what the benchmark reports), and
//  - Recover() alone, taken apart piece by piece: the parsed states are
//    freed first, then the table (nodes, shard maps, indexes), each drop
//    measured, so that what is left is whatever recovery kept besides.
//
//   bazel-bin/bench/memory_breakdown --sessions 1000000
#include <malloc.h>

#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "bench/harness.h"
#include "bench/workload.h"
#include "engine/recovery.h"
#include "engine/state/schema.h"
#include "walstate/file_system.h"
#include "walstate/walstate.h"

ABSL_FLAG(uint64_t, sessions, 200000, "sessions in the store");
ABSL_FLAG(std::string, dir, "", "store directory (default: a temp dir)");

namespace walstate {
namespace bench {
namespace {

void Check(const absl::Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    std::abort();
  }
}

int Main() {
  const uint64_t n = absl::GetFlag(FLAGS_sessions);
  std::string dir = absl::GetFlag(FLAGS_dir);
  if (dir.empty()) dir = MakeTempDir("membreak");
  const Workload w(WorkloadConfig::Small());
  Options options;
  options.background_thread = false;
  {
    auto store = Store<GatewaySession>::Open(options, dir);
    Check(store.status());
    GatewaySession s;
    for (uint64_t i = 0; i < n; ++i) {
      s.Clear();
      w.Expected(i, 0, &s);
      UpdateOptions o;
      o.durability = BATCHED;
      Check((*store)->Update(w.SessionId(i), std::move(s),
                             FieldNames(kAllFields), o));
      if ((i + 1) % 100000 == 0) Check((*store)->Flush());
    }
    Check((*store)->Flush());
    Check((*store)->Compact());
    Check((*store)->Close());
  }
  auto per = [&](double bytes) { return bytes / static_cast<double>(n); };

  // What the benchmark measures.
  double open_delta = 0;
  {
    const uint64_t h0 = HeapBytes();
    auto store = Store<GatewaySession>::Open(options, dir);
    Check(store.status());
    open_delta = static_cast<double>(HeapBytes()) - h0;
    Check((*store)->Close());
  }

  // Recover() alone, taken apart.
  auto schema = Schema::FromPrototype(GatewaySession::default_instance(),
                                      options.default_durability);
  Check(schema.status());
  RecoveryOptions ropts;
  ropts.fs = FileSystem::Default();
  ropts.dir = dir;
  const uint64_t h0 = HeapBytes();
  auto recovered = Recover(ropts, **schema);
  Check(recovered.status());
  const uint64_t h1 = HeapBytes();
  SessionTable& table = *recovered->table;
  const uint64_t approx = table.ApproximateMemory();
  uint64_t slots = 0, dirty_cap = 0, node_bytes = 0;
  for (size_t i = 0; i < table.shard_count(); ++i) {
    const SessionTable::Shard& shard = table.shard(i);
    slots += shard.sessions.bucket_count();
    dirty_cap += shard.dirty.capacity();
    for (const SessionTable::Node* node : shard.sessions) {
      node_bytes += malloc_usable_size(const_cast<SessionTable::Node*>(node)) +
                    8;  // glibc's chunk header
    }
  }
  for (size_t i = 0; i < table.shard_count(); ++i) {
    for (SessionTable::Node* node : table.shard(i).sessions) {
      node->entry.state.reset();
    }
  }
  const uint64_t h2 = HeapBytes();
  recovered->table.reset();
  const uint64_t h3 = HeapBytes();
  const double states = static_cast<double>(h1) - h2;
  const double table_bytes = static_cast<double>(h2) - h3;
  const double map_bytes =
      slots * (sizeof(SessionTable::Sessions::value_type) + 1.0);
  const double other_table = table_bytes - node_bytes - map_bytes;
  const double rest = static_cast<double>(h3) - h0;
  std::printf("sessions %lu\n", static_cast<unsigned long>(n));
  std::printf("Engine Open delta        %8.1f B/session\n", per(open_delta));
  std::printf("Recover() delta          %8.1f B/session\n",
              per(static_cast<double>(h1) - h0));
  std::printf("  parsed states          %8.1f\n", per(states));
  std::printf("  table                  %8.1f\n", per(table_bytes));
  std::printf("    nodes (chunks)       %8.1f  (%.1f B a node)\n",
              per(node_bytes), static_cast<double>(node_bytes) / n);
  std::printf("    shard maps (slots)   %8.1f  (%lu slots, load %.2f)\n",
              per(map_bytes), static_cast<unsigned long>(slots),
              static_cast<double>(n) / slots);
  std::printf("    indexes and other    %8.1f  (dirty capacity %lu)\n",
              per(other_table), static_cast<unsigned long>(dirty_cap));
  std::printf("  left after the table   %8.1f\n", per(rest));
  std::printf("Open - Recover (engine)  %8.1f\n",
              per(open_delta - (static_cast<double>(h1) - h0)));
  std::printf("ApproximateMemory()      %8.1f\n", per(approx));
  recovered = absl::InternalError("done");
  RemoveTree(dir);
  return 0;
}

}  // namespace
}  // namespace bench
}  // namespace walstate

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return walstate::bench::Main();
}
