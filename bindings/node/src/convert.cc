#include "convert.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"

namespace walstate {
namespace node {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

constexpr double kMaxSafeInteger = 9007199254740991.0;  // 2^53 - 1

const char* TypeName(const Napi::Value& v) {
  switch (v.Type()) {
    case napi_undefined:
      return "undefined";
    case napi_null:
      return "null";
    case napi_boolean:
      return "boolean";
    case napi_number:
      return "number";
    case napi_string:
      return "string";
    case napi_symbol:
      return "symbol";
    case napi_function:
      return "function";
    case napi_bigint:
      return "bigint";
    case napi_object:
      return v.IsArray() ? "array" : "object";
    default:
      return "value";
  }
}

absl::Status Mismatch(const FieldDescriptor* f, const char* expected,
                      const Napi::Value& v) {
  return absl::InvalidArgumentError(absl::StrCat("field ", f->full_name(),
                                                 ": expected ", expected,
                                                 ", got ", TypeName(v)));
}

// A JS integer (number or bigint) within [lo, hi] as int64.
bool ToSigned(const Napi::Value& v, int64_t lo, int64_t hi, int64_t* out) {
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(std::trunc(d) == d) || std::fabs(d) > kMaxSafeInteger) return false;
    *out = static_cast<int64_t>(d);
  } else if (v.IsBigInt()) {
    bool lossless = false;
    *out = v.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) return false;
  } else {
    return false;
  }
  return *out >= lo && *out <= hi;
}

bool ToUnsigned(const Napi::Value& v, uint64_t hi, uint64_t* out) {
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(std::trunc(d) == d) || d < 0 || d > kMaxSafeInteger) return false;
    *out = static_cast<uint64_t>(d);
  } else if (v.IsBigInt()) {
    bool lossless = false;
    *out = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) return false;
  } else {
    return false;
  }
  return *out <= hi;
}

bool ToBytes(const Napi::Value& v, std::string* out) {
  if (!v.IsTypedArray()) return false;
  Napi::TypedArray t = v.As<Napi::TypedArray>();
  if (t.TypedArrayType() != napi_uint8_array) return false;
  Napi::Uint8Array a = v.As<Napi::Uint8Array>();
  out->assign(reinterpret_cast<const char*>(a.Data()), a.ByteLength());
  return true;
}

// Sets a singular field (index < 0) or appends to a repeated one.
absl::Status Put(const Napi::Value& v, const FieldDescriptor* f, Message* m,
                 bool add) {
  const Reflection* r = m->GetReflection();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32: {
      int64_t x;
      if (!ToSigned(v, std::numeric_limits<int32_t>::min(),
                    std::numeric_limits<int32_t>::max(), &x)) {
        return Mismatch(f, "an integer in int32 range", v);
      }
      add ? r->AddInt32(m, f, static_cast<int32_t>(x))
          : r->SetInt32(m, f, static_cast<int32_t>(x));
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t x;
      if (!ToSigned(v, std::numeric_limits<int64_t>::min(),
                    std::numeric_limits<int64_t>::max(), &x)) {
        return Mismatch(f, "a bigint (or safe-integer number) in int64 range",
                        v);
      }
      add ? r->AddInt64(m, f, x) : r->SetInt64(m, f, x);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      uint64_t x;
      if (!ToUnsigned(v, std::numeric_limits<uint32_t>::max(), &x)) {
        return Mismatch(f, "an integer in uint32 range", v);
      }
      add ? r->AddUInt32(m, f, static_cast<uint32_t>(x))
          : r->SetUInt32(m, f, static_cast<uint32_t>(x));
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t x;
      if (!ToUnsigned(v, std::numeric_limits<uint64_t>::max(), &x)) {
        return Mismatch(f, "a bigint (or safe-integer number) in uint64 range",
                        v);
      }
      add ? r->AddUInt64(m, f, x) : r->SetUInt64(m, f, x);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT: {
      if (!v.IsNumber()) return Mismatch(f, "a number", v);
      double d = v.As<Napi::Number>().DoubleValue();
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) {
        add ? r->AddDouble(m, f, d) : r->SetDouble(m, f, d);
      } else {
        float x = static_cast<float>(d);
        add ? r->AddFloat(m, f, x) : r->SetFloat(m, f, x);
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      if (!v.IsBoolean()) return Mismatch(f, "a boolean", v);
      bool b = v.As<Napi::Boolean>().Value();
      add ? r->AddBool(m, f, b) : r->SetBool(m, f, b);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      int number;
      if (v.IsString()) {
        const std::string name = v.As<Napi::String>().Utf8Value();
        const auto* e = f->enum_type()->FindValueByName(name);
        if (e == nullptr) {
          return absl::InvalidArgumentError(
              absl::StrCat("field ", f->full_name(), ": ", name,
                           " is not a value of ", f->enum_type()->full_name()));
        }
        number = e->number();
      } else {
        int64_t x;
        if (!ToSigned(v, std::numeric_limits<int32_t>::min(),
                      std::numeric_limits<int32_t>::max(), &x)) {
          return Mismatch(f, "an enum value name (or number)", v);
        }
        number = static_cast<int>(x);
        if (f->enum_type()->file()->syntax() ==
                google::protobuf::FileDescriptor::SYNTAX_PROTO2 &&
            f->enum_type()->FindValueByNumber(number) == nullptr) {
          return absl::InvalidArgumentError(
              absl::StrCat("field ", f->full_name(), ": ", number,
                           " is not a value of ", f->enum_type()->full_name()));
        }
      }
      add ? r->AddEnumValue(m, f, number) : r->SetEnumValue(m, f, number);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string s;
      if (f->type() == FieldDescriptor::TYPE_BYTES) {
        if (!ToBytes(v, &s)) return Mismatch(f, "a Uint8Array", v);
      } else {
        if (!v.IsString()) return Mismatch(f, "a string", v);
        s = v.As<Napi::String>().Utf8Value();
      }
      add ? r->AddString(m, f, std::move(s)) : r->SetString(m, f, std::move(s));
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      if (!v.IsObject() || v.IsArray()) return Mismatch(f, "an object", v);
      Message* sub = add ? r->AddMessage(m, f) : r->MutableMessage(m, f);
      return MessageFromJs(v, sub);
    }
  }
  return absl::InternalError("unhandled field type");
}

// A map key given as a JS property name, converted to the key field's type.
absl::Status PutMapKey(const std::string& key, const FieldDescriptor* kf,
                       Message* entry) {
  const Reflection* r = entry->GetReflection();
  bool ok = true;
  switch (kf->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      r->SetString(entry, kf, key);
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      ok = key == "true" || key == "false";
      r->SetBool(entry, kf, key == "true");
      break;
    case FieldDescriptor::CPPTYPE_INT32: {
      int32_t x;
      ok = absl::SimpleAtoi(key, &x);
      r->SetInt32(entry, kf, x);
      break;
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t x;
      ok = absl::SimpleAtoi(key, &x);
      r->SetInt64(entry, kf, x);
      break;
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      uint32_t x;
      ok = absl::SimpleAtoi(key, &x);
      r->SetUInt32(entry, kf, x);
      break;
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t x;
      ok = absl::SimpleAtoi(key, &x);
      r->SetUInt64(entry, kf, x);
      break;
    }
    default:
      ok = false;
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("map key \"", key, "\" is not a valid ", kf->full_name()));
  }
  return absl::OkStatus();
}

// Own enumerable string keys of `object`.
absl::Status OwnKeys(const Napi::Object& object, Napi::Array* keys) {
  napi_value names;
  napi_status st = napi_get_all_property_names(
      object.Env(), object, napi_key_own_only,
      static_cast<napi_key_filter>(napi_key_enumerable | napi_key_skip_symbols),
      napi_key_numbers_to_strings, &names);
  if (st != napi_ok) return absl::InternalError("cannot list object keys");
  *keys = Napi::Array(object.Env(), names);
  return absl::OkStatus();
}

Napi::Value ScalarToJs(Napi::Env env, const Message& m,
                       const FieldDescriptor* f, int i);

Napi::Value MapToJs(Napi::Env env, const Message& m, const FieldDescriptor* f) {
  const Reflection* r = m.GetReflection();
  const FieldDescriptor* kf = f->message_type()->map_key();
  const FieldDescriptor* vf = f->message_type()->map_value();
  Napi::Object out = Napi::Object::New(env);
  const int n = r->FieldSize(m, f);
  for (int i = 0; i < n; ++i) {
    const Message& entry = r->GetRepeatedMessage(m, f, i);
    const Reflection* er = entry.GetReflection();
    std::string key;
    switch (kf->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        key = er->GetString(entry, kf);
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        key = er->GetBool(entry, kf) ? "true" : "false";
        break;
      case FieldDescriptor::CPPTYPE_INT32:
        key = absl::StrCat(er->GetInt32(entry, kf));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        key = absl::StrCat(er->GetInt64(entry, kf));
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        key = absl::StrCat(er->GetUInt32(entry, kf));
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        key = absl::StrCat(er->GetUInt64(entry, kf));
        break;
      default:
        break;
    }
    out.Set(key, ScalarToJs(env, entry, vf, -1));
  }
  return out;
}

// Field `f` of `m` (element i of a repeated field, or the singular value).
Napi::Value ScalarToJs(Napi::Env env, const Message& m,
                       const FieldDescriptor* f, int i) {
  const Reflection* r = m.GetReflection();
  const bool rep = i >= 0;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return Napi::Number::New(
          env, rep ? r->GetRepeatedInt32(m, f, i) : r->GetInt32(m, f));
    case FieldDescriptor::CPPTYPE_UINT32:
      return Napi::Number::New(
          env, rep ? r->GetRepeatedUInt32(m, f, i) : r->GetUInt32(m, f));
    case FieldDescriptor::CPPTYPE_INT64:
      return Napi::BigInt::New(
          env, rep ? r->GetRepeatedInt64(m, f, i) : r->GetInt64(m, f));
    case FieldDescriptor::CPPTYPE_UINT64:
      return Napi::BigInt::New(
          env, rep ? r->GetRepeatedUInt64(m, f, i) : r->GetUInt64(m, f));
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return Napi::Number::New(
          env, rep ? r->GetRepeatedDouble(m, f, i) : r->GetDouble(m, f));
    case FieldDescriptor::CPPTYPE_FLOAT:
      return Napi::Number::New(
          env, rep ? r->GetRepeatedFloat(m, f, i) : r->GetFloat(m, f));
    case FieldDescriptor::CPPTYPE_BOOL:
      return Napi::Boolean::New(
          env, rep ? r->GetRepeatedBool(m, f, i) : r->GetBool(m, f));
    case FieldDescriptor::CPPTYPE_ENUM: {
      int number =
          rep ? r->GetRepeatedEnumValue(m, f, i) : r->GetEnumValue(m, f);
      const auto* e = f->enum_type()->FindValueByNumber(number);
      if (e == nullptr) return Napi::Number::New(env, number);
      return Napi::String::New(env, e->name());
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& s =
          rep ? r->GetRepeatedStringReference(m, f, i, &scratch)
              : r->GetStringReference(m, f, &scratch);
      if (f->type() == FieldDescriptor::TYPE_BYTES) {
        Napi::Uint8Array a = Napi::Uint8Array::New(env, s.size());
        if (!s.empty()) std::memcpy(a.Data(), s.data(), s.size());
        return a;
      }
      return Napi::String::New(env, s);
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return MessageToJs(
          env, rep ? r->GetRepeatedMessage(m, f, i) : r->GetMessage(m, f));
  }
  return env.Undefined();
}

}  // namespace

absl::Status SetFieldFromJs(const Napi::Value& value, const FieldDescriptor* f,
                            Message* message) {
  const Reflection* r = message->GetReflection();
  r->ClearField(message, f);
  if (value.IsUndefined() || value.IsNull()) return absl::OkStatus();
  if (f->is_map()) {
    if (!value.IsObject() || value.IsArray()) {
      return Mismatch(f, "an object (a map)", value);
    }
    Napi::Object object = value.As<Napi::Object>();
    Napi::Array keys;
    absl::Status s = OwnKeys(object, &keys);
    if (!s.ok()) return s;
    const FieldDescriptor* kf = f->message_type()->map_key();
    const FieldDescriptor* vf = f->message_type()->map_value();
    for (uint32_t i = 0; i < keys.Length(); ++i) {
      Napi::Value k = keys.Get(i);
      Message* entry = r->AddMessage(message, f);
      s = PutMapKey(k.As<Napi::String>().Utf8Value(), kf, entry);
      if (s.ok()) s = Put(object.Get(k), vf, entry, false);
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }
  if (f->is_repeated()) {
    if (!value.IsArray()) return Mismatch(f, "an array", value);
    Napi::Array a = value.As<Napi::Array>();
    const uint32_t n = a.Length();
    for (uint32_t i = 0; i < n; ++i) {
      absl::Status s = Put(a.Get(i), f, message, true);
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }
  return Put(value, f, message, false);
}

absl::Status MessageFromJs(const Napi::Value& value, Message* message,
                           std::vector<const FieldDescriptor*>* set) {
  Napi::Object object = value.As<Napi::Object>();
  Napi::Array keys;
  absl::Status s = OwnKeys(object, &keys);
  if (!s.ok()) return s;
  const google::protobuf::Descriptor* d = message->GetDescriptor();
  const uint32_t n = keys.Length();
  for (uint32_t i = 0; i < n; ++i) {
    Napi::Value k = keys.Get(i);
    const std::string name = k.As<Napi::String>().Utf8Value();
    const FieldDescriptor* f = d->FindFieldByName(name);
    if (f == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(d->full_name(), " has no field \"", name, "\""));
    }
    s = SetFieldFromJs(object.Get(k), f, message);
    if (!s.ok()) return s;
    if (set != nullptr) set->push_back(f);
  }
  return absl::OkStatus();
}

Napi::Object MessageToJs(Napi::Env env, const Message& message) {
  Napi::Object out = Napi::Object::New(env);
  const Reflection* r = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(message, &fields);
  for (const FieldDescriptor* f : fields) {
    Napi::Value v;
    if (f->is_map()) {
      v = MapToJs(env, message, f);
    } else if (f->is_repeated()) {
      const int n = r->FieldSize(message, f);
      Napi::Array a = Napi::Array::New(env, n);
      for (int i = 0; i < n; ++i) a.Set(i, ScalarToJs(env, message, f, i));
      v = a;
    } else {
      v = ScalarToJs(env, message, f, -1);
    }
    out.Set(f->name(), v);
  }
  return out;
}

absl::Status IndexKeyFromJs(const Napi::Value& value, const FieldDescriptor* f,
                            std::string* key) {
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      if (f->type() == FieldDescriptor::TYPE_BYTES) {
        if (!ToBytes(value, key)) return Mismatch(f, "a Uint8Array", value);
        return absl::OkStatus();
      }
      if (!value.IsString()) return Mismatch(f, "a string", value);
      *key = value.As<Napi::String>().Utf8Value();
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_BOOL:
      if (!value.IsBoolean()) return Mismatch(f, "a boolean", value);
      *key = value.As<Napi::Boolean>().Value() ? "true" : "false";
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t x;
      if (!ToSigned(value, std::numeric_limits<int64_t>::min(),
                    std::numeric_limits<int64_t>::max(), &x)) {
        return Mismatch(f, "an integer (number or bigint)", value);
      }
      *key = absl::StrCat(x);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t x;
      if (!ToUnsigned(value, std::numeric_limits<uint64_t>::max(), &x)) {
        return Mismatch(f, "a non-negative integer (number or bigint)", value);
      }
      *key = absl::StrCat(x);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      if (value.IsString()) {
        const std::string name = value.As<Napi::String>().Utf8Value();
        const auto* e = f->enum_type()->FindValueByName(name);
        if (e == nullptr) {
          return absl::InvalidArgumentError(absl::StrCat(
              name, " is not a value of ", f->enum_type()->full_name()));
        }
        *key = absl::StrCat(e->number());
        return absl::OkStatus();
      }
      int64_t x;
      if (!ToSigned(value, std::numeric_limits<int32_t>::min(),
                    std::numeric_limits<int32_t>::max(), &x)) {
        return Mismatch(f, "an enum value name (or number)", value);
      }
      *key = absl::StrCat(x);
      return absl::OkStatus();
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("field ", f->full_name(), " cannot be indexed"));
  }
}

}  // namespace node
}  // namespace walstate
