#include "convert.h"

#include <algorithm>
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

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

namespace {

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

}  // namespace

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

namespace {

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

namespace {

// A field's description (convert.h); messages are numbered in `order`.
Napi::Object DescribeField(
    Napi::Env env, const FieldDescriptor* f,
    std::vector<const google::protobuf::Descriptor*>* order) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", f->name());
  o.Set("fullName", f->full_name());
  o.Set("number", f->number());
  o.Set("type", static_cast<int>(f->type()));
  o.Set("index", f->index());
  o.Set("repeated", f->is_repeated() && !f->is_map());
  int message = -1;
  if (f->is_map()) {
    o.Set("key", DescribeField(env, f->message_type()->map_key(), order));
    o.Set("value", DescribeField(env, f->message_type()->map_value(), order));
  } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
    auto it = std::find(order->begin(), order->end(), f->message_type());
    message = static_cast<int>(it - order->begin());
    if (it == order->end()) order->push_back(f->message_type());
  }
  o.Set("message", message);
  if (f->cpp_type() == FieldDescriptor::CPPTYPE_ENUM) {
    const google::protobuf::EnumDescriptor* e = f->enum_type();
    o.Set("enumName", e->full_name());
    Napi::Object values = Napi::Object::New(env);
    for (int i = 0; i < e->value_count(); ++i) {
      values.Set(e->value(i)->name(), e->value(i)->number());
    }
    o.Set("enumValues", values);
    o.Set("closedEnum", e->file()->syntax() ==
                            google::protobuf::FileDescriptor::SYNTAX_PROTO2);
  }
  return o;
}

}  // namespace

Napi::Array DescribeSchema(Napi::Env env,
                           const google::protobuf::Descriptor* root) {
  std::vector<const google::protobuf::Descriptor*> order = {root};
  Napi::Array out = Napi::Array::New(env);
  // `order` grows as fields name message types not seen yet.
  for (size_t m = 0; m < order.size(); ++m) {
    const google::protobuf::Descriptor* d = order[m];
    Napi::Array fields = Napi::Array::New(env, d->field_count());
    for (int i = 0; i < d->field_count(); ++i) {
      fields.Set(i, DescribeField(env, d->field(i), &order));
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("fullName", d->full_name());
    o.Set("fields", fields);
    out.Set(static_cast<uint32_t>(m), o);
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
