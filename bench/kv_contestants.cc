// RocksDB and LevelDB as a user of this gateway would use them: one key per
// session holding its whole serialized state; identity changes as a synced
// Put; a tick as one synced WriteBatch of every dirty session; recovery as
// DB::Open plus a full scan parsed into the in-memory map. Default options
// (what a user gets), with create_if_missing.
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "bench/map_contestant.h"
#include "leveldb/db.h"
#include "leveldb/write_batch.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"

namespace walstate {
namespace bench {
namespace {

absl::Status FromRocks(const rocksdb::Status& s) {
  return s.ok() ? absl::OkStatus()
                : absl::InternalError(absl::StrCat("rocksdb: ", s.ToString()));
}

absl::Status FromLevel(const leveldb::Status& s) {
  return s.ok() ? absl::OkStatus()
                : absl::InternalError(absl::StrCat("leveldb: ", s.ToString()));
}

class RocksContestant : public MapContestant {
 public:
  std::string name() const override { return "rocksdb"; }

  absl::Status Open(const std::string& dir) override {
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    absl::Status s = FromRocks(rocksdb::DB::Open(options, dir, &db));
    if (!s.ok()) return s;
    db_.reset(db);
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions()));
    absl::MutexLock lock(&mu_);
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      rocksdb::Slice k = it->key(), v = it->value();
      if (!map_[std::string(k.data(), k.size())].ParseFromArray(
              v.data(), static_cast<int>(v.size()))) {
        return absl::DataLossError("rocksdb: unparsable value");
      }
    }
    return FromRocks(it->status());
  }

  absl::Status WriteIdentity(const std::string& id,
                             const GatewaySession& identity) override {
    std::string value;
    WithIdentityApplied(id, identity, [&](const GatewaySession& s) {
      s.SerializeToString(&value);
    });
    rocksdb::WriteOptions wo;
    wo.sync = true;
    return FromRocks(db_->Put(wo, id, value));
  }

  absl::Status Tick() override {
    rocksdb::WriteBatch batch;
    std::string value;
    DrainDirty([&](const std::string& id, const GatewaySession& s, uint32_t) {
      s.SerializeToString(&value);
      batch.Put(id, value);
    });
    rocksdb::WriteOptions wo;
    wo.sync = true;
    return FromRocks(db_->Write(wo, &batch));
  }

  absl::Status Compact() override {
    absl::Status s = FromRocks(db_->Flush(rocksdb::FlushOptions()));
    if (!s.ok()) return s;
    return FromRocks(
        db_->CompactRange(rocksdb::CompactRangeOptions(), nullptr, nullptr));
  }

  absl::Status Close() override {
    absl::Status s;
    if (db_ != nullptr) s = FromRocks(db_->Close());
    db_.reset();
    ClearMemory();
    return s;
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
};

class LevelContestant : public MapContestant {
 public:
  std::string name() const override { return "leveldb"; }

  absl::Status Open(const std::string& dir) override {
    leveldb::Options options;
    options.create_if_missing = true;
    leveldb::DB* db = nullptr;
    absl::Status s = FromLevel(leveldb::DB::Open(options, dir, &db));
    if (!s.ok()) return s;
    db_.reset(db);
    std::unique_ptr<leveldb::Iterator> it(
        db_->NewIterator(leveldb::ReadOptions()));
    absl::MutexLock lock(&mu_);
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      leveldb::Slice k = it->key(), v = it->value();
      if (!map_[std::string(k.data(), k.size())].ParseFromArray(
              v.data(), static_cast<int>(v.size()))) {
        return absl::DataLossError("leveldb: unparsable value");
      }
    }
    return FromLevel(it->status());
  }

  absl::Status WriteIdentity(const std::string& id,
                             const GatewaySession& identity) override {
    std::string value;
    WithIdentityApplied(id, identity, [&](const GatewaySession& s) {
      s.SerializeToString(&value);
    });
    leveldb::WriteOptions wo;
    wo.sync = true;
    return FromLevel(db_->Put(wo, id, value));
  }

  absl::Status Tick() override {
    leveldb::WriteBatch batch;
    std::string value;
    DrainDirty([&](const std::string& id, const GatewaySession& s, uint32_t) {
      s.SerializeToString(&value);
      batch.Put(id, value);
    });
    leveldb::WriteOptions wo;
    wo.sync = true;
    return FromLevel(db_->Write(wo, &batch));
  }

  absl::Status Compact() override {
    db_->CompactRange(nullptr, nullptr);
    return absl::OkStatus();
  }

  absl::Status Close() override {
    db_.reset();
    ClearMemory();
    return absl::OkStatus();
  }

 private:
  std::unique_ptr<leveldb::DB> db_;
};

ContestantRegistrar rocks("rocksdb", 10, [](const ContestantOptions&) {
  return std::make_unique<RocksContestant>();
});
ContestantRegistrar level("leveldb", 20, [](const ContestantOptions&) {
  return std::make_unique<LevelContestant>();
});

}  // namespace
}  // namespace bench
}  // namespace walstate
