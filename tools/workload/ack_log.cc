#include "tools/workload/ack_log.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace walstate {
namespace workload {
namespace {

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::InternalError(
      absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

absl::StatusOr<std::string> ReadAll(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open ack log", path);
  std::string data;
  char buf[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status s = Errno("cannot read ack log", path);
      ::close(fd);
      return s;
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return data;
}

}  // namespace

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

absl::StatusOr<std::unique_ptr<AckLogWriter>> AckLogWriter::Open(
    const std::string& path) {
  const int fd =
      ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("cannot open ack log", path);
  // Drop a line cut by a kill (write(2) of a regular file can stop short when
  // SIGKILL arrives in the middle of it).
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    absl::Status s = Errno("cannot stat ack log", path);
    ::close(fd);
    return s;
  }
  if (st.st_size > 0) {
    auto data = ReadAll(path);
    if (!data.ok()) {
      ::close(fd);
      return data.status();
    }
    const size_t keep =
        data->rfind('\n') == std::string::npos ? 0 : data->rfind('\n') + 1;
    if (keep != data->size() && ::ftruncate(fd, keep) != 0) {
      absl::Status s = Errno("cannot cut the partial last line of", path);
      ::close(fd);
      return s;
    }
  }
  return std::unique_ptr<AckLogWriter>(new AckLogWriter(path, fd));
}

AckLogWriter::~AckLogWriter() { ::close(fd_); }

absl::Status AckLogWriter::Append(absl::string_view line) {
  std::string buf;
  buf.reserve(line.size() + 1);
  buf.append(line.data(), line.size());
  buf.push_back('\n');
  size_t done = 0;
  while (done < buf.size()) {
    const ssize_t n = ::write(fd_, buf.data() + done, buf.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("cannot write ack log", path_);
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status AckLogWriter::Sync() {
  if (::fdatasync(fd_) != 0) return Errno("cannot sync ack log", path_);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ReadAckLog(const std::string& path,
                                                    int* cut_lines) {
  auto data = ReadAll(path);
  if (!data.ok()) return data.status();
  *cut_lines = 0;
  std::vector<std::string> lines = absl::StrSplit(*data, '\n');
  // The split leaves "" after a final newline, or the cut last line.
  if (!lines.empty()) {
    if (!lines.back().empty()) *cut_lines = 1;
    lines.pop_back();
  }
  return lines;
}

}  // namespace workload
}  // namespace walstate
