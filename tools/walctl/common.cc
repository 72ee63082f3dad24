#include "tools/walctl/common.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "engine/state/session_id.h"

namespace walstate {
namespace walctl {

// ---------------------------------------------------------------------------
// Arguments

const std::string& ParsedArgs::Get(const std::string& flag) const {
  static const std::string* empty = new std::string();
  auto it = values_.find(flag);
  return it == values_.end() ? *empty : it->second;
}

absl::StatusOr<uint64_t> ParsedArgs::GetUint64(const std::string& flag) const {
  const std::string& text = Get(flag);
  uint64_t value = 0;
  // SimpleAtoi accepts a leading '+' and surrounding spaces; an LSN written
  // any other way than plain digits is more likely a mistake.
  bool digits =
      !text.empty() && std::all_of(text.begin(), text.end(),
                                   [](char c) { return c >= '0' && c <= '9'; });
  if (!digits || !absl::SimpleAtoi(text, &value)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, " wants a non-negative integer, got '", text, "'"));
  }
  return value;
}

absl::StatusOr<ParsedArgs> ParseArgs(const CommandSpec& spec,
                                     const std::vector<std::string>& args) {
  ParsedArgs parsed;
  bool flags_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (flags_done || arg.size() < 2 || arg[0] != '-') {
      parsed.positional_.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    if (arg == "-h" || arg == "--help") {
      parsed.help_ = true;
      continue;
    }
    if (arg[1] != '-') {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown option '", arg, "'"));
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_value = false;
    size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    const FlagSpec* flag = nullptr;
    for (const FlagSpec& f : spec.flags) {
      if (name == f.name) flag = &f;
    }
    if (flag == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag '--", name, "'"));
    }
    if (flag->takes_value) {
      if (!has_value) {
        if (i + 1 >= args.size()) {
          return absl::InvalidArgumentError(
              absl::StrCat("flag '--", name, "' needs a value"));
        }
        value = args[++i];
      }
    } else if (has_value) {
      return absl::InvalidArgumentError(
          absl::StrCat("flag '--", name, "' takes no value"));
    }
    if (parsed.values_.count(name) > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("flag '--", name, "' given twice"));
    }
    parsed.values_[name] = value;
  }
  if (parsed.help_) return parsed;
  if (parsed.positional_.size() < spec.min_positional) {
    return absl::InvalidArgumentError(spec.min_positional == 1
                                          ? "missing data directory argument"
                                          : "missing arguments");
  }
  if (parsed.positional_.size() > spec.max_positional) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unexpected argument '", parsed.positional_[spec.max_positional], "'"));
  }
  return parsed;
}

bool ParseOrExit(Context& ctx, const CommandSpec& spec,
                 const std::vector<std::string>& args, ParsedArgs* parsed,
                 int* exit_code) {
  absl::StatusOr<ParsedArgs> result = ParseArgs(spec, args);
  if (!result.ok()) {
    ctx.err << "walctl " << spec.name << ": " << result.status().message()
            << " (see 'walctl " << spec.name << " --help')\n";
    *exit_code = kExitUsage;
    return false;
  }
  if (result->help()) {
    ctx.out << spec.help;
    *exit_code = kExitOk;
    return false;
  }
  *parsed = std::move(*result);
  return true;
}

int Fail(Context& ctx, absl::string_view command, absl::string_view message,
         int code) {
  std::string line(message);
  // Keep errors to one line whatever the status carries.
  std::replace(line.begin(), line.end(), '\n', ' ');
  ctx.err << "walctl " << command << ": " << line << "\n";
  return code;
}

int FailStatus(Context& ctx, absl::string_view command,
               const absl::Status& status) {
  return Fail(ctx, command, status.message(),
              IsLockHeld(status) ? kExitBusy : kExitError);
}

// ---------------------------------------------------------------------------
// JSON

namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 if there is none.
size_t Utf8SequenceLength(absl::string_view s, size_t i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  size_t n = 0;
  uint32_t cp = 0;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) {
    n = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    unsigned char cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  // Reject overlong forms, surrogates and values past U+10FFFF.
  if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
      (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
      (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  return n;
}

}  // namespace

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = Utf8SequenceLength(s, i);
    if (n > 1) {
      out.append(s.data() + i, n);
      i += n;
      continue;
    }
    ++i;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c >= 0x7F || n == 0) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += "\"";
  return out;
}

void JsonObject::Key(absl::string_view key) {
  if (!body_.empty()) body_ += ",";
  body_ += JsonString(key);
  body_ += ":";
}

JsonObject& JsonObject::Add(absl::string_view key, absl::string_view value) {
  Key(key);
  body_ += JsonString(value);
  return *this;
}
JsonObject& JsonObject::Add(absl::string_view key, uint64_t value) {
  Key(key);
  absl::StrAppend(&body_, value);
  return *this;
}
JsonObject& JsonObject::Add(absl::string_view key, int64_t value) {
  Key(key);
  absl::StrAppend(&body_, value);
  return *this;
}
JsonObject& JsonObject::Add(absl::string_view key, bool value) {
  Key(key);
  body_ += value ? "true" : "false";
  return *this;
}
JsonObject& JsonObject::Add(absl::string_view key, double value) {
  Key(key);
  // JSON has no NaN or infinity.
  if (std::isfinite(value)) {
    body_ += absl::StrFormat("%.6g", value);
  } else {
    body_ += "null";
  }
  return *this;
}
JsonObject& JsonObject::AddRaw(absl::string_view key, absl::string_view json) {
  Key(key);
  body_.append(json.data(), json.size());
  return *this;
}
JsonObject& JsonObject::AddNull(absl::string_view key) {
  Key(key);
  body_ += "null";
  return *this;
}

JsonObject& JsonObject::Merge(const JsonObject& other) {
  if (other.body_.empty()) return *this;
  if (!body_.empty()) body_ += ",";
  body_ += other.body_;
  return *this;
}

std::string JsonArray(const std::vector<std::string>& values) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ",";
    out += values[i];
  }
  out += "]";
  return out;
}

std::string JsonStringArray(const std::vector<std::string>& values) {
  std::vector<std::string> encoded;
  encoded.reserve(values.size());
  for (const std::string& v : values) encoded.push_back(JsonString(v));
  return JsonArray(encoded);
}

// ---------------------------------------------------------------------------
// Data directories

absl::StatusOr<DirEntries> ScanDir(FileSystem* fs, const std::string& dir) {
  absl::StatusOr<std::vector<std::string>> names = fs->ListDir(dir);
  if (!names.ok()) return names.status();
  DirEntries entries;
  for (const std::string& name : *names) {
    uint64_t number = 0;
    if (log::ParseSegmentFileName(name, &number)) {
      entries.segments.push_back({number, name});
    } else if (log::ParseSnapshotFileName(name, &number)) {
      entries.snapshots.push_back({number, name});
    } else if (name == log::kManifestFileName) {
      entries.has_manifest = true;
    } else if (name == log::kLockFileName) {
      entries.has_lock = true;
    } else if (log::IsOwnTempFileName(name)) {
      entries.tmp_files.push_back(name);
    } else {
      entries.other.push_back(name);
    }
  }
  // Opening a FIFO or device for reading can block forever: refuse anything
  // but regular files under walstate's names before any reader opens them.
  std::vector<std::string> ours;
  for (const auto& n : entries.segments) ours.push_back(n.name);
  for (const auto& n : entries.snapshots) ours.push_back(n.name);
  if (entries.has_manifest) ours.push_back(log::kManifestFileName);
  for (const std::string& name : ours) {
    struct stat st;
    const std::string path = JoinPath(dir, name);
    if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, " is not a regular file (",
                       S_ISDIR(st.st_mode)    ? "a directory"
                       : S_ISFIFO(st.st_mode) ? "a FIFO"
                                              : "a device or socket",
                       "); move it out of the data directory"));
    }
  }
  auto by_number = [](const DirEntries::Numbered& a,
                      const DirEntries::Numbered& b) {
    return a.number < b.number;
  };
  std::sort(entries.segments.begin(), entries.segments.end(), by_number);
  std::sort(entries.snapshots.begin(), entries.snapshots.end(), by_number);
  std::sort(entries.tmp_files.begin(), entries.tmp_files.end());
  std::sort(entries.other.begin(), entries.other.end());
  return entries;
}

std::string BaseName(absl::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == absl::string_view::npos) return std::string(path);
  return std::string(path.substr(slash + 1));
}

absl::StatusOr<HeaderInfo> ReadHeader(FileSystem* fs, const std::string& path) {
  absl::StatusOr<std::unique_ptr<RandomAccessFile>> file =
      fs->NewRandomAccessFile(path);
  if (!file.ok()) return file.status();
  absl::StatusOr<uint64_t> size = (*file)->Size();
  if (!size.ok()) return size.status();
  HeaderInfo info;
  info.file_size = *size;
  // The fixed part first; its schema_size (checked against kMaxSchemaSize by
  // the decoder) and the file size bound how much more is read.
  std::string scratch(log::kFileHeaderFixedSize, '\0');
  absl::StatusOr<absl::string_view> fixed =
      (*file)->Read(0, log::kFileHeaderFixedSize, scratch.data());
  if (!fixed.ok()) return fixed.status();
  info.status = log::DecodeFileHeader(*fixed, &info.header, &info.detail);
  if (info.status != log::HeaderStatus::kTooShort ||
      fixed->size() < log::kFileHeaderFixedSize) {
    return info;
  }
  // The fixed part is there but the schema blob is not in `fixed`: read the
  // whole header, which DecodeFileHeader bounded by kMaxSchemaSize.
  uint32_t schema_size = 0;
  for (int i = 3; i >= 0; --i) {
    schema_size = (schema_size << 8) | static_cast<uint8_t>((*fixed)[20 + i]);
  }
  uint64_t want = log::kFileHeaderFixedSize + log::AlignUp(schema_size);
  if (schema_size > log::kMaxSchemaSize || want > info.file_size) {
    info.detail = absl::StrCat("file header needs ", want, " bytes, file has ",
                               info.file_size);
    return info;
  }
  std::string full(want, '\0');
  absl::StatusOr<absl::string_view> data = (*file)->Read(0, want, full.data());
  if (!data.ok()) return data.status();
  info.detail.clear();
  info.status = log::DecodeFileHeader(*data, &info.header, &info.detail);
  return info;
}

const char* FileKindName(log::FileKind kind) {
  switch (kind) {
    case log::FileKind::kSegment:
      return "segment";
    case log::FileKind::kSnapshot:
      return "snapshot";
    case log::FileKind::kManifest:
      return "manifest";
  }
  return "unknown";
}

std::string LockHolder(const std::string& dir) {
  // Read /proc/locks instead of probing with flock(): a probe holds the lock
  // for a moment, and an engine opening the directory in that moment would
  // fail. Without /proc/locks nothing is reported (the engine's own lock
  // check stays authoritative for compact and repair).
  const std::string path = JoinPath(dir, log::kLockFileName);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return "";
  std::ifstream locks("/proc/locks");
  if (!locks) return "";
  bool held = false;
  std::string line;
  while (!held && std::getline(locks, line)) {
    if (line.find("->") != std::string::npos) continue;  // a waiter
    std::vector<std::string> fields =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (fields.size() < 6 || fields[1] != "FLOCK") continue;
    unsigned major_id = 0, minor_id = 0;
    unsigned long long inode = 0;
    if (std::sscanf(fields[5].c_str(), "%x:%x:%llu", &major_id, &minor_id,
                    &inode) != 3) {
      continue;
    }
    held = major_id == major(st.st_dev) && minor_id == minor(st.st_dev) &&
           inode == static_cast<unsigned long long>(st.st_ino);
  }
  if (!held) return "";
  std::string holder;
  std::ifstream in(path);
  std::getline(in, holder);
  while (!holder.empty() && (holder.back() == '\n' || holder.back() == 0 ||
                             holder.back() == '\r')) {
    holder.pop_back();
  }
  return holder.empty() ? "an unknown process" : holder;
}

std::string Count(uint64_t n, absl::string_view noun) {
  return absl::StrCat(n, " ", noun, n == 1 ? "" : "s");
}

std::string HumanBytes(uint64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  static const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes) / 1024;
  int unit = 0;
  while (v >= 1024 && unit < 4) {
    v /= 1024;
    ++unit;
  }
  return absl::StrFormat("%.1f %s", v, kUnits[unit]);
}

std::string Hex(absl::string_view bytes) {
  return absl::BytesToHexString(bytes);
}

std::string QuoteSession(absl::string_view session) {
  return QuoteSessionId(session);
}

// ---------------------------------------------------------------------------
// Progress

Progress::Progress(Context& ctx, absl::string_view label, uint64_t total_bytes,
                   bool streams_output)
    : err_(ctx.err),
      now_(ctx.now),
      enabled_(ctx.progress && !(streams_output && ctx.stdout_terminal)),
      label_(label),
      total_(total_bytes),
      start_(now_()),
      last_draw_(start_) {}

Progress::~Progress() { Done(); }

void Progress::Update(uint64_t done_bytes) {
  if (!enabled_) return;
  auto now = now_();
  // The first draw waits a moment so short runs print nothing at all.
  if (now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  Draw(done_bytes, false);
}

void Progress::Done() {
  if (!enabled_) return;
  if (drawn_) {
    Draw(total_, true);
    err_ << "\n";
    err_.flush();
  }
  enabled_ = false;
}

void Progress::Draw(uint64_t done, bool final) {
  if (done > total_) done = total_;
  double seconds = std::chrono::duration<double>(now_() - start_).count();
  double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0;
  int percent = total_ == 0 ? 100 : static_cast<int>(done * 100 / total_);
  constexpr int kWidth = 30;
  int filled = percent * kWidth / 100;
  std::string bar(filled, '#');
  bar.append(kWidth - filled, '.');
  err_ << "\r" << label_ << " [" << bar << "] " << HumanBytes(done) << " / "
       << HumanBytes(total_) << "  " << HumanBytes(static_cast<uint64_t>(rate))
       << "/s   ";
  err_.flush();
  drawn_ = true;
  (void) final;
}

}  // namespace walctl
}  // namespace walstate
