#include "engine/state/replayer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "engine/log/format.h"
#include "engine/state/session_id.h"
#include "engine/util/mutex.h"

namespace walstate {

namespace {

// True if `session`'s state came from a snapshot captured after record `lsn`
// was applied: applying it again could move some fields back in time (a
// tick entry older than the captured state) while others stay newer.
bool AlreadyInSnapshot(const SessionTable& table,
                       const SessionTable::Shard& shard,
                       const SessionTable::SessionKey& session, uint64_t lsn)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
  const SessionTable::Node* node = table.FindLocked(shard, session);
  return node != nullptr && lsn <= node->entry.snapshot_lsn();
}

}  // namespace

Replayer::Replayer(SessionTable* table, uint64_t base_lsn, size_t workers,
                   bool lazy)
    : table_(table),
      base_lsn_(base_lsn),
      lazy_(lazy),
      pool_(
          workers,
          [this](const ApplyPool::Item& item) { return ApplyOnWorker(item); },
          [this](uint64_t hash, int /*step: 0 only*/) {
            // Its map slots: its worker owns the shard.
            table_->PrefetchSession(hash);
          },
          /*prefetch_steps=*/1) {}

absl::Status Replayer::ApplyOnWorker(const ApplyPool::Item& item) {
  if (item.type == log::kDelete) {
    record::Delete del;
    if (!del.ParseFromArray(item.payload.data(),
                            static_cast<int>(item.payload.size()))) {
      return absl::DataLossError(
          absl::StrCat("delete record at LSN ", item.lsn, " does not parse"));
    }
    return ApplyDelete(item.lsn, {del.session(), item.hash});
  }
  UpdateView update;
  if (!DecodeUpdate(item.payload, &update)) {
    return absl::DataLossError(
        absl::StrCat("record at LSN ", item.lsn, " does not parse"));
  }
  return ApplyUpdate(item.lsn, update, {update.session, item.hash},
                     item.payload, item.worker);
}

absl::Status Replayer::Hand(absl::string_view session, uint64_t lsn,
                            uint8_t type, absl::string_view payload,
                            absl::string_view file, uint64_t offset) {
  // Hashed once: the worker gets the hash with the record.
  const SessionTable::SessionKey key(session);
  if (pool_.workers() == 0) {
    // One thread: apply the record as decoded for routing, not twice.
    absl::Status s = type == log::kDelete ? ApplyDelete(lsn, key)
                                          : ApplyUpdate(lsn, update_, key,
                                                        payload, /*worker=*/0);
    if (s.ok()) return s;
    return absl::Status(
        s.code(), absl::StrCat(file, " offset ", offset, ": ", s.message()));
  }
  return pool_.Add(table_->ShardIndexFor(key), key.hash, lsn, type, payload,
                   file, offset);
}

absl::Status Replayer::ApplyUpdate(uint64_t lsn, const UpdateView& update,
                                   const SessionTable::SessionKey& key,
                                   absl::string_view payload, size_t worker) {
  SessionTable::Shard& shard = table_->ShardFor(key);
  MutexLock lock(&shard.mu);
  // One lookup serves the snapshot check and the update.
  SessionTable::Node* existing = table_->FindLocked(shard, key);
  if (existing != nullptr && lsn <= existing->entry.snapshot_lsn()) {
    return absl::OkStatus();
  }
  bool kept_unknown = false;
  if (lazy_) {
    absl::Status kept = table_->KeepUpdateLocked(
        shard, key, existing, lsn, payload, update, worker, &kept_unknown);
    if (!kept.ok()) {
      return absl::DataLossError(
          absl::StrCat("record at LSN ", lsn, ": ", kept.message()));
    }
    if (kept_unknown) {
      unknown_fields_kept_.fetch_add(1, std::memory_order_relaxed);
    }
    return absl::OkStatus();
  }
  auto node = table_->SetEncodedFieldsLocked(
      shard, key, update.values, update.fields, &kept_unknown, existing);
  if (!node.ok()) {
    return absl::DataLossError(
        absl::StrCat("record at LSN ", lsn, ": ", node.status().message()));
  }
  if (kept_unknown) {
    unknown_fields_kept_.fetch_add(1, std::memory_order_relaxed);
  }
  return absl::OkStatus();
}

absl::Status Replayer::ApplyDelete(uint64_t lsn,
                                   const SessionTable::SessionKey& key) {
  SessionTable::Shard& shard = table_->ShardFor(key);
  MutexLock lock(&shard.mu);
  if (!AlreadyInSnapshot(*table_, shard, key, lsn)) {
    table_->EraseLocked(shard, key);
  }
  return absl::OkStatus();
}

absl::Status Replayer::Apply(uint64_t lsn, uint8_t type,
                             absl::string_view payload, absl::string_view file,
                             uint64_t offset) {
  // Damage found here is reported only if no earlier record failed on a
  // worker: the error always names the first damage, however many threads.
  auto data_loss = [&](absl::string_view what) {
    return pool_.StopAt(absl::DataLossError(
        absl::StrCat(file, " offset ", offset, ": ", what)));
  };
  switch (type) {
    case log::kUpdate:
      // Decoded here for the session id (the route); a worker decodes its
      // copy again, which costs less than shipping the views.
      if (!DecodeUpdate(payload, &update_)) {
        return data_loss(
            absl::StrCat("update record at LSN ", lsn, " does not parse"));
      }
      return Hand(update_.session, lsn, type, payload, file, offset);
    case log::kDelete:
      if (!delete_.ParseFromArray(payload.data(),
                                  static_cast<int>(payload.size()))) {
        return data_loss(
            absl::StrCat("delete record at LSN ", lsn, " does not parse"));
      }
      return Hand(delete_.session(), lsn, type, payload, file, offset);
    case log::kTickBegin:
      open_ticks_.insert(lsn);
      return absl::OkStatus();
    case log::kTickEntry: {
      if (!DecodeUpdate(payload, &update_)) {
        return data_loss(
            absl::StrCat("tick entry at LSN ", lsn, " does not parse"));
      }
      const uint64_t tick = update_.tick;
      if (!open_ticks_.contains(tick)) {
        if (tick > base_lsn_ || tick >= lsn) {
          return data_loss(absl::StrCat("tick entry at LSN ", lsn, " (session ",
                                        QuoteSessionId(update_.session),
                                        ") belongs to tick ", tick,
                                        ", which was never begun"));
        }
        // Begun before the snapshot this replay starts from.
        open_ticks_.insert(tick);
      }
      if (lazy_) {
        // Kept now; voided at Finish if the tick never commits.
        TickSessions& sessions = undecided_[tick];
        sessions.ids.append(update_.session.data(), update_.session.size());
        sessions.ends.push_back(static_cast<uint32_t>(sessions.ids.size()));
      } else if (!committed_.contains(tick)) {
        return absl::OkStatus();  // dropped
      }
      return Hand(update_.session, lsn, type, payload, file, offset);
    }
    case log::kTickCommit:
    case log::kTickAbort: {
      record::TickEnd end;
      if (!end.ParseFromArray(payload.data(),
                              static_cast<int>(payload.size()))) {
        return data_loss(
            absl::StrCat("tick end at LSN ", lsn, " does not parse"));
      }
      if (!open_ticks_.erase(end.tick()) && end.tick() > base_lsn_) {
        return data_loss(absl::StrCat(log::RecordTypeName(type), " at LSN ",
                                      lsn, " for tick ", end.tick(),
                                      ", which is not open"));
      }
      if (type == log::kTickCommit) {
        // The first pass saw this record too; entries applied before it
        // were applied because of it.
        ++ticks_committed_;
        if (lazy_) undecided_.erase(end.tick());
      } else {
        ++ticks_aborted_;
        if (lazy_) {
          auto it = undecided_.find(end.tick());
          if (it != undecided_.end()) {
            voided_.emplace_back(it->first, std::move(it->second));
            undecided_.erase(it);
          }
        }
      }
      return absl::OkStatus();
    }
    default:
      return absl::OkStatus();
  }
}

absl::Status Replayer::Finish() {
  absl::Status applied = pool_.Finish();
  if (lazy_ && applied.ok()) {
    // Every entry is kept now: void those of ticks that never committed
    // (aborted, or still open at the log's end).
    for (auto& [tick, sessions] : undecided_) {
      voided_.emplace_back(tick, std::move(sessions));
    }
    undecided_.clear();
    absl::flat_hash_set<uint64_t> ticks;
    for (const auto& v : voided_) ticks.insert(v.first);
    for (const auto& v : voided_) {
      uint32_t begin = 0;
      for (uint32_t end : v.second.ends) {
        table_->VoidTickEntries(
            absl::string_view(v.second.ids).substr(begin, end - begin), ticks);
        begin = end;
      }
    }
    voided_.clear();
  }
  open_.assign(open_ticks_.begin(), open_ticks_.end());
  std::sort(open_.begin(), open_.end());
  ticks_aborted_ += open_.size();
  open_ticks_.clear();
  return applied;
}

}  // namespace walstate
