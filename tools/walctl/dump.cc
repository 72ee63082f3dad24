// walctl dump: every record of the snapshots and log segments in LSN order.
#include <algorithm>
#include <limits>
#include <map>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tools/walctl/decode.h"
#include "tools/walctl/scan.h"
#include "tools/walctl/walctl.h"

namespace walstate {
namespace walctl {
namespace {

constexpr char kHelp[] =
    R"(usage: walctl dump DIR [flags]

Prints every record of the data directory DIR in LSN order, one per line:
the MANIFEST, each snapshot where it sits in the log, and the log segments.
Each line shows file, offset, LSN, record type, payload length and, decoded
with the schema stored in the file's header, the session, its tier
(immediate = kUpdate, batched = kTickEntry) and the change. Lines starting
with '#' describe files; lines starting with '!' are problems found.
Records of a snapshot show the snapshot's LSN and their ordinal (ord=).

flags:
  --json            one JSON object per line ("entry": "file", "record" or
                    "problem"); JSON values are never shortened
  --session ID      only records of session ID
  --from-lsn N      only records with LSN >= N (snapshots taken at >= N;
                    an LSN range leaves out the MANIFEST)
  --to-lsn N        only records with LSN <= N (snapshots taken at <= N)
  --type T[,T...]   only these record types: update, delete, tick-begin,
                    tick-entry, tick-commit, tick-abort, snapshot-session,
                    snapshot-end, manifest, type-N
  --hex             also print each payload's raw bytes in hex
  --full            do not shorten long strings in text output

exit: 0 read cleanly; 1 only a torn tail; 2 damage or unreadable input
      (everything readable is still printed); 64 usage error
)";

const CommandSpec kSpec = {
    "dump",
    kHelp,
    {{"json", false},
     {"session", true},
     {"from-lsn", true},
     {"to-lsn", true},
     {"type", true},
     {"hex", false},
     {"full", false}},
};

absl::StatusOr<std::set<uint8_t>> ParseTypes(const std::string& list) {
  std::set<uint8_t> types;
  for (absl::string_view name : absl::StrSplit(list, ',')) {
    bool found = false;
    for (int t = 1; t < 256; ++t) {
      if (log::RecordTypeName(static_cast<uint8_t>(t)) == name) {
        types.insert(static_cast<uint8_t>(t));
        found = true;
        break;
      }
    }
    if (!found) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown record type '", name,
          "' for --type (update, delete, tick-begin, tick-entry, tick-commit, "
          "tick-abort, snapshot-session, snapshot-end, manifest, type-N)"));
    }
  }
  return types;
}

class Dumper {
 public:
  Dumper(Context& ctx, const std::string& dir) : ctx_(ctx), dir_(dir) {}

  bool json = false;
  bool hex = false;
  bool has_session = false;
  std::string session;
  uint64_t from_lsn = 0;
  uint64_t to_lsn = std::numeric_limits<uint64_t>::max();
  std::set<uint8_t> types;  // empty: all
  Decoder decoder{256};

  int Run();

 private:
  // Describes a file ('#' line), right away or, when filtering, just before
  // its first record or problem that is printed.
  void FileLine(const std::string& name, const HeaderInfo& info);
  void Describe(const std::string& name);
  void PrintFileLine(const std::string& name, const HeaderInfo& info);
  bool filtered() const {
    return has_session || from_lsn > 0 ||
           to_lsn != std::numeric_limits<uint64_t>::max() || !types.empty();
  }
  void Problem(const Finding& f);
  // `snapshot_lsn` is 0 for log records.
  void RecordLine(const std::string& name, const log::Record& record,
                  const Schema* schema, uint64_t snapshot_lsn);
  void DumpFile(const std::string& name, uint64_t snapshot_lsn);
  void DumpSnapshotsBefore(uint64_t lsn);
  bool TypeWanted(uint8_t type) const {
    return types.empty() || types.count(type) > 0;
  }

  Context& ctx_;
  const std::string dir_;
  std::vector<Finding> findings_;
  std::vector<DirEntries::Numbered> snapshots_;
  size_t next_snapshot_ = 0;
  std::map<std::string, HeaderInfo> headers_;  // segments, by name
  std::set<std::string> described_;            // file lines printed
  std::map<std::string, HeaderInfo> pending_;  // to describe if used
  uint64_t records_read_ = 0;                  // before filtering
};

void Dumper::FileLine(const std::string& name, const HeaderInfo& info) {
  if (described_.count(name) > 0) return;
  if (filtered()) {
    // Only files that contribute a record or a problem are described.
    pending_.emplace(name, info);
    return;
  }
  PrintFileLine(name, info);
}

void Dumper::Describe(const std::string& name) {
  auto it = pending_.find(name);
  if (it == pending_.end()) return;
  HeaderInfo info = std::move(it->second);
  pending_.erase(it);
  PrintFileLine(name, info);
}

void Dumper::PrintFileLine(const std::string& name, const HeaderInfo& info) {
  if (!described_.insert(name).second) return;
  const log::FileHeader& h = info.header;
  const bool ok = info.status == log::HeaderStatus::kOk;
  std::string schema = ok ? SchemaTypeName(h.schema) : "";
  if (json) {
    JsonObject o;
    o.Add("entry", "file").Add("file", name).Add("bytes", info.file_size);
    if (ok) {
      o.Add("kind", FileKindName(h.kind))
          .Add("number", h.file_number)
          .Add("first_lsn", h.first_lsn)
          .Add("header_bytes", h.header_size)
          .Add("schema", schema)
          .Add("created_micros", h.created_micros);
    } else {
      o.Add("header_error", info.detail);
    }
    ctx_.out << o.Build() << "\n";
    return;
  }
  ctx_.out << "# " << name << ": ";
  if (!ok) {
    ctx_.out << info.file_size << " bytes, no valid header (" << info.detail
             << ")\n";
    return;
  }
  switch (h.kind) {
    case log::FileKind::kSegment:
      ctx_.out << "segment " << h.file_number << ", first lsn " << h.first_lsn;
      break;
    case log::FileKind::kSnapshot:
      ctx_.out << "snapshot at lsn " << h.file_number;
      break;
    case log::FileKind::kManifest:
      ctx_.out << "manifest generation " << h.file_number;
      break;
  }
  ctx_.out << ", " << info.file_size << " bytes, schema "
           << (schema.empty() ? "none" : schema) << "\n";
}

void Dumper::Problem(const Finding& f) {
  findings_.push_back(f);
  Describe(f.file);
  if (json) {
    ctx_.out << "{\"entry\":\"problem\"," << FindingJson(f).substr(1) << "\n";
  } else {
    ctx_.out << "! " << f.kind << " " << DescribeFinding(f) << "\n";
  }
}

void Dumper::RecordLine(const std::string& name, const log::Record& record,
                        const Schema* schema, uint64_t snapshot_lsn) {
  const uint64_t lsn = snapshot_lsn != 0 ? snapshot_lsn : record.lsn;
  ++records_read_;
  if (!TypeWanted(record.type)) return;
  if (record.type == log::kManifest) {
    // The MANIFEST's frame LSN means nothing in the log's order: an LSN
    // range leaves it out.
    if (from_lsn > 0 || to_lsn != std::numeric_limits<uint64_t>::max()) return;
  } else if (lsn < from_lsn || lsn > to_lsn) {
    return;
  }
  DecodedRecord d =
      decoder.Decode(record.type, record.payload, record.lsn, schema,
                     json ? Decoder::Render::kJson : Decoder::Render::kText);
  if (has_session && (!d.has_session || d.session != session)) return;
  Describe(name);
  if (!d.error.empty()) {
    // The frame is intact but its content is not what the type promises:
    // recovery would fail on it, so it counts as damage.
    Finding f;
    f.severity = Finding::Severity::kDamage;
    f.kind = "undecodable";
    f.file = name;
    f.offset = record.offset;
    f.bytes = record.framed_size;
    f.detail = absl::StrCat("lsn ", record.lsn, ": ", d.error);
    findings_.push_back(f);
  }
  if (json) {
    JsonObject o;
    o.Add("entry", "record")
        .Add("file", name)
        .Add("offset", record.offset)
        .Add("lsn", lsn);
    if (snapshot_lsn != 0) o.Add("ordinal", record.lsn);
    o.Add("type", log::RecordTypeName(record.type))
        .Add("length", static_cast<uint64_t>(record.payload.size()));
    if (!d.tier.empty()) o.Add("tier", d.tier);
    o.Merge(d.json);
    if (!d.error.empty()) o.Add("error", d.error);
    if (hex) o.Add("hex", Hex(record.payload));
    ctx_.out << o.Build() << "\n";
    return;
  }
  ctx_.out << name << " off=" << record.offset << " lsn=" << lsn;
  if (snapshot_lsn != 0) ctx_.out << " ord=" << record.lsn;
  ctx_.out << " type=" << log::RecordTypeName(record.type)
           << " len=" << record.payload.size();
  if (d.has_session) ctx_.out << " session=" << QuoteSession(d.session);
  if (!d.tier.empty()) ctx_.out << " tier=" << d.tier;
  if (!d.text.empty()) ctx_.out << " " << d.text;
  if (hex) ctx_.out << " hex=" << Hex(record.payload);
  ctx_.out << "\n";
}

void Dumper::DumpFile(const std::string& name, uint64_t snapshot_lsn) {
  const std::string path = JoinPath(dir_, name);
  absl::StatusOr<HeaderInfo> info = ReadHeader(ctx_.fs, path);
  if (info.ok()) FileLine(name, *info);
  const Schema* schema = nullptr;
  if (info.ok() && info->status == log::HeaderStatus::kOk) {
    schema = decoder.SchemaFor(info->header.schema);
  }
  FileScanResult scan =
      ScanFile(ctx_.fs, dir_, name, [&](const log::Record& record) {
        RecordLine(name, record, schema, snapshot_lsn);
      });
  for (const Finding& f : scan.findings) Problem(f);
}

void Dumper::DumpSnapshotsBefore(uint64_t lsn) {
  while (next_snapshot_ < snapshots_.size() &&
         snapshots_[next_snapshot_].number < lsn) {
    const DirEntries::Numbered& snap = snapshots_[next_snapshot_++];
    if (snap.number < from_lsn || snap.number > to_lsn) continue;
    DumpFile(snap.name, snap.number);
  }
}

int Dumper::Run() {
  absl::StatusOr<DirEntries> entries = ScanDir(ctx_.fs, dir_);
  if (!entries.ok()) return FailStatus(ctx_, "dump", entries.status());
  if (entries->empty()) {
    return Fail(ctx_, "dump",
                absl::StrCat("no log segments, snapshots or MANIFEST in ", dir_,
                             " (not a walstate data directory?)"),
                kExitError);
  }
  snapshots_ = entries->snapshots;
  uint64_t total = 0;
  for (const auto& seg : entries->segments) {
    absl::StatusOr<HeaderInfo> info =
        ReadHeader(ctx_.fs, JoinPath(dir_, seg.name));
    if (info.ok()) {
      total += info->file_size;
      headers_[seg.name] = *info;
    }
  }

  if (entries->has_manifest) DumpFile(log::kManifestFileName, 0);

  Progress progress(ctx_, "dump", total, /*streams_output=*/true);
  if (!entries->segments.empty()) {
    std::string current;
    const Schema* schema = nullptr;
    // File lines go out in segment order, each before the first record or
    // problem of its file, including files that yield no record.
    size_t described = 0;
    auto describe_upto = [&](const std::string& name) {
      size_t i = described;
      while (i < entries->segments.size() &&
             entries->segments[i].name != name) {
        ++i;
      }
      if (i == entries->segments.size()) return;  // not a segment
      for (; described <= i; ++described) {
        auto h = headers_.find(entries->segments[described].name);
        if (h != headers_.end()) FileLine(h->first, h->second);
      }
    };
    LogScanCallbacks callbacks;
    callbacks.on_finding = [&](const Finding& f) {
      describe_upto(f.file);
      Problem(f);
    };
    callbacks.on_record = [&](const log::Record& record) {
      DumpSnapshotsBefore(record.lsn);
      std::string name = BaseName(record.file);
      if (name != current) {
        current = name;
        describe_upto(name);
        auto it = headers_.find(name);
        schema = nullptr;
        if (it != headers_.end() &&
            it->second.status == log::HeaderStatus::kOk) {
          schema = decoder.SchemaFor(it->second.header.schema);
        }
      }
      RecordLine(name, record, schema, 0);
    };
    absl::StatusOr<LogScanResult> scan =
        ScanLog(ctx_.fs, dir_, callbacks, &progress);
    if (!scan.ok()) return FailStatus(ctx_, "dump", scan.status());
    for (const auto& seg : entries->segments) {
      auto h = headers_.find(seg.name);
      if (h != headers_.end()) FileLine(seg.name, h->second);
    }
  }
  progress.Done();
  DumpSnapshotsBefore(std::numeric_limits<uint64_t>::max());

  TornWithNothingReadable(records_read_ > 0, &findings_);
  int code = ExitCodeFor(findings_);
  if (code != kExitOk) {
    ctx_.err << "walctl dump: " << findings_.size()
             << (findings_.size() == 1 ? " problem" : " problems") << " found ("
             << (code == kExitTornTail ? "torn tail only" : "damage")
             << "); 'walctl verify " << dir_ << "' explains\n";
  }
  return code;
}

}  // namespace

int RunDump(Context& ctx, const std::vector<std::string>& args) {
  ParsedArgs parsed;
  int code = kExitOk;
  if (!ParseOrExit(ctx, kSpec, args, &parsed, &code)) return code;
  Dumper dumper(ctx, parsed.positional()[0]);
  dumper.json = parsed.Has("json");
  dumper.hex = parsed.Has("hex");
  if (parsed.Has("full")) dumper.decoder = Decoder(0);
  if (parsed.Has("session")) {
    dumper.has_session = true;
    dumper.session = parsed.Get("session");
  }
  auto usage = [&](const absl::Status& s) {
    ctx.err << "walctl dump: " << s.message()
            << " (see 'walctl dump --help')\n";
    return kExitUsage;
  };
  if (parsed.Has("from-lsn")) {
    absl::StatusOr<uint64_t> v = parsed.GetUint64("from-lsn");
    if (!v.ok()) return usage(v.status());
    dumper.from_lsn = *v;
  }
  if (parsed.Has("to-lsn")) {
    absl::StatusOr<uint64_t> v = parsed.GetUint64("to-lsn");
    if (!v.ok()) return usage(v.status());
    dumper.to_lsn = *v;
  }
  if (dumper.from_lsn > dumper.to_lsn) {
    return usage(absl::InvalidArgumentError("--from-lsn is after --to-lsn"));
  }
  if (parsed.Has("type")) {
    absl::StatusOr<std::set<uint8_t>> types = ParseTypes(parsed.Get("type"));
    if (!types.ok()) return usage(types.status());
    dumper.types = *types;
  }
  return dumper.Run();
}

}  // namespace walctl
}  // namespace walstate
