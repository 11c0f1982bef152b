// Sizes from a user's input (Note [Input sizes]): checked arithmetic and the memory check.
#pragma once

#include <cstdint>
#include <string>

namespace cohort {

// Note [Input sizes]
// Every integer a user gives (config keys, file headers, HDF5 shapes, LIBSVM indices) is range-
// checked in its own type before it is used: the schema bounds integer keys by the C++ type they
// end in (Option::int_max), readers check header fields as they parse them. Products and sums of
// such sizes go through checked_mul / checked_add, and a buffer whose size the input decides is
// compared with the machine's memory (require_memory) before it is allocated, so a hostile size
// ends in a UsageError (exit code 2) naming the key or file and the numbers, never in a wrapped
// size, a signal or std::bad_alloc.

// a * b and a + b for non-negative sizes; UsageError "<what>: ... overflows" when the result
// does not fit in int64 (or an operand is negative).
std::int64_t checked_mul(std::int64_t a, std::int64_t b, const std::string& what);
std::int64_t checked_add(std::int64_t a, std::int64_t b, const std::string& what);

// Bytes this process may use: the machine's physical memory (sysconf pages x page size), or the
// address-space limit (RLIMIT_AS) when that is lower.
// A cap set with cap_usable_memory lowers it further.
std::int64_t usable_memory_bytes();

// Lowers what usable_memory_bytes reports to at most `bytes` for the rest of the process (0
// removes the cap): for a harness that feeds hostile inputs under a smaller memory budget than
// the machine's, so that an input claiming more fails the memory check instead of allocating.
void cap_usable_memory(std::int64_t bytes);

// UsageError when `bytes` exceed `limit` (default: usable_memory_bytes()):
// "<what> needs 3.2 TiB (3518437208883 bytes), more than the 125.7 GiB (...) of memory here".
void require_memory(std::int64_t bytes, const std::string& what,
                    std::int64_t limit = usable_memory_bytes());

// "1.5 GiB" (binary units).
std::string human_bytes(double bytes);

}  // namespace cohort
