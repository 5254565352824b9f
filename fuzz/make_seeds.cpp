// make_seeds: writes the fuzz harnesses' seed corpora (fuzz/seeds.h) into a folder, one subfolder per
// target. After changing a seed or a writer that the seeds go through:
//   build/fuzz_make_seeds tests/fuzz/corpus
// and commit the files; the suite fails while the committed seeds differ from these.
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>

#include "fuzz/seeds.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR   (e.g. tests/fuzz/corpus)\n", argv[0]);
    return 2;
  }
  try {
    const std::filesystem::path dir = argv[1];
    for (const auto& [name, bytes] : heed::fuzz::seeds()) {
      const std::filesystem::path p = dir / name;
      std::filesystem::create_directories(p.parent_path());
      std::ofstream(p, std::ios::binary) << bytes;
      std::printf("%s (%zu bytes)\n", p.c_str(), bytes.size());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", argv[0], e.what());
    return 1;
  }
  return 0;
}
