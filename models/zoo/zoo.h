// zoo.h: what every zoo program (models/*.cpp) shares: its command line, its progress bar, and the files a
// run leaves behind. A model's main() reads:
//
//   int main(int argc, char** argv) {
//     zoo::Cli cli("vae", "A variational autoencoder on Fashion-MNIST (Kingma and Welling 2014)",
//                  {.epochs = 10, .batch_size = 128, .lr = 1e-3});
//     cli.option("latent", "size of the latent code z", 20, /*min=*/1);
//     return zoo::main_guard("vae", [&] {
//       zoo::RunConfig cfg = cli.parse(argc, argv);   // --help exits 0, a bad flag exits 2
//       int latent = cli.get<int>("latent");
//       zoo::RunLog log(cli, cfg);                    // writes to cfg.out
//       for (int epoch = 1; epoch <= cfg.epochs; ++epoch) {
//         zoo::ProgressBar bar(log.epoch_label(epoch), loader.size());
//         for (auto& batch : loader) { ...; bar.update(loss.item(), batch[0].size(0)); }
//         bar.finish();
//         log.epoch(epoch, {{"train_loss", bar.mean_loss()}, {"test_loss", test_loss}});
//       }
//       log.final({{"test_loss", test_loss}});
//       log.finish();  // metrics.json, metrics.csv, loss.png, and a summary table
//       return 0;
//     });
//   }
//
// EXIT CODES, the same for every model:
//   0  the run finished.
//   1  the run failed: a std::exception that is not heed::Error (heed::OutOfMemory, a file that could not
//      be written or a full disk: io::IoError, a diverged loss: zoo::Diverged). Rerunning the same command
//      will fail the same way; the message says where.
//   2  the input is wrong: a bad command line (UsageError), or a heed::Error (or any other
//      std::invalid_argument, such as nn::StateDictError). heed::Error means "a caller passed something
//      invalid", and in a finished model that is the input: a missing or damaged dataset (data/data.h
//      reports those as heed::Error), a checkpoint that does not fit, or options the model cannot run
//      with. 2 is also what getopt-style programs and Python's argparse return for usage errors.
// Each failure prints exactly one line to stderr, "vae: <what went wrong>", never a stack trace.
//
// THE RUN DIRECTORY (--out, default runs/<model>/<YYYY-MM-DD_HH-MM-SS>) is never silently reused: a folder
// that holds a run already (its metrics.json) is refused unless the command resumes it (--resume) or
// --force says to overwrite it. A resumed run appends: the earlier epochs and steps stay in its files.
// It holds:
//   metrics.json  the model, the status, the full config (every flag), per-epoch and final metrics, the
//                 wall time, the heed version and git commit, the BLAS core. Rewritten after each epoch,
//                 so an interrupted run keeps what it had ("status": "running" or "incomplete").
//   metrics.csv   one row per epoch: epoch, the metrics, time_s (seconds since the start)
//   steps.csv     one row per RunLog::step call, if there were any
//   loss.png      the *loss* columns of metrics.csv against epoch; metrics.png the other columns;
//   steps.png     the columns of steps.csv. gnuplot draws all three when it is installed (see viz.h),
//                 from the .gp scripts beside them, which can be edited and rerun by hand.
// Every file is written to a temporary name and renamed, so none is ever seen half-written.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "autograd/node.h"  // NoGradGuard
#include "tensor/shape.h"
#include "tensor/tensor.h"

namespace cxxopts {
class Options;  // zoo.cpp parses with cxxopts; users of this header need not include it
}

namespace heed::nn {
struct Module;
}
namespace heed::optim {
class Optimizer;
}

namespace heed::zoo {

/// The flags every zoo program takes. A model passes its own defaults to Cli; parse fills in the rest.
struct RunConfig {
  std::string model{};   /// the program's name, set by Cli
  int epochs = 10;       /// --epochs, >= 1
  int batch_size = 64;   /// --batch-size, >= 1
  double lr = 1e-3;      /// --lr, > 0
  uint64_t seed = 0;     /// --seed
  int threads = 0;       /// --threads: set_num_threads, 0 to kMaxThreads; 0 keeps the default
  std::string out{};     /// --out: the run directory; parse creates it
  bool quick = false;    /// --quick: a smoke-test run of a few seconds; the model decides what to shrink
  bool force = false;    /// --force: overwrite the run already in --out
};

/// The most --threads accepts: far more than any machine heed runs on has cores, far fewer than the
/// 100,000 that crashed inside libgomp.
constexpr int kMaxThreads = 256;

/// Training whose loss or parameters stopped being finite: "diverged at step 12 (loss nan)". A failure
/// of the run, not of its input: exit 1.
struct Diverged : std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// Throws Diverged("diverged at step N (loss L)") unless `loss` is finite.
void check_finite_loss(double loss, int64_t step);
/// Throws Diverged("diverged at step N (parameter fc1.weight is not finite)") unless every parameter is
/// finite: for a model to call when an op refuses non-finite values before a loss exists.
void check_finite_parameters(const nn::Module& model, int64_t step);

/// A bad command line. what() is the message without the program's name: "--epochs must be >= 1, got -3".
struct UsageError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

/// An option's value: a flag, an integer, a number or a string.
using Value = std::variant<bool, int64_t, double, std::string>;

/// The command line of one zoo program: the standard flags of RunConfig, --help, and the model's own.
class Cli {
 public:
  Cli(std::string model, std::string description, RunConfig defaults = {});

  /// Adds the model's option --name (lower case, digits and '-'), declared before parse. T is bool, an
  /// integer type, a floating type or a string; min and max (inclusive) are checked by parse.
  /// A bool option is a switch: --name turns it on, --name=false off.
  template <class T>
  Cli& option(const std::string& name, const std::string& help, T default_value, std::optional<double> min = {},
              std::optional<double> max = {});

  /// Parses argv, applies --threads (set_num_threads), creates --out, and prints two lines: the build
  /// (heed version, BLAS) and the config. --help prints the help and exits 0; a bad argument prints one
  /// line, "vae: --epochs must be >= 1, got -3", and exits 2. An --out that holds a run already is a bad
  /// argument unless --resume (when the model has it) or --force is given. With --resume, --seed must
  /// match the checkpoint's, and without --seed the run takes the checkpoint's.
  RunConfig parse(int argc, const char* const* argv);
  /// parse without printing or exiting, for tests: nothing for --help, UsageError for a bad argument.
  std::optional<RunConfig> try_parse(int argc, const char* const* argv);
  /// Only the reading and checking of argv: no folder is created, no checkpoint read, no thread count
  /// set (what the fuzzer drives). try_parse is this, then those effects.
  std::optional<RunConfig> parse_args(int argc, const char* const* argv);
  /// True when the model declared --name.
  bool has(const std::string& name) const;
  /// True when the model has --resume and it was given a path.
  bool resuming() const;

  /// An option's value after parse (its default before); standard flags too, by their names
  /// ("batch-size"). Integers convert to any integer or floating type, with a range check.
  template <class T>
  T get(const std::string& name) const;
  /// True when the command line set the option (so a model can tell --epochs 10 from the default).
  bool given(const std::string& name) const;
  /// Throws UsageError(message) unless `condition`: for checks that involve several options.
  void require(bool condition, const std::string& message) const;

  std::string help() const;
  const std::string& model() const { return model_; }
  /// Every option and its value, in declaration order (standard flags first).
  std::vector<std::pair<std::string, Value>> values() const;
  /// The command line as parsed, for the record ("vae --epochs 3").
  const std::string& command() const { return command_; }

 private:
  enum class Kind { Bool, Int, Int64, Double, String };
  struct Spec {
    std::string name, help;
    Kind kind;
    Value initial, value;  // the default, and the value after parse
    std::optional<double> min, max;
    bool given = false;
  };
  Cli& add(const std::string& name, const std::string& help, Kind kind, Value value, std::optional<double> min,
           std::optional<double> max);
  const Spec& spec(const std::string& name) const;
  void declare(cxxopts::Options& options) const;  // every option, for parsing and for the help text
  static Value convert(const Spec& spec, const std::string& text);  // checked: type and range
  [[noreturn]] void wrong_type(const std::string& name, const char* wanted) const;

  std::string model_, description_, command_;
  std::vector<Spec> specs_;
};

/// The training state of --resume, loaded into `model` and `optimizer` (optim::load_training_state), with the
/// learning rate settled so that metrics.json records what runs: a given --lr is applied to the optimizer's
/// group 0, else run.lr becomes group 0's lr from the checkpoint. Returns the checkpoint's step.
int64_t resume_training(const Cli& cli, RunConfig& run, nn::Module& model, optim::Optimizer& optimizer);
/// The metadata a zoo checkpoint carries, for parse's --seed check on resume: {"seed": "..."} and `more`.
std::map<std::string, std::string> checkpoint_metadata(const RunConfig& run,
                                                       std::map<std::string, std::string> more = {});

/// Runs a model's body: returns its exit code, or catches what it throws, prints one line and returns
/// 2 for UsageError, heed::Error and other std::invalid_argument, 1 for anything else (see EXIT CODES).
int main_guard(const std::string& model, const std::function<int()>& body);

/// "0.1.0" from the HEED_VERSION definition, and the commit from HEED_GIT_COMMIT, or "unknown".
std::string heed_version();
std::string git_commit();

/// One epoch's progress, redrawn in place on a terminal:
///   epoch 3/10 [#########...........]  212/469  loss 0.3121  5.2k items/s  ETA 0:04
/// and, when the output is not a terminal (CI logs), printed as plain lines at 25, 50, 75 and 100%.
class ProgressBar {
 public:
  /// `total` batches (>= 1). `out` is where it draws; nullptr draws nothing but still averages the loss.
  ProgressBar(std::string label, int64_t total, std::FILE* out = stdout);
  /// After each batch: its loss, and how many items (samples, tokens) it held, for the rate and to weight
  /// the mean loss. With items = 0 the rate counts batches and every batch weighs the same.
  void update(double loss, int64_t items = 0);
  /// Ends the bar: a terminal keeps its final state (with the time taken) and gets a newline; a log gets a
  /// last line unless it has just had the 100% one. Called by the destructor too.
  void finish();
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  /// The loss averaged over the epoch so far (weighted by items when given): the epoch's train loss.
  double mean_loss() const;
  int64_t done() const { return done_; }

 private:
  std::string line(bool with_bar) const;
  std::string label_;
  int64_t total_, done_ = 0, items_ = 0;
  double loss_sum_ = 0, weight_sum_ = 0;
  std::FILE* out_;
  bool tty_, finished_ = false;
  int printed_quarters_ = 0;  // non-terminal: how many of 25/50/75/100% have been printed
  std::chrono::steady_clock::time_point start_, last_draw_;
};

/// Metric values by name, in the order they should appear: {{"train_loss", 0.31}, {"test_loss", 0.35}}.
using Metrics = std::vector<std::pair<std::string, double>>;

/// The record of one run: it collects metrics and writes the files described at the top of this header
/// into config.out. Console lines go to `console` (nullptr for none).
class RunLog {
 public:
  RunLog(const Cli& cli, const RunConfig& config, std::FILE* console = stdout);
  /// Without a Cli: the config holds only RunConfig's fields.
  explicit RunLog(const RunConfig& config, std::FILE* console = stdout);
  /// A run left without finish() (an exception) marks metrics.json "incomplete".
  ~RunLog();
  RunLog(const RunLog&) = delete;
  RunLog& operator=(const RunLog&) = delete;

  /// Adds or replaces a config entry the model settled after parsing (the training set size under
  /// --quick, the vocabulary size). RunConfig's fields are taken from `config`, so changes to it made
  /// before the RunLog was built are recorded already.
  void set_config(const std::string& key, Value value);
  /// A row of steps.csv; call every N optimizer steps.
  void step(int64_t step, const Metrics& metrics);
  /// A row of metrics.csv. Prints "epoch 3/10  train_loss 0.3121  test_loss 0.3342  (41.2 s)" and
  /// rewrites metrics.csv and metrics.json.
  void epoch(int epoch, const Metrics& metrics);
  /// The run's result on its task's metric (test accuracy, bits per dim, FID ...); may be called again
  /// to add more.
  void final(const Metrics& metrics);
  /// Writes every file, draws the plots, and prints a summary table: each epoch metric at the first and
  /// the last epoch, then the final metrics. A plot that fails is reported in one line, not thrown:
  /// the numbers are already safe on disk.
  void finish();

  /// "epoch 3/10", for a ProgressBar.
  std::string epoch_label(int epoch) const;
  const std::string& dir() const { return config_.out; }
  double elapsed_seconds() const;

 private:
  void write(const char* status) const;
  void say(const std::string& line) const;
  void read_history();  // a resumed run's earlier epochs and steps, from the files in its folder

  RunConfig config_;
  std::vector<std::pair<std::string, Value>> values_;  // the "config" of metrics.json
  std::string command_, blas_core_, blas_summary_;
  std::FILE* console_;
  std::chrono::steady_clock::time_point start_;
  std::string started_at_;  // local time, ISO 8601
  std::vector<std::pair<int64_t, Metrics>> epochs_, steps_;
  Metrics final_;
  bool finished_ = false;
};

/// Training time apart from evaluation, for equal wall-clock budgets (--minutes): start() before a stretch of
/// training, stop() after it. With a budget of `minutes` > 0, over() is true once that much training time has
/// passed; a budget of 0 is never over. A resumed run counts only its own process's training.
class TrainClock {
 public:
  explicit TrainClock(double minutes = 0);
  void start();
  void stop();
  double minutes() const;  /// the training time so far, the current stretch included
  bool over() const { return budget_ > 0 && minutes() >= budget_; }

 private:
  double budget_, seconds_ = 0;  // seconds_: the finished stretches
  bool running_ = false;
  std::chrono::steady_clock::time_point since_;
};

/// f over the rows of x in batches of `batch`, without a graph, the results concatenated along dim 0: how a
/// zoo program encodes or scores a whole dataset (x (N, ...) -> f(rows) (n, ...) -> (N, ...)).
template <class F>
Tensor over_batches(const Tensor& x, int64_t batch, F f) {
  NoGradGuard no_grad;
  std::vector<Tensor> parts;
  for (int64_t i = 0; i < x.size(0); i += batch) parts.push_back(f(x.narrow(0, i, std::min(batch, x.size(0) - i))));
  return cat(parts, 0);
}

// ---- template definitions ---------------------------------------------------------------------------

template <class T>
Cli& Cli::option(const std::string& name, const std::string& help, T default_value, std::optional<double> min,
                 std::optional<double> max) {
  if constexpr (std::is_same_v<T, bool>)
    return add(name, help, Kind::Bool, Value(default_value), min, max);
  else if constexpr (std::is_integral_v<T>)
    return add(name, help, sizeof(T) <= 4 ? Kind::Int : Kind::Int64, Value((int64_t)default_value), min, max);
  else if constexpr (std::is_floating_point_v<T>)
    return add(name, help, Kind::Double, Value((double)default_value), min, max);
  else if constexpr (std::is_convertible_v<T, std::string>)
    return add(name, help, Kind::String, Value(std::string(default_value)), min, max);
  else
    static_assert(std::is_same_v<T, bool>, "Cli::option: the default must be a bool, an integer, a floating "
                                           "point number or a string");
}

template <class T>
T Cli::get(const std::string& name) const {
  const Value& v = spec(name).value;
  if constexpr (std::is_same_v<T, bool>) {
    if (auto* b = std::get_if<bool>(&v)) return *b;
    wrong_type(name, "bool");
  } else if constexpr (std::is_integral_v<T>) {
    if (auto* i = std::get_if<int64_t>(&v)) {
      if (*i < (int64_t)std::numeric_limits<T>::min() ||
          (*i > 0 && (uint64_t)*i > (uint64_t)std::numeric_limits<T>::max()))
        throw Error("Cli::get: --" + name + " = " + std::to_string(*i) + " does not fit the requested type");
      return (T)*i;
    }
    wrong_type(name, "an integer");
  } else if constexpr (std::is_floating_point_v<T>) {
    if (auto* d = std::get_if<double>(&v)) return (T)*d;
    if (auto* i = std::get_if<int64_t>(&v)) return (T)*i;
    wrong_type(name, "a number");
  } else {
    static_assert(std::is_same_v<T, std::string>, "Cli::get<T>: T must be bool, an integer, a floating type or "
                                                  "std::string");
    if (auto* s = std::get_if<std::string>(&v)) return *s;
    wrong_type(name, "a string");
  }
}

}  // namespace heed::zoo
