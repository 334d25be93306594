// Persistent thread pool: `threads - 1` workers that live as long as the pool, plus the calling
// thread, which always takes part. parallel_for hands out task indices through an atomic counter and
// returns when every task has finished. Workers spin briefly between jobs (an encoder issues dozens
// of jobs per run) and then sleep on a condition variable.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif

namespace bort {

// The most threads one pool (one encoder) may have. Fixed, not derived from this machine's cores, so
// that a setting valid on one machine is valid on another; more threads than cores only slows a run.
constexpr int kMaxThreads = 256;

class ThreadPool {
 public:
  // Starts threads - 1 workers. threads outside [1, kMaxThreads] throws std::invalid_argument; a
  // worker that cannot be started (memory or process limits) throws std::runtime_error naming the
  // count, after stopping and joining the workers already started (no thread is left behind).
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return (int)workers_.size() + 1; }

  // Bracket a run (a sequence of parallel_for calls from one thread). On Linux, when the process may
  // use at least size() CPUs, begin_run keeps the caller on its current CPU and the workers off it
  // until end_run restores the caller's mask. Without this, a worker woken after an idle pause is
  // often placed on the waker's CPU (and a caller woken by a worker on the worker's), and the two
  // share one core for milliseconds until the load balancer separates them (measured: Bort 1x32
  // after a 100 ms pause took ~16 ms instead of ~9 in about a third of the runs).
  void begin_run();
  void end_run();

  // fn(task, thread) for task in [0, ntasks); thread in [0, size()), 0 = the caller.
  // Not reentrant: one parallel_for at a time per pool (the encoder serialises runs).
  template <class Fn>
  void parallel_for(int ntasks, Fn&& fn) {
    if (ntasks <= 0) return;
    if (ntasks == 1 || workers_.empty()) {
      for (int t = 0; t < ntasks; ++t) fn(t, 0);
      return;
    }
    Job job;
    job.ntasks = ntasks;
    job.ctx = &fn;
    job.call = [](void* ctx, int task, int tid) { (*static_cast<Fn*>(ctx))(task, tid); };
    dispatch(job);
  }

 private:
  struct Job {
    int ntasks = 0;
    void* ctx = nullptr;
    void (*call)(void*, int, int) = nullptr;
  };
  void dispatch(const Job& job);
  void stop_and_join();
  void worker(int tid);
  void work(int tid);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  Job job_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> next_{0};
  std::atomic<int> pending_{0};  // workers still inside the current job
  std::atomic<bool> stop_{false};
  std::condition_variable done_cv_;
  int sleepers_ = 0;             // guarded by mu_
  bool caller_waiting_ = false;  // guarded by mu_
  int caller_cpu_ = -1;          // CPU the workers were last kept off (begin_run)
  std::vector<int> cpus_;        // CPUs the process may use, at construction (Linux)
#if defined(__linux__)
  cpu_set_t caller_mask_;        // the caller's affinity before begin_run
#endif
  bool caller_pinned_ = false;
};

}  // namespace bort
