#include "committer.h"

#include <utility>

namespace walstate {
namespace node {

Committer* Committer::Create(Napi::Env env, Napi::Object owner,
                             size_t max_threads, ErrorMaker make_error) {
  Committer* c = new Committer(max_threads < 1 ? 1 : max_threads, make_error);
  c->wakeup_ =
      Wakeup::New(env, "walstate", 0, 1, c,
                  [](Napi::Env, void*, Committer* self) { delete self; });
  c->wakeup_.Unref(env);
  c->owner_ = Napi::Weak(owner);
  return c;
}

Napi::Promise Committer::Submit(Napi::Env env, Op op, ResolveAs as,
                                bool barrier) {
  Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
  Napi::Promise promise = deferred.Promise();
  Job* job = new Job{std::move(op), as, barrier, std::move(deferred),
                     absl::StatusOr<uint64_t>(0)};
  if (pending_++ == 0) {
    wakeup_.Ref(env);
    owner_.Ref();
  }
  bool spawn = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(job);
    spawn = idle_threads_ == 0 && threads_.size() < max_threads_;
  }
  if (spawn) {
    threads_.emplace_back([this] { Run(); });
  } else {
    work_cv_.notify_one();
  }
  return promise;
}

void Committer::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    ++idle_threads_;
    work_cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    --idle_threads_;
    if (queue_.empty()) return;  // stop_, nothing left
    Job* job = queue_.front();
    queue_.pop_front();
    if (job->barrier) {
      idle_cv_.wait(lock, [this] { return running_ == 0; });
    }
    ++running_;
    lock.unlock();
    job->result = job->op();
    job->op = nullptr;  // frees what the op captured off the JS thread
    lock.lock();
    --running_;
    const bool first = done_.empty();
    done_.push_back(job);
    idle_cv_.notify_all();
    if (first) {
      lock.unlock();
      // napi_closing once the runtime is shutting down: Stop() settles.
      wakeup_.NonBlockingCall();
      lock.lock();
    }
  }
}

void Committer::CallJs(Napi::Env env, Napi::Function, Committer* self, void*) {
  if (env != nullptr) self->Settle(env);
}

void Committer::Settle(Napi::Env env) {
  std::vector<Job*> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    done.swap(done_);
  }
  if (done.empty()) return;
  Napi::HandleScope scope(env);
  for (Job* job : done) {
    if (!job->result.ok()) {
      job->deferred.Reject(make_error_(env, job->result.status()).Value());
    } else if (job->as == ResolveAs::kBoolean) {
      job->deferred.Resolve(Napi::Boolean::New(env, *job->result != 0));
    } else if (job->as == ResolveAs::kNumber) {
      job->deferred.Resolve(
          Napi::Number::New(env, static_cast<double>(*job->result)));
    } else {
      job->deferred.Resolve(env.Undefined());
    }
    delete job;
  }
  pending_ -= done.size();
  if (pending_ == 0) {
    wakeup_.Unref(env);
    owner_.Unref();
  }
}

void Committer::Stop(Napi::Env env, bool settle) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  if (settle) {
    Settle(env);
  } else {
    std::lock_guard<std::mutex> lock(mu_);
    for (Job* job : done_) delete job;
    done_.clear();
  }
  // The finalizer deletes this once the runtime drops the handle.
  wakeup_.Release();
}

}  // namespace node
}  // namespace walstate
