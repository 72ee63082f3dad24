#include "engine/fs/kill_point.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

namespace walstate {
namespace {

constexpr const char* kNames[] = {
    "writer.before_write",      "writer.after_write",
    "writer.after_sync",        "writer.before_rotate",
    "writer.after_create",      "engine.after_append",
    "engine.tick_mid",          "engine.before_tick_commit",
    "engine.after_tick_commit", "snapshot.before_sync",
    "snapshot.before_rename",   "snapshot.after_rename",
    "manifest.before_rename",   "manifest.after_rename",
    "compact.before_delete",    "compact.mid_delete",
    "open.after_truncate",      nullptr,
};

struct Armed {
  std::string name;
  long nth = 1;
};

// Parsed once; nullptr when no point is armed (the common case).
const Armed* GetArmed() {
  static const Armed* armed = []() -> const Armed* {
    const char* env = std::getenv("WALSTATE_KILL_POINT");
    if (env == nullptr || *env == '\0') return nullptr;
    auto* a = new Armed;
    const char* colon = std::strchr(env, ':');
    if (colon == nullptr) {
      a->name = env;
    } else {
      a->name.assign(env, colon - env);
      a->nth = std::max(1L, std::strtol(colon + 1, nullptr, 10));
    }
    return a;
  }();
  return armed;
}

std::atomic<long> hits{0};

}  // namespace

void KillPoint(const char* name) {
  const Armed* armed = GetArmed();
  if (armed == nullptr || armed->name != name) return;
  if (hits.fetch_add(1) + 1 == armed->nth) {
    ::kill(::getpid(), SIGKILL);
  }
}

const char* const* KillPointNames() { return kNames; }

}  // namespace walstate
