// Embeds walstate through its installed package: writes two sessions, closes,
// reopens, and checks the values and the index. Exit 0 and "embed: ok" when
// everything matched; otherwise a message saying what did not.
//
//   embed DIR
#include <cstdio>
#include <string>

#include "session.pb.h"
#include "walstate/walstate.h"

namespace {

int Fail(const std::string& what) {
  std::fprintf(stderr, "embed: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return Fail("usage: embed DIR");
  const std::string dir = argv[1];
  if (std::string(walstate::Version()) !=
      std::to_string(WALSTATE_VERSION_MAJOR) + "." +
          std::to_string(WALSTATE_VERSION_MINOR) + "." +
          std::to_string(WALSTATE_VERSION_PATCH)) {
    return Fail(std::string("library ") + walstate::Version() +
                " does not match its headers");
  }
  walstate::Options options;
  using Store = walstate::Store<embed::Session>;
  {
    auto store = Store::Open(options, dir);
    if (!store.ok()) return Fail(store.status().ToString());
    embed::Session alice;
    alice.set_user("alice");  // IMMEDIATE: durable when Update returns
    absl::Status s = (*store)->Update("s1", alice, {"user"});
    if (!s.ok()) return Fail(s.ToString());
    embed::Session bob;
    bob.set_user("bob");
    s = (*store)->Update("s2", bob, {"user"});
    if (!s.ok()) return Fail(s.ToString());
    for (int turn = 1; turn <= 3; ++turn) {
      embed::Session turns;
      turns.set_turns(turn);  // BATCHED: memory now, disk at the tick
      s = (*store)->Update("s1", std::move(turns), {"turns"});
      if (!s.ok()) return Fail(s.ToString());
    }
    s = (*store)->Close();  // writes the last tick
    if (!s.ok()) return Fail(s.ToString());
  }
  auto store = Store::Open(options, dir);
  if (!store.ok()) return Fail(store.status().ToString());
  auto s1 = (*store)->Get("s1");
  if (!s1.ok()) return Fail(s1.status().ToString());
  if (s1->user() != "alice" || s1->turns() != 3) {
    return Fail("s1 after reopen is {" + s1->ShortDebugString() +
                "}, expected user alice, turns 3");
  }
  auto found = (*store)->Lookup("user", "bob");
  if (!found.ok()) return Fail(found.status().ToString());
  if (found->size() != 1 || (*found)[0] != "s2") {
    return Fail("Lookup(user, bob) after reopen did not give exactly s2");
  }
  absl::Status s = (*store)->Close();
  if (!s.ok()) return Fail(s.ToString());
  std::printf("embed: ok (walstate %s, on-disk format %d)\n",
              walstate::Version(), walstate::FormatVersion());
  return 0;
}
