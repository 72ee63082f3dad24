// walctl: see, check and fix a walstate data directory without writing code.
//
// Each subcommand is a function taking the arguments after its name; Run()
// dispatches on argv. They write only to the Context's streams, so tests run
// them in-process and compare output byte for byte.
#ifndef WALSTATE_TOOLS_WALCTL_WALCTL_H_
#define WALSTATE_TOOLS_WALCTL_WALCTL_H_

#include <string>
#include <vector>

#include "tools/walctl/common.h"

namespace walstate {
namespace walctl {

// `args` excludes the program name: {"verify", "/data", "--json"}.
int Run(Context& ctx, const std::vector<std::string>& args);

int RunDump(Context& ctx, const std::vector<std::string>& args);
int RunVerify(Context& ctx, const std::vector<std::string>& args);
int RunStats(Context& ctx, const std::vector<std::string>& args);
int RunShow(Context& ctx, const std::vector<std::string>& args);
int RunCompact(Context& ctx, const std::vector<std::string>& args);
int RunRepair(Context& ctx, const std::vector<std::string>& args);
// Replication (tools/walctl/replication.cc).
int RunRestore(Context& ctx, const std::vector<std::string>& args);
int RunTakeover(Context& ctx, const std::vector<std::string>& args);
int RunStream(Context& ctx, const std::vector<std::string>& args);
// The standby follower (tools/walctl/replication.cc).
int RunFollow(Context& ctx, const std::vector<std::string>& args);

}  // namespace walctl
}  // namespace walstate

#endif  // WALSTATE_TOOLS_WALCTL_WALCTL_H_
