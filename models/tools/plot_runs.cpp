// plot_runs: several runs' curves in one picture, for comparing recipes at equal budgets. For example
// FD-FMNIST against training minutes for two GAN recipes, from the metrics.csv each run wrote:
//
//   plot_runs --x-column train_minutes --y-column fd_fmnist --out gan_fd.png \
//       "dcgan s0=runs/gan_dcgan_s0/metrics.csv" "sagan s0=runs/gan_sagan_s0/metrics.csv"
//
// Each argument is LABEL=CSV (the label ends at the first =); rows where the x or y cell is empty are skipped
// (steps.csv holds FD points only on some rows). The table drawn goes beside the PNG (gan_fd.csv). viz::plot_runs does
// the work; this is its command line. Exit codes as the zoo's: 0 done, 2 bad input (a missing file or column), 1
// anything else.
#include <cstdio>
#include <cxxopts.hpp>
#include <string>
#include <vector>

#include "models/zoo/zoo.h"
#include "viz/viz.h"

using namespace heed;

int main(int argc, char** argv) {
  return zoo::main_guard("plot_runs", [&] {
    cxxopts::Options options("plot_runs", "Several runs' y column against their x column, in one picture");
    options.add_options()                                                             //
        ("x-column", "the x column of every CSV", cxxopts::value<std::string>()->default_value("train_minutes"))  //
        ("y-column", "the y column of every CSV", cxxopts::value<std::string>()->default_value("fd_fmnist"))      //
        ("out", "the PNG to write (the table goes beside it, as .csv)", cxxopts::value<std::string>())     //
        ("title", "the picture's title", cxxopts::value<std::string>()->default_value(""))                 //
        ("log-y", "a logarithmic y axis")                                                                   //
        ("h,help", "this help")                                                                             //
        ("runs", "LABEL=CSV, one per run", cxxopts::value<std::vector<std::string>>());
    options.parse_positional({"runs"});
    options.positional_help("LABEL=CSV [LABEL=CSV ...]");
    cxxopts::ParseResult args;
    try {
      args = options.parse(argc, argv);
    } catch (const cxxopts::exceptions::exception& e) {
      throw zoo::UsageError(e.what());
    }
    if (args.count("help")) {
      std::printf("%s\n", options.help().c_str());
      return 0;
    }
    if (!args.count("out")) throw zoo::UsageError("--out PNG is required");
    if (!args.count("runs")) throw zoo::UsageError("no runs given; each is LABEL=CSV");
    std::vector<viz::RunCurve> runs;
    for (const std::string& arg : args["runs"].as<std::vector<std::string>>()) {
      const size_t eq = arg.find('=');
      if (eq == std::string::npos) throw zoo::UsageError("'" + arg + "' is not LABEL=CSV");
      runs.push_back({arg.substr(0, eq), arg.substr(eq + 1)});
    }
    const std::string png = args["out"].as<std::string>();
    const bool drawn = viz::plot_runs(runs, png, args["x-column"].as<std::string>(), args["y-column"].as<std::string>(),
                                      {.title = args["title"].as<std::string>(), .log_y = args.count("log-y") > 0});
    std::printf("plot_runs: %s %s\n", drawn ? "drew" : "no gnuplot; wrote only the table for", png.c_str());
    return 0;
  });
}
