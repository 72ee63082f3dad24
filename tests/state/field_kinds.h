// A session message with a field of every kind a schema may hold (strings
// short and long, bytes, each scalar type, an enum, a submessage, a
// repeated field, a map and a oneof), built at run time, and random values
// for it: for tests that what the engine does to one kind it does to all.
#ifndef WALSTATE_TESTS_STATE_FIELD_KINDS_H_
#define WALSTATE_TESTS_STATE_FIELD_KINDS_H_

#include <memory>
#include <random>
#include <vector>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/message.h"

namespace walstate {
namespace testing {

class FieldKinds {
 public:
  FieldKinds();

  // The prototype of walstate.test.Kinds (dynamic).
  const google::protobuf::Message& prototype() const { return *prototype_; }

  // Sets each field of `m` (a Kinds) to a random value, or leaves it unset.
  static void RandomValues(google::protobuf::Message* m, std::mt19937* rng);

  // A random subset of the top-level fields' names, in random order.
  std::vector<std::string> RandomFieldNames(std::mt19937* rng) const;

 private:
  google::protobuf::DescriptorPool pool_;
  std::unique_ptr<google::protobuf::DynamicMessageFactory> factory_;
  const google::protobuf::Message* prototype_ = nullptr;
};

}  // namespace testing
}  // namespace walstate

#endif  // WALSTATE_TESTS_STATE_FIELD_KINDS_H_
