// Whole-file checks shared by verify, stats and repair: snapshot files and the
// MANIFEST, beyond what the frame reader checks (kinds, counts, end records,
// that names and headers agree, that every payload decodes).
#ifndef WALSTATE_TOOLS_WALCTL_CHECKS_H_
#define WALSTATE_TOOLS_WALCTL_CHECKS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "proto/walstate/record.pb.h"
#include "tools/walctl/common.h"
#include "tools/walctl/decode.h"
#include "tools/walctl/scan.h"

namespace walstate {
namespace walctl {

struct SnapshotCheck {
  std::string file;
  uint64_t lsn = 0;  // from the name
  uint64_t bytes = 0;
  uint64_t sessions = 0;          // kSnapshotSession records read
  bool complete = false;          // ends with a matching kSnapshotEnd
  std::vector<Finding> findings;  // all kDamage
  bool ok() const { return complete && findings.empty(); }
};

// Reads snapshot `name` (taken at `lsn`) completely. `on_progress`, if set,
// is called with the bytes read so far after each record.
SnapshotCheck CheckSnapshot(
    FileSystem* fs, const std::string& dir, const std::string& name,
    uint64_t lsn, Decoder* decoder,
    const std::function<void(uint64_t)>& on_progress = nullptr);

struct ManifestCheck {
  bool present = false;
  bool ok = false;  // readable and decodes
  record::Manifest manifest;
  uint64_t bytes = 0;
  std::vector<Finding> findings;
};

// Reads MANIFEST (if present) and checks it holds exactly one manifest
// record. Does not look at the snapshots it names.
ManifestCheck CheckManifest(FileSystem* fs, const std::string& dir);

}  // namespace walctl
}  // namespace walstate

#endif  // WALSTATE_TOOLS_WALCTL_CHECKS_H_
