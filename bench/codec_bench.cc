// A deterministic loop over the wire-format code the engine runs per update
// and per lazily recovered session, for instruction counts under callgrind
// (repeatable on a loaded machine, unlike wall time):
//
//   bazel build -c opt //bench:codec_bench
//   valgrind --tool=callgrind --callgrind-out-file=/dev/null
//       bazel-bin/bench/codec_bench encode 200000
//
// Parts: encode (EncodeUpdate of a tick's five BATCHED fields and of the
// three IMMEDIATE fields of a GatewaySession), decode (DecodeUpdate and
// OnlyListedFields of those payloads), scan (lazy::WellFormed with hints
// and FindValue on a serialized session), none (setup only: subtract it).
// Built with --config=portable_protobuf it measures proto_wire's portable
// path; docs/bench/notes.md "proto_wire" has the figures.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "engine/state/lazy_state.h"
#include "engine/state/message_fields.h"
#include "engine/state/schema.h"
#include "engine/state/update_codec.h"
#include "proto/example/gateway.pb.h"

namespace walstate {
namespace {

using example::GatewaySession;

int Run(const char* part, long iterations) {
  auto schema =
      Schema::FromPrototype(GatewaySession::default_instance(), BATCHED);
  if (!schema.ok()) {
    std::fprintf(stderr, "schema: %s\n", schema.status().ToString().c_str());
    return 1;
  }
  std::vector<const Schema::Field*> batched, immediate;
  for (const Schema::Field& f : (*schema)->fields()) {
    (f.durability == IMMEDIATE ? immediate : batched).push_back(&f);
  }
  GatewaySession s;
  s.set_fingerprint("fp-0123456789abcdef0123456789abcdef");
  s.set_header_session_id("hs-42");
  s.set_header_name("x-session-id");
  s.set_resolved_conversation_ttl("1h");
  s.mutable_warmup()->set_warmup_count(3);
  s.mutable_calibration()->set_bust_rate_ema(-1);
  s.mutable_calibration()->set_last_layer(4);
  s.mutable_cost()->set_conversation_cost(0.125);
  s.mutable_cost()->set_conversation_turns(12);
  s.mutable_ltm()->set_cache_text(std::string(2000, 'c'));
  s.mutable_ltm()->set_cache_tokens(500);

  uint64_t sum = 0;
  std::string payload;
  const auto start = std::chrono::steady_clock::now();
  if (std::strcmp(part, "encode") == 0) {
    for (long i = 0; i < iterations; ++i) {
      s.mutable_warmup()->set_warmup_count(static_cast<int>(i));
      s.mutable_cost()->set_cache_read_tokens(i * 1000);
      if (!EncodeUpdate("session-1", static_cast<uint64_t>(i + 1), s, batched,
                        &payload)
               .ok()) {
        return 1;
      }
      sum += payload.size();
      if (!EncodeUpdate("session-1", 0, s, immediate, &payload).ok()) return 1;
      sum += payload.size();
    }
  } else if (std::strcmp(part, "decode") == 0) {
    std::vector<std::string> payloads(2);
    if (!EncodeUpdate("session-1", 7, s, batched, &payloads[0]).ok() ||
        !EncodeUpdate("session-1", 0, s, immediate, &payloads[1]).ok()) {
      return 1;
    }
    UpdateView view;
    for (long i = 0; i < iterations; ++i) {
      for (const std::string& p : payloads) {
        if (!DecodeUpdate(p, &view)) return 1;
        if (!OnlyListedFields(view.values, view.fields)) return 1;
        sum += view.fields.size() + view.values.size();
      }
    }
  } else if (std::strcmp(part, "scan") == 0) {
    const std::string state = s.SerializeAsString();
    const google::protobuf::FieldDescriptor* fields[2] = {
        (*schema)->FindByName("fingerprint")->descriptor,
        (*schema)->FindByName("header_session_id")->descriptor};
    for (long i = 0; i < iterations; ++i) {
      uint16_t hints[lazy::kHintedFields];
      if (!lazy::WellFormed(state, fields, 2, hints)) return 1;
      absl::string_view text;
      uint64_t number = 0;
      for (int f = 0; f < 2; ++f) {
        // Without the hint: the walk a lookup makes when it has none.
        if (!lazy::FindValue(state, fields[f], &text, &number)) return 1;
        sum += text.size();
      }
    }
  } else if (std::strcmp(part, "none") != 0) {
    std::fprintf(stderr, "unknown part %s (encode|decode|scan|none)\n", part);
    return 2;
  }
  const double ns = std::chrono::duration<double, std::nano>(
                        std::chrono::steady_clock::now() - start)
                        .count();
  std::printf("%s: %ld iterations, %.1f ns/iteration (checksum %llu)\n", part,
              iterations, iterations > 0 ? ns / iterations : 0.0,
              static_cast<unsigned long long>(sum));
  return 0;
}

}  // namespace
}  // namespace walstate

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: codec_bench encode|decode|scan|none N\n");
    return 2;
  }
  return walstate::Run(argv[1], std::atol(argv[2]));
}
