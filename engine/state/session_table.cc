#include "engine/state/session_table.h"

#include <algorithm>
#include <thread>

#include "absl/hash/hash.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/unknown_field_set.h"
#include "google/protobuf/wire_format_lite.h"

namespace walstate {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

namespace {

// Copies top-level field `f` of `src` into `dst` (clearing it if unset).
void CopyField(const Message& src, const FieldDescriptor* f, Message* dst) {
  const auto* rs = src.GetReflection();
  const auto* rd = dst->GetReflection();
  rd->ClearField(dst, f);
  if (f->is_repeated()) {
    const int n = rs->FieldSize(src, f);
    for (int i = 0; i < n; ++i) {
      switch (f->cpp_type()) {
#define WALSTATE_COPY_REPEATED(CPPTYPE, TYPE)                \
  case FieldDescriptor::CPPTYPE:                             \
    rd->Add##TYPE(dst, f, rs->GetRepeated##TYPE(src, f, i)); \
    break;
        WALSTATE_COPY_REPEATED(CPPTYPE_INT32, Int32)
        WALSTATE_COPY_REPEATED(CPPTYPE_INT64, Int64)
        WALSTATE_COPY_REPEATED(CPPTYPE_UINT32, UInt32)
        WALSTATE_COPY_REPEATED(CPPTYPE_UINT64, UInt64)
        WALSTATE_COPY_REPEATED(CPPTYPE_DOUBLE, Double)
        WALSTATE_COPY_REPEATED(CPPTYPE_FLOAT, Float)
        WALSTATE_COPY_REPEATED(CPPTYPE_BOOL, Bool)
        WALSTATE_COPY_REPEATED(CPPTYPE_STRING, String)
        WALSTATE_COPY_REPEATED(CPPTYPE_ENUM, EnumValue)
#undef WALSTATE_COPY_REPEATED
        case FieldDescriptor::CPPTYPE_MESSAGE:
          rd->AddMessage(dst, f)->MergeFrom(rs->GetRepeatedMessage(src, f, i));
          break;
      }
    }
    return;
  }
  if (!rs->HasField(src, f)) return;
  switch (f->cpp_type()) {
#define WALSTATE_COPY(CPPTYPE, TYPE)              \
  case FieldDescriptor::CPPTYPE:                  \
    rd->Set##TYPE(dst, f, rs->Get##TYPE(src, f)); \
    break;
    WALSTATE_COPY(CPPTYPE_INT32, Int32)
    WALSTATE_COPY(CPPTYPE_INT64, Int64)
    WALSTATE_COPY(CPPTYPE_UINT32, UInt32)
    WALSTATE_COPY(CPPTYPE_UINT64, UInt64)
    WALSTATE_COPY(CPPTYPE_DOUBLE, Double)
    WALSTATE_COPY(CPPTYPE_FLOAT, Float)
    WALSTATE_COPY(CPPTYPE_BOOL, Bool)
    WALSTATE_COPY(CPPTYPE_STRING, String)
    WALSTATE_COPY(CPPTYPE_ENUM, EnumValue)
#undef WALSTATE_COPY
    case FieldDescriptor::CPPTYPE_MESSAGE:
      // The field was just cleared: MergeFrom is a copy, without CopyFrom's
      // check that src is not a descendant of dst (a walk of every set field
      // in protobuf 3.21, most of the cost of a BATCHED update).
      rd->MutableMessage(dst, f)->MergeFrom(rs->GetMessage(src, f));
      break;
  }
}

// Swaps the listed fields of `a` and `b` (same type, same arena: pointers
// of strings and submessages are exchanged, nothing is copied).
void SwapListedFields(Message* a, Message* b,
                      absl::Span<const Schema::Field* const> fields) {
  // Reflection::SwapFields takes a std::vector; one per thread, reused.
  thread_local std::vector<const FieldDescriptor*> descriptors;
  descriptors.clear();
  for (const Schema::Field* f : fields) descriptors.push_back(f->descriptor);
  a->GetReflection()->SwapFields(a, b, descriptors);
}

// True if every top-level field in `encoded` is one of `numbers`, and its
// framing holds together. A replayed record's values must not reach fields it
// does not list: the indexes only follow the listed ones.
bool OnlyListedFields(absl::string_view encoded,
                      absl::Span<const uint32_t> numbers) {
  using google::protobuf::internal::WireFormatLite;
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t*>(encoded.data()),
      static_cast<int>(encoded.size()));
  while (uint32_t tag = in.ReadTag()) {
    const uint32_t number =
        static_cast<uint32_t>(WireFormatLite::GetTagFieldNumber(tag));
    if (std::find(numbers.begin(), numbers.end(), number) == numbers.end()) {
      return false;
    }
    if (!WireFormatLite::SkipField(&in, tag)) return false;
  }
  return in.ConsumedEntireMessage();
}

}  // namespace

SessionTable::SessionTable(const Schema& schema, size_t shard_count)
    : schema_(schema) {
  shards_.reserve(shard_count);
  for (size_t i = 0; i < shard_count; ++i) {
    shards_.push_back(std::make_unique<Shard>());
  }
  indexes_.resize(schema.indexed_fields().size());
  index_slot_.assign(schema.fields().size(), -1);
  for (size_t i = 0; i < schema.indexed_fields().size(); ++i) {
    const Schema::Field* f = schema.indexed_fields()[i];
    index_slot_[f->index] = static_cast<int>(i);
    indexes_[i].by_string =
        f->descriptor->cpp_type() == FieldDescriptor::CPPTYPE_STRING;
  }
}

size_t SessionTable::ShardIndexFor(absl::string_view session) const {
  return absl::HashOf(session) % shards_.size();
}

void SessionTable::Reserve(size_t sessions) {
  // Shards fill unevenly; a little headroom avoids a late rehash of most.
  const size_t per_shard =
      sessions / shards_.size() + sessions / shards_.size() / 8 + 1;
  for (auto& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard->mu);
    shard->sessions.reserve(per_shard);
  }
  std::lock_guard<std::mutex> lock(index_mu_);
  for (Index& index : indexes_) {
    if (index.by_string) {
      index.strings.reserve(sessions);
    } else {
      index.numbers.reserve(sessions);
    }
  }
}

void SessionTable::RebuildIndexes() {
  indexes_suspended_ = false;
  if (indexes_.empty()) return;
  const size_t sessions = size();
  // One thread per index: each reads every state (nobody writes them now)
  // and fills only its own map, so they share nothing but the states.
  auto build = [&](size_t slot) {
    Index& index = indexes_[slot];
    index.strings.clear();
    index.numbers.clear();
    if (index.by_string) {
      index.strings.reserve(sessions);
    } else {
      index.numbers.reserve(sessions);
    }
    const Schema::Field& field = *schema_.indexed_fields()[slot];
    for (const auto& shard : shards_) {
      for (const Node& node : shard->sessions) IndexAddLocked(node, field);
    }
  };
  std::vector<std::thread> threads;
  for (size_t slot = 1; slot < indexes_.size(); ++slot) {
    threads.emplace_back(build, slot);
  }
  build(0);
  for (std::thread& t : threads) t.join();
}

bool SessionTable::KeyOf(const Message& state, const Schema::Field& field,
                         Key* key) const {
  const auto* r = state.GetReflection();
  const FieldDescriptor* f = field.descriptor;
  // Unset values are not indexed. Without explicit presence (proto3 plain
  // scalars) HasField is false for the default value, which is what "unset"
  // looks like there.
  if (!r->HasField(state, f)) return false;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      // A reference into the message for generated and dynamic messages
      // alike (the scratch is only used for cord fields, which are not
      // indexable here).
      const std::string& value = r->GetStringReference(state, f, &scratch);
      if (&value == &scratch) return false;
      key->text = value;
      return !key->text.empty();
    }
    case FieldDescriptor::CPPTYPE_INT32:
      key->number = static_cast<uint64_t>(int64_t{r->GetInt32(state, f)});
      return true;
    case FieldDescriptor::CPPTYPE_INT64:
      key->number = static_cast<uint64_t>(r->GetInt64(state, f));
      return true;
    case FieldDescriptor::CPPTYPE_UINT32:
      key->number = r->GetUInt32(state, f);
      return true;
    case FieldDescriptor::CPPTYPE_UINT64:
      key->number = r->GetUInt64(state, f);
      return true;
    case FieldDescriptor::CPPTYPE_BOOL:
      key->number = r->GetBool(state, f) ? 1 : 0;
      return true;
    case FieldDescriptor::CPPTYPE_ENUM:
      key->number = static_cast<uint64_t>(int64_t{r->GetEnumValue(state, f)});
      return true;
    default:
      return false;
  }
}

bool SessionTable::KeyFromText(const Schema::Field& field,
                               absl::string_view text, Key* key) const {
  switch (field.descriptor->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      key->text = text;
      return !text.empty();
    case FieldDescriptor::CPPTYPE_BOOL:
      if (text != "true" && text != "false") return false;
      key->number = text == "true" ? 1 : 0;
      return true;
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t v = 0;
      if (!absl::SimpleAtoi(text, &v)) return false;
      key->number = v;
      return true;
    }
    default: {
      int64_t v = 0;
      if (!absl::SimpleAtoi(text, &v)) return false;
      key->number = static_cast<uint64_t>(v);
      return true;
    }
  }
}

const SessionTable::Holders* SessionTable::FindHolders(const Index& index,
                                                       const Key& key) const {
  if (index.by_string) {
    auto it = index.strings.find(key.text);
    return it == index.strings.end() ? nullptr : &it->second;
  }
  auto it = index.numbers.find(key.number);
  return it == index.numbers.end() ? nullptr : &it->second;
}

absl::Status SessionTable::CheckUniqueLocked(
    absl::string_view session, const Message& values,
    absl::Span<const Schema::Field* const> fields) const {
  bool any_unique = false;
  for (const Schema::Field* field : fields) {
    any_unique |= field->index_kind == UNIQUE;
  }
  if (!any_unique) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(index_mu_);
  for (const Schema::Field* field : fields) {
    if (field->index_kind != UNIQUE) continue;
    Key key;
    if (!KeyOf(values, *field, &key)) continue;
    const Holders* holders =
        FindHolders(indexes_[index_slot_[field->index]], key);
    if (holders == nullptr) continue;
    for (const Node* holder : *holders) {
      if (holder->first != session) {
        const std::string shown = indexes_[index_slot_[field->index]].by_string
                                      ? std::string(key.text)
                                      : schema_.IndexKey(values, *field);
        return absl::AlreadyExistsError(absl::StrCat(
            "session ", session, ": ", field->descriptor->name(), " \"", shown,
            "\" is already held by session ", holder->first,
            " (UNIQUE index); delete or change that session first"));
      }
    }
  }
  return absl::OkStatus();
}

void SessionTable::IndexRemoveLocked(const Node& node,
                                     const Schema::Field& field) {
  Key key;
  if (!KeyOf(*node.second.state, field, &key)) return;
  Index& index = indexes_[index_slot_[field.index]];
  auto drop = [&](Holders& holders) {
    auto it = std::find(holders.begin(), holders.end(), &node);
    if (it != holders.end()) holders.erase(it);
  };
  if (!index.by_string) {
    auto it = index.numbers.find(key.number);
    if (it == index.numbers.end()) return;
    drop(it->second);
    if (it->second.empty()) index.numbers.erase(it);
    return;
  }
  auto it = index.strings.find(key.text);
  if (it == index.strings.end()) return;
  drop(it->second);
  if (it->second.empty()) {
    index.strings.erase(it);
  } else if (it->first.data() == key.text.data()) {
    // The map key is a view into this session's value, which is about to
    // change: point it at another holder's equal value. That value changes
    // only under index_mu_, which is held, so reading it is safe although
    // the other session's shard is not locked.
    Holders holders = std::move(it->second);
    index.strings.erase(it);
    std::string scratch;
    const Message& other = *holders.front()->second.state;
    absl::string_view text = other.GetReflection()->GetStringReference(
        other, field.descriptor, &scratch);
    index.strings.try_emplace(text, std::move(holders));
  }
}

void SessionTable::IndexAddLocked(const Node& node,
                                  const Schema::Field& field) {
  Key key;
  if (!KeyOf(*node.second.state, field, &key)) return;
  Index& index = indexes_[index_slot_[field.index]];
  if (index.by_string) {
    // A new key is a view of this session's value; an existing one already
    // points into an earlier holder's.
    index.strings[key.text].push_back(&node);
  } else {
    index.numbers[key.number].push_back(&node);
  }
}

bool SessionTable::TouchesIndex(
    absl::Span<const Schema::Field* const> fields) const {
  if (indexes_suspended_) return false;
  for (const Schema::Field* f : fields) {
    if (f->index_kind != NO_INDEX) return true;
  }
  return false;
}

SessionTable::Node* SessionTable::FindOrCreateLocked(
    Shard& shard, absl::string_view session) {
  auto [it, inserted] = shard.sessions.try_emplace(session);
  if (inserted) {
    it->second.state = schema_.NewMessage();
    size_.fetch_add(1, std::memory_order_relaxed);
  }
  return &*it;
}

SessionTable::Node* SessionTable::SetFieldsLocked(
    Shard& shard, absl::string_view session, Message* values,
    absl::Span<const Schema::Field* const> fields, bool move) {
  Node* node = FindOrCreateLocked(shard, session);
  Message* state = node->second.state.get();
  auto set = [&] {
    if (move) {
      SwapListedFields(state, values, fields);
    } else {
      for (const Schema::Field* f : fields) {
        CopyField(*values, f->descriptor, state);
      }
    }
  };
  if (!TouchesIndex(fields)) {
    set();
    return node;
  }
  std::lock_guard<std::mutex> lock(index_mu_);
  for (const Schema::Field* f : fields) {
    if (f->index_kind != NO_INDEX) IndexRemoveLocked(*node, *f);
  }
  set();
  for (const Schema::Field* f : fields) {
    if (f->index_kind != NO_INDEX) IndexAddLocked(*node, *f);
  }
  return node;
}

SessionTable::Node* SessionTable::CopyFieldsLocked(
    Shard& shard, absl::string_view session, const Message& values,
    absl::Span<const Schema::Field* const> fields) {
  // Not moved from, so not changed.
  return SetFieldsLocked(shard, session, const_cast<Message*>(&values), fields,
                         /*move=*/false);
}

absl::StatusOr<SessionTable::Node*> SessionTable::SetEncodedFieldsLocked(
    Shard& shard, absl::string_view session, absl::string_view encoded,
    absl::Span<const uint32_t> numbers, bool* kept_unknown, Node* existing) {
  if (!OnlyListedFields(encoded, numbers)) {
    return absl::DataLossError(absl::StrCat(
        "values of session ", session,
        " do not parse, or hold a field the record does not list"));
  }
  // Known fields to clear (then merge into), unknown numbers to replace.
  absl::InlinedVector<const Schema::Field*, 8> fields;
  bool unknown = false;
  for (uint32_t number : numbers) {
    const Schema::Field* f = schema_.FindByNumber(static_cast<int>(number));
    if (f == nullptr) {
      unknown = true;
    } else {
      fields.push_back(f);
    }
  }
  Node* node =
      existing != nullptr ? existing : FindOrCreateLocked(shard, session);
  Message* state = node->second.state.get();
  const auto* r = state->GetReflection();
  const bool touches_index = TouchesIndex(fields);
  std::unique_lock<std::mutex> index_lock(index_mu_, std::defer_lock);
  if (touches_index) {
    index_lock.lock();
    for (const Schema::Field* f : fields) {
      if (f->index_kind != NO_INDEX) IndexRemoveLocked(*node, *f);
    }
  }
  for (const Schema::Field* f : fields) r->ClearField(state, f->descriptor);
  if (unknown) {
    auto* set = r->MutableUnknownFields(state);
    for (uint32_t number : numbers) {
      if (schema_.FindByNumber(static_cast<int>(number)) == nullptr) {
        set->DeleteByNumber(static_cast<int>(number));
      }
    }
    *kept_unknown = true;
  }
  // Cleared fields merged into are set; one parse, straight into the state.
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t*>(encoded.data()),
      static_cast<int>(encoded.size()));
  const bool parsed =
      state->MergeFromCodedStream(&in) && in.ConsumedEntireMessage();
  if (touches_index) {
    for (const Schema::Field* f : fields) {
      if (f->index_kind != NO_INDEX) IndexAddLocked(*node, *f);
    }
  }
  if (!parsed) {
    return absl::DataLossError(absl::StrCat("values of session ", session,
                                            " do not parse as ",
                                            schema_.descriptor()->full_name()));
  }
  return node;
}

void SessionTable::MarkDirtyLocked(Shard& shard, Node* node, FieldSet fields) {
  // A session already marked dirty is in the dirty set, or in the set a
  // running tick took, which writes its current values: no set insert.
  if (node->second.dirty.empty()) shard.dirty.insert(node);
  node->second.dirty |= fields;
}

SessionTable::Node* SessionTable::PutLocked(Shard& shard,
                                            absl::string_view session,
                                            std::unique_ptr<Message> state,
                                            bool* inserted_out) {
  auto [it, inserted] = shard.sessions.try_emplace(session);
  if (inserted) size_.fetch_add(1, std::memory_order_relaxed);
  if (inserted_out != nullptr) *inserted_out = inserted;
  Node* node = &*it;
  if (schema_.indexed_fields().empty() || indexes_suspended_) {
    node->second.state = std::move(state);
    return node;
  }
  std::lock_guard<std::mutex> lock(index_mu_);
  if (!inserted) {
    for (const Schema::Field* f : schema_.indexed_fields()) {
      IndexRemoveLocked(*node, *f);
    }
  }
  node->second.state = std::move(state);
  for (const Schema::Field* f : schema_.indexed_fields()) {
    IndexAddLocked(*node, *f);
  }
  return node;
}

bool SessionTable::EraseLocked(Shard& shard, absl::string_view session) {
  auto it = shard.sessions.find(session);
  if (it == shard.sessions.end()) return false;
  if (!schema_.indexed_fields().empty() && !indexes_suspended_) {
    std::lock_guard<std::mutex> lock(index_mu_);
    for (const Schema::Field* f : schema_.indexed_fields()) {
      IndexRemoveLocked(*it, *f);
    }
  }
  shard.dirty.erase(&*it);
  shard.sessions.erase(it);
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
  Key key;
  if (!KeyFromText(*f, value, &key)) return out;
  std::lock_guard<std::mutex> lock(index_mu_);
  const Holders* holders = FindHolders(indexes_[index_slot_[f->index]], key);
  if (holders != nullptr) {
    for (const Node* holder : *holders) out.push_back(holder->first);
  }
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
  // Heap blocks are counted at their request size plus malloc's 8-byte
  // header, rounded up to 16, as glibc allocates them.
  auto block = [](uint64_t n) { return (n + 8 + 15) / 16 * 16; };
  uint64_t bytes = 0;
  for (const auto& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard->mu);
    bytes += shard->sessions.bucket_count() * (sizeof(void*) + 1);
    bytes += shard->dirty.bucket_count() * (sizeof(Node*) + 1);
    for (const auto& [session, entry] : shard->sessions) {
      bytes += block(sizeof(Node));
      if (session.capacity() > 15) bytes += block(session.capacity() + 1);
      bytes += entry.state->SpaceUsedLong();
    }
  }
  std::lock_guard<std::mutex> lock(index_mu_);
  for (const Index& index : indexes_) {
    bytes += index.strings.bucket_count() *
             (sizeof(absl::string_view) + sizeof(Holders) + 1);
    bytes +=
        index.numbers.bucket_count() * (sizeof(uint64_t) + sizeof(Holders) + 1);
  }
  return bytes;
}

}  // namespace walstate
