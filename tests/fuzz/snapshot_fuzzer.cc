// Fuzzes the snapshot loader (engine/snapshot/snapshot_loader.h). The input
// is a snapshot file's bytes, loaded for the LSN its header names (and for
// another, which must fail), as is and with checksums fixed. Damage must give
// DataLoss, never a crash; a snapshot that loads must leave a consistent
// table (every session readable, indexes matching the states).
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/snapshot/snapshot_loader.h"
#include "engine/state/schema.h"
#include "engine/state/session_table.h"
#include "proto/example/gateway.pb.h"
#include "tests/fs/fault_injection_fs.h"
#include "tests/fuzz/fuzz_util.h"
#include "walstate/file_system.h"

namespace walstate {
namespace fuzz {
namespace {

const Schema& GatewaySchema() {
  static const Schema* schema =
      Schema::FromPrototype(example::GatewaySession::default_instance(),
                            BATCHED)
          .value()
          .release();
  return *schema;
}

// Every session is readable, and every indexed value leads back to it.
void CheckTable(const SessionTable& table) {
  const Schema& schema = table.schema();
  // ForEach holds a shard lock: collect first, check afterwards.
  std::map<std::string, std::string> states;
  std::vector<std::pair<std::string, std::string>> keys;  // (field, value)
  std::vector<std::string> key_owner;
  table.ForEach(
      [&](absl::string_view session, const google::protobuf::Message& state) {
        FUZZ_CHECK(states.emplace(session, state.SerializeAsString()).second);
        for (const Schema::Field* f : schema.indexed_fields()) {
          const std::string key = schema.IndexKey(state, *f);
          if (key.empty()) continue;
          keys.emplace_back(f->descriptor->name(), key);
          key_owner.emplace_back(session);
        }
      });
  FUZZ_CHECK(states.size() == table.size());
  auto copy = schema.NewMessage();
  for (const auto& [session, bytes] : states) {
    FUZZ_CHECK(table.Contains(session));
    FUZZ_CHECK(table.Get(session, copy.get()).ok());
    FUZZ_CHECK(copy->SerializeAsString() == bytes);
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    auto found = table.Lookup(keys[i].first, keys[i].second);
    FUZZ_CHECK(found.ok(), found.status().ToString());
    bool present = false;
    for (const std::string& s : *found) {
      present |= s == key_owner[i];
      FUZZ_CHECK(states.count(s) == 1, absl::StrCat("index names ", s));
    }
    FUZZ_CHECK(present, absl::StrCat("session ", key_owner[i], " not found by ",
                                     keys[i].first, "=", keys[i].second));
  }
}

void Check(absl::string_view data) {
  const std::string dir = "/d";
  const uint64_t lsn = HeaderFileNumber(data, /*fallback=*/1);
  const std::string path = JoinPath(dir, log::SnapshotFileName(lsn));
  FaultInjectionFileSystem fs;
  FUZZ_CHECK(fs.CreateDirs(dir).ok());
  FUZZ_CHECK(fs.WriteFileBytes(path, data).ok());

  SessionTable table(GatewaySchema());
  auto loaded = LoadSnapshot(&fs, path, lsn, &table);
  if (loaded.ok()) {
    FUZZ_CHECK(loaded->lsn == lsn);
    FUZZ_CHECK(loaded->bytes == data.size());
    // A session written twice is loaded twice but held once.
    FUZZ_CHECK(table.size() <= loaded->sessions);
    CheckTable(table);
  } else {
    FUZZ_CHECK(
        loaded.status().code() == absl::StatusCode::kDataLoss ||
            loaded.status().code() == absl::StatusCode::kFailedPrecondition,
        loaded.status().ToString());
  }

  // The same file is never snapshot `lsn + 1`.
  SessionTable other(GatewaySchema());
  auto wrong = LoadSnapshot(&fs, path, lsn + 1, &other);
  FUZZ_CHECK(!wrong.ok());
}

}  // namespace
}  // namespace fuzz
}  // namespace walstate

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using walstate::fuzz::Check;
  using walstate::fuzz::FixChecksums;
  walstate::fuzz::QuietProtobufLogging();
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  Check(input);
  const std::string fixed = FixChecksums(input);
  if (fixed != input) Check(fixed);
  return 0;
}
