#include "engine/state/secondary_index.h"

#include <algorithm>
#include <string>

#include "absl/hash/hash.h"
#include "absl/strings/numbers.h"
#include "engine/state/set_prefetch.h"
#include "engine/state/update_codec.h"

namespace walstate {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

size_t HashIndexValue(const IndexValue& value, bool by_string) {
  return by_string ? absl::HashOf(value.text) : absl::HashOf(value.number);
}

bool IndexValueOf(const Message& state, const Schema::Field& field,
                  IndexValue* key, bool check_presence) {
  const auto* r = state.GetReflection();
  const FieldDescriptor* f = field.descriptor;
  // Unset values are not indexed. Without explicit presence (proto3 plain
  // scalars) HasField is false for the default value, which is what "unset"
  // looks like there.
  if (check_presence && !r->HasField(state, f)) return false;
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

bool IndexValueOfNode(const SessionNode& node, const Schema::Field& field,
                      IndexValue* key, bool check_presence,
                      uint64_t* known_hash, bool* hashed) {
  if (hashed != nullptr) *hashed = false;
  if (const Message* state = node.entry.state.parsed()) {
    return IndexValueOf(*state, field, key, check_presence);
  }
  // The newest kept record that lists the field decides (absent from its
  // values: cleared); without one, the snapshot's state.
  // Records that list no indexed field are jumped over (index_source).
  uint64_t word = node.entry.state.word();
  absl::string_view message;
  bool listed = false;
  while (lazy::TagOf(word) == lazy::kUpdate) {
    const auto* kept =
        reinterpret_cast<const lazy::KeptUpdate*>(lazy::AddressOf(word));
    if (kept->index_source != word) {
      word = kept->index_source;
      continue;
    }
    UpdateView update;
    if (!kept->voided && FieldSet(kept->listed).Contains(field.index) &&
        DecodeUpdate(kept->payload(), &update)) {
      const uint32_t number = static_cast<uint32_t>(field.descriptor->number());
      if (std::find(update.fields.begin(), update.fields.end(), number) !=
          update.fields.end()) {
        message = update.values;
        listed = true;
        break;
      }
    }
    word = kept->previous;
  }
  if (!listed) {
    if (lazy::TagOf(word) != lazy::kSnapshot) return false;
    const auto* state =
        reinterpret_cast<const lazy::SnapshotState*>(lazy::AddressOf(word));
    message = state->bytes();
    const int i = field.index_position;
    if (i >= 0 && i < lazy::kHintedFields) {
      if (state->known[i] == lazy::kAbsent) return false;
      if (state->known[i] == lazy::kKnown) {
        const uint64_t v = state->values[i].value;
        if (field.descriptor->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
          key->text = message.substr(v >> 32, v & 0xffffffffu);
        } else {
          key->number = v;
        }
        if (known_hash != nullptr) *known_hash = state->values[i].hash;
        if (hashed != nullptr) *hashed = true;
        return true;
      }
    }
  }
  if (!lazy::FindValue(message, field.descriptor, &key->text, &key->number)) {
    return false;
  }
  return field.descriptor->cpp_type() != FieldDescriptor::CPPTYPE_STRING ||
         !key->text.empty();
}

bool IndexValueFromText(const Schema::Field& field, absl::string_view text,
                        IndexValue* key) {
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

SecondaryIndex::SecondaryIndex(const Schema::Field& field)
    : field_(&field),
      by_string_(field.descriptor->cpp_type() ==
                 FieldDescriptor::CPPTYPE_STRING) {
  Split(0);
}

const SessionNode* SecondaryIndex::FirstHolder(Slot slot) {
  if (slot & 1) {
    return reinterpret_cast<const HolderList*>(slot & ~Slot{1})->front();
  }
  return reinterpret_cast<const SessionNode*>(slot);
}

absl::Span<const SessionNode* const> SecondaryIndex::HoldersOf(
    Slot slot, const SessionNode** one) {
  if (slot & 1) return *reinterpret_cast<const HolderList*>(slot & ~Slot{1});
  *one = reinterpret_cast<const SessionNode*>(slot);
  return absl::MakeConstSpan(one, 1);
}

// A slot's holders all have the field set: only set values are indexed. The
// has-bit is not read: it shares a word with other fields' bits, which their
// writers change under their own shard's lock, not the index lock; the
// indexed field itself changes only under the index lock.
size_t SecondaryIndex::SlotHash::operator()(Slot slot) const {
  IndexValue value;
  IndexValueOfNode(*FirstHolder(slot), *field, &value,
                   /*check_presence=*/false);
  return HashIndexValue(value, by_string);
}

bool SecondaryIndex::SlotEq::operator()(Slot a, const Key& b) const {
  IndexValue value;
  IndexValueOfNode(*FirstHolder(a), *field, &value, /*check_presence=*/false);
  return by_string ? value.text == b.value.text
                   : value.number == b.value.number;
}

bool SecondaryIndex::SlotEq::operator()(Slot a, const NodeKey& b) const {
  const SessionNode* first = FirstHolder(a);
  if (first == b.node) return true;
  // Called when 7 bits of the hashes match, which at the sets' load is one
  // insert in ten. Where the load noted the holder's value with its hash
  // (the index build right after it, which is what inserts NodeKeys),
  // different hashes settle it without reading either value's bytes.
  IndexValue held;
  uint64_t held_hash = 0;
  bool hashed = false;
  IndexValueOfNode(*first, *field, &held, /*check_presence=*/false, &held_hash,
                   &hashed);
  if (hashed && held_hash != b.hash) return false;
  IndexValue value;
  IndexValueOfNode(*b.node, *field, &value, /*check_presence=*/false);
  return by_string ? held.text == value.text : held.number == value.number;
}

bool SecondaryIndex::SlotEq::operator()(Slot a, Slot b) const {
  if (a == b) return true;
  IndexValue value;
  IndexValueOfNode(*FirstHolder(b), *field, &value, /*check_presence=*/false);
  return (*this)(a, Key{value, 0});
}

absl::Span<const SessionNode* const> SecondaryIndex::Find(
    const Key& key, const SessionNode** one) const {
  const Set& part = PartOf(key.hash);
  auto it = part.find(key);
  if (it == part.end()) return {};
  return HoldersOf(*it, one);
}

void SecondaryIndex::Add(const SessionNode& node) {
  IndexValue value;
  if (!IndexValueOfNode(node, *field_, &value)) return;
  Insert(KeyOf(value), node);
}

void SecondaryIndex::Remove(const SessionNode& node) {
  IndexValue value;
  if (!IndexValueOfNode(node, *field_, &value)) return;
  const Key key = KeyOf(value);
  Set& part = PartOf(key.hash);
  auto it = part.find(key);
  if (it == part.end()) return;
  const Slot slot = *it;
  if (!(slot & 1)) {
    if (reinterpret_cast<const SessionNode*>(slot) == &node) part.erase(it);
    return;
  }
  // Several holders. The slot's key is read from the first one, but all
  // hold the same value, so the slot stays where it is whichever remains.
  auto* list = reinterpret_cast<HolderList*>(slot & ~Slot{1});
  auto pos = std::find(list->begin(), list->end(), &node);
  if (pos == list->end()) return;
  list->erase(pos);
  if (list->size() == 1) {
    // Back to a plain pointer. Replacing an element in place keeps its hash
    // (same value), which the set allows through a const_cast.
    const_cast<Slot&>(*it) = reinterpret_cast<Slot>(list->front());
    delete list;
  }
}

template <typename K>
void SecondaryIndex::Insert(const K& key, const SessionNode& node) {
  bool added = false;
  auto it = PartOf(key.hash).lazy_emplace(
      key, [&](const Set::constructor& construct) {
        construct(reinterpret_cast<Slot>(&node));
        added = true;
      });
  if (added) return;
  Slot& word = const_cast<Slot&>(*it);
  const Slot slot = word;
  if (slot & 1) {
    auto* list = reinterpret_cast<HolderList*>(slot & ~Slot{1});
    if (std::find(list->begin(), list->end(), &node) == list->end()) {
      list->push_back(&node);
    }
    return;
  }
  const SessionNode* first = reinterpret_cast<const SessionNode*>(slot);
  if (first == &node) return;
  auto* list = new HolderList{first, &node};
  word = reinterpret_cast<Slot>(list) | 1;
}

void SecondaryIndex::Clear() {
  for (Set& part : parts_) {
    for (Slot slot : part) {
      if (slot & 1) delete reinterpret_cast<HolderList*>(slot & ~Slot{1});
    }
    part.clear();
  }
}

void SecondaryIndex::Split(size_t keys) {
  const HashSplit split = SplitFor(keys, 1, 1024);
  parts_.clear();
  parts_.reserve(split.sets);
  for (size_t i = 0; i < split.sets; ++i) {
    parts_.emplace_back(split.per_set, SlotHash{field_, by_string_},
                        SlotEq{field_, by_string_});
  }
}

bool SecondaryIndex::empty() const {
  for (const Set& part : parts_) {
    if (!part.empty()) return false;
  }
  return true;
}

void SecondaryIndex::Shrink() {
  // Sized for a key per session; an index of fewer keys (a MULTI index of
  // few values, a field most sessions leave unset) gives back what half its
  // capacity would hold.
  for (Set& part : parts_) {
    if (part.size() * 16 < part.bucket_count() * 7) part.rehash(0);
  }
}

size_t SecondaryIndex::slots() const {
  size_t slots = 0;
  for (const Set& part : parts_) slots += part.bucket_count();
  return slots;
}

uint64_t SecondaryIndex::ApproximateMemory() const {
  // Heap blocks are counted at their request size plus malloc's 8-byte
  // header, rounded up to 16, as glibc allocates them.
  auto block = [](uint64_t n) { return (n + 8 + 15) / 16 * 16; };
  uint64_t bytes = 0;
  for (const Set& part : parts_) {
    bytes += part.bucket_count() * (sizeof(Slot) + 1);
    for (Slot slot : part) {
      if (slot & 1) {
        bytes += block(sizeof(HolderList)) +
                 block(reinterpret_cast<const HolderList*>(slot & ~Slot{1})
                           ->capacity() *
                       sizeof(const SessionNode*));
      }
    }
  }
  return bytes;
}

void SecondaryIndex::Build(
    absl::FunctionRef<void(absl::FunctionRef<void(const SessionNode*)>)>
        for_each_node) {
  // Each insert chases node -> state -> value -> index slot, a cache miss at
  // every step once the table outgrows the cache. A batch of nodes takes
  // each step together, prefetching what the next step reads, so that a
  // batch's misses overlap instead of queueing one behind another.
  constexpr size_t kBatch = 16;
  const SessionNode* batch[kBatch];
  IndexValue values[kBatch];
  Key keys[kBatch];
  bool set[kBatch];
  size_t n = 0;
  auto flush = [&] {
    for (size_t i = 0; i < n; ++i) {
      __builtin_prefetch(batch[i]->entry.state.address());
    }
    // A kept record leads to the word that holds the field (index_source);
    // a snapshot state's header holds its value and hash.
    for (size_t i = 0; i < n; ++i) {
      const uint64_t word = batch[i]->entry.state.word();
      if (lazy::TagOf(word) == lazy::kUpdate) {
        __builtin_prefetch(lazy::AddressOf(
            reinterpret_cast<const lazy::KeptUpdate*>(lazy::AddressOf(word))
                ->index_source));
      }
    }
    bool hashed[kBatch];
    for (size_t i = 0; i < n; ++i) {
      uint64_t known_hash = 0;
      set[i] =
          IndexValueOfNode(*batch[i], *field_, &values[i],
                           /*check_presence=*/true, &known_hash, &hashed[i]);
      if (!set[i]) continue;
      if (hashed[i]) {
        keys[i] = Key{values[i], static_cast<size_t>(known_hash)};
      } else {
        __builtin_prefetch(values[i].text.data());
      }
    }
    for (size_t i = 0; i < n; ++i) {
      if (!set[i]) continue;
      if (!hashed[i]) keys[i] = KeyOf(values[i]);
      PrefetchInSet(PartOf(keys[i].hash), keys[i]);
    }
    for (size_t i = 0; i < n; ++i) {
      if (set[i]) Insert(keys[i], *batch[i]);
    }
    n = 0;
  };
  for_each_node([&](const SessionNode* node) {
    __builtin_prefetch(node);
    batch[n++] = node;
    if (n == kBatch) flush();
  });
  flush();
  Shrink();
}

void SecondaryIndex::BuildFromLoad(const lazy::Arena& arena, size_t hint) {
  // The snapshot states hold the keys' hashes, and follow one another in
  // their chunks: an insert reads no node and no state bytes, and its one
  // cache miss, the set's slot, is prefetched a few states ahead. (A
  // state's bytes are read only when a slot's hash bits match the key's.)
  constexpr size_t kAhead = 8;
  const lazy::SnapshotState* ring[kAhead] = {};
  size_t n = 0;
  auto insert = [&](const lazy::SnapshotState& state) {
    const SessionNode* node = static_cast<const SessionNode*>(state.node);
    if (state.known[hint] == lazy::kKnown) {
      const size_t hash = static_cast<size_t>(state.values[hint].hash);
      Insert(NodeKey{node, hash}, *node);
    } else if (state.known[hint] == lazy::kNoHint) {
      Add(*node);
    }
  };
  arena.ForEachSnapshotState([&](const lazy::SnapshotState& state) {
    if (state.known[hint] == lazy::kKnown) {
      const size_t hash = static_cast<size_t>(state.values[hint].hash);
      PrefetchInSet(PartOf(hash), NodeKey{nullptr, hash});
    }
    const lazy::SnapshotState*& due = ring[n++ % kAhead];
    if (due != nullptr) insert(*due);
    due = &state;
  });
  for (size_t i = 0; i < kAhead; ++i) {
    const lazy::SnapshotState* due = ring[n++ % kAhead];
    if (due != nullptr) insert(*due);
  }
  Shrink();
}

}  // namespace walstate
