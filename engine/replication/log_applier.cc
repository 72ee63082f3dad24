#include "engine/replication/log_applier.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace walstate {
namespace replication {

LogApplier::LogApplier(FileSystem* fs, std::string dir, std::string source,
                       uint64_t after_lsn, std::string schema)
    : fs_(fs),
      dir_(std::move(dir)),
      source_(std::move(source)),
      after_lsn_(after_lsn),
      schema_(std::move(schema)) {}

LogApplier::~LogApplier() = default;

absl::Status LogApplier::CreateWriter(uint64_t next_lsn) {
  log::WriterOptions wopts;
  wopts.fs = fs_;
  wopts.dir = dir_;
  wopts.schema = schema_;
  auto w = log::LogWriter::Create(wopts, 1, next_lsn);
  if (!w.ok()) return w.status();
  writer_ = std::move(*w);
  return absl::OkStatus();
}

absl::Status LogApplier::Apply(uint64_t seq, const MessageHeader& header,
                               absl::string_view body) {
  if (header.kind == MessageKind::kClaim) {
    dropped_partial_bytes_ += decoder_.DropPartial();
    return absl::OkStatus();
  }
  if (header.kind != MessageKind::kLog) return absl::OkStatus();
  log_messages_++;
  absl::Status s =
      decoder_.Add(header, body, absl::StrCat(source_, " message ", seq));
  if (!s.ok()) return s;
  for (StreamRecord& r : *decoder_.records()) {
    records_verified_++;
    if (r.lsn <= after_lsn_) continue;
    if (writer_ == nullptr) {
      if (r.lsn != after_lsn_ + 1) {
        return absl::DataLossError(absl::StrCat(
            source_, " message ", seq, ": the log resumes at LSN ", r.lsn,
            " but the newest snapshot covers only up to LSN ", after_lsn_,
            ": records are missing. Nothing was restored"));
      }
      s = CreateWriter(r.lsn);
      if (!s.ok()) return s;
    }
    auto lsn = writer_->Append(r.type, r.payload);
    if (!lsn.ok()) return lsn.status();
    if (*lsn != r.lsn) {
      return absl::InternalError(
          absl::StrCat("writing ", dir_, ": wrote LSN ", *lsn, " for record ",
                       r.lsn, " of ", source_, " message ", seq));
    }
    records_written_++;
  }
  decoder_.records()->clear();
  return absl::OkStatus();
}

absl::Status LogApplier::Sync() {
  if (writer_ == nullptr) {
    // No record after the snapshot: an empty segment says where the log
    // goes on.
    absl::Status s = CreateWriter(last_lsn() + 1);
    if (!s.ok()) return s;
  }
  return writer_->Sync();
}

absl::Status LogApplier::Close() {
  absl::Status s = Sync();
  absl::Status c = writer_ != nullptr ? writer_->Close() : absl::OkStatus();
  return s.ok() ? c : s;
}

size_t LogApplier::DropPartial() {
  const size_t n = decoder_.DropPartial();
  dropped_partial_bytes_ += n;
  return n;
}

uint64_t LogApplier::last_lsn() const {
  return std::max(after_lsn_, decoder_.last_lsn());
}

uint64_t LogApplier::durable_lsn() const {
  if (writer_ == nullptr) return after_lsn_;
  return std::max(after_lsn_, writer_->durable_lsn());
}

}  // namespace replication
}  // namespace walstate
