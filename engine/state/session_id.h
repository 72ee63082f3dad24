// How a session id is written into error messages and tool output: as is
// when it is plain printable ASCII without quotes, spaces or backslashes,
// otherwise in double quotes with C escapes. Session ids are arbitrary bytes
// (engine/walstate.h), so an id can never forge or break a line of a message,
// and walctl prints ids the same way, so an id from an error can be found in
// walctl's output.
#ifndef WALSTATE_ENGINE_STATE_SESSION_ID_H_
#define WALSTATE_ENGINE_STATE_SESSION_ID_H_

#include <string>

#include "absl/strings/string_view.h"

namespace walstate {

// `id` as is if every byte is in '!'..'~' except '"', '\'' and '\\' (and it
// is not empty); else "\"" + absl::CHexEscape(id) + "\"".
std::string QuoteSessionId(absl::string_view id);

}  // namespace walstate

#endif  // WALSTATE_ENGINE_STATE_SESSION_ID_H_
