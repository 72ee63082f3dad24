// Decoding record payloads for people and scripts: the walstate.record
// payload of each record type, and session values through the schema stored
// in the file's header (Schema::FromBlob), so any user's schema decodes
// without recompiling walctl.
#ifndef WALSTATE_TOOLS_WALCTL_DECODE_H_
#define WALSTATE_TOOLS_WALCTL_DECODE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "engine/state/schema.h"
#include "google/protobuf/message.h"
#include "google/protobuf/util/type_resolver.h"
#include "tools/walctl/common.h"

namespace walstate {
namespace walctl {

// The optional record type `walctl repair --salvage` writes in place of each
// record lost to damage, so that LSNs stay contiguous. Optional types
// (128..255) are skipped by every reader that does not know them, which is
// exactly what a placeholder needs. The payload is a short note.
inline constexpr uint8_t kSalvageFillerType = log::kSalvageFiller;

struct DecodedRecord {
  bool has_session = false;
  std::string session;
  std::string tier;  // "immediate" (kUpdate), "batched" (kTickEntry) or ""
  std::string text;  // the change in one line, for text output
  JsonObject json;   // the change as JSON members
  // Non-empty when the payload (or the values in it) does not decode.
  std::string error;
};

class Decoder {
 public:
  // What Decode() fills in besides `error` and the session: formatting
  // values is most of the cost, so checks ask for none of it.
  enum class Render { kCheck, kText, kJson };

  // Strings longer than this are shortened in text output (JSON is always
  // complete); 0 means never.
  explicit Decoder(size_t truncate_strings = 0)
      : truncate_strings_(truncate_strings) {}

  // The schema stored in a file header's blob, built once per distinct blob.
  // nullptr when the blob is empty or does not load; then `error` (if not
  // null) says why.
  const Schema* SchemaFor(const std::string& blob,
                          std::string* error = nullptr);

  // Decodes a record of `type`. `schema` may be null (values then show as
  // raw field numbers).
  DecodedRecord Decode(uint8_t type, absl::string_view payload, uint64_t lsn,
                       const Schema* schema,
                       Render render = Render::kText) const;

  // A whole session state: one-line text / JSON object.
  std::string StateText(const google::protobuf::Message& state) const;
  // JSON through a type resolver cached per descriptor pool (protobuf's
  // MessageToJsonString builds a new one for every call on dynamic pools).
  std::string Json(const google::protobuf::Message& state) const;
  static std::string StateJson(const google::protobuf::Message& state);
  // Multi-line text format, for `show`.
  static std::string StateTextMultiLine(const google::protobuf::Message& state);

 private:
  void DecodeUpdate(absl::string_view payload, const Schema* schema,
                    Render render, DecodedRecord* out) const;
  std::string SingleLine(const google::protobuf::Message& m) const;

  size_t truncate_strings_;
  struct CachedSchema {
    std::unique_ptr<Schema> schema;
    std::string error;
  };
  std::map<std::string, CachedSchema> schemas_;
  mutable std::map<const google::protobuf::DescriptorPool*,
                   std::unique_ptr<google::protobuf::util::TypeResolver>>
      resolvers_;
};

// The session message type named by a schema blob ("" if none or unreadable).
std::string SchemaTypeName(const std::string& blob);

}  // namespace walctl
}  // namespace walstate

#endif  // WALSTATE_TOOLS_WALCTL_DECODE_H_
