// The encoder's life cycle around failures: the thread-count bounds, a pool that cannot start all its
// threads (it must undo itself, not terminate or hang the process), a thread-count change that cannot
// be applied (the encoder keeps its old pool), and close() racing the end of a run (the weights must
// be freed exactly once, whoever comes last).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "encoder.h"
#include "random_model.h"

#if defined(__linux__)
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#define BORT_CAN_LIMIT_MEMORY 1
#endif
// ASan and TSan reserve their own address space: an address-space limit breaks them, not the pool
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#undef BORT_CAN_LIMIT_MEMORY
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#undef BORT_CAN_LIMIT_MEMORY
#endif
#endif

using namespace bort;

static EncoderConfig small_config(int threads) {
  EncoderConfig c;
  c.layers = 1;
  c.heads = 2;
  c.headSize = 8;
  c.hidden = 16;
  c.intermediate = 32;
  c.vocab = 50;
  c.maxPositions = 16;
  c.typeVocab = 2;
  c.scoreScale = 1.0f / std::sqrt(8.0f);
  c.lnEps = {1e-12f, 1e-12f};
  c.pooler = true;
  c.threads = threads;
  return c;
}

struct Run {
  std::vector<int32_t> ids;
  std::vector<float> hidden, pooled;
  RunInputs in;
  RunOutputs out;
  Run(const EncoderConfig& c, int B, int S) : ids((size_t)B * S, 1), hidden((size_t)B * S * c.hidden), pooled((size_t)B * c.hidden) {
    in.ids = ids.data();
    in.batch = B;
    in.seq = S;
    out.hidden = hidden.data();
    out.pooled = pooled.data();
  }
};

template <class E, class Fn>
static std::string thrown(Fn fn) {
  try {
    fn();
  } catch (const E& e) {
    return std::string("threw: ") + e.what();
  } catch (const std::exception& e) {
    return std::string("wrong type: ") + e.what();
  }
  return "no exception";
}

static bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

#if defined(BORT_CAN_LIMIT_MEMORY)
// Runs fn in a child process whose address space is limited to its current size + 64 MiB (a thread's
// stack reserves 8 MiB: far fewer than 256 threads fit). The child's exit code is fn's result; a child
// still running after 60 s is killed and reported as a hang, a crash as its signal.
template <class Fn>
static void under_memory_limit(const char* what, Fn fn) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    long pages = 0, page = sysconf(_SC_PAGESIZE);
    if (FILE* f = std::fopen("/proc/self/statm", "r")) {
      if (std::fscanf(f, "%ld", &pages) != 1) pages = 0;
      std::fclose(f);
    }
    rlimit lim;
    lim.rlim_cur = lim.rlim_max = (rlim_t)pages * page + ((rlim_t)64 << 20);
    if (pages == 0 || setrlimit(RLIMIT_AS, &lim) != 0) _exit(70);
    _exit(fn());
  }
  int status = 0;
  for (int i = 0; i < 600; ++i) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      if (WIFEXITED(status))
        CHECK(WEXITSTATUS(status) == 0, "%s: the child reported failure %d", what, WEXITSTATUS(status));
      else
        CHECK(false, "%s: the child died of signal %d", what, WIFSIGNALED(status) ? WTERMSIG(status) : -1);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  CHECK(false, "%s: the child hung", what);
}
#endif

int main() {
  const Kernels* k = kernels_scalar();

  // ---- bounds: [1, kMaxThreads], checked before anything starts
  for (int n : {0, -1, kMaxThreads + 1, 1 << 30}) {
    std::string r = thrown<std::invalid_argument>([&] { ThreadPool p(n); });
    CHECK(has(r, "threw: threads must be an integer in [1, 256], got " ), "ThreadPool(%d): %s", n, r.c_str());
    EncoderConfig c = small_config(n);
    Weights w = make_weights(c, 1);
    r = thrown<ConfigError>([&] { Encoder e(c, lookup(w), k); });
    CHECK(has(r, "threw: config.threads must be an integer in [1, 256]"), "Encoder with %d threads: %s", n, r.c_str());
  }
  {
    ThreadPool p(kMaxThreads);  // the largest pool starts and runs every task once
    std::vector<std::atomic<int>> hits(1000);
    p.parallel_for(1000, [&](int t, int) { hits[t]++; });
    bool once = true;
    for (auto& h : hits) once &= h.load() == 1;
    CHECK(p.size() == kMaxThreads && once, "a pool of %d threads did not run each task once", kMaxThreads);
  }
  {
    EncoderConfig c = small_config(1);
    Weights w = make_weights(c, 2);
    Encoder e(c, lookup(w), k);
    for (int n : {0, kMaxThreads + 1}) {
      std::string r = thrown<ConfigError>([&] { e.set_threads(n); });
      CHECK(has(r, "threw: threads must be an integer in [1, 256]"), "set_threads(%d): %s", n, r.c_str());
    }
    CHECK(e.threads() == 1, "a refused set_threads changed the thread count to %d", e.threads());
  }

#if defined(BORT_CAN_LIMIT_MEMORY)
  // ---- threads that cannot start: an exception naming the count, the started ones joined
  under_memory_limit("ThreadPool(256)", [] {
    try {
      ThreadPool p(kMaxThreads);
      std::fprintf(stderr, "ThreadPool(256) started under the memory limit (limit too loose for this test)\n");
      return 3;
    } catch (const std::runtime_error& e) {
      if (!has(e.what(), "cannot start 256 threads")) {
        std::fprintf(stderr, "unexpected message: %s\n", e.what());
        return 4;
      }
    }
    ThreadPool small(2);  // the process is still usable
    int sum = 0;
    small.parallel_for(1, [&](int, int) { sum = 1; });
    return sum == 1 ? 0 : 5;
  });
  under_memory_limit("Encoder with 256 threads", [k] {
    EncoderConfig c = small_config(kMaxThreads);
    Weights w = make_weights(c, 3);
    try {
      Encoder e(c, lookup(w), k);
      return 3;
    } catch (const std::runtime_error& e) {
      return has(e.what(), "cannot start 256 threads") ? 0 : 4;
    }
  });
  {
    EncoderConfig c = small_config(1);
    Weights w = make_weights(c, 4);
    Encoder e(c, lookup(w), k);  // built before the limit
    under_memory_limit("set_threads(256) then run", [&] {
      Run r(c, 2, 5);
      e.set_threads(kMaxThreads);
      try {
        e.run(r.in, r.out);
        return 3;
      } catch (const std::runtime_error& x) {
        if (!has(x.what(), "cannot start 256 threads") || !has(x.what(), "the encoder keeps 1")) {
          std::fprintf(stderr, "unexpected message: %s\n", x.what());
          return 4;
        }
      }
      if (e.threads() != 1) return 5;
      e.run(r.in, r.out);  // still runs, on the old pool
      return std::isfinite(r.hidden[0]) ? 0 : 6;
    });
  }
#else
  std::printf("test_lifecycle: memory-limit cases skipped (sanitizer build)\n");
#endif

  // ---- close(): idle -> freed at once; twice -> harmless; racing the end of a run -> freed once it ends
  {
    EncoderConfig c = small_config(2);
    Weights w = make_weights(c, 5);
    Encoder e(c, lookup(w), k);
    e.close();
    CHECK(e.closed() && e.released(), "close() of an idle encoder did not free it");
    e.close();
    Run r(c, 1, 4);
    std::string t = thrown<std::runtime_error>([&] { e.run(r.in, r.out); });
    CHECK(has(t, "threw: this encoder is closed"), "run after close: %s", t.c_str());
    t = thrown<std::runtime_error>([&] { e.set_threads(2); });
    CHECK(has(t, "closed"), "set_threads after close: %s", t.c_str());
  }
  {
    EncoderConfig c = small_config(2);
    Weights w = make_weights(c, 6);
    int unreleased = 0, ran = 0, refused = 0;
    for (int i = 0; i < 300; ++i) {
      Encoder e(c, lookup(w), k);
      Run r(c, 2, 8);
      std::atomic<bool> go{false};
      std::thread t([&] {
        while (!go.load()) {
        }
        try {
          e.run(r.in, r.out);
          ++ran;
        } catch (const std::runtime_error&) {
          ++refused;
        }
      });
      go = true;
      for (int s = 0; s < (i % 40) * 50; ++s) std::atomic_signal_fence(std::memory_order_seq_cst);  // vary the moment
      e.close();
      t.join();
      if (!e.released()) ++unreleased;
    }
    CHECK(unreleased == 0, "%d of 300 encoders closed around the end of a run were never freed", unreleased);
    CHECK(ran + refused == 300, "runs: %d finished + %d refused != 300", ran, refused);
  }
  {
    // close() exactly in the window where a run has finished its work but still holds the encoder
    EncoderConfig c = small_config(2);
    Weights w = make_weights(c, 7);
    Encoder e(c, lookup(w), k);
    std::atomic<int> phase{0};
    e.run_end_hook_for_tests = [&] {
      phase = 1;
      std::this_thread::sleep_for(std::chrono::milliseconds(30));  // close() runs meanwhile
    };
    Run r(c, 1, 4);
    std::thread t([&] { e.run(r.in, r.out); });
    while (phase.load() == 0) std::this_thread::yield();
    e.close();
    t.join();
    CHECK(e.released(), "close() while a finished run still held the encoder: never freed");
  }
  return check::finish("test_lifecycle");
}
