#include "engine/state/session_table.h"

#include <algorithm>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"

namespace walstate {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

SessionTable::SessionTable(const Schema& schema, size_t shard_count)
    : schema_(schema) {
  shards_.reserve(shard_count);
  for (size_t i = 0; i < shard_count; ++i) {
    shards_.push_back(std::make_unique<Shard>());
  }
  indexes_.resize(schema.indexed_fields().size());
  index_slot_.assign(schema.fields().size(), -1);
  for (size_t i = 0; i < schema.indexed_fields().size(); ++i) {
    index_slot_[schema.indexed_fields()[i]->index] = static_cast<int>(i);
  }
}

SessionTable::Shard& SessionTable::ShardFor(absl::string_view session) {
  return *shards_[absl::HashOf(session) % shards_.size()];
}

const SessionTable::Shard& SessionTable::ShardFor(
    absl::string_view session) const {
  return *shards_[absl::HashOf(session) % shards_.size()];
}

absl::Status SessionTable::CheckUniqueLocked(
    absl::string_view session, const Message& values,
    absl::Span<const Schema::Field* const> fields) const {
  std::lock_guard<std::mutex> lock(index_mu_);
  for (const Schema::Field* field : fields) {
    if (field->index_kind != UNIQUE) continue;
    std::string key = schema_.IndexKey(values, *field);
    if (key.empty()) continue;
    const Index& index = indexes_[index_slot_[field->index]];
    auto it = index.find(key);
    if (it == index.end()) continue;
    for (const std::string& holder : it->second) {
      if (holder != session) {
        return absl::AlreadyExistsError(absl::StrCat(
            "session ", session, ": ", field->descriptor->name(), " \"", key,
            "\" is already held by session ", holder,
            " (UNIQUE index); delete or change that session first"));
      }
    }
  }
  return absl::OkStatus();
}

void SessionTable::IndexRemoveLocked(absl::string_view session,
                                     const Message& state,
                                     const Schema::Field& field) {
  std::string key = schema_.IndexKey(state, field);
  if (key.empty()) return;
  Index& index = indexes_[index_slot_[field.index]];
  auto it = index.find(key);
  if (it == index.end()) return;
  it->second.erase(session);
  if (it->second.empty()) index.erase(it);
}

void SessionTable::IndexAddLocked(absl::string_view session,
                                  const Message& state,
                                  const Schema::Field& field) {
  std::string key = schema_.IndexKey(state, field);
  if (key.empty()) return;
  indexes_[index_slot_[field.index]][key].insert(std::string(session));
}

SessionTable::Entry* SessionTable::ApplyLocked(
    Shard& shard, absl::string_view session, Message* values,
    absl::Span<const Schema::Field* const> fields) {
  auto [it, inserted] = shard.sessions.try_emplace(session);
  Entry& entry = it->second;
  if (inserted) {
    entry.state = schema_.NewMessage();
    size_.fetch_add(1, std::memory_order_relaxed);
  }
  // Swapping moves the new values in without copying them; only the listed
  // fields change, which is the whole point of a partial update.
  std::vector<const FieldDescriptor*> descriptors;
  descriptors.reserve(fields.size());
  bool touches_index = false;
  for (const Schema::Field* f : fields) {
    descriptors.push_back(f->descriptor);
    if (f->index_kind != NO_INDEX) touches_index = true;
  }
  if (!touches_index) {
    entry.state->GetReflection()->SwapFields(entry.state.get(), values,
                                             descriptors);
    return &entry;
  }
  std::lock_guard<std::mutex> lock(index_mu_);
  for (const Schema::Field* f : fields) {
    if (f->index_kind != NO_INDEX) IndexRemoveLocked(session, *entry.state, *f);
  }
  entry.state->GetReflection()->SwapFields(entry.state.get(), values,
                                           descriptors);
  for (const Schema::Field* f : fields) {
    if (f->index_kind != NO_INDEX) IndexAddLocked(session, *entry.state, *f);
  }
  return &entry;
}

SessionTable::Entry* SessionTable::CopyFieldsLocked(
    Shard& shard, absl::string_view session, const Message& values,
    absl::Span<const Schema::Field* const> fields, FieldCopier copy_field) {
  auto [it, inserted] = shard.sessions.try_emplace(session);
  Entry& entry = it->second;
  if (inserted) {
    entry.state = schema_.NewMessage();
    size_.fetch_add(1, std::memory_order_relaxed);
  }
  bool touches_index = false;
  for (const Schema::Field* f : fields) {
    touches_index |= f->index_kind != NO_INDEX;
  }
  if (!touches_index) {
    for (const Schema::Field* f : fields) {
      copy_field(values, f->descriptor, entry.state.get());
    }
    return &entry;
  }
  std::lock_guard<std::mutex> lock(index_mu_);
  for (const Schema::Field* f : fields) {
    if (f->index_kind != NO_INDEX) IndexRemoveLocked(session, *entry.state, *f);
  }
  for (const Schema::Field* f : fields) {
    copy_field(values, f->descriptor, entry.state.get());
  }
  for (const Schema::Field* f : fields) {
    if (f->index_kind != NO_INDEX) IndexAddLocked(session, *entry.state, *f);
  }
  return &entry;
}

void SessionTable::PutLocked(Shard& shard, absl::string_view session,
                             std::unique_ptr<Message> state) {
  auto [it, inserted] = shard.sessions.try_emplace(session);
  if (inserted) size_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(index_mu_);
  if (!inserted) {
    for (const Schema::Field* f : schema_.indexed_fields()) {
      IndexRemoveLocked(session, *it->second.state, *f);
    }
  }
  it->second.state = std::move(state);
  for (const Schema::Field* f : schema_.indexed_fields()) {
    IndexAddLocked(session, *it->second.state, *f);
  }
}

bool SessionTable::EraseLocked(Shard& shard, absl::string_view session) {
  auto it = shard.sessions.find(session);
  if (it == shard.sessions.end()) return false;
  if (!schema_.indexed_fields().empty()) {
    std::lock_guard<std::mutex> lock(index_mu_);
    for (const Schema::Field* f : schema_.indexed_fields()) {
      IndexRemoveLocked(session, *it->second.state, *f);
    }
  }
  shard.sessions.erase(it);
  shard.dirty.erase(session);
  size_.fetch_sub(1, std::memory_order_relaxed);
  return true;
}

absl::Status SessionTable::Get(absl::string_view session, Message* out) const {
  if (out->GetDescriptor() != schema_.descriptor()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Get: output is a ", out->GetDescriptor()->full_name(),
                     ", the store holds ", schema_.descriptor()->full_name()));
  }
  const Shard& shard = ShardFor(session);
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.sessions.find(session);
  if (it == shard.sessions.end()) {
    return absl::NotFoundError(absl::StrCat("session ", session, " not found"));
  }
  out->CopyFrom(*it->second.state);
  return absl::OkStatus();
}

bool SessionTable::Contains(absl::string_view session) const {
  const Shard& shard = ShardFor(session);
  std::lock_guard<std::mutex> lock(shard.mu);
  return shard.sessions.contains(session);
}

void SessionTable::ForEach(
    const std::function<void(absl::string_view, const Message&)>& fn) const {
  for (const auto& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard->mu);
    for (const auto& [session, entry] : shard->sessions)
      fn(session, *entry.state);
  }
}

absl::StatusOr<std::vector<std::string>> SessionTable::Lookup(
    absl::string_view field, absl::string_view value) const {
  const Schema::Field* f = schema_.FindByName(field);
  if (f == nullptr || f->index_kind == NO_INDEX) {
    return absl::InvalidArgumentError(
        absl::StrCat("Lookup: ", schema_.descriptor()->full_name(), ".", field,
                     " is not an indexed field (declare it with "
                     "[(walstate.index) = UNIQUE] or MULTI)"));
  }
  std::vector<std::string> out;
  std::lock_guard<std::mutex> lock(index_mu_);
  const Index& index = indexes_[index_slot_[f->index]];
  auto it = index.find(value);
  if (it != index.end()) out.assign(it->second.begin(), it->second.end());
  std::sort(out.begin(), out.end());
  return out;
}

size_t SessionTable::dirty_count() const {
  size_t n = 0;
  for (const auto& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard->mu);
    n += shard->dirty.size();
  }
  return n;
}

uint64_t SessionTable::ApproximateMemory() const {
  uint64_t bytes = 0;
  for (const auto& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard->mu);
    bytes +=
        shard->sessions.capacity() * (sizeof(std::string) + sizeof(Entry) + 1);
    for (const auto& [session, entry] : shard->sessions) {
      if (session.size() > 15) bytes += session.capacity() + 1;
      bytes += entry.state->SpaceUsedLong();
    }
  }
  std::lock_guard<std::mutex> lock(index_mu_);
  for (const Index& index : indexes_) {
    for (const auto& [key, holders] : index) {
      bytes += sizeof(key) + key.capacity() + holders.capacity() * 40;
    }
  }
  return bytes;
}

}  // namespace walstate
