// A fixed set of worker threads, created once and reused by every parallel
// loop (no thread creation per step). ParallelFor hands out task indices
// dynamically; callers make results independent of which thread ran a task.
// One ParallelFor at a time per pool (the CPU backend runs one step at a time).
// An exception thrown by a task (std::bad_alloc when a job cannot get its
// memory) never escapes a worker thread: the loop hands out no more tasks,
// waits for the running ones, and rethrows the first exception in the caller.
#ifndef AGT_CORE_BACKEND_THREAD_POOL_H_
#define AGT_CORE_BACKEND_THREAD_POOL_H_

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
  std::mutex mu_;
  std::condition_variable start_, done_;
  const std::function<void(size_t, int)>* fn_ = nullptr;
  size_t num_tasks_ = 0;
  size_t next_task_ = 0;
  int busy_ = 0;           // workers still inside the current loop
  std::exception_ptr error_;  // the first exception of the current loop
  unsigned generation_ = 0;
  bool stop_ = false;
};

}  // namespace agt

#endif  // AGT_CORE_BACKEND_THREAD_POOL_H_
