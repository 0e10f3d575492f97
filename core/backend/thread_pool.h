// A fixed set of worker threads, created once and reused by every parallel
// loop (no thread creation per step). ParallelFor hands out task indices
// dynamically; callers make results independent of which thread ran a task.
// One ParallelFor at a time per pool (the CPU backend runs one step at a time).
// An exception thrown by a task (std::bad_alloc when a job cannot get its
// memory) never escapes a worker thread: the loop hands out no more tasks,
// waits for the running ones, and rethrows the first exception in the caller.
//
// Hand-offs: a step runs a few loops of tens of microseconds each, close
// together. Waking a sleeping thread costs about as much (on the 2-core
// machine, 36 us for an empty loop of two tasks), so a worker that finished a
// loop polls for the next one for up to kSpin before it sleeps, and the caller
// polls for the workers' end for as long before it sleeps. Idle pools sleep.
#ifndef AGT_CORE_BACKEND_THREAD_POOL_H_
#define AGT_CORE_BACKEND_THREAD_POOL_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace agt {

class ThreadPool {
 public:
  // How long a thread polls before it sleeps.
  static constexpr std::chrono::microseconds kSpin{200};

  // threads >= 1 in total, the calling thread included.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  // Runs fn(task, worker) for every task in [0, num_tasks), worker in
  // [0, size()); returns when all are done. The caller is worker 0. If a task
  // throws, some tasks may not run, and the first exception is rethrown here
  // once no task is running.
  void ParallelFor(size_t num_tasks, const std::function<void(size_t, int)>& fn);

 private:
  void WorkerLoop(int worker);
  void RunTasks(int worker);

  std::vector<std::thread> workers_;
  std::mutex mu_;  // guards the sleeps, error_ and stop_
  std::condition_variable start_, done_;
  const std::function<void(size_t, int)>* fn_ = nullptr;  // set before generation_
  size_t num_tasks_ = 0;                                   // set before generation_
  std::atomic<size_t> next_task_{0};
  std::atomic<int> busy_{0};  // workers still inside the current loop
  std::exception_ptr error_;  // the first exception of the current loop
  std::atomic<unsigned> generation_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace agt

#endif  // AGT_CORE_BACKEND_THREAD_POOL_H_
