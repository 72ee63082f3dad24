// Shared pieces of walctl's subcommands: exit codes, argument parsing, JSON
// output, directory scanning, file headers, progress display.
//
// Every subcommand is a function `int RunX(Context&, args)` that writes to the
// context's streams and returns an exit code, so tests can run them in-process
// and compare the output byte for byte.
#ifndef WALSTATE_TOOLS_WALCTL_COMMON_H_
#define WALSTATE_TOOLS_WALCTL_COMMON_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/log/format.h"
#include "walstate/file_system.h"

namespace walstate {
namespace walctl {

// Exit codes. 0/1/2 follow the convention of checkers such as fsck and
// redis-check-aof (0 clean, 1 fixable by default recovery, 2 not); 64 and 75
// are sysexits.h's EX_USAGE and EX_TEMPFAIL.
enum ExitCode : int {
  kExitOk = 0,
  // verify/dump/repair: only a torn tail (default recovery cuts it off).
  // show: the session does not exist (at that LSN).
  kExitTornTail = 1,
  kExitNotFound = 1,
  // Damage default recovery refuses, unreadable input, or a failed operation.
  kExitDamage = 2,
  kExitError = 2,
  kExitUsage = 64,
  // The directory is locked by a running engine: retry once it has stopped.
  kExitBusy = 75,
};

struct Context {
  Context(std::ostream& out, std::ostream& err) : out(out), err(err) {}
  std::ostream& out;
  std::ostream& err;
  FileSystem* fs = FileSystem::Default();
  // Show progress on `err` (main() sets it when stderr is a terminal).
  bool progress = false;
  // stdout is a terminal too: a command printing as it goes (dump) then
  // shows no progress, which would be drawn across its lines.
  bool stdout_terminal = false;
  // The clock Progress paces its redraws by (tests step it by hand).
  std::function<std::chrono::steady_clock::time_point()> now =
      std::chrono::steady_clock::now;
};

// ---------------------------------------------------------------------------
// Arguments

struct FlagSpec {
  const char* name;  // without the leading "--"
  bool takes_value;
};

struct CommandSpec {
  const char* name;  // "dump"
  const char* help;  // full --help text
  std::vector<FlagSpec> flags;
  size_t min_positional = 1;
  size_t max_positional = 1;
};

class ParsedArgs {
 public:
  const std::vector<std::string>& positional() const { return positional_; }
  bool Has(const std::string& flag) const { return values_.count(flag) > 0; }
  const std::string& Get(const std::string& flag) const;
  // Parses a decimal flag value; InvalidArgument naming the flag otherwise.
  absl::StatusOr<uint64_t> GetUint64(const std::string& flag) const;
  bool help() const { return help_; }

 private:
  friend absl::StatusOr<ParsedArgs> ParseArgs(
      const CommandSpec& spec, const std::vector<std::string>& args);
  std::vector<std::string> positional_;
  std::map<std::string, std::string> values_;
  bool help_ = false;
};

// Parses `args` (after the subcommand name). Accepts --flag, --flag=value,
// --flag value, -h/--help and "--" (end of flags). InvalidArgument with a
// one-line message on anything else.
absl::StatusOr<ParsedArgs> ParseArgs(const CommandSpec& spec,
                                     const std::vector<std::string>& args);

// Parses args for `spec`; on --help prints the help and sets *exit_code to 0,
// on a usage error prints one line and sets it to kExitUsage. Returns true if
// the command should run.
bool ParseOrExit(Context& ctx, const CommandSpec& spec,
                 const std::vector<std::string>& args, ParsedArgs* parsed,
                 int* exit_code);

// Prints "walctl <command>: <message>" to ctx.err and returns `code`.
int Fail(Context& ctx, absl::string_view command, absl::string_view message,
         int code);
// Same for a status; kExitBusy for a held lock (IsLockHeld: the status
// carries LockFile's payload), kExitError otherwise.
int FailStatus(Context& ctx, absl::string_view command,
               const absl::Status& status);

// ---------------------------------------------------------------------------
// JSON (one object per line; no dependency on a JSON library)

// `s` as a JSON string literal. Bytes that are not valid UTF-8 are escaped
// as \u00XX (their Latin-1 reading) so the output is always valid JSON.
std::string JsonString(absl::string_view s);

class JsonObject {
 public:
  JsonObject& Add(absl::string_view key, absl::string_view value);
  JsonObject& Add(absl::string_view key, const char* value) {
    return Add(key, absl::string_view(value));
  }
  JsonObject& Add(absl::string_view key, const std::string& value) {
    return Add(key, absl::string_view(value));
  }
  JsonObject& Add(absl::string_view key, uint64_t value);
  JsonObject& Add(absl::string_view key, int64_t value);
  JsonObject& Add(absl::string_view key, int value) {
    return Add(key, static_cast<int64_t>(value));
  }
  JsonObject& Add(absl::string_view key, bool value);
  JsonObject& Add(absl::string_view key, double value);
  // `json` must already be valid JSON (an object, array, ...).
  JsonObject& AddRaw(absl::string_view key, absl::string_view json);
  JsonObject& AddNull(absl::string_view key);
  // Appends every member of `other`.
  JsonObject& Merge(const JsonObject& other);
  std::string Build() const { return "{" + body_ + "}"; }

 private:
  void Key(absl::string_view key);
  std::string body_;
};

// Joins already-encoded JSON values into an array.
std::string JsonArray(const std::vector<std::string>& values);
std::string JsonStringArray(const std::vector<std::string>& values);

// ---------------------------------------------------------------------------
// Data directories

// What a directory holds, by walstate's naming rules.
struct DirEntries {
  struct Numbered {
    uint64_t number;  // segment number or snapshot LSN
    std::string name;
  };
  std::vector<Numbered> segments;   // sorted by number
  std::vector<Numbered> snapshots;  // sorted by LSN
  bool has_manifest = false;
  bool has_lock = false;
  // Temporaries in the exact names walstate gives them
  // (log::IsOwnTempFileName): leftovers of a crash, removed by Open.
  std::vector<std::string> tmp_files;
  // Anything else (an operator's *.tmp, a backup folder): recovery ignores
  // it and never deletes it.
  std::vector<std::string> other;
  bool empty() const {
    return segments.empty() && snapshots.empty() && !has_manifest;
  }
};

// Lists `dir`. The error names the directory.
absl::StatusOr<DirEntries> ScanDir(FileSystem* fs, const std::string& dir);

// The last path component ("seg-0000000000000001.wal" for a full path): the
// tools print names relative to the data directory so that output does not
// depend on where the directory lives.
std::string BaseName(absl::string_view path);

// A file header as read from disk, with the file's size.
struct HeaderInfo {
  log::HeaderStatus status = log::HeaderStatus::kTooShort;
  log::FileHeader header;
  std::string detail;  // why status != kOk
  uint64_t file_size = 0;
};

// Reads and decodes the header of `path`, allocating no more than the file
// holds. An I/O error is returned as a status.
absl::StatusOr<HeaderInfo> ReadHeader(FileSystem* fs, const std::string& path);

const char* FileKindName(log::FileKind kind);

// If a process holds the directory's LOCK (an open engine), what the lock
// file says about the holder; empty if it is free, absent, or the system has
// no /proc/locks. Never takes the lock itself.
std::string LockHolder(const std::string& dir);

// "1.5 KiB", "3.0 MiB": sizes for humans.
std::string HumanBytes(uint64_t bytes);

// "1 session", "2 sessions": `n` and `noun`, with an "s" unless n is 1.
std::string Count(uint64_t n, absl::string_view noun);

// Hex of `bytes`, two lowercase digits per byte.
std::string Hex(absl::string_view bytes);

// A session id as printed in text output: QuoteSessionId
// (engine/state/session_id.h), as the engine's errors print it.
std::string QuoteSession(absl::string_view session);

// ---------------------------------------------------------------------------
// Progress

// A one-line progress bar on stderr (bytes done / total, rate), redrawn at
// most ten times a second. Does nothing unless enabled, so callers need not
// check whether output goes to a terminal.
class Progress {
 public:
  // `streams_output`: the command prints to stdout while it reads.
  Progress(Context& ctx, absl::string_view label, uint64_t total_bytes,
           bool streams_output = false);
  ~Progress();  // Done()
  void Update(uint64_t done_bytes);
  void Done();

 private:
  void Draw(uint64_t done, bool final);
  std::ostream& err_;
  const std::function<std::chrono::steady_clock::time_point()> now_;
  bool enabled_;
  std::string label_;
  uint64_t total_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  bool drawn_ = false;
};

}  // namespace walctl
}  // namespace walstate

#endif  // WALSTATE_TOOLS_WALCTL_COMMON_H_
