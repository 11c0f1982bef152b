// The schema of a run's config: every key `cohort run` accepts, with its type, default and
// meaning. The validator, `cohort list` and the README's config reference are all generated from
// it, so they cannot drift apart.
#pragma once

#include "core/schema.h"

namespace cohort::algo {

// The root section: the slots of every category, each derived from its registration list
// (Note [Registration]), and the plain sections seed, rounds, clients, eval, comm, output and
// checkpoint. Built once, on first use.
const Section& run_schema();

}  // namespace cohort::algo
