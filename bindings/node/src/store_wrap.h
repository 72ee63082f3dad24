// The JS object behind walstate's Store (lib/index.js wraps it): one open
// engine, its schema and its committer. No state outside instances.
#ifndef WALSTATE_BINDINGS_NODE_STORE_WRAP_H_
#define WALSTATE_BINDINGS_NODE_STORE_WRAP_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "committer.h"
#include "napi.h"
#include "schema_loader.h"
#include "walstate/walstate.h"

namespace walstate {
namespace node {

// A JS Error carrying `code` = the absl status code name ("NOT_FOUND", ...).
Napi::Error MakeError(Napi::Env env, const absl::Status& status);

// What an Open on a worker thread hands to the StoreWrap constructor.
struct Opened {
  std::string dir;
  std::unique_ptr<LoadedSchema> schema;
  std::unique_ptr<Engine> engine;
  Durability default_durability = BATCHED;
  size_t writer_threads = 8;
};

class StoreWrap : public Napi::ObjectWrap<StoreWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  // info[0]: a Napi::External<Opened>, taken over.
  explicit StoreWrap(const Napi::CallbackInfo& info);
  // Collected while open (never while jobs are pending): closed as at exit.
  ~StoreWrap() override;

 private:
  // updateBytes(sessionId, bytes, length, maskLo, maskHi, durability?,
  // indexes?): the values as wire bytes (lib/encode.js), the top-level
  // fields they set as a bit mask of field indexes 0..63 (lo: 0..31) plus
  // an array of any higher indexes.
  Napi::Value UpdateBytes(const Napi::CallbackInfo& info);
  // schema(): the session type's fields for lib/encode.js's plan.
  Napi::Value Schema(const Napi::CallbackInfo& info);
  Napi::Value Delete(const Napi::CallbackInfo& info);
  Napi::Value Get(const Napi::CallbackInfo& info);
  Napi::Value Has(const Napi::CallbackInfo& info);
  Napi::Value Keys(const Napi::CallbackInfo& info);
  Napi::Value Lookup(const Napi::CallbackInfo& info);
  Napi::Value Flush(const Napi::CallbackInfo& info);
  Napi::Value Compact(const Napi::CallbackInfo& info);
  Napi::Value ExpireIdle(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Health(const Napi::CallbackInfo& info);
  Napi::Value ApproximateMemoryUsage(const Napi::CallbackInfo& info);
  Napi::Value RecoveryReport(const Napi::CallbackInfo& info);
  // close(): a Promise; the engine's Close runs after every queued job.
  Napi::Value Close(const Napi::CallbackInfo& info);
  // release(): after close() settled, joins the committer's threads.
  Napi::Value Release(const Napi::CallbackInfo& info);
  // closeSync(): waits for queued jobs, closes on this thread.
  Napi::Value CloseSync(const Napi::CallbackInfo& info);
  Napi::Value Dir(const Napi::CallbackInfo& info);

  // Throws (and returns false) once close() was called.
  bool CheckOpen(Napi::Env env);
  // Stops the committer and closes the engine here; at exit or collection.
  absl::Status ShutdownSync(Napi::Env env, bool settle);
  static void AtExit(void* self);

  std::unique_ptr<Opened> opened_;
  Committer* committer_ = nullptr;  // freed by Committer::Stop
  std::vector<bool> immediate_;     // by field index: IMMEDIATE tier
  uint64_t immediate_mask_ = 0;     // immediate_ of fields 0..63
  // The field names an update lists, by the bit mask of their indexes
  // (fields 0..63), made once per combination (at most kMaxMasks kept).
  absl::flat_hash_map<uint64_t, std::vector<std::string>> names_by_mask_;
  bool closing_ = false;       // close() or closeSync() was called
  bool close_queued_ = false;  // close() queued the engine's Close
  bool hook_ = false;          // AtExit registered
  napi_env env_ = nullptr;
};

}  // namespace node
}  // namespace walstate

#endif  // WALSTATE_BINDINGS_NODE_STORE_WRAP_H_
