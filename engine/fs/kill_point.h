// Named kill points for crash tests (tools/walstress): the engine calls
// KillPoint("<name>") between the steps of writes, syncs, renames and
// compaction, where a crash is most likely to expose an ordering bug
// (CrashMonkey found every reported bug right after an fsync-family call).
//
// This header is all the engine libraries depend on. By itself a kill point
// does nothing: no hook is installed, so a production binary (walctl, a
// user's program) pays one relaxed atomic load and a branch per point and has
// no code that reads the environment or kills. A test or tool binary that
// wants real kills links //engine/fs:kill_point_env
// (engine/fs/kill_point_env.h), which installs a hook driven by
// WALSTATE_KILL_POINT=<name>[:<n>].
#ifndef WALSTATE_ENGINE_FS_KILL_POINT_H_
#define WALSTATE_ENGINE_FS_KILL_POINT_H_

#include <atomic>

namespace walstate {

// Called with the point's name each time a kill point is reached.
using KillPointHook = void (*)(const char* name);

namespace kill_point_internal {
// Null unless a test or tool binary installed a hook (SetKillPointHook).
extern std::atomic<KillPointHook> hook;
}  // namespace kill_point_internal

// Reports reaching the point `name` (a string literal) to the installed hook,
// if any; without one it does nothing.
inline void KillPoint(const char* name) {
  KillPointHook h = kill_point_internal::hook.load(std::memory_order_acquire);
  if (h != nullptr) h(name);
}

// Installs `hook` (nullptr removes it). For test and tool binaries only;
// call it before the engine runs, e.g. from a static initializer.
void SetKillPointHook(KillPointHook hook);

}  // namespace walstate

#endif  // WALSTATE_ENGINE_FS_KILL_POINT_H_
