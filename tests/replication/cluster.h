// Test helpers for the replication tests: the NATS cluster that
// scripts/nats_cluster.sh started around the test (its `run` command), and a
// writer child process whose acknowledged updates the test reads.
#ifndef WALSTATE_TESTS_REPLICATION_CLUSTER_H_
#define WALSTATE_TESTS_REPLICATION_CLUSTER_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/replication/nats/nats_replicator.h"
#include "engine/replication/restore.h"

namespace walstate {
namespace testing {

class Cluster {
 public:
  // From WALSTATE_NATS_URL, WALSTATE_NATS_CLUSTER and WALSTATE_NATS_SCRIPT;
  // an error saying how to run the test if they are missing.
  static absl::StatusOr<Cluster> FromEnv();

  const std::string& url() const { return url_; }
  // Signals node n (1..3) and waits until it is gone.
  absl::Status Kill(int n, const char* signal = "KILL");
  // SIGKILLs every node at once (one kill(2) per node, back to back).
  absl::Status KillAll();
  // Starts node n again (returns at once).
  absl::Status Restart(int n);
  // Waits until every running node saw a JetStream metadata leader.
  absl::Status WaitLeader();
  // Restarts whichever nodes are down (a test's TearDown).
  absl::Status EnsureAllUp();
  // Connects to `store`'s stream once it is readable after nodes were
  // killed or restarted: polls (bounded backoff, 0.1 s doubling to 2 s)
  // until, in order, a node answers the stream's info (which needs a
  // JetStream metadata leader), the stream has an elected leader, and its
  // last log message can be read; returns a connection whose requests
  // wait Scaled(30 s). Gives up after Scaled(120 s) with
  // DeadlineExceeded naming the condition still unmet, its last error, the
  // time waited and where the nodes' logs are.
  absl::StatusOr<std::unique_ptr<replication::NatsReplicator>> WaitForStream(
      const std::string& store);
  // Restores `store` into `dir`.
  absl::StatusOr<replication::RestoreReport> Restore(const std::string& store,
                                                     const std::string& dir);

 private:
  absl::Status Script(const std::string& args);
  std::string url_;
  std::string dir_;
  std::string script_;
};

// A replication_writer child process (tests/replication/replication_writer.cc),
// or a `walctl follow` one (its "durable LSN N" lines).
class WriterProcess {
 public:
  // Starts it; args after the binary path.
  static absl::StatusOr<std::unique_ptr<WriterProcess>> Start(
      const std::vector<std::string>& args);
  ~WriterProcess();  // SIGKILLs it if it still runs

  // Reads lines until `acks` acknowledgements were seen in total, or the
  // child ends. Returns false if it ended (or failed) first.
  bool ReadUntilAcks(size_t acks);
  // SIGKILL, then reads what it printed before it died, and reaps it.
  void KillAndDrain();
  // Reads to the end (the child exits by itself), and reaps it.
  void Drain();
  // Reads lines until a "durable LSN N" line with N >= `lsn`. Returns false
  // if the child ended (or failed) first.
  bool ReadUntilDurable(uint64_t lsn);
  // SIGTERM, then reads to the end and reaps it: the child's exit code, or
  // -1 if a signal ended it.
  int TerminateAndWait();
  uint64_t durable_lsn() const { return durable_lsn_; }
  // Every line it printed that this read.
  const std::string& output() const { return output_; }

  // session -> last acknowledged value.
  const std::map<std::string, uint64_t>& acked() const { return acked_; }
  size_t ack_count() const { return ack_count_; }
  const std::string& failure() const { return failure_; }  // "fail ..." line
  bool opened() const { return opened_; }

 private:
  bool ReadLine(std::string* line);
  // Reads and handles lines until `done`; false if the child ended or
  // failed first.
  bool ReadUntil(const std::function<bool()>& done);
  void Handle(const std::string& line);
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string buffer_;
  std::map<std::string, uint64_t> acked_;
  size_t ack_count_ = 0;
  std::string failure_;
  bool opened_ = false;
  uint64_t durable_lsn_ = 0;
  int exit_code_ = -1;
  std::string output_;
};

// How much longer than on an idle machine to wait for the cluster: the
// 1-minute load average per core (at least 1, at most 8), times
// WALSTATE_TEST_TIMEOUT_SCALE if set (a slow machine or a sanitizer build).
double LoadScale();
// `base` times LoadScale(): the deadline of a wait for the cluster.
absl::Duration Scaled(absl::Duration base);

// Path of a binary in this test's runfiles ("tests/replication/x").
std::string RunfilePath(const std::string& path);

}  // namespace testing
}  // namespace walstate

#endif  // WALSTATE_TESTS_REPLICATION_CLUSTER_H_
