// fuzz_replay: feeds every file of the committed corpus (tests/fuzz/corpus/<harness>/) to its
// harness, so that the normal test suite holds every input the fuzzers were seeded with or
// found, without clang or libFuzzer. A crash, an escaping exception or a violated property ends
// the process with a non-zero status.
//
// Usage: fuzz_replay CORPUS_DIR [HARNESS...]   (no harness named: all of them)
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

// Each harness's LLVMFuzzerTestOneInput is compiled under the name cohort_fuzz_<harness>.
#define COHORT_FUZZ_HARNESS(name) \
  extern "C" int cohort_fuzz_##name(const std::uint8_t* data, std::size_t size);
#include "fuzz_harnesses.inc"
#undef COHORT_FUZZ_HARNESS

namespace {

struct Harness {
  const char* name;
  int (*run)(const std::uint8_t*, std::size_t);
};

const std::vector<Harness> kHarnesses = {
#define COHORT_FUZZ_HARNESS(name) {#name, cohort_fuzz_##name},
#include "fuzz_harnesses.inc"
#undef COHORT_FUZZ_HARNESS
};

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR [HARNESS...]\n", argv[0]);
    return 2;
  }
  const fs::path corpus = argv[1];
  const std::vector<std::string> only(argv + 2, argv + argc);
  int failures = 0;
  for (const Harness& h : kHarnesses) {
    if (!only.empty() && std::find(only.begin(), only.end(), h.name) == only.end()) continue;
    const fs::path dir = corpus / h.name;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      std::fprintf(stderr, "fuzz_replay: no corpus for harness %s (%s)\n", h.name,
                   dir.string().c_str());
      ++failures;
      continue;
    }
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                    std::istreambuf_iterator<char>());
      std::printf("%s: %s\n", h.name, f.filename().string().c_str());
      std::fflush(stdout);
      h.run(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    }
    std::printf("fuzz_replay: %s: %zu inputs\n", h.name, files.size());
    if (files.empty()) ++failures;
  }
  return failures == 0 ? 0 : 1;
}
