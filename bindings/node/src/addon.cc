// walstate's Node-API addon: open() on a worker thread, then a NativeStore
// (store_wrap.h). Everything lives in per-environment instance data (Node
// worker threads each get their own).
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "napi.h"
#include "schema_loader.h"
#include "store_wrap.h"
#include "walstate/walstate.h"

namespace walstate {
namespace node {
namespace {

// What open() was asked for, read on the JS thread.
struct OpenRequest {
  std::string dir;
  std::string proto_file;
  std::string descriptor_set;
  bool has_descriptor_set = false;
  std::string message;
  std::vector<std::string> include_dirs;
  Options options;
  size_t writer_threads = 8;
};

// Loads the schema and opens the engine off the JS thread (recovery reads
// the whole store).
class OpenWorker : public Napi::AsyncWorker {
 public:
  OpenWorker(Napi::Env env, Napi::Function store_class, OpenRequest request)
      : Napi::AsyncWorker(env, "walstate.open"),
        deferred_(Napi::Promise::Deferred::New(env)),
        store_class_(Napi::Persistent(store_class)),
        request_(std::move(request)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    absl::StatusOr<std::unique_ptr<LoadedSchema>> schema =
        request_.has_descriptor_set
            ? LoadFromDescriptorSet(request_.descriptor_set, request_.message)
            : LoadFromProtoFile(request_.proto_file, request_.include_dirs,
                                request_.message);
    if (!schema.ok()) {
      status_ = schema.status();
      return;
    }
    auto engine =
        Engine::Open(request_.options, *(*schema)->prototype, request_.dir);
    if (!engine.ok()) {
      status_ = engine.status();
      return;
    }
    opened_ = std::make_unique<Opened>();
    opened_->dir = request_.dir;
    opened_->schema = std::move(*schema);
    opened_->engine = std::move(*engine);
    opened_->default_durability = request_.options.default_durability;
    opened_->writer_threads = request_.writer_threads;
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (!status_.ok()) {
      deferred_.Reject(MakeError(env, status_).Value());
      return;
    }
    Napi::Object store =
        store_class_.New({Napi::External<Opened>::New(env, opened_.release())});
    deferred_.Resolve(store);
  }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::FunctionReference store_class_;
  OpenRequest request_;
  absl::Status status_;
  std::unique_ptr<Opened> opened_;
};

class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports) {
    store_class_ = Napi::Persistent(StoreWrap::Define(env));
    DefineAddon(exports, {InstanceMethod("open", &Addon::Open)});
  }

 private:
  // open(dir, options) -> Promise<NativeStore>. lib/index.js has already
  // checked types and resolved paths; errors here are still clear.
  Napi::Value Open(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString() || !info[1].IsObject()) {
      MakeError(env, absl::InvalidArgumentError(
                         "open(dir, options): dir must be a string and "
                         "options an object"))
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Object o = info[1].As<Napi::Object>();
    OpenRequest r;
    r.dir = info[0].As<Napi::String>().Utf8Value();
    auto str = [&](const char* k, std::string* out) {
      Napi::Value v = o.Get(k);
      if (v.IsString()) *out = v.As<Napi::String>().Utf8Value();
    };
    auto num = [&](const char* k, double* out) {
      Napi::Value v = o.Get(k);
      if (!v.IsNumber()) return false;
      *out = v.As<Napi::Number>().DoubleValue();
      return true;
    };
    auto flag = [&](const char* k, bool* out) {
      Napi::Value v = o.Get(k);
      if (v.IsBoolean()) *out = v.As<Napi::Boolean>().Value();
    };
    str("proto", &r.proto_file);
    str("message", &r.message);
    Napi::Value set = o.Get("descriptorSet");
    if (set.IsTypedArray()) {
      Napi::Uint8Array a = set.As<Napi::Uint8Array>();
      r.descriptor_set.assign(reinterpret_cast<const char*>(a.Data()),
                              a.ByteLength());
      r.has_descriptor_set = true;
    }
    Napi::Value dirs = o.Get("includeDirs");
    if (dirs.IsArray()) {
      Napi::Array a = dirs.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); ++i) {
        Napi::Value d = a.Get(i);
        if (d.IsString()) r.include_dirs.push_back(d.As<Napi::String>());
      }
    }
    double x;
    Options& opt = r.options;
    if (num("flushIntervalMs", &x)) opt.flush_interval = absl::Milliseconds(x);
    if (num("sessionTtlMs", &x)) opt.session_ttl = absl::Milliseconds(x);
    if (num("compactionIntervalMs", &x)) {
      opt.compaction_interval = absl::Milliseconds(x);
    }
    if (num("compactionMinLogBytes", &x)) {
      opt.compaction_min_log_bytes = static_cast<uint64_t>(x);
    }
    if (num("maxSegmentBytes", &x)) {
      opt.max_segment_bytes = static_cast<uint64_t>(x);
    }
    if (num("groupCommitMaxWaitMs", &x)) {
      opt.group_commit_max_wait = absl::Milliseconds(x);
    }
    if (num("recoveryThreads", &x))
      opt.recovery_threads = static_cast<size_t>(x);
    if (num("writerThreads", &x)) r.writer_threads = static_cast<size_t>(x);
    flag("createIfMissing", &opt.create_if_missing);
    flag("lazyRecovery", &opt.lazy_recovery);
    flag("backgroundThread", &opt.background_thread);
    std::string s;
    str("defaultDurability", &s);
    if (s == "IMMEDIATE") opt.default_durability = IMMEDIATE;
    if (s == "BATCHED") opt.default_durability = BATCHED;
    s.clear();
    str("recoveryMode", &s);
    if (s == "strict") opt.recovery_mode = walstate::RecoveryMode::kStrict;
    if (s == "salvage") opt.recovery_mode = walstate::RecoveryMode::kSalvage;
    auto* worker = new OpenWorker(env, store_class_.Value(), std::move(r));
    Napi::Promise promise = worker->Promise();
    worker->Queue();
    return promise;
  }

  Napi::FunctionReference store_class_;
};

}  // namespace
}  // namespace node
}  // namespace walstate

using WalstateAddon = walstate::node::Addon;
NODE_API_ADDON(WalstateAddon)
