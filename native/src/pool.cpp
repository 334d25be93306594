#include "pool.h"

#include <chrono>
#include <stdexcept>
#include <string>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BORT_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define BORT_PAUSE() __asm__ __volatile__("yield")
#else
#define BORT_PAUSE() ((void)0)
#endif

namespace bort {

namespace {
// Waiting (for the next job, or for the workers to finish one): spin with pause for kSpin, then
// yield the core for kYield (a descheduled thread of ours may be waiting for it), then sleep.
constexpr auto kSpin = std::chrono::microseconds(30);
constexpr auto kYield = std::chrono::microseconds(200);

// Waits until done() holds or the time is up; true if done.
template <class Done>
bool spin_then_yield(Done done) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 1;; ++i) {
    if (done()) return true;
    if ((i & 31) == 0) {
      const auto el = std::chrono::steady_clock::now() - t0;
      if (el > kSpin + kYield) return false;
      if (el > kSpin) {
        std::this_thread::yield();
        continue;
      }
    }
    BORT_PAUSE();
  }
}
}  // namespace

ThreadPool::ThreadPool(int threads) {
  if (threads < 1 || threads > kMaxThreads)
    throw std::invalid_argument("threads must be an integer in [1, " + std::to_string(kMaxThreads) + "], got " +
                                std::to_string(threads));
#if defined(__linux__)
  // the CPUs this process may run on (as the creating thread sees them)
  cpu_set_t all;
  CPU_ZERO(&all);
  if (sched_getaffinity(0, sizeof all, &all) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &all)) cpus_.push_back(c);
#endif
  workers_.reserve(threads - 1);
  // A worker that cannot start (std::system_error, or bad_alloc for its state) must not leave the
  // ones already running behind: a joinable std::thread destroyed by the unwinding would terminate the
  // process, and a worker never told to stop would wait forever.
  try {
    for (int t = 1; t < threads; ++t) workers_.emplace_back([this, t] { worker(t); });
  } catch (const std::exception& e) {
    const size_t started = workers_.size() + 1;
    stop_and_join();
    throw std::runtime_error("cannot start " + std::to_string(threads) + " threads (started " + std::to_string(started) +
                             "): " + e.what() + "; use fewer threads or raise the memory / process limits");
  }
}

void ThreadPool::stop_and_join() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  cv_.notify_all();
  for (auto& w : workers_)
    if (w.joinable()) w.join();
  workers_.clear();
}

ThreadPool::~ThreadPool() { stop_and_join(); }

void ThreadPool::begin_run() {
#if defined(__linux__)
  caller_pinned_ = false;
  if (workers_.empty() || (int)cpus_.size() < size()) return;
  const int c = sched_getcpu();
  if (c < 0) return;
  bool ours = false;
  for (int cpu : cpus_) ours |= cpu == c;
  if (!ours) return;
  // the caller stays on its CPU for the run (restored in end_run): otherwise, woken by a worker
  // after a wait, it may be placed on that worker's CPU
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(c, &one);
  CPU_ZERO(&caller_mask_);
  if (sched_getaffinity(0, sizeof caller_mask_, &caller_mask_) == 0 && CPU_COUNT(&caller_mask_) > 1 &&
      sched_setaffinity(0, sizeof one, &one) == 0)
    caller_pinned_ = true;
  if (c == caller_cpu_) return;
  caller_cpu_ = c;
  cpu_set_t m;
  CPU_ZERO(&m);
  for (int cpu : cpus_)
    if (cpu != c) CPU_SET(cpu, &m);
  for (auto& w : workers_) pthread_setaffinity_np(w.native_handle(), sizeof m, &m);
#endif
}

void ThreadPool::end_run() {
#if defined(__linux__)
  if (caller_pinned_) sched_setaffinity(0, sizeof caller_mask_, &caller_mask_);
  caller_pinned_ = false;
#endif
}

void ThreadPool::work(int tid) {
  const Job job = job_;
  for (;;) {
    const int t = next_.fetch_add(1, std::memory_order_relaxed);
    if (t >= job.ntasks) break;
    job.call(job.ctx, t, tid);
  }
}

void ThreadPool::dispatch(const Job& job) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    job_ = job;
    next_.store(0, std::memory_order_relaxed);
    pending_.store((int)workers_.size(), std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    if (sleepers_) cv_.notify_all();
  }
  work(0);
  // wait for the workers: spin briefly, then sleep (a descheduled worker must not cost a spinning core)
  auto finished = [&] { return pending_.load(std::memory_order_acquire) == 0; };
  if (!spin_then_yield(finished)) {
    std::unique_lock<std::mutex> lk(mu_);
    caller_waiting_ = true;
    done_cv_.wait(lk, finished);
    caller_waiting_ = false;
  }
}

void ThreadPool::worker(int tid) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t g = generation_.load(std::memory_order_acquire);
    if (g == seen) {
      spin_then_yield([&] { return (g = generation_.load(std::memory_order_acquire)) != seen; });
    }
    if (g == seen) {
      std::unique_lock<std::mutex> lk(mu_);
      ++sleepers_;
      cv_.wait(lk, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      --sleepers_;
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    if (stop_.load()) return;
    {
      // job_ is written under mu_ before the generation bump; reading it after observing the new
      // generation (acquire) is ordered.
      work(tid);
    }
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lk(mu_);
      if (caller_waiting_) done_cv_.notify_one();
    }
  }
}

}  // namespace bort
