// walstate/version.h: the versions of the library linked, as compiled.
#include "walstate/version.h"

#include "engine/log/format.h"

namespace walstate {

static_assert(log::kFormatVersion == WALSTATE_FORMAT_VERSION,
              "walstate/version.h states the format version engine/log/"
              "format.h writes: change both together (docs/FORMAT.md)");

#define WALSTATE_STR2(x) #x
#define WALSTATE_STR(x) WALSTATE_STR2(x)

const char* Version() {
  return WALSTATE_STR(WALSTATE_VERSION_MAJOR) "." WALSTATE_STR(
      WALSTATE_VERSION_MINOR) "." WALSTATE_STR(WALSTATE_VERSION_PATCH);
}

int FormatVersion() { return WALSTATE_FORMAT_VERSION; }

}  // namespace walstate
