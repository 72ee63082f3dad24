#include "engine/state/session_table.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "engine/state/message_fields.h"
#include "engine/state/session_id.h"

namespace walstate {

using google::protobuf::Message;

SessionTable::SessionTable(const Schema& schema, size_t shard_count)
    : schema_(schema) {
  shards_.reserve(shard_count);
  for (size_t i = 0; i < shard_count; ++i) {
    shards_.push_back(std::make_unique<Shard>());
  }
  MutexLock lock(&index_mu_);
  for (const Schema::Field* f : schema.indexed_fields()) {
    indexes_.emplace_back(*f);
  }
}

SessionTable::~SessionTable() = default;

void SessionTable::Reserve(size_t sessions) {
  // Shards fill unevenly: room for the fullest.
  const size_t per_shard =
      SplitFor(sessions, shards_.size(), shards_.size()).per_set;
  for (auto& shard : shards_) {
    MutexLock lock(&shard->mu);
    shard->sessions.reserve(per_shard);
  }
  // Suspended indexes are built, and sized, by RebuildIndexes.
  if (indexes_suspended_) return;
  MutexLock lock(&index_mu_);
  for (SecondaryIndex& index : indexes_) {
    if (index.empty()) index.Split(sessions);
  }
}

size_t SessionTable::IndexParts(size_t index) const {
  MutexLock lock(&index_mu_);
  return indexes_[index].parts();
}

size_t SessionTable::IndexSlots(size_t index) const {
  MutexLock lock(&index_mu_);
  return indexes_[index].slots();
}

void SessionTable::RebuildIndexes(bool from_load) {
  indexes_suspended_ = false;
  // No other thread uses the table: index_mu_ is held only to say so to the
  // analysis; the indexes are built on threads of their own, each reading
  // every state (nobody writes them now) and filling only its own index.
  MutexLock lock(&index_mu_);
  if (indexes_.empty()) return;
  const size_t sessions = size();
  // Only if the load put in every session (a table it did not fill is
  // walked).
  from_load = from_load && lazy_arena_ != nullptr &&
              lazy_arena_->snapshot_states() == sessions;
  const size_t hinted =
      std::min<size_t>(schema_.indexed_fields().size(), lazy::kHintedFields);
  auto for_each_node = [this](absl::FunctionRef<void(const SessionNode*)> fn)
                           ABSL_NO_THREAD_SAFETY_ANALYSIS {
                             for (const auto& shard : shards_) {
                               for (const Node* node : shard->sessions)
                                 fn(node);
                             }
                           };
  auto build = [&](SecondaryIndex* index, size_t slot) {
    index->Clear();
    index->Split(sessions);
    if (from_load && slot < hinted) {
      index->BuildFromLoad(*lazy_arena_, slot);
    } else {
      index->Build(for_each_node);
    }
  };
  std::vector<std::thread> threads;
  for (size_t slot = 1; slot < indexes_.size(); ++slot) {
    threads.emplace_back(build, &indexes_[slot], slot);
  }
  build(&indexes_[0], 0);
  for (std::thread& t : threads) t.join();
}

absl::Status SessionTable::CheckUniqueLocked(
    absl::string_view session, const Message& values,
    absl::Span<const Schema::Field* const> fields) const {
  bool any_unique = false;
  for (const Schema::Field* field : fields) {
    any_unique |= field->index_kind == UNIQUE;
  }
  if (!any_unique) return absl::OkStatus();
  MutexLock lock(&index_mu_);
  for (const Schema::Field* field : fields) {
    if (field->index_kind != UNIQUE) continue;
    IndexValue value;
    if (!IndexValueOf(values, *field, &value)) continue;
    const SecondaryIndex& index = indexes_[field->index_position];
    const SessionNode* one = nullptr;
    for (const Node* holder : index.Find(index.KeyOf(value), &one)) {
      if (holder->id() != session) {
        return absl::AlreadyExistsError(absl::StrCat(
            "session ", QuoteSessionId(session), ": ",
            field->descriptor->name(), " \"", schema_.IndexKey(values, *field),
            "\" is already held by session ", QuoteSessionId(holder->id()),
            " (UNIQUE index); delete or change that session first"));
      }
    }
  }
  return absl::OkStatus();
}

bool SessionTable::TouchesIndex(
    absl::Span<const Schema::Field* const> fields) const {
  if (indexes_suspended_) return false;
  for (const Schema::Field* f : fields) {
    if (f->index_kind != NO_INDEX) return true;
  }
  return false;
}

SessionTable::Node* SessionTable::FindLocked(const Shard& shard,
                                             const SessionKey& session) const {
  auto it = shard.sessions.find(session);
  return it == shard.sessions.end() ? nullptr : *it;
}

SessionTable::Node* SessionTable::FindOrCreateLocked(Shard& shard,
                                                     const SessionKey& session,
                                                     bool* inserted_out,
                                                     bool with_state) {
  bool inserted = false;
  auto it = shard.sessions.lazy_emplace(
      session, [&](const Sessions::constructor& construct) {
        construct(Node::New(session.id));
        inserted = true;
      });
  if (inserted) {
    size_.fetch_add(1, std::memory_order_relaxed);
    if (with_state) (*it)->entry.state.reset(schema_.NewMessage());
  }
  if (inserted_out != nullptr) *inserted_out = inserted;
  return *it;
}

SessionTable::Node* SessionTable::SetFieldsLocked(
    Shard& shard, const SessionKey& session, Message* values,
    absl::Span<const Schema::Field* const> fields, bool move, Node* existing) {
  Node* node =
      existing != nullptr ? existing : FindOrCreateLocked(shard, session);
  Message* state = node->entry.state.parsed();
  if (state == nullptr) {
    // The caller parsed the session first (ParseLocked) and gave up on an
    // error; a lazy state here is a bug, and setting fields on a state
    // whose older fields were lost would be silent data loss.
    std::fprintf(stderr,
                 "walstate: SetFieldsLocked on session %.*s whose state is "
                 "not parsed\n",
                 static_cast<int>(session.id.size()), session.id.data());
    std::abort();
  }
  auto set = [&] {
    if (move) {
      MoveListedFields(state, values, fields);
    } else {
      for (const Schema::Field* f : fields) {
        CopyField(*values, f->descriptor, state);
      }
    }
  };
  if (TouchesIndex(fields)) {
    ChangeIndexed(*node, fields, set);
  } else {
    set();
  }
  return node;
}

SessionTable::Node* SessionTable::CopyFieldsLocked(
    Shard& shard, const SessionKey& session, const Message& values,
    absl::Span<const Schema::Field* const> fields) {
  // Not moved from, so not changed.
  return SetFieldsLocked(shard, session, const_cast<Message*>(&values), fields,
                         /*move=*/false);
}

absl::StatusOr<SessionTable::Node*> SessionTable::SetEncodedFieldsLocked(
    Shard& shard, const SessionKey& session, absl::string_view encoded,
    absl::Span<const uint32_t> numbers, bool* kept_unknown, Node* existing) {
  if (!OnlyListedFields(encoded, numbers)) {
    return absl::DataLossError(absl::StrCat(
        "values of session ", QuoteSessionId(session.id),
        " do not parse, or hold a field the record does not list"));
  }
  // The listed fields this schema knows: the indexes among them change.
  absl::InlinedVector<const Schema::Field*, 8> fields;
  for (uint32_t number : numbers) {
    const Schema::Field* f = schema_.FindByNumber(static_cast<int>(number));
    if (f != nullptr) fields.push_back(f);
  }
  Node* node =
      existing != nullptr ? existing : FindOrCreateLocked(shard, session);
  absl::Status parsed_first = ParseLocked(node);
  if (!parsed_first.ok()) return parsed_first;
  Message* state = node->entry.state.parsed();
  bool parsed = false;
  auto apply = [&] {
    parsed = ApplyEncodedFields(schema_, state, encoded, numbers, kept_unknown);
  };
  if (TouchesIndex(fields)) {
    ChangeIndexed(*node, fields, apply);
  } else {
    apply();
  }
  if (!parsed) {
    return absl::DataLossError(
        absl::StrCat("values of session ", QuoteSessionId(session.id),
                     " do not parse as ", schema_.descriptor()->full_name()));
  }
  return node;
}

void SessionTable::MarkDirtyLocked(Shard& shard, Node* node, FieldSet fields) {
  if (node->entry.dirty.empty() && !fields.empty()) {
    node->dirty_pos_ = static_cast<uint32_t>(shard.dirty.size());
    shard.dirty.push_back(node);
    ++shard.dirty_count;
    dirty_total_.fetch_add(1, std::memory_order_relaxed);
  }
  node->entry.dirty |= fields;
}

void SessionTable::ClearDirtyLocked(Shard& shard, Node* node) {
  if (node->entry.dirty.empty()) return;
  shard.dirty[node->dirty_pos_] = nullptr;
  --shard.dirty_count;
  dirty_total_.fetch_sub(1, std::memory_order_relaxed);
  node->entry.dirty = FieldSet();
}

void SessionTable::CompactDirtyLocked(Shard& shard) {
  size_t kept = 0;
  for (Node* node : shard.dirty) {
    if (node == nullptr) continue;
    node->dirty_pos_ = static_cast<uint32_t>(kept);
    shard.dirty[kept++] = node;
  }
  shard.dirty.resize(kept);
  // A tick of many sessions leaves a large, empty vector behind.
  if (shard.dirty.capacity() > 1024 && kept < shard.dirty.capacity() / 8) {
    shard.dirty.shrink_to_fit();
  }
}

SessionTable::Node* SessionTable::PutLocked(Shard& shard,
                                            const SessionKey& session,
                                            std::unique_ptr<Message> state,
                                            bool* inserted_out) {
  bool inserted = false;
  // No empty state for a new session: `state` is put in below.
  Node* node = FindOrCreateLocked(shard, session, &inserted,
                                  /*with_state=*/false);
  if (inserted_out != nullptr) *inserted_out = inserted;
  if (node->entry.state.lazy()) {
    lazy_count_.fetch_sub(1, std::memory_order_relaxed);
  }
  if (schema_.indexed_fields().empty() || indexes_suspended_) {
    node->entry.state.reset(std::move(state));
    return node;
  }
  MutexLock lock(&index_mu_);
  if (!inserted) {
    for (SecondaryIndex& index : indexes_) index.Remove(*node);
  }
  node->entry.state.reset(std::move(state));
  for (SecondaryIndex& index : indexes_) index.Add(*node);
  return node;
}

bool SessionTable::EraseLocked(Shard& shard, const SessionKey& session) {
  auto it = shard.sessions.find(session);
  if (it == shard.sessions.end()) return false;
  Node* node = *it;
  if (!schema_.indexed_fields().empty() && !indexes_suspended_) {
    MutexLock lock(&index_mu_);
    for (SecondaryIndex& index : indexes_) index.Remove(*node);
  }
  ClearDirtyLocked(shard, node);
  shard.sessions.erase(it);
  const bool was_lazy = node->entry.state.lazy();
  Node::Free(node);
  if (was_lazy) lazy_count_.fetch_sub(1, std::memory_order_relaxed);
  size_.fetch_sub(1, std::memory_order_relaxed);
  return true;
}

absl::Status SessionTable::Get(absl::string_view session, Message* out) const {
  if (out->GetDescriptor() != schema_.descriptor()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Get: output is a ", out->GetDescriptor()->full_name(),
                     ", the store holds ", schema_.descriptor()->full_name()));
  }
  const SessionKey key(session);
  const Shard& shard = ShardFor(key);
  MutexLock lock(&shard.mu);
  const Node* node = FindLocked(shard, key);
  if (node == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("session ", QuoteSessionId(session), " not found"));
  }
  absl::Status parsed = ParseLocked(node);
  if (!parsed.ok()) return parsed;
  out->CopyFrom(*node->entry.state.parsed());
  return absl::OkStatus();
}

bool SessionTable::Contains(absl::string_view session) const {
  const SessionKey key(session);
  const Shard& shard = ShardFor(key);
  MutexLock lock(&shard.mu);
  return FindLocked(shard, key) != nullptr;
}

void SessionTable::ForEach(
    const std::function<void(absl::string_view, const Message&)>& fn) const {
  for (const auto& shard : shards_) {
    MutexLock lock(&shard->mu);
    for (const Node* node : shard->sessions) {
      // A session whose kept bytes do not parse is skipped; Get and Update
      // name it with DataLoss.
      if (!ParseLocked(node).ok()) continue;
      fn(node->id(), *node->entry.state.parsed());
    }
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
  IndexValue parsed;
  if (!IndexValueFromText(*f, value, &parsed)) return out;
  MutexLock lock(&index_mu_);
  const SecondaryIndex& index = indexes_[f->index_position];
  const SessionNode* one = nullptr;
  for (const Node* holder : index.Find(index.KeyOf(parsed), &one)) {
    out.emplace_back(holder->id());
  }
  std::sort(out.begin(), out.end());
  return out;
}

uint64_t SessionTable::ApproximateMemory() const {
  // Heap blocks are counted at their request size plus malloc's 8-byte
  // header, rounded up to 16, as glibc allocates them.
  auto block = [](uint64_t n) { return (n + 8 + 15) / 16 * 16; };
  uint64_t bytes = 0;
  for (const auto& shard : shards_) {
    MutexLock lock(&shard->mu);
    bytes +=
        shard->sessions.bucket_count() * (sizeof(Sessions::value_type) + 1);
    bytes += shard->dirty.capacity() * sizeof(Node*);
    for (const Node* node : shard->sessions) {
      bytes += block(Node::BlockSize(node->id().size()));
      // A lazy state's bytes are counted with the arena below.
      if (const Message* state = node->entry.state.parsed()) {
        bytes += state->SpaceUsedLong();
      }
    }
  }
  MutexLock lock(&index_mu_);
  if (lazy_arena_ != nullptr) bytes += lazy_arena_->bytes();
  bytes += lazy_mapped_bytes_;
  for (const SecondaryIndex& index : indexes_) {
    bytes += index.ApproximateMemory();
  }
  return bytes;
}

}  // namespace walstate
