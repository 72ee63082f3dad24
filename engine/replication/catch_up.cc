#include "engine/replication/catch_up.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "engine/log/format.h"
#include "engine/log/reader.h"

namespace walstate {
namespace replication {
namespace {

// Records re-framed per publish.
constexpr size_t kBatchBytes = 1 << 20;

}  // namespace

absl::Status CatchUp(Replicator* replicator, FileSystem* fs,
                     const std::string& dir, uint64_t stream_last_lsn,
                     uint64_t local_last_lsn,
                     const record::Manifest& manifest) {
  if (local_last_lsn <= stream_last_lsn) return absl::OkStatus();
  uint64_t next = stream_last_lsn + 1;  // the next LSN the stream needs
  log::LogReaderOptions ropts;
  ropts.fs = fs;
  ropts.dir = dir;
  ropts.start_lsn = next;
  auto reader = log::LogReader::Open(ropts);
  if (!reader.ok()) return reader.status();
  std::random_device rd;
  const uint64_t salt = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  std::string frames;
  uint64_t first = 0;
  uint64_t last = 0;
  auto flush = [&]() -> absl::Status {
    if (frames.empty()) return absl::OkStatus();
    absl::Status s = replicator->PublishLog(salt, first, last, frames);
    frames.clear();
    return s;
  };
  log::Record r;
  while ((*reader)->Next(&r)) {
    if (r.lsn < next) continue;
    if (r.lsn > next) {
      // The log starts later: the snapshot holds what came before.
      const auto& snap = manifest.current();
      if (!manifest.has_current() || snap.lsn() + 1 < r.lsn ||
          snap.lsn() < next) {
        return absl::FailedPreconditionError(absl::StrCat(
            "replication catch-up of ", dir, ": the stream ends at LSN ",
            stream_last_lsn, " and the local log resumes at LSN ", r.lsn,
            " with no snapshot in between; restore the directory from the "
            "stream or start a new stream"));
      }
      absl::Status s = replicator->PublishSnapshot(
          fs, JoinPath(dir, snap.file()), snap.lsn());
      if (!s.ok()) return s;
      next = snap.lsn() + 1;
      if (r.lsn < next) continue;
    }
    if (frames.empty()) first = r.lsn;
    log::EncodeRecord(salt, r.lsn, r.type, r.payload, &frames);
    last = r.lsn;
    next = r.lsn + 1;
    if (frames.size() >= kBatchBytes) {
      absl::Status s = flush();
      if (!s.ok()) return s;
    }
  }
  if (!(*reader)->status().ok()) return (*reader)->status();
  absl::Status s = flush();
  if (!s.ok()) return s;
  if (next <= local_last_lsn) {
    // Only a snapshot (no log record) holds the LSNs up to local_last_lsn.
    const auto& snap = manifest.current();
    if (manifest.has_current() && snap.lsn() >= next - 1 &&
        snap.lsn() >= local_last_lsn) {
      return replicator->PublishSnapshot(fs, JoinPath(dir, snap.file()),
                                         snap.lsn());
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "replication catch-up of ", dir, ": records ", next, "..",
        local_last_lsn, " are neither in the local log nor in a snapshot"));
  }
  return absl::OkStatus();
}

}  // namespace replication
}  // namespace walstate
