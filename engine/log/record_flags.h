// Bits of the `flags` byte of a record frame (offset 13; see format.h and
// docs/FORMAT.md, section 3). Bits not defined here are reserved and must be
// zero; a reader treats a frame with any of them set as damaged.
#ifndef WALSTATE_ENGINE_LOG_RECORD_FLAGS_H_
#define WALSTATE_ENGINE_LOG_RECORD_FLAGS_H_

#include <cstdint>

namespace walstate {
namespace log {

// Set on the first frame the log writer writes after an fdatasync that made
// every earlier byte of the file durable (the header's, for the first frame
// of a segment). Damage before an intact frame carrying it lies in data that
// was durable: corruption. Damage with no such frame after it may be the
// unsynced end of the log, which a crash can tear anywhere (disks persist
// unsynced sectors in any order): a torn tail.
inline constexpr uint8_t kRecordFlagAfterSync = 0x01;

// Every flag bit this build knows.
inline constexpr uint8_t kKnownRecordFlags = kRecordFlagAfterSync;

}  // namespace log
}  // namespace walstate

#endif  // WALSTATE_ENGINE_LOG_RECORD_FLAGS_H_
