// SessionTable's lazy recovery (lazy_state.h): states kept serialized, as
// the snapshot and the log hold them, until a session's first use parses
// them. The table's locking is described in session_table.h.
#include <algorithm>
#include <cstring>
#include <new>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "engine/state/message_fields.h"
#include "engine/state/session_id.h"
#include "engine/state/session_table.h"

namespace walstate {

using google::protobuf::Message;

void SessionTable::BeginLazy(size_t writers, absl::string_view snapshot) {
  lazy_arena_ = std::make_unique<lazy::Arena>(writers);
  lazy_snapshot_ = std::string(snapshot);
  const auto& indexed = schema_.indexed_fields();
  for (size_t i = 0; i < indexed.size() && i < lazy::kHintedFields; ++i) {
    lazy_hinted_[i] = indexed[i]->descriptor;
  }
}

void SessionTable::HoldMapping(std::shared_ptr<const MappedFile> mapping) {
  MutexLock lock(&index_mu_);
  lazy_mapped_bytes_ += mapping->data().size();
  lazy_mappings_.push_back(std::move(mapping));
}

absl::StatusOr<SessionTable::Node*> SessionTable::PutLazyLocked(
    Shard& shard, const SessionKey& session, absl::string_view state_bytes,
    size_t writer, bool mapped) {
  const size_t hinted =
      std::min<size_t>(schema_.indexed_fields().size(), lazy::kHintedFields);
  uint16_t hints[lazy::kHintedFields];
  if (!lazy::WellFormed(state_bytes, lazy_hinted_, hinted, hints)) {
    return absl::DataLossError(absl::StrCat("state of session ",
                                            QuoteSessionId(session.id),
                                            " is not a well-formed message"));
  }
  bool inserted = false;
  Node* node = FindOrCreateLocked(shard, session, &inserted,
                                  /*with_state=*/false);
  if (!inserted) {
    return absl::DataLossError(absl::StrCat("session ",
                                            QuoteSessionId(session.id),
                                            " appears twice in the snapshot"));
  }
  // Mapped bytes stay where they are; others are copied into the arena.
  lazy::SnapshotState* kept = lazy_arena_->NewSnapshotState(writer);
  kept->node = node;
  kept->size = static_cast<uint32_t>(state_bytes.size());
  if (mapped) {
    kept->data = state_bytes.data();
  } else if (state_bytes.empty()) {
    kept->data = "";  // nothing to copy (and no allocation to copy it to)
  } else {
    char* copy = lazy_arena_->Allocate(state_bytes.size(), writer);
    std::memcpy(copy, state_bytes.data(), state_bytes.size());
    kept->data = copy;
  }
  // The indexed values, with the hashes the indexes will want.
  for (size_t i = 0; i < lazy::kHintedFields; ++i) {
    kept->known[i] = lazy::kNoHint;
    if (i >= hinted || hints[i] == lazy::kNoHint) continue;
    const Schema::Field& field = *schema_.indexed_fields()[i];
    IndexValue value;
    if (hints[i] == lazy::kAbsent ||
        !lazy::FindValue(state_bytes, hints[i], field.descriptor, &value.text,
                         &value.number)) {
      kept->known[i] = lazy::kAbsent;
      continue;
    }
    const bool by_string = field.descriptor->cpp_type() ==
                           google::protobuf::FieldDescriptor::CPPTYPE_STRING;
    if (by_string) {
      if (value.text.empty()) {  // not indexed, as ValueOf says
        kept->known[i] = lazy::kAbsent;
        continue;
      }
      kept->values[i].value =
          static_cast<uint64_t>(value.text.data() - state_bytes.data()) << 32 |
          value.text.size();
    } else {
      kept->values[i].value = value.number;
    }
    kept->values[i].hash = HashIndexValue(value, by_string);
    kept->known[i] = lazy::kKnown;
  }
  node->entry.state.set_lazy(lazy::MakeWord(lazy::kSnapshot, kept));
  lazy_count_.fetch_add(1, std::memory_order_relaxed);
  return node;
}

absl::Status SessionTable::KeepUpdateLocked(Shard& shard,
                                            const SessionKey& session,
                                            Node* existing, uint64_t lsn,
                                            absl::string_view payload,
                                            const UpdateView& update,
                                            size_t writer, bool* kept_unknown) {
  if (existing == nullptr) existing = FindLocked(shard, session);
  if (existing != nullptr && !existing->entry.state.lazy()) {
    auto node = SetEncodedFieldsLocked(shard, session, update.values,
                                       update.fields, kept_unknown, existing);
    return node.status();
  }
  // What SetEncodedFieldsLocked checks before it parses; the parse itself
  // waits for the session's first use.
  if (!OnlyListedFields(update.values, update.fields)) {
    return absl::DataLossError(absl::StrCat(
        "values of session ", QuoteSessionId(session.id),
        " do not parse, or hold a field the record does not list"));
  }
  FieldSet listed;
  absl::InlinedVector<const Schema::Field*, 8> fields;
  for (uint32_t number : update.fields) {
    const Schema::Field* f = schema_.FindByNumber(static_cast<int>(number));
    if (f == nullptr) {
      *kept_unknown = true;
    } else {
      listed.Add(f->index);
      fields.push_back(f);
    }
  }
  const bool lists_indexed = std::any_of(
      fields.begin(), fields.end(),
      [](const Schema::Field* f) { return f->index_kind != NO_INDEX; });
  bool inserted = false;
  Node* node = existing != nullptr
                   ? existing
                   : FindOrCreateLocked(shard, session, &inserted,
                                        /*with_state=*/false);
  char* p =
      lazy_arena_->Allocate(sizeof(lazy::KeptUpdate) + payload.size(), writer);
  const uint64_t previous = node->entry.state.word();
  const uint64_t word = lazy::MakeWord(lazy::kUpdate, p);
  uint64_t index_source = previous;
  if (lists_indexed) {
    index_source = word;
  } else if (lazy::TagOf(previous) == lazy::kUpdate) {
    index_source =
        reinterpret_cast<const lazy::KeptUpdate*>(lazy::AddressOf(previous))
            ->index_source;
  }
  auto* kept = new (p) lazy::KeptUpdate{previous,
                                        lsn,
                                        listed.bits(),
                                        index_source,
                                        static_cast<uint32_t>(payload.size()),
                                        /*voided=*/0};
  std::memcpy(kept + 1, payload.data(), payload.size());
  // The indexes may have been built from the snapshot already
  // (RebuildIndexes): then the session moves in them, as in an update.
  auto chain = [&] { node->entry.state.set_lazy(word); };
  if (TouchesIndex(fields)) {
    ChangeIndexed(*node, fields, chain);
  } else {
    chain();
  }
  if (inserted) lazy_count_.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

void SessionTable::VoidTickEntries(absl::string_view session,
                                   const absl::flat_hash_set<uint64_t>& ticks) {
  const SessionKey key(session);
  Shard& shard = ShardFor(key);
  MutexLock lock(&shard.mu);
  Node* node = FindLocked(shard, key);
  if (node == nullptr) return;
  // The entries to void, newest first; whether the others are all voided.
  absl::InlinedVector<lazy::KeptUpdate*, 8> to_void;
  uint64_t word = node->entry.state.word();
  bool all_voided = true;
  bool voids_indexed = false;
  while (lazy::TagOf(word) == lazy::kUpdate) {
    auto* kept = reinterpret_cast<lazy::KeptUpdate*>(
        const_cast<char*>(lazy::AddressOf(word)));
    UpdateView update;
    if (!kept->voided && DecodeUpdate(kept->payload(), &update) &&
        update.tick != 0 && ticks.contains(update.tick)) {
      to_void.push_back(kept);
      voids_indexed |= kept->index_source == word;
    } else {
      all_voided &= kept->voided != 0;
    }
    word = kept->previous;
  }
  if (to_void.empty()) return;
  // Created by the log (no snapshot state) through voided entries alone:
  // erased, leaving the indexes under the values it has now.
  if (all_voided && word == 0) {
    EraseLocked(shard, key);
    return;
  }
  // An entry that set an indexed field no longer counts: the session moves
  // in the indexes (when they are kept current during the replay).
  auto void_them = [&] {
    for (lazy::KeptUpdate* kept : to_void) kept->voided = 1;
  };
  if (voids_indexed && TouchesIndex(schema_.indexed_fields())) {
    ChangeIndexed(*node, schema_.indexed_fields(), void_them);
  } else {
    void_them();
  }
}

absl::Status SessionTable::ParseLocked(const Node* node) const {
  uint64_t word = node->entry.state.word();
  if (lazy::TagOf(word) == lazy::kParsed) return absl::OkStatus();
  // Newest first in the chain; applied oldest first.
  absl::InlinedVector<const lazy::KeptUpdate*, 8> updates;
  while (lazy::TagOf(word) == lazy::kUpdate) {
    const auto* kept =
        reinterpret_cast<const lazy::KeptUpdate*>(lazy::AddressOf(word));
    if (!kept->voided) updates.push_back(kept);
    word = kept->previous;
  }
  std::unique_ptr<Message> state = schema_.NewMessage();
  if (lazy::TagOf(word) == lazy::kSnapshot) {
    const absl::string_view bytes =
        reinterpret_cast<const lazy::SnapshotState*>(lazy::AddressOf(word))
            ->bytes();
    if (!state->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      return absl::DataLossError(absl::StrCat(
          "session ", QuoteSessionId(node->id()), ": its state in snapshot ",
          lazy_snapshot_, " does not parse as ",
          schema_.descriptor()->full_name(),
          "; the session cannot be read or updated. Check the directory "
          "with `walctl verify`, and `walctl show` the session"));
    }
  }
  bool kept_unknown = false;
  for (auto it = updates.rbegin(); it != updates.rend(); ++it) {
    UpdateView update;
    if (!DecodeUpdate((*it)->payload(), &update) ||
        !ApplyEncodedFields(schema_, state.get(), update.values, update.fields,
                            &kept_unknown)) {
      return absl::DataLossError(absl::StrCat(
          "session ", QuoteSessionId(node->id()), ": its record at LSN ",
          (*it)->lsn, " does not parse as ", schema_.descriptor()->full_name(),
          "; the session cannot be read or updated. Check the directory "
          "with `walctl verify`, and `walctl show` the session"));
    }
  }
  Node* mutable_node = const_cast<Node*>(node);
  if (schema_.indexed_fields().empty() || indexes_suspended_) {
    mutable_node->entry.state.reset(std::move(state));
  } else {
    // Index readers read the holders' keys under index_mu_ alone.
    MutexLock lock(&index_mu_);
    mutable_node->entry.state.reset(std::move(state));
  }
  lazy_count_.fetch_sub(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

bool SessionTable::SerializedState(const Node& node, absl::string_view* bytes) {
  const uint64_t word = node.entry.state.word();
  if (lazy::TagOf(word) != lazy::kSnapshot) return false;
  *bytes = reinterpret_cast<const lazy::SnapshotState*>(lazy::AddressOf(word))
               ->bytes();
  return true;
}

uint64_t SessionTable::lazy_bytes() const {
  MutexLock lock(&index_mu_);
  return lazy_arena_ == nullptr ? 0 : lazy_arena_->bytes();
}

uint64_t SessionTable::lazy_mapped_bytes() const {
  MutexLock lock(&index_mu_);
  return lazy_mapped_bytes_;
}

uint64_t SessionTable::CopyMappedLazyStates() {
  std::vector<std::pair<const char*, const char*>> mapped;
  {
    MutexLock lock(&index_mu_);
    for (const auto& m : lazy_mappings_) {
      const absl::string_view bytes = m->data();
      mapped.emplace_back(bytes.data(), bytes.data() + bytes.size());
    }
  }
  if (mapped.empty()) return 0;
  auto in_mapping = [&mapped](const char* p) {
    for (const auto& [begin, end] : mapped) {
      if (p >= begin && p < end) return true;
    }
    return false;
  };
  uint64_t copied = 0;
  for (const auto& shard : shards_) {
    MutexLock lock(&shard->mu);
    for (const Node* node : shard->sessions) {
      uint64_t word = node->entry.state.word();
      while (lazy::TagOf(word) == lazy::kUpdate) {
        word = reinterpret_cast<const lazy::KeptUpdate*>(lazy::AddressOf(word))
                   ->previous;
      }
      if (lazy::TagOf(word) != lazy::kSnapshot) continue;
      auto* state = reinterpret_cast<lazy::SnapshotState*>(
          const_cast<char*>(lazy::AddressOf(word)));
      if (!in_mapping(state->data)) continue;
      // After the recovery workers, the arena's first writer is this one's.
      char* copy = lazy_arena_->Allocate(state->size, 0);
      std::memcpy(copy, state->data, state->size);
      {
        // Index readers read the header under index_mu_.
        MutexLock index_lock(&index_mu_);
        state->data = copy;
      }
      copied += state->size;
    }
  }
  MutexLock lock(&index_mu_);
  lazy_mappings_.clear();
  lazy_mapped_bytes_ = 0;
  return copied;
}

bool SessionTable::ReleaseLazyBytesIfUnused() {
  if (lazy_count() != 0) return false;
  MutexLock lock(&index_mu_);
  if (lazy_arena_ == nullptr && lazy_mappings_.empty()) return false;
  lazy_arena_.reset();
  lazy_mappings_.clear();
  lazy_mapped_bytes_ = 0;
  return true;
}

}  // namespace walstate
