#include "tools/walctl/checks.h"

#include "absl/strings/str_cat.h"
#include "engine/log/format.h"

namespace walstate {
namespace walctl {
namespace {

Finding Damage(const std::string& file, uint64_t offset, uint64_t bytes,
               const std::string& kind, std::string detail) {
  Finding f;
  f.severity = Finding::Severity::kDamage;
  f.kind = kind;
  f.file = file;
  f.offset = offset;
  f.bytes = bytes;
  f.detail = std::move(detail);
  return f;
}

}  // namespace

SnapshotCheck CheckSnapshot(FileSystem* fs, const std::string& dir,
                            const std::string& name, uint64_t lsn,
                            Decoder* decoder,
                            const std::function<void(uint64_t)>& on_progress) {
  SnapshotCheck check;
  check.file = name;
  check.lsn = lsn;
  // The header first: its schema decodes the session states.
  const Schema* schema = nullptr;
  absl::StatusOr<HeaderInfo> info = ReadHeader(fs, JoinPath(dir, name));
  if (info.ok() && info->status == log::HeaderStatus::kOk) {
    const log::FileHeader& h = info->header;
    if (h.kind != log::FileKind::kSnapshot || h.file_number != lsn) {
      check.findings.push_back(
          Damage(name, 0, 0, "snapshot",
                 absl::StrCat("file header describes ", FileKindName(h.kind),
                              " ", h.file_number, ", not the snapshot at lsn ",
                              lsn, " its name says (a renamed file?)")));
    }
    std::string error;
    schema = decoder->SchemaFor(h.schema, &error);
    if (schema == nullptr && !h.schema.empty()) {
      check.findings.push_back(
          Damage(name, 0, 0, "undecodable",
                 absl::StrCat("stored schema does not load: ", error)));
    }
  }
  bool end_seen = false;
  uint64_t end_offset = 0;
  FileScanResult scan = ScanFile(fs, dir, name, [&](const log::Record& record) {
    if (on_progress) on_progress(record.offset + record.framed_size);
    if (end_seen) {
      check.findings.push_back(Damage(
          name, record.offset, record.framed_size, "snapshot",
          absl::StrCat("record after the snapshot's end record (at offset ",
                       end_offset, ")")));
      return;
    }
    if (record.type == log::kSnapshotSession) {
      check.sessions++;
    } else if (record.type == log::kSnapshotEnd) {
      end_seen = true;
      end_offset = record.offset;
    } else if (!log::IsOptionalType(record.type)) {
      check.findings.push_back(
          Damage(name, record.offset, record.framed_size, "snapshot",
                 absl::StrCat("a ", log::RecordTypeName(record.type),
                              " record does not belong in a snapshot")));
      return;
    }
    DecodedRecord d = decoder->Decode(record.type, record.payload, record.lsn,
                                      schema, Decoder::Render::kCheck);
    if (!d.error.empty()) {
      check.findings.push_back(Damage(name, record.offset, record.framed_size,
                                      "undecodable", d.error));
      return;
    }
    if (record.type == log::kSnapshotEnd) {
      record::SnapshotEnd end;
      end.ParseFromArray(record.payload.data(),
                         static_cast<int>(record.payload.size()));
      if (end.sessions() != check.sessions || end.lsn() != lsn) {
        check.findings.push_back(Damage(
            name, record.offset, record.framed_size, "snapshot",
            absl::StrCat("end record says ", Count(end.sessions(), "session"),
                         " at lsn ", end.lsn(), ", file holds ",
                         Count(check.sessions, "session"),
                         " and is named for lsn ", lsn)));
      } else {
        check.complete = true;
      }
    }
  });
  check.bytes = scan.header.file_size;
  for (const Finding& f : scan.findings) check.findings.push_back(f);
  if (!end_seen && scan.header_ok) {
    check.findings.push_back(
        Damage(name, scan.header.file_size, 0, "snapshot",
               "no snapshot end record: the snapshot is incomplete"));
  }
  if (!scan.header_ok) check.complete = false;
  return check;
}

ManifestCheck CheckManifest(FileSystem* fs, const std::string& dir) {
  ManifestCheck check;
  const std::string name = log::kManifestFileName;
  absl::StatusOr<bool> exists = fs->FileExists(JoinPath(dir, name));
  if (!exists.ok() || !*exists) return check;
  check.present = true;
  uint64_t records = 0;
  FileScanResult scan = ScanFile(fs, dir, name, [&](const log::Record& r) {
    ++records;
    if (records > 1) {
      check.findings.push_back(Damage(name, r.offset, r.framed_size, "manifest",
                                      "more than one record in MANIFEST"));
      return;
    }
    if (r.type != log::kManifest ||
        !check.manifest.ParseFromArray(r.payload.data(),
                                       static_cast<int>(r.payload.size()))) {
      check.findings.push_back(Damage(
          name, r.offset, r.framed_size, "undecodable",
          absl::StrCat("MANIFEST record (", log::RecordTypeName(r.type),
                       ") does not decode as walstate.record.Manifest")));
      return;
    }
    check.ok = true;
  });
  check.bytes = scan.header.file_size;
  for (const Finding& f : scan.findings) check.findings.push_back(f);
  if (scan.header.status == log::HeaderStatus::kOk &&
      scan.header.header.kind != log::FileKind::kManifest) {
    check.findings.push_back(
        Damage(name, 0, 0, "manifest",
               absl::StrCat("file header describes a ",
                            FileKindName(scan.header.header.kind),
                            ", not a manifest")));
    check.ok = false;
  }
  if (scan.header_ok && records == 0 && scan.findings.empty()) {
    check.findings.push_back(
        Damage(name, 0, 0, "manifest", "MANIFEST holds no record"));
  }
  if (!check.findings.empty()) check.ok = false;
  return check;
}

}  // namespace walctl
}  // namespace walstate
