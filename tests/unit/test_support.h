// Shared by the unit tests: the message of an expected UsageError, a scratch directory, and whole
// runs of a config given as text.
#pragma once

#include <catch2/catch.hpp>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "algo/run_schema.h"
#include "algo/runner.h"
#include "comm/communicator.h"
#include "core/config.h"
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

// A results path in the temporary directory, unique per tag, name and process.
inline std::string temp_h5(const std::string& tag, const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("cohort_test_" + tag + "_" + std::to_string(::getpid()) + "_" + name + ".h5"))
      .string();
}

// Runs the config `text` with `extra` overrides on one rank (self backend), its results at `path`
// (an old file there is removed first; the caller removes the new one), without progress lines
// or the saved model; the outcome whatever its status.
inline algo::RunOutcome run_config_text(const std::string& text,
                                        const std::vector<std::string>& extra,
                                        const std::string& path) {
  std::filesystem::remove(path);
  const Config cfg = Config::from_text(
      text + "output: {path: " + path + ", progress_every: 0, save_model: false}\n", extra,
      algo::run_schema());
  auto comm = comm::make_self_communicator();
  return algo::run_experiment(cfg, *comm);
}

}  // namespace cohort::test
