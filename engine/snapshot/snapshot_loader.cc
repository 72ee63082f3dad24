#include "engine/snapshot/snapshot_loader.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "engine/log/format.h"
#include "engine/log/reader.h"
#include "engine/state/apply_pool.h"
#include "engine/state/proto_wire.h"
#include "engine/state/session_id.h"
#include "engine/util/mutex.h"
#include "google/protobuf/io/coded_stream.h"
#include "proto/walstate/record.pb.h"

namespace walstate {

bool DecodeSessionState(absl::string_view payload, absl::string_view* session,
                        absl::string_view* state, uint64_t* lsn) {
  *session = absl::string_view();
  *state = absl::string_view();
  *lsn = 0;
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t*>(payload.data()),
      static_cast<int>(payload.size()));
  while (uint32_t tag = in.ReadTag()) {
    const int field = wire::TagFieldNumber(tag);
    const wire::WireType wire_type = wire::TagWireType(tag);
    if ((field == 1 || field == 2) && wire_type == wire::kLengthDelimited) {
      uint32_t len = 0;
      if (!in.ReadVarint32(&len)) return false;
      const size_t pos = static_cast<size_t>(in.CurrentPosition());
      if (len > payload.size() - pos || !in.Skip(static_cast<int>(len))) {
        return false;
      }
      (field == 1 ? *session : *state) = payload.substr(pos, len);
    } else if (field == 3 && wire_type == wire::kVarint) {
      if (!in.ReadVarint64(lsn)) return false;
    } else if (!wire::SkipField(&in, tag)) {
      return false;
    }
  }
  return in.ConsumedEntireMessage();
}

absl::StatusOr<LoadedSnapshot> LoadSnapshot(FileSystem* fs,
                                            const std::string& path,
                                            uint64_t expected_lsn,
                                            SessionTable* table, size_t workers,
                                            bool lazy) {
  // Lazy: states are kept where they are read, so the file is mapped where
  // it can be (no copy into the reader's buffer, none into the table).
  auto reader = log::FileReader::Open(fs, path, log::RecoveryMode::kStrict,
                                      /*is_last=*/false, /*map=*/lazy);
  if (!reader.ok()) return reader.status();
  const log::FileHeader& header = (*reader)->header();
  if (header.kind != log::FileKind::kSnapshot ||
      header.file_number != expected_lsn) {
    return absl::DataLossError(
        absl::StrCat(path, ": not snapshot ", expected_lsn, " (kind ",
                     static_cast<uint32_t>(header.kind), ", number ",
                     header.file_number, ")"));
  }
  const Schema& schema = table->schema();
  // Parsing a session is most of the work: it runs on the pool, each worker
  // owning a set of shards, while this thread reads and verifies.
  std::shared_ptr<const MappedFile> mapping = (*reader)->mapping();
  const bool mapped = lazy && mapping != nullptr;
  if (lazy) table->BeginLazy(std::max<size_t>(workers, 1), path);
  if (mapped) table->HoldMapping(mapping);
  auto load = [&](const SessionTable::SessionKey& key,
                  absl::string_view state_bytes, uint64_t capture_lsn,
                  size_t worker) -> absl::Status {
    const absl::string_view id = key.id;
    // No log ever gets near LSN 2^63, and a node keeps the capture LSN in
    // 63 bits (SessionTable::Entry).
    if (capture_lsn >= (uint64_t{1} << 63)) {
      return absl::DataLossError(absl::StrCat("session ", QuoteSessionId(id),
                                              ": capture LSN ", capture_lsn,
                                              " is out of range"));
    }
    if (lazy) {
      // Parsed on first use; what can be checked without parsing is.
      SessionTable::Shard& shard = table->ShardFor(key);
      MutexLock lock(&shard.mu);
      auto node = table->PutLazyLocked(shard, key, state_bytes, worker, mapped);
      if (!node.ok()) return node.status();
      (*node)->entry.set_snapshot_lsn(capture_lsn);
      return absl::OkStatus();
    }
    auto state = schema.NewMessage();
    if (!state->ParseFromArray(state_bytes.data(),
                               static_cast<int>(state_bytes.size()))) {
      return absl::DataLossError(absl::StrCat(
          "state of session ", QuoteSessionId(id), " does not parse as ",
          schema.descriptor()->full_name()));
    }
    SessionTable::Shard& shard = table->ShardFor(key);
    MutexLock lock(&shard.mu);
    bool inserted = false;
    SessionTable::Node* node =
        table->PutLocked(shard, key, std::move(state), &inserted);
    if (!inserted) {
      return absl::DataLossError(absl::StrCat(
          "session ", QuoteSessionId(id), " appears twice in the snapshot"));
    }
    node->entry.set_snapshot_lsn(capture_lsn);
    return absl::OkStatus();
  };
  ApplyPool pool(
      workers,
      [&](const ApplyPool::Item& item) -> absl::Status {
        absl::string_view id, state_bytes;
        uint64_t capture_lsn = 0;
        if (!DecodeSessionState(item.payload, &id, &state_bytes,
                                &capture_lsn)) {
          return absl::DataLossError("session record does not parse");
        }
        // Hashed by the reading thread, which routed it.
        return load({id, item.hash}, state_bytes, capture_lsn, item.worker);
      },
      [table](uint64_t hash, int /*step: 0 only*/) {
        // Where the session will be inserted: its map slot (its node and
        // state do not exist yet). The worker owns the shard.
        table->PrefetchSession(hash, SessionTable::PrefetchStep::kSlots);
      },
      /*prefetch_steps=*/1);
  record::SnapshotEnd end;
  LoadedSnapshot loaded;
  loaded.lsn = expected_lsn;
  bool ended = false;
  // Damage found here is reported only if no earlier record failed on a
  // worker: the error always names the first damage, however many threads.
  auto fail = [&](absl::Status s) { return pool.StopAt(std::move(s)); };
  log::Record rec;
  while ((*reader)->Next(&rec)) {
    if (ended) {
      return fail(absl::DataLossError(absl::StrCat(
          path, " offset ", rec.offset, ": record after the end record")));
    }
    if (rec.type == log::kSnapshotSession) {
      absl::string_view id, state_bytes;
      uint64_t capture_lsn = 0;
      if (!DecodeSessionState(rec.payload, &id, &state_bytes, &capture_lsn)) {
        return fail(absl::DataLossError(absl::StrCat(
            path, " offset ", rec.offset, ": session record does not parse")));
      }
      const SessionTable::SessionKey key(id);
      if (pool.workers() == 0) {
        // One thread: load what was just decoded, not decode it twice.
        absl::Status s = load(key, state_bytes, capture_lsn, /*worker=*/0);
        if (!s.ok()) {
          return absl::Status(
              s.code(),
              absl::StrCat(path, " offset ", rec.offset, ": ", s.message()));
        }
      } else {
        absl::Status s =
            pool.Add(table->ShardIndexFor(key), key.hash, rec.lsn, rec.type,
                     rec.payload, path, rec.offset, /*stable=*/mapped);
        if (!s.ok()) return s;
      }
      ++loaded.sessions;
    } else if (rec.type == log::kSnapshotEnd) {
      if (!end.ParseFromArray(rec.payload.data(),
                              static_cast<int>(rec.payload.size())) ||
          end.lsn() != expected_lsn || end.sessions() != loaded.sessions) {
        return fail(absl::DataLossError(absl::StrCat(
            path, " offset ", rec.offset,
            ": end record does not match (sessions ", end.sessions(), " vs ",
            loaded.sessions, " read, LSN ", end.lsn(), ")")));
      }
      ended = true;
    } else if (!log::IsOptionalType(rec.type)) {
      return fail(absl::DataLossError(absl::StrCat(
          path, " offset ", rec.offset, ": unexpected ",
          log::RecordTypeName(rec.type), " record in a snapshot")));
    }
  }
  absl::Status applied = pool.Finish();
  if (!applied.ok()) return applied;
  if (!(*reader)->status().ok()) return (*reader)->status();
  if (!ended) {
    return absl::DataLossError(
        absl::StrCat(path, ": incomplete snapshot (no end record)"));
  }
  loaded.bytes = (*reader)->report().bytes;
  return loaded;
}

absl::Status VerifySnapshot(FileSystem* fs, const std::string& path,
                            uint64_t expected_lsn, uint64_t expected_sessions) {
  auto reader = log::FileReader::Open(fs, path, log::RecoveryMode::kStrict,
                                      /*is_last=*/false);
  if (!reader.ok()) return reader.status();
  const log::FileHeader& header = (*reader)->header();
  if (header.kind != log::FileKind::kSnapshot ||
      header.file_number != expected_lsn) {
    return absl::DataLossError(
        absl::StrCat(path, ": not snapshot ", expected_lsn, " when read back"));
  }
  uint64_t sessions = 0;
  bool ended = false;
  log::Record rec;
  while ((*reader)->Next(&rec)) {
    absl::string_view id, state_bytes;
    uint64_t capture_lsn = 0;
    record::SnapshotEnd end;
    if (ended) {
      return absl::DataLossError(absl::StrCat(path, " offset ", rec.offset,
                                              ": record after the end record"));
    }
    if (rec.type == log::kSnapshotSession) {
      if (!DecodeSessionState(rec.payload, &id, &state_bytes, &capture_lsn)) {
        return absl::DataLossError(absl::StrCat(
            path, " offset ", rec.offset, ": session record does not parse"));
      }
      ++sessions;
    } else if (rec.type == log::kSnapshotEnd) {
      if (!end.ParseFromArray(rec.payload.data(),
                              static_cast<int>(rec.payload.size())) ||
          end.lsn() != expected_lsn || end.sessions() != sessions) {
        return absl::DataLossError(absl::StrCat(path, " offset ", rec.offset,
                                                ": end record does not match"));
      }
      ended = true;
    }
  }
  if (!(*reader)->status().ok()) return (*reader)->status();
  if (!ended || sessions != expected_sessions) {
    return absl::DataLossError(
        absl::StrCat(path, ": read back ", sessions, " sessions",
                     ended ? "" : " and no end record", ", but ",
                     expected_sessions, " were written"));
  }
  return absl::OkStatus();
}

}  // namespace walstate
