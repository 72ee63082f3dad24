#include "engine/snapshot/snapshot_loader.h"

#include "absl/strings/str_cat.h"
#include "engine/log/format.h"
#include "engine/log/reader.h"
#include "proto/walstate/record.pb.h"

namespace walstate {

absl::StatusOr<LoadedSnapshot> LoadSnapshot(FileSystem* fs,
                                            const std::string& path,
                                            uint64_t expected_lsn,
                                            SessionTable* table) {
  auto reader = log::FileReader::Open(fs, path, log::RecoveryMode::kStrict,
                                      /*is_last=*/false);
  if (!reader.ok()) return reader.status();
  const log::FileHeader& header = (*reader)->header();
  if (header.kind != log::FileKind::kSnapshot ||
      header.file_number != expected_lsn) {
    return absl::DataLossError(
        absl::StrCat(path, ": not snapshot ", expected_lsn, " (kind ",
                     static_cast<uint32_t>(header.kind), ", number ",
                     header.file_number, ")"));
  }
  const Schema& schema = table->schema();
  record::SessionState session;
  record::SnapshotEnd end;
  LoadedSnapshot loaded;
  loaded.lsn = expected_lsn;
  bool ended = false;
  log::Record rec;
  while ((*reader)->Next(&rec)) {
    if (ended) {
      return absl::DataLossError(absl::StrCat(path, " offset ", rec.offset,
                                              ": record after the end record"));
    }
    if (rec.type == log::kSnapshotSession) {
      if (!session.ParseFromArray(rec.payload.data(),
                                  static_cast<int>(rec.payload.size()))) {
        return absl::DataLossError(absl::StrCat(
            path, " offset ", rec.offset, ": session record does not parse"));
      }
      auto state = schema.NewMessage();
      if (!state->ParseFromString(session.state())) {
        return absl::DataLossError(
            absl::StrCat(path, " offset ", rec.offset, ": state of session ",
                         session.session(), " does not parse as ",
                         schema.descriptor()->full_name()));
      }
      SessionTable::Shard& shard = table->ShardFor(session.session());
      std::lock_guard<std::mutex> lock(shard.mu);
      table->PutLocked(shard, session.session(), std::move(state));
      shard.sessions.find(session.session())->second.snapshot_lsn =
          session.lsn();
      ++loaded.sessions;
    } else if (rec.type == log::kSnapshotEnd) {
      if (!end.ParseFromArray(rec.payload.data(),
                              static_cast<int>(rec.payload.size())) ||
          end.lsn() != expected_lsn || end.sessions() != loaded.sessions) {
        return absl::DataLossError(absl::StrCat(
            path, " offset ", rec.offset,
            ": end record does not match (sessions ", end.sessions(), " vs ",
            loaded.sessions, " read, LSN ", end.lsn(), ")"));
      }
      ended = true;
    } else if (!log::IsOptionalType(rec.type)) {
      return absl::DataLossError(
          absl::StrCat(path, " offset ", rec.offset, ": unexpected ",
                       log::RecordTypeName(rec.type), " record in a snapshot"));
    }
  }
  if (!(*reader)->status().ok()) return (*reader)->status();
  if (!ended) {
    return absl::DataLossError(
        absl::StrCat(path, ": incomplete snapshot (no end record)"));
  }
  loaded.bytes = (*reader)->report().bytes;
  return loaded;
}

}  // namespace walstate
