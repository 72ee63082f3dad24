#include "engine/fs/kill_point.h"

namespace walstate {
namespace kill_point_internal {

std::atomic<KillPointHook> hook{nullptr};

}  // namespace kill_point_internal

void SetKillPointHook(KillPointHook hook) {
  kill_point_internal::hook.store(hook, std::memory_order_release);
}

}  // namespace walstate
