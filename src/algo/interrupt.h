// Signals that stop a run, and stopping a long round early (Note [Stopping mid-round] in
// algo/runner.cpp).
#pragma once

namespace cohort::algo {

// SIGINT, SIGTERM and SIGUSR1 (SLURM's warning before a time limit, --signal=B:USR1@T) set a flag
// the run checks collectively after every round.
void install_interrupt_handlers();
// The last such signal received, 0 when none.
int interrupt_signal();

// True once a signal arrived during a round that may be abandoned (the runner kept its start
// state); local training calls it between steps and returns at once when it is true (what it
// returns then is discarded). False otherwise, and always for short rounds.
bool abandon_local_work();
// The round loop's side: whether the local work starting now may be abandoned (clears the
// abandoned flag when true), and whether it was.
void set_local_work_abandonable(bool may);
bool local_work_abandoned();

}  // namespace cohort::algo
