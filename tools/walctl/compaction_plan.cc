#include "tools/walctl/compaction_plan.h"

#include "absl/strings/str_cat.h"
#include "engine/log/format.h"

namespace walstate {
namespace walctl {

bool UnchangedSinceSnapshot(const RecoveredState& state,
                            const DirEntries& entries, std::string* why) {
  const RecoveryReport& r = state.report;
  if (!state.has_manifest || !state.manifest.has_current()) {
    *why = "no snapshot yet";
    return false;
  }
  if (r.fell_back) {
    *why = "the store opens from its previous snapshot";
    return false;
  }
  const uint64_t last_lsn = state.next_lsn - 1;
  const uint64_t snapshot_lsn = state.manifest.current().lsn();
  if (last_lsn != snapshot_lsn) {
    *why = absl::StrCat("records up to lsn ", last_lsn,
                        " follow the snapshot at lsn ", snapshot_lsn);
    return false;
  }
  if (!r.torn_file.empty() || !state.torn_header_segments.empty() ||
      r.torn_bytes_dropped > 0) {
    *why = "opening the store cuts a torn tail";
    return false;
  }
  if (!state.open_ticks.empty()) {
    *why = "opening the store closes a tick a crash left open";
    return false;
  }
  if (!entries.tmp_files.empty()) {
    *why = "opening the store removes its own temporaries";
    return false;
  }
  *why =
      absl::StrCat("no record since snapshot ", state.manifest.current().file(),
                   " at lsn ", snapshot_lsn);
  return true;
}

CompactionDeletes PlanCompactionDeletes(FileSystem* fs, const std::string& dir,
                                        const RecoveredState& state,
                                        const DirEntries& entries) {
  CompactionDeletes out;
  std::string why;
  if (UnchangedSinceSnapshot(state, entries, &why)) return out;
  auto add = [&](const std::string& name) {
    absl::StatusOr<uint64_t> size = fs->FileSize(JoinPath(dir, name));
    if (!size.ok()) return;  // not there: nothing to delete
    out.files.push_back(name);
    out.bytes += *size;
  };
  const record::Manifest& m = state.manifest;
  // The snapshot that becomes the new one's previous: the one recovery used
  // (the MANIFEST's current, or after a fallback its previous). Of the
  // snapshots the MANIFEST names, the other one goes (after a fallback the
  // failed current is moved to the backup folder: out of the store too).
  uint64_t keep_after = 0;
  bool has_keep = false;
  if (state.has_manifest && m.has_current()) {
    const bool fell_back = state.report.fell_back &&
                           state.report.snapshot_file == m.previous().file() &&
                           !m.previous().file().empty();
    const auto& kept = fell_back ? m.previous() : m.current();
    const auto& dropped = fell_back ? m.current() : m.previous();
    keep_after = kept.lsn();
    has_keep = true;
    uint64_t lsn = 0;
    if (!dropped.file().empty() && dropped.file() != kept.file() &&
        log::ParseSnapshotFileName(dropped.file(), &lsn)) {
      add(dropped.file());
    }
  }
  // The log after the kept snapshot stays; a segment goes when every record
  // in it precedes that snapshot, judged by the next segment's first LSN
  // (for the last segment: the new one Open starts at the next LSN).
  if (has_keep) {
    const auto& segs = entries.segments;
    for (size_t i = 0; i < segs.size(); ++i) {
      uint64_t next_first = state.next_lsn;
      if (i + 1 < segs.size()) {
        absl::StatusOr<HeaderInfo> next =
            ReadHeader(fs, JoinPath(dir, segs[i + 1].name));
        if (!next.ok() || next->status != log::HeaderStatus::kOk) break;
        next_first = next->header.first_lsn;
      }
      if (next_first - 1 > keep_after) break;
      add(segs[i].name);
    }
  }
  return out;
}

}  // namespace walctl
}  // namespace walstate
