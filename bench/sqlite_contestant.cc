// SQLite as the gateway used it (docs/use-case.md), minus its bugs:
// WAL mode, synchronous=FULL, one table `session_state` with the identity as
// columns and the batched field groups as one serialized blob. An identity
// change is one upsert (its own transaction); a tick is one transaction of
// upserts; recovery is open plus SELECT of all rows into the in-memory map.
#include <sqlite3.h>
#include <sys/stat.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "bench/map_contestant.h"

namespace walstate {
namespace bench {
namespace {

constexpr char kSchema[] =
    "CREATE TABLE IF NOT EXISTS session_state("
    " id TEXT PRIMARY KEY, fingerprint TEXT, header_session_id TEXT,"
    " header_name TEXT, state BLOB)";
constexpr char kUpsertIdentity[] =
    "INSERT INTO session_state(id, fingerprint, header_session_id,"
    " header_name) VALUES(?1, ?2, ?3, ?4) ON CONFLICT(id) DO UPDATE SET"
    " fingerprint = excluded.fingerprint,"
    " header_session_id = excluded.header_session_id,"
    " header_name = excluded.header_name";
constexpr char kUpsertAll[] =
    "INSERT INTO session_state(id, fingerprint, header_session_id,"
    " header_name, state) VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(id) DO UPDATE"
    " SET fingerprint = excluded.fingerprint,"
    " header_session_id = excluded.header_session_id,"
    " header_name = excluded.header_name, state = excluded.state";
constexpr char kUpsertState[] =
    "INSERT INTO session_state(id, state) VALUES(?1, ?2) ON CONFLICT(id)"
    " DO UPDATE SET state = excluded.state";
constexpr char kSelectAll[] =
    "SELECT id, fingerprint, header_session_id, header_name, state"
    " FROM session_state";

class SqliteContestant : public MapContestant {
 public:
  std::string name() const override { return "sqlite"; }
  ~SqliteContestant() override { Close().IgnoreError(); }

  absl::Status Open(const std::string& dir) override {
    ::mkdir(dir.c_str(), 0755);
    std::string path = dir + "/state.db";
    int rc = sqlite3_open_v2(
        path.c_str(), &db_,
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
        nullptr);
    if (rc != SQLITE_OK) return Error("open");
    absl::Status s = Exec("PRAGMA journal_mode=WAL");
    if (s.ok()) s = Exec("PRAGMA synchronous=FULL");
    if (s.ok()) s = Exec(kSchema);
    if (s.ok()) s = Prepare(kUpsertIdentity, &upsert_identity_);
    if (s.ok()) s = Prepare(kUpsertAll, &upsert_all_);
    if (s.ok()) s = Prepare(kUpsertState, &upsert_state_);
    if (!s.ok()) return s;
    sqlite3_stmt* select = nullptr;
    s = Prepare(kSelectAll, &select);
    if (!s.ok()) return s;
    absl::MutexLock lock(&mu_);
    while ((rc = sqlite3_step(select)) == SQLITE_ROW) {
      GatewaySession& state = map_[Text(select, 0)];
      const void* blob = sqlite3_column_blob(select, 4);
      int n = sqlite3_column_bytes(select, 4);
      if (blob != nullptr && !state.ParseFromArray(blob, n)) {
        sqlite3_finalize(select);
        return absl::DataLossError("sqlite: unparsable state");
      }
      state.set_fingerprint(Text(select, 1));
      state.set_header_session_id(Text(select, 2));
      state.set_header_name(Text(select, 3));
    }
    sqlite3_finalize(select);
    return rc == SQLITE_DONE ? absl::OkStatus() : Error("select");
  }

  absl::Status WriteIdentity(const std::string& id,
                             const GatewaySession& identity) override {
    {
      absl::MutexLock lock(&mu_);
      ApplyFields(identity, kIdentityFields, &map_[id]);
    }
    absl::MutexLock lock(&db_mu_);
    sqlite3_stmt* st = upsert_identity_;
    BindText(st, 1, id);
    BindText(st, 2, identity.fingerprint());
    BindText(st, 3, identity.header_session_id());
    BindText(st, 4, identity.header_name());
    return Step(st, "upsert identity");
  }

  absl::Status Tick() override {
    struct Row {
      std::string id;
      uint32_t mask;
      GatewaySession identity;
      std::string state;
    };
    std::vector<Row> rows;
    GatewaySession part;
    DrainDirty(
        [&](const std::string& id, const GatewaySession& s, uint32_t mask) {
          Row row{id, mask, {}, {}};
          if (mask & kIdentityFields)
            ApplyFields(s, kIdentityFields, &row.identity);
          part.Clear();
          ApplyFields(s, kBatchedFields, &part);
          part.SerializeToString(&row.state);
          rows.push_back(std::move(row));
        });
    absl::MutexLock lock(&db_mu_);
    absl::Status s = Exec("BEGIN");
    for (const Row& row : rows) {
      if (!s.ok()) break;
      sqlite3_stmt* st;
      if (row.mask & kIdentityFields) {
        st = upsert_all_;
        BindText(st, 1, row.id);
        BindText(st, 2, row.identity.fingerprint());
        BindText(st, 3, row.identity.header_session_id());
        BindText(st, 4, row.identity.header_name());
        BindBlob(st, 5, row.state);
      } else {
        st = upsert_state_;
        BindText(st, 1, row.id);
        BindBlob(st, 2, row.state);
      }
      s = Step(st, "upsert state");
    }
    if (s.ok()) return Exec("COMMIT");
    Exec("ROLLBACK").IgnoreError();
    return s;
  }

  absl::Status Compact() override {
    absl::MutexLock lock(&db_mu_);
    return Exec("PRAGMA wal_checkpoint(TRUNCATE)");
  }

  absl::Status Close() override {
    for (sqlite3_stmt** st :
         {&upsert_identity_, &upsert_all_, &upsert_state_}) {
      sqlite3_finalize(*st);
      *st = nullptr;
    }
    absl::Status s;
    if (db_ != nullptr && sqlite3_close(db_) != SQLITE_OK) s = Error("close");
    db_ = nullptr;
    ClearMemory();
    return s;
  }

 private:
  static std::string Text(sqlite3_stmt* st, int col) {
    const unsigned char* p = sqlite3_column_text(st, col);
    return p == nullptr ? std::string()
                        : std::string(reinterpret_cast<const char*>(p),
                                      sqlite3_column_bytes(st, col));
  }
  static void BindText(sqlite3_stmt* st, int i, const std::string& v) {
    sqlite3_bind_text(st, i, v.data(), static_cast<int>(v.size()),
                      SQLITE_STATIC);
  }
  static void BindBlob(sqlite3_stmt* st, int i, const std::string& v) {
    sqlite3_bind_blob(st, i, v.data(), static_cast<int>(v.size()),
                      SQLITE_STATIC);
  }
  absl::Status Error(const char* what) {
    return absl::InternalError(absl::StrCat(
        "sqlite ", what, ": ", db_ ? sqlite3_errmsg(db_) : "no connection"));
  }
  absl::Status Exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      absl::Status s = absl::InternalError(
          absl::StrCat("sqlite: ", sql, ": ", err ? err : "?"));
      sqlite3_free(err);
      return s;
    }
    return absl::OkStatus();
  }
  absl::Status Prepare(const char* sql, sqlite3_stmt** st) {
    return sqlite3_prepare_v2(db_, sql, -1, st, nullptr) == SQLITE_OK
               ? absl::OkStatus()
               : Error("prepare");
  }
  absl::Status Step(sqlite3_stmt* st, const char* what) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? absl::OkStatus() : Error(what);
  }

  sqlite3* db_ = nullptr;
  absl::Mutex db_mu_;  // one connection, one statement user at a time
  sqlite3_stmt* upsert_identity_ = nullptr;
  sqlite3_stmt* upsert_all_ = nullptr;
  sqlite3_stmt* upsert_state_ = nullptr;
};

ContestantRegistrar registrar("sqlite", 30, [](const ContestantOptions&) {
  return std::make_unique<SqliteContestant>();
});

}  // namespace
}  // namespace bench
}  // namespace walstate
