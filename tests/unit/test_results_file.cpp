// Results file ownership (Note [Results file ownership]): what an existing path holds decides
// whether a run may write it; a foreign file is never changed; one writer at a time.
#include <hdf5.h>
#include <sys/file.h>
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "core/errors.h"
#include "metrics/results_claim.h"
#include "metrics/results_file.h"

namespace fs = std::filesystem;
using namespace cohort;
using namespace cohort::metrics;

namespace {

struct TempDir {
  fs::path path;
  TempDir()
      : path(fs::temp_directory_path() / ("cohort_test_results_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string bytes_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// An HDF5 file with the given root string attributes (none: a plain HDF5 data file).
void write_hdf5(const fs::path& p, const std::vector<std::string>& attributes) {
  const hid_t f = H5Fcreate(p.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(f >= 0);
  for (const auto& name : attributes) {
    const hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    const hid_t space = H5Screate(H5S_SCALAR);
    const hid_t a = H5Acreate2(f, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
    const char* text = "completed";
    H5Awrite(a, type, &text);
    H5Aclose(a);
    H5Sclose(space);
    H5Tclose(type);
  }
  H5Fclose(f);
}

void write_results(const fs::path& p, const std::string& config, const std::string& status) {
  ResultsFile f(p.string(), ExistingResults::kReplace, config);
  f.set_status(status);
}

}  // namespace

TEST_CASE("a file that is not a cohort results file is never replaced", "[results]") {
  TempDir dir;
  // Every kind of foreign file: text, binary, empty, a directory, HDF5 without cohort's
  // attributes, HDF5 with only one of them, an HDF5 signature followed by garbage.
  const std::vector<std::pair<std::string, std::function<void(const fs::path&)>>> cases = {
      {"text", [](const fs::path& p) { std::ofstream(p) << "my notes\n"; }},
      {"binary", [](const fs::path& p) { std::ofstream(p, std::ios::binary) << std::string("\0\1\2\3", 4); }},
      {"empty", [](const fs::path& p) { std::ofstream{p}; }},
      {"hdf5 data", [](const fs::path& p) { write_hdf5(p, {}); }},
      {"hdf5 status only", [](const fs::path& p) { write_hdf5(p, {"status"}); }},
      {"hdf5 config only", [](const fs::path& p) { write_hdf5(p, {"config"}); }},
      {"hdf5 signature", [](const fs::path& p) {
         std::ofstream(p, std::ios::binary) << "\x89HDF\r\n\x1a\n then not HDF5 at all";
       }},
  };
  for (const auto& [name, make] : cases) {
    for (const auto existing : {ExistingResults::kRefuse, ExistingResults::kReplace}) {
      CAPTURE(name, existing == ExistingResults::kReplace);
      const fs::path p = dir.path / "out.h5";
      fs::remove_all(p);
      make(p);
      const std::string before = bytes_of(p);
      const ResultsFileInfo info = inspect_results_file(p.string());
      CHECK(info.kind == ResultsFileInfo::Kind::kOther);
      // An HDF5 signature that HDF5 cannot open is reported as damaged (what an older cohort
      // killed mid-write left); only a --resume with this config's checkpoint may replace it.
      const bool damaged = name == "hdf5 signature";
      CHECK(info.damaged == damaged);
      CHECK_THROWS_WITH(ResultsFile(p.string(), existing, "a: 1\n"),
                        Catch::Contains(damaged ? "is an HDF5 file that cannot be read"
                                                : "is not a cohort results file"));
      CHECK(bytes_of(p) == before);
      CHECK_FALSE(fs::exists(dir.path / "out.h5.lock"));
      CHECK_FALSE(fs::exists(dir.path / "out.h5.partial"));
    }
  }
  fs::remove_all(dir.path / "out.h5");
  fs::create_directory(dir.path / "out.h5");
  CHECK_THROWS_AS(ResultsFile((dir.path / "out.h5").string(), ExistingResults::kReplace),
                  UsageError);
  CHECK(fs::is_directory(dir.path / "out.h5"));
}

TEST_CASE("an existing results file is refused unless replacing is asked for", "[results]") {
  TempDir dir;
  const fs::path p = dir.path / "sub" / "run.h5";  // parent directories are created
  for (const std::string status : {"completed", "running", "failed", "preempted", "diverged"}) {
    CAPTURE(status);
    fs::remove(p);
    write_results(p, "rounds: 1\n", status);
    const ResultsFileInfo info = inspect_results_file(p.string());
    REQUIRE(info.kind == ResultsFileInfo::Kind::kResults);
    CHECK(info.status == status);
    CHECK(info.config == "rounds: 1\n");
    const std::string before = bytes_of(p);
    CHECK_THROWS_WITH(ResultsFile(p.string(), ExistingResults::kRefuse, "rounds: 2\n"),
                      Catch::Contains("already holds the results") &&
                          Catch::Contains("--overwrite") && Catch::Contains(status));
    CHECK(bytes_of(p) == before);
    {
      ResultsFile f(p.string(), ExistingResults::kReplace, "rounds: 2\n");
      // Published at once, with its attributes: never a half-made or truncated file at p.
      const ResultsFileInfo now = inspect_results_file(p.string());
      CHECK(now.in_use);
      CHECK(fs::exists(dir.path / "sub" / "run.h5.lock"));
    }
    const ResultsFileInfo after = inspect_results_file(p.string());
    CHECK(after.kind == ResultsFileInfo::Kind::kResults);
    CHECK(after.status == "running");
    CHECK(after.config == "rounds: 2\n");
    CHECK_FALSE(fs::exists(dir.path / "sub" / "run.h5.lock"));
    CHECK_FALSE(fs::exists(dir.path / "sub" / "run.h5.partial"));
  }
}

TEST_CASE("one writer per results path", "[results]") {
  TempDir dir;
  const std::string p = (dir.path / "run.h5").string();
  for (const auto existing : {ExistingResults::kRefuse, ExistingResults::kReplace}) {
    {
      ResultsFile first(p, ExistingResults::kReplace, "a: 1\n");
      first.append("round", std::int64_t{1});
      first.flush();
      CHECK_THROWS_WITH(ResultsClaim(p, existing), Catch::Contains("another cohort process"));
      CHECK_THROWS_AS(ResultsFile(p, existing, "a: 2\n"), UsageError);
      first.set_status("completed");
    }
    const ResultsFileInfo info = inspect_results_file(p);
    CHECK(info.status == "completed");  // the refused writer did not touch the file
    CHECK(info.config == "a: 1\n");
  }
  // A lock file left by a killed process (no lock held on it) does not block a new run.
  std::ofstream(p + ".lock") << "";
  CHECK_NOTHROW(ResultsClaim(p, ExistingResults::kReplace));
  // A lock held through another open file description blocks, as another process would.
  const int fd = open((p + ".lock").c_str(), O_RDWR | O_CREAT, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(flock(fd, LOCK_EX) == 0);
  CHECK(inspect_results_file(p).in_use);
  CHECK_THROWS_AS(ResultsClaim(p, ExistingResults::kReplace), UsageError);
  close(fd);
  CHECK_NOTHROW(ResultsClaim(p, ExistingResults::kReplace));
}
