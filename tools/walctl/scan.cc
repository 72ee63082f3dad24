#include "tools/walctl/scan.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/recovery.h"

namespace walstate {
namespace walctl {

Finding FromProblem(const log::Problem& problem) {
  Finding f;
  switch (problem.kind) {
    case log::Problem::Kind::kTornTail:
      f.severity = Finding::Severity::kTornTail;
      break;
    case log::Problem::Kind::kCorruption:
    case log::Problem::Kind::kForeignFile:
    case log::Problem::Kind::kUnreadable:
      f.severity = Finding::Severity::kDamage;
      break;
  }
  f.kind = log::ProblemKindName(problem.kind);
  f.file = BaseName(problem.file);
  f.offset = problem.offset;
  f.bytes = problem.bytes;
  f.detail = problem.detail;
  return f;
}

int ExitCodeFor(const std::vector<Finding>& findings) {
  int code = kExitOk;
  for (const Finding& f : findings) {
    if (f.severity == Finding::Severity::kDamage) return kExitDamage;
    if (f.severity == Finding::Severity::kTornTail) code = kExitTornTail;
  }
  return code;
}

void TornWithNothingReadable(bool anything_readable,
                             std::vector<Finding>* findings) {
  if (anything_readable) return;
  for (Finding& f : *findings) {
    if (f.severity == Finding::Severity::kTornTail) {
      f.severity = Finding::Severity::kDamage;
      f.kind = "unreadable";
      f.detail +=
          "; nothing else in the directory is readable either (not a "
          "walstate data directory?)";
    }
  }
}

std::string DescribeFinding(const Finding& f) {
  std::string out = f.file.empty() ? "(directory)" : f.file;
  if (f.offset != 0 || f.bytes != 0) {
    absl::StrAppend(&out, " offset ", f.offset);
    if (f.bytes != 0) absl::StrAppend(&out, " (", f.bytes, " bytes)");
  }
  absl::StrAppend(&out, ": ", f.detail);
  return out;
}

namespace {
const char* SeverityName(Finding::Severity s) {
  switch (s) {
    case Finding::Severity::kWarning:
      return "warning";
    case Finding::Severity::kTornTail:
      return "torn-tail";
    case Finding::Severity::kDamage:
      return "damage";
  }
  return "damage";
}
}  // namespace

std::string FindingJson(const Finding& f) {
  return JsonObject()
      .Add("severity", SeverityName(f.severity))
      .Add("kind", f.kind)
      .Add("file", f.file)
      .Add("offset", f.offset)
      .Add("bytes", f.bytes)
      .Add("detail", f.detail)
      .Build();
}

absl::StatusOr<LogScanResult> ScanLog(FileSystem* fs, const std::string& dir,
                                      const LogScanCallbacks& callbacks,
                                      Progress* progress,
                                      log::RecoveryMode mode) {
  log::LogReaderOptions options;
  options.fs = fs;
  options.dir = dir;
  options.mode = mode;
  SetCreateEvidence(fs, dir, &options);
  absl::StatusOr<std::unique_ptr<log::LogReader>> reader =
      log::LogReader::Open(options);
  if (!reader.ok()) return reader.status();

  LogScanResult result;
  // Bytes of the segments before the one being read, for progress.
  std::vector<uint64_t> sizes;
  for (const std::string& path : (*reader)->segments()) {
    result.segments.push_back(BaseName(path));
    absl::StatusOr<uint64_t> size = fs->FileSize(path);
    sizes.push_back(size.ok() ? *size : 0);
    result.bytes += sizes.back();
  }

  size_t problems_seen = 0;
  bool damage_seen = false;
  auto drain_problems = [&]() {
    const std::vector<log::Problem>& problems = (*reader)->report().problems;
    for (; problems_seen < problems.size(); ++problems_seen) {
      Finding f = FromProblem(problems[problems_seen]);
      damage_seen = true;
      result.findings.push_back(f);
      if (callbacks.on_finding) callbacks.on_finding(f);
    }
  };

  size_t file_index = 0;
  uint64_t done_before = 0;
  log::Record record;
  while ((*reader)->Next(&record)) {
    drain_problems();
    if (!damage_seen) {
      result.good_file = BaseName(record.file);
      result.good_offset = record.offset + record.framed_size;
      result.good_lsn = record.lsn;
    }
    if (result.records == 0) result.first_lsn = record.lsn;
    result.last_lsn = record.lsn;
    result.records++;
    if (callbacks.on_record) callbacks.on_record(record);
    if (progress != nullptr) {
      // Segments are read in order; advance to the record's file.
      const std::vector<std::string>& paths = (*reader)->segments();
      while (file_index < paths.size() && paths[file_index] != record.file) {
        done_before += sizes[file_index];
        ++file_index;
      }
      progress->Update(done_before + record.offset + record.framed_size);
    }
  }
  drain_problems();
  result.status = (*reader)->status();
  if (!result.status.ok()) {
    // The reader reports the stopping error as a problem too; add it only
    // when it did not, so that it is never lost.
    bool listed = false;
    for (const Finding& f : result.findings) {
      if (f.kind == "unreadable") listed = true;
    }
    if (!listed) {
      Finding f;
      f.severity = Finding::Severity::kDamage;
      f.kind = "unreadable";
      f.detail = std::string(result.status.message());
      result.findings.push_back(f);
      if (callbacks.on_finding) callbacks.on_finding(f);
    }
  }
  const log::ReadReport& report = (*reader)->report();
  result.cut_file = BaseName(report.last_good_file);
  result.cut_offset = report.last_good_offset;
  result.torn_bytes = report.torn_bytes;
  if (progress != nullptr) progress->Done();
  return result;
}

FileScanResult ScanFile(
    FileSystem* fs, const std::string& dir, const std::string& name,
    const std::function<void(const log::Record&)>& on_record) {
  FileScanResult result;
  const std::string path = JoinPath(dir, name);
  absl::StatusOr<HeaderInfo> header = ReadHeader(fs, path);
  if (header.ok()) result.header = *header;

  absl::StatusOr<std::unique_ptr<log::FileReader>> reader =
      log::FileReader::Open(fs, path, log::RecoveryMode::kSalvage,
                            /*is_last=*/false);
  if (!reader.ok()) {
    Finding f;
    f.severity = Finding::Severity::kDamage;
    f.kind = "unreadable";
    f.file = name;
    f.detail = std::string(reader.status().message());
    result.findings.push_back(f);
    return result;
  }
  result.header_ok = (*reader)->header_ok();
  log::Record record;
  while ((*reader)->Next(&record)) {
    result.records++;
    if (on_record) on_record(record);
  }
  for (const log::Problem& p : (*reader)->report().problems) {
    Finding f = FromProblem(p);
    // Snapshots and the MANIFEST are complete before they get their names:
    // a damaged end is never a torn tail there.
    if (f.severity == Finding::Severity::kTornTail) {
      f.severity = Finding::Severity::kDamage;
      f.kind = "corruption";
    }
    result.findings.push_back(f);
  }
  if (!(*reader)->status().ok() && result.findings.empty()) {
    Finding f;
    f.severity = Finding::Severity::kDamage;
    f.kind = "unreadable";
    f.file = name;
    f.detail = std::string((*reader)->status().message());
    result.findings.push_back(f);
  }
  return result;
}

}  // namespace walctl
}  // namespace walstate
