#include "tests/replication/cluster.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

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

absl::StatusOr<std::unique_ptr<replication::NatsReplicator>>
Cluster::WaitForStream(const std::string& store) {
  replication::NatsOptions o;
  o.url = url_;
  o.store = store;
  o.create_stream = false;
  o.timeout = absl::Seconds(2);
  absl::Status last;
  // Bounded: a restarted cluster elects the stream's leader in seconds.
  for (int attempt = 0; attempt < 60; ++attempt) {
    auto r = replication::NatsReplicator::Connect(o);
    if (r.ok()) {
      auto pos = (*r)->Peek();
      if (pos.ok()) return std::move(*r);
      last = pos.status();
    } else {
      last = r.status();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("stream of store ", store,
                   " not readable after 60 attempts: ", last.ToString()));
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
  std::vector<std::string> parts = absl::StrSplit(line, ' ');
  if (parts[0] == "ack" && parts.size() == 3) {
    acked_[parts[1]] = std::strtoull(parts[2].c_str(), nullptr, 10);
    ack_count_++;
  } else if (parts[0] == "open") {
    opened_ = true;
  } else if (parts[0] == "fail") {
    failure_ = line;
  }
}

bool WriterProcess::ReadUntilAcks(size_t acks) {
  std::string line;
  while (ack_count_ < acks) {
    if (!ReadLine(&line)) return false;
    Handle(line);
    if (!failure_.empty()) return false;
  }
  return true;
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
    pid_ = -1;
  }
}

}  // namespace testing
}  // namespace walstate
