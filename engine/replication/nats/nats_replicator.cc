#include "engine/replication/nats/nats_replicator.h"

#include <nats/nats.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "engine/replication/wire.h"

namespace walstate {
namespace replication {

struct NatsReplicator::Conn {
  natsOptions* opts = nullptr;
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  ~Conn() {
    if (js != nullptr) jsCtx_Destroy(js);
    if (nc != nullptr) {
      natsConnection_Close(nc);
      natsConnection_Destroy(nc);
    }
    if (opts != nullptr) natsOptions_Destroy(opts);
  }
};

namespace {

constexpr char kWriterHeader[] = "Walstate-Writer";

// The client's own text for the last error, with the JetStream code if any.
std::string NatsText(natsStatus s, jsErrCode jerr) {
  natsStatus last = NATS_OK;
  const char* detail = nats_GetLastError(&last);
  std::string out = natsStatus_GetText(s);
  if (detail != nullptr && *detail != '\0') absl::StrAppend(&out, ": ", detail);
  if (jerr != 0) absl::StrAppend(&out, " (JetStream error ", jerr, ")");
  return out;
}

absl::Status FromNats(natsStatus s, jsErrCode jerr, absl::string_view what) {
  const std::string text = absl::StrCat(what, ": ", NatsText(s, jerr));
  switch (s) {
    case NATS_TIMEOUT:
      return absl::DeadlineExceededError(text);
    case NATS_NO_RESPONDERS:
    case NATS_CONNECTION_CLOSED:
    case NATS_NO_SERVER:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_STALE_CONNECTION:
      return absl::UnavailableError(text);
    case NATS_NOT_FOUND:
      return absl::NotFoundError(text);
    default:
      return absl::UnavailableError(text);
  }
}

int64_t Millis(absl::Duration d) { return absl::ToInt64Milliseconds(d); }

// The version in the INFO line a NATS server sends first on a connection.
std::string ReadServerVersion(const std::string& url, absl::Duration timeout) {
  absl::string_view hostport = url;
  absl::ConsumePrefix(&hostport, "nats://");
  const size_t at = hostport.rfind('@');
  if (at != absl::string_view::npos) hostport.remove_prefix(at + 1);
  const size_t colon = hostport.rfind(':');
  if (colon == absl::string_view::npos) return "";
  const std::string host(hostport.substr(0, colon));
  const std::string port(hostport.substr(colon + 1));
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0) return "";
  std::string line;
  const int fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
  if (fd >= 0) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(absl::ToInt64Seconds(timeout)) + 1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
      char buf[4096];
      while (line.find('\n') == std::string::npos && line.size() < 65536) {
        const ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0) break;
        line.append(buf, static_cast<size_t>(n));
      }
    }
    close(fd);
  }
  freeaddrinfo(res);
  const std::string key = "\"version\":\"";
  const size_t p = line.find(key);
  if (p == std::string::npos) return "";
  const size_t end = line.find('"', p + key.size());
  if (end == std::string::npos) return "";
  return line.substr(p + key.size(), end - p - key.size());
}

bool ValidStoreName(const std::string& name) {
  if (name.empty() || name.size() > 200) return false;
  for (char c : name) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) {
      return false;
    }
  }
  return true;
}

}  // namespace

ServerDurability NatsReplicator::DurabilityOf(const std::string& version) {
  ServerDurability d;
  d.server_version = version.empty() ? "unknown" : version;
  int major = 0, minor = 0, patch = 0;
  std::sscanf(version.c_str(), "%d.%d.%d", &major, &minor, &patch);
  const bool newer = major > 2 || (major == 2 && minor >= 10);
  d.fsync_before_ack_possible = newer;
  if (newer) {
    d.description = absl::StrCat(
        "nats-server ", d.server_version,
        ": an ack follows an fsync on a quorum only if the servers run with "
        "`jetstream { sync_interval: always }` (walstate cannot see that "
        "setting); by default an ack means in memory on a quorum, flushed "
        "every 2 minutes");
    if (major == 2 && minor == 10 && patch >= 20 && patch <= 22) {
      absl::StrAppend(&d.description,
                      ". WARNING: 2.10.20-2.10.22 can lose whole streams on a "
                      "process crash; upgrade to 2.10.23 or later");
    }
  } else {
    d.description = absl::StrCat(
        "nats-server ", d.server_version,
        ": an ack means in memory on a quorum of the stream's replicas, not "
        "fsynced (this version has no sync_interval: always; replicas flush "
        "every 2 minutes): survives losing the writer machine, a minority "
        "of NATS nodes, or every NATS process (page cache), not a "
        "correlated power loss of the NATS nodes");
  }
  return d;
}

NatsReplicator::NatsReplicator(const NatsOptions& options)
    : options_(options) {}

NatsReplicator::~NatsReplicator() = default;

absl::StatusOr<std::unique_ptr<NatsReplicator>> NatsReplicator::Connect(
    const NatsOptions& options) {
  if (!ValidStoreName(options.store)) {
    return absl::InvalidArgumentError(
        absl::StrCat("replication store name \"", options.store,
                     "\" must be 1..200 letters, digits, '-' or '_'"));
  }
  std::unique_ptr<NatsReplicator> r(new NatsReplicator(options));
  absl::Status s = r->Open();
  if (!s.ok()) return s;
  return r;
}

absl::Status NatsReplicator::Open() {
  stream_ = absl::StrCat("WALSTATE_", options_.store);
  log_subject_ = absl::StrCat("walstate.", options_.store, ".log");
  snap_subject_ = absl::StrCat("walstate.", options_.store, ".snap");
  conn_ = std::make_unique<Conn>();
  std::vector<std::string> urls = absl::StrSplit(options_.url, ',');
  std::vector<const char*> servers;
  for (const std::string& u : urls) servers.push_back(u.c_str());
  natsStatus s = natsOptions_Create(&conn_->opts);
  if (s == NATS_OK) {
    s = natsOptions_SetServers(conn_->opts, servers.data(),
                               static_cast<int>(servers.size()));
  }
  if (s == NATS_OK) {
    s = natsOptions_SetTimeout(conn_->opts, Millis(options_.timeout));
  }
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(conn_->opts, -1);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(conn_->opts, 100);
  if (s == NATS_OK) s = natsConnection_Connect(&conn_->nc, conn_->opts);
  if (s != NATS_OK) {
    return FromNats(s, static_cast<jsErrCode>(0),
                    absl::StrCat("connecting to NATS at ", options_.url,
                                 " (is the cluster running?)"));
  }
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = Millis(options_.timeout);
  s = natsConnection_JetStream(&conn_->js, conn_->nc, &jo);
  if (s != NATS_OK)
    return FromNats(s, static_cast<jsErrCode>(0), "opening JetStream");

  const int64_t max_payload = natsConnection_GetMaxPayload(conn_->nc);
  max_body_ = static_cast<size_t>(std::max<int64_t>(max_payload, 4096)) -
              kMessageHeaderSize - 1024;  // room for the NATS headers
  if (options_.max_message_bytes > 0) {
    max_body_ = std::min(max_body_, options_.max_message_bytes);
  }
  char url[256] = {0};
  natsConnection_GetConnectedUrl(conn_->nc, url, sizeof(url));
  durability_ = DurabilityOf(ReadServerVersion(url, options_.timeout));
  trim_ = options_.trim == NatsOptions::Trim::kAlways ||
          (options_.trim == NatsOptions::Trim::kAuto &&
           durability_.fsync_before_ack_possible);
  if (!trim_) {
    absl::StrAppend(&durability_.description,
                    "; the stream is not trimmed after snapshots (a purge "
                    "on 2.9.10 lost acknowledged messages when every server "
                    "was killed at once)");
  }

  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  // A cluster that just (re)started answers "temporarily unavailable" until
  // its leaders are elected: asked again until the timeout.
  const absl::Time deadline = absl::Now() + options_.timeout;
  while (true) {
    jerr = static_cast<jsErrCode>(0);
    s = js_GetStreamInfo(&si, conn_->js, stream_.c_str(), nullptr, &jerr);
    const bool transient = s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS ||
                           jerr == JSClusterNotAvailErr;
    if (!transient || absl::Now() + absl::Milliseconds(100) >= deadline) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  if (s == NATS_OK) {
    jsStreamInfo_Destroy(si);
    return absl::OkStatus();
  }
  if (s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr) {
    return FromNats(s, jerr, absl::StrCat("looking up stream ", stream_));
  }
  if (!options_.create_stream) {
    return absl::NotFoundError(absl::StrCat(
        "stream ", stream_, " does not exist at ", options_.url,
        ": no writer with replication has opened store ", options_.store));
  }
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  const char* subjects[] = {log_subject_.c_str(), snap_subject_.c_str()};
  cfg.Name = stream_.c_str();
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 2;
  cfg.Storage = js_FileStorage;
  cfg.Replicas = options_.replicas;
  cfg.Retention = js_LimitsPolicy;
  jerr = static_cast<jsErrCode>(0);
  s = js_AddStream(&si, conn_->js, &cfg, nullptr, &jerr);
  if (s != NATS_OK) {
    return FromNats(s, jerr,
                    absl::StrCat("creating stream ", stream_, " (",
                                 options_.replicas, " replicas)"));
  }
  jsStreamInfo_Destroy(si);
  return absl::OkStatus();
}

absl::StatusOr<std::string> NatsReplicator::StreamLeader() {
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s =
      js_GetStreamInfo(&si, conn_->js, stream_.c_str(), nullptr, &jerr);
  if (s != NATS_OK) {
    return FromNats(s, jerr, absl::StrCat("looking up stream ", stream_));
  }
  std::string leader;
  if (si->Cluster != nullptr && si->Cluster->Leader != nullptr) {
    leader = si->Cluster->Leader;
  }
  jsStreamInfo_Destroy(si);
  return leader;
}

std::string NatsReplicator::Describe() const {
  return absl::StrCat("stream ", stream_, " at ", options_.url);
}

absl::StatusOr<StreamPosition> NatsReplicator::Peek() {
  StreamPosition pos;
  natsMsg* msg = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetLastMsg(&msg, conn_->js, stream_.c_str(),
                               log_subject_.c_str(), nullptr, &jerr);
  if (s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr) return pos;
  if (s != NATS_OK) {
    return FromNats(s, jerr, absl::StrCat("reading the end of ", log_subject_));
  }
  const char* writer = nullptr;
  if (natsMsgHeader_Get(msg, kWriterHeader, &writer) == NATS_OK &&
      writer != nullptr) {
    pos.last_writer = writer;
  }
  MessageHeader h;
  absl::string_view body;
  absl::Status d = DecodeMessage(
      absl::string_view(natsMsg_GetData(msg), natsMsg_GetDataLength(msg)), &h,
      &body);
  const uint64_t seq = natsMsg_GetSequence(msg);
  natsMsg_Destroy(msg);
  if (!d.ok()) {
    return absl::DataLossError(
        absl::StrCat(Describe(), " message ", seq, ": ", d.message()));
  }
  pos.last_lsn = h.last_lsn;
  pos.last_seq = seq;
  return pos;
}

absl::StatusOr<StreamPosition> NatsReplicator::Claim(
    const std::string& writer, bool takeover, const std::string& schema) {
  std::lock_guard<std::mutex> lock(mu_);
  auto pos = Peek();
  if (!pos.ok()) return pos.status();
  if (!pos->last_writer.empty() && pos->last_writer != writer && !takeover) {
    return absl::FailedPreconditionError(absl::StrCat(
        "store ", options_.store, " (", Describe(), ") is held by writer \"",
        pos->last_writer, "\", not \"", writer,
        "\". A store has one writer: take it over explicitly "
        "(Options::replication.takeover, or `walctl takeover`) once that "
        "writer is gone"));
  }
  MessageHeader h;
  h.kind = MessageKind::kClaim;
  h.first_lsn = pos->last_lsn;
  h.last_lsn = pos->last_lsn;
  std::string message;
  EncodeMessage(h, EncodeClaim(writer, schema), &message);
  writer_ = writer;
  auto seq = Publish(log_subject_, writer_, message,
                     absl::StrCat("claim-", pos->last_seq, "-", writer),
                     pos->last_seq, pos->last_seq == 0);
  if (!seq.ok()) {
    if (absl::IsAborted(seq.status())) {
      return absl::AbortedError(absl::StrCat("claiming store ", options_.store,
                                             ": another writer published at "
                                             "the same time (",
                                             seq.status().message(),
                                             "); try again"));
    }
    return seq.status();
  }
  epoch_ = *seq;
  log_seq_ = *seq;
  deposed_ = false;
  published_.clear();
  return *pos;
}

absl::StatusOr<uint64_t> NatsReplicator::Publish(
    const std::string& subject, const std::string& writer,
    const std::string& message, const std::string& msg_id,
    uint64_t expect_last_subject_seq, bool expect_none) {
  natsMsg* msg = nullptr;
  natsStatus s = natsMsg_Create(&msg, subject.c_str(), nullptr, message.data(),
                                static_cast<int>(message.size()));
  if (s != NATS_OK)
    return FromNats(s, static_cast<jsErrCode>(0), "creating a NATS message");
  if (!writer.empty()) natsMsgHeader_Set(msg, kWriterHeader, writer.c_str());
  if (expect_none) {
    // "No message on this subject yet": the client's ExpectLastSubjectSeq
    // cannot say 0, the header can.
    natsMsgHeader_Set(msg, "Nats-Expected-Last-Subject-Sequence", "0");
  }
  // Until acknowledged or the deadline: a stream electing a new leader (a
  // node died) answers "no responders" or nothing for a moment. Repeating
  // a publish is safe, unlike repeating an fsync: the message id makes the
  // stream acknowledge a repeat of a stored message without storing it
  // again (its duplicate window is 2 minutes).
  const absl::Time deadline = absl::Now() + options_.timeout;
  jsPubAck* ack = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  int attempts = 0;
  while (true) {
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = std::max<int64_t>(1, Millis(deadline - absl::Now()));
    po.MsgId = msg_id.c_str();
    if (!expect_none) po.ExpectLastSubjectSeq = expect_last_subject_seq;
    jerr = static_cast<jsErrCode>(0);
    ++attempts;
    s = js_PublishMsg(&ack, conn_->js, msg, &po, &jerr);
    if (s == NATS_OK || jerr == JSStreamWrongLastSequenceErr) break;
    const bool transient =
        s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS ||
        s == NATS_CONNECTION_DISCONNECTED || s == NATS_CONNECTION_CLOSED ||
        jerr == JSClusterNotAvailErr || jerr == JSStreamNotFoundErr;
    if (!transient || absl::Now() + absl::Milliseconds(100) >= deadline) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  natsMsg_Destroy(msg);
  if (s != NATS_OK) {
    if (jerr == JSStreamWrongLastSequenceErr) {
      return absl::AbortedError(NatsText(s, jerr));
    }
    return FromNats(
        s, jerr,
        absl::StrCat("publishing ", message.size(), " bytes to ", subject,
                     " (no acknowledgement after ", attempts, " attempts in ",
                     absl::FormatDuration(options_.timeout), ")"));
  }
  const uint64_t seq = ack->Sequence;
  jsPubAck_Destroy(ack);
  return seq;
}

absl::StatusOr<uint64_t> NatsReplicator::PublishFencedLocked(
    const std::string& message, const std::string& msg_id) {
  if (deposed_) {
    return absl::AbortedError(
        absl::StrCat("this writer (\"", writer_, "\") was deposed from store ",
                     options_.store, " and publishes nothing more"));
  }
  auto seq =
      Publish(log_subject_, writer_, message, msg_id, log_seq_, log_seq_ == 0);
  if (seq.ok()) {
    log_seq_ = std::max(log_seq_, *seq);
    return seq;
  }
  if (absl::IsAborted(seq.status())) {
    deposed_ = true;
    auto now = Peek();
    const std::string by =
        now.ok() ? absl::StrCat("writer \"", now->last_writer, "\"")
                 : std::string("another writer");
    return absl::AbortedError(absl::StrCat(
        "deposed: ", Describe(), " refused this writer's (\"", writer_,
        "\") publish (", seq.status().message(), "): store ", options_.store,
        " was claimed by ", by,
        ". This writer stopped; its later records are not in the stream. "
        "Do not reopen this directory as a writer: restore the store from "
        "the stream if this machine is to write again"));
  }
  return seq;
}

absl::Status NatsReplicator::PublishLog(uint64_t salt, uint64_t first_lsn,
                                        uint64_t last_lsn,
                                        absl::string_view frames) {
  std::lock_guard<std::mutex> lock(mu_);
  if (epoch_ == 0) {
    return absl::FailedPreconditionError(
        "replication: publish before the store was claimed");
  }
  for (const LogPart& part : SplitFrames(frames, first_lsn, max_body_)) {
    MessageHeader h;
    h.kind = MessageKind::kLog;
    h.flags = part.continues ? kFlagContinues : 0;
    h.salt = salt;
    h.first_lsn = part.first_lsn;
    h.last_lsn = part.last_lsn;
    std::string message;
    EncodeMessage(h, frames.substr(part.offset, part.size), &message);
    if (options_.tamper_log_message) options_.tamper_log_message(&message);
    auto seq = PublishFencedLocked(
        message,
        absl::StrCat(epoch_, "-", salt, "-", first_lsn, "-", part.offset));
    if (!seq.ok()) return seq.status();
    published_.emplace_back(*seq, part.last_lsn);
  }
  (void)last_lsn;
  return absl::OkStatus();
}

absl::Status NatsReplicator::Purge(const std::string& subject,
                                   uint64_t before_seq) {
  if (before_seq <= 1) return absl::OkStatus();
  jsOptions o;
  jsOptions_Init(&o);
  o.Wait = Millis(options_.timeout);
  if (!subject.empty()) o.Stream.Purge.Subject = subject.c_str();
  o.Stream.Purge.Sequence = before_seq;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_PurgeStream(conn_->js, stream_.c_str(), &o, &jerr);
  if (s != NATS_OK) {
    return FromNats(
        s, jerr,
        absl::StrCat("purging ", subject, " before sequence ", before_seq,
                     " (the snapshot is published; "
                     "the stream keeps older messages)"));
  }
  return absl::OkStatus();
}

absl::Status NatsReplicator::PublishSnapshot(FileSystem* fs,
                                             const std::string& path,
                                             uint64_t lsn) {
  std::lock_guard<std::mutex> snap_lock(snap_mu_);
  std::string file;
  absl::Status st = fs->ReadFile(path, &file);
  if (!st.ok()) return st;
  uint64_t epoch;
  uint64_t last_lsn = 0;
  std::string writer;
  {
    std::lock_guard<std::mutex> lock(mu_);
    epoch = epoch_;
    writer = writer_;
    if (!published_.empty()) last_lsn = published_.back().second;
  }
  if (epoch == 0) {
    return absl::FailedPreconditionError(
        "replication: snapshot before the store was claimed");
  }
  const size_t chunk =
      std::max<size_t>(1, std::min(options_.snapshot_chunk_bytes, max_body_));
  SnapshotManifest m;
  m.lsn = lsn;
  m.file_bytes = file.size();
  m.file_hash = XXH3_64bits(file.data(), file.size());
  m.file_name = path.substr(path.find_last_of('/') + 1);
  for (size_t off = 0; off < file.size(); off += chunk) {
    MessageHeader h;
    h.kind = MessageKind::kSnapshotChunk;
    h.salt = off;
    h.first_lsn = lsn;
    h.last_lsn = epoch;
    std::string message;
    EncodeMessage(h, absl::string_view(file).substr(off, chunk), &message);
    auto seq = Publish(snap_subject_, writer, message,
                       absl::StrCat(epoch, "-snap-", lsn, "-", off), 0, false);
    if (!seq.ok()) return seq.status();
    if (m.first_chunk_seq == 0) m.first_chunk_seq = *seq;
    m.chunks++;
  }
  MessageHeader h;
  h.kind = MessageKind::kSnapshotManifest;
  h.salt = epoch;
  h.first_lsn = lsn;
  std::string message;
  uint64_t keep_from = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!published_.empty()) last_lsn = published_.back().second;
    h.last_lsn = std::max(last_lsn, lsn);
    EncodeMessage(h, EncodeSnapshotManifest(m), &message);
    auto seq =
        PublishFencedLocked(message, absl::StrCat(epoch, "-manifest-", lsn));
    if (!seq.ok()) return seq.status();
    // Log messages holding a record after `lsn` stay, and so do the
    // manifest and the snapshot's chunks; everything before goes (one
    // purge of the stream up to the first of them).
    keep_from = *seq;
    while (!published_.empty() && published_.front().second <= lsn) {
      published_.pop_front();
    }
    if (!published_.empty())
      keep_from = std::min(keep_from, published_.front().first);
  }
  if (!trim_) return absl::OkStatus();
  return Purge("", std::min(keep_from, m.first_chunk_seq));
}

absl::Status NatsReplicator::ReadSubject(
    const std::string& subject, uint64_t from, uint64_t until,
    const std::function<absl::StatusOr<bool>(uint64_t, absl::string_view,
                                             absl::string_view)>& fn,
    absl::Duration idle_wait, const std::function<bool()>& idle) {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Ordered = true;
  if (from > 1) {
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = from;
  } else {
    so.Config.DeliverPolicy = js_DeliverAll;
  }
  so.Stream = stream_.c_str();
  natsSubscription* sub = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s =
      js_SubscribeSync(&sub, conn_->js, subject.c_str(), nullptr, &so, &jerr);
  if (s != NATS_OK) {
    return FromNats(s, jerr, absl::StrCat("reading ", subject));
  }
  absl::Status result;
  uint64_t seq = 0;
  while (seq < until) {
    natsMsg* msg = nullptr;
    s = natsSubscription_NextMsg(&msg, sub,
                                 Millis(idle ? idle_wait : options_.timeout));
    if (s == NATS_TIMEOUT && idle) {
      if (!idle()) break;
      continue;
    }
    if (s != NATS_OK) {
      result = FromNats(
          s, static_cast<jsErrCode>(0),
          absl::StrCat("reading ", subject, " of ", Describe(),
                       ": stopped after sequence ", seq, " of ", until));
      break;
    }
    jsMsgMetaData* meta = nullptr;
    if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
      seq = meta->Sequence.Stream;
      jsMsgMetaData_Destroy(meta);
    }
    const char* writer = nullptr;
    if (natsMsgHeader_Get(msg, kWriterHeader, &writer) != NATS_OK ||
        writer == nullptr) {
      writer = "";
    }
    auto more =
        fn(seq,
           absl::string_view(natsMsg_GetData(msg), natsMsg_GetDataLength(msg)),
           writer);
    natsMsg_Destroy(msg);
    if (!more.ok()) {
      result = more.status();
      break;
    }
    if (!*more) break;
  }
  natsSubscription_Unsubscribe(sub);
  natsSubscription_Destroy(sub);
  return result;
}

absl::Status NatsReplicator::TailLog(
    uint64_t from, absl::Duration idle_wait,
    const std::function<absl::StatusOr<bool>(uint64_t, absl::string_view,
                                             absl::string_view)>& fn,
    const std::function<bool()>& idle) {
  return ReadSubject(log_subject_, from, UINT64_MAX, fn,
                     std::max(idle_wait, absl::Milliseconds(1)), idle);
}

absl::Status NatsReplicator::ReadLog(
    const std::function<absl::Status(uint64_t, absl::string_view,
                                     absl::string_view)>& fn) {
  auto pos = Peek();
  if (!pos.ok()) return pos.status();
  if (pos->last_seq == 0) return absl::OkStatus();
  return ReadSubject(log_subject_, 1, pos->last_seq,
                     [&](uint64_t seq, absl::string_view msg,
                         absl::string_view writer) -> absl::StatusOr<bool> {
                       absl::Status s = fn(seq, msg, writer);
                       if (!s.ok()) return s;
                       return true;
                     });
}

absl::Status NatsReplicator::ReadSnapshot(
    uint64_t from,
    const std::function<absl::StatusOr<bool>(uint64_t, absl::string_view)>&
        fn) {
  natsMsg* msg = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetLastMsg(&msg, conn_->js, stream_.c_str(),
                               snap_subject_.c_str(), nullptr, &jerr);
  if (s != NATS_OK) {
    return absl::DataLossError(
        absl::StrCat(Describe(), ": the snapshot subject ", snap_subject_,
                     " holds no message, but a manifest names one (",
                     NatsText(s, jerr), ")"));
  }
  const uint64_t last = natsMsg_GetSequence(msg);
  natsMsg_Destroy(msg);
  return ReadSubject(snap_subject_, from, last,
                     [&](uint64_t seq, absl::string_view m, absl::string_view) {
                       return fn(seq, m);
                     });
}

}  // namespace replication
}  // namespace walstate
