#include "tests/fs/fault_injection_fs.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace walstate {

// A named namespace rather than an anonymous one: Core's members use these
// types, and Core is declared in the header.
namespace fifs_internal {

using OpKind = FaultInjectionFileSystem::OpKind;

absl::Status PosixStyleError(absl::string_view op, absl::string_view path,
                             int err) {
  return ErrnoToStatus(op, path, err);
}

std::string NormalizePath(absl::string_view path) {
  const bool absolute = !path.empty() && path[0] == '/';
  std::vector<absl::string_view> parts;
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  std::string joined = absl::StrJoin(parts, "/");
  return absolute ? absl::StrCat("/", joined) : joined;
}

bool IsRoot(const std::string& p) { return p.empty() || p == "/"; }

std::string Parent(const std::string& p) {
  size_t slash = p.rfind('/');
  if (slash == std::string::npos) return "";
  if (slash == 0) return "/";
  return p.substr(0, slash);
}

// True if `p` lies strictly inside directory `dir` (both normalized).
bool IsUnder(const std::string& p, const std::string& dir) {
  if (p == dir) return false;
  if (dir == "/") return !p.empty() && p[0] == '/';
  if (dir.empty()) return p.empty() || p[0] != '/';
  return absl::StartsWith(p, dir) && p.size() > dir.size() &&
         p[dir.size()] == '/';
}

std::string RelativeTo(const std::string& p, const std::string& dir) {
  if (dir == "/") return p.substr(1);
  if (dir.empty()) return p;
  return p.substr(dir.size() + 1);
}

// One unsynced change to a file's bytes. Truncations come from O_TRUNC
// (NewWritableFile on an existing file, LockFile); TruncateFile syncs.
struct DataOp {
  uint64_t op = 0;
  bool truncate = false;
  uint64_t offset = 0;  // truncate: the new size
  std::string data;
  // A failed fdatasync covered this write: it never reaches the disk.
  bool lost = false;
};

struct Inode {
  std::string current;
  std::string durable;
  std::vector<DataOp> pending;  // since the last successful sync, in order
};

struct Entry {
  bool is_dir = false;
  uint64_t inode = 0;  // files only
};

// A change to one directory entry; durable once its parent is synced.
struct NameEffect {
  std::string path;
  bool remove = false;
  Entry entry;
};

// The effects of one namespace op not yet made durable. A rename has two,
// in different directories, which become durable independently.
struct NameOp {
  uint64_t op = 0;
  std::vector<NameEffect> effects;
};

using Names = std::map<std::string, Entry>;

struct State {
  std::map<uint64_t, Inode> inodes;
  Names current;
  Names durable;
  std::vector<NameOp> pending_names;
  uint64_t next_inode = 1;
};

enum class PlantKind { kNone, kFile, kDirs, kBytes };

// Everything needed to redo an op on a State; the live path and replay both
// go through ApplyOp so they cannot drift apart.
struct LoggedOp {
  FaultInjectionFileSystem::OpRecord rec;
  bool applied = false;  // the op changed state (failed ops mostly do not)
  uint64_t inode = 0;
  std::string data;  // appended bytes, lock line, planted bytes
  PlantKind plant = PlantKind::kNone;
  bool durable = false;  // kPlant kFile
};

void ApplyEffect(Names* names, const NameEffect& e) {
  if (e.remove) {
    names->erase(e.path);
  } else {
    (*names)[e.path] = e.entry;
  }
}

void QueueNameOp(State* s, uint64_t op, std::vector<NameEffect> effects) {
  for (const NameEffect& e : effects) ApplyEffect(&s->current, e);
  s->pending_names.push_back(NameOp{op, std::move(effects)});
}

// Makes the current entry for `path` durable right away (test planting).
void MakeNameDurable(State* s, const std::string& path) {
  for (NameOp& nop : s->pending_names) {
    auto& effects = nop.effects;
    effects.erase(
        std::remove_if(effects.begin(), effects.end(),
                       [&](const NameEffect& e) { return e.path == path; }),
        effects.end());
  }
  s->pending_names.erase(
      std::remove_if(s->pending_names.begin(), s->pending_names.end(),
                     [](const NameOp& n) { return n.effects.empty(); }),
      s->pending_names.end());
  auto it = s->current.find(path);
  if (it == s->current.end()) {
    s->durable.erase(path);
  } else {
    s->durable[path] = it->second;
  }
}

// Applies a data op to `bytes`, writing only the first `len` bytes of an
// append, or none of them (a hole: old bytes or zeros) if !write.
void ApplyData(std::string* bytes, const DataOp& op, bool write, uint64_t len) {
  if (op.truncate) {
    bytes->resize(op.offset, '\0');
    return;
  }
  const uint64_t end = op.offset + len;
  if (bytes->size() < end) bytes->resize(end, '\0');
  if (write && len > 0) bytes->replace(op.offset, len, op.data.data(), len);
}

// What the disk would hold if every pending write were flushed now.
std::string FlushedBytes(const Inode& ino) {
  std::string b = ino.durable;
  for (const DataOp& op : ino.pending) {
    ApplyData(&b, op, !op.lost, op.data.size());
  }
  return b;
}

uint64_t NewInode(State* s) {
  uint64_t id = s->next_inode++;
  s->inodes[id];
  return id;
}

void WriteAt(State* s, uint64_t op, uint64_t inode, uint64_t offset,
             absl::string_view data) {
  Inode& ino = s->inodes[inode];
  DataOp d{op, false, offset, std::string(data), false};
  ApplyData(&ino.current, d, true, d.data.size());
  ino.pending.push_back(std::move(d));
}

void TruncatePending(State* s, uint64_t op, uint64_t inode, uint64_t size) {
  Inode& ino = s->inodes[inode];
  // Nothing on disk or in flight that a truncation could remove.
  if (size == 0 && ino.durable.empty() && ino.pending.empty()) return;
  DataOp d{op, true, size, "", false};
  ApplyData(&ino.current, d, true, 0);
  ino.pending.push_back(std::move(d));
}

void SyncData(State* s, uint64_t inode, bool ok) {
  Inode& ino = s->inodes[inode];
  if (ok) {
    // In place: a WAL is synced thousands of times as it grows, so the cost
    // must follow the unsynced bytes, not the file size.
    for (const DataOp& op : ino.pending) {
      ApplyData(&ino.durable, op, !op.lost, op.data.size());
    }
    ino.pending.clear();
  } else {
    for (DataOp& d : ino.pending) d.lost = true;
  }
}

void SyncDirState(State* s, const std::string& dir) {
  for (NameOp& nop : s->pending_names) {
    auto& effects = nop.effects;
    for (auto it = effects.begin(); it != effects.end();) {
      if (Parent(it->path) == dir) {
        ApplyEffect(&s->durable, *it);
        it = effects.erase(it);
      } else {
        ++it;
      }
    }
  }
  s->pending_names.erase(
      std::remove_if(s->pending_names.begin(), s->pending_names.end(),
                     [](const NameOp& n) { return n.effects.empty(); }),
      s->pending_names.end());
}

// O_CREAT|O_TRUNC: an existing name keeps its inode and is truncated.
uint64_t CreateFileState(State* s, uint64_t op, const std::string& path) {
  auto it = s->current.find(path);
  if (it != s->current.end()) {
    TruncatePending(s, op, it->second.inode, 0);
    return it->second.inode;
  }
  uint64_t id = NewInode(s);
  QueueNameOp(s, op, {NameEffect{path, false, Entry{false, id}}});
  return id;
}

void PlantDirsState(State* s, uint64_t op, const std::string& dir,
                    bool durable) {
  std::vector<std::string> chain;
  for (std::string d = dir; !IsRoot(d); d = Parent(d)) chain.push_back(d);
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    if (s->current.count(*it) == 0) {
      QueueNameOp(s, op, {NameEffect{*it, false, Entry{true, 0}}});
    }
    if (durable) MakeNameDurable(s, *it);
  }
}

void PlantFileState(State* s, uint64_t op, const std::string& path,
                    const std::string& data, bool durable) {
  PlantDirsState(s, op, Parent(path), durable);
  uint64_t id = CreateFileState(s, op, path);
  WriteAt(s, op, id, 0, data);
  if (durable) {
    SyncData(s, id, true);
    MakeNameDurable(s, path);
  }
}

// Returns the inode a create or lock op produced, 0 otherwise.
uint64_t ApplyOp(State* s, const LoggedOp& op) {
  if (!op.applied) return 0;
  const auto& r = op.rec;
  switch (r.kind) {
    case OpKind::kCreate:
      return CreateFileState(s, r.index, r.path);
    case OpKind::kAppend:
      WriteAt(s, r.index, op.inode, r.offset, op.data);
      return 0;
    case OpKind::kSync:
      SyncData(s, op.inode, !r.failed);
      return 0;
    case OpKind::kCreateDir:
      QueueNameOp(s, r.index, {NameEffect{r.path, false, Entry{true, 0}}});
      return 0;
    case OpKind::kDelete:
      QueueNameOp(s, r.index, {NameEffect{r.path, true, Entry{}}});
      return 0;
    case OpKind::kRename: {
      Entry e = s->current.at(r.path);
      QueueNameOp(
          s, r.index,
          {NameEffect{r.path2, false, e}, NameEffect{r.path, true, {}}});
      return 0;
    }
    case OpKind::kTruncate:
      TruncatePending(s, r.index, op.inode, r.offset);
      SyncData(s, op.inode, true);
      return 0;
    case OpKind::kSyncDir:
      SyncDirState(s, r.path);
      return 0;
    case OpKind::kLock: {
      uint64_t id = CreateFileState(s, r.index, r.path);
      WriteAt(s, r.index, id, 0, op.data);
      return id;
    }
    case OpKind::kPlant:
      switch (op.plant) {
        case PlantKind::kFile:
          PlantFileState(s, r.index, r.path, op.data, op.durable);
          break;
        case PlantKind::kDirs:
          PlantDirsState(s, r.index, r.path, true);
          break;
        case PlantKind::kBytes: {
          Inode& ino = s->inodes[op.inode];
          ino.current = op.data;
          ino.durable = op.data;
          ino.pending.clear();
          break;
        }
        case PlantKind::kNone:
          break;
      }
      return 0;
    default:
      return 0;
  }
}

// Drops entries whose parent directory is missing: after a crash they would
// be unreachable.
Names Prune(const Names& names) {
  Names out;
  // Shorter paths first, so parents are decided before their children.
  std::vector<const Names::value_type*> order;
  for (const auto& kv : names) order.push_back(&kv);
  std::stable_sort(order.begin(), order.end(), [](auto* a, auto* b) {
    return std::count(a->first.begin(), a->first.end(), '/') <
           std::count(b->first.begin(), b->first.end(), '/');
  });
  for (const auto* kv : order) {
    std::string parent = Parent(kv->first);
    if (IsRoot(parent)) {
      out.insert(*kv);
      continue;
    }
    auto it = out.find(parent);
    if (it != out.end() && it->second.is_dir) out.insert(*kv);
  }
  return out;
}

std::set<uint64_t> ReachableInodes(const State& s) {
  std::set<uint64_t> ids;
  for (const Names* names : {&s.current, &s.durable}) {
    for (const auto& kv : *names) {
      if (!kv.second.is_dir) ids.insert(kv.second.inode);
    }
  }
  for (const NameOp& nop : s.pending_names) {
    for (const NameEffect& e : nop.effects) {
      if (!e.remove && !e.entry.is_dir) ids.insert(e.entry.inode);
    }
  }
  return ids;
}

std::vector<uint64_t> UnsyncedOpsOf(const State& s) {
  std::set<uint64_t> ops;
  for (uint64_t id : ReachableInodes(s)) {
    auto it = s.inodes.find(id);
    if (it == s.inodes.end()) continue;
    for (const DataOp& d : it->second.pending) ops.insert(d.op);
  }
  for (const NameOp& nop : s.pending_names) ops.insert(nop.op);
  return std::vector<uint64_t>(ops.begin(), ops.end());
}

// Portable across standard libraries, unlike the <random> distributions, so
// a seed reproduces the same crash everywhere.
uint64_t Uniform(std::mt19937_64& rng, uint64_t n) {
  return n == 0 ? 0 : rng() % n;
}

const char* ModeName(FaultInjectionFileSystem::CrashMode m) {
  using M = FaultInjectionFileSystem::CrashMode;
  switch (m) {
    case M::kNoLoss:
      return "no-loss";
    case M::kDropUnsynced:
      return "drop-unsynced";
    case M::kCutUnsynced:
      return "cut-unsynced";
    case M::kTearSectors:
      return "tear-sectors";
    case M::kLeaveOneOut:
      return "leave-one-out";
  }
  return "?";
}

const char* NameLossName(FaultInjectionFileSystem::NameLoss n) {
  using N = FaultInjectionFileSystem::NameLoss;
  switch (n) {
    case N::kNone:
      return "none";
    case N::kDropUnsynced:
      return "drop-unsynced";
    case N::kRandomPrefix:
      return "random-prefix";
  }
  return "?";
}

std::string DescribeEffects(const NameOp& nop) {
  std::vector<std::string> parts;
  for (const NameEffect& e : nop.effects) {
    parts.push_back(absl::StrCat(e.remove ? "-" : "+", e.path,
                                 e.entry.is_dir && !e.remove ? "/" : ""));
  }
  return absl::StrCat("#", nop.op, " ", absl::StrJoin(parts, " "));
}

// Bytes a crash leaves for one file under kCutUnsynced.
std::string CutBytes(const Inode& ino, std::mt19937_64& rng,
                     std::string* note) {
  uint64_t total = 0;
  for (const DataOp& d : ino.pending) total += d.truncate ? 1 : d.data.size();
  uint64_t budget = Uniform(rng, total + 1);
  *note = absl::StrCat("cut after ", budget, " of ", total, " unsynced units");
  std::string b = ino.durable;
  for (const DataOp& d : ino.pending) {
    if (d.truncate) {
      if (budget == 0) break;
      --budget;
      ApplyData(&b, d, true, 0);
      continue;
    }
    uint64_t k = std::min<uint64_t>(budget, d.data.size());
    ApplyData(&b, d, !d.lost, k);
    budget -= k;
    if (k < d.data.size()) break;
  }
  return b;
}

// Bytes a crash leaves for one file under kTearSectors.
std::string TearBytes(const Inode& ino,
                      const FaultInjectionFileSystem::CrashOptions& o,
                      std::mt19937_64& rng, std::string* note) {
  // The O_TRUNC truncations are metadata and assumed to have happened; the
  // writes after the last one are what can tear.
  std::string base = ino.durable;
  size_t first_write = 0;
  for (size_t i = 0; i < ino.pending.size(); ++i) {
    if (ino.pending[i].truncate) {
      ApplyData(&base, ino.pending[i], true, 0);
      first_write = i + 1;
    }
  }
  const std::string flushed = FlushedBytes(ino);
  std::vector<std::pair<uint64_t, uint64_t>> dirty;
  for (size_t i = first_write; i < ino.pending.size(); ++i) {
    const DataOp& d = ino.pending[i];
    if (!d.data.empty()) dirty.emplace_back(d.offset, d.offset + d.data.size());
  }
  if (dirty.empty()) {
    *note = "nothing to tear";
    return flushed;
  }
  const uint64_t sector = std::max<uint64_t>(o.sector_size, 1);
  enum Fate { kKeep, kDrop, kGarbage };
  std::map<uint64_t, Fate> fate;
  for (const auto& [a, b] : dirty) {
    for (uint64_t s = a / sector; s <= (b - 1) / sector; ++s) fate[s] = kKeep;
  }
  const uint64_t weights =
      uint64_t{o.keep_weight} + o.drop_weight + o.garbage_weight;
  int counts[3] = {0, 0, 0};
  for (auto& [s, f] : fate) {
    uint64_t r = Uniform(rng, std::max<uint64_t>(weights, 1));
    if (r < o.keep_weight) {
      f = kKeep;
    } else if (r < uint64_t{o.keep_weight} + o.drop_weight) {
      f = kDrop;
    } else {
      f = kGarbage;
    }
    ++counts[f];
  }
  uint64_t len = base.size();
  for (const auto& [s, f] : fate) {
    if (f != kDrop) {
      len = std::max<uint64_t>(
          len, std::min<uint64_t>((s + 1) * sector, flushed.size()));
    }
  }
  std::string out = flushed.substr(0, len);
  out.resize(len, '\0');
  for (const auto& [a, b] : dirty) {
    for (uint64_t i = a; i < std::min(b, len); ++i) {
      switch (fate[i / sector]) {
        case kKeep:
          break;
        case kDrop:
          out[i] = i < base.size() ? base[i] : '\0';
          break;
        case kGarbage:
          out[i] = static_cast<char>(rng() & 0xff);
          break;
      }
    }
  }
  *note = absl::StrCat(fate.size(), " sectors of ", sector, ": ", counts[kKeep],
                       " kept, ", counts[kDrop], " dropped, ", counts[kGarbage],
                       " garbage");
  return out;
}

std::string LeaveOutBytes(const Inode& ino, uint64_t leave_out) {
  std::string b = ino.durable;
  for (const DataOp& d : ino.pending) {
    if (d.op == leave_out) {
      if (!d.truncate) ApplyData(&b, d, false, d.data.size());
      continue;
    }
    ApplyData(&b, d, !d.lost, d.data.size());
  }
  return b;
}

State CrashState(const State& s,
                 const FaultInjectionFileSystem::CrashOptions& o,
                 std::string* description) {
  using M = FaultInjectionFileSystem::CrashMode;
  using N = FaultInjectionFileSystem::NameLoss;
  std::mt19937_64 rng(o.seed);
  std::ostringstream desc;
  desc << "crash mode=" << ModeName(o.mode) << " seed=" << o.seed;
  if (o.mode == M::kTearSectors) desc << " sector=" << o.sector_size;

  uint64_t leave_out = 0;
  N names_mode = o.names;
  if (o.mode == M::kLeaveOneOut) {
    names_mode = N::kNone;
    std::vector<uint64_t> candidates = UnsyncedOpsOf(s);
    if (o.leave_out_op != 0) {
      leave_out = o.leave_out_op;
    } else if (!candidates.empty()) {
      leave_out = candidates[Uniform(rng, candidates.size())];
    }
    desc << " left out op #" << leave_out;
    if (std::find(candidates.begin(), candidates.end(), leave_out) ==
        candidates.end()) {
      desc << " (not unsynced: no effect)";
    }
  } else {
    desc << " names=" << NameLossName(names_mode);
  }
  desc << "\n";

  const size_t total_names = s.pending_names.size();
  size_t kept_names = total_names;
  if (names_mode == N::kDropUnsynced) kept_names = 0;
  if (names_mode == N::kRandomPrefix) {
    kept_names = Uniform(rng, total_names + 1);
  }
  Names names = s.durable;
  for (size_t i = 0; i < total_names; ++i) {
    const NameOp& nop = s.pending_names[i];
    if (i < kept_names && nop.op != leave_out) {
      for (const NameEffect& e : nop.effects) ApplyEffect(&names, e);
    } else {
      desc << "  undone " << DescribeEffects(nop) << "\n";
    }
  }
  names = Prune(names);

  State out;
  out.next_inode = s.next_inode;
  std::map<uint64_t, std::string> first_name;
  for (const auto& [path, entry] : names) {
    if (!entry.is_dir) first_name.emplace(entry.inode, path);
  }
  for (const auto& [id, path] : first_name) {
    const Inode& ino = s.inodes.at(id);
    std::string note;
    std::string bytes;
    switch (o.mode) {
      case M::kNoLoss:
        bytes = FlushedBytes(ino);
        break;
      case M::kDropUnsynced:
        bytes = ino.durable;
        break;
      case M::kCutUnsynced:
        bytes = CutBytes(ino, rng, &note);
        break;
      case M::kTearSectors:
        bytes = TearBytes(ino, o, rng, &note);
        break;
      case M::kLeaveOneOut:
        bytes = LeaveOutBytes(ino, leave_out);
        break;
    }
    if (!ino.pending.empty()) {
      desc << "  " << path << ": durable " << ino.durable.size()
           << " bytes, page cache " << ino.current.size() << ", after crash "
           << bytes.size();
      if (!note.empty()) desc << " (" << note << ")";
      desc << "\n";
    }
    Inode& o_ino = out.inodes[id];
    o_ino.durable = bytes;
    o_ino.current = std::move(bytes);
  }
  out.current = names;
  out.durable = std::move(names);
  *description = desc.str();
  return out;
}

}  // namespace fifs_internal

using namespace fifs_internal;  // NOLINT: the implementation's own helpers.

struct FaultInjectionFileSystem::Core {
  std::mutex mu;
  State state;
  State baseline;
  std::vector<LoggedOp> log;
  // StateAtOp replays forward from here when it can.
  std::optional<State> replay_state;
  uint64_t replay_pos = 0;

  std::map<OpKind, uint64_t> counts;
  std::map<std::pair<OpKind, std::string>, uint64_t> path_counts;
  std::map<OpKind, uint64_t> injected;
  struct Rule {
    int id;
    FaultRule rule;
    uint64_t seen = 0;
  };
  std::vector<Rule> rules;
  int next_rule_id = 1;
  std::optional<uint64_t> crash_after;
  std::map<uint64_t, std::string> locks;  // inode -> owner
  std::string crash_description;

  struct Verdict {
    int error = 0;
    bool power_loss = false;
    std::optional<uint64_t> short_write;
  };

  // Counts a call and decides whether it is failed. Requires mu.
  Verdict Admit(OpKind kind, const std::string& path,
                const std::string& path2 = "") {
    ++counts[kind];
    ++path_counts[{kind, path}];
    Verdict v;
    if (crash_after.has_value() && log.size() >= *crash_after) {
      v.error = EIO;
      v.power_loss = true;
      ++injected[kind];
      return v;
    }
    for (Rule& r : rules) {
      const FaultRule& f = r.rule;
      bool kind_matches =
          f.kind == kind ||
          (f.kind == OpKind::kAny && IsLogged(kind) && kind != OpKind::kPlant);
      if (!kind_matches) continue;
      if (!f.path_contains.empty() &&
          !absl::StrContains(path, f.path_contains) &&
          !absl::StrContains(path2, f.path_contains)) {
        continue;
      }
      ++r.seen;
      bool fires = r.seen == f.nth || (f.persistent && r.seen > f.nth);
      if (fires && v.error == 0) {
        v.error = f.error == 0 ? EIO : f.error;
        v.short_write = f.short_write_bytes;
      }
    }
    if (v.error != 0) ++injected[kind];
    return v;
  }

  absl::Status Fail(const Verdict& v, absl::string_view op,
                    absl::string_view path) const {
    absl::Status s = PosixStyleError(op, path, v.error);
    if (!v.power_loss) return s;
    return absl::Status(
        s.code(), absl::StrCat(s.message(), " (simulated power loss after op ",
                               *crash_after, ")"));
  }

  uint64_t next_index() const { return log.size() + 1; }

  // Applies a live op to the state and logs it. Returns ApplyOp's inode.
  uint64_t Record(LoggedOp op) {
    op.rec.index = next_index();
    uint64_t id = ApplyOp(&state, op);
    if (id != 0) op.inode = id;
    log.push_back(std::move(op));
    return id;
  }

  LoggedOp MakeOp(OpKind kind, const std::string& path, bool applied) const {
    LoggedOp op;
    op.rec.kind = kind;
    op.rec.path = path;
    op.applied = applied;
    op.rec.failed = !applied;
    return op;
  }

  // Logs a call of a logged kind that failed without effect, then returns
  // its status.
  absl::Status RecordFailure(OpKind kind, const std::string& path,
                             absl::Status status) {
    Record(MakeOp(kind, path, false));
    return status;
  }

  // errno for using `path`'s parent directory, 0 if it exists.
  int ParentError(const std::string& path) const {
    std::string parent = Parent(path);
    if (IsRoot(parent)) return 0;
    auto it = state.current.find(parent);
    if (it == state.current.end()) return ENOENT;
    return it->second.is_dir ? 0 : ENOTDIR;
  }

  const Entry* Find(const std::string& path) const {
    auto it = state.current.find(path);
    return it == state.current.end() ? nullptr : &it->second;
  }
};

namespace {

using Core = FaultInjectionFileSystem::Core;

class FaultWritableFile : public WritableFile {
 public:
  FaultWritableFile(std::shared_ptr<Core> core, std::string path,
                    std::string key, uint64_t inode, uint64_t pos,
                    bool append_mode)
      : core_(std::move(core)),
        path_(std::move(path)),
        key_(std::move(key)),
        inode_(inode),
        pos_(pos),
        append_mode_(append_mode) {}

  absl::Status Append(absl::string_view data) override {
    std::lock_guard<std::mutex> l(core_->mu);
    Core::Verdict v = core_->Admit(OpKind::kAppend, key_);
    const uint64_t offset =
        append_mode_ ? core_->state.inodes[inode_].current.size() : pos_;
    const std::string what = absl::StrCat("write at offset ", offset);
    if (v.power_loss) return core_->Fail(v, what, path_);
    if (closed_) {
      return core_->RecordFailure(OpKind::kAppend, key_,
                                  PosixStyleError(what, path_, EBADF));
    }
    uint64_t written = data.size();
    if (v.error != 0) {
      written = v.short_write.has_value()
                    ? std::min<uint64_t>(*v.short_write, data.size())
                    : 0;
    }
    LoggedOp op = core_->MakeOp(OpKind::kAppend, key_, written > 0);
    op.rec.failed = v.error != 0;
    op.rec.offset = offset;
    op.rec.length = written;
    op.inode = inode_;
    op.data = std::string(data.substr(0, written));
    core_->Record(std::move(op));
    pos_ = offset + written;
    if (v.error != 0) {
      return core_->Fail(v, absl::StrCat("write at offset ", pos_), path_);
    }
    return absl::OkStatus();
  }

  absl::Status Sync() override {
    std::lock_guard<std::mutex> l(core_->mu);
    Core::Verdict v = core_->Admit(OpKind::kSync, key_);
    if (v.power_loss) return core_->Fail(v, "fdatasync", path_);
    if (closed_) {
      return core_->RecordFailure(OpKind::kSync, key_,
                                  PosixStyleError("fdatasync", path_, EBADF));
    }
    // A failed sync is applied too: it marks the unsynced writes lost.
    LoggedOp op = core_->MakeOp(OpKind::kSync, key_, true);
    op.rec.failed = v.error != 0;
    op.inode = inode_;
    core_->Record(std::move(op));
    if (v.error != 0) return core_->Fail(v, "fdatasync", path_);
    return absl::OkStatus();
  }

  absl::Status Preallocate(uint64_t bytes) override {
    std::lock_guard<std::mutex> l(core_->mu);
    Core::Verdict v = core_->Admit(OpKind::kPreallocate, key_);
    if (v.power_loss) return core_->Fail(v, "fallocate", path_);
    int err = closed_ ? EBADF : v.error;
    LoggedOp op = core_->MakeOp(OpKind::kPreallocate, key_, false);
    op.rec.failed = err != 0;
    op.rec.offset = pos_;
    op.rec.length = bytes;
    core_->Record(std::move(op));
    if (err != 0) {
      Core::Verdict e = v;
      e.error = err;
      return core_->Fail(e, "fallocate", path_);
    }
    return absl::OkStatus();
  }

  absl::Status StartWriteback(uint64_t offset, uint64_t length) override {
    std::lock_guard<std::mutex> l(core_->mu);
    Core::Verdict v = core_->Admit(OpKind::kWriteback, key_);
    const std::string what =
        absl::StrCat("sync_file_range (start writeback) of ", length,
                     " bytes at offset ", offset);
    if (v.power_loss) return core_->Fail(v, what, path_);
    if (closed_) return PosixStyleError(what, path_, EBADF);
    if (v.error != 0) return core_->Fail(v, what, path_);
    return absl::OkStatus();
  }

  uint64_t Size() const override {
    std::lock_guard<std::mutex> l(core_->mu);
    return pos_;
  }

  absl::Status Close() override {
    std::lock_guard<std::mutex> l(core_->mu);
    if (closed_) return absl::OkStatus();
    Core::Verdict v = core_->Admit(OpKind::kClose, key_);
    closed_ = true;  // close(2) releases the descriptor even when it fails
    if (v.error != 0) return core_->Fail(v, "close", path_);
    return absl::OkStatus();
  }

  const std::string& path() const override { return path_; }

 private:
  std::shared_ptr<Core> core_;
  const std::string path_;  // as opened, for messages
  const std::string key_;   // normalized, for counters and the log
  const uint64_t inode_;
  uint64_t pos_;  // guarded by core_->mu
  const bool append_mode_;
  bool closed_ = false;  // guarded by core_->mu
};

class FaultRandomAccessFile : public RandomAccessFile {
 public:
  FaultRandomAccessFile(std::shared_ptr<Core> core, std::string path,
                        std::string key, uint64_t inode)
      : core_(std::move(core)),
        path_(std::move(path)),
        key_(std::move(key)),
        inode_(inode) {}

  absl::StatusOr<absl::string_view> Read(uint64_t offset, size_t n,
                                         char* scratch) const override {
    std::lock_guard<std::mutex> l(core_->mu);
    Core::Verdict v = core_->Admit(OpKind::kRead, key_);
    if (v.error != 0) {
      return core_->Fail(v, absl::StrCat("read at offset ", offset), path_);
    }
    const std::string& bytes = core_->state.inodes[inode_].current;
    if (offset >= bytes.size()) return absl::string_view(scratch, 0);
    size_t len = std::min<uint64_t>(n, bytes.size() - offset);
    std::memcpy(scratch, bytes.data() + offset, len);
    return absl::string_view(scratch, len);
  }

  absl::StatusOr<uint64_t> Size() const override {
    std::lock_guard<std::mutex> l(core_->mu);
    Core::Verdict v = core_->Admit(OpKind::kStat, key_);
    if (v.error != 0) return core_->Fail(v, "fstat", path_);
    return core_->state.inodes[inode_].current.size();
  }

  const std::string& path() const override { return path_; }

 private:
  std::shared_ptr<Core> core_;
  const std::string path_;
  const std::string key_;
  const uint64_t inode_;
};

class FaultFileLock : public FileLock {
 public:
  FaultFileLock(std::shared_ptr<Core> core, uint64_t inode)
      : core_(std::move(core)), inode_(inode) {}
  ~FaultFileLock() override {
    std::lock_guard<std::mutex> l(core_->mu);
    core_->locks.erase(inode_);
  }

 private:
  std::shared_ptr<Core> core_;
  const uint64_t inode_;
};

}  // namespace

// ---------------------------------------------------------------------------

const char* FaultInjectionFileSystem::OpKindName(OpKind kind) {
  switch (kind) {
    case OpKind::kAny:
      return "any";
    case OpKind::kCreate:
      return "create";
    case OpKind::kReopen:
      return "reopen";
    case OpKind::kAppend:
      return "append";
    case OpKind::kSync:
      return "sync";
    case OpKind::kPreallocate:
      return "preallocate";
    case OpKind::kWriteback:
      return "writeback";
    case OpKind::kClose:
      return "close";
    case OpKind::kOpenRead:
      return "open-read";
    case OpKind::kRead:
      return "read";
    case OpKind::kStat:
      return "stat";
    case OpKind::kListDir:
      return "list-dir";
    case OpKind::kCreateDir:
      return "create-dir";
    case OpKind::kDelete:
      return "delete";
    case OpKind::kRename:
      return "rename";
    case OpKind::kTruncate:
      return "truncate";
    case OpKind::kSyncDir:
      return "sync-dir";
    case OpKind::kLock:
      return "lock";
    case OpKind::kPlant:
      return "plant";
  }
  return "?";
}

bool FaultInjectionFileSystem::IsLogged(OpKind kind) {
  switch (kind) {
    case OpKind::kCreate:
    case OpKind::kAppend:
    case OpKind::kSync:
    case OpKind::kPreallocate:
    case OpKind::kCreateDir:
    case OpKind::kDelete:
    case OpKind::kRename:
    case OpKind::kTruncate:
    case OpKind::kSyncDir:
    case OpKind::kLock:
    case OpKind::kPlant:
      return true;
    default:
      return false;
  }
}

std::string FaultInjectionFileSystem::OpRecord::ToString() const {
  std::string s = absl::StrCat("#", index, " ", OpKindName(kind), " ", path);
  switch (kind) {
    case OpKind::kRename:
      absl::StrAppend(&s, " -> ", path2);
      break;
    case OpKind::kAppend:
    case OpKind::kPreallocate:
      absl::StrAppend(&s, " offset=", offset, " length=", length);
      break;
    case OpKind::kTruncate:
      absl::StrAppend(&s, " size=", offset);
      break;
    default:
      break;
  }
  if (failed) absl::StrAppend(&s, " [failed]");
  return s;
}

FaultInjectionFileSystem::FaultInjectionFileSystem()
    : core_(std::make_shared<Core>()) {}

FaultInjectionFileSystem::FaultInjectionFileSystem(std::shared_ptr<Core> core)
    : core_(std::move(core)) {}

FaultInjectionFileSystem::~FaultInjectionFileSystem() = default;

absl::StatusOr<std::unique_ptr<WritableFile>>
FaultInjectionFileSystem::NewWritableFile(const std::string& path) {
  const std::string p = NormalizePath(path);
  std::lock_guard<std::mutex> l(core_->mu);
  Core::Verdict v = core_->Admit(OpKind::kCreate, p);
  if (v.power_loss) return core_->Fail(v, "create", path);
  int err = v.error;
  if (err == 0) err = core_->ParentError(p);
  const Entry* e = core_->Find(p);
  if (err == 0 && (IsRoot(p) || (e != nullptr && e->is_dir))) err = EISDIR;
  if (err != 0) {
    Core::Verdict f = v;
    f.error = err;
    return core_->RecordFailure(OpKind::kCreate, p,
                                core_->Fail(f, "create", path));
  }
  uint64_t id = core_->Record(core_->MakeOp(OpKind::kCreate, p, true));
  return std::unique_ptr<WritableFile>(
      new FaultWritableFile(core_, path, p, id, 0, false));
}

absl::StatusOr<std::unique_ptr<WritableFile>>
FaultInjectionFileSystem::ReopenWritableFile(const std::string& path) {
  const std::string p = NormalizePath(path);
  std::lock_guard<std::mutex> l(core_->mu);
  Core::Verdict v = core_->Admit(OpKind::kReopen, p);
  const Entry* e = core_->Find(p);
  if (v.error == 0) {
    if (e == nullptr && !IsRoot(p)) {
      v.error = ENOENT;
    } else if (e == nullptr || e->is_dir) {
      v.error = EISDIR;
    }
  }
  if (v.error != 0) return core_->Fail(v, "open for append", path);
  uint64_t size = core_->state.inodes[e->inode].current.size();
  return std::unique_ptr<WritableFile>(
      new FaultWritableFile(core_, path, p, e->inode, size, true));
}

absl::StatusOr<std::unique_ptr<RandomAccessFile>>
FaultInjectionFileSystem::NewRandomAccessFile(const std::string& path) {
  const std::string p = NormalizePath(path);
  std::lock_guard<std::mutex> l(core_->mu);
  Core::Verdict v = core_->Admit(OpKind::kOpenRead, p);
  if (v.error != 0) return core_->Fail(v, "open", path);
  const Entry* e = core_->Find(p);
  if (IsRoot(p) || (e != nullptr && e->is_dir)) {
    return absl::FailedPreconditionError(
        absl::StrCat("open ", path, ": is a directory, not a file"));
  }
  if (e == nullptr) return PosixStyleError("open", path, ENOENT);
  return std::unique_ptr<RandomAccessFile>(
      new FaultRandomAccessFile(core_, path, p, e->inode));
}

absl::StatusOr<bool> FaultInjectionFileSystem::FileExists(
    const std::string& path) {
  const std::string p = NormalizePath(path);
  std::lock_guard<std::mutex> l(core_->mu);
  Core::Verdict v = core_->Admit(OpKind::kStat, p);
  if (v.error != 0) return core_->Fail(v, "stat", path);
  return IsRoot(p) || core_->Find(p) != nullptr;
}

absl::StatusOr<std::vector<std::string>> FaultInjectionFileSystem::ListDir(
    const std::string& dir) {
  const std::string d = NormalizePath(dir);
  std::lock_guard<std::mutex> l(core_->mu);
  Core::Verdict v = core_->Admit(OpKind::kListDir, d);
  if (v.error == 0 && !IsRoot(d)) {
    const Entry* e = core_->Find(d);
    if (e == nullptr) {
      v.error = ENOENT;
    } else if (!e->is_dir) {
      v.error = ENOTDIR;
    }
  }
  if (v.error != 0) return core_->Fail(v, "list directory", dir);
  std::vector<std::string> names;
  for (const auto& kv : core_->state.current) {
    if (IsUnder(kv.first, d) && Parent(kv.first) == d) {
      names.push_back(RelativeTo(kv.first, d));
    }
  }
  return names;
}

absl::Status FaultInjectionFileSystem::CreateDir(const std::string& dir) {
  const std::string d = NormalizePath(dir);
  std::lock_guard<std::mutex> l(core_->mu);
  Core::Verdict v = core_->Admit(OpKind::kCreateDir, d);
  if (v.power_loss) return core_->Fail(v, "mkdir", dir);
  const Entry* e = core_->Find(d);
  bool exists_as_dir = IsRoot(d) || (e != nullptr && e->is_dir);
  if (v.error == 0 && !exists_as_dir) {
    if (e != nullptr) {
      v.error = EEXIST;
    } else {
      v.error = core_->ParentError(d);
    }
  }
  if (v.error != 0) {
    return core_->RecordFailure(OpKind::kCreateDir, d,
                                core_->Fail(v, "mkdir", dir));
  }
  // An existing directory is fine (like the POSIX one) and changes nothing.
  core_->Record(core_->MakeOp(OpKind::kCreateDir, d, !exists_as_dir));
  return absl::OkStatus();
}

absl::Status FaultInjectionFileSystem::DeleteFile(const std::string& path) {
  const std::string p = NormalizePath(path);
  std::lock_guard<std::mutex> l(core_->mu);
  Core::Verdict v = core_->Admit(OpKind::kDelete, p);
  if (v.power_loss) return core_->Fail(v, "unlink", path);
  const Entry* e = core_->Find(p);
  if (v.error == 0) {
    if (IsRoot(p) || (e != nullptr && e->is_dir)) {
      v.error = EISDIR;
    } else if (e == nullptr) {
      v.error = ENOENT;
    }
  }
  if (v.error != 0) {
    return core_->RecordFailure(OpKind::kDelete, p,
                                core_->Fail(v, "unlink", path));
  }
  core_->Record(core_->MakeOp(OpKind::kDelete, p, true));
  return absl::OkStatus();
}

absl::Status FaultInjectionFileSystem::RenameFile(const std::string& from,
                                                  const std::string& to) {
  const std::string f = NormalizePath(from);
  const std::string t = NormalizePath(to);
  const std::string what = absl::StrCat("rename to ", to, " from");
  std::lock_guard<std::mutex> l(core_->mu);
  Core::Verdict v = core_->Admit(OpKind::kRename, f, t);
  if (v.power_loss) return core_->Fail(v, what, from);
  LoggedOp op = core_->MakeOp(OpKind::kRename, f, false);
  op.rec.path2 = t;
  const Entry* src = core_->Find(f);
  const Entry* dst = core_->Find(t);
  absl::Status status;
  if (v.error != 0) {
    status = core_->Fail(v, what, from);
  } else if (src == nullptr && !IsRoot(f)) {
    status = PosixStyleError(what, from, ENOENT);
  } else if (src == nullptr || src->is_dir) {
    status = absl::UnimplementedError(absl::StrCat(
        "rename to ", to, " from ", from,
        ": renaming directories is not supported by FaultInjectionFileSystem"));
  } else if (IsRoot(t) || (dst != nullptr && dst->is_dir)) {
    status = PosixStyleError(what, from, EISDIR);
  } else if (int err = core_->ParentError(t); err != 0) {
    status = PosixStyleError(what, from, err);
  }
  if (!status.ok()) {
    core_->Record(std::move(op));
    return status;
  }
  op.rec.failed = false;
  op.applied = f != t;  // rename(2) of a name onto itself does nothing
  core_->Record(std::move(op));
  return absl::OkStatus();
}

absl::Status FaultInjectionFileSystem::TruncateFile(const std::string& path,
                                                    uint64_t size) {
  const std::string p = NormalizePath(path);
  std::lock_guard<std::mutex> l(core_->mu);
  Core::Verdict v = core_->Admit(OpKind::kTruncate, p);
  if (v.power_loss) return core_->Fail(v, "open for truncate", path);
  const Entry* e = core_->Find(p);
  absl::Status status;
  if (v.error != 0) {
    status = core_->Fail(v, absl::StrCat("truncate to ", size, " bytes"), path);
  } else if (IsRoot(p) || (e != nullptr && e->is_dir)) {
    status = PosixStyleError("open for truncate", path, EISDIR);
  } else if (e == nullptr) {
    status = PosixStyleError("open for truncate", path, ENOENT);
  }
  LoggedOp op = core_->MakeOp(OpKind::kTruncate, p, status.ok());
  op.rec.offset = size;
  if (e != nullptr) op.inode = e->inode;
  core_->Record(std::move(op));
  return status;
}

absl::StatusOr<uint64_t> FaultInjectionFileSystem::FileSize(
    const std::string& path) {
  const std::string p = NormalizePath(path);
  std::lock_guard<std::mutex> l(core_->mu);
  Core::Verdict v = core_->Admit(OpKind::kStat, p);
  if (v.error != 0) return core_->Fail(v, "stat", path);
  if (IsRoot(p)) return 0;
  const Entry* e = core_->Find(p);
  if (e == nullptr) return PosixStyleError("stat", path, ENOENT);
  if (e->is_dir) return 0;
  return core_->state.inodes[e->inode].current.size();
}

absl::Status FaultInjectionFileSystem::SyncDir(const std::string& dir) {
  const std::string d = NormalizePath(dir);
  std::lock_guard<std::mutex> l(core_->mu);
  Core::Verdict v = core_->Admit(OpKind::kSyncDir, d);
  if (v.power_loss) return core_->Fail(v, "fsync directory", dir);
  absl::Status status;
  if (v.error != 0) {
    status = core_->Fail(v, "fsync directory", dir);
  } else if (!IsRoot(d)) {
    const Entry* e = core_->Find(d);
    if (e == nullptr) {
      status = PosixStyleError("open directory", dir, ENOENT);
    } else if (!e->is_dir) {
      status = PosixStyleError("open directory", dir, ENOTDIR);
    }
  }
  core_->Record(core_->MakeOp(OpKind::kSyncDir, d, status.ok()));
  return status;
}

absl::StatusOr<std::unique_ptr<FileLock>> FaultInjectionFileSystem::LockFile(
    const std::string& path, const std::string& owner) {
  const std::string p = NormalizePath(path);
  std::lock_guard<std::mutex> l(core_->mu);
  Core::Verdict v = core_->Admit(OpKind::kLock, p);
  if (v.power_loss) return core_->Fail(v, "open lock file", path);
  const Entry* e = core_->Find(p);
  if (v.error == 0) {
    if (IsRoot(p) || (e != nullptr && e->is_dir)) {
      v.error = EISDIR;
    } else {
      v.error = core_->ParentError(p);
    }
  }
  if (v.error != 0) {
    return core_->RecordFailure(OpKind::kLock, p,
                                core_->Fail(v, "open lock file", path));
  }
  if (e != nullptr && core_->locks.count(e->inode) != 0) {
    std::string holder = core_->state.inodes[e->inode].current.substr(0, 255);
    if (holder.empty()) holder = "unknown";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == 0)) {
      holder.pop_back();
    }
    return core_->RecordFailure(OpKind::kLock, p, LockHeldError(path, holder));
  }
  LoggedOp op = core_->MakeOp(OpKind::kLock, p, true);
  op.data = owner + "\n";
  op.rec.length = op.data.size();
  uint64_t id = core_->Record(std::move(op));
  core_->locks[id] = owner;
  return std::unique_ptr<FileLock>(new FaultFileLock(core_, id));
}

// ---- Op log and counters.

uint64_t FaultInjectionFileSystem::op_count() const {
  std::lock_guard<std::mutex> l(core_->mu);
  return core_->log.size();
}

std::vector<FaultInjectionFileSystem::OpRecord>
FaultInjectionFileSystem::OpLog() const {
  std::lock_guard<std::mutex> l(core_->mu);
  std::vector<OpRecord> out;
  out.reserve(core_->log.size());
  for (const LoggedOp& op : core_->log) out.push_back(op.rec);
  return out;
}

std::vector<FaultInjectionFileSystem::OpRecord>
FaultInjectionFileSystem::RetriedSyncs() const {
  std::lock_guard<std::mutex> l(core_->mu);
  std::set<uint64_t> failed;  // inodes
  std::vector<OpRecord> out;
  for (const LoggedOp& op : core_->log) {
    if (op.rec.kind != OpKind::kSync || !op.applied) continue;
    if (failed.count(op.inode) != 0) out.push_back(op.rec);
    if (op.rec.failed) failed.insert(op.inode);
  }
  return out;
}

std::string FaultInjectionFileSystem::DumpOpLog(uint64_t first,
                                                uint64_t last) const {
  std::lock_guard<std::mutex> l(core_->mu);
  std::string out;
  for (const LoggedOp& op : core_->log) {
    if (op.rec.index < first || op.rec.index > last) continue;
    absl::StrAppend(&out, op.rec.ToString(), "\n");
  }
  return out;
}

uint64_t FaultInjectionFileSystem::CountOps(OpKind kind) const {
  std::lock_guard<std::mutex> l(core_->mu);
  uint64_t n = 0;
  for (const auto& [k, count] : core_->counts) {
    if (k == kind || (kind == OpKind::kAny && IsLogged(k))) n += count;
  }
  return n;
}

uint64_t FaultInjectionFileSystem::CountOps(OpKind kind,
                                            const std::string& path) const {
  const std::string p = NormalizePath(path);
  std::lock_guard<std::mutex> l(core_->mu);
  uint64_t n = 0;
  for (const auto& [key, count] : core_->path_counts) {
    if (key.second != p) continue;
    if (key.first == kind || (kind == OpKind::kAny && IsLogged(key.first))) {
      n += count;
    }
  }
  return n;
}

uint64_t FaultInjectionFileSystem::CountInjectedFaults(OpKind kind) const {
  std::lock_guard<std::mutex> l(core_->mu);
  uint64_t n = 0;
  for (const auto& [k, count] : core_->injected) {
    if (k == kind || kind == OpKind::kAny) n += count;
  }
  return n;
}

void FaultInjectionFileSystem::ResetCounters() {
  std::lock_guard<std::mutex> l(core_->mu);
  core_->counts.clear();
  core_->path_counts.clear();
  core_->injected.clear();
}

void FaultInjectionFileSystem::ResetOpLog() {
  std::lock_guard<std::mutex> l(core_->mu);
  core_->baseline = core_->state;
  core_->log.clear();
  core_->replay_state.reset();
  core_->replay_pos = 0;
}

// ---- Fault injection.

int FaultInjectionFileSystem::InjectFault(const FaultRule& rule) {
  std::lock_guard<std::mutex> l(core_->mu);
  int id = core_->next_rule_id++;
  core_->rules.push_back(Core::Rule{id, rule, 0});
  return id;
}

void FaultInjectionFileSystem::RemoveFault(int id) {
  std::lock_guard<std::mutex> l(core_->mu);
  auto& rules = core_->rules;
  rules.erase(std::remove_if(rules.begin(), rules.end(),
                             [id](const Core::Rule& r) { return r.id == id; }),
              rules.end());
}

void FaultInjectionFileSystem::ClearFaults() {
  std::lock_guard<std::mutex> l(core_->mu);
  core_->rules.clear();
}

void FaultInjectionFileSystem::SetCrashAfterOp(uint64_t n) {
  std::lock_guard<std::mutex> l(core_->mu);
  core_->crash_after = n;
}

void FaultInjectionFileSystem::ClearCrashAfter() {
  std::lock_guard<std::mutex> l(core_->mu);
  core_->crash_after.reset();
}

// ---- Crash states.

std::vector<uint64_t> FaultInjectionFileSystem::UnsyncedOps() const {
  std::lock_guard<std::mutex> l(core_->mu);
  return UnsyncedOpsOf(core_->state);
}

std::unique_ptr<FaultInjectionFileSystem> FaultInjectionFileSystem::Crash(
    const CrashOptions& options) const {
  auto core = std::make_shared<Core>();
  {
    std::lock_guard<std::mutex> l(core_->mu);
    core->state = CrashState(core_->state, options, &core->crash_description);
  }
  core->baseline = core->state;
  return std::unique_ptr<FaultInjectionFileSystem>(
      new FaultInjectionFileSystem(std::move(core)));
}

std::string FaultInjectionFileSystem::crash_description() const {
  std::lock_guard<std::mutex> l(core_->mu);
  return core_->crash_description;
}

absl::StatusOr<std::unique_ptr<FaultInjectionFileSystem>>
FaultInjectionFileSystem::StateAtOp(uint64_t n) const {
  auto core = std::make_shared<Core>();
  {
    std::lock_guard<std::mutex> l(core_->mu);
    if (n > core_->log.size()) {
      return absl::OutOfRangeError(absl::StrCat(
          "StateAtOp(", n, "): only ", core_->log.size(), " ops logged"));
    }
    if (!core_->replay_state.has_value() || core_->replay_pos > n) {
      core_->replay_state = core_->baseline;
      core_->replay_pos = 0;
    }
    while (core_->replay_pos < n) {
      ApplyOp(&*core_->replay_state, core_->log[core_->replay_pos]);
      ++core_->replay_pos;
    }
    core->state = *core_->replay_state;
  }
  core->baseline = core->state;
  return std::unique_ptr<FaultInjectionFileSystem>(
      new FaultInjectionFileSystem(std::move(core)));
}

std::unique_ptr<FaultInjectionFileSystem> FaultInjectionFileSystem::Clone()
    const {
  auto core = std::make_shared<Core>();
  {
    std::lock_guard<std::mutex> l(core_->mu);
    core->state = core_->state;
  }
  core->baseline = core->state;
  return std::unique_ptr<FaultInjectionFileSystem>(
      new FaultInjectionFileSystem(std::move(core)));
}

// ---- Test helpers.

absl::StatusOr<std::string> FaultInjectionFileSystem::ReadFileBytes(
    const std::string& path) const {
  const std::string p = NormalizePath(path);
  std::lock_guard<std::mutex> l(core_->mu);
  const Entry* e = core_->Find(p);
  if (e == nullptr) return PosixStyleError("open", path, ENOENT);
  if (e->is_dir) return PosixStyleError("open", path, EISDIR);
  return core_->state.inodes[e->inode].current;
}

absl::StatusOr<std::string> FaultInjectionFileSystem::DurableFileBytes(
    const std::string& path) const {
  const std::string p = NormalizePath(path);
  std::lock_guard<std::mutex> l(core_->mu);
  const Entry* e = core_->Find(p);
  if (e == nullptr) return PosixStyleError("open", path, ENOENT);
  if (e->is_dir) return PosixStyleError("open", path, EISDIR);
  return core_->state.inodes[e->inode].durable;
}

absl::Status FaultInjectionFileSystem::WriteFileBytes(const std::string& path,
                                                      absl::string_view data,
                                                      bool durable) {
  const std::string p = NormalizePath(path);
  std::lock_guard<std::mutex> l(core_->mu);
  if (IsRoot(p)) return PosixStyleError("create", path, EISDIR);
  for (std::string d = Parent(p); !IsRoot(d); d = Parent(d)) {
    const Entry* e = core_->Find(d);
    if (e != nullptr && !e->is_dir)
      return PosixStyleError("create", path, ENOTDIR);
  }
  const Entry* e = core_->Find(p);
  if (e != nullptr && e->is_dir) return PosixStyleError("create", path, EISDIR);
  LoggedOp op = core_->MakeOp(OpKind::kPlant, p, true);
  op.plant = PlantKind::kFile;
  op.data = std::string(data);
  op.durable = durable;
  op.rec.length = data.size();
  core_->Record(std::move(op));
  return absl::OkStatus();
}

absl::Status FaultInjectionFileSystem::CreateDirs(const std::string& dir) {
  const std::string d = NormalizePath(dir);
  std::lock_guard<std::mutex> l(core_->mu);
  for (std::string a = d; !IsRoot(a); a = Parent(a)) {
    const Entry* e = core_->Find(a);
    if (e != nullptr && !e->is_dir)
      return PosixStyleError("mkdir", dir, EEXIST);
  }
  LoggedOp op = core_->MakeOp(OpKind::kPlant, d, true);
  op.plant = PlantKind::kDirs;
  core_->Record(std::move(op));
  return absl::OkStatus();
}

std::vector<std::string> FaultInjectionFileSystem::ListFiles() const {
  std::lock_guard<std::mutex> l(core_->mu);
  std::vector<std::string> out;
  for (const auto& [path, e] : core_->state.current) {
    if (!e.is_dir) out.push_back(path);
  }
  return out;
}

std::vector<std::string> FaultInjectionFileSystem::ListDurableFiles() const {
  std::lock_guard<std::mutex> l(core_->mu);
  std::vector<std::string> out;
  for (const auto& [path, e] : Prune(core_->state.durable)) {
    if (!e.is_dir) out.push_back(path);
  }
  return out;
}

namespace {

// Applies `damage` to the current bytes of `path` and plants the result in
// both views. Requires core->mu.
absl::Status Damage(Core* core, const std::string& path,
                    const std::function<absl::Status(std::string*)>& damage) {
  const std::string p = NormalizePath(path);
  const Entry* e = core->Find(p);
  if (e == nullptr) return PosixStyleError("open", path, ENOENT);
  if (e->is_dir) return PosixStyleError("open", path, EISDIR);
  std::string bytes = core->state.inodes[e->inode].current;
  absl::Status s = damage(&bytes);
  if (!s.ok()) return s;
  LoggedOp op = core->MakeOp(OpKind::kPlant, p, true);
  op.plant = PlantKind::kBytes;
  op.inode = e->inode;
  op.data = std::move(bytes);
  op.rec.length = op.data.size();
  core->Record(std::move(op));
  return absl::OkStatus();
}

}  // namespace

absl::Status FaultInjectionFileSystem::FlipBit(const std::string& path,
                                               uint64_t offset, int bit) {
  std::lock_guard<std::mutex> l(core_->mu);
  return Damage(core_.get(), path, [&](std::string* b) {
    if (offset >= b->size() || bit < 0 || bit > 7) {
      return absl::OutOfRangeError(
          absl::StrCat("FlipBit ", path, ": byte ", offset, " bit ", bit,
                       " outside ", b->size(), " bytes"));
    }
    (*b)[offset] = static_cast<char>((*b)[offset] ^ (1 << bit));
    return absl::OkStatus();
  });
}

absl::Status FaultInjectionFileSystem::OverwriteBytes(const std::string& path,
                                                      uint64_t offset,
                                                      absl::string_view data) {
  std::lock_guard<std::mutex> l(core_->mu);
  return Damage(core_.get(), path, [&](std::string* b) {
    if (offset > b->size()) {
      return absl::OutOfRangeError(absl::StrCat("OverwriteBytes ", path,
                                                ": offset ", offset, " past ",
                                                b->size(), " bytes"));
    }
    if (b->size() < offset + data.size()) b->resize(offset + data.size());
    b->replace(offset, data.size(), data.data(), data.size());
    return absl::OkStatus();
  });
}

absl::Status FaultInjectionFileSystem::TruncateInPlace(const std::string& path,
                                                       uint64_t size) {
  std::lock_guard<std::mutex> l(core_->mu);
  return Damage(core_.get(), path, [&](std::string* b) {
    b->resize(size, '\0');
    return absl::OkStatus();
  });
}

absl::Status FaultInjectionFileSystem::SaveImage(
    const std::string& fs_dir, const std::string& real_dir) const {
  namespace stdfs = std::filesystem;
  const std::string root = NormalizePath(fs_dir);
  std::vector<std::pair<std::string, const std::string*>> files;
  std::vector<std::string> dirs;
  // Copy out under the lock, write without it.
  std::map<std::string, std::string> contents;
  {
    std::lock_guard<std::mutex> l(core_->mu);
    if (!IsRoot(root)) {
      const Entry* e = core_->Find(root);
      if (e == nullptr || !e->is_dir) {
        return PosixStyleError("list directory", fs_dir,
                               e == nullptr ? ENOENT : ENOTDIR);
      }
    }
    for (const auto& [path, e] : core_->state.current) {
      if (!IsUnder(path, root)) continue;
      if (e.is_dir) {
        dirs.push_back(RelativeTo(path, root));
      } else {
        contents[RelativeTo(path, root)] = core_->state.inodes[e.inode].current;
      }
    }
  }
  std::error_code ec;
  stdfs::create_directories(real_dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("SaveImage: mkdir ", real_dir, ": ", ec.message()));
  }
  if (!stdfs::is_empty(real_dir, ec) || ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("SaveImage: ", real_dir, " is not an empty directory (",
                     ec ? ec.message() : "has entries", ")"));
  }
  for (const std::string& d : dirs) {
    stdfs::create_directories(stdfs::path(real_dir) / d, ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat("SaveImage: mkdir ", d, ": ", ec.message()));
    }
  }
  for (const auto& [rel, bytes] : contents) {
    stdfs::path target = stdfs::path(real_dir) / rel;
    std::ofstream out(target, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      return absl::InternalError(
          absl::StrCat("SaveImage: write ", target.string(), " failed"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<FaultInjectionFileSystem>>
FaultInjectionFileSystem::LoadImage(const std::string& real_dir,
                                    const std::string& fs_dir) {
  namespace stdfs = std::filesystem;
  const std::string root = NormalizePath(fs_dir);
  std::error_code ec;
  if (!stdfs::is_directory(real_dir, ec)) {
    return absl::NotFoundError(
        absl::StrCat("LoadImage: ", real_dir, " is not a directory"));
  }
  auto core = std::make_shared<Core>();
  State& s = core->state;
  PlantDirsState(&s, 0, root, true);
  stdfs::recursive_directory_iterator it(real_dir, ec), end;
  if (ec) {
    return absl::InternalError(
        absl::StrCat("LoadImage: list ", real_dir, ": ", ec.message()));
  }
  for (; it != end; it.increment(ec)) {
    if (ec) {
      return absl::InternalError(
          absl::StrCat("LoadImage: list ", real_dir, ": ", ec.message()));
    }
    const stdfs::path& real = it->path();
    std::string rel = real.lexically_relative(real_dir).generic_string();
    std::string path = NormalizePath(JoinPath(root, rel));
    auto status = it->symlink_status(ec);
    if (stdfs::is_directory(status)) {
      PlantDirsState(&s, 0, path, true);
    } else if (stdfs::is_regular_file(status)) {
      std::ifstream in(real, std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(in)),
                        std::istreambuf_iterator<char>());
      if (in.bad()) {
        return absl::InternalError(
            absl::StrCat("LoadImage: read ", real.string(), " failed"));
      }
      PlantFileState(&s, 0, path, bytes, true);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("LoadImage: ", real.string(),
                       " is neither a regular file nor a directory"));
    }
  }
  core->baseline = core->state;
  return std::unique_ptr<FaultInjectionFileSystem>(
      new FaultInjectionFileSystem(std::move(core)));
}

}  // namespace walstate
