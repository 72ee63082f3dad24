#include "engine/state/session_id.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace walstate {

std::string QuoteSessionId(absl::string_view id) {
  bool plain = !id.empty();
  for (char c : id) {
    if (c <= ' ' || c >= 0x7F || c == '"' || c == '\\' || c == '\'') {
      plain = false;
    }
  }
  if (plain) return std::string(id);
  return absl::StrCat("\"", absl::CHexEscape(id), "\"");
}

}  // namespace walstate
