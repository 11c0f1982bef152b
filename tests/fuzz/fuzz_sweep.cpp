// Sweep files (resolve_sweep_file: load_sweep, the expansion and every run's config). The input
// is the sweep file; beside it lie base.yaml (a valid config) and bad.yaml (one that is not), so
// that `base:` can name either.
#include <cstddef>
#include <cstdint>
#include <string>

#include "app/sweep.h"
#include "core/errors.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace cohort;
  static const bool bases_written = [] {
    fuzz::write_file("base.yaml",
                     "rounds: 2\nclients:\n  num_clients: 4\n  per_round: 2\n"
                     "data:\n  name: synthetic_linear\n");
    fuzz::write_file("bad.yaml", "rounds: [1, 2\n");
    return true;
  }();
  (void)bases_written;
  const std::string path = fuzz::write_file("sweep.yaml", data, size);
  try {
    (void)resolve_sweep_file(path, fuzz::scratch_dir() + "/out");
  } catch (const UsageError&) {
  }
  return 0;
}
