#include "engine/replication/restore.h"

#include <xxhash.h>

#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/log/format.h"
#include "engine/log/reader.h"
#include "engine/log/writer.h"
#include "engine/replication/log_applier.h"
#include "engine/replication/wire.h"
#include "engine/snapshot/manifest.h"
#include "proto/walstate/record.pb.h"

namespace walstate {
namespace replication {

std::string RestoreReport::ToString() const {
  std::string out;
  if (snapshot_file.empty()) {
    absl::StrAppend(&out, "snapshot: none in the stream\n");
  } else {
    absl::StrAppend(&out, "snapshot: ", snapshot_file, " (LSN ", snapshot_lsn,
                    ", ", snapshot_sessions, " sessions, ", snapshot_bytes,
                    " bytes, every frame verified)\n");
  }
  absl::StrAppend(&out, "log: ", log_messages, " messages, ", records_verified,
                  " records verified, ", records_written,
                  " after the snapshot written; last LSN ", last_lsn, "\n");
  if (!last_writer.empty()) {
    absl::StrAppend(&out, "last writer: ", last_writer, "\n");
  }
  if (dropped_partial_bytes > 0) {
    absl::StrAppend(&out, "dropped: ", dropped_partial_bytes,
                    " bytes of a record a deposed writer never finished "
                    "(never acknowledged)\n");
  }
  return out;
}

absl::Status StreamSource::TailLog(
    uint64_t, absl::Duration,
    const std::function<absl::StatusOr<bool>(uint64_t, absl::string_view,
                                             absl::string_view)>&,
    const std::function<bool()>&) {
  return absl::UnimplementedError(
      absl::StrCat(Describe(), " cannot be followed (no TailLog)"));
}

namespace {

struct LogMessage {
  uint64_t seq = 0;
  std::string bytes;
};

// Removes what a failed restore wrote, so that `dir` is left as it was.
class Cleanup {
 public:
  Cleanup(FileSystem* fs, std::string dir) : fs_(fs), dir_(std::move(dir)) {}
  ~Cleanup() {
    if (done_) return;
    auto names = fs_->ListDir(dir_);
    if (!names.ok()) return;
    for (const std::string& name : *names) {
      (void)fs_->DeleteFile(JoinPath(dir_, name));
    }
    (void)fs_->SyncDir(dir_);
  }
  void Keep() { done_ = true; }

 private:
  FileSystem* fs_;
  std::string dir_;
  bool done_ = false;
};

absl::Status WriteWholeFile(FileSystem* fs, const std::string& path,
                            absl::string_view bytes) {
  auto file = fs->NewWritableFile(path);
  if (!file.ok()) return file.status();
  absl::Status s = (*file)->Append(bytes);
  if (s.ok()) s = (*file)->Sync();
  absl::Status c = (*file)->Close();
  return s.ok() ? c : s;
}

}  // namespace

absl::StatusOr<RestoredStore> RestoreAndKeepOpen(StreamSource* source,
                                                 FileSystem* fs,
                                                 const std::string& dir) {
  RestoreReport report;
  auto exists = fs->FileExists(dir);
  if (!exists.ok()) return exists.status();
  if (*exists) {
    auto names = fs->ListDir(dir);
    if (!names.ok()) return names.status();
    if (!names->empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "restore into ", dir,
          ": the directory is not empty; restore into a new directory (a "
          "restore never overwrites a store)"));
    }
  } else {
    absl::Status s = fs->CreateDir(dir);
    if (!s.ok()) return s;
  }
  Cleanup cleanup(fs, dir);

  // The log subject: claims, log messages and snapshot manifests, in order.
  std::vector<LogMessage> messages;
  int last_manifest = -1;
  std::string schema;
  absl::Status s = source->ReadLog(
      [&](uint64_t seq, absl::string_view msg, absl::string_view writer) {
        report.last_writer = std::string(writer);
        MessageHeader h;
        absl::string_view body;
        absl::Status d = DecodeMessage(msg, &h, &body);
        if (!d.ok()) {
          return absl::DataLossError(absl::StrCat(
              source->Describe(), " message ", seq, ": ", d.message(),
              ". The stream's copy is damaged; nothing was restored"));
        }
        if (h.kind == MessageKind::kSnapshotManifest) {
          last_manifest = static_cast<int>(messages.size());
        } else if (h.kind == MessageKind::kClaim) {
          std::string claimed;
          std::string claim_schema;
          d = DecodeClaim(body, &claimed, &claim_schema);
          // `walctl takeover` claims without a schema.
          if (!claim_schema.empty()) schema = claim_schema;
          if (!d.ok()) {
            return absl::DataLossError(absl::StrCat(
                source->Describe(), " message ", seq, ": ", d.message()));
          }
        }
        messages.push_back(LogMessage{seq, std::string(msg)});
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  if (messages.empty()) {
    return absl::NotFoundError(
        absl::StrCat(source->Describe(),
                     " holds no log message: nothing to restore (has a "
                     "writer with replication ever opened this store?)"));
  }

  // The newest snapshot, if any: chunks on the snapshot subject.
  if (last_manifest >= 0) {
    const LogMessage& m = messages[last_manifest];
    MessageHeader mh;
    absl::string_view body;
    (void)DecodeMessage(m.bytes, &mh, &body);
    SnapshotManifest manifest;
    s = DecodeSnapshotManifest(body, &manifest);
    if (!s.ok()) {
      return absl::DataLossError(absl::StrCat(source->Describe(), " message ",
                                              m.seq, ": ", s.message()));
    }
    std::string file;
    file.reserve(manifest.file_bytes);
    s = source->ReadSnapshot(
        manifest.first_chunk_seq,
        [&](uint64_t seq, absl::string_view msg) -> absl::StatusOr<bool> {
          MessageHeader h;
          absl::string_view chunk;
          absl::Status d = DecodeMessage(msg, &h, &chunk);
          if (!d.ok()) {
            return absl::DataLossError(absl::StrCat(source->Describe(),
                                                    " snapshot message ", seq,
                                                    ": ", d.message()));
          }
          // Chunks of another snapshot (another writer's) are skipped.
          if (h.kind != MessageKind::kSnapshotChunk ||
              h.first_lsn != manifest.lsn || h.last_lsn != mh.salt ||
              h.salt != file.size()) {
            return true;
          }
          file.append(chunk.data(), chunk.size());
          return file.size() < manifest.file_bytes;
        });
    if (!s.ok()) return s;
    if (file.size() != manifest.file_bytes ||
        XXH3_64bits(file.data(), file.size()) != manifest.file_hash) {
      return absl::DataLossError(absl::StrCat(
          source->Describe(), ": snapshot ", manifest.file_name, " (manifest ",
          "message ", m.seq, ") should be ", manifest.file_bytes,
          " bytes with checksum ", manifest.file_hash, "; the stream gave ",
          file.size(), " bytes",
          file.size() == manifest.file_bytes ? " with another checksum" : "",
          ". Nothing was restored"));
    }
    log::FileHeader header;
    std::string detail;
    if (log::DecodeFileHeader(file, &header, &detail) !=
            log::HeaderStatus::kOk ||
        header.kind != log::FileKind::kSnapshot) {
      return absl::DataLossError(
          absl::StrCat(source->Describe(), ": snapshot ", manifest.file_name,
                       " has a bad header (", detail, ")"));
    }
    schema = header.schema;
    const std::string path = JoinPath(dir, manifest.file_name);
    s = WriteWholeFile(fs, path, file);
    if (!s.ok()) return s;
    // Every frame of it checked as recovery checks it, and its sessions
    // counted for the MANIFEST.
    auto reader = log::FileReader::Open(fs, path, log::RecoveryMode::kStrict,
                                        /*is_last=*/false);
    if (!reader.ok()) return reader.status();
    log::Record rec;
    bool ended = false;
    while ((*reader)->Next(&rec)) {
      if (rec.type == log::kSnapshotSession) report.snapshot_sessions++;
      if (rec.type == log::kSnapshotEnd) ended = true;
    }
    if (!(*reader)->status().ok() || !ended) {
      return absl::DataLossError(absl::StrCat(
          source->Describe(), ": snapshot ", manifest.file_name, ": ",
          ended ? (*reader)->status().ToString() : "no end record",
          ". Nothing was restored"));
    }
    report.snapshot_file = manifest.file_name;
    report.snapshot_lsn = manifest.lsn;
    report.snapshot_bytes = file.size();
  }

  // Every log message's frames verified; records after the snapshot kept.
  auto applier = std::make_unique<LogApplier>(fs, dir, source->Describe(),
                                              report.snapshot_lsn, schema);
  for (const LogMessage& m : messages) {
    MessageHeader h;
    absl::string_view body;
    (void)DecodeMessage(m.bytes, &h, &body);
    s = applier->Apply(m.seq, h, body);
    if (!s.ok()) return s;
  }
  s = applier->Sync();
  if (!s.ok()) return s;
  report.log_messages = applier->log_messages();
  report.records_verified = applier->records_verified();
  report.records_written = applier->records_written();
  report.dropped_partial_bytes = applier->dropped_partial_bytes();
  report.last_lsn = applier->last_lsn();
  report.schema = schema;
  if (!report.snapshot_file.empty()) {
    record::Manifest manifest;
    manifest.set_generation(1);
    manifest.mutable_current()->set_file(report.snapshot_file);
    manifest.mutable_current()->set_lsn(report.snapshot_lsn);
    manifest.mutable_current()->set_bytes(report.snapshot_bytes);
    manifest.mutable_current()->set_sessions(report.snapshot_sessions);
    s = WriteManifest(fs, dir, manifest);
    if (!s.ok()) return s;
  }
  s = fs->SyncDir(dir);
  if (!s.ok()) return s;
  cleanup.Keep();
  RestoredStore out;
  out.report = std::move(report);
  out.applier = std::move(applier);
  out.next_seq = messages.back().seq + 1;
  return out;
}

absl::StatusOr<RestoreReport> Restore(StreamSource* source, FileSystem* fs,
                                      const std::string& dir) {
  auto restored = RestoreAndKeepOpen(source, fs, dir);
  if (!restored.ok()) return restored.status();
  // A record whose end never reached the stream was never acknowledged.
  restored->report.dropped_partial_bytes += restored->applier->DropPartial();
  absl::Status s = restored->applier->Close();
  if (!s.ok()) return s;
  return std::move(restored->report);
}

}  // namespace replication
}  // namespace walstate
