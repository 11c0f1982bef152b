// Two kinds of error (docs/architecture.md "Errors").
//
// UsageError: a condition every rank sees identically (bad config, missing file, impossible
// value). The run ends cleanly, rank 0 prints one message, the exit code is 2.
// Any other exception is a failure local to one rank: the job is aborted with rank, host and
// reason.
#pragma once

#include <stdexcept>
#include <string>

namespace cohort {

inline constexpr int kExitUsage = 2;

class UsageError : public std::runtime_error {
 public:
  explicit UsageError(const std::string& what) : std::runtime_error(what) {}
};

// Throws UsageError with the message when cond is false.
inline void require_usage(bool cond, const std::string& message) {
  if (!cond) throw UsageError(message);
}

}  // namespace cohort
