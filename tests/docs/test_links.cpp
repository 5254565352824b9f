// test_links.cpp: every path the docs cite exists. A walkthrough that links to a file which has moved
// teaches the wrong layout, so README.md and docs/*.md are checked like code:
//   - every relative markdown link [text](path) or [text](path#anchor) resolves from the file's folder;
//   - every backticked repo path, `tensor/kernels/simd.h` or `nn/optim/` (a path under one of heed's
//     folders), resolves from the repository root; `simd.{h,cpp}` stands for both files.
// Fenced code blocks are skipped: they hold code and shell commands, not citations.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

const fs::path kRoot = HEED_SOURCE_DIR;

// The markdown files whose citations are checked: README.md and every docs/*.md.
std::vector<fs::path> doc_files() {
  std::vector<fs::path> files = {kRoot / "README.md"};
  for (const auto& e : fs::directory_iterator(kRoot / "docs"))
    if (e.path().extension() == ".md") files.push_back(e.path());
  return files;
}

// The file's lines outside ``` fences, each with its line number.
std::vector<std::pair<int, std::string>> prose_lines(const fs::path& file) {
  std::ifstream in(file);
  std::vector<std::pair<int, std::string>> out;
  bool fenced = false;
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    number++;
    if (line.rfind("```", 0) == 0) fenced = !fenced;
    else if (!fenced) out.push_back({number, line});
  }
  return out;
}

// "simd.{h,cpp}" -> "simd.h", "simd.cpp" (one brace group; nested groups expand recursively).
std::vector<std::string> expand_braces(const std::string& p) {
  const size_t open = p.find('{'), close = p.find('}', open);
  if (open == std::string::npos || close == std::string::npos) return {p};
  std::vector<std::string> out;
  std::stringstream alternatives(p.substr(open + 1, close - open - 1));
  for (std::string alt; std::getline(alternatives, alt, ',');)
    for (const std::string& rest : expand_braces(p.substr(close + 1))) out.push_back(p.substr(0, open) + alt + rest);
  return out;
}

struct Citation {
  fs::path doc;
  int line;
  std::string text;  // as written
  fs::path target;   // what must exist
};

std::vector<Citation> citations() {
  // [text](target): not images' sizes, not URLs, not in-page anchors.
  static const std::regex link(R"(\[[^\]]*\]\(([^)\s]+)\))");
  // `room/...`: a path under one of heed's folders, with no spaces, wildcards or <placeholders>.
  static const std::regex path(
      R"(`((?:tensor|autograd|nn|data|metrics|viz|io|models|tests|bench|cmake|docs)/[A-Za-z0-9_.{},/-]*)`)");
  std::vector<Citation> out;
  for (const fs::path& doc : doc_files()) {
    for (const auto& [number, line] : prose_lines(doc)) {
      for (std::sregex_iterator it(line.begin(), line.end(), link), end; it != end; ++it) {
        std::string target = (*it)[1];
        if (target.find("://") != std::string::npos || target.rfind("mailto:", 0) == 0 || target[0] == '#') continue;
        target = target.substr(0, target.find('#'));
        out.push_back({doc, number, (*it)[0], doc.parent_path() / target});
      }
      for (std::sregex_iterator it(line.begin(), line.end(), path), end; it != end; ++it)
        for (const std::string& p : expand_braces((*it)[1])) out.push_back({doc, number, (*it)[0], kRoot / p});
    }
  }
  return out;
}

}  // namespace

TEST_CASE("docs: every relative link and every cited repo path exists") {
  const std::vector<Citation> all = citations();
  CHECK(all.size() > 20);  // the parse found the docs' citations
  for (const Citation& c : all) {
    const std::string where = fs::relative(c.doc, kRoot).string() + ":" + std::to_string(c.line);
    INFO(where, ": ", c.text, " -> ", fs::relative(c.target, kRoot).lexically_normal().string(), " does not exist");
    CHECK(fs::exists(c.target));
  }
}

TEST_CASE("docs: the citation parser reads links, anchors and brace groups") {
  CHECK(expand_braces("tensor/kernels/simd.{h,cpp}") ==
        std::vector<std::string>{"tensor/kernels/simd.h", "tensor/kernels/simd.cpp"});
  CHECK(expand_braces("nn/optim/") == std::vector<std::string>{"nn/optim/"});
  CHECK(expand_braces("a{b,c}/d.{h,cpp}").size() == 4);
}
