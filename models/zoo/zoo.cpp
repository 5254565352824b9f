// zoo.cpp: the zoo's command line (on cxxopts), progress bar and run record. Read zoo.h first.
#include "models/zoo/zoo.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <ctime>
#include <cxxopts.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "autograd/node.h"
#include "dist/dist.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "nn/optim/training_state.h"
#include "viz/viz.h"
#include "tensor/kernels/blas.h"

namespace heed::zoo {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr size_t kStandardFlags = 8;  // the flags Cli's constructor declares, before the model's own

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// A number as a person would type it: 0.001, 20, 1e-05.
std::string num(double v) { return fmt("%.10g", v); }

std::string value_text(const Value& v) {
  if (auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  if (auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (auto* d = std::get_if<double>(&v)) return num(*d);
  return std::get<std::string>(v);
}

// "83.4 s", "1m 23s", "2h 05m": how long something took.
std::string duration(double seconds) {
  if (seconds < 60) return fmt("%.1f s", seconds);
  char buf[64];
  int64_t s = (int64_t)seconds;
  if (s < 3600)
    std::snprintf(buf, sizeof buf, "%dm %02ds", (int)(s / 60), (int)(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%dh %02dm", (int)(s / 3600), (int)(s % 3600 / 60));
  return buf;
}

// Local time as "2024-05-01_12-30-05" (for directory names) or "2024-05-01T12:30:05" (ISO 8601, for JSON).
std::string local_time(const char* format) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

// A message for one line: what() of some exceptions spans several.
std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

}  // namespace

// ---- the command line -------------------------------------------------------------------------------

Cli::Cli(std::string model, std::string description, RunConfig d)
    : model_(std::move(model)), description_(std::move(description)) {
  if (model_.empty()) throw Error("Cli: the model needs a name");
  // The standard flags. --out has no default here: parse makes runs/<model>/<time> when it is not given.
  option("epochs", "passes over the training set", d.epochs, 1);
  option("batch-size", "examples per optimizer step", d.batch_size, 1);
  option("lr", "learning rate (> 0)", d.lr);
  option("seed", "random seed: initial weights, data order, sampling", (int64_t)d.seed, 0);
  option("threads", "most threads for kernels and gemm (0: all cores; fewer while others use them)", d.threads, 0,
         kMaxThreads);
  option("out", "run directory for metrics.json, CSV files and pictures (default: runs/" + model_ + "/<date_time>)",
         d.out);
  option("quick", "a tiny run for smoke tests (seconds, not minutes)", d.quick);
  option("force", "overwrite the run already in --out (without it, such an --out is refused)", d.force);
}

bool Cli::has(const std::string& name) const {
  return std::any_of(specs_.begin(), specs_.end(), [&](const Spec& s) { return s.name == name; });
}

bool Cli::resuming() const {
  return has("resume") && std::holds_alternative<std::string>(spec("resume").value) &&
         !get<std::string>("resume").empty();
}

Cli& Cli::add(const std::string& name, const std::string& help, Kind kind, Value value, std::optional<double> min,
              std::optional<double> max) {
  const bool well_formed = !name.empty() && name.front() != '-' &&
                           std::all_of(name.begin(), name.end(), [](char c) {
                             return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
                           });
  if (!well_formed) throw Error("Cli::option: '" + name + "' is not a valid option name (use a-z, 0-9 and '-')");
  if (name == "help" || std::any_of(specs_.begin(), specs_.end(), [&](const Spec& s) { return s.name == name; }))
    throw Error("Cli::option: --" + name + " is already defined");
  const bool numeric = kind == Kind::Int || kind == Kind::Int64 || kind == Kind::Double;
  if ((min || max) && !numeric) throw Error("Cli::option: --" + name + " is not a number and cannot have a min or max");
  if (numeric) {
    // A default outside its own range is a mistake in the model's code, caught when the model starts.
    double v = std::holds_alternative<double>(value) ? std::get<double>(value) : (double)std::get<int64_t>(value);
    if ((min && v < *min) || (max && v > *max))
      throw Error("Cli::option: the default of --" + name + ", " + num(v) + ", is outside its range");
  }
  specs_.push_back({name, help, kind, value, value, min, max, false});
  return *this;
}

const Cli::Spec& Cli::spec(const std::string& name) const {
  for (const Spec& s : specs_)
    if (s.name == name) return s;
  throw Error("Cli: no option --" + name + " (declare it with cli.option before parse)");
}

void Cli::wrong_type(const std::string& name, const char* wanted) const {
  const char* kinds[] = {"a bool", "an int", "an int64", "a number", "a string"};
  throw Error("Cli::get: --" + name + " holds " + kinds[(int)spec(name).kind] + ", not " + wanted);
}

bool Cli::given(const std::string& name) const { return spec(name).given; }

void Cli::require(bool condition, const std::string& message) const {
  if (!condition) throw UsageError(message);
}

std::vector<std::pair<std::string, Value>> Cli::values() const {
  std::vector<std::pair<std::string, Value>> out;
  for (const Spec& s : specs_) out.emplace_back(s.name, s.value);
  return out;
}

// Numbers and strings go to cxxopts as strings, and heed converts them: that way an error names the flag
// ("--epochs expects an integer, got 'ten'"), where cxxopts would only say "Argument 'ten' failed to parse".
// Switches are cxxopts bools, which its help shows as plain "--quick".
void Cli::declare(cxxopts::Options& options) const {
  options.add_options()("h,help", "print this help and exit");
  for (size_t i = 0; i < specs_.size(); ++i) {
    const Spec& s = specs_[i];
    std::shared_ptr<cxxopts::Value> value;
    if (s.kind == Kind::Bool)
      value = cxxopts::value<bool>();
    else
      value = cxxopts::value<std::string>();
    const std::string shown = value_text(s.initial);
    if (!shown.empty()) value->default_value(shown);  // for the help text; parse keeps its own defaults
    const char* arg = s.name == "out" ? "DIR" : s.kind == Kind::Double ? "X" : s.kind == Kind::String ? "TEXT" : "N";
    options.add_options(i < kStandardFlags ? "" : model_)(s.name, s.help, value, arg);
  }
}

std::string Cli::help() const {
  cxxopts::Options options(model_, description_);
  declare(options);
  std::vector<std::string> groups{""};
  if (specs_.size() > kStandardFlags) groups.push_back(model_);
  return options.help(groups);
}

namespace {

// cxxopts quotes names as ‘x’; this finds x.
std::string quoted_name(const std::string& message) {
  size_t a = message.find("\xE2\x80\x98"), b = message.find("\xE2\x80\x99");
  if (a != std::string::npos && b != std::string::npos && b > a) return message.substr(a + 3, b - a - 3);
  a = message.find('\''), b = message.rfind('\'');
  if (a != std::string::npos && b > a) return message.substr(a + 1, b - a - 1);
  return "";
}

// cxxopts's own exceptions, in heed's words.
UsageError translate(const cxxopts::exceptions::exception& e, int argc, const char* const* argv) {
  const std::string name = quoted_name(e.what());
  if (dynamic_cast<const cxxopts::exceptions::no_such_option*>(&e)) {
    // cxxopts strips the dashes; put back the ones the user typed.
    std::string typed = (name.size() == 1 ? "-" : "--") + name;
    for (int i = 1; i < argc; ++i)
      if (std::string(argv[i]).rfind("--" + name, 0) == 0) typed = "--" + name;
    return UsageError("unknown option " + typed + " (see --help)");
  }
  if (dynamic_cast<const cxxopts::exceptions::missing_argument*>(&e) ||
      dynamic_cast<const cxxopts::exceptions::option_requires_argument*>(&e))
    return UsageError("--" + name + " needs a value");
  if (dynamic_cast<const cxxopts::exceptions::gratuitous_argument_for_option*>(&e))
    return UsageError("--" + name + " takes no value");
  if (dynamic_cast<const cxxopts::exceptions::invalid_option_syntax*>(&e))
    return UsageError("'" + name + "' is not an option (options look like --name or --name=value)");
  std::string m = e.what();
  for (const char* q : {"\xE2\x80\x98", "\xE2\x80\x99"})
    for (size_t p; (p = m.find(q)) != std::string::npos;) m.replace(p, 3, "'");
  return UsageError(m);
}

// Creates the run directory and proves it writable, so a bad --out fails now, not after an hour of training.
void prepare_out(const std::string& out) {
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) throw UsageError("--out '" + out + "' cannot be created: " + ec.message());
  if (!fs::is_directory(out, ec)) throw UsageError("--out '" + out + "' is not a directory");
  const std::string probe = (fs::path(out) / (".heed-write-test-" + std::to_string(::getpid()))).string();
  std::FILE* f = std::fopen(probe.c_str(), "w");
  if (!f) throw UsageError("--out '" + out + "' is not writable: " + std::strerror(errno));
  std::fclose(f);
  std::remove(probe.c_str());
}

// runs/<model>/<date_time>, with -2, -3, ... if two runs start in the same second.
std::string default_out(const std::string& model) {
  const std::string base = (fs::path("runs") / model / local_time("%Y-%m-%d_%H-%M-%S")).string();
  std::string out = base;
  for (int i = 2; fs::exists(out); ++i) out = base + "-" + std::to_string(i);
  return out;
}

}  // namespace

// A number or string option's text as its kind, with the range check. (Switches are cxxopts's.)
Value Cli::convert(const Spec& s, const std::string& text) {
  if (s.kind == Kind::String) return text;
  const std::string flag = "--" + s.name;
  const char* end = text.data() + text.size();
  Value v;
  double x = 0;
  if (s.kind == Kind::Double) {
    auto [p, ec] = std::from_chars(text.data(), end, x);
    if (text.empty() || ec != std::errc() || p != end || !std::isfinite(x))
      throw UsageError(flag + " expects a number, got '" + text + "'");
    v = x;
  } else {
    int64_t i = 0;
    auto [p, ec] = std::from_chars(text.data(), end, i);
    if (ec == std::errc::result_out_of_range || (s.kind == Kind::Int && (i < INT32_MIN || i > INT32_MAX)))
      throw UsageError(flag + " is out of range, got " + text);
    if (text.empty() || ec != std::errc() || p != end)
      throw UsageError(flag + " expects an integer, got '" + text + "'");
    v = i, x = (double)i;
  }
  if (s.min && s.max && (x < *s.min || x > *s.max))
    throw UsageError(flag + " must be in [" + num(*s.min) + ", " + num(*s.max) + "], got " + text);
  if (s.min && x < *s.min) throw UsageError(flag + " must be >= " + num(*s.min) + ", got " + text);
  if (s.max && x > *s.max) throw UsageError(flag + " must be <= " + num(*s.max) + ", got " + text);
  return v;
}

std::optional<RunConfig> Cli::try_parse(int argc, const char* const* argv) {
  std::optional<RunConfig> cfg = parse_args(argc, argv);
  if (!cfg) return cfg;
  // A finished run's files are never overwritten by accident: reusing its --out lost its checkpoint and
  // metrics before. Resuming (which appends) and --force (which says so) may.
  std::error_code ec;
  if (fs::exists(fs::path(cfg->out) / "metrics.json", ec) && !cfg->force && !resuming())
    throw UsageError("--out '" + cfg->out + "' holds a run already (metrics.json): give another --out, " +
                     (has("resume") ? "--resume " + (fs::path(cfg->out) / "checkpoint.safetensors").string() +
                                          " to continue it, "
                                    : std::string()) +
                     "or --force to overwrite it");
  // A model whose --resume names a folder of checkpoints (anomaly's, one per class) checks them itself.
  if (resuming() && !fs::is_directory(get<std::string>("resume"), ec)) {
    // The checkpoint fixes the seed (the data order, the noise): a different --seed would silently mix two
    // runs, and no --seed takes the checkpoint's, so that metrics.json records the seed that ran.
    Metadata meta;
    heed::load(get<std::string>("resume"), &meta);
    auto it = meta.find("seed");
    if (it != meta.end()) {
      const std::string seed = std::to_string(cfg->seed);
      if (given("seed") && it->second != seed)
        throw UsageError("--seed " + seed + " differs from the seed " + it->second + " of the run in --resume " +
                         get<std::string>("resume") + " (leave --seed out to continue with it)");
      uint64_t s = 0;
      auto [p, e] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), s);
      if (e != std::errc() || p != it->second.data() + it->second.size())
        throw UsageError("--resume " + get<std::string>("resume") + ": its seed '" + it->second + "' is not a number");
      cfg->seed = s;
      for (Spec& sp : specs_)
        if (sp.name == "seed") sp.value = (int64_t)s;
    }
  }
  if (dist::rank() == 0) prepare_out(cfg->out);  // under mpirun, rank 0 alone writes (RunLog too)
  if (cfg->threads >= 1) set_num_threads(cfg->threads);
  return cfg;
}

std::optional<RunConfig> Cli::parse_args(int argc, const char* const* argv) {
  for (Spec& s : specs_) s.value = s.initial, s.given = false;  // a second parse starts afresh
  command_ = model_;
  for (int i = 1; i < argc; ++i) command_ += std::string(" ") + argv[i];

  cxxopts::Options options(model_, description_);
  declare(options);
  std::optional<cxxopts::ParseResult> result;
  try {
    result = options.parse(argc, argv);
  } catch (const cxxopts::exceptions::incorrect_argument_type& e) {
    // Only switches are typed in cxxopts (see declare): find the one that got this value.
    const std::string bad = quoted_name(e.what());
    for (const Spec& s : specs_)
      for (int i = 1; i < argc && s.kind == Kind::Bool; ++i)
        if (argv[i] == "--" + s.name + "=" + bad)
          throw UsageError("--" + s.name + " expects true or false, got '" + bad + "'");
    throw UsageError("'" + bad + "' is neither true nor false");
  } catch (const cxxopts::exceptions::exception& e) {
    throw translate(e, argc, argv);
  }
  if (result->count("help")) return std::nullopt;
  // Values first: in "--epochs --out x", the message about --epochs is the one that helps.
  for (Spec& s : specs_) {
    if (!result->count(s.name)) continue;
    const auto& given_value = (*result)[s.name];
    s.value = s.kind == Kind::Bool ? Value(given_value.as<bool>()) : convert(s, given_value.as<std::string>());
    s.given = true;
  }
  if (!result->unmatched().empty()) {
    const std::string& arg = result->unmatched().front();
    const bool looks_bool = arg == "true" || arg == "false";
    throw UsageError("unexpected argument '" + arg + "'" +
                     (looks_bool ? " (a switch takes its value after '=': --quick=false)" : " (see --help)"));
  }

  RunConfig cfg;
  cfg.model = model_;
  cfg.epochs = get<int>("epochs");
  cfg.batch_size = get<int>("batch-size");
  cfg.lr = get<double>("lr");
  cfg.seed = get<uint64_t>("seed");
  cfg.threads = get<int>("threads");
  cfg.quick = get<bool>("quick");
  cfg.force = get<bool>("force");
  if (!(cfg.lr > 0)) throw UsageError("--lr must be > 0, got " + num(cfg.lr));
  cfg.out = get<std::string>("out");
  if (given("out") && cfg.out.empty()) throw UsageError("--out must not be empty");
  if (cfg.out.empty()) cfg.out = default_out(model_);
  for (Spec& s : specs_)
    if (s.name == "out") s.value = cfg.out;  // the config records where the run really went
  return cfg;
}

RunConfig Cli::parse(int argc, const char* const* argv) {
  std::optional<RunConfig> cfg;
  try {
    cfg = try_parse(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: %s\n", model_.c_str(), one_line(e.what()).c_str());
    std::exit(2);
  }
  if (!cfg) {
    std::fputs(help().c_str(), stdout);
    std::exit(0);
  }
  // Under mpirun, rank 0 alone prints: the other ranks' standard output goes nowhere (errors still show).
  if (dist::rank() != 0) {
    if (!std::freopen("/dev/null", "w", stdout))
      std::fprintf(stderr, "%s: rank %d prints too\n", model_.c_str(), dist::rank());
    return *cfg;
  }
  // Two lines that make a log self-describing: what built and ran it, and with which settings.
  std::string settings;
  for (const Spec& s : specs_)
    if (s.name != "out") settings += (settings.empty() ? "" : " ") + s.name + "=" + value_text(s.value);
  std::printf("%s: heed %s (commit %s), %s\n", model_.c_str(), heed_version().c_str(), git_commit().c_str(),
              blas_summary().c_str());
  std::printf("%s: %s -> %s\n", model_.c_str(), settings.c_str(), cfg->out.c_str());
  std::fflush(stdout);
  return *cfg;
}

void check_finite_loss(double loss, int64_t step) {
  if (!std::isfinite(loss)) throw Diverged("diverged at step " + std::to_string(step) + " (loss " + num(loss) + ")");
}

void check_finite_parameters(const nn::Module& model, int64_t step) {
  NoGradGuard no_grad;
  for (const auto& [name, p] : model.named_parameters())
    if (std::isnan((p.detach() * 0.0).sum().to(float64).item()))  // 0 * x is nan exactly for x = nan or inf
      throw Diverged("diverged at step " + std::to_string(step) + " (parameter " + name + " is not finite)");
}

int64_t resume_training(const Cli& cli, RunConfig& run, nn::Module& model, optim::Optimizer& optimizer) {
  const int64_t step = optim::load_training_state(cli.get<std::string>("resume"), model, optimizer).step;
  if (cli.given("lr"))
    optimizer.set_lr(0, run.lr);  // the flag wins, and is what ran
  else
    run.lr = optimizer.lr(0);  // the checkpoint's, recorded as such
  return step;
}

std::map<std::string, std::string> checkpoint_metadata(const RunConfig& run, std::map<std::string, std::string> more) {
  more["seed"] = std::to_string(run.seed);
  return more;
}

int main_guard(const std::string& model, const std::function<int()>& body) {
  int code = 1;
  try {
    return body();
  } catch (const std::invalid_argument& e) {
    // UsageError, heed::Error and the rest of std::invalid_argument: the input was wrong (zoo.h, EXIT CODES).
    std::fprintf(stderr, "%s: %s\n", model.c_str(), one_line(e.what()).c_str());
    code = 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", model.c_str(), one_line(e.what()).c_str());
  } catch (...) {
    std::fprintf(stderr, "%s: error: an exception that is not a std::exception\n", model.c_str());
  }
  // Under mpirun the other ranks may be waiting for this one in a collective: end the whole job now.
  if (dist::is_distributed()) dist::abort(code);
  return code;
}

// The lead's CMakeLists.txt defines these for the library, e.g.
//   target_compile_definitions(heed PRIVATE HEED_VERSION="${PROJECT_VERSION}" HEED_GIT_COMMIT="abc1234")
std::string heed_version() {
#ifdef HEED_VERSION
  return HEED_VERSION;
#else
  return "unknown";
#endif
}

std::string git_commit() {
#ifdef HEED_GIT_COMMIT
  return HEED_GIT_COMMIT;
#else
  return "unknown";
#endif
}

// ---- the progress bar ------------------------------------------------------------------------------------

ProgressBar::ProgressBar(std::string label, int64_t total, std::FILE* out)
    : label_(std::move(label)), total_(total), out_(dist::rank() == 0 ? out : nullptr),  // rank 0 alone draws
      tty_(out_ && ::isatty(::fileno(out_))) {
  if (total < 1) throw Error("ProgressBar: total must be >= 1 batches, got " + std::to_string(total));
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

ProgressBar::~ProgressBar() { finish(); }

double ProgressBar::mean_loss() const { return weight_sum_ > 0 ? loss_sum_ / weight_sum_ : std::nan(""); }

void ProgressBar::update(double loss, int64_t items) {
  ++done_;
  items_ += std::max<int64_t>(items, 0);
  const double w = items > 0 ? (double)items : 1.0;
  loss_sum_ += loss * w, weight_sum_ += w;
  if (!out_ || finished_) return;
  if (tty_) {
    // Redrawing costs a write to the terminal: ten times a second is smooth enough.
    auto now = std::chrono::steady_clock::now();
    if (done_ < total_ && now - last_draw_ < 100ms) return;
    last_draw_ = now;
    std::fprintf(out_, "\r%s\033[K", line(true).c_str());
  } else {
    const int quarters = (int)std::min<int64_t>(4, done_ * 4 / total_);
    if (quarters <= printed_quarters_) return;
    printed_quarters_ = quarters;
    std::fprintf(out_, "%s\n", line(false).c_str());
  }
  std::fflush(out_);
}

void ProgressBar::finish() {
  if (finished_) return;
  finished_ = true;
  if (!out_ || done_ == 0) return;
  if (tty_)
    std::fprintf(out_, "\r%s\033[K\n", line(true).c_str());
  else if (printed_quarters_ < 4 && done_ * 4 % total_ != 0)
    std::fprintf(out_, "%s\n", line(false).c_str());  // stopped between quarters: say where
  std::fflush(out_);
}

std::string ProgressBar::line(bool with_bar) const {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  auto clock = [](double seconds) {  // 0:07, 12:34, 1:02:03
    char buf[32];
    int64_t s = (int64_t)std::llround(seconds);
    if (s >= 3600)
      std::snprintf(buf, sizeof buf, "%d:%02d:%02d", (int)(s / 3600), (int)(s / 60 % 60), (int)(s % 60));
    else
      std::snprintf(buf, sizeof buf, "%d:%02d", (int)(s / 60), (int)(s % 60));
    return std::string(buf);
  };
  std::string out = label_;
  if (with_bar) {
    constexpr int kWidth = 20;
    const int filled = (int)std::min<int64_t>(kWidth, done_ * kWidth / total_);
    out += " [" + std::string(filled, '#') + std::string(kWidth - filled, '.') + "]";
  } else {
    out += fmt(" %3.0f%%", 100.0 * std::min(done_, total_) / total_);
  }
  out += "  " + std::to_string(done_) + "/" + std::to_string(total_);
  out += "  loss " + fmt("%.4g", mean_loss());
  if (elapsed > 0) {
    const double rate = (items_ > 0 ? (double)items_ : (double)done_) / elapsed;
    const std::string r = rate >= 1e6   ? fmt("%.1fM", rate / 1e6)
                          : rate >= 1e3 ? fmt("%.1fk", rate / 1e3)
                                        : fmt("%.1f", rate);
    out += "  " + r + (items_ > 0 ? " items/s" : " batches/s");
  }
  if (done_ < total_)
    out += "  ETA " + clock(elapsed / std::max<int64_t>(done_, 1) * (total_ - done_));
  else
    out += "  took " + clock(elapsed);
  return out;
}

// ---- the run record ------------------------------------------------------------------------------------

namespace {

// Metric names become CSV headers and JSON keys; heed's CSV files have no quoting, so names must not
// need it.
void check_names(const char* op, const Metrics& metrics) {
  for (const auto& [name, value] : metrics) {
    const bool bad = name.empty() || name == "epoch" || name == "step" || name == "time_s" ||
                     name.find_first_of(",\"\n\r") != std::string::npos;
    if (bad)
      throw Error(std::string(op) + ": '" + name +
                  "' cannot be a metric name (it must be non-empty, without commas, quotes or newlines, and not "
                  "epoch, step or time_s)");
  }
}

// The CSV of rows (key, metrics): a header line of `key` and every metric name in order of first
// appearance (time_s last), then one line per row, with an empty cell where a row lacks a metric.
std::string csv_text(const std::string& key, const std::vector<std::pair<int64_t, Metrics>>& rows) {
  std::vector<std::string> names;
  for (const auto& [k, metrics] : rows)
    for (const auto& [name, v] : metrics)
      if (name != "time_s" && std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  for (const auto& [k, metrics] : rows)
    if (std::any_of(metrics.begin(), metrics.end(), [](const auto& m) { return m.first == "time_s"; })) {
      names.push_back("time_s");
      break;
    }
  std::string out = key;
  for (const auto& n : names) out += "," + n;
  out += "\n";
  for (const auto& [k, metrics] : rows) {
    out += std::to_string(k);
    for (const auto& n : names) {
      out += ",";
      for (const auto& [name, v] : metrics)
        if (name == n) out += fmt("%.9g", v);  // %g writes nan and inf, which gnuplot reads as missing
    }
    out += "\n";
  }
  return out;
}

nlohmann::ordered_json to_json(const Value& v) {
  if (auto* b = std::get_if<bool>(&v)) return *b;
  if (auto* i = std::get_if<int64_t>(&v)) return *i;
  if (auto* d = std::get_if<double>(&v)) return *d;
  return std::get<std::string>(v);
}

// The RunConfig fields under their flag names, to overwrite what parse read: the model may have changed
// the config after parsing (fewer epochs under --quick), and the record must say what actually ran.
std::vector<std::pair<std::string, Value>> standard_values(const RunConfig& c) {
  return {{"epochs", (int64_t)c.epochs}, {"batch-size", (int64_t)c.batch_size}, {"lr", c.lr},
          {"seed", (int64_t)c.seed},     {"threads", (int64_t)c.threads},      {"out", c.out},
          {"quick", c.quick},            {"force", c.force}};
}

}  // namespace

RunLog::RunLog(const Cli& cli, const RunConfig& config, std::FILE* console) : RunLog(config, console) {
  if (config_.model.empty()) config_.model = cli.model();
  command_ = cli.command();
  std::vector<std::pair<std::string, Value>> values = cli.values();
  for (auto& [name, value] : values)
    for (const auto& [std_name, std_value] : standard_values(config_))
      if (name == std_name) value = std_value;
  values_ = std::move(values);
  if (cli.resuming()) read_history();
}

// A run resumed into its own folder continues its record: the epochs of metrics.json and the rows of
// steps.csv written before stay, and epoch() and step() replace only rows from where training resumed.
void RunLog::read_history() {
  const fs::path dir(config_.out);
  std::error_code ec;
  if (fs::exists(dir / "metrics.json", ec)) {
    std::ifstream in(dir / "metrics.json");
    nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("epochs") && j["epochs"].is_array())
      for (const auto& row : j["epochs"]) {
        if (!row.is_object() || !row.contains("epoch") || !row["epoch"].is_number_integer()) continue;
        Metrics m;
        for (const auto& [name, v] : row.items())
          if (name != "epoch") m.emplace_back(name, v.is_number() ? v.get<double>() : std::nan(""));  // null: NaN
        epochs_.emplace_back(row["epoch"].get<int64_t>(), m);
      }
  }
  std::ifstream steps(dir / "steps.csv");
  std::string line;
  std::vector<std::string> names;
  auto cells = [](const std::string& l) {
    std::vector<std::string> out;
    std::stringstream ss(l);
    for (std::string c; std::getline(ss, c, ',');) out.push_back(c);
    if (!l.empty() && l.back() == ',') out.push_back("");
    return out;
  };
  if (std::getline(steps, line)) names = cells(line);
  while (std::getline(steps, line)) {
    std::vector<std::string> c = cells(line);
    if (c.empty() || names.empty()) continue;
    char* end = nullptr;
    const long long step = std::strtoll(c[0].c_str(), &end, 10);
    if (end == c[0].c_str()) continue;
    Metrics m;
    for (size_t k = 1; k < c.size() && k < names.size(); ++k)
      if (!c[k].empty()) m.emplace_back(names[k], std::strtod(c[k].c_str(), nullptr));
    steps_.emplace_back(step, m);
  }
}

RunLog::RunLog(const RunConfig& config, std::FILE* console)
    : config_(config), console_(dist::rank() == 0 ? console : nullptr), start_(std::chrono::steady_clock::now()),
      started_at_(local_time("%Y-%m-%dT%H:%M:%S")) {
  if (config_.out.empty()) throw Error("RunLog: config.out is empty (Cli::parse sets it to the run directory)");
  values_ = standard_values(config_);
  command_ = config_.model;
  if (dist::rank() != 0) return;  // under mpirun, rank 0 alone prints and writes the run's files
  std::error_code ec;
  fs::create_directories(config_.out, ec);
  if (ec) throw Error("RunLog: cannot create '" + config_.out + "': " + ec.message());
  BlasInfo info = blas_info();
  blas_core_ = info.core;
  blas_summary_ = blas_summary();
}

RunLog::~RunLog() {
  if (finished_) return;
  try {
    write("incomplete");
  } catch (...) {
    // A destructor must not throw, and this one most likely runs during an exception already.
  }
}

void RunLog::set_config(const std::string& key, Value value) {
  for (auto& [name, v] : values_)
    if (name == key) {
      v = std::move(value);
      return;
    }
  values_.emplace_back(key, std::move(value));
}

void RunLog::step(int64_t step, const Metrics& metrics) {
  check_names("RunLog::step", metrics);
  std::erase_if(steps_, [&](const auto& row) { return row.first >= step; });  // a resumed run redoes these
  steps_.emplace_back(step, metrics);
}

void RunLog::epoch(int epoch, const Metrics& metrics) {
  check_names("RunLog::epoch", metrics);
  Metrics row = metrics;
  row.emplace_back("time_s", std::round(elapsed_seconds() * 1000) / 1000);  // milliseconds are plenty
  std::erase_if(epochs_, [&](const auto& r) { return r.first >= epoch; });  // a resumed run redoes these
  epochs_.emplace_back(epoch, row);
  std::string text = epoch_label(epoch);
  for (const auto& [name, v] : metrics) text += "  " + name + " " + fmt("%.4g", v);
  say(text + "  (" + duration(elapsed_seconds()) + ")");
  write("running");
}

// ---- TrainClock --------------------------------------------------------------------------------------------

TrainClock::TrainClock(double minutes) : budget_(minutes) {
  if (!(minutes >= 0) || !std::isfinite(minutes))
    throw Error("TrainClock: the budget must be a finite number of minutes >= 0, got " + std::to_string(minutes));
}

void TrainClock::start() {
  if (running_) return;
  running_ = true, since_ = std::chrono::steady_clock::now();
}

void TrainClock::stop() {
  if (!running_) return;
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - since_).count();
  running_ = false;
}

double TrainClock::minutes() const {
  double s = seconds_;
  if (running_) s += std::chrono::duration<double>(std::chrono::steady_clock::now() - since_).count();
  return s / 60;
}

void RunLog::final(const Metrics& metrics) {
  check_names("RunLog::final", metrics);
  for (const auto& metric : metrics) {  // not a structured binding: clang < 16 cannot capture one
    auto it = std::find_if(final_.begin(), final_.end(), [&](const auto& m) { return m.first == metric.first; });
    if (it != final_.end())
      it->second = metric.second;
    else
      final_.emplace_back(metric);
  }
}

std::string RunLog::epoch_label(int epoch) const {
  return "epoch " + std::to_string(epoch) + "/" + std::to_string(config_.epochs);
}

double RunLog::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void RunLog::say(const std::string& line) const {
  if (!console_) return;
  std::fprintf(console_, "%s\n", line.c_str());
  std::fflush(console_);
}

void RunLog::write(const char* status) const {
  if (dist::rank() != 0) return;
  nlohmann::ordered_json j;
  j["model"] = config_.model;
  j["status"] = status;
  j["heed_version"] = heed_version();
  j["git_commit"] = git_commit();
  j["blas_core"] = blas_core_;
  j["blas"] = blas_summary_;
  j["command"] = command_;
  j["started_at"] = started_at_;
  j["wall_time_s"] = std::round(elapsed_seconds() * 1000) / 1000;
  nlohmann::ordered_json config = nlohmann::ordered_json::object();
  for (const auto& [name, v] : values_) config[name] = to_json(v);
  j["config"] = config;
  nlohmann::ordered_json final = nlohmann::ordered_json::object();
  for (const auto& [name, v] : final_) final[name] = v;  // NaN and inf become null: JSON has no such numbers
  j["final"] = final;
  nlohmann::ordered_json epochs = nlohmann::ordered_json::array();
  for (const auto& [e, metrics] : epochs_) {
    nlohmann::ordered_json row;
    row["epoch"] = e;
    for (const auto& [name, v] : metrics) row[name] = v;
    epochs.push_back(row);
  }
  j["epochs"] = epochs;

  const fs::path dir(config_.out);
  io::write_file_atomic((dir / "metrics.json").string(), j.dump(2) + "\n");
  io::write_file_atomic((dir / "metrics.csv").string(), csv_text("epoch", epochs_));
  if (!steps_.empty()) io::write_file_atomic((dir / "steps.csv").string(), csv_text("step", steps_));
}

void RunLog::finish() {
  if (finished_) return;
  finished_ = true;
  if (dist::rank() != 0) return;
  write("finished");
  const fs::path dir(config_.out);

  // The pictures: losses together (they share a scale), the other epoch metrics together, the steps.
  // gnuplot absent: the first plot says so once and returns false, and the rest are not attempted.
  std::vector<std::string> losses, others, step_names;
  for (const auto& [e, metrics] : epochs_)
    for (const auto& [name, v] : metrics) {
      auto& group = name.find("loss") != std::string::npos ? losses : others;
      if (name != "time_s" && std::find(group.begin(), group.end(), name) == group.end()) group.push_back(name);
    }
  for (const auto& [s, metrics] : steps_)
    for (const auto& [name, v] : metrics)
      if (std::find(step_names.begin(), step_names.end(), name) == step_names.end()) step_names.push_back(name);
  struct Chart {
    std::string csv, png, x;
    std::vector<std::string> ys;
    std::string ylabel;
  };
  std::vector<Chart> charts;
  if (!losses.empty()) charts.push_back({"metrics.csv", "loss.png", "epoch", losses, "loss"});
  if (!others.empty()) charts.push_back({"metrics.csv", "metrics.png", "epoch", others, ""});
  if (!step_names.empty()) charts.push_back({"steps.csv", "steps.png", "step", step_names, ""});
  for (const Chart& c : charts) {
    try {
      viz::PlotOptions options{.title = config_.model + ": " + c.png.substr(0, c.png.size() - 4), .ylabel = c.ylabel};
      if (!viz::plot_lines((dir / c.csv).string(), (dir / c.png).string(), c.x, c.ys, options)) break;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s: could not draw %s: %s\n", config_.model.c_str(), c.png.c_str(),
                   one_line(e.what()).c_str());
    }
  }

  // The summary: each epoch metric at the first and the last epoch, then the final metrics.
  say(config_.model + ": finished in " + duration(elapsed_seconds()) + "; results in " + config_.out);
  std::vector<std::string> names;
  for (const auto& [e, metrics] : epochs_)
    for (const auto& [name, v] : metrics)
      if (name != "time_s" && std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  size_t width = 6;
  for (const auto& n : names) width = std::max(width, n.size());
  for (const auto& [n, v] : final_) width = std::max(width, n.size());
  auto cell = [&](const std::string& s, size_t w) { return std::string(w > s.size() ? w - s.size() : 0, ' ') + s; };
  auto value_at = [](const Metrics& metrics, const std::string& name) {
    for (const auto& [n, v] : metrics)
      if (n == name) return fmt("%.4g", v);
    return std::string("-");
  };
  if (!names.empty()) {
    const auto& first = epochs_.front();
    const auto& last = epochs_.back();
    const bool two = epochs_.size() > 1;
    std::string header = "  " + std::string("metric") + std::string(width - 6, ' ') +
                         cell("epoch " + std::to_string(first.first), 12);
    if (two) header += cell("epoch " + std::to_string(last.first), 12);
    say(header);
    for (const auto& n : names) {
      std::string row = "  " + n + std::string(width - n.size(), ' ') + cell(value_at(first.second, n), 12);
      if (two) row += cell(value_at(last.second, n), 12);
      say(row);
    }
  }
  if (!final_.empty()) {
    say("  final");
    for (const auto& [n, v] : final_) say("  " + n + std::string(width - n.size(), ' ') + cell(fmt("%.4g", v), 12));
  }
}

}  // namespace heed::zoo
