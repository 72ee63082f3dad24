#include "engine/fs/kill_point_env.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "engine/fs/kill_point.h"

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

// The armed point, parsed from the environment once at start-up.
struct Armed {
  std::string name;
  long nth = 1;
};
const Armed* armed = nullptr;
std::atomic<long> hits{0};

void KillIfArmed(const char* name) {
  if (armed->name != name) return;
  if (hits.fetch_add(1) + 1 == armed->nth) {
    ::kill(::getpid(), SIGKILL);
  }
}

// Installs the hook at static initialization when the variable is set, so
// that the engine's first kill point already sees it.
const bool installed = [] {
  const char* env = std::getenv("WALSTATE_KILL_POINT");
  if (env == nullptr || *env == '\0') return false;
  auto* a = new Armed;
  const char* colon = std::strchr(env, ':');
  if (colon == nullptr) {
    a->name = env;
  } else {
    a->name.assign(env, colon - env);
    a->nth = std::max(1L, std::strtol(colon + 1, nullptr, 10));
  }
  armed = a;
  SetKillPointHook(&KillIfArmed);
  return true;
}();

}  // namespace

const char* const* KillPointNames() { return kNames; }

}  // namespace walstate
