// viz.cpp: heed's pictures. Read viz.h first; this file follows its order:
//   PNG files, colormaps, the 5x7 font, image grids, heatmaps, labelled matrix plots, overlays, gnuplot.
//
// Everything heed draws itself goes through one small `Image` of bytes and a handful of pixel helpers
// (put, fill_rect, draw_text). There is no anti-aliasing and no floating-point layout: positions are whole
// pixels, so the tests can check exact pixels and the pictures look the same on every machine.
#include "viz/viz.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>

// stb is header-only: one translation unit defines the implementation. STATIC makes every stb function
// local to this file, so another part of heed (or a user) that also compiles stb cannot clash with it.
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

#include "io/file.h"

namespace heed::viz {

namespace fs = std::filesystem;

namespace {

// The values of any tensor as doubles, row-major. detach() keeps autograd out of it; to_vector copies, so
// a view or a non-contiguous tensor is read correctly.
std::vector<double> values_of(const char* op, const Tensor& t) {
  if (!t.defined()) throw Error(std::string(op) + ": the tensor is undefined");
  return t.detach().to_vector<double>();
}

// [0,1] -> a byte, as torchvision's save_image: x * 255 + 0.5, clamped, truncated. NaN becomes 0.
uint8_t to_byte(double v) {
  if (std::isnan(v)) return 0;
  return (uint8_t)std::clamp(v * 255.0 + 0.5, 0.0, 255.0);
}

std::string fmt_g(double v, int digits = 3) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

// The min and max of the finite values, or nothing when there are none.
std::optional<std::pair<double, double>> finite_range(const double* begin, const double* end) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const double* p = begin; p != end; ++p)
    if (std::isfinite(*p)) lo = std::min(lo, *p), hi = std::max(hi, *p);
  if (lo > hi) return std::nullopt;
  return std::make_pair(lo, hi);
}

// Maps values to the colormap's t: lo to 0, hi to 1. NaN stays NaN (colormap draws it magenta); a flat
// range (lo == hi) maps everything to 0, as matplotlib does.
struct Norm {
  double lo = 0, hi = 1;
  double operator()(double v) const { return hi > lo ? (v - lo) / (hi - lo) : (std::isnan(v) ? v : 0.0); }
};
// The values at the colormap's two ends: the user's vmin/vmax where given, else the data's min/max.
// If only one end is given and the data lies entirely beyond it, the other end meets it, so the picture
// is one flat colour instead of an error about a range the user never asked for.
Norm make_norm(const char* op, const std::vector<double>& values, std::optional<double> vmin,
               std::optional<double> vmax) {
  auto data = finite_range(values.data(), values.data() + values.size());
  double lo = vmin ? *vmin : data ? data->first : 0.0;
  double hi = vmax ? *vmax : data ? data->second : 1.0;
  if (vmin && !vmax && hi < lo) hi = lo;
  if (vmax && !vmin && lo > hi) lo = hi;
  if (!std::isfinite(lo) || !std::isfinite(hi) || lo > hi)
    throw Error(std::string(op) + ": vmin " + fmt_g(lo, 6) + " and vmax " + fmt_g(hi, 6) +
                " do not make a range (need finite vmin <= vmax)");
  return {lo, hi};
}

// A cell size in pixels that makes `cells` cells about `target` pixels long, between 1 and `cap`.
int auto_cell(int64_t cells, int target, int cap) {
  return (int)std::clamp<int64_t>(target / std::max<int64_t>(cells, 1), 1, cap);
}

// Pictures are limited to 2^28 pixels (16384 x 16384): anything larger is a mistake in the arguments
// (a scale of 100 on a 1000x1000 matrix), and would exhaust memory before stb could complain.
void check_size(const char* op, int64_t width, int64_t height) {
  if (width < 1 || height < 1 || width > (1 << 16) || height > (1 << 16) || width * height > (int64_t(1) << 28))
    throw Error(std::string(op) + ": the picture would be " + std::to_string(width) + "x" +
                std::to_string(height) + " pixels; choose a smaller scale");
}

// Pixel helpers for RGB images; anything outside the image is clipped.
void put(Image& img, int x, int y, Rgb c) {
  if (x < 0 || y < 0 || x >= img.width || y >= img.height) return;
  uint8_t* p = img.at(x, y);
  p[0] = c.r, p[1] = c.g, p[2] = c.b;
}

void fill_rect(Image& img, int x, int y, int w, int h, Rgb c) {
  for (int yy = y; yy < y + h; ++yy)
    for (int xx = x; xx < x + w; ++xx) put(img, xx, yy, c);
}

// A one-pixel outline just outside the box (x, y, w, h), so it never covers a cell.
void frame(Image& img, int x, int y, int w, int h, Rgb c) {
  fill_rect(img, x - 1, y - 1, w + 2, 1, c);
  fill_rect(img, x - 1, y + h, w + 2, 1, c);
  fill_rect(img, x - 1, y, 1, h, c);
  fill_rect(img, x + w, y, 1, h, c);
}

const Rgb kInk{34, 34, 34};  // text, ticks and frames, on white

}  // namespace

// ---- images in memory and on disk -------------------------------------------------------------------

Image::Image(int w, int h, int c, uint8_t fill) : width(w), height(h), channels(c) {
  if (w < 0 || h < 0 || c < 1 || c > 4)
    throw Error("Image: bad size " + std::to_string(w) + "x" + std::to_string(h) + " with " + std::to_string(c) +
                " channels");
  pixels.assign((size_t)w * h * c, fill);
}

void save_png(const Image& image, const std::string& path) {
  if (image.width < 1 || image.height < 1)
    throw Error("save_png: the image is empty (" + std::to_string(image.width) + "x" + std::to_string(image.height) +
                "), nothing to write to '" + path + "'");
  if (image.pixels.size() != (size_t)image.width * image.height * image.channels)
    throw Error("save_png: the image holds " + std::to_string(image.pixels.size()) + " bytes, but " +
                std::to_string(image.width) + "x" + std::to_string(image.height) + "x" +
                std::to_string(image.channels) + " needs " +
                std::to_string((size_t)image.width * image.height * image.channels));
  // stb encodes into memory through a callback; the bytes then go to disk through io::write_file_atomic, which
  // can say *why* a path cannot be written (stbi_write_png itself only returns 0).
  std::string png;
  auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), (size_t)size);
  };
  if (!stbi_write_png_to_func(append, &png, image.width, image.height, image.channels, image.pixels.data(),
                              image.width * image.channels))
    throw Error("save_png: stb_image_write could not encode the image for '" + path + "'");
  io::write_file_atomic(path, png, "save_png");
}

Image load_png(const std::string& path) {
  int w = 0, h = 0, c = 0;
  std::unique_ptr<unsigned char, void (*)(void*)> data(stbi_load(path.c_str(), &w, &h, &c, 0), stbi_image_free);
  if (!data) throw Error("load_png: cannot read '" + path + "': " + stbi_failure_reason());
  Image img(w, h, c);
  std::memcpy(img.pixels.data(), data.get(), img.pixels.size());
  return img;
}

Tensor to_tensor(const Image& image) {
  const int64_t C = image.channels, H = image.height, W = image.width;
  if (image.pixels.size() != (size_t)(C * H * W))
    throw Error("to_tensor: the image holds " + std::to_string(image.pixels.size()) + " bytes, but " +
                std::to_string(W) + "x" + std::to_string(H) + "x" + std::to_string(C) + " needs " +
                std::to_string(C * H * W));
  Tensor t = empty({C, H, W}, float32);
  float* p = t.data_ptr<float>();
  // Image is channels-last (HWC), the tensor channels-first (CHW).
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) p[(c * H + y) * W + x] = image.at((int)x, (int)y)[c] / 255.0f;
  return t;
}

// ---- colormaps ----------------------------------------------------------------------------------------
// matplotlib's _viridis_data and _magma_data (lib/matplotlib/_cm_listed.py), 256 RGB entries each, times
// 255 and rounded. Entry 0 is the colour of the low end, entry 255 of the high end.
namespace {

const uint8_t kViridis[256][3] = {
    {68,1,84}, {68,2,86}, {69,4,87}, {69,5,89}, {70,7,90}, {70,8,92}, {70,10,93}, {70,11,94},
    {71,13,96}, {71,14,97}, {71,16,99}, {71,17,100}, {71,19,101}, {72,20,103}, {72,22,104}, {72,23,105},
    {72,24,106}, {72,26,108}, {72,27,109}, {72,28,110}, {72,29,111}, {72,31,112}, {72,32,113}, {72,33,115},
    {72,35,116}, {72,36,117}, {72,37,118}, {72,38,119}, {72,40,120}, {72,41,121}, {71,42,122}, {71,44,122},
    {71,45,123}, {71,46,124}, {71,47,125}, {70,48,126}, {70,50,126}, {70,51,127}, {70,52,128}, {69,53,129},
    {69,55,129}, {69,56,130}, {68,57,131}, {68,58,131}, {68,59,132}, {67,61,132}, {67,62,133}, {66,63,133},
    {66,64,134}, {66,65,134}, {65,66,135}, {65,68,135}, {64,69,136}, {64,70,136}, {63,71,136}, {63,72,137},
    {62,73,137}, {62,74,137}, {62,76,138}, {61,77,138}, {61,78,138}, {60,79,138}, {60,80,139}, {59,81,139},
    {59,82,139}, {58,83,139}, {58,84,140}, {57,85,140}, {57,86,140}, {56,88,140}, {56,89,140}, {55,90,140},
    {55,91,141}, {54,92,141}, {54,93,141}, {53,94,141}, {53,95,141}, {52,96,141}, {52,97,141}, {51,98,141},
    {51,99,141}, {50,100,142}, {50,101,142}, {49,102,142}, {49,103,142}, {49,104,142}, {48,105,142}, {48,106,142},
    {47,107,142}, {47,108,142}, {46,109,142}, {46,110,142}, {46,111,142}, {45,112,142}, {45,113,142}, {44,113,142},
    {44,114,142}, {44,115,142}, {43,116,142}, {43,117,142}, {42,118,142}, {42,119,142}, {42,120,142}, {41,121,142},
    {41,122,142}, {41,123,142}, {40,124,142}, {40,125,142}, {39,126,142}, {39,127,142}, {39,128,142}, {38,129,142},
    {38,130,142}, {38,130,142}, {37,131,142}, {37,132,142}, {37,133,142}, {36,134,142}, {36,135,142}, {35,136,142},
    {35,137,142}, {35,138,141}, {34,139,141}, {34,140,141}, {34,141,141}, {33,142,141}, {33,143,141}, {33,144,141},
    {33,145,140}, {32,146,140}, {32,146,140}, {32,147,140}, {31,148,140}, {31,149,139}, {31,150,139}, {31,151,139},
    {31,152,139}, {31,153,138}, {31,154,138}, {30,155,138}, {30,156,137}, {30,157,137}, {31,158,137}, {31,159,136},
    {31,160,136}, {31,161,136}, {31,161,135}, {31,162,135}, {32,163,134}, {32,164,134}, {33,165,133}, {33,166,133},
    {34,167,133}, {34,168,132}, {35,169,131}, {36,170,131}, {37,171,130}, {37,172,130}, {38,173,129}, {39,173,129},
    {40,174,128}, {41,175,127}, {42,176,127}, {44,177,126}, {45,178,125}, {46,179,124}, {47,180,124}, {49,181,123},
    {50,182,122}, {52,182,121}, {53,183,121}, {55,184,120}, {56,185,119}, {58,186,118}, {59,187,117}, {61,188,116},
    {63,188,115}, {64,189,114}, {66,190,113}, {68,191,112}, {70,192,111}, {72,193,110}, {74,193,109}, {76,194,108},
    {78,195,107}, {80,196,106}, {82,197,105}, {84,197,104}, {86,198,103}, {88,199,101}, {90,200,100}, {92,200,99},
    {94,201,98}, {96,202,96}, {99,203,95}, {101,203,94}, {103,204,92}, {105,205,91}, {108,205,90}, {110,206,88},
    {112,207,87}, {115,208,86}, {117,208,84}, {119,209,83}, {122,209,81}, {124,210,80}, {127,211,78}, {129,211,77},
    {132,212,75}, {134,213,73}, {137,213,72}, {139,214,70}, {142,214,69}, {144,215,67}, {147,215,65}, {149,216,64},
    {152,216,62}, {155,217,60}, {157,217,59}, {160,218,57}, {162,218,55}, {165,219,54}, {168,219,52}, {170,220,50},
    {173,220,48}, {176,221,47}, {178,221,45}, {181,222,43}, {184,222,41}, {186,222,40}, {189,223,38}, {192,223,37},
    {194,223,35}, {197,224,33}, {200,224,32}, {202,225,31}, {205,225,29}, {208,225,28}, {210,226,27}, {213,226,26},
    {216,226,25}, {218,227,25}, {221,227,24}, {223,227,24}, {226,228,24}, {229,228,25}, {231,228,25}, {234,229,26},
    {236,229,27}, {239,229,28}, {241,229,29}, {244,230,30}, {246,230,32}, {248,230,33}, {251,231,35}, {253,231,37},
};

const uint8_t kMagma[256][3] = {
    {0, 0, 4},       {1, 0, 5},       {1, 1, 6},       {1, 1, 8},       {2, 1, 9},       {2, 2, 11},
    {2, 2, 13},      {3, 3, 15},      {3, 3, 18},      {4, 4, 20},      {5, 4, 22},      {6, 5, 24},
    {6, 5, 26},      {7, 6, 28},      {8, 7, 30},      {9, 7, 32},      {10, 8, 34},     {11, 9, 36},
    {12, 9, 38},     {13, 10, 41},    {14, 11, 43},    {16, 11, 45},    {17, 12, 47},    {18, 13, 49},
    {19, 13, 52},    {20, 14, 54},    {21, 14, 56},    {22, 15, 59},    {24, 15, 61},    {25, 16, 63},
    {26, 16, 66},    {28, 16, 68},    {29, 17, 71},    {30, 17, 73},    {32, 17, 75},    {33, 17, 78},
    {34, 17, 80},    {36, 18, 83},    {37, 18, 85},    {39, 18, 88},    {41, 17, 90},    {42, 17, 92},
    {44, 17, 95},    {45, 17, 97},    {47, 17, 99},    {49, 17, 101},   {51, 16, 103},   {52, 16, 105},
    {54, 16, 107},   {56, 16, 108},   {57, 15, 110},   {59, 15, 112},   {61, 15, 113},   {63, 15, 114},
    {64, 15, 116},   {66, 15, 117},   {68, 15, 118},   {69, 16, 119},   {71, 16, 120},   {73, 16, 120},
    {74, 16, 121},   {76, 17, 122},   {78, 17, 123},   {79, 18, 123},   {81, 18, 124},   {82, 19, 124},
    {84, 19, 125},   {86, 20, 125},   {87, 21, 126},   {89, 21, 126},   {90, 22, 126},   {92, 22, 127},
    {93, 23, 127},   {95, 24, 127},   {96, 24, 128},   {98, 25, 128},   {100, 26, 128},  {101, 26, 128},
    {103, 27, 128},  {104, 28, 129},  {106, 28, 129},  {107, 29, 129},  {109, 29, 129},  {110, 30, 129},
    {112, 31, 129},  {114, 31, 129},  {115, 32, 129},  {117, 33, 129},  {118, 33, 129},  {120, 34, 129},
    {121, 34, 130},  {123, 35, 130},  {124, 35, 130},  {126, 36, 130},  {128, 37, 130},  {129, 37, 129},
    {131, 38, 129},  {132, 38, 129},  {134, 39, 129},  {136, 39, 129},  {137, 40, 129},  {139, 41, 129},
    {140, 41, 129},  {142, 42, 129},  {144, 42, 129},  {145, 43, 129},  {147, 43, 128},  {148, 44, 128},
    {150, 44, 128},  {152, 45, 128},  {153, 45, 128},  {155, 46, 127},  {156, 46, 127},  {158, 47, 127},
    {160, 47, 127},  {161, 48, 126},  {163, 48, 126},  {165, 49, 126},  {166, 49, 125},  {168, 50, 125},
    {170, 51, 125},  {171, 51, 124},  {173, 52, 124},  {174, 52, 123},  {176, 53, 123},  {178, 53, 123},
    {179, 54, 122},  {181, 54, 122},  {183, 55, 121},  {184, 55, 121},  {186, 56, 120},  {188, 57, 120},
    {189, 57, 119},  {191, 58, 119},  {192, 58, 118},  {194, 59, 117},  {196, 60, 117},  {197, 60, 116},
    {199, 61, 115},  {200, 62, 115},  {202, 62, 114},  {204, 63, 113},  {205, 64, 113},  {207, 64, 112},
    {208, 65, 111},  {210, 66, 111},  {211, 67, 110},  {213, 68, 109},  {214, 69, 108},  {216, 69, 108},
    {217, 70, 107},  {219, 71, 106},  {220, 72, 105},  {222, 73, 104},  {223, 74, 104},  {224, 76, 103},
    {226, 77, 102},  {227, 78, 101},  {228, 79, 100},  {229, 80, 100},  {231, 82, 99},   {232, 83, 98},
    {233, 84, 98},   {234, 86, 97},   {235, 87, 96},   {236, 88, 96},   {237, 90, 95},   {238, 91, 94},
    {239, 93, 94},   {240, 95, 94},   {241, 96, 93},   {242, 98, 93},   {242, 100, 92},  {243, 101, 92},
    {244, 103, 92},  {244, 105, 92},  {245, 107, 92},  {246, 108, 92},  {246, 110, 92},  {247, 112, 92},
    {247, 114, 92},  {248, 116, 92},  {248, 118, 92},  {249, 120, 93},  {249, 121, 93},  {249, 123, 93},
    {250, 125, 94},  {250, 127, 94},  {250, 129, 95},  {251, 131, 95},  {251, 133, 96},  {251, 135, 97},
    {252, 137, 97},  {252, 138, 98},  {252, 140, 99},  {252, 142, 100}, {252, 144, 101}, {253, 146, 102},
    {253, 148, 103}, {253, 150, 104}, {253, 152, 105}, {253, 154, 106}, {253, 155, 107}, {254, 157, 108},
    {254, 159, 109}, {254, 161, 110}, {254, 163, 111}, {254, 165, 113}, {254, 167, 114}, {254, 169, 115},
    {254, 170, 116}, {254, 172, 118}, {254, 174, 119}, {254, 176, 120}, {254, 178, 122}, {254, 180, 123},
    {254, 182, 124}, {254, 183, 126}, {254, 185, 127}, {254, 187, 129}, {254, 189, 130}, {254, 191, 132},
    {254, 193, 133}, {254, 194, 135}, {254, 196, 136}, {254, 198, 138}, {254, 200, 140}, {254, 202, 141},
    {254, 204, 143}, {254, 205, 144}, {254, 207, 146}, {254, 209, 148}, {254, 211, 149}, {254, 213, 151},
    {254, 215, 153}, {254, 216, 154}, {253, 218, 156}, {253, 220, 158}, {253, 222, 160}, {253, 224, 161},
    {253, 226, 163}, {253, 227, 165}, {253, 229, 167}, {253, 231, 169}, {253, 233, 170}, {253, 235, 172},
    {252, 236, 174}, {252, 238, 176}, {252, 240, 178}, {252, 242, 180}, {252, 244, 182}, {252, 246, 184},
    {252, 247, 185}, {252, 249, 187}, {252, 251, 189}, {252, 253, 191},
};

}  // namespace

Rgb colormap(Colormap cmap, double t) {
  if (std::isnan(t)) return {255, 0, 255};
  // matplotlib's lookup: index floor(t * N), with t = 1 landing in the last entry.
  int i = (int)std::min(255.0, std::floor(std::clamp(t, 0.0, 1.0) * 256.0));
  switch (cmap) {
    case Colormap::Viridis: return {kViridis[i][0], kViridis[i][1], kViridis[i][2]};
    case Colormap::Magma: return {kMagma[i][0], kMagma[i][1], kMagma[i][2]};
    case Colormap::Gray: return {(uint8_t)i, (uint8_t)i, (uint8_t)i};
  }
  return {};
}

// ---- a 5x7 bitmap font for tick labels and titles -----------------------------------------------------
// Each glyph is 7 rows of 5 pixels, '#' drawn, set one pixel apart (6 pixels per character): printable
// ASCII, so that a character-level model's tokens can label its attention map. Any other byte (a newline,
// a tab, a piece of a UTF-8 character) is drawn as a box.
namespace {

constexpr int kGlyphW = 5, kGlyphH = 7, kAdvance = kGlyphW + 1;

struct Glyph {
  char c;
  const char* rows[kGlyphH];
};

const Glyph kFont[] = {
    {'0', {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."}},
    {'1', {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."}},
    {'2', {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"}},
    {'3', {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."}},
    {'4', {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."}},
    {'5', {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."}},
    {'6', {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."}},
    {'7', {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."}},
    {'8', {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."}},
    {'9', {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."}},
    {'A', {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"}},
    {'B', {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."}},
    {'C', {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."}},
    {'D', {"###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###.."}},
    {'E', {"#####", "#....", "#....", "####.", "#....", "#....", "#####"}},
    {'F', {"#####", "#....", "#....", "####.", "#....", "#....", "#...."}},
    {'G', {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"}},
    {'H', {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"}},
    {'I', {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."}},
    {'J', {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."}},
    {'K', {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"}},
    {'L', {"#....", "#....", "#....", "#....", "#....", "#....", "#####"}},
    {'M', {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"}},
    {'N', {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"}},
    {'O', {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."}},
    {'P', {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."}},
    {'Q', {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"}},
    {'R', {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"}},
    {'S', {".####", "#....", "#....", ".###.", "....#", "....#", "####."}},
    {'T', {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."}},
    {'U', {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."}},
    {'V', {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."}},
    {'W', {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."}},
    {'X', {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"}},
    {'Y', {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."}},
    {'Z', {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"}},
    {'a', {".....", ".....", ".###.", "....#", ".####", "#...#", ".####"}},
    {'b', {"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "####."}},
    {'c', {".....", ".....", ".###.", "#....", "#....", "#...#", ".###."}},
    {'d', {"....#", "....#", ".##.#", "#..##", "#...#", "#...#", ".####"}},
    {'e', {".....", ".....", ".###.", "#...#", "#####", "#....", ".###."}},
    {'f', {"..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#..."}},
    {'g', {".....", ".####", "#...#", "#...#", ".####", "....#", ".###."}},
    {'h', {"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#"}},
    {'i', {"..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###."}},
    {'j', {"...#.", ".....", "..##.", "...#.", "...#.", "#..#.", ".##.."}},
    {'k', {"#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#."}},
    {'l', {".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."}},
    {'m', {".....", ".....", "##.#.", "#.#.#", "#.#.#", "#...#", "#...#"}},
    {'n', {".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#"}},
    {'o', {".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###."}},
    {'p', {".....", ".....", "####.", "#...#", "####.", "#....", "#...."}},
    {'q', {".....", ".....", ".##.#", "#..##", ".####", "....#", "....#"}},
    {'r', {".....", ".....", "#.##.", "##..#", "#....", "#....", "#...."}},
    {'s', {".....", ".....", ".###.", "#....", ".###.", "....#", "####."}},
    {'t', {".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##."}},
    {'u', {".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#"}},
    {'v', {".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#.."}},
    {'w', {".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#."}},
    {'x', {".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#"}},
    {'y', {".....", ".....", "#...#", "#...#", ".####", "....#", ".###."}},
    {'z', {".....", ".....", "#####", "...#.", "..#..", ".#...", "#####"}},
    {';', {".....", ".##..", ".##..", ".....", ".##..", "..#..", ".#..."}},
    {'|', {"..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."}},
    {'\\', {".....", "#....", ".#...", "..#..", "...#.", "....#", "....."}},
    {'{', {"...#.", "..#..", "..#..", ".#...", "..#..", "..#..", "...#."}},
    {'}', {".#...", "..#..", "..#..", "...#.", "..#..", "..#..", ".#..."}},
    {'~', {".....", ".....", ".#...", "#.#.#", "...#.", ".....", "....."}},
    {'`', {".#...", "..#..", "...#.", ".....", ".....", ".....", "....."}},
    {'^', {"..#..", ".#.#.", "#...#", ".....", ".....", ".....", "....."}},
    {'$', {"..#..", ".####", "#.#..", ".###.", "..#.#", "####.", "..#.."}},
    {'&', {".##..", "#..#.", "#.#..", ".#...", "#.#.#", "#..#.", ".##.#"}},
    {'@', {".###.", "#...#", "....#", ".##.#", "#.#.#", "#.#.#", ".###."}},
    {' ', {".....", ".....", ".....", ".....", ".....", ".....", "....."}},
    {'.', {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."}},
    {',', {".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."}},
    {'-', {".....", ".....", ".....", "#####", ".....", ".....", "....."}},
    {'+', {".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."}},
    {'_', {".....", ".....", ".....", ".....", ".....", ".....", "#####"}},
    {':', {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."}},
    {'/', {".....", "....#", "...#.", "..#..", ".#...", "#....", "....."}},
    {'(', {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."}},
    {')', {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."}},
    {'[', {".###.", ".#...", ".#...", ".#...", ".#...", ".#...", ".###."}},
    {']', {".###.", "...#.", "...#.", "...#.", "...#.", "...#.", ".###."}},
    {'<', {"...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#."}},
    {'>', {".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#..."}},
    {'=', {".....", ".....", "#####", ".....", "#####", ".....", "....."}},
    {'\'', {"..#..", "..#..", ".#...", ".....", ".....", ".....", "....."}},
    {'"', {".#.#.", ".#.#.", ".....", ".....", ".....", ".....", "....."}},
    {'?', {".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."}},
    {'!', {"..#..", "..#..", "..#..", "..#..", "..#..", ".....", "..#.."}},
    {'%', {"##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"}},
    {'#', {".#.#.", ".#.#.", "#####", ".#.#.", "#####", ".#.#.", ".#.#."}},
    {'*', {".....", "..#..", "#.#.#", ".###.", "#.#.#", "..#..", "....."}},
};
const Glyph kBox = {'\0', {"#####", "#...#", "#...#", "#...#", "#...#", "#...#", "#####"}};

const Glyph& glyph(char c) {
  for (const Glyph& g : kFont)
    if (g.c == c) return g;
  return kBox;
}

int text_width(const std::string& s) { return s.empty() ? 0 : (int)s.size() * kAdvance - 1; }

// Draws `s` with its top-left corner at (x, y). Vertical text is turned a quarter counter-clockwise and
// reads bottom to top (matplotlib's rotation=90); (x, y) is then the top-left of its kGlyphH-wide box.
void draw_text(Image& img, int x, int y, const std::string& s, Rgb color, bool vertical = false) {
  int w = text_width(s);
  for (size_t i = 0; i < s.size(); ++i) {
    const Glyph& g = glyph(s[i]);
    for (int r = 0; r < kGlyphH; ++r)
      for (int c = 0; c < kGlyphW; ++c) {
        if (g.rows[r][c] != '#') continue;
        int u = (int)i * kAdvance + c;  // along the text
        if (vertical)
          put(img, x + r, y + (w - 1 - u), color);
        else
          put(img, x + u, y + r, color);
      }
  }
}

}  // namespace

// ---- image grids ----------------------------------------------------------------------------------------

Image make_grid(const Tensor& images, const GridOptions& o) {
  if (!images.defined()) throw Error("make_grid: the tensor is undefined");
  if (images.dim() != 4)
    throw Error("make_grid: expected images (N,C,H,W), got shape " + shape_str(images.shape()) +
                (images.dim() == 3 ? " (for one image (C,H,W), pass x.unsqueeze(0))" : ""));
  const int64_t N = images.size(0), C = images.size(1), H = images.size(2), W = images.size(3);
  if (C != 1 && C != 3)
    throw Error("make_grid: expected 1 (gray) or 3 (RGB) channels, got C = " + std::to_string(C) + " in " +
                shape_str(images.shape()));
  if (N < 1 || H < 1 || W < 1) throw Error("make_grid: no pixels in images of shape " + shape_str(images.shape()));
  if (o.nrow < 1 || o.padding < 0)
    throw Error("make_grid: nrow must be >= 1 and padding >= 0, got nrow " + std::to_string(o.nrow) + ", padding " +
                std::to_string(o.padding));
  if (o.value_range && !(o.value_range->first < o.value_range->second))
    throw Error("make_grid: value_range (" + fmt_g(o.value_range->first) + ", " + fmt_g(o.value_range->second) +
                ") must have low < high");
  std::vector<double> v = values_of("make_grid", images);

  // Normalisation as torchvision's: clamp to [low, high], then map it to [0,1].
  if (o.normalize || o.value_range) {
    auto rescale = [&](double* begin, double* end) {
      auto range = o.value_range ? o.value_range : finite_range(begin, end);
      if (!range) return;  // nothing finite to scale by
      auto [lo, hi] = *range;
      for (double* p = begin; p != end; ++p) *p = (std::clamp(*p, lo, hi) - lo) / std::max(hi - lo, 1e-5);
    };
    const int64_t per_image = C * H * W;
    if (o.scale_each)
      for (int64_t n = 0; n < N; ++n) rescale(v.data() + n * per_image, v.data() + (n + 1) * per_image);
    else
      rescale(v.data(), v.data() + v.size());
  }

  // The layout of torchvision's make_grid: nrow images across, each in a cell of (H + padding) x
  // (W + padding), plus one more padding at the right and bottom edges.
  const int64_t xmaps = std::min<int64_t>(o.nrow, N), ymaps = (N + xmaps - 1) / xmaps;
  const int64_t cell_w = W + o.padding, cell_h = H + o.padding;
  check_size("make_grid", xmaps * cell_w + o.padding, ymaps * cell_h + o.padding);
  Image grid((int)(xmaps * cell_w + o.padding), (int)(ymaps * cell_h + o.padding), (int)C, to_byte(o.pad_value));
  for (int64_t n = 0; n < N; ++n) {
    const int64_t x0 = (n % xmaps) * cell_w + o.padding, y0 = (n / xmaps) * cell_h + o.padding;
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < H; ++i)
        for (int64_t j = 0; j < W; ++j)
          grid.at((int)(x0 + j), (int)(y0 + i))[c] = to_byte(v[((n * C + c) * H + i) * W + j]);
  }
  return grid;
}

void save_image_grid(const Tensor& images, const std::string& path, const GridOptions& options) {
  save_png(make_grid(images, options), path);
}

// ---- heatmaps ------------------------------------------------------------------------------------------

Image render_heatmap(const Tensor& matrix, const HeatmapOptions& o) {
  if (!matrix.defined()) throw Error("heatmap: the tensor is undefined");
  if (matrix.dim() != 2) throw Error("heatmap: expected a matrix (H,W), got shape " + shape_str(matrix.shape()));
  const int64_t H = matrix.size(0), W = matrix.size(1);
  if (H < 1 || W < 1) throw Error("heatmap: the matrix " + shape_str(matrix.shape()) + " is empty");
  if (o.scale < 0) throw Error("heatmap: scale must be >= 0 (0 picks one), got " + std::to_string(o.scale));
  std::vector<double> v = values_of("heatmap", matrix);
  Norm norm = make_norm("heatmap", v, o.vmin, o.vmax);
  const int s = o.scale > 0 ? o.scale : auto_cell(std::max(H, W), 512, 64);
  check_size("heatmap", W * s, H * s);
  Image img((int)(W * s), (int)(H * s), 3);
  for (int64_t i = 0; i < H; ++i)
    for (int64_t j = 0; j < W; ++j)
      fill_rect(img, (int)(j * s), (int)(i * s), s, s, colormap(o.cmap, norm(v[i * W + j])));
  return img;
}

void save_heatmap(const Tensor& matrix, const std::string& path, const HeatmapOptions& options) {
  save_png(render_heatmap(matrix, options), path);
}

// ---- labelled matrix plots ------------------------------------------------------------------------------
// One panel per matrix, laid out in a near-square grid, each:
//
//          title
//        +--------+
//     0 -|  cells |        colorbar at the right of the whole figure, with vmax on top and vmin below
//     1 -|        |
//        +--------+
//         |  |  |
//         0  1  2          column labels: across if they fit in a cell, else turned upright
//
// Labels that do not fit at every row or column are thinned to every 2nd, 5th, 10th, 20th, ...
namespace {

constexpr int kTick = 3, kGap = 2, kPad = 4, kPanelGap = 12, kBarW = 12, kMaxLabel = 12;

// The smallest of 1, 2, 5, 10, 20, 50, ... that is >= k: the step between drawn labels.
int64_t nice_step(int64_t k) {
  for (int64_t base = 1;; base *= 10)
    for (int64_t m : {1, 2, 5})
      if (m * base >= k) return m * base;
}

// The labels of n ticks: the given ones (cut to kMaxLabel characters), or 0, 1, 2, ...
std::vector<std::string> tick_labels(const char* op, const std::vector<std::string>& given, int64_t n,
                                     const char* option, const char* things) {
  if (!given.empty() && (int64_t)given.size() != n)
    throw Error(std::string(op) + ": " + std::to_string(given.size()) + " " + option + " for " + std::to_string(n) +
                " " + things);
  std::vector<std::string> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(given.empty() ? std::to_string(i) : given[i].substr(0, kMaxLabel));
  return out;
}

Image render_matrices(const char* op, const Tensor& m, const MatrixPlotOptions& o) {
  if (!m.defined()) throw Error(std::string(op) + ": the tensor is undefined");
  if (m.dim() != 2 && m.dim() != 3)
    throw Error(std::string(op) + ": expected a matrix (R,C) or matrices (N,R,C), got shape " + shape_str(m.shape()));
  const int64_t N = m.dim() == 3 ? m.size(0) : 1, R = m.size(-2), C = m.size(-1);
  if (N < 1 || R < 1 || C < 1) throw Error(std::string(op) + ": nothing to draw in shape " + shape_str(m.shape()));
  if (!o.titles.empty() && (int64_t)o.titles.size() != N)
    throw Error(std::string(op) + ": " + std::to_string(o.titles.size()) + " titles for " + std::to_string(N) +
                " panels");
  if (o.scale < 0) throw Error(std::string(op) + ": scale must be >= 0 (0 picks one), got " + std::to_string(o.scale));
  const std::vector<std::string> rows = tick_labels(op, o.row_labels, R, "row_labels", "rows");
  const std::vector<std::string> cols = tick_labels(op, o.col_labels, C, "col_labels", "columns");
  std::vector<double> v = values_of(op, m);
  const Norm norm = make_norm(op, v, o.vmin, o.vmax);
  const int cell = o.scale > 0 ? o.scale : auto_cell(std::max(R, C), N == 1 ? 384 : 192, 48);

  // Rows: a label is kGlyphH tall and needs a pixel of air, so rows thinner than 8 pixels share labels.
  const int64_t row_step = nice_step((kGlyphH + 1 + cell - 1) / cell);
  // Columns: across when every label fits its cell; else default (numeric) labels are thinned, and
  // named ones are turned upright, where each needs only kGlyphH + 1 pixels of width.
  int col_widest = 0;
  for (const auto& s : cols) col_widest = std::max(col_widest, text_width(s));
  bool upright = false;
  int64_t col_step = 1;
  if (col_widest + 2 > cell) {
    if (o.col_labels.empty())
      col_step = nice_step((col_widest + 6 + cell - 1) / cell);  // a character's width of air between
    else
      upright = true, col_step = nice_step((kGlyphH + 1 + cell - 1) / cell);
  }
  int row_w = 0, col_extent = upright ? 0 : kGlyphH;
  for (int64_t r = 0; r < R; r += row_step) row_w = std::max(row_w, text_width(rows[r]));
  if (upright)
    for (int64_t c = 0; c < C; c += col_step) col_extent = std::max(col_extent, text_width(cols[c]));
  int title_w = 0;
  for (const auto& t : o.titles) title_w = std::max(title_w, text_width(t));

  // Panel geometry: margins around the matrix box (mw x mh) hold the labels, ticks and the frame.
  const int mw = (int)(C * cell), mh = (int)(R * cell);
  const int left = kPad + row_w + kGap + kTick + 1;
  const int top = kPad + (o.titles.empty() ? 0 : kGlyphH + 4) + 1;
  const int bottom = 1 + kTick + kGap + col_extent + kPad;
  const int panel_w = left + std::max(mw, title_w) + 1 + kPad, panel_h = top + mh + bottom;
  const int64_t ncols = N == 1 ? 1 : (int64_t)std::ceil(std::sqrt((double)N)), nrows = (N + ncols - 1) / ncols;

  // The colorbar: a column of the colormap from vmax (top) to vmin, labelled at both ends.
  const std::string hi_text = fmt_g(norm.hi), lo_text = fmt_g(norm.lo);
  const int bar_h = std::max(mh, 3 * (kGlyphH + 1));
  const int bar_block = o.colorbar ? kPanelGap + kBarW + 1 + kTick + kGap +
                                         std::max(text_width(hi_text), text_width(lo_text)) + kPad
                                   : 0;
  const int64_t width = ncols * panel_w + (ncols - 1) * kPanelGap + bar_block;
  const int64_t height = std::max<int64_t>(nrows * panel_h + (nrows - 1) * kPanelGap, top + bar_h + kPad + 1);
  check_size(op, width, height);
  Image img((int)width, (int)height, 3, 255);

  for (int64_t n = 0; n < N; ++n) {
    const int ox = (int)((n % ncols) * (panel_w + kPanelGap)), oy = (int)((n / ncols) * (panel_h + kPanelGap));
    const int mx = ox + left, my = oy + top;
    if (!o.titles.empty())  // centred over the cells, or from their left edge when wider than they are
      draw_text(img, mx + std::max(0, (mw - text_width(o.titles[n])) / 2), oy + kPad, o.titles[n], kInk);
    const double* p = v.data() + n * R * C;
    for (int64_t r = 0; r < R; ++r)
      for (int64_t c = 0; c < C; ++c)
        fill_rect(img, mx + (int)(c * cell), my + (int)(r * cell), cell, cell, colormap(o.cmap, norm(p[r * C + c])));
    frame(img, mx, my, mw, mh, kInk);
    for (int64_t r = 0; r < R; r += row_step) {
      const int cy = my + (int)(r * cell) + cell / 2;
      fill_rect(img, mx - 1 - kTick, cy, kTick, 1, kInk);
      draw_text(img, mx - 1 - kTick - kGap - text_width(rows[r]), cy - kGlyphH / 2, rows[r], kInk);
    }
    for (int64_t c = 0; c < C; c += col_step) {
      const int cx = mx + (int)(c * cell) + cell / 2, ty = my + mh + 1;
      fill_rect(img, cx, ty, 1, kTick, kInk);
      if (upright)
        draw_text(img, cx - kGlyphH / 2, ty + kTick + kGap, cols[c], kInk, true);
      else
        draw_text(img, cx - text_width(cols[c]) / 2, ty + kTick + kGap, cols[c], kInk);
    }
  }

  if (o.colorbar) {
    const int bx = (int)(ncols * panel_w + (ncols - 1) * kPanelGap) + kPanelGap, by = top;
    for (int y = 0; y < bar_h; ++y)
      fill_rect(img, bx, by + y, kBarW, 1, colormap(o.cmap, 1.0 - (double)y / std::max(bar_h - 1, 1)));
    frame(img, bx, by, kBarW, bar_h, kInk);
    const int tx = bx + kBarW + 1;
    fill_rect(img, tx, by, kTick, 1, kInk);
    fill_rect(img, tx, by + bar_h - 1, kTick, 1, kInk);
    draw_text(img, tx + kTick + kGap, by, hi_text, kInk);
    draw_text(img, tx + kTick + kGap, by + bar_h - kGlyphH, lo_text, kInk);
  }
  return img;
}

}  // namespace

Image render_matrix_plot(const Tensor& matrices, const MatrixPlotOptions& options) {
  return render_matrices("matrix_plot", matrices, options);
}

void save_matrix_plot(const Tensor& matrices, const std::string& path, const MatrixPlotOptions& options) {
  save_png(render_matrices("matrix_plot", matrices, options), path);
}

void attention_heatmap(const Tensor& weights, const std::string& path, MatrixPlotOptions o) {
  if (!o.vmin) o.vmin = 0.0;  // weights are probabilities: 0 is "no attention", whatever the data's min
  if (weights.defined() && weights.dim() == 3 && o.titles.empty())
    for (int64_t h = 0; h < weights.size(0); ++h) o.titles.push_back("head " + std::to_string(h));
  save_png(render_matrices("attention_heatmap", weights, o), path);
}

// ---- overlays ---------------------------------------------------------------------------------------------

Image render_overlay(const Tensor& image, const Tensor& map, const OverlayOptions& o) {
  if (!image.defined() || !map.defined()) throw Error("overlay: a tensor is undefined");
  if (image.dim() != 3 || (image.size(0) != 1 && image.size(0) != 3))
    throw Error("overlay: expected an image (C,H,W) with C = 1 or 3, got shape " + shape_str(image.shape()));
  if (map.dim() != 2) throw Error("overlay: expected a map (h,w), got shape " + shape_str(map.shape()));
  const int64_t C = image.size(0), H = image.size(1), W = image.size(2), h = map.size(0), w = map.size(1);
  if (H < 1 || W < 1 || h < 1 || w < 1)
    throw Error("overlay: empty image " + shape_str(image.shape()) + " or map " + shape_str(map.shape()));
  if (!(o.alpha >= 0 && o.alpha <= 1)) throw Error("overlay: alpha must be in [0,1], got " + fmt_g(o.alpha));
  if (o.scale < 1) throw Error("overlay: scale must be >= 1, got " + std::to_string(o.scale));
  check_size("overlay", W * o.scale, H * o.scale);
  const std::vector<double> px = values_of("overlay", image), mv = values_of("overlay", map);
  const Norm norm = make_norm("overlay", mv, o.vmin, o.vmax);

  // The map's value under output pixel (x, y). Bilinear as PyTorch's interpolate(align_corners=False):
  // pixel centres line up, so source coordinate = (dest + 0.5) * (source size / dest size) - 0.5.
  auto sample = [&](int64_t y, int64_t x) {
    if (!o.bilinear) return mv[(y * h / H) * w + x * w / W];
    double sy = std::clamp((y + 0.5) * h / H - 0.5, 0.0, (double)(h - 1));
    double sx = std::clamp((x + 0.5) * w / W - 0.5, 0.0, (double)(w - 1));
    int64_t y0 = (int64_t)sy, x0 = (int64_t)sx, y1 = std::min(y0 + 1, h - 1), x1 = std::min(x0 + 1, w - 1);
    double fy = sy - y0, fx = sx - x0;
    return (1 - fy) * ((1 - fx) * mv[y0 * w + x0] + fx * mv[y0 * w + x1]) +
           fy * ((1 - fx) * mv[y1 * w + x0] + fx * mv[y1 * w + x1]);
  };
  Image out((int)(W * o.scale), (int)(H * o.scale), 3);
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) {
      const Rgb c = colormap(o.cmap, norm(sample(y, x)));
      const double tint[3] = {(double)c.r, (double)c.g, (double)c.b};
      uint8_t blended[3];
      for (int k = 0; k < 3; ++k) {
        double base = px[((C == 1 ? 0 : k) * H + y) * W + x];
        base = std::isnan(base) ? 0.0 : std::clamp(base, 0.0, 1.0) * 255.0;
        blended[k] = (uint8_t)std::lround((1 - o.alpha) * base + o.alpha * tint[k]);
      }
      fill_rect(out, (int)(x * o.scale), (int)(y * o.scale), o.scale, o.scale, {blended[0], blended[1], blended[2]});
    }
  return out;
}

void overlay(const Tensor& image, const Tensor& map, const std::string& path, const OverlayOptions& options) {
  save_png(render_overlay(image, map, options), path);
}

// ---- charts by gnuplot ------------------------------------------------------------------------------------
// Each chart is a .gp script written next to its PNG and run there, with paths relative to that folder,
// so the folder can be moved and the chart redrawn with `gnuplot loss.gp`.
namespace {

// The fields of a CSV line. heed's CSV files never quote (RunLog refuses names with commas or quotes).
std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> fields;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, ',')) fields.push_back(field);
  if (!line.empty() && line.back() == ',') fields.emplace_back();
  return fields;
}

struct Csv {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

Csv read_csv(const char* op, const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(std::string(op) + ": cannot read '" + path + "': " + std::strerror(errno));
  Csv csv;
  std::string line;
  bool first = true;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (first)
      csv.header = split_csv(line), first = false;
    else
      csv.rows.push_back(split_csv(line));
  }
  if (csv.header.empty()) throw Error(std::string(op) + ": '" + path + "' is empty; expected a header line");
  return csv;
}

// The 1-based column number gnuplot uses, or an error listing the columns there are.
int column_of(const char* op, const Csv& csv, const std::string& path, const std::string& name) {
  for (size_t i = 0; i < csv.header.size(); ++i)
    if (csv.header[i] == name) return (int)i + 1;
  std::string have;
  for (const auto& h : csv.header) have += (have.empty() ? "" : ", ") + h;
  throw Error(std::string(op) + ": no column '" + name + "' in '" + path + "'; it has: " + have);
}

// A string in gnuplot's single quotes, where nothing is special except '' for a quote.
std::string gp_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

// A word for /bin/sh, in single quotes: only ' itself needs care, as '\''.
std::string sh_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// matplotlib's "tab10" palette: ten colours that are easy to tell apart, for lines and classes.
const char* const kTab10[10] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

bool is_number(const std::string& s) {
  if (s.empty()) return false;
  char* end = nullptr;
  std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

// The script's first lines: PNG output (cairo if this gnuplot has it, else libgd), the CSV's format,
// and the labels. `noenhanced` keeps the underscores of names like train_loss from becoming subscripts.
std::string preamble(const std::string& png_name, const PlotOptions& o, const std::string& xlabel) {
  std::ostringstream gp;
  gp << "# Drawn by heed (viz/viz.cpp). Edit and redraw in this folder with: gnuplot "
     << fs::path(png_name).stem().string() << ".gp\n";
  gp << "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
     << "  set terminal pngcairo size " << o.width << "," << o.height << " noenhanced font 'sans,10'\n"
     << "} else {\n"
     << "  set terminal png size " << o.width << "," << o.height << " noenhanced\n"
     << "}\n";
  gp << "set output " << gp_quote(png_name) << "\n";
  gp << "set datafile separator ','\nset datafile columnheaders\n";
  gp << "set title " << gp_quote(o.title) << "\n";
  gp << "set xlabel " << gp_quote(o.xlabel.empty() ? xlabel : o.xlabel) << "\n";
  gp << "set ylabel " << gp_quote(o.ylabel) << "\n";
  gp << "set grid\n";
  // A little air inside the frame, so points at the ends are not drawn on it.
  gp << "set offsets graph 0.02, graph 0.02, graph 0.05, graph 0.05\n";
  if (o.log_y) gp << "set logscale y\n";
  return gp.str();
}

std::atomic<bool> g_said_no_gnuplot{false};

// Writes the script next to the PNG and runs gnuplot on it. False when there is no gnuplot.
bool run_gnuplot(const char* op, const std::string& png_path, const std::string& script) {
  std::string program = gnuplot_program();
  if (program.empty()) {
    if (!g_said_no_gnuplot.exchange(true)) {
      const char* env = std::getenv("HEED_GNUPLOT");
      std::fprintf(stderr, "heed: %s not found (install gnuplot-nox, or set HEED_GNUPLOT); plots are skipped, the CSV "
                           "files are kept\n",
                   env && *env ? ("gnuplot '" + std::string(env) + "'").c_str() : "gnuplot");
    }
    return false;
  }
  const fs::path png = fs::absolute(png_path);
  fs::path gp_file = png;
  gp_file.replace_extension(".gp");
  io::write_file_atomic(gp_file.string(), script, op);
  // Run in the PNG's folder, where the script's relative paths point. 2>&1 catches gnuplot's complaint.
  std::string command = "cd " + sh_quote(png.parent_path().string()) + " && " + sh_quote(program) + " " +
                        sh_quote(gp_file.filename().string()) + " 2>&1";
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) throw Error(std::string(op) + ": cannot run gnuplot: " + std::strerror(errno));
  std::string output;
  char buf[512];
  while (std::fgets(buf, sizeof buf, pipe)) output += buf;
  int status = ::pclose(pipe);
  if (status != 0 || !fs::exists(png)) {
    // gnuplot's message spans lines (the script line, a caret under the error, the error) padded with
    // spaces: fold each run of whitespace into one space, for one line.
    std::string message;
    for (char c : output) {
      if (!std::isspace((unsigned char)c))
        message += c;
      else if (!message.empty() && message.back() != ' ')
        message += ' ';
    }
    while (!message.empty() && message.back() == ' ') message.pop_back();
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : status;
    throw Error(std::string(op) + ": gnuplot failed on '" + gp_file.string() + "': " +
                (message.empty() ? "exit status " + std::to_string(code) : message));
  }
  return true;
}

// The CSV as the script should name it: relative to the PNG's folder, where gnuplot runs.
std::string csv_for_script(const std::string& csv_path, const std::string& png_path) {
  return fs::proximate(fs::absolute(csv_path), fs::absolute(png_path).parent_path()).string();
}

}  // namespace

std::string gnuplot_program() {
  const char* env = std::getenv("HEED_GNUPLOT");
  const std::string name = env && *env ? env : "gnuplot";
  auto runnable = [](const fs::path& p) {
    std::error_code ec;
    return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
  };
  if (name.find('/') != std::string::npos) return runnable(name) ? fs::absolute(name).string() : "";
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    fs::path candidate = fs::absolute(fs::path(dir.empty() ? "." : dir) / name);
    if (runnable(candidate)) return candidate.string();
  }
  return "";
}

bool plot_lines(const std::string& csv_path, const std::string& png_path, const std::string& x_column,
                const std::vector<std::string>& y_columns, const PlotOptions& o) {
  const char* op = "plot_lines";
  if (y_columns.empty()) throw Error("plot_lines: no y columns to plot from '" + csv_path + "'");
  const Csv csv = read_csv(op, csv_path);
  const int x = column_of(op, csv, csv_path, x_column);
  std::vector<int> ys;
  for (const auto& y : y_columns) ys.push_back(column_of(op, csv, csv_path, y));

  std::ostringstream gp;
  gp << preamble(fs::path(png_path).filename().string(), o, x_column);
  // Whole-number x values over a short range (epochs) get a tic at each one, rather than at 1.5.
  bool whole = true;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const auto& row : csv.rows) {
    if ((int)row.size() < x || row[x - 1].empty()) continue;
    double v = std::strtod(row[x - 1].c_str(), nullptr);
    if (!is_number(row[x - 1]) || v != std::floor(v)) whole = false;
    lo = std::min(lo, v), hi = std::max(hi, v);
  }
  if (whole && lo <= hi && hi - lo <= 20) gp << "set xtics 1\n";
  // Points mark each value while there are few; hundreds of rows (per-step logs) read better as lines.
  const char* style = csv.rows.size() <= 60 ? "linespoints pt 7 ps 0.6" : "lines";
  const std::string data = gp_quote(csv_for_script(csv_path, png_path));
  gp << "plot ";
  for (size_t i = 0; i < ys.size(); ++i)
    gp << (i ? ", \\\n     " : "") << data << " using " << x << ":" << ys[i] << " with " << style
       << " lw 2 lc rgb '" << kTab10[i % 10] << "' title " << gp_quote(y_columns[i]);
  gp << "\n";
  return run_gnuplot(op, png_path, gp.str());
}

bool plot_runs(const std::vector<RunCurve>& runs, const std::string& png_path, const std::string& x_column,
               const std::string& y_column, const PlotOptions& o) {
  const char* op = "plot_runs";
  if (runs.empty()) throw Error("plot_runs: no runs to plot");
  // The combined table: a row per point, x first, then the point's y in its run's column, the others empty.
  std::ostringstream table;
  table << x_column;
  std::vector<std::string> labels;
  for (const RunCurve& run : runs) {
    if (run.label.empty() || run.label.find_first_of(",\n\r") != std::string::npos)
      throw Error("plot_runs: a run's label must be non-empty, without commas or newlines, got '" + run.label + "'");
    if (std::find(labels.begin(), labels.end(), run.label) != labels.end())
      throw Error("plot_runs: two runs are labelled '" + run.label + "'");
    labels.push_back(run.label);
    table << "," << run.label;
  }
  table << "\n";
  for (size_t r = 0; r < runs.size(); ++r) {
    const Csv csv = read_csv(op, runs[r].csv_path);
    const int x = column_of(op, csv, runs[r].csv_path, x_column), y = column_of(op, csv, runs[r].csv_path, y_column);
    for (const auto& row : csv.rows) {
      if ((int)row.size() < std::max(x, y) || row[x - 1].empty() || row[y - 1].empty()) continue;
      table << row[x - 1] << std::string(r + 1, ',') << row[y - 1] << std::string(runs.size() - r - 1, ',') << "\n";
    }
  }
  fs::path csv_path = fs::absolute(png_path);
  csv_path.replace_extension(".csv");
  io::write_file_atomic(csv_path.string(), table.str(), op);
  PlotOptions options = o;
  if (options.ylabel.empty()) options.ylabel = y_column;
  return plot_lines(csv_path.string(), png_path, x_column, labels, options);
}

bool plot_scatter(const std::string& csv_path, const std::string& png_path, const std::string& x_column,
                  const std::string& y_column, const std::string& label_column, const PlotOptions& o) {
  const char* op = "plot_scatter";
  const Csv csv = read_csv(op, csv_path);
  const int x = column_of(op, csv, csv_path, x_column), y = column_of(op, csv, csv_path, y_column);
  const int l = column_of(op, csv, csv_path, label_column);

  // The distinct labels, numerically sorted when they are numbers, else in order of appearance.
  std::vector<std::string> labels;
  for (const auto& row : csv.rows)
    if ((int)row.size() >= l && std::find(labels.begin(), labels.end(), row[l - 1]) == labels.end())
      labels.push_back(row[l - 1]);
  const bool numeric = std::all_of(labels.begin(), labels.end(), is_number);
  auto by_value = [](const std::string& a, const std::string& b) {
    return std::strtod(a.c_str(), nullptr) < std::strtod(b.c_str(), nullptr);
  };
  if (numeric) std::sort(labels.begin(), labels.end(), by_value);
  if (labels.size() > 20 && !numeric)
    throw Error("plot_scatter: column '" + label_column + "' of '" + csv_path + "' has " +
                std::to_string(labels.size()) + " distinct non-numeric labels; at most 20 can be told apart");

  std::ostringstream gp;
  gp << preamble(fs::path(png_path).filename().string(), o, x_column);
  if (o.ylabel.empty()) gp << "set ylabel " << gp_quote(y_column) << "\n";
  const std::string data = gp_quote(csv_for_script(csv_path, png_path));
  if (labels.size() <= 20) {
    // One plot element per label, so each gets a legend entry: a point is kept (x) only when its label
    // matches, else it becomes NaN, which gnuplot skips. Labels 11-20 reuse the colours as squares.
    gp << "set key outside right top title " << gp_quote(label_column) << "\n";
    gp << "plot ";
    for (size_t i = 0; i < labels.size(); ++i)
      gp << (i ? ", \\\n     " : "") << data << " using (strcol(" << l << ") eq " << gp_quote(labels[i]) << " ? column("
         << x << ") : NaN):" << y << " with points pt " << (i < 10 ? 7 : 5) << " ps 0.5 lc rgb '" << kTab10[i % 10]
         << "' title " << gp_quote(labels[i]);
    if (labels.empty()) gp << data << " using " << x << ":" << y << " with points pt 7 ps 0.5 notitle";
    gp << "\n";
  } else {
    // Many numeric labels: a continuous colour along viridis, read off the colour box.
    gp << "set palette defined (";
    for (int i = 0; i <= 8; ++i) {
      Rgb c = colormap(Colormap::Viridis, i / 8.0);
      char hex[8];
      std::snprintf(hex, sizeof hex, "#%02x%02x%02x", c.r, c.g, c.b);
      gp << (i ? ", " : "") << i << " '" << hex << "'";
    }
    gp << ")\nset cblabel " << gp_quote(label_column) << "\n";
    gp << "plot " << data << " using " << x << ":" << y << ":" << l << " with points pt 7 ps 0.5 lc palette notitle\n";
  }
  return run_gnuplot(op, png_path, gp.str());
}

}  // namespace heed::viz
