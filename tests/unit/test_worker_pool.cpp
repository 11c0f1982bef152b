// The client threads' pool (Note [Client threads]) and the client store used from it.
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "core/client_store.h"
#include "core/worker_pool.h"

using cohort::ClientStore;
using cohort::WorkerPool;

TEST_CASE("WorkerPool runs every task once, on workers that know their index", "[threads]") {
  for (int threads : {1, 2, 3, 8}) {
    WorkerPool pool(threads);
    REQUIRE(pool.size() == threads);
    for (int n : {0, 1, 2, 7, 100}) {
      std::vector<std::atomic<int>> runs(static_cast<std::size_t>(n));
      std::vector<int> worker_of(static_cast<std::size_t>(n), -1);
      std::atomic<int> mismatched{0};
      pool.run(n, [&](int task, int worker) {
        runs[static_cast<std::size_t>(task)]++;
        worker_of[static_cast<std::size_t>(task)] = worker;
        if (WorkerPool::current_worker() != worker) mismatched++;
      });
      CHECK(mismatched == 0);
      for (int t = 0; t < n; ++t) {
        CHECK(runs[static_cast<std::size_t>(t)] == 1);
        CHECK(worker_of[static_cast<std::size_t>(t)] >= 0);
        CHECK(worker_of[static_cast<std::size_t>(t)] < threads);
      }
    }
  }
  CHECK(WorkerPool::current_worker() == 0);  // outside run()
}

TEST_CASE("WorkerPool runs tasks at the same time on its threads", "[threads]") {
  // Each of the two tasks waits for the other to start: only two threads finish it early.
  WorkerPool pool(2);
  std::atomic<int> started{0};
  std::atomic<int> met{0};
  pool.run(2, [&](int, int) {
    started++;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (started < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    if (started == 2) met++;
  });
  CHECK(met == 2);
}

TEST_CASE("WorkerPool rethrows a task's exception and stays usable", "[threads]") {
  WorkerPool pool(3);
  std::atomic<int> ran{0};
  CHECK_THROWS_WITH(pool.run(50,
                             [&](int task, int) {
                               ran++;
                               if (task == 4) throw std::runtime_error("task 4 failed");
                             }),
                    "task 4 failed");
  CHECK(ran >= 5);
  CHECK(ran <= 50);
  std::atomic<int> again{0};
  pool.run(20, [&](int, int) { again++; });
  CHECK(again == 20);
}

TEST_CASE("ClientStore rows are handed out safely to several threads", "[threads][store]") {
  ClientStore store(0, 4000);
  const auto a = store.declare("a", "slot a", 3);
  const auto b = store.declare("b", "slot b", 5);
  WorkerPool pool(4);
  // Every task adds rows for its own clients in both slots while the others do the same.
  pool.run(40, [&](int task, int) {
    for (int c = task * 100; c < task * 100 + 100; ++c) {
      auto ra = store.row(a, c);
      auto rb = store.row(b, c);
      for (float& v : ra) v += static_cast<float>(c);
      for (float& v : rb) v += static_cast<float>(-c);
    }
  });
  CHECK(store.clients(a) == 4000);
  CHECK(store.clients(b) == 4000);
  for (int c = 0; c < 4000; c += 37) {
    const auto ra = store.find(a, c);
    const auto rb = store.find(b, c);
    REQUIRE(ra.size() == 3);
    REQUIRE(rb.size() == 5);
    CHECK(ra[2] == static_cast<float>(c));
    CHECK(rb[4] == static_cast<float>(-c));
  }
}
