// viz.h: pictures from a run: image grids, heatmaps, attention maps, and training curves.
//
// Two kinds of output, with two tools:
//   - pixels heed computes itself (a grid of generated images, a heatmap, an attention map) are drawn into
//     an `Image` and written as PNG with stb_image_write. No plotting library is involved, so a test can
//     read the file back and check exact pixel values.
//   - charts with axes, ticks and a legend (loss curves, 2-D embeddings) come from a CSV file and are drawn
//     by gnuplot. heed writes a small .gp script next to the PNG and runs it, so the chart can be restyled
//     and redrawn by hand (`gnuplot loss.gp`). Without gnuplot the functions say so once and return false;
//     the CSV is always kept.
//
// Values are floats in [0,1] for images (clamped, as torchvision.utils.save_image), and any range for
// heatmaps (mapped to a colormap through vmin/vmax). Tensors of any dtype and layout are accepted; they are
// read, never modified, and never recorded by autograd.
//
//   viz::save_image_grid(samples.reshape({64, 1, 28, 28}), out + "/samples.png", {.nrow = 8});
//   viz::attention_heatmap(weights /* (H,T,T) */, out + "/attention.png", {.row_labels = chars, .col_labels = chars});
//   viz::plot_lines(out + "/metrics.csv", out + "/loss.png", "epoch", {"train_loss", "test_loss"});
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace heed::viz {

// ---- images in memory and on disk -------------------------------------------------------------------
/// 8-bit pixels, rows top to bottom: channel c of pixel (x, y) is pixels[(y * width + x) * channels + c].
/// channels is 1 (gray) or 3 (RGB) for what heed draws; load_png also returns 2 and 4 (with alpha).
struct Image {
  int width = 0, height = 0, channels = 3;
  std::vector<uint8_t> pixels;

  Image() = default;
  /// A width x height image with every byte set to `fill`.
  Image(int width, int height, int channels, uint8_t fill = 0);
  uint8_t* at(int x, int y) { return &pixels[((size_t)y * width + x) * channels]; }
  const uint8_t* at(int x, int y) const { return &pixels[((size_t)y * width + x) * channels]; }
};

/// Writes `image` as a PNG, atomically (io::write_file_atomic): no reader sees half a file.
/// Throws io::IoError (io/file.h) naming the path and the reason when it cannot be written.
void save_png(const Image& image, const std::string& path);
/// Reads a PNG (or any format stb_image reads) with its own channel count. Throws heed::Error on failure.
Image load_png(const std::string& path);
/// The image as a (C,H,W) float32 tensor in [0,1], as torchvision's ToTensor: for putting rendered pictures
/// (overlays, heatmaps) into a make_grid, or reading an image file into a model.
Tensor to_tensor(const Image& image);

// ---- colormaps ----------------------------------------------------------------------------------------
/// Viridis and magma are matplotlib's perceptually uniform maps (van der Walt and Smith, 2015): equal steps
/// in value look like equal steps in colour, and they stay readable in gray and to colour-blind readers.
enum class Colormap { Viridis, Magma, Gray };

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb&) const = default;
};
/// The colour of t in [0,1] (clamped) as matplotlib draws it: entry floor(t * 256) of the 256-entry table.
/// NaN gets magenta (255,0,255), which none of the maps contains, so a broken value stands out.
Rgb colormap(Colormap cmap, double t);

// ---- image grids (torchvision.utils.make_grid / save_image) ------------------------------------------
struct GridOptions {
  int nrow = 8;          /// images per row (torchvision's name, though it counts columns)
  int padding = 2;       /// pixels between images and around the border
  double pad_value = 0;  /// the padding's value, in the output's [0,1]
  /// Map the data's min..max to [0,1] (over the whole batch, or per image with scale_each).
  bool normalize = false;
  bool scale_each = false;
  /// Map this range to [0,1] instead, e.g. {-1, 1} for a tanh generator; implies normalize.
  std::optional<std::pair<double, double>> value_range{};
};
/// Lays out images (N,C,H,W), C = 1 or 3, in rows of nrow: a gray image for C = 1, RGB for C = 3.
Image make_grid(const Tensor& images, const GridOptions& options = {});
/// make_grid, saved as a PNG.
void save_image_grid(const Tensor& images, const std::string& path, const GridOptions& options = {});

// ---- heatmaps ------------------------------------------------------------------------------------------
struct HeatmapOptions {
  Colormap cmap = Colormap::Viridis;
  int scale = 0;  /// pixels per cell; 0 picks one so that the longer side is about 512 pixels
  /// The values drawn as the colormap's two ends; by default the data's min and max (NaN and inf ignored).
  std::optional<double> vmin{}, vmax{};
};
/// A matrix (H,W) as cells of colour, and nothing else: the image is exactly (W*scale) x (H*scale).
Image render_heatmap(const Tensor& matrix, const HeatmapOptions& options = {});
void save_heatmap(const Tensor& matrix, const std::string& path, const HeatmapOptions& options = {});

// ---- labelled matrix plots: attention maps, confusion matrices ---------------------------------------
struct MatrixPlotOptions {
  /// Tick labels for rows (the y axis) and columns (the x axis); by default the indices 0, 1, 2, ...
  /// Where there is no room for every label, every 2nd, 5th, 10th, ... is drawn.
  std::vector<std::string> row_labels{}, col_labels{};
  /// One title per panel, drawn above it; attention_heatmap defaults them to "head 0", "head 1", ...
  std::vector<std::string> titles{};
  Colormap cmap = Colormap::Viridis;
  int scale = 0;  /// pixels per cell; 0 picks one (panels of about 384 pixels, 192 for several)
  /// The colorbar's ends. Default: the min and max over all panels, so panels compare by colour.
  std::optional<double> vmin{}, vmax{};
  bool colorbar = true;
};
/// Matrices (R,C), or a grid of panels (N,R,C), with ticks and labels (a tiny built-in 5x7 font of
/// printable ASCII; labels are cut to 12 characters) and a colorbar. Rows are drawn top to bottom, as a
/// matrix is printed.
Image render_matrix_plot(const Tensor& matrices, const MatrixPlotOptions& options = {});
void save_matrix_plot(const Tensor& matrices, const std::string& path, const MatrixPlotOptions& options = {});
/// Attention weights (Tq,Tk) of one head, or (H,Tq,Tk) as a grid of heads: queries down, keys across.
/// Unless given, vmin is 0 (weights are probabilities) and the titles are "head 0", "head 1", ...
void attention_heatmap(const Tensor& weights, const std::string& path, MatrixPlotOptions options = {});

struct OverlayOptions {
  double alpha = 0.5;  /// the map's weight: out = (1 - alpha) * image + alpha * colour
  Colormap cmap = Colormap::Viridis;
  bool bilinear = true;  /// upsample the map bilinearly (else nearest), as align_corners=False
  std::optional<double> vmin{}, vmax{};  /// the map's range; default its min and max
  int scale = 1;                      /// enlarge the result by this integer factor (28x28 is small)
};
/// An image (C,H,W), C = 1 or 3 with values in [0,1], with a map (h,w) upsampled to (H,W) and blended over
/// it in colour: where a vision transformer looks. The result is (W*scale) x (H*scale) RGB.
Image render_overlay(const Tensor& image, const Tensor& map, const OverlayOptions& options = {});
void overlay(const Tensor& image, const Tensor& map, const std::string& path, const OverlayOptions& options = {});

// ---- charts from CSV files, drawn by gnuplot -----------------------------------------------------------
struct PlotOptions {
  std::string title{}, xlabel{}, ylabel{};  /// xlabel defaults to the x column's name
  bool log_y = false;
  int width = 800, height = 500;  /// the PNG's size in pixels
};
/// One line per y column against the x column, with a legend. Columns are named by the CSV's header line;
/// an unknown name throws heed::Error listing the ones there are. Empty cells are skipped.
/// Returns false (and keeps the CSV) when gnuplot is not installed; throws heed::Error if gnuplot fails.
bool plot_lines(const std::string& csv_path, const std::string& png_path, const std::string& x_column,
                const std::vector<std::string>& y_columns, const PlotOptions& options = {});
/// Points (x, y) coloured by the label column, one legend entry per label (at most 20 distinct labels;
/// more numeric labels are coloured along viridis with a colour box instead). For 2-D embeddings.
bool plot_scatter(const std::string& csv_path, const std::string& png_path, const std::string& x_column,
                  const std::string& y_column, const std::string& label_column, const PlotOptions& options = {});
/// One run's curve for plot_runs: its legend label (no comma) and its CSV (a zoo run's metrics.csv, steps.csv ...).
struct RunCurve {
  std::string label, csv_path;
};
/// One line per run: y_column against x_column of each run's CSV, rows with either cell empty skipped, in one
/// picture with the runs' labels as the legend: how the zoo compares recipes at equal budgets (FD-FMNIST against
/// training minutes). The table drawn is written beside the PNG (its name with .csv): x_column, then a column per
/// run, each row one point of one run. heed::Error names the run for a missing file or column, an empty or
/// repeated label, or a label with a comma. Returns false when gnuplot is not installed (the table is written).
bool plot_runs(const std::vector<RunCurve>& runs, const std::string& png_path, const std::string& x_column,
               const std::string& y_column, const PlotOptions& options = {});
/// The gnuplot program the functions above run: $HEED_GNUPLOT if set (a path, or a name looked up on
/// PATH), else "gnuplot" on PATH. Empty when it is not found.
std::string gnuplot_program();

}  // namespace heed::viz
