// Mutex, MutexLock and CondVar: std::mutex with clang's thread-safety
// annotations, so that ABSL_GUARDED_BY and ABSL_EXCLUSIVE_LOCKS_REQUIRED on
// what a mutex guards are checked by the compiler (clang -Wthread-safety; GCC
// ignores the annotations).
//
// std::mutex rather than absl::Mutex underneath: Debian's Abseil is not built
// with TSan instrumentation, so TSan could not see absl::Mutex's
// synchronization. Mutex derives from std::mutex so that CondVar can wait on
// it through std::condition_variable (and code that holds it through
// std::lock_guard<std::mutex> compiles, unchecked by the analysis); checked
// code takes a MutexLock.
#ifndef WALSTATE_ENGINE_UTIL_MUTEX_H_
#define WALSTATE_ENGINE_UTIL_MUTEX_H_

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"

namespace walstate {

class ABSL_LOCKABLE Mutex : public std::mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { std::mutex::lock(); }
  void unlock() ABSL_UNLOCK_FUNCTION() { std::mutex::unlock(); }
  bool try_lock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) {
    return std::mutex::try_lock();
  }
  // For code the analysis cannot follow (a lock held by the caller of a
  // callback): tells it that the lock is held here.
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() {}
};

// Holds `mu` for its scope.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->lock();
  }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// A condition variable for Mutex: waits with the mutex held on entry and on
// return, so that the analysis sees the guarded state checked under it.
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  // Releases `mu`, waits until notified (or spuriously), and takes `mu`
  // again. Callers loop over the condition they wait for.
  void Wait(Mutex* mu) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::unique_lock<std::mutex> lock(*mu, std::adopt_lock);
    cv_.wait(lock);
    lock.release();  // still held: the caller's
  }
  // Releases `mu`, waits until notified or `deadline` passes (or spuriously),
  // and takes `mu` again. Returns false if the deadline passed. Callers loop
  // over the condition they wait for.
  bool WaitUntil(Mutex* mu, std::chrono::steady_clock::time_point deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::unique_lock<std::mutex> lock(*mu, std::adopt_lock);
    const std::cv_status st = cv_.wait_until(lock, deadline);
    lock.release();  // still held: the caller's
    return st == std::cv_status::no_timeout;
  }
  void NotifyAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace walstate

#endif  // WALSTATE_ENGINE_UTIL_MUTEX_H_
