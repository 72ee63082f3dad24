#include "tests/log/test_util.h"

#include <stdlib.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace walstate {
namespace log {
namespace testing {

std::string NewTempDir() {
  const char* base = getenv("TEST_TMPDIR");
  std::string tmpl =
      absl::StrCat(base != nullptr && *base ? base : "/tmp", "/logtest-XXXXXX");
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  char* dir = mkdtemp(buf.data());
  if (dir == nullptr) {
    ADD_FAILURE() << "mkdtemp " << tmpl << " failed";
    return "/nonexistent";
  }
  return dir;
}

WriterOptions WriterOptionsFor(FileSystem* fs) {
  WriterOptions options;
  options.fs = fs;
  options.dir = NewTempDir();
  return options;
}

std::string MakePayload(uint64_t lsn, size_t size) {
  std::string s(size, '\0');
  uint64_t x = lsn * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < size; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s[i] = static_cast<char>(x);
  }
  return s;
}

std::vector<ExpectedRecord> WriteLog(const std::string& dir,
                                     const std::vector<size_t>& sizes,
                                     uint64_t max_segment_bytes,
                                     const std::vector<uint8_t>& types,
                                     int sync_every) {
  WriterOptions options;
  options.fs = FileSystem::Default();
  options.dir = dir;
  options.max_segment_bytes = max_segment_bytes;
  auto writer = LogWriter::Create(options, 1, 1);
  EXPECT_TRUE(writer.ok()) << writer.status();
  std::vector<ExpectedRecord> out;
  if (!writer.ok()) return out;
  for (size_t i = 0; i < sizes.size(); ++i) {
    ExpectedRecord r;
    r.type = i < types.size() ? types[i] : static_cast<uint8_t>(kUpdate);
    r.payload = MakePayload(i + 1, sizes[i]);
    auto lsn = (*writer)->Append(r.type, r.payload);
    EXPECT_TRUE(lsn.ok()) << lsn.status();
    if (!lsn.ok()) return out;
    r.lsn = *lsn;
    out.push_back(std::move(r));
    if (sync_every > 0 && (i + 1) % sync_every == 0) {
      absl::Status s = (*writer)->Sync();
      EXPECT_TRUE(s.ok()) << s;
    }
  }
  absl::Status s = (*writer)->Close();
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

ReadResult ReadLog(const std::string& dir, RecoveryMode mode,
                   uint64_t start_lsn, uint64_t hint_segment,
                   uint64_t hint_offset) {
  ReadResult result;
  LogReaderOptions options;
  options.fs = FileSystem::Default();
  options.dir = dir;
  options.mode = mode;
  options.start_lsn = start_lsn;
  options.start_hint_segment = hint_segment;
  options.start_hint_offset = hint_offset;
  auto reader = LogReader::Open(options);
  if (!reader.ok()) {
    result.open_status = reader.status();
    result.status = reader.status();
    return result;
  }
  Record rec;
  while ((*reader)->Next(&rec)) {
    ExpectedRecord r;
    r.lsn = rec.lsn;
    r.type = rec.type;
    r.payload = std::string(rec.payload);
    result.records.push_back(std::move(r));
  }
  result.status = (*reader)->status();
  result.report = (*reader)->report();
  result.segments = (*reader)->segments();
  return result;
}

std::vector<std::string> SegmentPaths(const std::string& dir) {
  std::vector<std::string> out;
  auto names = FileSystem::Default()->ListDir(dir);
  EXPECT_TRUE(names.ok()) << names.status();
  if (!names.ok()) return out;
  for (const auto& name : *names) {
    uint64_t n;
    if (ParseSegmentFileName(name, &n)) out.push_back(JoinPath(dir, name));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteBytes(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  out.close();
  EXPECT_TRUE(out.good()) << "cannot write " << path;
}

void WriteAt(const std::string& path, uint64_t offset,
             const std::string& data) {
  std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
  f.close();
  EXPECT_TRUE(f.good()) << "cannot write " << path;
}

std::vector<uint64_t> FrameEnds(const std::string& path) {
  std::vector<uint64_t> ends;
  auto reader = FileReader::Open(FileSystem::Default(), path,
                                 RecoveryMode::kStrict, /*is_last=*/true);
  EXPECT_TRUE(reader.ok()) << reader.status();
  if (!reader.ok()) return ends;
  ends.push_back((*reader)->header().header_size);
  Record rec;
  while ((*reader)->Next(&rec)) ends.push_back(rec.offset + rec.framed_size);
  EXPECT_TRUE((*reader)->status().ok()) << (*reader)->status();
  return ends;
}

std::vector<uint64_t> SyncedFrameOffsets(const std::string& path) {
  std::vector<uint64_t> out;
  const std::string data = ReadBytes(path);
  std::vector<uint64_t> ends = FrameEnds(path);
  for (size_t i = 0; i + 1 < ends.size(); ++i) {
    RecordHeader h = DecodeRecordHeader(data.data() + ends[i]);
    if (h.flags & kRecordFlagAfterSync) out.push_back(ends[i]);
  }
  return out;
}

std::string Describe(const ReadReport& report) {
  std::string s;
  for (const Problem& p : report.problems) {
    absl::StrAppend(&s, ProblemKindName(p.kind), " ", p.file, "@", p.offset,
                    "+", p.bytes, ": ", p.detail, "\n");
  }
  return s;
}

// ---------------------------------------------------------------------------

class FaultyFileSystem::File : public WritableFile {
 public:
  File(FaultyFileSystem* fs, std::unique_ptr<WritableFile> base)
      : fs_(fs), base_(std::move(base)) {}

  absl::Status Append(absl::string_view data) override {
    absl::Status s = fs_->OnAppend(path(), data.size());
    if (!s.ok()) return s;
    return base_->Append(data);
  }
  absl::Status Sync() override {
    absl::Status s = fs_->OnSync(path());
    if (!s.ok()) return s;
    return base_->Sync();
  }
  absl::Status Preallocate(uint64_t bytes) override {
    return base_->Preallocate(bytes);
  }
  absl::Status StartWriteback(uint64_t offset, uint64_t length) override {
    absl::Status s = fs_->OnWriteback(path(), offset, length);
    if (!s.ok()) return s;
    return base_->StartWriteback(offset, length);
  }
  uint64_t Size() const override { return base_->Size(); }
  absl::Status Close() override {
    fs_->Log(absl::StrCat("close ", path()));
    return base_->Close();
  }
  const std::string& path() const override { return base_->path(); }

 private:
  FaultyFileSystem* const fs_;
  std::unique_ptr<WritableFile> base_;
};

absl::StatusOr<std::unique_ptr<WritableFile>> FaultyFileSystem::NewWritableFile(
    const std::string& path) {
  {
    std::lock_guard<std::mutex> l(mu_);
    ops_.push_back(absl::StrCat("create ", path));
    if (!fail_create_part_.empty() &&
        path.find(fail_create_part_) != std::string::npos) {
      return absl::ResourceExhaustedError(
          absl::StrCat("open ", path, ": No space left on device (injected)"));
    }
  }
  auto f = base_->NewWritableFile(path);
  if (!f.ok()) return f.status();
  return std::unique_ptr<WritableFile>(new File(this, std::move(*f)));
}

absl::StatusOr<std::unique_ptr<WritableFile>>
FaultyFileSystem::ReopenWritableFile(const std::string& path) {
  Log(absl::StrCat("reopen ", path));
  auto f = base_->ReopenWritableFile(path);
  if (!f.ok()) return f.status();
  return std::unique_ptr<WritableFile>(new File(this, std::move(*f)));
}

absl::Status FaultyFileSystem::SyncDir(const std::string& dir) {
  Log(absl::StrCat("syncdir ", dir));
  return base_->SyncDir(dir);
}

absl::Status FaultyFileSystem::OnSync(const std::string& path) {
  std::unique_lock<std::mutex> l(mu_);
  if (hold_syncs_) {
    ++held_syncs_;
    held_cv_.notify_all();
    held_cv_.wait(l, [this] { return !hold_syncs_ || sync_permits_ > 0; });
    if (hold_syncs_) --sync_permits_;
    --held_syncs_;
  }
  ++syncs_;
  ++syncs_by_path_[path];
  ops_.push_back(absl::StrCat("sync ", path));
  if (syncs_ == fail_sync_at_) {
    return absl::InternalError(
        absl::StrCat("fdatasync ", path, ": Input/output error (injected)"));
  }
  return absl::OkStatus();
}

absl::Status FaultyFileSystem::OnWriteback(const std::string& path,
                                           uint64_t offset, uint64_t length) {
  std::lock_guard<std::mutex> l(mu_);
  ++writebacks_;
  ops_.push_back(absl::StrCat("writeback ", path, " ", offset, " ", length));
  if (fail_writebacks_) {
    return absl::InternalError(absl::StrCat("sync_file_range ", path,
                                            ": Input/output error (injected)"));
  }
  return absl::OkStatus();
}

absl::Status FaultyFileSystem::OnAppend(const std::string& path, size_t n) {
  std::lock_guard<std::mutex> l(mu_);
  ++appends_;
  ops_.push_back(absl::StrCat("append ", path, " ", n));
  if (appends_ == fail_append_at_) {
    return absl::InternalError(
        absl::StrCat("write ", path, ": Input/output error (injected)"));
  }
  return absl::OkStatus();
}

}  // namespace testing
}  // namespace log
}  // namespace walstate
