#include "tools/walctl/decode.h"

#include <algorithm>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "engine/log/format.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/empty.pb.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/type_resolver_util.h"
#include "proto/walstate/record.pb.h"

namespace walstate {
namespace walctl {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

template <typename P>
bool ParsePayload(absl::string_view payload, P* proto) {
  return proto->ParseFromArray(payload.data(),
                               static_cast<int>(payload.size()));
}

std::string ReasonName(record::Delete::Reason reason) {
  switch (reason) {
    case record::Delete::API:
      return "api";
    case record::Delete::EXPIRED:
      return "expired";
    default:
      return "unspecified";
  }
}

std::string SnapshotRefText(const record::Manifest::SnapshotRef& ref) {
  if (ref.file().empty()) return "none";
  std::string log_position;
  if (ref.log_segment() != 0) {
    log_position =
        absl::StrCat(", lsn ", ref.lsn(), " at segment ", ref.log_segment(),
                     " offset ", ref.log_offset());
  }
  return absl::StrCat(ref.file(), " (lsn ", ref.lsn(), ", ",
                      Count(ref.sessions(), "session"), ", ", ref.bytes(),
                      " bytes", log_position, ")");
}

std::string SnapshotRefJson(const record::Manifest::SnapshotRef& ref) {
  if (ref.file().empty()) return "null";
  return JsonObject()
      .Add("file", ref.file())
      .Add("lsn", static_cast<uint64_t>(ref.lsn()))
      .Add("sessions", static_cast<uint64_t>(ref.sessions()))
      .Add("bytes", static_cast<uint64_t>(ref.bytes()))
      .Add("log_segment", static_cast<uint64_t>(ref.log_segment()))
      .Add("log_offset", static_cast<uint64_t>(ref.log_offset()))
      .Build();
}

}  // namespace

std::string SchemaTypeName(const std::string& blob) {
  record::Schema schema;
  if (blob.empty() || !schema.ParseFromString(blob)) return "";
  return schema.message_type();
}

const Schema* Decoder::SchemaFor(const std::string& blob, std::string* error) {
  if (blob.empty()) {
    if (error != nullptr) *error = "no schema in the file header";
    return nullptr;
  }
  auto it = schemas_.find(blob);
  if (it == schemas_.end()) {
    CachedSchema cached;
    absl::StatusOr<std::unique_ptr<Schema>> schema = Schema::FromBlob(blob);
    if (schema.ok()) {
      cached.schema = std::move(*schema);
    } else {
      cached.error = std::string(schema.status().message());
    }
    it = schemas_.emplace(blob, std::move(cached)).first;
  }
  if (it->second.schema == nullptr && error != nullptr) {
    *error = it->second.error;
  }
  return it->second.schema.get();
}

std::string Decoder::SingleLine(const Message& m) const {
  google::protobuf::TextFormat::Printer printer;
  printer.SetSingleLineMode(true);
  printer.SetUseUtf8StringEscaping(true);
  if (truncate_strings_ > 0) {
    printer.SetTruncateStringFieldLongerThan(
        static_cast<int64_t>(truncate_strings_));
  }
  std::string out;
  printer.PrintToString(m, &out);
  // Single-line mode leaves a trailing space after the last field.
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::string Decoder::StateText(const Message& state) const {
  return absl::StrCat("{", SingleLine(state), "}");
}

std::string Decoder::StateJson(const Message& state) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(state, &out, options).ok()) {
    return "null";
  }
  return out;
}

std::string Decoder::Json(const Message& state) const {
  const google::protobuf::Descriptor* d = state.GetDescriptor();
  const google::protobuf::DescriptorPool* pool = d->file()->pool();
  std::unique_ptr<google::protobuf::util::TypeResolver>& resolver =
      resolvers_[pool];
  if (resolver == nullptr) {
    resolver.reset(google::protobuf::util::NewTypeResolverForDescriptorPool(
        "type.googleapis.com", pool));
  }
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string out;
  if (!google::protobuf::util::BinaryToJsonString(
           resolver.get(), "type.googleapis.com/" + d->full_name(),
           state.SerializeAsString(), &out, options)
           .ok()) {
    return "null";
  }
  return out;
}

std::string Decoder::StateTextMultiLine(const Message& state) {
  google::protobuf::TextFormat::Printer printer;
  printer.SetUseUtf8StringEscaping(true);
  std::string out;
  printer.PrintToString(state, &out);
  return out;
}

void Decoder::DecodeUpdate(absl::string_view payload, const Schema* schema,
                           Render render, DecodedRecord* out) const {
  record::Update update;
  if (!ParsePayload(payload, &update)) {
    out->error = "payload does not parse as walstate.record.Update";
    return;
  }
  out->has_session = true;
  out->session = update.session();
  out->json.Add("session", update.session());
  if (update.tick() != 0) {
    out->json.Add("tick", static_cast<uint64_t>(update.tick()));
  }
  std::vector<uint32_t> numbers(update.fields().begin(), update.fields().end());
  std::string tick_text =
      update.tick() != 0 ? absl::StrCat("tick=", update.tick(), " ") : "";

  if (schema == nullptr) {
    if (render == Render::kCheck) return;
    // No schema: show field numbers and the raw values (unknown fields).
    google::protobuf::Empty raw;
    ParsePayload(update.values(), &raw);
    std::vector<std::string> nums;
    for (uint32_t n : numbers) nums.push_back(absl::StrCat(n));
    out->text = absl::StrCat(tick_text, "fields=[", absl::StrJoin(nums, ","),
                             "] values {", SingleLine(raw), "}");
    out->json.AddRaw("fields",
                     absl::StrCat("[", absl::StrJoin(nums, ","), "]"));
    out->json.Add("values_hex", Hex(update.values()));
    return;
  }

  std::unique_ptr<Message> values = schema->NewMessage();
  if (!ParsePayload(update.values(), values.get())) {
    out->error =
        absl::StrCat("values of session ", QuoteSession(update.session()),
                     " do not parse as ", schema->descriptor()->full_name());
    return;
  }
  if (render == Render::kCheck) return;
  // Keep only the listed fields: they are the change; anything else in
  // `values` is not applied by recovery.
  const Reflection* reflection = values->GetReflection();
  std::set<uint32_t> listed(numbers.begin(), numbers.end());
  std::vector<const FieldDescriptor*> present;
  reflection->ListFields(*values, &present);
  for (const FieldDescriptor* f : present) {
    if (listed.count(static_cast<uint32_t>(f->number())) == 0) {
      reflection->ClearField(values.get(), f);
    }
  }
  std::vector<std::string> cleared;
  std::vector<std::string> unknown;
  for (uint32_t n : numbers) {
    const FieldDescriptor* f =
        schema->descriptor()->FindFieldByNumber(static_cast<int>(n));
    if (f == nullptr) {
      // A newer schema's field: its value stays among the unknown fields.
      unknown.push_back(absl::StrCat(n));
      continue;
    }
    bool set = f->is_repeated() ? reflection->FieldSize(*values, f) > 0
                                : reflection->HasField(*values, f);
    if (!set) cleared.push_back(f->name());
  }
  if (render == Render::kJson) {
    out->json.AddRaw("set", Json(*values));
    out->json.AddRaw("clear", JsonStringArray(cleared));
    if (!unknown.empty()) {
      out->json.AddRaw("unknown_fields",
                       absl::StrCat("[", absl::StrJoin(unknown, ","), "]"));
    }
    return;
  }
  std::string text = tick_text;
  std::string set_text = SingleLine(*values);
  if (!set_text.empty() || cleared.empty()) {
    absl::StrAppend(&text, "set {", set_text, "}");
  }
  if (!cleared.empty()) {
    absl::StrAppend(&text, text.size() > tick_text.size() ? " " : "", "clear [",
                    absl::StrJoin(cleared, ","), "]");
  }
  if (!unknown.empty()) {
    absl::StrAppend(&text, " unknown-fields [", absl::StrJoin(unknown, ","),
                    "]");
  }
  out->text = text;
}

DecodedRecord Decoder::Decode(uint8_t type, absl::string_view payload,
                              uint64_t lsn, const Schema* schema,
                              Render render) const {
  DecodedRecord out;
  switch (type) {
    case log::kUpdate:
      out.tier = "immediate";
      DecodeUpdate(payload, schema, render, &out);
      break;
    case log::kTickEntry:
      out.tier = "batched";
      DecodeUpdate(payload, schema, render, &out);
      break;
    case log::kDelete: {
      record::Delete del;
      if (!ParsePayload(payload, &del)) {
        out.error = "payload does not parse as walstate.record.Delete";
        break;
      }
      out.has_session = true;
      out.session = del.session();
      out.text = absl::StrCat("reason=", ReasonName(del.reason()));
      out.json.Add("session", del.session())
          .Add("reason", ReasonName(del.reason()));
      break;
    }
    case log::kTickBegin:
      if (!payload.empty()) {
        out.error = "tick-begin record with a non-empty payload";
        break;
      }
      out.text = absl::StrCat("tick=", lsn);
      out.json.Add("tick", lsn);
      break;
    case log::kTickCommit:
    case log::kTickAbort: {
      record::TickEnd end;
      if (!ParsePayload(payload, &end)) {
        out.error = "payload does not parse as walstate.record.TickEnd";
        break;
      }
      out.text = absl::StrCat("tick=", end.tick());
      out.json.Add("tick", static_cast<uint64_t>(end.tick()));
      if (type == log::kTickCommit) {
        absl::StrAppend(&out.text, " entries=", end.entries());
        out.json.Add("entries", static_cast<uint64_t>(end.entries()));
      }
      break;
    }
    case log::kSnapshotSession: {
      record::SessionState state;
      if (!ParsePayload(payload, &state)) {
        out.error = "payload does not parse as walstate.record.SessionState";
        break;
      }
      out.has_session = true;
      out.session = state.session();
      out.json.Add("session", state.session());
      // When the session was captured: a snapshot taken while updates go on
      // holds each session as of its own capture LSN, which may be after the
      // snapshot's LSN.
      std::string captured;
      if (state.lsn() != 0) {
        captured = absl::StrCat("captured-lsn=", state.lsn(), " ");
        out.json.Add("captured_lsn", static_cast<uint64_t>(state.lsn()));
      }
      if (schema == nullptr) {
        if (render == Render::kCheck) break;
        google::protobuf::Empty raw;
        ParsePayload(state.state(), &raw);
        out.text = absl::StrCat(captured, "state {", SingleLine(raw), "}");
        out.json.Add("state_hex", Hex(state.state()));
        break;
      }
      std::unique_ptr<Message> m = schema->NewMessage();
      if (!ParsePayload(state.state(), m.get())) {
        out.error = absl::StrCat(
            "state of session ", QuoteSession(state.session()),
            " does not parse as ", schema->descriptor()->full_name());
        break;
      }
      if (render == Render::kText) {
        out.text = absl::StrCat(captured, "state ", StateText(*m));
      } else if (render == Render::kJson) {
        out.json.AddRaw("state", Json(*m));
      }
      break;
    }
    case log::kSnapshotEnd: {
      record::SnapshotEnd end;
      if (!ParsePayload(payload, &end)) {
        out.error = "payload does not parse as walstate.record.SnapshotEnd";
        break;
      }
      out.text = absl::StrCat("sessions=", end.sessions(),
                              " snapshot-lsn=", end.lsn());
      out.json.Add("sessions", static_cast<uint64_t>(end.sessions()))
          .Add("snapshot_lsn", static_cast<uint64_t>(end.lsn()));
      break;
    }
    case log::kManifest: {
      record::Manifest manifest;
      if (!ParsePayload(payload, &manifest)) {
        out.error = "payload does not parse as walstate.record.Manifest";
        break;
      }
      out.text =
          absl::StrCat("generation=", manifest.generation(),
                       " current=", SnapshotRefText(manifest.current()),
                       " previous=", SnapshotRefText(manifest.previous()));
      out.json.Add("generation", static_cast<uint64_t>(manifest.generation()))
          .AddRaw("current", SnapshotRefJson(manifest.current()))
          .AddRaw("previous", SnapshotRefJson(manifest.previous()));
      break;
    }
    case kSalvageFillerType:
      out.text = "salvage-filler (a record lost to damage; recovery skips it)";
      out.json.Add("filler", true);
      break;
    default:
      if (log::IsOptionalType(type)) {
        out.text = "(optional record type, skipped by recovery)";
      } else {
        out.error = absl::StrCat("unknown required record type ",
                                 static_cast<int>(type));
      }
      break;
  }
  if (!out.error.empty()) out.text = absl::StrCat("UNDECODABLE: ", out.error);
  return out;
}

}  // namespace walctl
}  // namespace walstate
