// Tests for viz/viz.cpp: PNG round trips with exact pixels, the colormap tables, grids as torchvision lays
// them out, heatmaps, labelled plots, overlays, and gnuplot charts (present and absent).
#include "io/file.h"
#include "viz/viz.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>

#include "heed.h"

using namespace heed;
namespace fs = std::filesystem;

namespace {

// A fresh directory for one test case, removed at the end.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("heed_viz_" + std::to_string(::getpid()) + "_" + name)) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& file) const { return (path / file).string(); }
};

// Sets an environment variable for one scope, restoring the old value after.
struct ScopedEnv {
  std::string name;
  std::optional<std::string> old;
  ScopedEnv(std::string n, const std::string& value) : name(std::move(n)) {
    if (const char* v = std::getenv(name.c_str())) old = v;
    ::setenv(name.c_str(), value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old)
      ::setenv(name.c_str(), old->c_str(), 1);
    else
      ::unsetenv(name.c_str());
  }
};

viz::Rgb pixel(const viz::Image& img, int x, int y) {
  const uint8_t* p = img.at(x, y);
  return {p[0], p[1], p[2]};
}

// torchvision's conversion of a [0,1] value to a byte.
int byte_of(double v) { return (int)std::floor(std::clamp(v * 255 + 0.5, 0.0, 255.0)); }

// The message of what f throws: heed::Error for a caller's mistake, io::IoError for a file that cannot be written.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {  // heed::Error, or io::IoError for a file that cannot be written
    return e.what();
  }
  return "(no error)";
}

// What the process writes to its stderr (fd 2) while `f` runs.
std::string capture_stderr(const std::function<void()>& f) {
  std::fflush(stderr);
  std::FILE* tmp = std::tmpfile();
  int saved = ::dup(2);
  ::dup2(::fileno(tmp), 2);
  f();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::rewind(tmp);
  std::string out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, tmp)) out += buf;
  std::fclose(tmp);
  return out;
}

bool contains_colour(const viz::Image& img, viz::Rgb c) {
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x)
      if (pixel(img, x, y) == c) return true;
  return false;
}

}  // namespace

TEST_CASE("viz: colormap endpoints match matplotlib") {
  CHECK(viz::colormap(viz::Colormap::Viridis, 0.0) == viz::Rgb{68, 1, 84});
  CHECK(viz::colormap(viz::Colormap::Viridis, 1.0) == viz::Rgb{253, 231, 37});
  CHECK(viz::colormap(viz::Colormap::Viridis, 0.5) == viz::Rgb{33, 145, 140});  // entry 128
  CHECK(viz::colormap(viz::Colormap::Magma, 0.0) == viz::Rgb{0, 0, 4});
  CHECK(viz::colormap(viz::Colormap::Magma, 1.0) == viz::Rgb{252, 253, 191});
  CHECK(viz::colormap(viz::Colormap::Gray, 0.0) == viz::Rgb{0, 0, 0});
  CHECK(viz::colormap(viz::Colormap::Gray, 1.0) == viz::Rgb{255, 255, 255});
  // Out of range clamps; NaN is the one colour no map contains.
  CHECK(viz::colormap(viz::Colormap::Viridis, -3.0) == viz::colormap(viz::Colormap::Viridis, 0.0));
  CHECK(viz::colormap(viz::Colormap::Viridis, 7.0) == viz::colormap(viz::Colormap::Viridis, 1.0));
  CHECK(viz::colormap(viz::Colormap::Magma, std::nan("")) == viz::Rgb{255, 0, 255});
}

TEST_CASE("viz: viridis and magma get lighter along the whole table") {
  // Both maps are designed with monotonically increasing lightness, so the luminance of consecutive
  // entries never drops: a check that the 2 x 256 transcribed entries hold no typo.
  for (auto cmap : {viz::Colormap::Viridis, viz::Colormap::Magma}) {
    double previous = -1;
    for (int i = 0; i < 256; ++i) {
      viz::Rgb c = viz::colormap(cmap, (i + 0.5) / 256);
      double luminance = 0.2126 * c.r + 0.7152 * c.g + 0.0722 * c.b;
      INFO("entry " << i);
      CHECK(luminance >= previous - 0.5);  // rounding to bytes may wobble by a fraction
      previous = luminance;
    }
  }
}

TEST_CASE("viz: an image grid round-trips through PNG with the torchvision layout") {
  TempDir dir("grid");
  // Three 2x2 gray images, two per row, padding 1 of value 0.5: a 7x7 picture whose 4th slot is padding.
  Tensor x = tensor({0.0, 0.25, 0.5, 1.0, 0.1, 0.2, 0.3, 0.4, 0.9, 0.8, 0.7, 0.6}).reshape({3, 1, 2, 2});
  viz::save_image_grid(x, dir / "grid.png", {.nrow = 2, .padding = 1, .pad_value = 0.5});
  viz::Image img = viz::load_png(dir / "grid.png");
  REQUIRE(img.width == 7);
  REQUIRE(img.height == 7);
  REQUIRE(img.channels == 1);
  std::vector<double> v = x.to_vector<double>();
  for (int n = 0; n < 3; ++n)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j) {
        int px = (n % 2) * 3 + 1 + j, py = (n / 2) * 3 + 1 + i;
        INFO("image " << n << " pixel " << i << "," << j);
        CHECK((int)img.at(px, py)[0] == byte_of(v[n * 4 + i * 2 + j]));
      }
  CHECK((int)img.at(0, 0)[0] == 128);  // padding: 0.5 * 255 + 0.5
  CHECK((int)img.at(5, 5)[0] == 128);  // the empty 4th slot
  CHECK((int)img.at(1, 1)[0] == 0);
  CHECK((int)img.at(2, 2)[0] == 255);
}

TEST_CASE("viz: RGB grids keep channel order and clamp and read strided tensors") {
  TempDir dir("rgb");
  // One 1x2 RGB image, built channels-last and permuted to (N,C,H,W): a non-contiguous view.
  Tensor hwc = tensor({{1.0, 0.0, 0.0}, {0.0, 1.5, -0.5}}).reshape({1, 1, 2, 3});
  Tensor nchw = hwc.permute({0, 3, 1, 2});
  REQUIRE_FALSE(nchw.is_contiguous());
  viz::save_image_grid(nchw, dir / "rgb.png", {.padding = 0});
  viz::Image img = viz::load_png(dir / "rgb.png");
  REQUIRE(img.width == 2);
  REQUIRE(img.height == 1);
  REQUIRE(img.channels == 3);
  CHECK(pixel(img, 0, 0) == viz::Rgb{255, 0, 0});
  CHECK(pixel(img, 1, 0) == viz::Rgb{0, 255, 0});  // 1.5 and -0.5 clamp to 1 and 0
}

TEST_CASE("viz: to_tensor turns a picture back into a CHW tensor") {
  // An RGB overlay back to a tensor, and into a grid: the bytes survive the trip exactly.
  viz::Image img = viz::render_overlay(rand({3, 4, 5}), tensor({{0.0, 1.0}}), {.scale = 2});
  Tensor t = viz::to_tensor(img);
  CHECK(t.shape() == Shape{3, 8, 10});
  CHECK(t.dtype() == float32);
  CHECK(t.at({1, 7, 9}) == doctest::Approx(img.at(9, 7)[1] / 255.0));
  CHECK(t.at({2, 0, 3}) == doctest::Approx(img.at(3, 0)[2] / 255.0));
  viz::Image back = viz::make_grid(stack({t, t}), {.nrow = 1, .padding = 0});
  CHECK(std::equal(img.pixels.begin(), img.pixels.end(), back.pixels.begin()));
  viz::Image gray(3, 2, 1, 51);
  CHECK(viz::to_tensor(gray).shape() == Shape{1, 2, 3});
  CHECK(viz::to_tensor(gray).at({0, 1, 2}) == doctest::Approx(0.2));
  viz::Image broken(3, 2, 1);
  broken.pixels.pop_back();
  CHECK_THROWS_AS(viz::to_tensor(broken), Error);
}

TEST_CASE("viz: grid normalisation by value_range and by min and max") {
  Tensor x = tensor({-1.0, 0.0, 1.0, 3.0}).reshape({1, 1, 1, 4});
  viz::Image a = viz::make_grid(x, {.padding = 0, .value_range = std::make_pair(-1.0, 1.0)});
  CHECK((int)a.at(0, 0)[0] == 0);
  CHECK((int)a.at(1, 0)[0] == 128);
  CHECK((int)a.at(2, 0)[0] == 255);
  CHECK((int)a.at(3, 0)[0] == 255);  // clamped to the range first
  viz::Image b = viz::make_grid(x, {.padding = 0, .normalize = true});
  CHECK((int)b.at(0, 0)[0] == 0);
  CHECK((int)b.at(1, 0)[0] == byte_of(0.25));
  CHECK((int)b.at(3, 0)[0] == 255);
  // scale_each: each image uses its own min and max.
  Tensor two = tensor({0.0, 1.0, 10.0, 20.0}).reshape({2, 1, 1, 2});
  viz::Image c = viz::make_grid(two, {.padding = 0, .normalize = true, .scale_each = true});
  CHECK((int)c.at(0, 0)[0] == 0);
  CHECK((int)c.at(1, 0)[0] == 255);
  CHECK((int)c.at(2, 0)[0] == 0);
  CHECK((int)c.at(3, 0)[0] == 255);
}

TEST_CASE("viz: image grid errors name the shapes and the path") {
  TempDir dir("errors");
  std::string m = error_of([] { viz::make_grid(zeros({1, 28, 28})); });
  CHECK(m.find("(N,C,H,W)") != std::string::npos);
  CHECK(m.find("(1,28,28)") != std::string::npos);
  CHECK(m.find("unsqueeze(0)") != std::string::npos);
  m = error_of([] { viz::make_grid(zeros({2, 4, 8, 8})); });
  CHECK(m.find("C = 4") != std::string::npos);
  CHECK(m.find("(2,4,8,8)") != std::string::npos);
  CHECK_THROWS_AS(viz::make_grid(zeros({2, 1, 8, 8}), {.nrow = 0}), Error);
  CHECK_THROWS_AS(viz::make_grid(zeros({2, 1, 8, 8}), {.value_range = std::make_pair(1.0, 1.0)}), Error);
  CHECK_THROWS_AS(viz::make_grid(Tensor()), Error);
  // An unwritable path: the directory does not exist. Nothing is left behind.
  std::string bad = dir / "no/such/dir/grid.png";
  m = error_of([&] { viz::save_image_grid(zeros({1, 1, 4, 4}), bad); });
  CHECK(m.find("save_png: cannot write '" + bad + "'") != std::string::npos);
  CHECK(m.find("No such file or directory") != std::string::npos);
  m = error_of([&] { viz::load_png(dir / "missing.png"); });
  CHECK(m.find("load_png: cannot read") != std::string::npos);
  CHECK_THROWS_AS(viz::save_png(viz::Image(), dir / "empty.png"), Error);
}

TEST_CASE("viz: heatmap cells with colour endpoints and vmin and vmax") {
  TempDir dir("heatmap");
  Tensor m = arange(6, float64).reshape({2, 3});  // 0..5: the min is at (0,0), the max at (1,2)
  viz::save_heatmap(m, dir / "h.png", {.scale = 4});
  viz::Image img = viz::load_png(dir / "h.png");
  REQUIRE(img.width == 12);
  REQUIRE(img.height == 8);
  REQUIRE(img.channels == 3);
  CHECK(pixel(img, 0, 0) == viz::Rgb{68, 1, 84});
  CHECK(pixel(img, 3, 3) == viz::Rgb{68, 1, 84});  // still cell (0,0)
  CHECK(pixel(img, 11, 7) == viz::Rgb{253, 231, 37});
  CHECK(pixel(img, 8, 4) == viz::Rgb{253, 231, 37});
  // A symmetric range puts 0 in the middle of the map.
  viz::Image mid = viz::render_heatmap(m, {.scale = 1, .vmin = -5.0, .vmax = 5.0});
  CHECK(pixel(mid, 0, 0) == viz::colormap(viz::Colormap::Viridis, 0.5));
  // Only vmin given, above all the data: one flat colour, not an error.
  viz::Image flat = viz::render_heatmap(m, {.scale = 1, .vmin = 10.0});
  CHECK(pixel(flat, 2, 1) == viz::colormap(viz::Colormap::Viridis, 0.0));
  // Automatic cells: 512 pixels along the longer side, at most 64 per cell.
  CHECK(viz::render_heatmap(zeros({4, 4})).width == 256);
  CHECK(viz::render_heatmap(zeros({16, 8})).height == 512);
  // int64 matrices (confusion counts) and NaN cells.
  Tensor counts = from_vector<int64_t>({5, 0, 1, 7}, {2, 2});
  CHECK(pixel(viz::render_heatmap(counts, {.scale = 1}), 1, 1) == viz::Rgb{253, 231, 37});
  Tensor with_nan = tensor({{0.0, std::nan("")}});
  CHECK(pixel(viz::render_heatmap(with_nan, {.scale = 1}), 1, 0) == viz::Rgb{255, 0, 255});
  CHECK(error_of([] { viz::render_heatmap(zeros({3})); }).find("heatmap: expected a matrix (H,W), got shape (3)") == 0);
  CHECK_THROWS_AS(viz::render_heatmap(m, {.vmin = 2.0, .vmax = 1.0}), Error);
}

TEST_CASE("viz: matrix plots draw cells and labels and a colorbar") {
  Tensor m = tensor({{0.0, 1.0}, {1.0, 0.0}});
  viz::Image img = viz::render_matrix_plot(m, {.row_labels = {"a", "b"}, .col_labels = {"x", "y"}, .scale = 20});
  CHECK(img.channels == 3);
  CHECK(img.width > 40);
  CHECK(img.height > 40);
  CHECK(contains_colour(img, viz::Rgb{68, 1, 84}));
  CHECK(contains_colour(img, viz::Rgb{253, 231, 37}));
  CHECK(contains_colour(img, viz::Rgb{34, 34, 34}));  // ink: ticks, labels, frames
  // The colorbar makes the figure wider.
  viz::Image bare = viz::render_matrix_plot(m, {.scale = 20, .colorbar = false});
  CHECK(bare.width < img.width);
  // Long column labels are turned upright and make the figure taller, not wider.
  viz::Image tall = viz::render_matrix_plot(m, {.row_labels = {"a", "b"}, .col_labels = {"trousers", "ankle boot"},
                                                .scale = 20});
  CHECK(tall.height > img.height);
  CHECK(tall.width == img.width);
  CHECK(error_of([&] { viz::render_matrix_plot(m, {.row_labels = {"a"}}); }).find("1 row_labels for 2 rows") !=
        std::string::npos);
  CHECK_THROWS_AS(viz::render_matrix_plot(m, {.titles = {"a", "b"}}), Error);
  CHECK_THROWS_AS(viz::render_matrix_plot(zeros({2, 2, 2, 2})), Error);
}

TEST_CASE("viz: attention heatmap of one head and of a grid of heads") {
  TempDir dir("attention");
  Generator gen(3);
  Tensor weights = softmax(randn({4, 6, 6}, float32, &gen), -1);  // (H,Tq,Tk), rows sum to 1
  viz::attention_heatmap(weights, dir / "heads.png");
  viz::Image grid = viz::load_png(dir / "heads.png");
  viz::attention_heatmap(weights.select(0, 0), dir / "one.png", {.row_labels = {"h", "e", "l", "l", "o", "!"}});
  viz::Image one = viz::load_png(dir / "one.png");
  CHECK(grid.channels == 3);
  CHECK(one.channels == 3);
  CHECK(grid.width > one.width / 2);  // 2x2 panels of half the size
  CHECK(grid.height > one.height / 2);
  // attention_heatmap is a matrix plot whose colour scale starts at 0 (weights are probabilities).
  viz::attention_heatmap(weights.select(0, 1), dir / "plain.png");
  CHECK(viz::load_png(dir / "plain.png").pixels == viz::render_matrix_plot(weights.select(0, 1), {.vmin = 0.0}).pixels);
  CHECK_FALSE(viz::load_png(dir / "plain.png").pixels == viz::render_matrix_plot(weights.select(0, 1)).pixels);
  CHECK_THROWS_AS(viz::attention_heatmap(zeros({2}), dir / "bad.png"), Error);
  CHECK(error_of([&] { viz::attention_heatmap(zeros({2}), dir / "bad.png"); }).find("attention_heatmap:") == 0);
}

TEST_CASE("viz: overlay has the image size and blends by alpha") {
  TempDir dir("overlay");
  Tensor image = rand({3, 8, 6});
  Tensor map = tensor({{0.0, 1.0}, {1.0, 0.0}});
  viz::Image img = viz::render_overlay(image, map);
  CHECK(img.width == 6);
  CHECK(img.height == 8);
  CHECK(img.channels == 3);
  CHECK(viz::render_overlay(image, map, {.scale = 3}).width == 18);
  // alpha 0 is the image itself; alpha 1 is the map alone (nearest: the corners are the map's corners).
  viz::Image plain = viz::render_overlay(image, map, {.alpha = 0.0});
  std::vector<double> v = image.to_vector<double>();
  CHECK((int)plain.at(5, 7)[1] == (int)std::lround(v[(1 * 8 + 7) * 6 + 5] * 255));
  viz::Image only_map = viz::render_overlay(image, map, {.alpha = 1.0, .bilinear = false});
  CHECK(pixel(only_map, 0, 0) == viz::Rgb{68, 1, 84});
  CHECK(pixel(only_map, 5, 0) == viz::Rgb{253, 231, 37});
  CHECK(pixel(only_map, 5, 7) == viz::Rgb{68, 1, 84});
  // Bilinear: the map varies smoothly, so the centre column differs from the corners.
  viz::Image smooth = viz::render_overlay(image, map, {.alpha = 1.0});
  CHECK(pixel(smooth, 0, 0) == viz::Rgb{68, 1, 84});
  CHECK_FALSE(pixel(smooth, 2, 3) == viz::Rgb{68, 1, 84});
  // A gray image works too, and the file has the same size.
  viz::overlay(rand({1, 5, 7}), map, dir / "o.png");
  viz::Image file = viz::load_png(dir / "o.png");
  CHECK(file.width == 7);
  CHECK(file.height == 5);
  CHECK(error_of([&] { viz::render_overlay(zeros({8, 6}), map); }).find("(C,H,W)") != std::string::npos);
  CHECK_THROWS_AS(viz::render_overlay(image, zeros({1, 2, 2})), Error);
  CHECK_THROWS_AS(viz::render_overlay(image, map, {.alpha = 2.0}), Error);
}

TEST_CASE("viz: gnuplot line and scatter plots when gnuplot is installed") {
  if (viz::gnuplot_program().empty()) {
    MESSAGE("gnuplot is not installed: only the absent path is tested");
    return;
  }
  // A folder name with a space and a quote checks the quoting of the shell command and of the script.
  TempDir dir("gnuplot it's here");
  {
    std::ofstream csv(dir / "metrics.csv");
    csv << "epoch,train_loss,test_loss,time_s\n1,0.9,1.0,0.5\n2,0.5,,1.0\n3,0.3,0.4,1.5\n";
  }
  CHECK(viz::plot_lines(dir / "metrics.csv", dir / "loss.png", "epoch", {"train_loss", "test_loss"},
                        {.title = "toy: loss", .log_y = true}));
  viz::Image lines = viz::load_png(dir / "loss.png");
  CHECK(lines.width == 800);
  CHECK(lines.height == 500);
  CHECK(fs::exists(dir / "loss.gp"));  // kept, to redraw by hand

  {
    std::ofstream csv(dir / "emb.csv");
    csv << "x,y,label\n";
    for (int i = 0; i < 30; ++i) csv << std::cos(i) << "," << std::sin(i) * i << "," << i % 3 << "\n";
  }
  CHECK(viz::plot_scatter(dir / "emb.csv", dir / "emb.png", "x", "y", "label", {.width = 400, .height = 300}));
  viz::Image scatter = viz::load_png(dir / "emb.png");
  CHECK(scatter.width == 400);
  CHECK(scatter.height == 300);
  // Many numeric labels: a colour scale instead of a legend.
  {
    std::ofstream csv(dir / "many.csv");
    csv << "x,y,label\n";
    for (int i = 0; i < 60; ++i) csv << i << "," << i * i << "," << i << "\n";
  }
  CHECK(viz::plot_scatter(dir / "many.csv", dir / "many.png", "x", "y", "label"));
  CHECK(fs::exists(dir / "many.png"));
}

TEST_CASE("viz: without gnuplot the plots return false and keep the CSV") {
  TempDir dir("nognuplot");
  {
    std::ofstream csv(dir / "metrics.csv");
    csv << "epoch,train_loss\n1,0.9\n2,0.5\n";
  }
  ScopedEnv env("HEED_GNUPLOT", "/nonexistent/bin/gnuplot");
  CHECK(viz::gnuplot_program().empty());
  std::string err = capture_stderr([&] {
    CHECK_FALSE(viz::plot_lines(dir / "metrics.csv", dir / "loss.png", "epoch", {"train_loss"}));
    CHECK_FALSE(viz::plot_scatter(dir / "metrics.csv", dir / "s.png", "epoch", "train_loss", "epoch"));
  });
  // Said once per process: one line at most (none if an earlier test in this process said it).
  CHECK(std::count(err.begin(), err.end(), '\n') <= 1);
  if (!err.empty()) CHECK(err.find("heed: gnuplot '/nonexistent/bin/gnuplot' not found") == 0);
  CHECK(fs::exists(dir / "metrics.csv"));
  CHECK_FALSE(fs::exists(dir / "loss.png"));
}

// Issue 21: several runs in one picture. Each run's points become rows of one table, its y in its own column.
TEST_CASE("viz: plot_runs draws each run's curve from its own CSV, skipping rows without the columns") {
  TempDir dir("plot_runs");
  {
    std::ofstream a(dir / "a.csv"), b(dir / "b.csv");
    a << "epoch,fd_fmnist,train_minutes\n1,300,0.5\n2,200,1.0\n";
    b << "step,d_loss,fd_fmnist,train_minutes\n50,0.7,,\n100,0.6,250,0.8\n150,0.5,,\n200,0.4,150,1.6\n";
  }
  const bool drawn = viz::plot_runs({{"dcgan s0", (dir / "a.csv")}, {"sagan s0", (dir / "b.csv")}},
                                    (dir / "fd.png"), "train_minutes", "fd_fmnist", {.title = "FD"});
  CHECK(drawn == !viz::gnuplot_program().empty());
  if (drawn) CHECK(viz::load_png(dir / "fd.png").width == 800);
  std::ifstream table_file(dir / "fd.csv");
  const std::string table((std::istreambuf_iterator<char>(table_file)), std::istreambuf_iterator<char>());
  CHECK(table ==
        "train_minutes,dcgan s0,sagan s0\n0.5,300,\n1.0,200,\n0.8,,250\n1.6,,150\n");

  auto message = [&](const std::vector<viz::RunCurve>& runs, const std::string& y) {
    return error_of([&] { viz::plot_runs(runs, (dir / "x.png"), "train_minutes", y); });
  };
  const std::string a = (dir / "a.csv");
  CHECK(message({}, "fd_fmnist") == "plot_runs: no runs to plot");
  CHECK(message({{"x", a}, {"x", a}}, "fd_fmnist") == "plot_runs: two runs are labelled 'x'");
  CHECK(message({{"a,b", a}}, "fd_fmnist").find("without commas") != std::string::npos);
  CHECK(message({{"", a}}, "fd_fmnist").find("must be non-empty") != std::string::npos);
  CHECK(message({{"x", a}}, "iw_nll").find("plot_runs: no column 'iw_nll' in '" + a + "'") == 0);
  CHECK(message({{"x", (dir / "none.csv")}}, "fd_fmnist").find("plot_runs: cannot read") == 0);
}

TEST_CASE("viz: plot errors name the missing column or file") {
  TempDir dir("plot_errors");
  {
    std::ofstream csv(dir / "metrics.csv");
    csv << "epoch,train_loss\n1,0.9\n";
  }
  std::string m = error_of([&] { viz::plot_lines(dir / "metrics.csv", dir / "l.png", "epoch", {"acc"}); });
  CHECK(m.find("plot_lines: no column 'acc'") == 0);
  CHECK(m.find("it has: epoch, train_loss") != std::string::npos);
  m = error_of([&] { viz::plot_lines(dir / "nope.csv", dir / "l.png", "epoch", {"train_loss"}); });
  CHECK(m.find("plot_lines: cannot read") == 0);
  CHECK_THROWS_AS(viz::plot_lines(dir / "metrics.csv", dir / "l.png", "epoch", {}), Error);
}
