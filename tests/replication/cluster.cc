#include "tests/replication/cluster.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

extern char** environ;

namespace walstate {
namespace testing {

absl::StatusOr<Cluster> Cluster::FromEnv() {
  const char* url = std::getenv("WALSTATE_NATS_URL");
  const char* dir = std::getenv("WALSTATE_NATS_CLUSTER");
  const char* script = std::getenv("WALSTATE_NATS_SCRIPT");
  if (url == nullptr || dir == nullptr || script == nullptr) {
    return absl::FailedPreconditionError(
        "no NATS cluster: run this test through `scripts/nats_cluster.sh run "
        "-- BINARY` (the Bazel target does), which sets WALSTATE_NATS_URL, "
        "WALSTATE_NATS_CLUSTER and WALSTATE_NATS_SCRIPT");
  }
  Cluster c;
  c.url_ = url;
  c.dir_ = dir;
  c.script_ = script;
  return c;
}

absl::Status Cluster::Script(const std::string& args) {
  const std::string cmd = absl::StrCat(script_, " ", args);
  const int rc = std::system(cmd.c_str());
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("`", cmd, "` failed: ", rc));
  }
  return absl::OkStatus();
}

absl::Status Cluster::Kill(int n, const char* signal) {
  return Script(absl::StrCat("kill ", dir_, " ", n, " ", signal));
}

absl::Status Cluster::KillAll() {
  return Script(absl::StrCat("killall ", dir_));
}

absl::Status Cluster::Restart(int n) {
  return Script(absl::StrCat("restart ", dir_, " ", n));
}

absl::Status Cluster::WaitLeader() {
  return Script(absl::StrCat("wait ", dir_));
}

absl::Status Cluster::EnsureAllUp() {
  return Script(absl::StrCat("ensure ", dir_));
}

double LoadScale() {
  double scale = 1.0;
  double load[1] = {0.0};
  const long cores = sysconf(_SC_NPROCESSORS_ONLN);
  if (getloadavg(load, 1) == 1 && cores > 0) {
    scale = std::min(8.0, std::max(1.0, load[0] / static_cast<double>(cores)));
  }
  const char* env = std::getenv("WALSTATE_TEST_TIMEOUT_SCALE");
  if (env != nullptr && std::atof(env) > 0) scale *= std::atof(env);
  return scale;
}

absl::Duration Scaled(absl::Duration base) { return base * LoadScale(); }

absl::StatusOr<std::unique_ptr<replication::NatsReplicator>>
Cluster::WaitForStream(const std::string& store) {
  const absl::Time start = absl::Now();
  const absl::Duration limit = Scaled(absl::Seconds(120));
  const absl::Time deadline = start + limit;
  replication::NatsOptions o;
  o.url = url_;
  o.store = store;
  o.create_stream = false;
  std::unique_ptr<replication::NatsReplicator> r;
  std::string waiting_for;
  absl::Status last;
  absl::Duration backoff = absl::Milliseconds(100);
  int polls = 0;
  while (true) {
    ++polls;
    // One request's wait, so that the loop (not a request) holds the
    // deadline.
    o.timeout = std::max(absl::Milliseconds(100),
                         std::min(absl::Seconds(2), deadline - absl::Now()));
    if (r == nullptr) {
      waiting_for =
          "a node to answer the stream's info (needs a JetStream metadata "
          "leader)";
      auto c = replication::NatsReplicator::Connect(o);
      if (c.ok()) {
        r = std::move(*c);
      } else {
        last = c.status();
      }
    }
    if (r != nullptr) {
      waiting_for = "the stream to elect a leader";
      auto leader = r->StreamLeader();
      if (!leader.ok()) {
        last = leader.status();
        r = nullptr;  // reconnect: maybe to a node that knows more
      } else if (leader->empty()) {
        last = absl::UnavailableError("stream info names no leader");
      } else {
        waiting_for = absl::StrCat("the stream's leader (", *leader,
                                   ") to serve its last log message");
        auto pos = r->Peek();
        if (pos.ok()) {
          // Readable: a connection whose requests wait long enough for
          // what follows (a restore's reads ride out a late leader change).
          o.timeout = Scaled(absl::Seconds(30));
          auto reading = replication::NatsReplicator::Connect(o);
          if (reading.ok()) return reading;
          last = reading.status();
        } else {
          last = pos.status();
        }
      }
    }
    if (absl::Now() + backoff >= deadline) break;
    absl::SleepFor(backoff);  // bounded backoff between polls
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "stream of store ", store, " at ", url_, " not readable after ",
      absl::FormatDuration(absl::Now() - start), " (", polls,
      " polls; deadline ", absl::FormatDuration(limit),
      " = 120 s x load scale ", LoadScale(), "): still waiting for ",
      waiting_for, "; last error: ", last.ToString(), ". The nodes' logs are ",
      dir_,
      "/n1.log..n3.log; on a slower machine set WALSTATE_TEST_TIMEOUT_SCALE"));
}

absl::StatusOr<replication::RestoreReport> Cluster::Restore(
    const std::string& store, const std::string& dir) {
  auto r = WaitForStream(store);
  if (!r.ok()) return r.status();
  return replication::Restore(r->get(), FileSystem::Default(), dir);
}

std::string RunfilePath(const std::string& path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir == nullptr) return path;
  return absl::StrCat(srcdir, "/",
                      workspace != nullptr ? workspace : "walstate", "/", path);
}

absl::StatusOr<std::unique_ptr<WriterProcess>> WriterProcess::Start(
    const std::vector<std::string>& args) {
  int fds[2];
  if (pipe(fds) != 0) return absl::InternalError("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  posix_spawn_file_actions_addclose(&actions, fds[1]);
  std::vector<char*> argv;
  for (const std::string& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  auto p = std::make_unique<WriterProcess>();
  const int rc =
      posix_spawn(&p->pid_, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    return absl::InternalError(absl::StrCat("cannot start ", args[0]));
  }
  p->fd_ = fds[0];
  return p;
}

WriterProcess::~WriterProcess() {
  if (pid_ > 0) KillAndDrain();
  if (fd_ >= 0) close(fd_);
}

bool WriterProcess::ReadLine(std::string* line) {
  while (true) {
    const size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      *line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return true;
    }
    char buf[4096];
    const ssize_t n = read(fd_, buf, sizeof(buf));
    if (n <= 0) return false;
    buffer_.append(buf, static_cast<size_t>(n));
  }
}

void WriterProcess::Handle(const std::string& line) {
  absl::StrAppend(&output_, line, "\n");
  std::vector<std::string> parts = absl::StrSplit(line, ' ');
  if (parts.size() == 3 && parts[0] == "durable" && parts[1] == "LSN") {
    durable_lsn_ = std::strtoull(parts[2].c_str(), nullptr, 10);
  }
  if (parts[0] == "ack" && parts.size() == 3) {
    acked_[parts[1]] = std::strtoull(parts[2].c_str(), nullptr, 10);
    ack_count_++;
  } else if (parts[0] == "open") {
    opened_ = true;
  } else if (parts[0] == "fail") {
    failure_ = line;
  }
}

bool WriterProcess::ReadUntil(const std::function<bool()>& done) {
  std::string line;
  while (!done()) {
    if (!ReadLine(&line)) return false;
    Handle(line);
    if (!failure_.empty()) return false;
  }
  return true;
}

bool WriterProcess::ReadUntilAcks(size_t acks) {
  return ReadUntil([&] { return ack_count_ >= acks; });
}

bool WriterProcess::ReadUntilDurable(uint64_t lsn) {
  return ReadUntil([&] { return durable_lsn_ >= lsn; });
}

int WriterProcess::TerminateAndWait() {
  if (pid_ > 0) kill(pid_, SIGTERM);
  Drain();
  return exit_code_;
}

void WriterProcess::KillAndDrain() {
  if (pid_ > 0) kill(pid_, SIGKILL);
  Drain();
}

void WriterProcess::Drain() {
  std::string line;
  while (ReadLine(&line)) Handle(line);
  if (pid_ > 0) {
    int status = 0;
    waitpid(pid_, &status, 0);
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    pid_ = -1;
  }
}

}  // namespace testing
}  // namespace walstate
