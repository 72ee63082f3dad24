// Random per-file salts (format.h: they seed every record hash).
#ifndef WALSTATE_ENGINE_SNAPSHOT_SALT_H_
#define WALSTATE_ENGINE_SNAPSHOT_SALT_H_

#include <cstdint>
#include <random>

namespace walstate {

// A salt from the OS entropy source; never zero, so a zero-filled header can
// never describe a usable file.
inline uint64_t NewSalt() {
  std::random_device rd;
  uint64_t salt = 0;
  while (salt == 0) {
    salt = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }
  return salt;
}

}  // namespace walstate

#endif  // WALSTATE_ENGINE_SNAPSHOT_SALT_H_
