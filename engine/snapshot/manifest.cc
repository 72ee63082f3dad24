#include "engine/snapshot/manifest.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/fs/kill_point.h"
#include "engine/log/format.h"
#include "engine/log/reader.h"
#include "engine/snapshot/salt.h"

namespace walstate {

absl::StatusOr<record::Manifest> ReadManifest(FileSystem* fs,
                                              const std::string& dir) {
  const std::string path = JoinPath(dir, log::kManifestFileName);
  auto exists = fs->FileExists(path);
  if (!exists.ok()) return exists.status();
  if (!*exists) return absl::NotFoundError(absl::StrCat(path, " not found"));
  auto reader = log::FileReader::Open(fs, path, log::RecoveryMode::kStrict,
                                      /*is_last=*/false);
  if (!reader.ok()) return reader.status();
  const std::string advice =
      " (the MANIFEST is replaced atomically, so this is damage on disk; "
      "run `walctl verify` on the directory)";
  if ((*reader)->header().kind != log::FileKind::kManifest) {
    return absl::DataLossError(
        absl::StrCat(path, ": not a manifest file", advice));
  }
  log::Record rec;
  if (!(*reader)->Next(&rec)) {
    absl::Status s = (*reader)->status();
    return absl::DataLossError(absl::StrCat(
        path, ": no manifest record", s.ok() ? "" : ": ", s.message(), advice));
  }
  record::Manifest manifest;
  if (rec.type != log::kManifest ||
      !manifest.ParseFromArray(rec.payload.data(),
                               static_cast<int>(rec.payload.size()))) {
    return absl::DataLossError(absl::StrCat(path, " offset ", rec.offset,
                                            ": manifest record does not parse",
                                            advice));
  }
  return manifest;
}

absl::Status WriteManifest(FileSystem* fs, const std::string& dir,
                           const record::Manifest& manifest) {
  const std::string path = JoinPath(dir, log::kManifestFileName);
  const std::string tmp = path + ".tmp";
  log::FileHeader header;
  header.kind = log::FileKind::kManifest;
  header.file_number = manifest.generation();
  header.first_lsn = 1;
  header.salt = NewSalt();
  header.created_micros = absl::ToUnixMicros(absl::Now());
  std::string bytes;
  log::EncodeFileHeader(header, &bytes);
  log::EncodeRecord(header.salt, 1, log::kManifest,
                    manifest.SerializeAsString(), &bytes);
  auto file = fs->NewWritableFile(tmp);
  if (!file.ok()) return file.status();
  absl::Status s = (*file)->Append(bytes);
  if (s.ok()) s = (*file)->Sync();
  absl::Status c = (*file)->Close();
  if (s.ok()) s = c;
  KillPoint("manifest.before_rename");
  if (s.ok()) s = fs->RenameFile(tmp, path);
  if (s.ok()) s = fs->SyncDir(dir);
  KillPoint("manifest.after_rename");
  if (!s.ok()) {
    return absl::Status(s.code(),
                        absl::StrCat("publishing manifest: ", s.message()));
  }
  return absl::OkStatus();
}

}  // namespace walstate
