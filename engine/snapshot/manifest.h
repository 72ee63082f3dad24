// The MANIFEST names the published snapshots. It is replaced atomically:
// written to MANIFEST.tmp, synced, renamed over MANIFEST, directory synced.
// A snapshot file that the MANIFEST does not name was never published and is
// ignored (and removed by the next Open).
#ifndef WALSTATE_ENGINE_SNAPSHOT_MANIFEST_H_
#define WALSTATE_ENGINE_SNAPSHOT_MANIFEST_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/walstate/record.pb.h"
#include "walstate/file_system.h"

namespace walstate {

// Reads DIR/MANIFEST. NotFound if there is none; DataLoss naming the file if
// it is damaged.
absl::StatusOr<record::Manifest> ReadManifest(FileSystem* fs,
                                              const std::string& dir);

// Publishes `manifest` atomically (see above).
absl::Status WriteManifest(FileSystem* fs, const std::string& dir,
                           const record::Manifest& manifest);

}  // namespace walstate

#endif  // WALSTATE_ENGINE_SNAPSHOT_MANIFEST_H_
