#include "engine/fs/backup.h"

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace walstate {

absl::Status CopyFile(FileSystem* fs, const std::string& from,
                      const std::string& to) {
  absl::StatusOr<std::unique_ptr<RandomAccessFile>> in =
      fs->NewRandomAccessFile(from);
  if (!in.ok()) return in.status();
  absl::StatusOr<uint64_t> size = (*in)->Size();
  if (!size.ok()) return size.status();
  absl::StatusOr<uint32_t> mode = fs->FileMode(from);
  if (!mode.ok()) return mode.status();
  absl::StatusOr<std::unique_ptr<WritableFile>> out = fs->NewExclusiveFile(to);
  if (!out.ok()) return out.status();
  std::string scratch(static_cast<size_t>(std::min<uint64_t>(*size, 4u << 20)),
                      '\0');
  absl::Status s;
  for (uint64_t off = 0; s.ok() && off < *size;) {
    absl::StatusOr<absl::string_view> got =
        (*in)->Read(off, scratch.size(), scratch.data());
    if (!got.ok()) {
      s = got.status();
      break;
    }
    if (got->empty()) break;
    s = (*out)->Append(*got);
    off += got->size();
  }
  if (s.ok()) s = (*out)->Sync();
  absl::Status c = (*out)->Close();
  if (s.ok()) s = c;
  if (s.ok() && *mode != fs->new_file_mode()) s = fs->SetFileMode(to, *mode);
  return s;
}

std::string NewBackupDirName(FileSystem* fs, const std::string& dir,
                             const std::string& prefix) {
  const std::string base =
      JoinPath(dir, absl::StrCat(prefix, "-",
                                 absl::FormatTime("%Y%m%d-%H%M%S", absl::Now(),
                                                  absl::UTCTimeZone())));
  std::string name = base;
  for (int n = 2;; ++n) {
    absl::StatusOr<bool> exists = fs->FileExists(name);
    if (!exists.ok() || !*exists) return name;
    name = absl::StrCat(base, "-", n);
  }
}

absl::Status BackupFolder::Create() {
  if (!path_.empty()) return absl::OkStatus();
  const std::string path = NewBackupDirName(fs_, dir_, prefix_);
  absl::Status s = fs_->CreateDir(path);
  if (!s.ok()) return s;
  path_ = path;
  return fs_->SyncDir(dir_);
}

absl::Status BackupFolder::Save(const std::string& name) {
  absl::Status s = Create();
  if (s.ok()) s = CopyFile(fs_, JoinPath(dir_, name), JoinPath(path_, name));
  if (s.ok()) s = fs_->SyncDir(path_);
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat("backing up ", name, " to ",
                                               path_, ": ", s.message()));
  }
  names_.push_back(name);
  return s;
}

absl::Status BackupFolder::Move(const std::string& name) {
  absl::Status s = Create();
  if (s.ok()) s = fs_->RenameFile(JoinPath(dir_, name), JoinPath(path_, name));
  if (s.ok()) s = fs_->SyncDir(path_);
  if (s.ok()) s = fs_->SyncDir(dir_);
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat("moving ", name, " to ", path_,
                                               ": ", s.message()));
  }
  names_.push_back(name);
  return s;
}

}  // namespace walstate
