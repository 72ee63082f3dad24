// The kill points' environment-driven hook, for test and tool binaries only
// (walstress, kill tests): linking //engine/fs:kill_point_env makes a process
// started with WALSTATE_KILL_POINT=<name>[:<n>] SIGKILL itself the n-th time
// (default 1st) it reaches the point called <name> (engine/fs/kill_point.h).
// The variable is read once, when the binary starts; unset or empty, no hook
// is installed. Production binaries must not link this target (a test checks
// that walctl does not).
#ifndef WALSTATE_ENGINE_FS_KILL_POINT_ENV_H_
#define WALSTATE_ENGINE_FS_KILL_POINT_ENV_H_

namespace walstate {

// Every point name the engine calls KillPoint with, nullptr-terminated, for
// tools that pick one (`walstress kill-points`).
const char* const* KillPointNames();

}  // namespace walstate

#endif  // WALSTATE_ENGINE_FS_KILL_POINT_ENV_H_
