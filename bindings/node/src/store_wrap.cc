#include "store_wrap.h"

#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "convert.h"

namespace walstate {
namespace node {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

Napi::Value ThrowStatus(Napi::Env env, const absl::Status& s) {
  MakeError(env, s).ThrowAsJavaScriptException();
  return env.Undefined();
}

bool SessionArg(const Napi::CallbackInfo& info, std::string* session) {
  if (!info[0].IsString()) {
    ThrowStatus(info.Env(),
                absl::InvalidArgumentError("sessionId must be a string"));
    return false;
  }
  *session = info[0].As<Napi::String>().Utf8Value();
  return true;
}

// An op whose Promise resolves to undefined, or rejects with its status.
Committer::Op StatusOp(std::function<absl::Status()> fn) {
  return [fn = std::move(fn)]() -> absl::StatusOr<uint64_t> {
    absl::Status st = fn();
    if (!st.ok()) return st;
    return 0;
  };
}

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

Napi::Value TimeMs(Napi::Env env, absl::Time t) {
  if (t == absl::InfinitePast()) return env.Null();
  return Napi::Number::New(env, static_cast<double>(absl::ToUnixMillis(t)));
}

Napi::Value StatusObject(Napi::Env env, const absl::Status& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("ok", s.ok());
  o.Set("code", absl::StatusCodeToString(s.code()));
  o.Set("message", std::string(s.message()));
  return o;
}

}  // namespace

Napi::Error MakeError(Napi::Env env, const absl::Status& status) {
  Napi::Error e = Napi::Error::New(env, std::string(status.message()));
  e.Set("code", absl::StatusCodeToString(status.code()));
  return e;
}

Napi::Function StoreWrap::Define(Napi::Env env) {
  return DefineClass(
      env, "NativeStore",
      {
          InstanceMethod("updateBytes", &StoreWrap::UpdateBytes),
          InstanceMethod("schema", &StoreWrap::Schema),
          InstanceMethod("delete", &StoreWrap::Delete),
          InstanceMethod("get", &StoreWrap::Get),
          InstanceMethod("has", &StoreWrap::Has),
          InstanceMethod("keys", &StoreWrap::Keys),
          InstanceMethod("lookup", &StoreWrap::Lookup),
          InstanceMethod("flush", &StoreWrap::Flush),
          InstanceMethod("compact", &StoreWrap::Compact),
          InstanceMethod("expireIdle", &StoreWrap::ExpireIdle),
          InstanceMethod("stats", &StoreWrap::Stats),
          InstanceMethod("health", &StoreWrap::Health),
          InstanceMethod("approximateMemoryUsage",
                         &StoreWrap::ApproximateMemoryUsage),
          InstanceMethod("recoveryReport", &StoreWrap::RecoveryReport),
          InstanceMethod("close", &StoreWrap::Close),
          InstanceMethod("release", &StoreWrap::Release),
          InstanceMethod("closeSync", &StoreWrap::CloseSync),
          InstanceMethod("dir", &StoreWrap::Dir),
      });
}

StoreWrap::StoreWrap(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<StoreWrap>(info), env_(info.Env()) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsExternal()) {
    Napi::TypeError::New(env, "use Store.open()").ThrowAsJavaScriptException();
    return;
  }
  opened_.reset(info[0].As<Napi::External<Opened>>().Data());
  const google::protobuf::Descriptor* d =
      opened_->schema->prototype->GetDescriptor();
  immediate_.resize(d->field_count());
  for (int i = 0; i < d->field_count(); ++i) {
    Durability t = d->field(i)->options().GetExtension(walstate::durability);
    if (t == DURABILITY_DEFAULT) t = opened_->default_durability;
    immediate_[i] = t == IMMEDIATE;
    if (immediate_[i] && i < 64) immediate_mask_ |= uint64_t{1} << i;
  }
  committer_ = Committer::Create(env, info.This().As<Napi::Object>(),
                                 opened_->writer_threads, &MakeError);
  // Registered after the committer's wake-up handle, so it runs before the
  // runtime tears that handle down.
  hook_ = napi_add_env_cleanup_hook(env, &StoreWrap::AtExit, this) == napi_ok;
}

StoreWrap::~StoreWrap() {
  if (hook_) napi_remove_env_cleanup_hook(env_, &StoreWrap::AtExit, this);
  hook_ = false;
  if (opened_ != nullptr && opened_->engine != nullptr) {
    ShutdownSync(Napi::Env(env_), /*settle=*/false).IgnoreError();
  }
}

void StoreWrap::AtExit(void* arg) {
  auto* self = static_cast<StoreWrap*>(arg);
  self->hook_ = false;
  absl::Status s = self->ShutdownSync(Napi::Env(self->env_), false);
  if (!s.ok()) {
    fprintf(stderr, "walstate: closing %s at exit failed: %s\n",
            self->opened_->dir.c_str(), s.ToString().c_str());
  }
}

absl::Status StoreWrap::ShutdownSync(Napi::Env env, bool settle) {
  closing_ = true;
  if (committer_ != nullptr) {
    committer_->Stop(env, settle);
    committer_ = nullptr;
  }
  absl::Status s;
  if (opened_ != nullptr && opened_->engine != nullptr) {
    // A queued close() has run by now (Stop waited for it).
    if (!close_queued_) s = opened_->engine->Close();
    opened_->engine.reset();
  }
  return s;
}

bool StoreWrap::CheckOpen(Napi::Env env) {
  if (!closing_) return true;
  ThrowStatus(env, absl::FailedPreconditionError(absl::StrCat(
                       "the store in ", opened_->dir,
                       " is closed; open it again with Store.open")));
  return false;
}

Napi::Value StoreWrap::Schema(const Napi::CallbackInfo& info) {
  return DescribeSchema(info.Env(),
                        opened_->schema->prototype->GetDescriptor());
}

Napi::Value StoreWrap::UpdateBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  std::string session;
  if (!SessionArg(info, &session)) return env.Undefined();
  bool typed = false;
  napi_typedarray_type type;
  size_t byte_length = 0;
  void* data = nullptr;
  if (napi_is_typedarray(env, info[1], &typed) != napi_ok || !typed ||
      napi_get_typedarray_info(env, info[1], &type, &byte_length, &data,
                               nullptr, nullptr) != napi_ok ||
      type != napi_uint8_array || !info[2].IsNumber() ||
      info[2].As<Napi::Number>().Int64Value() < 0 ||
      static_cast<uint64_t>(info[2].As<Napi::Number>().Int64Value()) >
          byte_length ||
      !info[3].IsNumber() || !info[4].IsNumber()) {
    return ThrowStatus(env, absl::InvalidArgumentError(
                                "updateBytes: (sessionId, Uint8Array, length, "
                                "maskLo, maskHi, durability?, indexes?)"));
  }
  const absl::string_view bytes(
      static_cast<const char*>(data),
      static_cast<size_t>(info[2].As<Napi::Number>().Int64Value()));
  const uint64_t mask =
      (uint64_t{info[4].As<Napi::Number>().Uint32Value()} << 32) |
      info[3].As<Napi::Number>().Uint32Value();
  UpdateOptions options;
  if (info.Length() > 5 && info[5].IsString()) {
    const std::string tier = info[5].As<Napi::String>().Utf8Value();
    if (tier == "IMMEDIATE") {
      options.durability = IMMEDIATE;
    } else if (tier == "BATCHED") {
      options.durability = BATCHED;
    } else {
      return ThrowStatus(env, absl::InvalidArgumentError(absl::StrCat(
                                  "durability must be \"IMMEDIATE\" or "
                                  "\"BATCHED\", not \"",
                                  tier, "\"")));
    }
  }
  const google::protobuf::Descriptor* d =
      opened_->schema->prototype->GetDescriptor();
  bool immediate = (mask & immediate_mask_) != 0;
  // The field names, made once per mask; fields past 63 (rare) per call.
  std::vector<std::string> built;
  const std::vector<std::string>* fields = &built;
  if (info.Length() > 6 && info[6].IsArray()) {
    Napi::Array high = info[6].As<Napi::Array>();
    for (int i = 0; i < 64 && i < d->field_count(); ++i) {
      if (mask & (uint64_t{1} << i)) built.push_back(d->field(i)->name());
    }
    for (uint32_t i = 0; i < high.Length(); ++i) {
      const int64_t index = high.Get(i).As<Napi::Number>().Int64Value();
      if (index < 0 || index >= d->field_count()) {
        return ThrowStatus(env, absl::InvalidArgumentError(absl::StrCat(
                                    "updateBytes: no field index ", index)));
      }
      built.push_back(d->field(index)->name());
      immediate = immediate || immediate_[index];
    }
  } else {
    auto it = names_by_mask_.find(mask);
    if (it == names_by_mask_.end()) {
      constexpr size_t kMaxMasks = 4096;
      if (names_by_mask_.size() >= kMaxMasks) names_by_mask_.clear();
      std::vector<std::string> names;
      for (int i = 0; i < 64 && i < d->field_count(); ++i) {
        if (mask & (uint64_t{1} << i)) names.push_back(d->field(i)->name());
      }
      it = names_by_mask_.emplace(mask, std::move(names)).first;
    }
    fields = &it->second;
  }
  if (options.durability != DURABILITY_DEFAULT) {
    immediate = options.durability == IMMEDIATE;
  }
  Engine* engine = opened_->engine.get();
  if (!immediate) {
    // BATCHED only: applied in memory now, no I/O on this thread.
    absl::Status s = engine->UpdateSerialized(session, bytes, *fields, options);
    if (!s.ok()) return ThrowStatus(env, s);
    return env.Undefined();
  }
  return committer_->Submit(
      env,
      [engine, session = std::move(session), bytes = std::string(bytes),
       fields = *fields, options]() -> absl::StatusOr<uint64_t> {
        absl::Status st =
            engine->UpdateSerialized(session, bytes, fields, options);
        if (!st.ok()) return st;
        return 0;
      },
      Committer::ResolveAs::kUndefined);
}

Napi::Value StoreWrap::Delete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  std::string session;
  if (!SessionArg(info, &session)) return env.Undefined();
  Engine* engine = opened_->engine.get();
  return committer_->Submit(
      env,
      [engine, session = std::move(session)]() -> absl::StatusOr<uint64_t> {
        absl::Status st = engine->Delete(session);
        if (absl::IsNotFound(st)) return 0;
        if (!st.ok()) return st;
        return 1;
      },
      Committer::ResolveAs::kBoolean);
}

Napi::Value StoreWrap::Get(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  std::string session;
  if (!SessionArg(info, &session)) return env.Undefined();
  std::unique_ptr<Message> state(opened_->schema->prototype->New());
  absl::Status s = opened_->engine->Get(session, state.get());
  if (absl::IsNotFound(s)) return env.Undefined();
  if (!s.ok()) return ThrowStatus(env, s);
  return MessageToJs(env, *state);
}

Napi::Value StoreWrap::Has(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  std::string session;
  if (!SessionArg(info, &session)) return env.Undefined();
  return Napi::Boolean::New(env, opened_->engine->Contains(session));
}

Napi::Value StoreWrap::Keys(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  std::vector<std::string> ids;
  opened_->engine->ForEach([&ids](absl::string_view session, const Message&) {
    ids.emplace_back(session);
  });
  Napi::Array out = Napi::Array::New(env, ids.size());
  for (size_t i = 0; i < ids.size(); ++i) out.Set(i, ids[i]);
  return out;
}

Napi::Value StoreWrap::Lookup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  if (!info[0].IsString()) {
    return ThrowStatus(env, absl::InvalidArgumentError(
                                "lookup: the field name must be a string"));
  }
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  const FieldDescriptor* f =
      opened_->schema->prototype->GetDescriptor()->FindFieldByName(name);
  if (f == nullptr) {
    return ThrowStatus(env, absl::InvalidArgumentError(absl::StrCat(
                                "lookup: no field \"", name, "\" in ",
                                opened_->schema->prototype->GetTypeName())));
  }
  std::string key;
  absl::Status s = IndexKeyFromJs(info[1], f, &key);
  if (!s.ok()) return ThrowStatus(env, s);
  absl::StatusOr<std::vector<std::string>> found =
      opened_->engine->Lookup(name, key);
  if (!found.ok()) return ThrowStatus(env, found.status());
  Napi::Array out = Napi::Array::New(env, found->size());
  for (size_t i = 0; i < found->size(); ++i) out.Set(i, (*found)[i]);
  return out;
}

Napi::Value StoreWrap::Flush(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  Engine* engine = opened_->engine.get();
  return committer_->Submit(env, StatusOp([engine] { return engine->Flush(); }),
                            Committer::ResolveAs::kUndefined);
}

Napi::Value StoreWrap::Compact(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  Engine* engine = opened_->engine.get();
  return committer_->Submit(env,
                            StatusOp([engine] { return engine->Compact(); }),
                            Committer::ResolveAs::kUndefined);
}

Napi::Value StoreWrap::ExpireIdle(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  Engine* engine = opened_->engine.get();
  if (info.Length() == 0 || info[0].IsUndefined()) {
    return committer_->Submit(
        env, [engine]() { return engine->ExpireIdleSessions(); },
        Committer::ResolveAs::kNumber);
  }
  const double ms =
      info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
  if (!(ms >= 0)) {  // also NaN
    return ThrowStatus(env, absl::InvalidArgumentError(
                                "expireIdle(ms): ms must be a number >= 0 (the "
                                "idle age in milliseconds), or left out for "
                                "the store's sessionTtlMs"));
  }
  const absl::Duration idle = absl::Milliseconds(ms);
  return committer_->Submit(
      env, [engine, idle]() { return engine->ExpireIdleSessions(idle); },
      Committer::ResolveAs::kNumber);
}

Napi::Value StoreWrap::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  const walstate::Stats st = opened_->engine->stats();
  Napi::Object o = Napi::Object::New(env);
  auto n = [&](const char* k, uint64_t v) {
    o.Set(k, Napi::Number::New(env, static_cast<double>(v)));
  };
  n("sessions", st.sessions);
  n("dirtySessions", st.dirty_sessions);
  n("lazySessions", st.lazy_sessions);
  n("lazyBytes", st.lazy_bytes);
  n("lazyMappedBytes", st.lazy_mapped_bytes);
  n("lastLsn", st.last_lsn);
  n("durableLsn", st.durable_lsn);
  n("logBytes", st.log_bytes);
  n("logSegments", st.log_segments);
  n("logBytesSinceSnapshot", st.log_bytes_since_snapshot);
  n("snapshotBytes", st.snapshot_bytes);
  n("snapshotLsn", st.snapshot_lsn);
  o.Set("snapshotTimeMs", TimeMs(env, st.snapshot_time));
  n("snapshotsWritten", st.snapshots_written);
  n("fsyncs", st.fsyncs);
  n("syncedRecords", st.synced_records);
  n("groupCommitWaits", st.group_commit_waits);
  n("groupCommitWaitsInVain", st.group_commit_waits_in_vain);
  n("immediateUpdates", st.immediate_updates);
  n("batchedUpdates", st.batched_updates);
  n("deletes", st.deletes);
  n("expired", st.expired);
  n("ticks", st.ticks);
  n("lastTickSessions", st.last_tick_sessions);
  n("lastTickYields", st.last_tick_yields);
  o.Set("lastTickTimeMs", TimeMs(env, st.last_tick_time));
  o.Set("lastTickDurationMs", Ms(st.last_tick_duration));
  o.Set("lastTickStatus", StatusObject(env, st.last_tick_status));
  o.Set("lastCompactionStatus", StatusObject(env, st.last_compaction_status));
  o.Set("meanGroupCommitSize", st.mean_group_commit_size());
  return o;
}

Napi::Value StoreWrap::ApproximateMemoryUsage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  return Napi::Number::New(
      env, static_cast<double>(opened_->engine->ApproximateMemoryUsage()));
}

Napi::Value StoreWrap::Health(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  return StatusObject(env, opened_->engine->health());
}

Napi::Value StoreWrap::RecoveryReport(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  const walstate::RecoveryReport& r = opened_->engine->recovery_report();
  Napi::Object o = Napi::Object::New(env);
  auto n = [&](const char* k, uint64_t v) {
    o.Set(k, Napi::Number::New(env, static_cast<double>(v)));
  };
  o.Set("snapshotFile", r.snapshot_file);
  n("snapshotLsn", r.snapshot_lsn);
  n("snapshotSessions", r.snapshot_sessions);
  o.Set("fellBack", r.fell_back);
  o.Set("fallbackReason", r.fallback_reason);
  n("segmentsRead", r.segments_read);
  n("recordsReplayed", r.records_replayed);
  n("bytesReplayed", r.bytes_replayed);
  n("bytesSkipped", r.bytes_skipped);
  o.Set("lazyReplay", r.lazy_replay);
  n("ticksCommitted", r.ticks_committed);
  n("ticksAborted", r.ticks_aborted);
  n("tornBytesDropped", r.torn_bytes_dropped);
  o.Set("tornFile", r.torn_file);
  n("tornOffset", r.torn_offset);
  n("lastLsn", r.last_lsn);
  n("sessions", r.sessions);
  o.Set("durationMs", Ms(r.duration));
  o.Set("snapshotDurationMs", Ms(r.snapshot_duration));
  o.Set("replayDurationMs", Ms(r.replay_duration));
  o.Set("indexDurationMs", Ms(r.index_duration));
  Napi::Array problems = Napi::Array::New(env, r.problems.size());
  for (size_t i = 0; i < r.problems.size(); ++i) {
    const walstate::Problem& p = r.problems[i];
    Napi::Object po = Napi::Object::New(env);
    po.Set("kind", walstate::ProblemKindName(p.kind));
    po.Set("file", p.file);
    po.Set("offset", Napi::Number::New(env, static_cast<double>(p.offset)));
    po.Set("bytes", Napi::Number::New(env, static_cast<double>(p.bytes)));
    po.Set("detail", p.detail);
    problems.Set(i, po);
  }
  o.Set("problems", problems);
  o.Set("text", r.ToString());
  return o;
}

Napi::Value StoreWrap::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  closing_ = true;
  close_queued_ = true;
  Engine* engine = opened_->engine.get();
  return committer_->Submit(env, StatusOp([engine] { return engine->Close(); }),
                            Committer::ResolveAs::kUndefined,
                            /*barrier=*/true);
}

Napi::Value StoreWrap::Release(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (hook_) napi_remove_env_cleanup_hook(env_, &StoreWrap::AtExit, this);
  hook_ = false;
  if (committer_ != nullptr) {
    committer_->Stop(env, /*settle=*/true);
    committer_ = nullptr;
  }
  if (opened_ != nullptr) opened_->engine.reset();  // Close already ran
  return env.Undefined();
}

Napi::Value StoreWrap::CloseSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (opened_ == nullptr || opened_->engine == nullptr) {
    return env.Undefined();
  }
  if (hook_) napi_remove_env_cleanup_hook(env_, &StoreWrap::AtExit, this);
  hook_ = false;
  absl::Status s = ShutdownSync(env, /*settle=*/true);
  if (!s.ok()) return ThrowStatus(env, s);
  return env.Undefined();
}

Napi::Value StoreWrap::Dir(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), opened_->dir);
}

}  // namespace node
}  // namespace walstate
