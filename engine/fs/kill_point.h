// Named kill points for crash tests (tools/walstress, tests/crash): a process
// started with WALSTATE_KILL_POINT=<name>[:<n>] SIGKILLs itself the n-th time
// (default 1st) it reaches the point called <name>. Points sit between the
// steps of writes, syncs, renames and compaction, where a crash is most
// likely to expose an ordering bug (CrashMonkey found every reported bug right
// after an fsync-family call).
//
// Cost when the variable is unset: one relaxed atomic load per point.
#ifndef WALSTATE_ENGINE_FS_KILL_POINT_H_
#define WALSTATE_ENGINE_FS_KILL_POINT_H_

namespace walstate {

// Kills the process with SIGKILL if `name` is the armed kill point and this
// is the armed occurrence. `name` must be a string literal.
void KillPoint(const char* name);

// Every point name compiled into the engine, for tools that pick one.
const char* const* KillPointNames();

}  // namespace walstate

#endif  // WALSTATE_ENGINE_FS_KILL_POINT_H_
