// Shared by the fuzz harnesses (tests/fuzz/fuzz_*.cpp): a scratch directory for the readers that
// take a path, and the memory budget the harnesses run under.
//
// Each harness defines LLVMFuzzerTestOneInput. It feeds one input to one reader and catches only
// the exceptions that reader documents for bad input (UsageError, or std::runtime_error for
// checkpoints); anything else escapes and ends the process, which libFuzzer reports as a crash.
// The same sources build the libFuzzer targets (COHORT_FUZZ, clang with ASan and UBSan) and the
// fuzz_replay test of the normal build, which feeds every file of tests/fuzz/corpus/ to them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace cohort::fuzz {

// Readers are held to this much memory (cap_usable_memory): an input that claims more must fail
// the memory check, not allocate it.
inline constexpr std::int64_t kMemoryBudget = std::int64_t{512} << 20;

// A directory of this process's own (created on first use, removed at exit).
const std::string& scratch_dir();

// Writes the bytes to scratch_dir()/name and returns the path.
std::string write_file(const std::string& name, const std::uint8_t* data, std::size_t size);
std::string write_file(const std::string& name, const std::string& text);

// Aborts with a message: a property of the reader that the input broke.
[[noreturn]] void violated(const char* harness, const std::string& what);

}  // namespace cohort::fuzz
