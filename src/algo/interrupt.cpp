#include "algo/interrupt.h"

#include <atomic>
#include <csignal>

namespace cohort::algo {
namespace {

volatile std::sig_atomic_t g_interrupt = 0;
extern "C" void on_signal(int sig) { g_interrupt = sig; }
// Read and written by the client threads too (Note [Client threads]).
std::atomic<bool> g_may_abandon{false};  // this round's start state is kept
std::atomic<bool> g_abandoned{false};    // this rank stopped its local work of this round early

}  // namespace

void install_interrupt_handlers() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGUSR1, on_signal);
}

int interrupt_signal() { return g_interrupt; }

bool abandon_local_work() {
  if (g_may_abandon && g_interrupt != 0) g_abandoned = true;
  return g_abandoned;
}

void set_local_work_abandonable(bool may) {
  g_may_abandon = may;
  if (may) g_abandoned = false;
}

bool local_work_abandoned() { return g_abandoned; }

}  // namespace cohort::algo
