// Runs a store's blocking calls (IMMEDIATE updates, deletes, flush, compact,
// close) on threads of its own and settles their Promises on the JS thread,
// so the event loop never waits for an fdatasync.
//
// Concurrent IMMEDIATE updates run on different threads at once, so the
// engine's group commit lets them share one fdatasync, as C++ callers do.
// Threads are started on demand, up to `max_threads`. While jobs are pending
// the store's JS object is held (it cannot be collected) and the event loop is
// kept alive, as a pending fs write would keep it; when idle, neither.
#ifndef WALSTATE_BINDINGS_NODE_COMMITTER_H_
#define WALSTATE_BINDINGS_NODE_COMMITTER_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "napi.h"

namespace walstate {
namespace node {

class Committer {
 public:
  // What a job yields: a status, and a number for the Promise if it has one.
  using Op = std::function<absl::StatusOr<uint64_t>()>;
  // How a job's result becomes the Promise's value.
  enum class ResolveAs { kUndefined, kBoolean, kNumber };

  // Errors become JS Errors through `make_error` (status -> Error).
  using ErrorMaker = Napi::Error (*)(Napi::Env, const absl::Status&);

  // Creates an idle committer for the JS object `owner`. Delete it only
  // through Stop().
  static Committer* Create(Napi::Env env, Napi::Object owner,
                           size_t max_threads, ErrorMaker make_error);

  // Queues `op` and returns the Promise its result settles. `barrier`: the
  // op runs only once every job queued before it has finished.
  Napi::Promise Submit(Napi::Env env, Op op, ResolveAs as,
                       bool barrier = false);

  // Waits for every queued job to finish and joins the threads; then, if
  // `settle`, settles their Promises at once (on this, the JS thread).
  // Frees the committer once the JS runtime lets go of its wake-up handle:
  // do not use it after this call.
  void Stop(Napi::Env env, bool settle);

 private:
  struct Job {
    Op op;
    ResolveAs as;
    bool barrier;
    Napi::Promise::Deferred deferred;
    absl::StatusOr<uint64_t> result;
  };
  static void CallJs(Napi::Env env, Napi::Function, Committer* self, void*);
  using Wakeup = Napi::TypedThreadSafeFunction<Committer, void, CallJs>;

  Committer(size_t max_threads, ErrorMaker make_error)
      : max_threads_(max_threads), make_error_(make_error) {}
  void Run();
  // Settles the Promises of finished jobs; JS thread only.
  void Settle(Napi::Env env);

  const size_t max_threads_;
  const ErrorMaker make_error_;
  Wakeup wakeup_;
  Napi::ObjectReference owner_;  // strong while jobs are pending
  // JS thread only.
  uint64_t pending_ = 0;
  std::vector<std::thread> threads_;

  std::mutex mu_;
  std::condition_variable work_cv_;  // a job was queued, or stop
  std::condition_variable idle_cv_;  // a job finished
  std::deque<Job*> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<Job*> done_ ABSL_GUARDED_BY(mu_);
  size_t running_ ABSL_GUARDED_BY(mu_) = 0;
  size_t idle_threads_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace node
}  // namespace walstate

#endif  // WALSTATE_BINDINGS_NODE_COMMITTER_H_
