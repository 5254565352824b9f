// test_source_style.cpp: no line of heed's source, build files or docs is longer than 120 columns
// (.clang-format's ColumnLimit). A reader should never scroll sideways, in an editor or on a review page.
//
// Columns are counted as code points, so "θ" or "→" is one column, as an editor shows it. Markdown table
// rows (lines that start with '|') are exempt: a table row cannot be wrapped without breaking the table.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

const fs::path kRoot = HEED_SOURCE_DIR;
constexpr int kMaxColumns = 120;

// The number of code points in a UTF-8 line: every byte except the continuation bytes 10xxxxxx.
int columns(const std::string& line) {
  int n = 0;
  for (unsigned char c : line) n += (c & 0xC0) != 0x80;
  return n;
}

bool is_checked(const fs::path& p) {
  static const std::set<std::string> extensions = {".h", ".cpp", ".cmake", ".in", ".py", ".md", ".txt", ".sh"};
  return extensions.count(p.extension().string()) > 0;
}

// Every checked file under heed's folders, plus the top-level build and set-up files. Fuzz corpora and
// test fixtures are data, not text to read.
std::vector<fs::path> checked_files() {
  std::vector<fs::path> files = {kRoot / "CMakeLists.txt", kRoot / "README.md", kRoot / "run", kRoot / ".ci" / "run",
                                 kRoot / "heed.h"};
  for (const char* dir : {"tensor", "autograd", "nn", "data", "metrics", "viz", "io", "dist", "models", "fuzz",
                          "bench", "tests", "cmake", "docs"}) {
    if (!fs::exists(kRoot / dir)) continue;
    for (auto it = fs::recursive_directory_iterator(kRoot / dir); it != fs::recursive_directory_iterator(); ++it) {
      const fs::path rel = fs::relative(it->path(), kRoot);
      if (it->is_directory() && (rel == "tests/fuzz/corpus" || rel == "tests/fixtures")) {
        it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file() && is_checked(it->path())) files.push_back(it->path());
    }
  }
  return files;
}

}  // namespace

TEST_CASE("style: no line is longer than 120 columns") {
  std::vector<fs::path> files = checked_files();
  REQUIRE(files.size() > 100);  // the walk found the tree
  std::ostringstream long_lines;
  int count = 0;
  for (const fs::path& file : files) {
    if (!fs::exists(file)) continue;
    std::ifstream in(file);
    const bool markdown = file.extension() == ".md";
    int number = 0;
    for (std::string line; std::getline(in, line);) {
      number++;
      if (markdown && line.rfind('|', 0) == 0) continue;
      if (int n = columns(line); n > kMaxColumns) {
        if (count++ < 40)
          long_lines << fs::relative(file, kRoot).string() << ":" << number << ": " << n << " columns\n";
      }
    }
  }
  INFO(count, " lines longer than ", kMaxColumns, " columns (the first 40):\n", long_lines.str());
  CHECK(count == 0);
}

TEST_CASE("style: columns are counted in code points") {
  CHECK(columns("abc") == 3);
  CHECK(columns("θ → x") == 5);
  CHECK(columns(std::string(121, 'x')) == 121);
}
