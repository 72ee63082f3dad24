#include "engine/state/replayer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "engine/log/format.h"
#include "google/protobuf/unknown_field_set.h"

namespace walstate {

using google::protobuf::Message;

void CopyUnknownFields(const Message& src, const std::vector<uint32_t>& numbers,
                       Message* dst) {
  const auto& from = src.GetReflection()->GetUnknownFields(src);
  auto* to = dst->GetReflection()->MutableUnknownFields(dst);
  for (uint32_t n : numbers) {
    to->DeleteByNumber(static_cast<int>(n));
    for (int i = 0; i < from.field_count(); ++i) {
      if (from.field(i).number() == static_cast<int>(n)) {
        to->AddField(from.field(i));
      }
    }
  }
}

namespace {

// True if `session`'s state came from a snapshot captured after record `lsn`
// was applied: applying it again could move some fields back in time (a
// tick entry older than the captured state) while others stay newer.
bool AlreadyInSnapshot(const SessionTable::Shard& shard,
                       const std::string& session, uint64_t lsn) {
  auto it = shard.sessions.find(session);
  return it != shard.sessions.end() && lsn <= it->second.snapshot_lsn;
}

}  // namespace

Replayer::Replayer(SessionTable* table, uint64_t base_lsn)
    : table_(table),
      base_lsn_(base_lsn),
      scratch_(table->schema().NewMessage()) {}

absl::Status Replayer::ApplyUpdate(uint64_t lsn, const record::Update& update) {
  const Schema& schema = table_->schema();
  fields_.clear();
  std::vector<uint32_t> unknown;
  for (uint32_t number : update.fields()) {
    const Schema::Field* f = schema.FindByNumber(static_cast<int>(number));
    if (f == nullptr) {
      unknown.push_back(number);
    } else {
      fields_.push_back(f);
    }
  }
  scratch_->Clear();
  if (!scratch_->ParseFromString(update.values())) {
    return absl::DataLossError(absl::StrCat(
        "record at LSN ", lsn, ", session ", update.session(),
        ": values do not parse as ", schema.descriptor()->full_name()));
  }
  SessionTable::Shard& shard = table_->ShardFor(update.session());
  std::lock_guard<std::mutex> lock(shard.mu);
  if (AlreadyInSnapshot(shard, update.session(), lsn)) return absl::OkStatus();
  SessionTable::Entry* entry =
      table_->ApplyLocked(shard, update.session(), scratch_.get(), fields_);
  if (!unknown.empty()) {
    CopyUnknownFields(*scratch_, unknown, entry->state.get());
    ++unknown_fields_kept_;
  }
  return absl::OkStatus();
}

absl::Status Replayer::ApplyDelete(uint64_t lsn, const std::string& session) {
  SessionTable::Shard& shard = table_->ShardFor(session);
  std::lock_guard<std::mutex> lock(shard.mu);
  if (!AlreadyInSnapshot(shard, session, lsn)) {
    table_->EraseLocked(shard, session);
  }
  return absl::OkStatus();
}

absl::Status Replayer::ApplyNow(uint64_t lsn, uint8_t type,
                                absl::string_view payload) {
  if (type == log::kDelete) {
    if (!delete_.ParseFromArray(payload.data(),
                                static_cast<int>(payload.size()))) {
      return absl::DataLossError(
          absl::StrCat("delete record at LSN ", lsn, " does not parse"));
    }
    return ApplyDelete(lsn, delete_.session());
  }
  // kUpdate or a decided kTickEntry.
  if (!update_.ParseFromArray(payload.data(),
                              static_cast<int>(payload.size()))) {
    return absl::DataLossError(
        absl::StrCat("update record at LSN ", lsn, " does not parse"));
  }
  return ApplyUpdate(lsn, update_);
}

absl::Status Replayer::Apply(uint64_t lsn, uint8_t type,
                             absl::string_view payload) {
  switch (type) {
    case log::kUpdate:
    case log::kDelete: {
      // Only the session id is needed to decide whether to queue; parsing it
      // twice for queued sessions is cheaper than copying every payload.
      if (queued_.empty()) return ApplyNow(lsn, type, payload);
      std::string session;
      if (type == log::kUpdate) {
        if (!update_.ParseFromArray(payload.data(),
                                    static_cast<int>(payload.size()))) {
          return absl::DataLossError(
              absl::StrCat("update record at LSN ", lsn, " does not parse"));
        }
        auto it = queued_.find(update_.session());
        if (it == queued_.end()) return ApplyUpdate(lsn, update_);
        Pending& p = it->second.emplace_back();
        p.lsn = lsn;
        p.type = type;
        p.committed = true;
        p.update.Swap(&update_);
        return absl::OkStatus();
      }
      if (!delete_.ParseFromArray(payload.data(),
                                  static_cast<int>(payload.size()))) {
        return absl::DataLossError(
            absl::StrCat("delete record at LSN ", lsn, " does not parse"));
      }
      auto it = queued_.find(delete_.session());
      if (it == queued_.end()) return ApplyNow(lsn, type, payload);
      Pending& p = it->second.emplace_back();
      p.lsn = lsn;
      p.type = type;
      p.committed = true;
      p.session = delete_.session();
      return absl::OkStatus();
    }
    case log::kTickBegin:
      open_ticks_[lsn];
      return absl::OkStatus();
    case log::kTickEntry: {
      if (!update_.ParseFromArray(payload.data(),
                                  static_cast<int>(payload.size()))) {
        return absl::DataLossError(
            absl::StrCat("tick entry at LSN ", lsn, " does not parse"));
      }
      uint64_t tick = update_.tick();
      auto it = open_ticks_.find(tick);
      if (it == open_ticks_.end()) {
        if (tick > base_lsn_ || tick >= lsn) {
          return absl::DataLossError(absl::StrCat(
              "tick entry at LSN ", lsn, " (session ", update_.session(),
              ") belongs to tick ", tick, ", which was never begun"));
        }
        // Begun before the snapshot this replay starts from.
        it = open_ticks_.try_emplace(tick).first;
      }
      it->second.sessions.push_back(update_.session());
      Pending& p = queued_[update_.session()].emplace_back();
      p.lsn = lsn;
      p.type = type;
      p.tick = tick;
      p.update.Swap(&update_);
      return absl::OkStatus();
    }
    case log::kTickCommit:
    case log::kTickAbort: {
      record::TickEnd end;
      if (!end.ParseFromArray(payload.data(),
                              static_cast<int>(payload.size()))) {
        return absl::DataLossError(
            absl::StrCat("tick end at LSN ", lsn, " does not parse"));
      }
      if (!open_ticks_.contains(end.tick()) && end.tick() > base_lsn_) {
        return absl::DataLossError(
            absl::StrCat(log::RecordTypeName(type), " at LSN ", lsn,
                         " for tick ", end.tick(), ", which is not open"));
      }
      bool commit = type == log::kTickCommit;
      if (commit) {
        ++ticks_committed_;
      } else {
        ++ticks_aborted_;
      }
      return Decide(end.tick(), commit);
    }
    default:
      return absl::OkStatus();
  }
}

absl::Status Replayer::Decide(uint64_t tick, bool commit) {
  auto it = open_ticks_.find(tick);
  if (it == open_ticks_.end()) return absl::OkStatus();
  std::vector<std::string> sessions = std::move(it->second.sessions);
  open_ticks_.erase(it);
  for (const std::string& session : sessions) {
    auto q = queued_.find(session);
    if (q == queued_.end()) continue;
    auto& queue = q->second;
    for (auto p = queue.begin(); p != queue.end();) {
      if (p->type == log::kTickEntry && p->tick == tick && !p->committed) {
        if (commit) {
          p->committed = true;
          ++p;
        } else {
          p = queue.erase(p);
        }
      } else {
        ++p;
      }
    }
    absl::Status s = Drain(session);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status Replayer::Drain(const std::string& session) {
  auto q = queued_.find(session);
  if (q == queued_.end()) return absl::OkStatus();
  auto& queue = q->second;
  while (!queue.empty() && queue.front().committed) {
    Pending p = std::move(queue.front());
    queue.pop_front();
    absl::Status s = p.type == log::kDelete ? ApplyDelete(p.lsn, p.session)
                                            : ApplyUpdate(p.lsn, p.update);
    if (!s.ok()) return s;
  }
  if (queue.empty()) queued_.erase(q);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint64_t>> Replayer::Finish() {
  std::vector<uint64_t> open;
  for (const auto& [tick, unused] : open_ticks_) open.push_back(tick);
  std::sort(open.begin(), open.end());
  for (uint64_t tick : open) {
    ++ticks_aborted_;
    absl::Status s = Decide(tick, /*commit=*/false);
    if (!s.ok()) return s;
  }
  return open;
}

}  // namespace walstate
