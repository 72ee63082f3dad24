// A backup folder inside a data directory, for what recovery or a tool is
// about to drop: the rule is that nothing walstate cannot prove it created
// and never synced is deleted without a copy (docs/FORMAT.md, "What recovery
// may delete, and where it puts what it drops").
#ifndef WALSTATE_ENGINE_FS_BACKUP_H_
#define WALSTATE_ENGINE_FS_BACKUP_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "walstate/file_system.h"

namespace walstate {

// Copies `from` to `to` (created; it must not exist) in chunks, keeping the
// source's permission bits, and syncs the copy. Never follows a link for
// the copy it writes.
absl::Status CopyFile(FileSystem* fs, const std::string& from,
                      const std::string& to);

// "DIR/<prefix>-<UTC time>", with "-2", "-3"... if that exists already.
std::string NewBackupDirName(FileSystem* fs, const std::string& dir,
                             const std::string& prefix);

// The folder is created on the first Save or Move, so a run that drops
// nothing leaves none behind.
class BackupFolder {
 public:
  BackupFolder(FileSystem* fs, std::string dir, std::string prefix)
      : fs_(fs), dir_(std::move(dir)), prefix_(std::move(prefix)) {}

  // Copies DIR/name into the folder (synced, before the caller changes the
  // original).
  absl::Status Save(const std::string& name);
  // Moves DIR/name into the folder (a rename, synced): for a file being
  // dropped whole.
  absl::Status Move(const std::string& name);

  // The folder's path (empty until something was saved) and what is in it.
  const std::string& path() const { return path_; }
  const std::vector<std::string>& names() const { return names_; }

 private:
  absl::Status Create();

  FileSystem* const fs_;
  const std::string dir_;
  const std::string prefix_;
  std::string path_;
  std::vector<std::string> names_;
};

}  // namespace walstate

#endif  // WALSTATE_ENGINE_FS_BACKUP_H_
