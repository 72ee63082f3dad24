#include "engine/state/session_table.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <thread>

#include "absl/container/inlined_vector.h"
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

// Moves the listed fields of `from` into `to` (same type): each gets
// `from`'s value and presence; strings and submessages are handed over, not
// copied. `from`'s listed fields are left with unspecified values (in
// practice `to`'s old ones, whose memory is then reused or freed with
// `from`, not on this path). Protobuf's SwapFields does it, except for a
// member of a oneof: SwapFields swaps the whole oneof, which would carry an
// unlisted sibling set in `from` into `to`, so a member moves alone, as
// CopyField copies it. (Moving every singular field that way, by a few
// reflection calls each, took twice SwapFields' instructions: ~160 for each
// Release/SetAllocated call and ~200 for HasField, under callgrind.)
void MoveListedFields(Message* to, Message* from,
                      absl::Span<const Schema::Field* const> fields) {
  const auto* r = to->GetReflection();
  // Reflection::SwapFields takes a std::vector; one per thread, reused.
  thread_local std::vector<const FieldDescriptor*> rest;
  rest.clear();
  const bool same_arena = to->GetArena() == from->GetArena();
  for (const Schema::Field* field : fields) {
    const FieldDescriptor* f = field->descriptor;
    if (f->real_containing_oneof() == nullptr) {
      rest.push_back(f);
      continue;
    }
    if (!same_arena ||
        (f->cpp_type() == FieldDescriptor::CPPTYPE_STRING &&
         f->options().ctype() != google::protobuf::FieldOptions::STRING)) {
      CopyField(*from, f, to);  // no pointer to hand over
      continue;
    }
    if (!r->HasField(*from, f)) {
      r->ClearField(to, f);
      continue;
    }
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_MESSAGE: {
        // Both on the same arena (or none): the pointers change hands.
        Message* given = r->UnsafeArenaReleaseMessage(from, f);
        Message* old = r->UnsafeArenaReleaseMessage(to, f);
        r->UnsafeArenaSetAllocatedMessage(to, given, f);
        if (old != nullptr) r->UnsafeArenaSetAllocatedMessage(from, old, f);
        break;
      }
      case FieldDescriptor::CPPTYPE_STRING: {
        // `from` is the caller's to give away (the field is a plain string,
        // not a cord, so this is the field's own string): moved out, its
        // heap buffer goes with it.
        std::string& value =
            const_cast<std::string&>(r->GetStringReference(*from, f, nullptr));
        r->SetString(to, f, std::move(value));
        break;
      }
#define WALSTATE_MOVE_SCALAR(CPPTYPE, TYPE)      \
  case FieldDescriptor::CPPTYPE:                 \
    r->Set##TYPE(to, f, r->Get##TYPE(*from, f)); \
    break;
        WALSTATE_MOVE_SCALAR(CPPTYPE_INT32, Int32)
        WALSTATE_MOVE_SCALAR(CPPTYPE_INT64, Int64)
        WALSTATE_MOVE_SCALAR(CPPTYPE_UINT32, UInt32)
        WALSTATE_MOVE_SCALAR(CPPTYPE_UINT64, UInt64)
        WALSTATE_MOVE_SCALAR(CPPTYPE_DOUBLE, Double)
        WALSTATE_MOVE_SCALAR(CPPTYPE_FLOAT, Float)
        WALSTATE_MOVE_SCALAR(CPPTYPE_BOOL, Bool)
        WALSTATE_MOVE_SCALAR(CPPTYPE_ENUM, EnumValue)
#undef WALSTATE_MOVE_SCALAR
    }
  }
  if (!rest.empty()) r->SwapFields(to, from, rest);
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

void Word48::TooWide(uint64_t v) {
  std::fprintf(stderr,
               "walstate: address %#llx does not fit in 48 bits (session "
               "table slots hold 48-bit pointers)\n",
               static_cast<unsigned long long>(v));
  std::abort();
}

SessionTable::SessionKey::SessionKey(absl::string_view session)
    : id(session), hash(absl::HashOf(session)) {}

size_t SessionTable::NodeHash::operator()(const Node* node) const {
  return absl::HashOf(node->id());
}

namespace {

// absl's raw_hash_set::prefetch(key), called so that GCC keeps the call.
// GCC 12's modref analysis finds that prefetch() changes nothing (it only
// issues __builtin_prefetch) and deletes calls to it that it does not
// inline: in a -c opt build `set.prefetch(key)` compiled to nothing. A call
// through a volatile pointer cannot be proved useless.
template <typename Set, typename Key>
void PrefetchInSet(const Set& set, const Key& key) {
  static void (Set::*volatile const prefetch)(const Key&) const =
      &Set::template prefetch<Key>;
  (set.*prefetch)(key);
}

}  // namespace

bool SessionTable::NodeEq::operator()(const Node* a,
                                      const PrefetchProbe& b) const {
  if (b.step == PrefetchStep::kNodes) {
    __builtin_prefetch(a);
  } else if (lazy::TagOf(a->entry.state.word()) != lazy::kSnapshot) {
    // A parsed state, or a kept record's header (replay reads its
    // index_source); replay never reads a lazy state's snapshot bytes.
    __builtin_prefetch(a->entry.state.address());
  }
  return false;
}

void SessionTable::PrefetchSession(size_t hash, PrefetchStep step) const {
  const Sessions& sessions = shards_[RangeOf(hash, shards_.size())]->sessions;
  if (step == PrefetchStep::kSlots) {
    PrefetchInSet(sessions, PrefetchProbe{hash, step});
  } else {
    // Matches nothing: the probe visits, and prefetches, every candidate.
    // The empty asm uses the result, so that no compiler can drop the
    // lookup as useless (GCC did drop absl's prefetch(); see PrefetchInSet).
    const bool found =
        sessions.find(PrefetchProbe{hash, step}) != sessions.end();
    asm volatile("" : : "r"(found));
  }
}

SessionTable::Shard::~Shard() {
  for (Node* node : sessions) FreeNode(node);
}

SessionTable::Node::Node(absl::string_view id)
    : id_len_(id.size() >= kLongId ? kLongId
                                   : static_cast<uint8_t>(id.size())) {
  char* tail = reinterpret_cast<char*>(this) + kIdOffset;
  if (id_len_ == kLongId) {
    const uint32_t size = static_cast<uint32_t>(id.size());
    std::memcpy(tail, &size, sizeof(size));
    tail += sizeof(size);
  }
  // An empty id may have no data pointer at all.
  if (!id.empty()) std::memcpy(tail, id.data(), id.size());
}

SessionTable::Node* SessionTable::NewNode(absl::string_view id) {
  // The id is written from kIdOffset on, right after id_len_, over the
  // struct's tail padding.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
  static_assert(offsetof(Node, id_len_) + 1 == Node::kIdOffset,
                "the id starts right after the node's header");
#pragma GCC diagnostic pop
  static_assert(sizeof(Entry) == 24, "Entry is three words");
  void* block =
      ::operator new(std::max(sizeof(Node), Node::BlockSize(id.size())));
  return new (block) Node(id);
}

void SessionTable::FreeNode(Node* node) {
  node->~Node();
  ::operator delete(node);
}

SessionTable::SessionTable(const Schema& schema, size_t shard_count)
    : schema_(schema) {
  shards_.reserve(shard_count);
  for (size_t i = 0; i < shard_count; ++i) {
    shards_.push_back(std::make_unique<Shard>());
  }
  index_slot_.assign(schema.fields().size(), -1);
  for (size_t i = 0; i < schema.indexed_fields().size(); ++i) {
    const Schema::Field* f = schema.indexed_fields()[i];
    index_slot_[f->index] = static_cast<int>(i);
    indexes_.push_back(NewIndex(*f));
  }
}

SessionTable::~SessionTable() {
  for (Index& index : indexes_) ClearIndex(index);
}

void SessionTable::ClearIndex(Index& index) {
  for (IndexSet& part : index.parts) {
    for (Slot slot : part) {
      if (slot & 1) delete reinterpret_cast<HolderList*>(slot & ~Slot{1});
    }
    part.clear();
  }
}

void SessionTable::SplitIndex(Index& index, size_t keys) {
  const Split split = SplitFor(keys, 1, 1024);
  index.parts.clear();
  index.parts.reserve(split.sets);
  for (size_t i = 0; i < split.sets; ++i) {
    index.parts.emplace_back(split.per_set,
                             SlotHash{index.field, index.by_string},
                             SlotEq{index.field, index.by_string});
  }
}

SessionTable::Index SessionTable::NewIndex(const Schema::Field& field) const {
  Index index;
  index.field = &field;
  index.by_string =
      field.descriptor->cpp_type() == FieldDescriptor::CPPTYPE_STRING;
  SplitIndex(index, 0);
  return index;
}

SessionTable::Split SessionTable::SplitFor(size_t n, size_t min_sets,
                                           size_t max_sets) {
  min_sets = std::max<size_t>(min_sets, 1);
  max_sets = std::max(max_sets, min_sets);
  // Room for the fullest set: the mean plus four standard deviations (the
  // count of a set is binomial), so that hardly any set grows while it is
  // filled. Growing costs more than the rehash: it is a large allocation,
  // which makes glibc consolidate the freed small blocks of that thread's
  // arena, and every small allocation after it slower (with two standard
  // deviations, a few shards of 289 grew, and loading 10^6 sessions was
  // markedly slower in the benchmark's later rounds).
  auto need = [](size_t mean) {
    return mean + static_cast<size_t>(
                      4 * std::ceil(std::sqrt(static_cast<double>(mean))));
  };
  auto mean_of = [&](size_t sets) { return (n + sets - 1) / sets; };
  if (n == 0) return Split{min_sets, 0};
  Split best{min_sets, need(mean_of(min_sets))};
  double best_slots = std::numeric_limits<double>::infinity();
  // absl's sets have a capacity of 2^k - 1 slots and grow once they hold
  // 7/8 of it.
  for (int k = 4; k < 63; ++k) {
    const size_t capacity = (size_t{1} << k) - 1;
    const size_t growth = capacity - capacity / 8;
    // The largest mean whose fullest set fits, then the fewest sets.
    size_t lo = 0, hi = growth;
    while (lo < hi) {
      const size_t mid = lo + (hi - lo + 1) / 2;
      if (need(mid) <= growth) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    if (lo == 0) continue;
    const size_t sets =
        std::min(std::max((n + lo - 1) / lo, min_sets), max_sets);
    if (need(mean_of(sets)) > growth) continue;  // not enough sets allowed
    const double slots = static_cast<double>(sets) * capacity;
    if (slots < best_slots) {
      best_slots = slots;
      best = Split{sets, need(mean_of(sets))};
    }
    if (sets == min_sets) break;  // larger sets only add slots
  }
  return best;
}

void SessionTable::Reserve(size_t sessions) {
  // Shards fill unevenly: room for the fullest.
  const size_t per_shard =
      SplitFor(sessions, shards_.size(), shards_.size()).per_set;
  for (auto& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard->mu);
    shard->sessions.reserve(per_shard);
  }
  // Suspended indexes are built, and sized, by RebuildIndexes.
  if (indexes_suspended_) return;
  std::lock_guard<std::mutex> lock(index_mu_);
  for (Index& index : indexes_) {
    bool empty = true;
    for (const IndexSet& part : index.parts) empty &= part.empty();
    if (empty) SplitIndex(index, sessions);
  }
}

size_t SessionTable::IndexParts(size_t index) const {
  std::lock_guard<std::mutex> lock(index_mu_);
  return indexes_[index].parts.size();
}

size_t SessionTable::IndexSlots(size_t index) const {
  std::lock_guard<std::mutex> lock(index_mu_);
  size_t slots = 0;
  for (const IndexSet& part : indexes_[index].parts) {
    slots += part.bucket_count();
  }
  return slots;
}

void SessionTable::RebuildIndexes(bool from_load) {
  indexes_suspended_ = false;
  if (indexes_.empty()) return;
  const size_t sessions = size();
  // Only if the load put in every session (a table it did not fill is
  // walked).
  from_load = from_load && lazy_arena_ != nullptr &&
              lazy_arena_->snapshot_states() == sessions;
  const size_t hinted =
      std::min<size_t>(schema_.indexed_fields().size(), lazy::kHintedFields);
  // One thread per index: each reads every state (nobody writes them now)
  // and fills only its own set, so they share nothing but the states.
  auto build = [&](size_t slot) {
    Index& index = indexes_[slot];
    ClearIndex(index);
    SplitIndex(index, sessions);
    const Schema::Field& field = *schema_.indexed_fields()[slot];
    if (from_load && slot < hinted) {
      BuildFromLoad(index, field, slot);
      return;
    }
    // Each insert chases node -> state -> value -> index slot, a cache miss
    // at every step once the table outgrows the cache. A batch of nodes
    // takes each step together, prefetching what the next step reads, so
    // that a batch's misses overlap instead of queueing one behind another.
    constexpr size_t kBatch = 16;
    const Node* batch[kBatch];
    IndexValue values[kBatch];
    IndexKey keys[kBatch];
    bool set[kBatch];
    size_t n = 0;
    auto flush = [&] {
      for (size_t i = 0; i < n; ++i) {
        __builtin_prefetch(batch[i]->entry.state.address());
      }
      // A kept record leads to the word that holds the field
      // (index_source); a snapshot state's header holds its value and hash.
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
        set[i] = ValueOfNode(*batch[i], field, &values[i],
                             /*check_presence=*/true, &known_hash, &hashed[i]);
        if (!set[i]) continue;
        if (hashed[i]) {
          keys[i] = IndexKey{values[i], static_cast<size_t>(known_hash)};
        } else {
          __builtin_prefetch(values[i].text.data());
        }
      }
      for (size_t i = 0; i < n; ++i) {
        if (!set[i]) continue;
        if (!hashed[i]) keys[i] = index.Key(values[i]);
        PrefetchInSet(index.PartOf(keys[i]), keys[i]);
      }
      for (size_t i = 0; i < n; ++i) {
        if (set[i]) InsertLocked(index, keys[i], *batch[i]);
      }
      n = 0;
    };
    for (const auto& shard : shards_) {
      for (const Node* node : shard->sessions) {
        __builtin_prefetch(node);
        batch[n++] = node;
        if (n == kBatch) flush();
      }
    }
    flush();
    ShrinkIndex(index);
  };
  std::vector<std::thread> threads;
  for (size_t slot = 1; slot < indexes_.size(); ++slot) {
    threads.emplace_back(build, slot);
  }
  build(0);
  for (std::thread& t : threads) t.join();
}

void SessionTable::BuildFromLoad(Index& index, const Schema::Field& field,
                                 size_t slot) {
  // The snapshot states hold the keys' hashes, and follow one another in
  // their chunks: an insert reads no node and no state bytes, and its one
  // cache miss, the set's slot, is prefetched a few states ahead. (A
  // state's bytes are read only when a slot's hash bits match the key's.)
  constexpr size_t kAhead = 8;
  const lazy::SnapshotState* ring[kAhead] = {};
  size_t n = 0;
  auto insert = [&](const lazy::SnapshotState& state) {
    const Node* node = static_cast<const Node*>(state.node);
    if (state.known[slot] == lazy::kKnown) {
      InsertLocked(index,
                   NodeKey{node, static_cast<size_t>(state.values[slot].hash)});
    } else if (state.known[slot] == lazy::kNoHint) {
      IndexValue value;
      if (ValueOfNode(*node, field, &value)) {
        InsertLocked(index, index.Key(value), *node);
      }
    }
  };
  lazy_arena_->ForEachSnapshotState([&](const lazy::SnapshotState& state) {
    if (state.known[slot] == lazy::kKnown) {
      PrefetchInSet(
          index.PartOf(state.values[slot].hash),
          NodeKey{nullptr, static_cast<size_t>(state.values[slot].hash)});
    }
    const lazy::SnapshotState*& due = ring[n++ % kAhead];
    if (due != nullptr) insert(*due);
    due = &state;
  });
  for (size_t i = 0; i < kAhead; ++i) {
    const lazy::SnapshotState* due = ring[n++ % kAhead];
    if (due != nullptr) insert(*due);
  }
  ShrinkIndex(index);
}

void SessionTable::ShrinkIndex(Index& index) {
  // Sized for a key per session; an index of fewer keys (a MULTI index of
  // few values, a field most sessions leave unset) gives back what half its
  // capacity would hold.
  for (IndexSet& part : index.parts) {
    if (part.size() * 16 < part.bucket_count() * 7) part.rehash(0);
  }
}

bool SessionTable::ValueOf(const Message& state, const Schema::Field& field,
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

bool SessionTable::ValueFromText(const Schema::Field& field,
                                 absl::string_view text, IndexValue* key) {
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

const SessionTable::Node* SessionTable::FirstHolder(Slot slot) {
  if (slot & 1) {
    return reinterpret_cast<const HolderList*>(slot & ~Slot{1})->front();
  }
  return reinterpret_cast<const Node*>(slot);
}

absl::Span<const SessionTable::Node* const> SessionTable::HoldersOf(
    const Slot& slot, const Node** one) {
  if (slot & 1) return *reinterpret_cast<const HolderList*>(slot & ~Slot{1});
  *one = reinterpret_cast<const Node*>(slot);
  return absl::MakeConstSpan(one, 1);
}

// A slot's holders all have the field set: only set values are indexed. The
// has-bit is not read: it shares a word with other fields' bits, which their
// writers change under their own shard's lock, not index_mu_; the indexed
// field itself changes only under index_mu_.
size_t SessionTable::SlotHash::operator()(Slot slot) const {
  IndexValue value;
  ValueOfNode(*FirstHolder(slot), *field, &value, /*check_presence=*/false);
  return HashValue(value, by_string);
}

bool SessionTable::SlotEq::operator()(Slot a, const IndexKey& b) const {
  IndexValue value;
  ValueOfNode(*FirstHolder(a), *field, &value, /*check_presence=*/false);
  return by_string ? value.text == b.value.text
                   : value.number == b.value.number;
}

bool SessionTable::SlotEq::operator()(Slot a, const NodeKey& b) const {
  const Node* first = FirstHolder(a);
  if (first == b.node) return true;
  // Called when 7 bits of the hashes match, which at the sets' load is one
  // insert in ten. Where the load noted the holder's value with its hash
  // (the index build right after it, which is what inserts NodeKeys),
  // different hashes settle it without reading either value's bytes.
  IndexValue held;
  uint64_t held_hash = 0;
  bool hashed = false;
  ValueOfNode(*first, *field, &held, /*check_presence=*/false, &held_hash,
              &hashed);
  if (hashed && held_hash != b.hash) return false;
  IndexValue value;
  ValueOfNode(*b.node, *field, &value, /*check_presence=*/false);
  return by_string ? held.text == value.text : held.number == value.number;
}

bool SessionTable::SlotEq::operator()(Slot a, Slot b) const {
  if (a == b) return true;
  IndexValue value;
  ValueOfNode(*FirstHolder(b), *field, &value, /*check_presence=*/false);
  return (*this)(a, IndexKey{value, 0});
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
    IndexValue value;
    if (!ValueOf(values, *field, &value)) continue;
    const Index& index = indexes_[index_slot_[field->index]];
    const IndexKey key = index.Key(value);
    const IndexSet& part = index.PartOf(key);
    auto it = part.find(key);
    if (it == part.end()) continue;
    const Node* one = nullptr;
    for (const Node* holder : HoldersOf(*it, &one)) {
      if (holder->id() != session) {
        return absl::AlreadyExistsError(absl::StrCat(
            "session ", session, ": ", field->descriptor->name(), " \"",
            schema_.IndexKey(values, *field), "\" is already held by session ",
            holder->id(),
            " (UNIQUE index); delete or change that session first"));
      }
    }
  }
  return absl::OkStatus();
}

void SessionTable::IndexRemoveLocked(const Node& node,
                                     const Schema::Field& field) {
  IndexValue value;
  if (!ValueOfNode(node, field, &value)) return;
  Index& index = indexes_[index_slot_[field.index]];
  const IndexKey key = index.Key(value);
  IndexSet& part = index.PartOf(key);
  auto it = part.find(key);
  if (it == part.end()) return;
  const Slot slot = *it;
  if (!(slot & 1)) {
    if (reinterpret_cast<const Node*>(slot) == &node) part.erase(it);
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
    const_cast<Word48&>(*it) = reinterpret_cast<Slot>(list->front());
    delete list;
  }
}

void SessionTable::IndexAddLocked(const Node& node,
                                  const Schema::Field& field) {
  IndexValue value;
  if (!ValueOfNode(node, field, &value)) return;
  Index& index = indexes_[index_slot_[field.index]];
  InsertLocked(index, index.Key(value), node);
}

void SessionTable::InsertLocked(Index& index, const IndexKey& key,
                                const Node& node) {
  InsertKeyLocked(index, key, node);
}

void SessionTable::InsertLocked(Index& index, const NodeKey& key) {
  InsertKeyLocked(index, key, *key.node);
}

template <typename Key>
void SessionTable::InsertKeyLocked(Index& index, const Key& key,
                                   const Node& node) {
  bool added = false;
  auto it = index.PartOf(key.hash).lazy_emplace(
      key, [&](const IndexSet::constructor& construct) {
        construct(reinterpret_cast<Slot>(&node));
        added = true;
      });
  if (added) return;
  Word48& word = const_cast<Word48&>(*it);
  const Slot slot = word;
  if (slot & 1) {
    auto* list = reinterpret_cast<HolderList*>(slot & ~Slot{1});
    if (std::find(list->begin(), list->end(), &node) == list->end()) {
      list->push_back(&node);
    }
    return;
  }
  const Node* first = reinterpret_cast<const Node*>(slot);
  if (first == &node) return;
  auto* list = new HolderList{first, &node};
  word = reinterpret_cast<Slot>(list) | 1;
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
        construct(NewNode(session.id));
        inserted = true;
      });
  if (inserted) {
    size_.fetch_add(1, std::memory_order_relaxed);
    if (with_state) (*it)->entry.state.reset(schema_.NewMessage());
  }
  if (inserted_out != nullptr) *inserted_out = inserted;
  return *it;
}

template <typename Change>
void SessionTable::ChangeIndexedLocked(
    const Node& node, absl::Span<const Schema::Field* const> fields,
    Change change) {
  std::lock_guard<std::mutex> lock(index_mu_);
  for (const Schema::Field* f : fields) {
    if (f->index_kind != NO_INDEX) IndexRemoveLocked(node, *f);
  }
  change();
  for (const Schema::Field* f : fields) {
    if (f->index_kind != NO_INDEX) IndexAddLocked(node, *f);
  }
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
    ChangeIndexedLocked(*node, fields, set);
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
        "values of session ", session.id,
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
    parsed = ApplyEncoded(state, encoded, numbers, kept_unknown);
  };
  if (TouchesIndex(fields)) {
    ChangeIndexedLocked(*node, fields, apply);
  } else {
    apply();
  }
  if (!parsed) {
    return absl::DataLossError(absl::StrCat("values of session ", session.id,
                                            " do not parse as ",
                                            schema_.descriptor()->full_name()));
  }
  return node;
}

bool SessionTable::ApplyEncoded(Message* state, absl::string_view encoded,
                                absl::Span<const uint32_t> numbers,
                                bool* kept_unknown) const {
  // Known fields are cleared, then merged into; unknown numbers replaced.
  const auto* r = state->GetReflection();
  bool unknown = false;
  for (uint32_t number : numbers) {
    const Schema::Field* f = schema_.FindByNumber(static_cast<int>(number));
    if (f == nullptr) {
      unknown = true;
    } else {
      r->ClearField(state, f->descriptor);
    }
  }
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
  return state->MergeFromCodedStream(&in) && in.ConsumedEntireMessage();
}

void SessionTable::BeginLazy(size_t writers, absl::string_view snapshot) {
  lazy_arena_ = std::make_unique<lazy::Arena>(writers);
  lazy_snapshot_ = std::string(snapshot);
  const auto& indexed = schema_.indexed_fields();
  for (size_t i = 0; i < indexed.size() && i < lazy::kHintedFields; ++i) {
    lazy_hinted_[i] = indexed[i]->descriptor;
  }
}

void SessionTable::HoldMapping(std::shared_ptr<const MappedFile> mapping) {
  std::lock_guard<std::mutex> lock(index_mu_);
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
    return absl::DataLossError(absl::StrCat("state of session ", session.id,
                                            " is not a well-formed message"));
  }
  bool inserted = false;
  Node* node = FindOrCreateLocked(shard, session, &inserted,
                                  /*with_state=*/false);
  if (!inserted) {
    return absl::DataLossError(
        absl::StrCat("session ", session.id, " appears twice in the snapshot"));
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
    const bool by_string =
        field.descriptor->cpp_type() == FieldDescriptor::CPPTYPE_STRING;
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
    kept->values[i].hash = HashValue(value, by_string);
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
        "values of session ", session.id,
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
    ChangeIndexedLocked(*node, fields, chain);
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
  std::lock_guard<std::mutex> lock(shard.mu);
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
    ChangeIndexedLocked(*node, schema_.indexed_fields(), void_them);
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
          "session ", node->id(), ": its state in snapshot ", lazy_snapshot_,
          " does not parse as ", schema_.descriptor()->full_name(),
          "; the session cannot be read or updated. Check the directory "
          "with `walctl verify`, and `walctl show` the session"));
    }
  }
  bool kept_unknown = false;
  for (auto it = updates.rbegin(); it != updates.rend(); ++it) {
    UpdateView update;
    if (!DecodeUpdate((*it)->payload(), &update) ||
        !ApplyEncoded(state.get(), update.values, update.fields,
                      &kept_unknown)) {
      return absl::DataLossError(absl::StrCat(
          "session ", node->id(), ": its record at LSN ", (*it)->lsn,
          " does not parse as ", schema_.descriptor()->full_name(),
          "; the session cannot be read or updated. Check the directory "
          "with `walctl verify`, and `walctl show` the session"));
    }
  }
  Node* mutable_node = const_cast<Node*>(node);
  if (schema_.indexed_fields().empty() || indexes_suspended_) {
    mutable_node->entry.state.reset(std::move(state));
  } else {
    // Index readers read the holders' keys under index_mu_ alone.
    std::lock_guard<std::mutex> lock(index_mu_);
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
  std::lock_guard<std::mutex> lock(index_mu_);
  return lazy_arena_ == nullptr ? 0 : lazy_arena_->bytes();
}

uint64_t SessionTable::lazy_mapped_bytes() const {
  std::lock_guard<std::mutex> lock(index_mu_);
  return lazy_mapped_bytes_;
}

uint64_t SessionTable::CopyMappedLazyStates() {
  std::vector<std::pair<const char*, const char*>> mapped;
  {
    std::lock_guard<std::mutex> lock(index_mu_);
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
    std::lock_guard<std::mutex> lock(shard->mu);
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
        std::lock_guard<std::mutex> index_lock(index_mu_);
        state->data = copy;
      }
      copied += state->size;
    }
  }
  std::lock_guard<std::mutex> lock(index_mu_);
  lazy_mappings_.clear();
  lazy_mapped_bytes_ = 0;
  return copied;
}

bool SessionTable::ReleaseLazyBytesIfUnused() {
  if (lazy_count() != 0) return false;
  std::lock_guard<std::mutex> lock(index_mu_);
  if (lazy_arena_ == nullptr && lazy_mappings_.empty()) return false;
  lazy_arena_.reset();
  lazy_mappings_.clear();
  lazy_mapped_bytes_ = 0;
  return true;
}

bool SessionTable::ValueOfNode(const Node& node, const Schema::Field& field,
                               IndexValue* key, bool check_presence,
                               uint64_t* known_hash, bool* hashed) {
  if (hashed != nullptr) *hashed = false;
  if (const Message* state = node.entry.state.parsed()) {
    return ValueOf(*state, field, key, check_presence);
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
        if (field.descriptor->cpp_type() ==
            google::protobuf::FieldDescriptor::CPPTYPE_STRING) {
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
  return field.descriptor->cpp_type() !=
             google::protobuf::FieldDescriptor::CPPTYPE_STRING ||
         !key->text.empty();
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
  std::lock_guard<std::mutex> lock(index_mu_);
  if (!inserted) {
    for (const Schema::Field* f : schema_.indexed_fields()) {
      IndexRemoveLocked(*node, *f);
    }
  }
  node->entry.state.reset(std::move(state));
  for (const Schema::Field* f : schema_.indexed_fields()) {
    IndexAddLocked(*node, *f);
  }
  return node;
}

bool SessionTable::EraseLocked(Shard& shard, const SessionKey& session) {
  auto it = shard.sessions.find(session);
  if (it == shard.sessions.end()) return false;
  Node* node = *it;
  if (!schema_.indexed_fields().empty() && !indexes_suspended_) {
    std::lock_guard<std::mutex> lock(index_mu_);
    for (const Schema::Field* f : schema_.indexed_fields()) {
      IndexRemoveLocked(*node, *f);
    }
  }
  ClearDirtyLocked(shard, node);
  shard.sessions.erase(it);
  const bool was_lazy = node->entry.state.lazy();
  FreeNode(node);
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
  std::lock_guard<std::mutex> lock(shard.mu);
  const Node* node = FindLocked(shard, key);
  if (node == nullptr) {
    return absl::NotFoundError(absl::StrCat("session ", session, " not found"));
  }
  absl::Status parsed = ParseLocked(node);
  if (!parsed.ok()) return parsed;
  out->CopyFrom(*node->entry.state.parsed());
  return absl::OkStatus();
}

bool SessionTable::Contains(absl::string_view session) const {
  const SessionKey key(session);
  const Shard& shard = ShardFor(key);
  std::lock_guard<std::mutex> lock(shard.mu);
  return FindLocked(shard, key) != nullptr;
}

void SessionTable::ForEach(
    const std::function<void(absl::string_view, const Message&)>& fn) const {
  for (const auto& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard->mu);
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
  if (!ValueFromText(*f, value, &parsed)) return out;
  std::lock_guard<std::mutex> lock(index_mu_);
  const Index& index = indexes_[index_slot_[f->index]];
  const IndexKey key = index.Key(parsed);
  const IndexSet& part = index.PartOf(key);
  auto it = part.find(key);
  if (it != part.end()) {
    const Node* one = nullptr;
    for (const Node* holder : HoldersOf(*it, &one)) {
      out.emplace_back(holder->id());
    }
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
    std::lock_guard<std::mutex> lock(shard->mu);
    bytes += shard->sessions.bucket_count() * (sizeof(NodeRef) + 1);
    bytes += shard->dirty.capacity() * sizeof(Node*);
    for (const Node* node : shard->sessions) {
      bytes +=
          block(std::max(sizeof(Node), Node::BlockSize(node->id().size())));
      // A lazy state's bytes are counted with the arena below.
      if (const Message* state = node->entry.state.parsed()) {
        bytes += state->SpaceUsedLong();
      }
    }
  }
  std::lock_guard<std::mutex> lock(index_mu_);
  if (lazy_arena_ != nullptr) bytes += lazy_arena_->bytes();
  bytes += lazy_mapped_bytes_;
  for (const Index& index : indexes_) {
    for (const IndexSet& part : index.parts) {
      bytes += part.bucket_count() * (sizeof(Word48) + 1);
      for (Slot slot : part) {
        if (slot & 1) {
          bytes += block(sizeof(HolderList)) +
                   block(reinterpret_cast<const HolderList*>(slot & ~Slot{1})
                             ->capacity() *
                         sizeof(const Node*));
        }
      }
    }
  }
  return bytes;
}

}  // namespace walstate
