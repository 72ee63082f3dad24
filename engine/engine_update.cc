// The update paths of EngineImpl: IMMEDIATE updates (appended and synced
// before they return), BATCHED ones (marked dirty for the next tick), updates
// from serialized values, Delete and the expiry of idle sessions.
#include <algorithm>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "engine/engine_impl.h"
#include "engine/fs/kill_point.h"
#include "engine/log/format.h"
#include "engine/log/writer.h"
#include "engine/state/schema.h"
#include "engine/state/session_id.h"
#include "engine/state/session_table.h"
#include "engine/state/update_codec.h"
#include "engine/util/mutex.h"
#include "proto/walstate/record.pb.h"

namespace walstate {
namespace internal {

namespace {

// Upper bound on a session id: ids are keys, not payloads.
constexpr size_t kMaxSessionIdBytes = 4096;

// IMMEDIATE updates (and deletes) grow the log without a tick: every this
// many of them, the compaction rule is checked (it takes the writer's and
// the snapshot counters' locks, too much for every update).
constexpr uint64_t kCompactionCheckEvery = 256;

}  // namespace

absl::Status EngineImpl::UpdateImpl(absl::string_view session, Message* values,
                                    bool move,
                                    absl::Span<const std::string> fields,
                                    const UpdateOptions& update_options) {
  if (session.empty() || session.size() > kMaxSessionIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("session id must be 1..", kMaxSessionIdBytes,
                     " bytes, got ", session.size()));
  }
  if (values->GetDescriptor() != schema_->descriptor()) {
    return absl::InvalidArgumentError(
        absl::StrCat("session ", QuoteSessionId(session), ": values are a ",
                     values->GetDescriptor()->full_name(), ", the store holds ",
                     schema_->descriptor()->full_name()));
  }
  if (fields.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "session ", QuoteSessionId(session), ": update lists no fields"));
  }
  absl::Status health_status = CheckWritable();
  if (!health_status.ok()) return health_status;
  // Hashed once, for the shard and the map. The shard (its lock and map
  // header) is a cache miss in a large table: start loading it now, while
  // the fields are resolved and encoded.
  const SessionTable::SessionKey key(session);
  SessionTable::Shard& shard = table_->ShardFor(key);
  __builtin_prefetch(&shard);
  __builtin_prefetch(reinterpret_cast<const char*>(&shard) + 64);

  // Resolve and split by tier.
  absl::InlinedVector<const Schema::Field*, 8> immediate, batched;
  FieldSet seen;
  FieldSet batched_set;
  for (const std::string& name : fields) {
    const Schema::Field* f = schema_->FindByName(name);
    if (f == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "session ", QuoteSessionId(session), ": ",
          schema_->descriptor()->full_name(), " has no field \"", name, "\""));
    }
    // Listed twice? Bit 63 stands for every later field: look those up.
    if (seen.Contains(f->index) &&
        (f->index < 63 ||
         std::find(immediate.begin(), immediate.end(), f) != immediate.end() ||
         std::find(batched.begin(), batched.end(), f) != batched.end())) {
      continue;
    }
    seen.Add(f->index);
    Durability tier = update_options.durability == DURABILITY_DEFAULT
                          ? f->durability
                          : update_options.durability;
    if (tier == IMMEDIATE) {
      immediate.push_back(f);
    } else {
      batched.push_back(f);
      batched_set.Add(f->index);
    }
  }

  // The IMMEDIATE record, encoded straight from the caller's message outside
  // any lock.
  std::string payload;
  if (!immediate.empty()) {
    absl::Status s = EncodeUpdate(session, 0, *values, immediate, &payload);
    if (!s.ok()) return s;
    if (payload.size() > log::kMaxRecordSize) {
      return absl::InvalidArgumentError(absl::StrCat(
          "session ", QuoteSessionId(session), ": update is ", payload.size(),
          " bytes, more than the ", log::kMaxRecordSize, " a record may hold"));
    }
  }

  uint64_t lsn = 0;
  {
    MutexLock lock(&shard.mu);
    table_->PrefetchSession(key.hash, SessionTable::PrefetchStep::kSlots);
    // A state Open kept serialized is parsed before anything is appended:
    // if it cannot be, the update is refused with memory and log unchanged.
    SessionTable::Node* existing = table_->FindLocked(shard, key);
    if (existing != nullptr && existing->entry.state.lazy()) {
      absl::Status parsed = table_->ParseLocked(existing);
      if (!parsed.ok()) return parsed;
    }
    absl::Status s = table_->CheckUniqueLocked(session, *values, immediate);
    if (!s.ok()) return s;
    s = table_->CheckUniqueLocked(session, *values, batched);
    if (!s.ok()) return s;
    // Append before applying, under the shard lock: the record's LSN order
    // matches the order in which changes to this session became visible,
    // and a refused append leaves memory untouched.
    SessionTable::Node* node = nullptr;
    if (!immediate.empty()) {
      auto appended = writer_->Append(log::kUpdate, payload);
      if (!appended.ok()) return Fail(appended.status(), "appending update");
      lsn = *appended;
      KillPoint("engine.after_append");
      node = table_->SetFieldsLocked(shard, key, values, immediate, move,
                                     existing);
    }
    if (!batched.empty()) {
      node = table_->SetFieldsLocked(shard, key, values, batched, move,
                                     node != nullptr ? node : existing);
      table_->MarkDirtyLocked(shard, node, batched_set);
    }
    node->entry.set_last_update(options_.clock());
  }
  if (immediate.empty()) {
    batched_updates_.fetch_add(1, std::memory_order_relaxed);
    return absl::OkStatus();
  }
  const uint64_t n = immediate_updates_.fetch_add(1, std::memory_order_relaxed);
  absl::Status s = writer_->SyncTo(lsn);
  if (!s.ok()) {
    return Fail(s, absl::StrCat("session ", QuoteSessionId(session),
                                ": syncing update LSN ", lsn));
  }
  if (n % kCompactionCheckEvery == kCompactionCheckEvery - 1) {
    RequestCompactionIfDue();
  }
  return absl::OkStatus();
}

absl::Status EngineImpl::UpdateSerialized(absl::string_view session,
                                          absl::string_view serialized,
                                          absl::Span<const std::string> fields,
                                          const UpdateOptions& options) {
  std::unique_ptr<Message> values;
  {
    MutexLock lock(&scratch_mu_);
    if (!scratch_.empty()) {
      values = std::move(scratch_.back());
      scratch_.pop_back();
    }
  }
  if (values == nullptr) values = schema_->NewMessage();
  absl::Status s;
  // Partial: required fields are not checked, as Update() does not check
  // them either. IsInitialized's walk of the message was 30% of this
  // function's perf samples for 3-group updates from the Node binding.
  if (!values->ParsePartialFromArray(serialized.data(),
                                     static_cast<int>(serialized.size()))) {
    s = absl::InvalidArgumentError(
        absl::StrCat("session ", QuoteSessionId(session), ": ",
                     serialized.size(), " bytes of values do not parse as a ",
                     schema_->descriptor()->full_name()));
  } else {
    s = UpdateImpl(session, values.get(), /*move=*/true, fields, options);
  }
  // Enough for the callers at once of a busy store; more are freed.
  constexpr size_t kMaxScratch = 64;
  MutexLock lock(&scratch_mu_);
  if (scratch_.size() < kMaxScratch) scratch_.push_back(std::move(values));
  return s;
}

absl::Status EngineImpl::DeleteLocked(SessionTable::Shard& shard,
                                      absl::string_view session,
                                      record::Delete::Reason reason,
                                      uint64_t* lsn) {
  record::Delete del;
  del.set_session(std::string(session));
  del.set_reason(reason);
  auto appended = writer_->Append(log::kDelete, del.SerializeAsString());
  if (!appended.ok()) return Fail(appended.status(), "appending delete");
  *lsn = *appended;
  table_->EraseLocked(shard, session);
  return absl::OkStatus();
}

absl::Status EngineImpl::Delete(absl::string_view session) {
  absl::Status health_status = CheckWritable();
  if (!health_status.ok()) return health_status;
  uint64_t lsn = 0;
  {
    const SessionTable::SessionKey key(session);
    SessionTable::Shard& shard = table_->ShardFor(key);
    MutexLock lock(&shard.mu);
    if (table_->FindLocked(shard, key) == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("session ", QuoteSessionId(session), " not found"));
    }
    absl::Status s = DeleteLocked(shard, session, record::Delete::API, &lsn);
    if (!s.ok()) return s;
  }
  const uint64_t n = deletes_.fetch_add(1, std::memory_order_relaxed);
  absl::Status s = writer_->SyncTo(lsn);
  if (!s.ok()) {
    return Fail(s, absl::StrCat("session ", QuoteSessionId(session),
                                ": syncing delete LSN ", lsn));
  }
  if (n % kCompactionCheckEvery == kCompactionCheckEvery - 1) {
    RequestCompactionIfDue();
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> EngineImpl::ExpireIdleSessions() {
  if (options_.session_ttl <= absl::ZeroDuration()) return 0;
  return ExpireIdleSessions(options_.session_ttl);
}

absl::StatusOr<uint64_t> EngineImpl::ExpireIdleSessions(absl::Duration idle) {
  if (idle < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("ExpireIdleSessions: the idle age must not be negative, "
                     "got ",
                     absl::FormatDuration(idle)));
  }
  absl::Status health_status = CheckWritable();
  if (!health_status.ok()) return health_status;
  const absl::Time now = options_.clock();
  uint64_t expired = 0;
  uint64_t last_lsn = 0;
  std::vector<std::string> victims;
  for (size_t i = 0; i < table_->shard_count(); ++i) {
    SessionTable::Shard& shard = table_->shard(i);
    MutexLock lock(&shard.mu);
    victims.clear();
    for (const SessionTable::Node* node : shard.sessions) {
      // Sessions recovered at Open count as touched then.
      absl::Time touched = std::max(node->entry.last_update(), opened_at_);
      if (now - touched > idle) {
        victims.emplace_back(node->id());
      }
    }
    for (const std::string& session : victims) {
      absl::Status s =
          DeleteLocked(shard, session, record::Delete::EXPIRED, &last_lsn);
      if (!s.ok()) return s;
      ++expired;
    }
  }
  if (expired > 0) {
    absl::Status s = writer_->SyncTo(last_lsn);
    if (!s.ok()) return Fail(s, "syncing expiry tombstones");
    expired_.fetch_add(expired, std::memory_order_relaxed);
  }
  return expired;
}

}  // namespace internal
}  // namespace walstate
