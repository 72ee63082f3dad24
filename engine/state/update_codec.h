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
#include "engine/state/proto_wire.h"
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

// EncodeUpdate in two steps, for a caller that encodes into a buffer it does
// not own (the log writer's, LogWriter::AppendEncoded): Prepare() computes
// the size outside the buffer owner's lock, EncodeTo() then writes exactly
// that many bytes in place. Between the two, `message` and `fields` must
// stay alive and unchanged, and `session` must stay valid.
class UpdateEncoder {
 public:
  // Returns the payload size. Refreshes the sizes cached in `message`'s
  // submessages, as EncodeUpdate does.
  size_t Prepare(absl::string_view session, uint64_t tick,
                 const google::protobuf::Message& message,
                 absl::Span<const Schema::Field* const> fields);

  // Writes the Prepare()d payload: exactly size() bytes at `out`. Internal if
  // the serializer wrote another size (the bytes at `out` are then garbage).
  absl::Status EncodeTo(char* out) const;

  size_t size() const { return total_; }

 private:
  // The Internal error of EncodeTo when the message's size changed.
  absl::Status SizeChanged() const;

  absl::string_view session_;
  uint64_t tick_ = 0;
  const google::protobuf::Message* message_ = nullptr;
  // How EncodeTo writes each listed field of the values (a present
  // singular submessage through its own serializer, sized by the
  // ByteSizeLong() of Prepare).
  absl::InlinedVector<wire::FieldPart, 8> parts_;
  size_t values_size_ = 0;
  size_t numbers_size_ = 0;
  size_t total_ = 0;
};

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
