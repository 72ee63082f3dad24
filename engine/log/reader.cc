// FileReader and LogReader (reader.h): one file, or a directory's segments
// in LSN order with the checks between segments. Reading a file is
// FileScanner's job (file_scanner.h).
#include "engine/log/reader.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/log/file_scanner.h"

namespace walstate {
namespace log {

bool ReadReport::has_torn_tail() const {
  for (const Problem& p : problems) {
    if (p.kind == Problem::Kind::kTornTail) return true;
  }
  return false;
}

bool ReadReport::has_corruption() const {
  for (const Problem& p : problems) {
    if (p.kind != Problem::Kind::kTornTail) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------
// FileReader

class FileReader::Impl {
 public:
  Impl(FileSystem* fs, const std::string& path, RecoveryMode mode, bool is_last,
       bool map)
      : scanner(fs, path, mode, is_last, map) {}
  FileScanner scanner;
};

FileReader::FileReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FileReader::~FileReader() = default;

absl::StatusOr<std::unique_ptr<FileReader>> FileReader::Open(
    FileSystem* fs, const std::string& path, RecoveryMode mode, bool is_last,
    bool map) {
  auto impl = std::make_unique<Impl>(fs, path, mode, is_last, map);
  impl->scanner.Open();
  if (!impl->scanner.status().ok()) return impl->scanner.status();
  return std::unique_ptr<FileReader>(new FileReader(std::move(impl)));
}

bool FileReader::Next(Record* record) { return impl_->scanner.Next(record); }
std::shared_ptr<const MappedFile> FileReader::mapping() const {
  return impl_->scanner.mapping();
}
absl::Status FileReader::status() const { return impl_->scanner.status(); }
const FileHeader& FileReader::header() const { return impl_->scanner.header(); }
bool FileReader::header_ok() const { return impl_->scanner.header_ok(); }
const ReadReport& FileReader::report() const { return impl_->scanner.report(); }

// ---------------------------------------------------------------------------
// LogReader

class LogReader::Impl {
 public:
  explicit Impl(const LogReaderOptions& options) : options_(options) {}

  absl::Status Init();
  bool Next(Record* record);

  const LogReaderOptions options_;
  std::vector<std::string> paths_;
  std::vector<uint64_t> numbers_;
  absl::Status status_;
  ReadReport report_;
  std::string schema_;

 private:
  std::unique_ptr<FileScanner> OpenScanner(size_t i) {
    auto s = std::make_unique<FileScanner>(
        options_.fs, paths_[i], options_.mode, i + 1 == paths_.size());
    s->SetCreateEvidence(options_.max_header_bytes,
                         numbers_[i] <= options_.synced_segment);
    s->Open();
    return s;
  }
  // Opens the next segment to read records from; false when there is none or
  // reading must stop.
  bool OpenNextSegment();
  // Starts accounting for scanner `s` in report_ (a file being read).
  void Begin(const FileScanner& s);
  // Brings report_ up to date with what `s` found so far, so that problems
  // appear in report() as soon as Next() has passed them.
  void Update(const FileScanner& s);
  // Reports damage found between segments; false if reading must stop.
  bool SequenceProblem(const std::string& path, uint64_t offset,
                       std::string detail);

  size_t next_index_ = 0;
  std::unique_ptr<FileScanner> cur_;
  std::unique_ptr<FileScanner> peeked_;  // header of segment next_index_
  bool have_expected_ = false;
  uint64_t expected_first_ = 0;  // first LSN the next segment must have
  bool done_ = false;
  // The last segment read to its end, and where its last good frame ends.
  std::string prev_path_;
  uint64_t prev_end_ = 0;
  // How much of the current scanner's report is already in report_.
  size_t problems_taken_ = 0;
  uint64_t torn_taken_ = 0;
};

absl::Status LogReader::Impl::Init() {
  if (options_.fs == nullptr) {
    return absl::InvalidArgumentError("LogReader: options.fs is required");
  }
  auto names = options_.fs->ListDir(options_.dir);
  if (!names.ok()) return names.status();
  std::vector<std::pair<uint64_t, std::string>> segs;
  for (const std::string& name : *names) {
    uint64_t number;
    if (ParseSegmentFileName(name, &number)) segs.emplace_back(number, name);
  }
  std::sort(segs.begin(), segs.end());
  for (auto& [number, name] : segs) {
    numbers_.push_back(number);
    paths_.push_back(JoinPath(options_.dir, name));
  }
  return absl::OkStatus();
}

void LogReader::Impl::Begin(const FileScanner& s) {
  report_.files += 1;
  report_.bytes += s.report().bytes;
  report_.last_good_file = s.path();
  problems_taken_ = 0;
  torn_taken_ = 0;
  Update(s);
}

void LogReader::Impl::Update(const FileScanner& s) {
  const ReadReport& r = s.report();
  for (; problems_taken_ < r.problems.size(); ++problems_taken_) {
    report_.problems.push_back(r.problems[problems_taken_]);
  }
  report_.torn_bytes += r.torn_bytes - torn_taken_;
  torn_taken_ = r.torn_bytes;
  report_.last_good_offset = r.last_good_offset;
}

bool LogReader::Impl::SequenceProblem(const std::string& path, uint64_t offset,
                                      std::string detail) {
  Problem p;
  p.kind = Problem::Kind::kCorruption;
  p.file = path;
  p.offset = offset;
  p.detail = detail;
  report_.problems.push_back(std::move(p));
  if (options_.mode == RecoveryMode::kSalvage) return true;
  status_ =
      absl::DataLossError(absl::StrCat(path, ": corruption at offset ", offset,
                                       ": ", detail, ". ", RepairAdvice(path)));
  done_ = true;
  return false;
}

bool LogReader::Impl::OpenNextSegment() {
  while (next_index_ < paths_.size()) {
    const size_t i = next_index_++;
    const bool is_last = i + 1 == paths_.size();
    const std::string& path = paths_[i];
    std::unique_ptr<FileScanner> s =
        peeked_ != nullptr ? std::move(peeked_) : OpenScanner(i);
    if (i > 0 && numbers_[i] != numbers_[i - 1] + 1) {
      // Missing segments matter unless all they could hold is below
      // start_lsn (e.g. a crash while old segments were being deleted).
      const bool harmless = options_.start_lsn > 0 && s->header_ok() &&
                            s->header().first_lsn <= options_.start_lsn;
      if (!harmless &&
          !SequenceProblem(
              path, 0,
              absl::StrCat("log segments ", numbers_[i - 1] + 1, "..",
                           numbers_[i] - 1, " are missing (segment ",
                           numbers_[i - 1], " is followed by ", numbers_[i],
                           ")"))) {
        return false;
      }
      // Records of the missing segments are lost; do not also report the gap
      // in LSNs as a separate problem.
      have_expected_ = false;
    }
    if (!s->status().ok()) {
      Begin(*s);
      status_ = s->status();
      done_ = true;
      return false;
    }
    if (!s->header_ok()) {  // tolerated header damage: no records
      Begin(*s);
      continue;
    }
    const FileHeader& h = s->header();
    if (h.kind != FileKind::kSegment || h.file_number != numbers_[i]) {
      Begin(*s);
      if (!SequenceProblem(
              path, 0,
              absl::StrCat("file header describes ", FileKindName(h.kind), " ",
                           h.file_number, ", not log segment ", numbers_[i],
                           " (a renamed or misplaced file?)"))) {
        return false;
      }
      continue;  // salvage: its records do not belong here
    }
    if (have_expected_ && h.first_lsn != expected_first_) {
      // Records never span segments and a segment's first LSN is in its
      // header, so missing LSNs were at the end of the previous segment.
      const bool gap = h.first_lsn > expected_first_;
      const bool named_prev = gap && !prev_path_.empty();
      std::string detail =
          gap ? absl::StrCat("the log ends at LSN ", expected_first_ - 1,
                             named_prev ? absl::StrCat(" at offset ", prev_end_,
                                                       " of ", prev_path_)
                                        : std::string(),
                             " but the next segment ", path, " starts at LSN ",
                             h.first_lsn, ": LSNs ", expected_first_, "..",
                             h.first_lsn - 1,
                             " are missing (the end of the previous segment "
                             "was lost or cut off)")
              : absl::StrCat("segment starts at LSN ", h.first_lsn,
                             " but the log before it already reached LSN ",
                             expected_first_ - 1, " (overlapping segments)");
      if (!SequenceProblem(named_prev ? prev_path_ : path,
                           named_prev ? prev_end_ : 0, detail)) {
        return false;
      }
    }
    // A rescued header has no schema: keep the last one read intact.
    if (!s->header_rescued()) schema_ = h.schema;
    // Skip a whole segment when the next one starts at or before start_lsn:
    // none of its records is wanted, so it is not even read.
    if (options_.start_lsn > 0 && !is_last) {
      peeked_ = OpenScanner(i + 1);
      if (peeked_->status().ok() && peeked_->header_ok() &&
          peeked_->header().first_lsn <= options_.start_lsn) {
        prev_path_.clear();
        have_expected_ = true;
        expected_first_ = peeked_->header().first_lsn;
        continue;
      }
    }
    have_expected_ = true;
    expected_first_ = h.first_lsn;
    if (options_.start_hint_segment == numbers_[i] && options_.start_lsn > 1) {
      report_.skipped_bytes +=
          s->SkipPast(options_.start_hint_offset, options_.start_lsn - 1);
    }
    Begin(*s);
    cur_ = std::move(s);
    return true;
  }
  done_ = true;
  return false;
}

bool LogReader::Impl::Next(Record* record) {
  while (!done_) {
    if (cur_ == nullptr) {
      if (!OpenNextSegment()) return false;
    }
    if (cur_->Next(record)) {
      Update(*cur_);
      if (record->lsn < options_.start_lsn) continue;
      if (report_.records > 0 && record->lsn <= report_.last_lsn) {
        continue;  // salvage of overlapping segments: already returned
      }
      if (report_.records == 0) report_.first_lsn = record->lsn;
      report_.last_lsn = record->lsn;
      report_.records++;
      return true;
    }
    Update(*cur_);
    if (!cur_->status().ok()) {
      status_ = cur_->status();
      done_ = true;
      cur_.reset();
      return false;
    }
    expected_first_ = cur_->next_lsn();
    prev_path_ = cur_->path();
    prev_end_ = cur_->report().last_good_offset;
    cur_.reset();
  }
  return false;
}

LogReader::LogReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LogReader::~LogReader() = default;

absl::StatusOr<std::unique_ptr<LogReader>> LogReader::Open(
    const LogReaderOptions& options) {
  auto impl = std::make_unique<Impl>(options);
  absl::Status s = impl->Init();
  if (!s.ok()) return s;
  return std::unique_ptr<LogReader>(new LogReader(std::move(impl)));
}

bool LogReader::Next(Record* record) { return impl_->Next(record); }
absl::Status LogReader::status() const { return impl_->status_; }
const ReadReport& LogReader::report() const { return impl_->report_; }
const std::vector<std::string>& LogReader::segments() const {
  return impl_->paths_;
}
const std::string& LogReader::schema() const { return impl_->schema_; }

}  // namespace log
}  // namespace walstate
