#include "tests/walctl/engine_history.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "engine/log/format.h"
#include "walstate/walstate.h"

namespace walstate {
namespace walctl_test {
namespace {

using example::GatewaySession;

Options HistoryOptions() {
  Options o;
  o.background_thread = false;
  // A fixed clock: nothing of it reaches the files, but keep runs identical.
  o.clock = [] { return absl::FromUnixSeconds(1700000000); };
  return o;
}

class History {
 public:
  History(Store<GatewaySession>* store, std::vector<Checkpoint>* checkpoints)
      : store_(store), checkpoints_(checkpoints) {}

  absl::Status Step(absl::Status s) {
    if (!s.ok()) return s;
    if (checkpoints_ == nullptr) return s;
    Checkpoint c;
    c.lsn = store_->stats().last_lsn;
    store_->ForEach([&](absl::string_view session, const GatewaySession& m) {
      c.sessions[std::string(session)] = m;
    });
    checkpoints_->push_back(std::move(c));
    return s;
  }

 private:
  Store<GatewaySession>* store_;
  std::vector<Checkpoint>* checkpoints_;
};

#define RETURN_IF_ERROR(expr) \
  do {                        \
    absl::Status _s = (expr); \
    if (!_s.ok()) return _s;  \
  } while (0)

}  // namespace

absl::Status WriteKnownHistory(const std::string& dir,
                               std::vector<Checkpoint>* checkpoints) {
  auto opened = Store<GatewaySession>::Open(HistoryOptions(), dir);
  if (!opened.ok()) return opened.status();
  Store<GatewaySession>& store = **opened;
  History h(&store, checkpoints);

  GatewaySession v;
  v.set_fingerprint("fp-1");
  v.set_header_session_id("hs-1");
  v.set_header_name("x-session-affinity");
  RETURN_IF_ERROR(h.Step(store.Update(
      "s1", v, {"fingerprint", "header_session_id", "header_name"})));

  v.Clear();
  v.set_fingerprint("fp-2");
  RETURN_IF_ERROR(h.Step(store.Update("s2", v, {"fingerprint"})));

  v.Clear();
  v.mutable_calibration()->set_last_layer(2);
  v.mutable_calibration()->set_dynamic_context_cap(0.5);
  v.set_resolved_conversation_ttl("5m");
  RETURN_IF_ERROR(
      store.Update("s1", v, {"calibration", "resolved_conversation_ttl"}));
  RETURN_IF_ERROR(h.Step(store.Flush()));

  v.Clear();
  v.mutable_cost()->set_conversation_turns(3);
  v.mutable_cost()->set_conversation_cost(0.25);
  RETURN_IF_ERROR(store.Update("s2", v, {"cost"}));
  RETURN_IF_ERROR(h.Step(store.Flush()));

  RETURN_IF_ERROR(h.Step(store.Delete("s2")));
  RETURN_IF_ERROR(h.Step(store.Compact()));

  v.Clear();
  v.set_header_name("x-other");
  RETURN_IF_ERROR(h.Step(store.Update("s1", v, {"header_name"})));

  v.Clear();
  v.mutable_warmup()->set_warmup_count(1);
  v.mutable_warmup()->set_last_warmup_at_ms(1700000000123);
  RETURN_IF_ERROR(store.Update("s3", v, {"warmup"}));
  RETURN_IF_ERROR(h.Step(store.Flush()));

  v.Clear();
  v.set_fingerprint("fp-3");
  RETURN_IF_ERROR(h.Step(store.Update("s3", v, {"fingerprint"})));
  return store.Close();
}

absl::Status WriteCompactedHistory(const std::string& dir,
                                   std::vector<Checkpoint>* checkpoints,
                                   uint64_t* first_kept_lsn) {
  Options options = HistoryOptions();
  options.max_segment_bytes = 1024;
  auto opened = Store<GatewaySession>::Open(options, dir);
  if (!opened.ok()) return opened.status();
  Store<GatewaySession>& store = **opened;
  History h(&store, checkpoints);
  GatewaySession v;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 10; ++i) {
      v.Clear();
      v.set_fingerprint(absl::StrCat("fp-", round, "-", i));
      RETURN_IF_ERROR(
          h.Step(store.Update(absl::StrCat("s", i % 4), v, {"fingerprint"})));
      v.Clear();
      v.mutable_cost()->set_conversation_turns(round * 10 + i);
      RETURN_IF_ERROR(store.Update(absl::StrCat("s", i % 4), v, {"cost"}));
      RETURN_IF_ERROR(h.Step(store.Flush()));
    }
    if (round < 2) RETURN_IF_ERROR(h.Step(store.Compact()));
  }
  RETURN_IF_ERROR(store.Close());
  // The oldest segment left is where the retained history starts.
  auto names = FileSystem::Default()->ListDir(dir);
  if (!names.ok()) return names.status();
  uint64_t oldest = UINT64_MAX;
  for (const std::string& name : *names) {
    uint64_t n;
    if (log::ParseSegmentFileName(name, &n)) oldest = std::min(oldest, n);
  }
  std::string data;
  RETURN_IF_ERROR(FileSystem::Default()->ReadFile(
      JoinPath(dir, log::SegmentFileName(oldest)), &data));
  log::FileHeader header;
  std::string detail;
  if (log::DecodeFileHeader(data, &header, &detail) != log::HeaderStatus::kOk) {
    return absl::DataLossError(detail);
  }
  *first_kept_lsn = header.first_lsn;
  return absl::OkStatus();
}

}  // namespace walctl_test
}  // namespace walstate
