// walctl repair: makes a damaged data directory acceptable to default
// recovery again, after backing up every file it changes.
//
// Without --salvage it does only what Engine::Open would do anyway: cut a
// torn tail, remove a last segment whose header a crash left torn, remove
// leftover *.tmp files. With --salvage it also drops damage:
//  - a damaged log record (or a range of them) is replaced by "filler"
//    records of an optional record type, one per lost LSN, so that LSNs stay
//    contiguous; recovery skips optional types, so the log reads cleanly and
//    the records after the damage are kept. Tick records whose tick-begin was
//    lost are dropped the same way, since recovery would refuse them.
//  - a segment whose header is unreadable is replaced by one of fillers;
//    missing segment numbers are recreated empty.
//  - a damaged snapshot named by the MANIFEST, or a damaged MANIFEST, is
//    replaced by a MANIFEST naming the newest intact snapshots.
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/fs/backup.h"
#include "engine/snapshot/manifest.h"
#include "tools/walctl/checks.h"
#include "tools/walctl/decode.h"
#include "tools/walctl/scan.h"
#include "tools/walctl/walctl.h"

namespace walstate {
namespace walctl {
namespace {

constexpr char kHelp[] =
    R"(usage: walctl repair DIR [--fix] [--salvage] [--backup-dir PATH] [--json]

Says what it takes to make the data directory DIR acceptable to default
recovery, and with --fix does it, after copying every file it changes or
removes into a backup folder (DIR/walctl-backup-<UTC time> unless
--backup-dir is given) whose name it prints.

Without --salvage it only does what opening the store would do anyway: cut a
torn tail, remove a last segment whose header a crash left torn, and remove
leftover *.tmp files. With --salvage it also drops damage: damaged or
undecodable log records (and tick records whose tick lost its beginning) are
replaced by filler records that recovery skips (salvage-filler), so the log stays
contiguous and every intact record is kept; a segment with an unreadable
header is replaced by fillers; a damaged MANIFEST or damaged snapshot it names
is replaced by a MANIFEST naming the newest intact snapshots. Records lost to
damage are lost: the output lists their LSNs.

flags:
  --fix              apply the plan (otherwise nothing is changed)
  --salvage          also drop damaged records and files (see above)
  --backup-dir PATH  where to copy the files before changing them (must not
                     exist yet)
  --json             one JSON object with the plan and the outcome

exit: without --fix: 0 nothing to do, 1 only a torn tail, 2 damage
      with --fix: the exit code of 'walctl verify' after the repair
      (0 when the directory is now clean)
      75 the directory is locked by a running engine; 64 usage error
)";

const CommandSpec kSpec = {"repair",
                           kHelp,
                           {{"fix", false},
                            {"salvage", false},
                            {"backup-dir", true},
                            {"json", false}}};

constexpr uint8_t kFillerType = kSalvageFillerType;

// "7" or "7..9".
std::string LsnRange(uint64_t first, uint64_t last) {
  return first == last ? absl::StrCat(first) : absl::StrCat(first, "..", last);
}

uint64_t NewSalt() {
  std::random_device rd;
  uint64_t salt = 0;
  while (salt == 0) salt = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  return salt;
}

// A set of LSNs kept as disjoint ranges [first, last].
class LsnRanges {
 public:
  void Add(uint64_t first, uint64_t last) {
    if (first > last) return;
    // Merge with a range that ends right before `first`.
    auto it = ranges_.upper_bound(first);
    if (it != ranges_.begin()) {
      auto prev = std::prev(it);
      if (prev->second + 1 >= first) {
        prev->second = std::max(prev->second, last);
        return;
      }
    }
    ranges_[first] = last;
  }
  bool Contains(uint64_t lsn) const {
    auto it = ranges_.upper_bound(lsn);
    if (it == ranges_.begin()) return false;
    return std::prev(it)->second >= lsn;
  }
  bool empty() const { return ranges_.empty(); }
  uint64_t count() const {
    uint64_t n = 0;
    for (const auto& [a, b] : ranges_) n += b - a + 1;
    return n;
  }
  std::string ToString() const {
    std::vector<std::string> parts;
    for (const auto& [a, b] : ranges_) {
      parts.push_back(a == b ? absl::StrCat(a) : absl::StrCat(a, "..", b));
    }
    return absl::StrJoin(parts, ",");
  }

 private:
  std::map<uint64_t, uint64_t> ranges_;
};

struct SegmentPlan {
  enum class Action { kKeep, kCut, kRemove, kRewrite, kCreate };
  Action action = Action::kKeep;
  std::string name;
  uint64_t number = 0;
  bool needs_salvage = false;  // the action drops damage
  uint64_t cut_offset = 0;
  uint64_t cut_bytes = 0;
  uint64_t kept = 0;
  LsnRanges fillers;  // LSNs written as fillers into this segment
  std::vector<std::string> reasons;
};

const char* ActionName(SegmentPlan::Action a) {
  switch (a) {
    case SegmentPlan::Action::kKeep:
      return "keep";
    case SegmentPlan::Action::kCut:
      return "cut";
    case SegmentPlan::Action::kRemove:
      return "remove";
    case SegmentPlan::Action::kRewrite:
      return "rewrite";
    case SegmentPlan::Action::kCreate:
      return "create";
  }
  return "keep";
}

// A rewritten segment on its way to disk: written to "<name>.tmp" as records
// come (so memory stays bounded whatever the segment's size), then synced and
// renamed over the original. Removed again unless Finish() succeeds.
//
// Its last frame is written only after an fdatasync of everything before it
// and carries kRecordFlagAfterSync, as the log writer would set it: damage
// anywhere before that frame then reads as corruption of durable data, never
// as a torn tail that default recovery would silently cut.
class SegmentOutput {
 public:
  SegmentOutput(FileSystem* fs, std::string dir, std::string name)
      : fs_(fs), dir_(std::move(dir)), name_(std::move(name)) {}
  ~SegmentOutput() {
    if (file_ != nullptr) {
      (void)file_->Close();
      (void)fs_->DeleteFile(JoinPath(dir_, name_ + ".tmp"));
    }
  }

  absl::Status Start(const std::string& header) {
    absl::StatusOr<std::unique_ptr<WritableFile>> file =
        fs_->NewWritableFile(JoinPath(dir_, name_ + ".tmp"));
    if (!file.ok()) return file.status();
    file_ = std::move(*file);
    buffer_ = header;
    return absl::OkStatus();
  }

  // Appends one record; the previous one goes to the buffer, which is written
  // out once it is large.
  absl::Status Add(uint64_t salt, uint64_t lsn, uint8_t type,
                   absl::string_view payload) {
    buffer_ += last_;
    last_.clear();
    log::EncodeRecord(salt, lsn, type, payload, &last_);
    salt_ = salt;
    if (buffer_.size() < (4u << 20)) return absl::OkStatus();
    absl::Status s = file_->Append(buffer_);
    buffer_.clear();
    return s;
  }

  absl::Status Finish() {
    absl::Status s = file_->Append(buffer_);
    if (s.ok() && !last_.empty()) {
      s = file_->Sync();
      MarkAfterSync();
      if (s.ok()) s = file_->Append(last_);
    }
    if (s.ok()) s = file_->Sync();
    absl::Status c = file_->Close();
    if (s.ok()) s = c;
    file_.reset();
    const std::string path = JoinPath(dir_, name_);
    // The rewritten segment keeps the mode of the one it replaces.
    absl::StatusOr<bool> existed = fs_->FileExists(path);
    if (s.ok() && existed.ok() && *existed) {
      absl::StatusOr<uint32_t> mode = fs_->FileMode(path);
      if (!mode.ok()) s = mode.status();
      if (s.ok() && *mode != fs_->new_file_mode()) {
        s = fs_->SetFileMode(path + ".tmp", *mode);
      }
    }
    if (s.ok()) s = fs_->RenameFile(path + ".tmp", path);
    if (s.ok()) s = fs_->SyncDir(dir_);
    if (!s.ok()) (void)fs_->DeleteFile(path + ".tmp");
    return s;
  }

 private:
  // Sets the flag on `last_` and recomputes its hash (format.h: XXH3-64
  // seeded with the salt over the frame from byte 8 on).
  void MarkAfterSync() {
    log::SetRecordFlags(salt_, log::kRecordFlagAfterSync, last_.data(),
                        last_.size());
  }

  FileSystem* fs_;
  const std::string dir_;
  const std::string name_;
  std::unique_ptr<WritableFile> file_;
  std::string buffer_;
  std::string last_;  // the last frame so far, not yet in buffer_
  uint64_t salt_ = 0;
};

// At most this many fillers per repair (24 bytes each: 1.5 GiB). A larger
// gap comes from a forged or misplaced header, not from lost records.
constexpr uint64_t kMaxFillers = uint64_t{1} << 26;

// Plans (and with `apply`, performs) the log part of a repair. Both passes
// run the same code over the same unchanged files, so the second one makes
// exactly the decisions the first one printed.
class LogRepair {
 public:
  LogRepair(Context& ctx, const std::string& dir, const DirEntries& entries,
            uint64_t lower_bound, bool salvage)
      : ctx_(ctx),
        dir_(dir),
        entries_(entries),
        lower_bound_(lower_bound),
        salvage_(salvage) {}

  // Fills plans(); with `apply`, writes rewritten and created segments under
  // a temporary name and renames them into place. Cuts and removals are left
  // to the caller (after its backup).
  absl::Status Run(bool apply);

  const std::vector<SegmentPlan>& plans() const { return plans_; }
  // First LSN of the log once repaired (0 if there is no log).
  uint64_t first_lsn() const { return first_lsn_; }
  const std::string& fallback_schema() const { return schema_; }

 private:
  // The first LSN of the next segment after `i` whose header is readable.
  bool NextReadableFirstLsn(size_t i, uint64_t* lsn);
  bool Drop(const log::Record& record, const Schema* schema, std::string* why);
  // Records LSNs [from, to) as lost and, when `out` is not null, writes a
  // filler for each. False when that would pass kMaxFillers.
  bool AppendFillers(uint64_t salt, uint64_t from, uint64_t to,
                     SegmentPlan* plan, SegmentOutput* out);
  absl::Status TooManyFillers(const std::string& name) const;

  Context& ctx_;
  const std::string dir_;
  const DirEntries& entries_;
  const uint64_t lower_bound_;
  const bool salvage_;
  std::vector<SegmentPlan> plans_;
  LsnRanges lost_;
  Decoder decoder_;
  uint64_t first_lsn_ = 0;
  std::string schema_;  // a schema blob for segments whose header is lost
  std::map<size_t, HeaderInfo> headers_;
  uint64_t fillers_ = 0;
  // The actions of the planning pass, by segment name: the applying pass
  // writes only the segments it planned to rewrite.
  std::map<std::string, SegmentPlan::Action> planned_;
};

bool LogRepair::NextReadableFirstLsn(size_t i, uint64_t* lsn) {
  for (size_t j = i + 1; j < entries_.segments.size(); ++j) {
    auto it = headers_.find(j);
    if (it != headers_.end() && it->second.status == log::HeaderStatus::kOk) {
      *lsn = it->second.header.first_lsn;
      return true;
    }
  }
  return false;
}

bool LogRepair::Drop(const log::Record& record, const Schema* schema,
                     std::string* why) {
  DecodedRecord d = decoder_.Decode(record.type, record.payload, record.lsn,
                                    schema, Decoder::Render::kCheck);
  if (!d.error.empty()) {
    *why = absl::StrCat("lsn ", record.lsn, " undecodable: ", d.error);
    return true;
  }
  uint64_t tick = 0;
  if (record.type == log::kTickEntry) {
    record::Update u;
    u.ParseFromArray(record.payload.data(),
                     static_cast<int>(record.payload.size()));
    tick = u.tick();
  } else if (record.type == log::kTickCommit ||
             record.type == log::kTickAbort) {
    record::TickEnd e;
    e.ParseFromArray(record.payload.data(),
                     static_cast<int>(record.payload.size()));
    tick = e.tick();
  }
  if (tick != 0 && lost_.Contains(tick)) {
    *why =
        absl::StrCat("lsn ", record.lsn, " ", log::RecordTypeName(record.type),
                     " of tick ", tick, ", whose beginning was lost");
    return true;
  }
  return false;
}

bool LogRepair::AppendFillers(uint64_t salt, uint64_t from, uint64_t to,
                              SegmentPlan* plan, SegmentOutput* out) {
  if (from >= to) return true;
  if (to - from > kMaxFillers - fillers_) return false;
  fillers_ += to - from;
  plan->fillers.Add(from, to - 1);
  lost_.Add(from, to - 1);
  if (out == nullptr) return true;
  for (uint64_t lsn = from; lsn < to; ++lsn) {
    // An empty payload keeps a filler at 24 bytes; its type says it all.
    if (!out->Add(salt, lsn, kFillerType, "").ok()) {
      return true;  // the write error shows again in Finish()
    }
  }
  return true;
}

absl::Status LogRepair::TooManyFillers(const std::string& name) const {
  return absl::FailedPreconditionError(absl::StrCat(
      name, ": the LSN gap to fill is larger than ", kMaxFillers,
      " records; a header with a wrong first LSN? Repair will not fill it; "
      "restore the directory from a backup"));
}

std::string SegmentHeader(uint64_t number, uint64_t first_lsn, uint64_t salt,
                          const std::string& schema) {
  log::FileHeader header;
  header.kind = log::FileKind::kSegment;
  header.file_number = number;
  header.first_lsn = first_lsn;
  header.salt = salt;
  header.created_micros =
      static_cast<uint64_t>(absl::ToUnixMicros(absl::Now()));
  header.schema = schema;
  std::string bytes;
  log::EncodeFileHeader(header, &bytes);
  return bytes;
}

absl::Status LogRepair::Run(bool apply) {
  if (apply) {
    planned_.clear();
    for (const SegmentPlan& p : plans_) planned_[p.name] = p.action;
  }
  // Only --salvage writes segments; the caller cuts and removes.
  const bool write = apply && salvage_;
  plans_.clear();
  lost_ = LsnRanges();
  headers_.clear();
  first_lsn_ = 0;
  fillers_ = 0;
  const auto& segs = entries_.segments;
  for (size_t i = 0; i < segs.size(); ++i) {
    absl::StatusOr<HeaderInfo> h =
        ReadHeader(ctx_.fs, JoinPath(dir_, segs[i].name));
    if (!h.ok()) return h.status();
    if (h->status == log::HeaderStatus::kBadVersion) {
      return absl::FailedPreconditionError(
          absl::StrCat(segs[i].name, ": ", h->detail,
                       "; repair will not rewrite a newer format"));
    }
    if (h->status == log::HeaderStatus::kOk && schema_.empty()) {
      schema_ = h->header.schema;
    }
    headers_[i] = *h;
  }
  // A segment whose magic is not walstate's (bytes there, not zeros) is
  // another program's file under our name: salvage would replace it by
  // fillers and call the store clean. Refused, unless it is a last segment
  // small enough to be a create a crash interrupted (log/reader.h).
  for (size_t i = 0; i < segs.size(); ++i) {
    if (headers_[i].status != log::HeaderStatus::kBadMagic) continue;
    const std::string path = JoinPath(dir_, segs[i].name);
    std::string head;
    absl::StatusOr<std::unique_ptr<RandomAccessFile>> f =
        ctx_.fs->NewRandomAccessFile(path);
    if (!f.ok()) return f.status();
    char buf[8];
    absl::StatusOr<absl::string_view> got = (*f)->Read(0, sizeof(buf), buf);
    if (!got.ok()) return got.status();
    if (got->find_first_not_of('\0') == absl::string_view::npos) continue;
    absl::StatusOr<uint64_t> size = (*f)->Size();
    if (!size.ok()) return size.status();
    const uint64_t header_bound =
        schema_.empty() && i + 1 == segs.size()
            ? log::kFileHeaderFixedSize + log::kMaxSchemaSize
            : log::kFileHeaderFixedSize + log::AlignUp(schema_.size());
    if (i + 1 == segs.size() && *size <= header_bound) continue;
    return absl::FailedPreconditionError(absl::StrCat(
        segs[i].name, ": ", headers_[i].detail,
        "; its name is walstate's but its contents are not, and repair will "
        "not turn another program's file into fillers. Move it out of the "
        "directory"));
  }

  bool have_expected = false;
  uint64_t expected = 0;
  auto need_expected = [&]() {
    if (!have_expected) {
      have_expected = true;
      expected = lower_bound_;
    }
  };

  for (size_t i = 0; i < segs.size(); ++i) {
    const bool is_last = i + 1 == segs.size();
    const std::string path = JoinPath(dir_, segs[i].name);
    const HeaderInfo& info = headers_[i];

    // Segment numbers must be consecutive: recreate missing ones empty.
    if (i > 0 && segs[i].number != segs[i - 1].number + 1) {
      for (uint64_t n = segs[i - 1].number + 1; n < segs[i].number; ++n) {
        SegmentPlan plan;
        plan.action = SegmentPlan::Action::kCreate;
        plan.name = log::SegmentFileName(n);
        plan.number = n;
        plan.needs_salvage = true;
        plan.reasons.push_back("segment number missing from the sequence");
        need_expected();
        if (write) {
          SegmentOutput out(ctx_.fs, dir_, plan.name);
          absl::Status s =
              out.Start(SegmentHeader(n, expected, NewSalt(), schema_));
          if (s.ok()) s = out.Finish();
          if (!s.ok()) return s;
        }
        plans_.push_back(std::move(plan));
      }
    }

    SegmentPlan plan;
    plan.name = segs[i].name;
    plan.number = segs[i].number;
    const uint64_t salt = NewSalt();
    auto planned = planned_.find(plan.name);
    const bool rewriting = write && planned != planned_.end() &&
                           planned->second == SegmentPlan::Action::kRewrite;
    std::unique_ptr<SegmentOutput> out;
    if (rewriting) {
      out = std::make_unique<SegmentOutput>(ctx_.fs, dir_, plan.name);
    }

    if (info.status != log::HeaderStatus::kOk) {
      // No usable header: nothing in the file can be verified. Whether it is
      // a create a crash interrupted (a torn tail) is the reader's call, the
      // same one recovery makes.
      bool torn = false;
      if (is_last) {
        absl::StatusOr<std::unique_ptr<log::FileReader>> reader =
            log::FileReader::Open(ctx_.fs, path, log::RecoveryMode::kSalvage,
                                  /*is_last=*/true);
        if (reader.ok()) {
          for (const log::Problem& p : (*reader)->report().problems) {
            torn |= p.kind == log::Problem::Kind::kTornTail;
          }
        }
      }
      if (is_last) {
        plan.action = SegmentPlan::Action::kRemove;
        plan.needs_salvage = !torn;
        plan.reasons.push_back(
            absl::StrCat(torn ? "torn header (a crash right after create): "
                              : "unreadable header: ",
                         info.detail));
      } else {
        plan.action = SegmentPlan::Action::kRewrite;
        plan.needs_salvage = true;
        plan.reasons.push_back(
            absl::StrCat("unreadable header (", info.detail,
                         "); its records are lost and replaced by fillers"));
        need_expected();
        const uint64_t first = expected;
        if (first_lsn_ == 0) first_lsn_ = first;
        if (out != nullptr) {
          absl::Status s =
              out->Start(SegmentHeader(plan.number, first, salt, schema_));
          if (!s.ok()) return s;
        }
        uint64_t next = 0;
        if (NextReadableFirstLsn(i, &next) && next > expected) {
          if (!AppendFillers(salt, expected, next, &plan, out.get())) {
            return TooManyFillers(plan.name);
          }
          expected = next;
        }
        if (out != nullptr) {
          absl::Status s = out->Finish();
          if (!s.ok()) return s;
        }
      }
      plans_.push_back(std::move(plan));
      continue;
    }

    const log::FileHeader& h = info.header;
    if (!have_expected) {
      have_expected = true;
      expected = h.first_lsn;
    }
    const uint64_t first = expected;
    if (first_lsn_ == 0) first_lsn_ = first;
    bool rewrite = h.first_lsn != first;
    if (h.first_lsn > first) {
      plan.reasons.push_back(absl::StrCat("lsn ",
                                          LsnRange(first, h.first_lsn - 1),
                                          " missing before this segment"));
    } else if (h.first_lsn < first) {
      plan.reasons.push_back(
          absl::StrCat("overlaps the previous segment (starts at lsn ",
                       h.first_lsn, ", expected ", first, ")"));
    }
    std::string error;
    const Schema* schema = decoder_.SchemaFor(h.schema, &error);
    if (out != nullptr) {
      absl::Status s =
          out->Start(SegmentHeader(plan.number, first, salt, h.schema));
      if (!s.ok()) return s;
    }

    absl::StatusOr<std::unique_ptr<log::FileReader>> reader =
        log::FileReader::Open(ctx_.fs, path, log::RecoveryMode::kSalvage,
                              is_last);
    if (!reader.ok()) return reader.status();
    log::Record record;
    while ((*reader)->Next(&record)) {
      if (record.lsn < expected) {
        rewrite = true;  // overlap: already read from an earlier segment
        continue;
      }
      if (record.lsn > expected) {
        rewrite = true;
        plan.reasons.push_back(absl::StrCat(
            "lsn ", LsnRange(expected, record.lsn - 1), " lost to damage"));
        if (!AppendFillers(salt, expected, record.lsn, &plan, out.get())) {
          return TooManyFillers(plan.name);
        }
      }
      std::string why;
      if (Drop(record, schema, &why)) {
        rewrite = true;
        plan.reasons.push_back(why);
        if (!AppendFillers(salt, record.lsn, record.lsn + 1, &plan,
                           out.get())) {
          return TooManyFillers(plan.name);
        }
      } else {
        plan.kept++;
        if (out != nullptr) {
          absl::Status s =
              out->Add(salt, record.lsn, record.type, record.payload);
          if (!s.ok()) return s;
        }
      }
      expected = record.lsn + 1;
    }
    if (!(*reader)->status().ok()) return (*reader)->status();
    bool torn = false;
    for (const log::Problem& p : (*reader)->report().problems) {
      if (p.kind == log::Problem::Kind::kTornTail) {
        torn = true;
        plan.cut_offset = p.offset;
        plan.cut_bytes = p.bytes;
      } else {
        rewrite = true;
        plan.reasons.push_back(absl::StrCat(log::ProblemKindName(p.kind),
                                            " at offset ", p.offset, " (",
                                            p.bytes, " bytes): ", p.detail));
      }
    }
    if (!is_last) {
      uint64_t next = 0;
      if (NextReadableFirstLsn(i, &next) && next > expected && rewrite) {
        // The next segment starts later: the lost LSNs go here, since this
        // file is rewritten anyway.
        plan.reasons.push_back(absl::StrCat("lsn ",
                                            LsnRange(expected, next - 1),
                                            " lost at the end of the segment"));
        if (!AppendFillers(salt, expected, next, &plan, out.get())) {
          return TooManyFillers(plan.name);
        }
        expected = next;
      }
    }
    if (rewrite) {
      plan.action = SegmentPlan::Action::kRewrite;
      plan.needs_salvage = true;
      if (torn) {
        plan.reasons.push_back(absl::StrCat("torn tail of ", plan.cut_bytes,
                                            " bytes at offset ",
                                            plan.cut_offset, " dropped"));
      }
    } else if (torn) {
      plan.action = SegmentPlan::Action::kCut;
    }
    if (out != nullptr) {
      // The same files read the same way: the plan cannot have changed.
      if (!rewrite) {
        return absl::InternalError(absl::StrCat(
            plan.name,
            " changed between planning and repair; nothing of it was "
            "replaced"));
      }
      absl::Status s = out->Finish();
      if (!s.ok()) return s;
    }
    plans_.push_back(std::move(plan));
  }
  return absl::OkStatus();
}

// The MANIFEST part of a salvage: which snapshots to publish instead of a
// damaged MANIFEST or damaged named snapshots.
struct ManifestPlan {
  bool needed = false;   // something named by (or in) the MANIFEST is damaged
  bool refuse = false;   // no way to a consistent state; `reasons` says why
  bool remove = false;   // remove MANIFEST: no snapshot, the log starts at 1
  bool rewrite = false;  // publish `next`
  record::Manifest next;
  std::vector<std::string> remove_snapshots;  // damaged ones it named
  std::vector<std::string> reasons;
};

ManifestPlan PlanManifest(Context& ctx, const std::string& dir,
                          const DirEntries& entries,
                          const ManifestCheck& manifest,
                          const std::vector<SnapshotCheck>& snapshots,
                          uint64_t log_first_lsn) {
  ManifestPlan plan;
  if (manifest.present && !manifest.ok) {
    plan.needed = true;
    plan.reasons.push_back("MANIFEST is damaged");
  }
  uint64_t current_lsn = 0;  // of an intact current snapshot
  if (manifest.ok) {
    for (const auto* ref :
         {&manifest.manifest.current(), &manifest.manifest.previous()}) {
      if (ref->file().empty()) continue;
      const SnapshotCheck* found = nullptr;
      for (const SnapshotCheck& c : snapshots) {
        if (c.file == ref->file()) found = &c;
      }
      if (found == nullptr) {
        plan.needed = true;
        plan.reasons.push_back(
            absl::StrCat("MANIFEST names ", ref->file(), ", which is missing"));
      } else if (!found->ok()) {
        plan.needed = true;
        plan.remove_snapshots.push_back(found->file);
        plan.reasons.push_back(
            absl::StrCat("snapshot ", found->file, " is damaged"));
      } else if (found->lsn != ref->lsn() ||
                 found->sessions != ref->sessions()) {
        // What verify reports as a MANIFEST that disagrees with its file:
        // the entry is written again from the file.
        plan.needed = true;
        plan.reasons.push_back(absl::StrCat(
            "MANIFEST names ", ref->file(), " at lsn ", ref->lsn(), " with ",
            ref->sessions(), " sessions, but the file is at lsn ", found->lsn,
            " with ", found->sessions, " sessions"));
      } else if (ref == &manifest.manifest.current()) {
        current_lsn = found->lsn;
      }
    }
  }
  // The log must continue where the published snapshot ends; if it starts
  // later (its older segments are gone), only a newer snapshot can bridge it.
  if (!plan.needed && log_first_lsn > current_lsn + 1) {
    plan.needed = true;
    plan.reasons.push_back(absl::StrCat(
        "the log starts at lsn ", log_first_lsn, " but ",
        current_lsn == 0 ? std::string("no snapshot is published")
                         : absl::StrCat("the published snapshot ends at lsn ",
                                        current_lsn)));
  }
  if (!plan.needed) return plan;
  // The newest intact snapshots the log continues from.
  std::vector<const SnapshotCheck*> usable;
  for (const SnapshotCheck& c : snapshots) {
    if (!c.ok()) continue;
    if (log_first_lsn != 0 && c.lsn + 1 < log_first_lsn) continue;
    usable.push_back(&c);
  }
  std::sort(usable.begin(), usable.end(),
            [](const SnapshotCheck* a, const SnapshotCheck* b) {
              return a->lsn > b->lsn;
            });
  uint64_t generation = manifest.ok ? manifest.manifest.generation() : 0;
  if (!manifest.ok) {
    absl::StatusOr<HeaderInfo> h =
        ReadHeader(ctx.fs, JoinPath(dir, log::kManifestFileName));
    if (h.ok() && h->status == log::HeaderStatus::kOk) {
      generation = h->header.file_number;
    }
  }
  if (usable.empty()) {
    if (log_first_lsn <= 1) {
      plan.remove = true;
      plan.reasons.push_back(
          "no intact snapshot, but the log holds every record from lsn 1: "
          "recovery replays it all without a MANIFEST");
    } else {
      plan.refuse = true;
      plan.reasons.push_back(absl::StrCat(
          "no intact snapshot, and the log starts at lsn ", log_first_lsn,
          ": the sessions before it exist nowhere else; restore the "
          "directory from a backup"));
    }
    return plan;
  }
  plan.rewrite = true;
  plan.next.set_generation(generation + 1);
  auto fill = [&](const SnapshotCheck& c, record::Manifest::SnapshotRef* ref) {
    ref->set_file(c.file);
    ref->set_lsn(c.lsn);
    ref->set_sessions(c.sessions);
    ref->set_bytes(c.bytes);
  };
  fill(*usable[0], plan.next.mutable_current());
  if (usable.size() > 1) fill(*usable[1], plan.next.mutable_previous());
  (void)entries;
  return plan;
}

// The first line of `s`.
std::string Lines1(const std::string& s) { return s.substr(0, s.find('\n')); }

// Runs verify on `dir` quietly: its exit code, and its result line.
int VerifyCode(Context& ctx, const std::string& dir, std::string* result) {
  std::ostringstream out, err;
  Context quiet(out, err);
  quiet.fs = ctx.fs;
  const int code = RunVerify(quiet, {dir});
  const std::string text = out.str();
  result->clear();
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, "result: "))
      *result = std::string(line.substr(8));
  }
  if (result->empty()) *result = Lines1(err.str());
  return code;
}

}  // namespace

int RunRepair(Context& ctx, const std::vector<std::string>& args) {
  ParsedArgs parsed;
  int code = kExitOk;
  if (!ParseOrExit(ctx, kSpec, args, &parsed, &code)) return code;
  const std::string dir = parsed.positional()[0];
  const bool fix = parsed.Has("fix");
  const bool salvage = parsed.Has("salvage");
  const bool json = parsed.Has("json");
  if (parsed.Has("backup-dir") && !fix) {
    ctx.err << "walctl repair: --backup-dir needs --fix (see 'walctl repair "
               "--help')\n";
    return kExitUsage;
  }

  absl::StatusOr<DirEntries> entries = ScanDir(ctx.fs, dir);
  if (!entries.ok()) return FailStatus(ctx, "repair", entries.status());
  if (entries->empty()) {
    return Fail(ctx, "repair",
                absl::StrCat("no log segments, snapshots or MANIFEST in ", dir,
                             " (not a walstate data directory?)"),
                kExitError);
  }
  // A running engine appends to the last segment: what looks torn may be an
  // append in progress, and files must not change under it.
  std::unique_ptr<FileLock> lock;
  if (fix) {
    absl::StatusOr<std::unique_ptr<FileLock>> l =
        ctx.fs->LockFile(JoinPath(dir, log::kLockFileName),
                         absl::StrCat("walctl repair (pid ", ::getpid(), ")"));
    if (!l.ok()) return FailStatus(ctx, "repair", l.status());
    lock = std::move(*l);
  } else {
    std::string holder = LockHolder(dir);
    if (!holder.empty()) {
      return Fail(
          ctx, "repair",
          absl::StrCat("lock ", JoinPath(dir, log::kLockFileName), ": held by ",
                       holder, "; stop the process using the directory first"),
          kExitBusy);
    }
  }

  // Snapshots first: the oldest intact published one bounds where a log whose
  // first header is lost must start.
  Decoder decoder;
  ManifestCheck manifest = CheckManifest(ctx.fs, dir);
  std::vector<SnapshotCheck> snapshots;
  for (const auto& snap : entries->snapshots) {
    snapshots.push_back(
        CheckSnapshot(ctx.fs, dir, snap.name, snap.number, &decoder));
  }
  uint64_t lower_bound = 1;
  if (manifest.ok) {
    for (const auto* ref :
         {&manifest.manifest.current(), &manifest.manifest.previous()}) {
      for (const SnapshotCheck& c : snapshots) {
        if (!ref->file().empty() && c.file == ref->file() && c.ok()) {
          lower_bound =
              lower_bound == 1 ? c.lsn + 1 : std::min(lower_bound, c.lsn + 1);
        }
      }
    }
  }

  LogRepair log_repair(ctx, dir, *entries, lower_bound, salvage);
  absl::Status s = log_repair.Run(/*apply=*/false);
  if (!s.ok()) return FailStatus(ctx, "repair", s);
  ManifestPlan mplan = PlanManifest(ctx, dir, *entries, manifest, snapshots,
                                    log_repair.first_lsn());

  // What would be done, and whether it all is allowed without --salvage.
  struct Step {
    std::string action;  // cut, remove, rewrite, create, publish
    std::string file;
    std::string detail;
    bool needs_salvage;
  };
  std::vector<Step> steps;
  for (const SegmentPlan& p : log_repair.plans()) {
    if (p.action == SegmentPlan::Action::kKeep) continue;
    std::string detail;
    if (p.action == SegmentPlan::Action::kCut) {
      detail =
          absl::StrCat("at offset ", p.cut_offset, ", dropping ", p.cut_bytes,
                       " bytes of torn tail (a crash mid-append)");
    } else if (p.action == SegmentPlan::Action::kRewrite) {
      detail = absl::StrCat("keeping ", Count(p.kept, "record"));
      if (!p.fillers.empty()) {
        absl::StrAppend(&detail, ", fillers for lost lsn ",
                        p.fillers.ToString());
      }
    }
    if (!p.reasons.empty()) {
      absl::StrAppend(&detail, detail.empty() ? "" : "; ",
                      absl::StrJoin(p.reasons, "; "));
    }
    steps.push_back({ActionName(p.action), p.name, detail, p.needs_salvage});
  }
  if (mplan.rewrite) {
    std::string detail = absl::StrCat(
        "current ", mplan.next.current().file(), ", previous ",
        mplan.next.previous().file().empty() ? "none"
                                             : mplan.next.previous().file(),
        "; ", absl::StrJoin(mplan.reasons, "; "));
    steps.push_back({"publish", log::kManifestFileName, detail, true});
  }
  if (mplan.remove) {
    steps.push_back({"remove", log::kManifestFileName,
                     absl::StrJoin(mplan.reasons, "; "), true});
  }
  if (!mplan.refuse) {
    for (const std::string& snap : mplan.remove_snapshots) {
      steps.push_back({"remove", snap, "damaged snapshot", true});
    }
  }
  for (const std::string& tmp : entries->tmp_files) {
    steps.push_back({"remove", tmp, "leftover of an interrupted write", false});
  }
  std::vector<std::string> blockers;
  if (mplan.refuse) blockers.push_back(absl::StrJoin(mplan.reasons, "; "));
  bool salvage_needed = false;
  for (const Step& st : steps) salvage_needed |= st.needs_salvage;

  // Without --fix: the plan, and an exit code like verify's.
  auto print_plan = [&]() {
    if (json) return;
    if (steps.empty()) {
      ctx.out << "nothing to repair\n";
    }
    for (const Step& st : steps) {
      ctx.out << st.action << " " << st.file;
      if (!st.detail.empty()) ctx.out << ": " << st.detail;
      if (st.needs_salvage && !salvage) ctx.out << " [needs --salvage]";
      ctx.out << "\n";
    }
    for (const std::string& b : blockers)
      ctx.out << "cannot repair: " << b << "\n";
  };
  auto steps_json = [&]() {
    std::vector<std::string> out;
    for (const Step& st : steps) {
      out.push_back(JsonObject()
                        .Add("action", st.action)
                        .Add("file", st.file)
                        .Add("detail", st.detail)
                        .Add("needs_salvage", st.needs_salvage)
                        .Build());
    }
    return JsonArray(out);
  };

  if (!fix) {
    // The state as it is: verify's verdict is this command's exit code.
    std::string result;
    const int would = VerifyCode(ctx, dir, &result);
    if (json) {
      ctx.out << JsonObject()
                     .Add("dir", dir)
                     .Add("fix", false)
                     .Add("salvage", salvage)
                     .AddRaw("steps", steps_json())
                     .AddRaw("blockers", JsonStringArray(blockers))
                     .Add("verify", result)
                     .Add("exit_code", would)
                     .Build()
              << "\n";
      return would;
    }
    print_plan();
    if (!steps.empty()) {
      ctx.out << "dry run: nothing changed; run with --fix"
              << (salvage_needed && !salvage ? " --salvage" : "")
              << " to apply\n";
    }
    return would;
  }

  // --fix: back up every file a step touches, then apply the steps.
  std::vector<std::string> to_backup;
  for (const Step& st : steps) {
    if (st.action == "create") continue;
    if (st.needs_salvage && !salvage) continue;
    // A MANIFEST to publish where there is none has nothing to keep.
    absl::StatusOr<bool> exists = ctx.fs->FileExists(JoinPath(dir, st.file));
    if (exists.ok() && !*exists) continue;
    to_backup.push_back(st.file);
  }
  std::string backup;
  for (const std::string& name : to_backup) {
    // Before the backup folder exists: a file that cannot be read (a
    // symlink loop, no permission) must not leave an empty folder behind.
    absl::StatusOr<std::unique_ptr<RandomAccessFile>> readable =
        ctx.fs->NewRandomAccessFile(JoinPath(dir, name));
    if (!readable.ok()) {
      return Fail(
          ctx, "repair",
          absl::StrCat("cannot back up ", name,
                       ", nothing was changed: ", readable.status().message()),
          kExitError);
    }
  }
  if (!to_backup.empty()) {
    backup = parsed.Has("backup-dir")
                 ? parsed.Get("backup-dir")
                 : NewBackupDirName(ctx.fs, dir, "walctl-backup");
    absl::StatusOr<bool> exists = ctx.fs->FileExists(backup);
    if (exists.ok() && *exists) {
      return Fail(ctx, "repair",
                  absl::StrCat("backup folder ", backup,
                               " already exists; name a new one"),
                  kExitError);
    }
    s = ctx.fs->CreateDir(backup);
    for (size_t i = 0; s.ok() && i < to_backup.size(); ++i) {
      s = CopyFile(ctx.fs, JoinPath(dir, to_backup[i]),
                   JoinPath(backup, to_backup[i]));
    }
    if (s.ok()) s = ctx.fs->SyncDir(backup);
    if (s.ok()) s = ctx.fs->SyncDir(dir);
    if (!s.ok()) {
      return Fail(ctx, "repair",
                  absl::StrCat("backing up to ", backup,
                               " failed, nothing "
                               "was changed: ",
                               s.message()),
                  kExitError);
    }
  }

  // Rewrites and creates (atomic renames), then cuts and removals.
  if (salvage) {
    s = log_repair.Run(/*apply=*/true);
  }
  std::vector<std::string> done;
  for (const SegmentPlan& p : log_repair.plans()) {
    if (!s.ok()) break;
    if (p.needs_salvage && !salvage) continue;
    const std::string path = JoinPath(dir, p.name);
    switch (p.action) {
      case SegmentPlan::Action::kKeep:
        break;
      case SegmentPlan::Action::kCut:
        s = ctx.fs->TruncateFile(path, p.cut_offset);
        break;
      case SegmentPlan::Action::kRemove:
        s = ctx.fs->DeleteFile(path);
        break;
      case SegmentPlan::Action::kRewrite:
      case SegmentPlan::Action::kCreate:
        break;  // done by Run(apply)
    }
    if (p.action != SegmentPlan::Action::kKeep) {
      done.push_back(absl::StrCat(ActionName(p.action), " ", p.name));
    }
  }
  if (s.ok() && salvage && mplan.rewrite) {
    s = WriteManifest(ctx.fs, dir, mplan.next);
    if (s.ok()) done.push_back("publish MANIFEST");
  }
  if (s.ok() && salvage && mplan.remove) {
    s = ctx.fs->DeleteFile(JoinPath(dir, log::kManifestFileName));
    if (s.ok()) done.push_back("remove MANIFEST");
  }
  if (s.ok() && salvage && !mplan.refuse) {
    for (const std::string& snap : mplan.remove_snapshots) {
      s = ctx.fs->DeleteFile(JoinPath(dir, snap));
      if (!s.ok()) break;
      done.push_back(absl::StrCat("remove ", snap));
    }
  }
  for (const std::string& tmp : entries->tmp_files) {
    if (!s.ok()) break;
    s = ctx.fs->DeleteFile(JoinPath(dir, tmp));
    if (s.ok()) done.push_back(absl::StrCat("remove ", tmp));
  }
  if (s.ok()) s = ctx.fs->SyncDir(dir);
  lock.reset();
  if (!s.ok()) {
    return Fail(ctx, "repair",
                absl::StrCat("repair stopped: ", s.message(),
                             backup.empty() ? ""
                                            : absl::StrCat("; the original "
                                                           "files are in ",
                                                           backup)),
                kExitError);
  }

  // The outcome is what verify says now.
  std::string after_result;
  const int after = VerifyCode(ctx, dir, &after_result);
  if (json) {
    ctx.out << JsonObject()
                   .Add("dir", dir)
                   .Add("fix", true)
                   .Add("salvage", salvage)
                   .AddRaw("steps", steps_json())
                   .AddRaw("done", JsonStringArray(done))
                   .AddRaw("blockers", JsonStringArray(blockers))
                   .Add("backup", backup)
                   .Add("exit_code", after)
                   .Build()
            << "\n";
    return after;
  }
  print_plan();
  if (!backup.empty()) {
    ctx.out << "backup: " << backup << " (" << to_backup.size()
            << (to_backup.size() == 1 ? " file" : " files") << ")\n";
  }
  for (const std::string& d : done) ctx.out << "done: " << d << "\n";
  if (salvage_needed && !salvage) {
    ctx.out << "not done: the steps marked [needs --salvage]\n";
  }
  ctx.out << "after repair, verify: " << after_result << "\n";
  return after;
}

}  // namespace walctl
}  // namespace walstate
