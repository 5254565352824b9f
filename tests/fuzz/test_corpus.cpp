// Replays the fuzz corpora in the suite: every file of tests/fuzz/corpus/<target>/ goes through the same
// function the libFuzzer harness fuzz/fuzz_<target>.cpp calls (fuzz/targets.h). The seeds are valid and
// near-valid inputs; a crash the fuzzer finds is added to its target's folder, so it stays fixed.
//
// The seeds are written by heed itself (fuzz/seeds.h; `build/fuzz_make_seeds tests/fuzz/corpus` writes
// them), and the second test case checks that the committed files are still those bytes.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>

#include "fuzz/seeds.h"
#include "fuzz/targets.h"

using namespace heed;
namespace fs = std::filesystem;

namespace {

const fs::path kCorpus = fs::path(HEED_SOURCE_DIR) / "tests" / "fuzz" / "corpus";

std::vector<uint8_t> read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

const std::map<std::string, std::function<int(const uint8_t*, size_t)>>& targets() {
  static const std::map<std::string, std::function<int(const uint8_t*, size_t)>> t{
      {"safetensors", fuzz::safetensors}, {"state_dict", fuzz::state_dict}, {"idx", fuzz::idx},
      {"idx_gzip", fuzz::idx_gzip},       {"cli", fuzz::cli}};
  return t;
}

std::string read_text(const fs::path& p) {
  std::vector<uint8_t> b = read_bytes(p);
  return std::string(b.begin(), b.end());
}

}  // namespace

TEST_CASE("fuzz: every corpus file goes through its target without a crash or an undocumented exception") {
  int files = 0;
  for (const auto& [name, run] : targets()) {
    const fs::path dir = kCorpus / name;
    REQUIRE_MESSAGE(fs::is_directory(dir), dir);
    for (const auto& entry : fs::directory_iterator(dir)) {
      INFO(entry.path());
      std::vector<uint8_t> bytes = read_bytes(entry.path());
      CHECK(run(bytes.data(), bytes.size()) == 0);
      ++files;
    }
  }
  CHECK(files >= 20);
  for (const char* scratch : {"st.safetensors", "sd.safetensors", "raw.idx", "gz.idx.gz"})
    fs::remove(fuzz::scratch_path(scratch));  // the targets' input files
}

TEST_CASE("fuzz: the committed seeds are the bytes fuzz/seeds.h makes (build/fuzz_make_seeds rewrites them)") {
  const std::map<std::string, std::string> seeds = fuzz::seeds();
  CHECK(seeds.size() >= 30);
  for (const auto& seed : seeds) {
    const std::string& name = seed.first;  // not a structured binding: INFO's lambda captures it (clang 14)
    const std::string& bytes = seed.second;
    INFO(name);
    const fs::path p = kCorpus / name;
    REQUIRE_MESSAGE(fs::exists(p), "a seed is missing: run build/fuzz_make_seeds tests/fuzz/corpus");
    CHECK_MESSAGE(read_text(p) == bytes, "a seed differs from what heed writes now: run build/fuzz_make_seeds "
                                         "tests/fuzz/corpus, and check that the change was meant");
  }
}
