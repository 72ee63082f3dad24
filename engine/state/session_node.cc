#include "engine/state/session_node.h"

#include <algorithm>
#include <new>

#include "absl/hash/hash.h"

namespace walstate {

SessionKey::SessionKey(absl::string_view session)
    : id(session), hash(absl::HashOf(session)) {}

SessionNode::SessionNode(absl::string_view id)
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

size_t SessionNode::BlockSize(size_t id_size) {
  return std::max(
      sizeof(SessionNode),
      kIdOffset + (id_size >= kLongId ? sizeof(uint32_t) : 0) + id_size);
}

SessionNode* SessionNode::New(absl::string_view id) {
  // The id is written from kIdOffset on, right after id_len_, over the
  // struct's tail padding.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
  static_assert(offsetof(SessionNode, id_len_) + 1 == kIdOffset,
                "the id starts right after the node's header");
#pragma GCC diagnostic pop
  static_assert(sizeof(SessionEntry) == 24, "an entry is three words");
  void* block = ::operator new(BlockSize(id.size()));
  return new (block) SessionNode(id);
}

void SessionNode::Free(SessionNode* node) {
  node->~SessionNode();
  ::operator delete(node);
}

}  // namespace walstate
