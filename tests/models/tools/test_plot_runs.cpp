// Tests for models/tools/plot_runs.cpp, through the program as a user runs it: two runs' CSVs become one table
// and one picture; a bad argument or a missing column is one line and exit code 2. viz::plot_runs itself is
// tested in tests/viz/test_viz.cpp.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/models/zoo_program.h"
#include "viz/viz.h"

using namespace heed;
using namespace heed::test;

TEST_CASE("plot_runs: LABEL=CSV arguments become one table and one picture; bad input is exit code 2") {
  const fs::path program = zoo_program("plot_runs");
  if (!fs::exists(program)) {
    MESSAGE("skipped: " << program << " is not built (HEED_BUILD_MODELS=OFF?)");
    return;
  }
  const fs::path dir = scratch("plot_runs");
  std::ofstream(dir / "a.csv") << "epoch,fd_fmnist,train_minutes\n1,300,0.5\n2,200,1\n";
  std::ofstream(dir / "b.csv") << "epoch,fd_fmnist,train_minutes\n1,250,0.7\n";
  const std::string a = (dir / "a.csv").string(), b = (dir / "b.csv").string();
  Result r = run(program, "--out " + (dir / "fd.png").string() + " 'dcgan s0=" + a + "' 'sagan s0=" + b + "'", dir);
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  CHECK(read_text(dir / "fd.csv") == "train_minutes,dcgan s0,sagan s0\n0.5,300,\n1,200,\n0.7,,250\n");
  if (!viz::gnuplot_program().empty()) CHECK(fs::exists(dir / "fd.png"));

  struct Case {
    std::string args, expected;
  };
  const Case cases[] = {
      {"'x=" + a + "'", "plot_runs: --out PNG is required"},
      {"--out " + (dir / "x.png").string(), "plot_runs: no runs given; each is LABEL=CSV"},
      {"--out " + (dir / "x.png").string() + " " + a, "is not LABEL=CSV"},
      {"--out " + (dir / "x.png").string() + " --y-column iw_nll 'x=" + a + "'", "plot_runs: no column 'iw_nll'"},
      {"--out " + (dir / "x.png").string() + " 'x=" + (dir / "none.csv").string() + "'", "plot_runs: cannot read"},
      {"--no-such-flag", "plot_runs: "},
  };
  for (const Case& c : cases) {
    Result e = run(program, c.args, dir);
    CHECK_MESSAGE(e.exit_code == 2, c.args, " -> ", e.output);
    CHECK_MESSAGE(e.output.find(c.expected) != std::string::npos, c.args, " -> ", e.output);
  }
  fs::remove_all(dir);
}
