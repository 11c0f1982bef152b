// A fixed set of threads that run a round's client work (Note [Client threads]).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace cohort {

// Note [Client threads]
// `clients.threads: T` trains a rank's sampled clients on T threads, one client per thread at a
// time. Results are bitwise the same for every T (and every rank count) because nothing a client
// computes depends on the thread that computes it:
//  - each client's arithmetic is single-threaded and in a fixed order (the models run Eigen
//    without its own threads, EIGEN_DONT_PARALLELIZE);
//  - every thread has its own algorithm instance and its own model scratch, indexed by the
//    worker index of the thread (WorkerPool::current_worker()), so that no buffer is shared;
//    scratch never carries values from one client to the next (each use overwrites it);
//  - a client's randomness comes from its keyed streams (seed, round, client, purpose);
//  - what follows training (worker momentum, the attack, compression with error feedback, the
//    message sum) runs on the calling thread, in the order of the sampled clients, exactly as
//    with T = 1.
// So the round trains clients in windows of T: the T messages of a window are computed in
// parallel into T buffers, then submitted in client order. The memory cost is T - 1 more
// messages, algorithm buffers and model scratch; the account of the run's memory counts them.
// Test evaluation splits the rank's chunks over the threads the same way; its sums are exact
// (integers and 128-bit fixed point), so their order does not matter.
class WorkerPool {
 public:
  // threads >= 1: the caller is worker 0 and threads - 1 threads are started.
  explicit WorkerPool(int threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  int size() const { return static_cast<int>(threads_.size()) + 1; }
  // Runs fn(task, worker) for every task in [0, n) and returns when all have finished. Tasks are
  // claimed in increasing order by whichever worker is free; `worker` (0..size()-1) identifies
  // the thread, for per-thread scratch. The first exception a task throws is rethrown here
  // once every started task has finished; tasks not yet claimed are then skipped.
  void run(int n, const std::function<void(int task, int worker)>& fn);

  // The worker index of the calling thread inside run(); 0 on any other thread.
  static int current_worker();

 private:
  void loop(int worker);
  void work(int worker);

  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable start_, done_;
  const std::function<void(int, int)>* fn_ = nullptr;
  int tasks_ = 0, next_ = 0, busy_ = 0;
  std::uint64_t generation_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

}  // namespace cohort
