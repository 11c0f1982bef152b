#include "fuzz_common.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "core/limits.h"

namespace cohort::fuzz {
namespace {

namespace fs = std::filesystem;

// Applied before the first input, whichever harness runs.
[[maybe_unused]] const bool budget_set = [] {
  cap_usable_memory(kMemoryBudget);
  return true;
}();

void remove_scratch() {
  std::error_code ec;
  fs::remove_all(scratch_dir(), ec);
}

}  // namespace

const std::string& scratch_dir() {
  // Never destroyed: the exit handler that removes the directory still reads it.
  static const std::string* dir = [] {
    std::string pattern = (fs::temp_directory_path() / "cohort-fuzz-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr)
      throw std::runtime_error("cannot create a scratch directory under " +
                               fs::temp_directory_path().string());
    return new std::string(pattern);
  }();
  static const bool removed_at_exit = std::atexit(remove_scratch) == 0;
  (void)removed_at_exit;
  return *dir;
}

std::string write_file(const std::string& name, const std::uint8_t* data, std::size_t size) {
  const std::string path = (fs::path(scratch_dir()) / name).string();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path);
  return path;
}

std::string write_file(const std::string& name, const std::string& text) {
  return write_file(name, reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
}

void violated(const char* harness, const std::string& what) {
  std::fprintf(stderr, "fuzz_%s: %s\n", harness, what.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace cohort::fuzz
