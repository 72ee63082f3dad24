#include "engine/snapshot/snapshot_writer.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/fs/kill_point.h"
#include "engine/log/format.h"
#include "engine/snapshot/salt.h"
#include "google/protobuf/io/coded_stream.h"
#include "proto/walstate/record.pb.h"

namespace walstate {

absl::StatusOr<std::unique_ptr<SnapshotWriter>> SnapshotWriter::Create(
    FileSystem* fs, const std::string& dir, uint64_t lsn,
    const std::string& schema) {
  std::unique_ptr<SnapshotWriter> w(new SnapshotWriter());
  w->fs_ = fs;
  w->dir_ = dir;
  w->lsn_ = lsn;
  w->name_ = log::SnapshotFileName(lsn);
  w->tmp_path_ = JoinPath(dir, w->name_ + ".tmp");
  w->salt_ = NewSalt();
  auto file = fs->NewWritableFile(w->tmp_path_);
  if (!file.ok()) return file.status();
  w->file_ = std::move(*file);
  log::FileHeader header;
  header.kind = log::FileKind::kSnapshot;
  header.file_number = lsn;
  header.first_lsn = 1;
  header.salt = w->salt_;
  header.created_micros = absl::ToUnixMicros(absl::Now());
  header.schema = schema;
  log::EncodeFileHeader(header, &w->buffer_);
  return w;
}

SnapshotWriter::~SnapshotWriter() {
  if (!finished_ && file_ != nullptr) {
    (void)file_->Close();
    (void)fs_->DeleteFile(tmp_path_);
  }
}

void SnapshotWriter::AddRecord(
    absl::string_view session, size_t state_size, uint64_t lsn,
    const std::function<void(google::protobuf::io::CodedOutputStream*)>&
        write_state) {
  // SessionState{session = 1, state = 2, lsn = 3}, encoded by hand so the
  // state is written once, straight into the payload.
  scratch_.clear();
  {
    google::protobuf::io::StringOutputStream raw(&scratch_);
    google::protobuf::io::CodedOutputStream out(&raw);
    out.WriteTag((1 << 3) | 2);
    out.WriteVarint32(static_cast<uint32_t>(session.size()));
    out.WriteRaw(session.data(), static_cast<int>(session.size()));
    out.WriteTag((2 << 3) | 2);
    out.WriteVarint32(static_cast<uint32_t>(state_size));
    write_state(&out);
    if (lsn != 0) {
      out.WriteTag(3 << 3);
      out.WriteVarint64(lsn);
    }
  }
  log::EncodeRecord(salt_, next_ordinal_++, log::kSnapshotSession, scratch_,
                    &buffer_);
  ++sessions_;
}

void SnapshotWriter::Add(absl::string_view session,
                         const google::protobuf::Message& state, uint64_t lsn) {
  AddRecord(session, state.ByteSizeLong(), lsn,
            [&state](google::protobuf::io::CodedOutputStream* out) {
              state.SerializeWithCachedSizes(out);
            });
}

void SnapshotWriter::AddSerialized(absl::string_view session,
                                   absl::string_view state, uint64_t lsn) {
  AddRecord(session, state.size(), lsn,
            [state](google::protobuf::io::CodedOutputStream* out) {
              out->WriteRaw(state.data(), static_cast<int>(state.size()));
            });
}

absl::Status SnapshotWriter::WriteBuffered() {
  if (buffer_.empty()) return absl::OkStatus();
  absl::Status s = file_->Append(buffer_);
  bytes_ += buffer_.size();
  buffer_.clear();
  return s;
}

absl::Status SnapshotWriter::Finish() {
  record::SnapshotEnd end;
  end.set_sessions(sessions_);
  end.set_lsn(lsn_);
  log::EncodeRecord(salt_, next_ordinal_++, log::kSnapshotEnd,
                    end.SerializeAsString(), &buffer_);
  absl::Status s = WriteBuffered();
  KillPoint("snapshot.before_sync");
  if (s.ok()) s = file_->Sync();
  absl::Status c = file_->Close();
  if (s.ok()) s = c;
  KillPoint("snapshot.before_rename");
  if (s.ok()) s = fs_->RenameFile(tmp_path_, JoinPath(dir_, name_));
  if (s.ok()) s = fs_->SyncDir(dir_);
  KillPoint("snapshot.after_rename");
  if (!s.ok()) {
    return absl::Status(
        s.code(), absl::StrCat("writing snapshot ", name_, ": ", s.message()));
  }
  finished_ = true;
  return absl::OkStatus();
}

}  // namespace walstate
