// Checkpoint files (read_checkpoint_file, read_newest_checkpoint). A file needs a CRC-32 of its
// body at its end, which random bytes almost never have: the input is read once as it is, and
// once as the body of a file with the right CRC appended, so that the checks after the CRC are
// reached. The second file is resumed as `cohort run --resume` does, against the default config.
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "algo/run_schema.h"
#include "core/config.h"
#include "core/errors.h"
#include "fuzz_common.h"
#include "metrics/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace cohort;
  static const Config config = Config::from_text("", {}, algo::run_schema(), "config.yaml");
  const std::string raw = fuzz::write_file("raw.ckpt", data, size);
  std::string config_text, version;
  try {
    (void)metrics::read_checkpoint_file(raw, &config_text, &version);
  } catch (const std::runtime_error&) {
  }
  std::string body(reinterpret_cast<const char*>(data), size);
  const auto crc = static_cast<std::uint32_t>(
      crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(body.data()),
            static_cast<uInt>(body.size())));
  body.append(reinterpret_cast<const char*>(&crc), 4);
  metrics::CheckpointOptions o;
  o.dir = fuzz::scratch_dir() + "/checkpoints";
  static const bool dir_made = [&] {
    std::filesystem::create_directories(o.dir);
    return true;
  }();
  (void)dir_made;
  fuzz::write_file("checkpoints/round-00000001.ckpt", body);
  try {
    (void)metrics::read_newest_checkpoint(o, config);
  } catch (const std::runtime_error&) {  // UsageError among them
  }
  return 0;
}
