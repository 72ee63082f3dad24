// The payload of kUpdate and kTickEntry records (walstate.record.Update),
// encoded and decoded by hand so that neither side builds a temporary
// message: the encoder serializes the listed fields straight from the
// session's (or the caller's) message, and the decoder returns views into
// the payload. Both are byte-compatible with record::Update's generated
// code, which tools and older binaries use.
#ifndef WALSTATE_ENGINE_STATE_UPDATE_CODEC_H_
#define WALSTATE_ENGINE_STATE_UPDATE_CODEC_H_

#include <cstdint>
#include <string>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "engine/state/schema.h"
#include "google/protobuf/message.h"

namespace walstate {

// Replaces `*out` with a serialized record::Update: `session`, `tick` (0 for
// kUpdate), the numbers of `fields` in the given order, and `values` holding
// the current values of those fields of `message` (a field unset there is
// absent, which replay reads as "clear it"). Unlisted fields of `message`
// are not written. Sizes cached in `message`'s submessages are refreshed, so
// the caller must have exclusive access to it. Internal if the serialized
// size differs from the computed one (nothing usable is left in `*out`).
absl::Status EncodeUpdate(absl::string_view session, uint64_t tick,
                          const google::protobuf::Message& message,
                          absl::Span<const Schema::Field* const> fields,
                          std::string* out);

// A decoded record::Update; the views point into the payload it came from.
struct UpdateView {
  absl::string_view session;
  absl::string_view values;  // a serialized session message
  uint64_t tick = 0;
  absl::InlinedVector<uint32_t, 8> fields;
};

// Decodes `payload` into `*out`, accepting anything record::Update's
// generated parser accepts (packed or unpacked field numbers, fields in any
// order, unknown fields skipped). False if it does not parse.
bool DecodeUpdate(absl::string_view payload, UpdateView* out);

}  // namespace walstate

#endif  // WALSTATE_ENGINE_STATE_UPDATE_CODEC_H_
