// Shared by the unit tests: the message of an expected UsageError, and a scratch directory.
#pragma once

#include <catch2/catch.hpp>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>

#include "core/errors.h"

namespace cohort::test {

// The message of the UsageError f throws. Fails the test when f returns normally; any other
// exception type propagates, so a yaml-cpp or logic error leaking out also fails the test.
template <class F>
std::string usage_error_of(F&& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  FAIL("expected cohort::UsageError, but nothing was thrown");
  return {};
}

// A scratch directory (per tag and process) removed at scope exit.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag)
      : path(std::filesystem::temp_directory_path() /
             ("cohort_test_" + tag + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

}  // namespace cohort::test
