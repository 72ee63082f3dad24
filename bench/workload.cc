#include "bench/workload.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"

namespace walstate {
namespace bench {

void Workload::Identity(uint64_t index, GatewaySession* out) const {
  workload::SetIdentity(model_.CreateIdentity(index, 0), out);
}

void Workload::Expected(uint64_t index, int32_t version,
                        GatewaySession* out) const {
  out->Clear();
  if (version == kAbsent) return;
  Identity(index, out);
  if (version == kIdentityOnly) return;
  // Version 0, the initial load, is the one full turn.
  model_.Batched(
      index, 0, static_cast<uint64_t>(version),
      [](uint64_t u) { return u == 0; }, out);
}

size_t ExpectedState::LiveCount() const {
  size_t n = 0;
  for (int32_t v : versions_) n += v != kAbsent;
  return n;
}

absl::Status Verify(const Workload& workload, const ExpectedState& expected,
                    const ForEachFn& for_each) {
  std::vector<bool> seen(expected.capacity(), false);
  absl::Status status;
  size_t visited = 0;
  GatewaySession want;
  std::string want_bytes, got_bytes;
  for_each([&](absl::string_view id, const GatewaySession& got) {
    ++visited;
    if (!status.ok()) return;
    uint64_t index;
    if (!workload.model().ParseSessionId(id, &index)) {
      status = absl::DataLossError(absl::StrCat("unexpected session id ", id));
      return;
    }
    int32_t version = expected.Get(index);
    if (version == kAbsent) {
      status = absl::DataLossError(
          absl::StrCat("session ", id, " recovered but should not exist"));
      return;
    }
    if (seen[index]) {
      status = absl::DataLossError(absl::StrCat("session ", id, " twice"));
      return;
    }
    seen[index] = true;
    workload.Expected(index, version, &want);
    // No map fields: serialization is deterministic, so equal messages give
    // equal bytes; the differencer only explains a mismatch.
    want.SerializeToString(&want_bytes);
    got.SerializeToString(&got_bytes);
    if (want_bytes != got_bytes) {
      std::string diff;
      google::protobuf::util::MessageDifferencer d;
      d.ReportDifferencesToString(&diff);
      d.Compare(want, got);
      if (diff.size() > 2000) diff.resize(2000);
      status = absl::DataLossError(absl::StrCat("session ", id, " (version ",
                                                version, ") differs:\n", diff));
    }
  });
  if (!status.ok()) return status;
  size_t live = expected.LiveCount();
  if (visited != live) {
    for (size_t i = 0; i < seen.size(); ++i) {
      if (!seen[i] && expected.Get(i) != kAbsent) {
        return absl::DataLossError(
            absl::StrCat("recovered ", visited, " sessions, expected ", live,
                         "; missing e.g. ", workload.SessionId(i)));
      }
    }
    return absl::DataLossError(
        absl::StrCat("recovered ", visited, " sessions, expected ", live));
  }
  return absl::OkStatus();
}

}  // namespace bench
}  // namespace walstate
