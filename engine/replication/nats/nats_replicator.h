// NatsReplicator: Replicator and StreamSource over NATS JetStream (C client
// libnats 3.4, nats-server >= 2.9). One stream per store, "WALSTATE_<store>",
// with the subjects "walstate.<store>.log" (claims, log messages, snapshot
// manifests: fenced, each publish expecting the subject's last sequence)
// and "walstate.<store>.snap" (snapshot chunks). docs/replication.md.
#ifndef WALSTATE_ENGINE_REPLICATION_NATS_NATS_REPLICATOR_H_
#define WALSTATE_ENGINE_REPLICATION_NATS_NATS_REPLICATOR_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/replication/restore.h"
#include "engine/util/mutex.h"
#include "walstate/replicator.h"

namespace walstate {
namespace replication {

struct NatsOptions {
  // Comma-separated server URLs ("nats://127.0.0.1:14222,nats://...").
  std::string url;
  // The store's name in the stream's and subjects' names: letters, digits,
  // '-' and '_'.
  std::string store;
  // Replicas of a stream this creates (3: a quorum of 2 acknowledges).
  int replicas = 3;
  // Create the stream if it does not exist (a restore never does).
  bool create_stream = true;
  // How long a publish waits for its acknowledgement, asking again while
  // the stream elects a new leader (a node died: a few seconds on
  // loopback). In sync mode an update waits at most this long before the
  // store fails.
  absl::Duration timeout = absl::Seconds(10);
  // Largest message body; 0: the server's max_payload.
  size_t max_message_bytes = 0;
  // Whether a published snapshot removes the messages it makes unnecessary
  // from the stream. kAuto: only on servers >= 2.10. On nats-server 2.9.10
  // we saw a purge lose acknowledged messages published after it when
  // every server was killed at once and restarted (docs/replication.md,
  // "What JetStream promises"), so there the stream is not trimmed unless
  // kAlways says so.
  enum class Trim { kAuto, kAlways, kNever };
  Trim trim = Trim::kAuto;
  // Snapshot chunk size (at most the message size).
  size_t snapshot_chunk_bytes = 512 << 10;
  // Test hook (test 5(d)): sees each log message just before it is
  // published and may change it, as a damaged replica would.
  std::function<void(std::string* message)> tamper_log_message;
};

class NatsReplicator : public Replicator, public StreamSource {
 public:
  // Connects, reads the server's version, and finds (or creates) the
  // stream. Unavailable naming the URL when no server answers.
  static absl::StatusOr<std::unique_ptr<NatsReplicator>> Connect(
      const NatsOptions& options);
  ~NatsReplicator() override;

  absl::StatusOr<StreamPosition> Claim(const std::string& writer, bool takeover,
                                       const std::string& schema) override;
  absl::Status PublishLog(uint64_t salt, uint64_t first_lsn, uint64_t last_lsn,
                          absl::string_view frames) override;
  absl::Status PublishSnapshot(FileSystem* fs, const std::string& path,
                               uint64_t lsn) override;
  ServerDurability durability() const override { return durability_; }

  absl::Status ReadLog(
      const std::function<absl::Status(uint64_t, absl::string_view,
                                       absl::string_view)>& fn) override;
  absl::Status ReadSnapshot(
      uint64_t from,
      const std::function<absl::StatusOr<bool>(uint64_t, absl::string_view)>&
          fn) override;
  std::string Describe() const override;
  absl::Status TailLog(uint64_t from, absl::Duration idle_wait,
                       const std::function<absl::StatusOr<bool>(
                           uint64_t, absl::string_view, absl::string_view)>& fn,
                       const std::function<bool()>& idle) override;

  // The last LSN and writer on the log subject, without claiming (walctl).
  absl::StatusOr<StreamPosition> Peek();

  // The name of the server leading the stream ("n1"), for tests and walctl.
  absl::StatusOr<std::string> StreamLeader();

  const std::string& stream_name() const { return stream_; }
  const std::string& log_subject() const { return log_subject_; }

  // What a server of `version` can promise (exposed for tests).
  static ServerDurability DurabilityOf(const std::string& version);

 private:
  struct Conn;
  explicit NatsReplicator(const NatsOptions& options);
  absl::Status Open();
  // Publishes one message on the log subject expecting its last sequence to
  // be log_seq_ (mu_ held); returns its sequence.
  absl::StatusOr<uint64_t> PublishFencedLocked(const std::string& message,
                                               const std::string& msg_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<uint64_t> Publish(const std::string& subject,
                                   const std::string& writer,
                                   const std::string& message,
                                   const std::string& msg_id,
                                   uint64_t expect_last_subject_seq,
                                   bool expect_none);
  // Delivers `subject`'s messages from sequence `from` to `fn` until
  // sequence `until`, fn says stop, or an error. Without `idle`, no message
  // within options_.timeout is an error; with it, `idle` is called after
  // `idle_wait` without one and reading stops when it returns false.
  absl::Status ReadSubject(
      const std::string& subject, uint64_t from, uint64_t until,
      const std::function<absl::StatusOr<bool>(uint64_t, absl::string_view,
                                               absl::string_view)>& fn,
      absl::Duration idle_wait = absl::ZeroDuration(),
      const std::function<bool()>& idle = nullptr);
  absl::Status Purge(const std::string& subject, uint64_t before_seq);

  const NatsOptions options_;
  std::string stream_;
  std::string log_subject_;
  std::string snap_subject_;
  size_t max_body_ = 0;
  bool trim_ = false;
  ServerDurability durability_;
  std::unique_ptr<Conn> conn_;

  // Guards the log subject's fence: publishes there go one at a time.
  Mutex mu_;
  std::string writer_ ABSL_GUARDED_BY(mu_);
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;  // sequence of this writer's claim
  uint64_t log_seq_ ABSL_GUARDED_BY(mu_) = 0;  // last sequence on the subject
  bool deposed_ ABSL_GUARDED_BY(mu_) = false;
  // This writer's log messages: stream sequence and last complete LSN.
  std::deque<std::pair<uint64_t, uint64_t>> published_ ABSL_GUARDED_BY(mu_);
  // Serializes snapshot publications.
  std::mutex snap_mu_;
};

}  // namespace replication
}  // namespace walstate

#endif  // WALSTATE_ENGINE_REPLICATION_NATS_NATS_REPLICATOR_H_
