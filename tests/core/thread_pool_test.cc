// The CPU backend's persistent pool: every task runs exactly once per loop,
// worker ids stay in range, and one pool serves many loops (the threads are
// created once, not per step).
#include "core/backend/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <new>
#include <thread>
#include <vector>

namespace agt {
namespace {

TEST(ThreadPoolTest, EveryTaskRunsExactlyOnceInEveryLoop) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (size_t n : {0u, 1u, 2u, 7u, 1000u}) {
      for (int loop = 0; loop < 20; ++loop) {
        std::vector<std::atomic<int>> runs(n);
        std::atomic<bool> bad_worker{false};
        pool.ParallelFor(n, [&](size_t task, int worker) {
          runs[task].fetch_add(1);
          if (worker < 0 || worker >= pool.size()) bad_worker = true;
        });
        for (size_t t = 0; t < n; ++t) ASSERT_EQ(runs[t].load(), 1) << threads << " " << n;
        EXPECT_FALSE(bad_worker.load());
      }
    }
  }
}

// Workers poll for the next loop for a while (ThreadPool::kSpin) and then
// sleep: loops that follow at once, within the polling time and well after
// it all run every task once, and the caller waits for the last.
TEST(ThreadPoolTest, LoopsRightAfterAndLongAfterThePreviousOneRunEveryTask) {
  using std::chrono::microseconds;
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    for (microseconds pause : {microseconds(0), ThreadPool::kSpin / 4, ThreadPool::kSpin * 5}) {
      for (int loop = 0; loop < 6; ++loop) {
        std::this_thread::sleep_for(pause);
        constexpr size_t kTasks = 64;
        std::vector<std::atomic<int>> runs(kTasks);
        std::vector<std::atomic<int>> by_worker(threads);
        pool.ParallelFor(kTasks, [&](size_t task, int worker) {
          std::this_thread::sleep_for(microseconds(50));
          runs[task].fetch_add(1);
          by_worker[worker].fetch_add(1);
        });
        for (size_t t = 0; t < kTasks; ++t) ASSERT_EQ(runs[t].load(), 1);
        // (A worker that never woke would leave the caller waiting: the
        // test would hang, not pass. Which worker took how many depends on
        // the machine's load, so it is not asserted.)
        int total = 0;
        for (int w = 0; w < threads; ++w) total += by_worker[w].load();
        EXPECT_EQ(total, static_cast<int>(kTasks));
      }
    }
  }
}

TEST(ThreadPoolTest, TasksRunConcurrentlyOnSeveralWorkers) {
  ThreadPool pool(2);
  std::atomic<int> inside{0}, most{0};
  pool.ParallelFor(2, [&](size_t, int) {
    const int now = inside.fetch_add(1) + 1;
    int seen = most.load();
    while (now > seen && !most.compare_exchange_weak(seen, now)) {
    }
    // Wait (bounded) for the other task to arrive.
    for (int spin = 0; spin < 100000000 && inside.load() < 2; ++spin) {
    }
    inside.fetch_sub(1);
  });
  EXPECT_EQ(most.load(), 2);
}

// The poison-job guard depends on it: an allocation failure inside a task,
// on whichever thread ran it, reaches the caller as the exception (not
// std::terminate), and the pool serves the next loop.
TEST(ThreadPoolTest, AnExceptionInATaskIsRethrownInTheCallerAndThePoolStaysUsable) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    for (size_t failing : {0u, 1u, 63u}) {
      std::atomic<int> ran{0};
      bool caught = false;
      try {
        pool.ParallelFor(64, [&](size_t task, int) {
          ran.fetch_add(1);
          if (task == failing) throw std::bad_alloc();
        });
      } catch (const std::bad_alloc&) {
        caught = true;
      }
      EXPECT_TRUE(caught) << threads << " threads, task " << failing;
      EXPECT_GE(ran.load(), 1);
      std::vector<std::atomic<int>> runs(100);
      pool.ParallelFor(100, [&](size_t task, int) { runs[task].fetch_add(1); });
      for (size_t t = 0; t < runs.size(); ++t) ASSERT_EQ(runs[t].load(), 1) << threads;
    }
  }
}

}  // namespace
}  // namespace agt
