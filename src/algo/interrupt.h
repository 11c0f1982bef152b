// Stopping a long round early when the run is interrupted (Note [Stopping mid-round]).
#pragma once

namespace cohort::algo {

// True once SIGINT/SIGTERM/SIGUSR1 arrived during a round that may be abandoned (the runner
// kept its start state); local training calls it between steps and returns at once when it is
// true (what it returns then is discarded). False otherwise, and always for short rounds.
bool abandon_local_work();

}  // namespace cohort::algo
