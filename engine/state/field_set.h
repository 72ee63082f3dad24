// FieldSet: a set of a session message's top-level fields, by index in
// Schema::fields(), in one word (dirty marks, the fields a kept record lists).
#ifndef WALSTATE_ENGINE_STATE_FIELD_SET_H_
#define WALSTATE_ENGINE_STATE_FIELD_SET_H_

#include <cstdint>

namespace walstate {

// Bit 63 stands for every field with index >= 63.
class FieldSet {
 public:
  FieldSet() = default;
  explicit FieldSet(uint64_t bits) : bits_(bits) {}
  void Add(int index) { bits_ |= uint64_t{1} << (index < 63 ? index : 63); }
  bool Contains(int index) const {
    return (bits_ >> (index < 63 ? index : 63)) & 1;
  }
  bool empty() const { return bits_ == 0; }
  uint64_t bits() const { return bits_; }
  FieldSet& operator|=(FieldSet o) {
    bits_ |= o.bits_;
    return *this;
  }

 private:
  uint64_t bits_ = 0;
};

}  // namespace walstate

#endif  // WALSTATE_ENGINE_STATE_FIELD_SET_H_
