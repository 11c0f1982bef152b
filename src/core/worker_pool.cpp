#include "core/worker_pool.h"

namespace cohort {
namespace {

thread_local int t_worker = 0;

}  // namespace

WorkerPool::WorkerPool(int threads) {
  for (int w = 1; w < threads; ++w) threads_.emplace_back([this, w] { loop(w); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  start_.notify_all();
  for (auto& t : threads_) t.join();
}

int WorkerPool::current_worker() { return t_worker; }

// Claims tasks until none is left. Called with mu_ held; releases it while a task runs.
void WorkerPool::work(int worker) {
  std::unique_lock<std::mutex> lock(mu_, std::adopt_lock);
  while (next_ < tasks_ && !error_) {
    const int task = next_++;
    ++busy_;
    lock.unlock();
    std::exception_ptr err;
    try {
      (*fn_)(task, worker);
    } catch (...) {
      err = std::current_exception();
    }
    lock.lock();
    --busy_;
    if (err && !error_) error_ = err;
  }
  lock.release();  // the caller keeps holding mu_
}

void WorkerPool::loop(int worker) {
  t_worker = worker;
  std::uint64_t seen = 0;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    start_.wait(lock, [&] { return stop_ || generation_ != seen; });
    if (stop_) return;
    seen = generation_;
    work(worker);
    if (busy_ == 0) done_.notify_all();
  }
}

void WorkerPool::run(int n, const std::function<void(int task, int worker)>& fn) {
  if (n <= 0) return;
  if (threads_.empty() || n == 1) {  // no thread to wake: run the tasks here, in order
    for (int task = 0; task < n; ++task) fn(task, 0);
    return;
  }
  std::unique_lock<std::mutex> lock(mu_);
  fn_ = &fn;
  tasks_ = n;
  next_ = 0;
  error_ = nullptr;
  ++generation_;
  start_.notify_all();
  lock.release();
  work(0);
  lock = std::unique_lock<std::mutex>(mu_, std::adopt_lock);
  done_.wait(lock, [&] { return busy_ == 0 && (next_ >= tasks_ || error_); });
  fn_ = nullptr;
  tasks_ = 0;
  if (error_) {
    std::exception_ptr err = error_;
    error_ = nullptr;
    lock.unlock();
    std::rethrow_exception(err);
  }
}

}  // namespace cohort
