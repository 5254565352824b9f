// tests/main.cpp: the main() of heed_tests. Every other file under tests/ holds only TEST_CASEs.
//
// ctest runs heed_tests once per TEST_CASE, as `heed_tests --test-case=<name>` (see "tests" in
// CMakeLists.txt). doctest exits 0 when a filter matches nothing, so a name that CMake mangled on the
// way (a ';' in a test name splits it in two) would be reported as a pass that ran nothing. The small
// listener below counts the test cases that passed the filters, and main() turns "a --test-case filter
// was given but matched nothing" into a failure that says so.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <string_view>

namespace {

unsigned g_matched = 0;  // test cases that passed the filters in this run

// A doctest listener sees every event of the run; this one only keeps the final count.
struct CountMatched : doctest::IReporter {
  explicit CountMatched(const doctest::ContextOptions&) {}
  void test_run_end(const doctest::TestRunStats& stats) override { g_matched = stats.numTestCasesPassingFilters; }
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_case_start(const doctest::TestCaseData&) override {}
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};
DOCTEST_REGISTER_LISTENER("count_matched", 1, CountMatched);

// The argument that selects test cases by name (--test-case=..., -tc=..., or their dt- forms), or null.
const char* test_case_filter(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    for (std::string_view prefix : {"--test-case=", "-tc=", "--dt-test-case=", "-dt-tc="})
      if (arg.substr(0, prefix.size()) == prefix) return argv[i];
  }
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  int result = context.run();
  if (context.shouldExit()) return result;  // --help, --list-test-cases and other queries
  const char* filter = test_case_filter(argc, argv);
  if (result == 0 && g_matched == 0 && filter) {
    std::fprintf(stderr, "heed_tests: no test case matches '%s' (ctest splits a TEST_CASE name at each ';', "
                 "so names must not contain one)\n", filter);
    return 1;
  }
  return result;
}
