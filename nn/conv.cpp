// conv.cpp: convolution and pooling as im2col + matmul composites. The letters are conv.h's.
//
// How im2col makes a convolution a matrix multiply. For one image, cols = im2col(x) is (C·kh·kw, L): row
// (c, i, j) holds, for every output pixel, the input pixel under kernel tap (i, j) of channel c (zero where
// the window hangs over the padding). Output channel o at pixel l is then Σ_{c,i,j} W[o,c,i,j]·cols[(c,i,j), l],
// i.e. the row W[o] (flattened to K) times column l: y = W (O,K) @ cols (K,L). The rows of cols are ordered
// channel-major, so with groups the rows of group gi are the contiguous block gi·K .. (gi+1)·K - 1, and
// viewing cols as (g, K, ·) and W as (g, O/g, K) makes a grouped convolution one batched matmul.
//
// The whole batch is one product: im2col lays the N images' columns side by side (Columns::Batched,
// cols (K, N·L)), so W (O,K) @ cols is a single GEMM with N·L columns rather than N GEMMs with L each. With
// L = 49 or 196, as in the small convolutions of the zoo, one wide GEMM keeps BLAS's kernels busy and splits
// over threads; N narrow ones do neither. The price is one copy of the output, from (O, N, L) to (N, O, L).
#include "nn/conv.h"

#include <cmath>
#include <limits>

#include "nn/init.h"
#include "nn/linear.h"
#include "tensor/kernels/kernels.h"

namespace heed::nn {

using kernels::Window2d;

// "(3, 3)", as Python prints a tuple; the conv layers always print their sizes this way.
static std::string tuple_str(Size2 s) { return "(" + std::to_string(s.h) + ", " + std::to_string(s.w) + ")"; }
// Pooling layers keep what the user passed: MaxPool2d(2) prints kernel_size=2. A square pair prints as
// one number, which is what PyTorch shows for the usual int argument.
static std::string size_str(Size2 s) { return s.h == s.w ? std::to_string(s.h) : tuple_str(s); }

static Window2d window(Size2 k, Size2 s, Size2 p, Size2 d) {
  return {.kh = k.h, .kw = k.w, .sh = s.h, .sw = s.w, .ph = p.h, .pw = p.w, .dh = d.h, .dw = d.w};
}

static void check_window(const std::string& op, Size2 k, Size2 s, Size2 p, Size2 d) {
  if (k.h < 1 || k.w < 1 || s.h < 1 || s.w < 1 || p.h < 0 || p.w < 0 || d.h < 1 || d.w < 1)
    throw Error(op + ": expected kernel_size, stride, dilation >= 1 and padding >= 0, got kernel_size=" + tuple_str(k) +
                " stride=" + tuple_str(s) + " padding=" + tuple_str(p) + " dilation=" + tuple_str(d));
}

// The smallest input side that leaves at least one output pixel: H + 2p >= d(k-1) + 1.
static int64_t min_side(int64_t k, int64_t p, int64_t d) { return std::max<int64_t>(1, d * (k - 1) + 1 - 2 * p); }

// Throws unless x is (N, channels, H, W) with H, W big enough for the window. `who` names the caller.
static void check_input(const std::string& who, const Tensor& x, int64_t channels, const Window2d& w) {
  std::string c = channels < 0 ? "C" : std::to_string(channels);
  int64_t mh = min_side(w.kh, w.ph, w.dh), mw = min_side(w.kw, w.pw, w.dw);
  std::string expected = "(N," + c + ",H,W)";
  if (mh > 1 || mw > 1) expected += " with H >= " + std::to_string(mh) + " and W >= " + std::to_string(mw);
  if (x.dim() != 4) shape_error(who, expected, x.shape());
  if ((channels >= 0 && x.size(1) != channels) || x.size(2) < mh || x.size(3) < mw)
    shape_error(who, expected, x.shape());
}

// ---- conv2d ---------------------------------------------------------------------------------------------
// y = W ⋆ x + b   x: (N,C,H,W)  weight: (O, C/g, kh, kw)  bias: (O)  ->  y: (N,O,OH,OW)
//   cols = im2col(x, Batched)                 (C·kh·kw, N, L)  viewed as (g, K, N·L); for 1x1, x permuted
//   z    = W.view(g, O/g, K) @ cols           (g, O/g, N·L)    one GEMM per group
//   y    = z viewed (O, N, OH, OW), dims 0 and 1 swapped, + b    (N, O, OH, OW), contiguous
// Backward (from matmul and im2col): dW = dz @ cols^T, dcols = W^T @ dz, dx = col2im(dcols).
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvOptions& opt) {
  if (weight.dim() != 4)
    throw Error("conv2d: expected a 4-d weight (O, C/groups, kh, kw), got " + shape_str(weight.shape()));
  int64_t g = opt.groups, O = weight.size(0);
  if (g < 1 || O % g != 0)
    throw Error("conv2d: groups " + std::to_string(g) + " must be >= 1 and divide the " + std::to_string(O) +
                " output channels");
  Size2 k{weight.size(2), weight.size(3)};
  check_window("conv2d", k, opt.stride, opt.padding, opt.dilation);
  Window2d win = window(k, opt.stride, opt.padding, opt.dilation);
  check_input("conv2d", x, weight.size(1) * g, win);
  if (bias.defined() && bias.shape() != Shape{O})
    throw Error("conv2d: expected bias (" + std::to_string(O) + "), got " + shape_str(bias.shape()));
  int64_t N = x.size(0), C = x.size(1), OH = win.out_h(x.size(2)), OW = win.out_w(x.size(3));
  int64_t K = C / g * k.h * k.w, L = OH * OW;

  // A 1x1 window with stride 1 and no padding (SAGAN's query, key and value projections) reads every pixel
  // once: its columns are x itself with the channels brought to the front, (C, N, L), a copy of whole
  // rows of L pixels instead of im2col's gather.
  const bool pointwise = k.h == 1 && k.w == 1 && win.sh == 1 && win.sw == 1 && win.ph == 0 && win.pw == 0;
  Tensor cols = pointwise ? x.reshape({N, C, L}).permute({1, 0, 2}).reshape({g, K, N * L})
                          : heed::im2col(x, win, kernels::Columns::Batched).view({g, K, N * L});
  Tensor z = matmul(weight.reshape({g, O / g, K}), cols).view({O, N, OH, OW}).permute({1, 0, 2, 3});
  // Adding the bias writes a contiguous (N, O, OH, OW), as PyTorch returns; without one, a copy does.
  return bias.defined() ? z + bias.view({O, 1, 1}) : z.contiguous();
}

// ---- conv_transpose2d ------------------------------------------------------------------------------------
// The adjoint of conv2d: where conv2d gathers a window of input pixels into one output pixel, this scatters
// each input pixel, weighted by the kernel, over a window of the output. With the conv2d of the same window
// mapping (N,Cout,OH,OW) -> (N,Cin,H,W), this maps (N,Cin,H,W) -> (N,Cout,OH,OW):
//   xb   = x as (g, Cin/g, N·H·W)              the images side by side in each channel's row (a copy)
//   cols = W^T @ xb   weight viewed (g, Cin/g, Cout/g·kh·kw), transposed  -> (g, Cout/g·kh·kw, N·H·W)
//                     = (Cout·kh·kw, N, H·W): one column per input pixel, one GEMM per group
//   y    = col2im(cols, Batched)              (N, Cout, OH, OW), overlapping windows summed
// Memory: the full-size intermediate is cols; its backward is im2col(dy) (the column gradient, the same
// size) followed by the two matmul gradients. Besides it, only xb is a copy (the input's size): the
// transposed weight is a view that BLAS reads with a transpose flag.
Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvTransposeOptions& opt) {
  if (weight.dim() != 4)
    throw Error("conv_transpose2d: expected a 4-d weight (Cin, Cout/groups, kh, kw), got " + shape_str(weight.shape()));
  int64_t g = opt.groups, Cin = weight.size(0);
  if (g < 1 || Cin % g != 0)
    throw Error("conv_transpose2d: groups " + std::to_string(g) + " must be >= 1 and divide the " +
                std::to_string(Cin) + " input channels");
  Size2 k{weight.size(2), weight.size(3)};
  check_window("conv_transpose2d", k, opt.stride, opt.padding, opt.dilation);
  Size2 op = opt.output_padding;
  // PyTorch allows output_padding < max(stride, dilation); heed needs < stride, which keeps every output
  // row inside some window, so that col2im's window count matches the input size exactly.
  if (op.h < 0 || op.w < 0 || op.h >= opt.stride.h || op.w >= opt.stride.w)
    throw Error("conv_transpose2d: output_padding " + tuple_str(op) + " must be >= 0 and smaller than the stride " +
                tuple_str(opt.stride));
  if (x.dim() != 4 || x.size(1) != Cin)
    shape_error("conv_transpose2d", "(N," + std::to_string(Cin) + ",H,W)", x.shape());
  int64_t Cout = weight.size(1) * g;
  if (bias.defined() && bias.shape() != Shape{Cout})
    throw Error("conv_transpose2d: expected bias (" + std::to_string(Cout) + "), got " + shape_str(bias.shape()));
  Window2d win = window(k, opt.stride, opt.padding, opt.dilation);
  int64_t N = x.size(0), H = x.size(2), W = x.size(3);
  int64_t OH = (H - 1) * win.sh - 2 * win.ph + win.dh * (k.h - 1) + op.h + 1;
  int64_t OW = (W - 1) * win.sw - 2 * win.pw + win.dw * (k.w - 1) + op.w + 1;
  if (OH < 1 || OW < 1)
    throw Error("conv_transpose2d: the output would be " + std::to_string(OH) + "x" + std::to_string(OW) +
                " for input " + shape_str(x.shape()) + "; the padding " + tuple_str(opt.padding) + " is too large");
  int64_t KT = Cout / g * k.h * k.w;  // one output column per input pixel: Cout/g·kh·kw taps

  Tensor wt = weight.reshape({g, Cin / g, KT}).mT();  // (g, KT, Cin/g), a view
  Tensor xb = x.reshape({N, g, Cin / g, H * W}).permute({1, 2, 0, 3}).reshape({g, Cin / g, N * H * W});
  Tensor cols = matmul(wt, xb).view({g * KT, N, H * W});
  Tensor y = heed::col2im(cols, Cout, OH, OW, win, kernels::Columns::Batched);
  return bias.defined() ? y + bias.view({Cout, 1, 1}) : y;
}

// ---- pooling ---------------------------------------------------------------------------------------------
// Pooling works per channel, so each channel becomes its own one-channel image: (N,C,H,W) is viewed as
// (N·C, 1, H, W), and im2col gives (N·C, kh·kw, L): one window per column. The max (or mean) down dim 1 is
// the pooled image. Backward: max's gradient goes to the position it picked (the first maximum on ties, as
// PyTorch's CPU kernel), mean's is spread evenly; both then flow through col2im.

static void check_pool(const std::string& op, Size2 k, Size2 s, Size2 p, Size2 d) {
  check_window(op, k, s, p, d);
  if (p.h > k.h / 2 || p.w > k.w / 2)
    throw Error(op + ": padding " + tuple_str(p) + " should be at most half of kernel_size " + tuple_str(k));
}

// x padded by ph rows above and below and pw columns left and right, with `value`:
// (M,1,H,W) -> (M,1,H+2ph,W+2pw), by cat, so the gradient reaches x through cat's backward.
static Tensor pad_constant(const Tensor& x, int64_t ph, int64_t pw, double value) {
  Tensor y = x;
  if (pw > 0) {
    Tensor side = full({y.size(0), y.size(1), y.size(2), pw}, value, y.dtype());
    y = cat({side, y, side}, 3);
  }
  if (ph > 0) {
    Tensor band = full({y.size(0), y.size(1), ph, y.size(3)}, value, y.dtype());
    y = cat({band, y, band}, 2);
  }
  return y;
}

// out = max over each window   x: (N,C,H,W) -> (N,C,OH,OW)
// Padding must never win the max, but im2col pads with zeros, which would beat an all-negative window.
// So when there is padding we pad x ourselves, with the lowest finite value of the dtype, and then run
// im2col without padding. PyTorch pads with -inf; a finite value gives the same result (every window
// holds a real pixel, since padding <= kernel/2) and keeps anomaly mode (which rejects ±inf) usable.
Tensor max_pool2d(const Tensor& x, Size2 k, std::optional<Size2> stride, Size2 p, Size2 d) {
  Size2 s = stride.value_or(k);
  check_pool("max_pool2d", k, s, p, d);
  Window2d win = window(k, s, p, d);
  check_input("max_pool2d", x, -1, win);
  int64_t N = x.size(0), C = x.size(1), OH = win.out_h(x.size(2)), OW = win.out_w(x.size(3));
  Tensor xs = x.reshape({N * C, 1, x.size(2), x.size(3)});
  if (p.h > 0 || p.w > 0) {
    double lowest = x.dtype() == float64 ? std::numeric_limits<double>::lowest() : std::numeric_limits<float>::lowest();
    xs = pad_constant(xs, p.h, p.w, lowest);
    win.ph = win.pw = 0;
  }
  Tensor cols = heed::im2col(xs, win);  // (N·C, kh·kw, L)
  return max(cols, 1).first.view({N, C, OH, OW});
}

// out = mean over each window   x: (N,C,H,W) -> (N,C,OH,OW)
// With count_include_pad the divisor is kh·kw; without, it is the number of real pixels in each window,
// which is im2col of an all-ones image summed down each column (a constant, computed once per call).
static void check_no_ceil_mode(const char* who, bool ceil_mode) {
  if (ceil_mode) throw Error(std::string(who) + ": ceil_mode=true is not supported (output sizes round down)");
}

Tensor avg_pool2d(const Tensor& x, Size2 k, std::optional<Size2> stride, Size2 p, bool ceil_mode,
                  bool count_include_pad) {
  check_no_ceil_mode("avg_pool2d", ceil_mode);
  Size2 s = stride.value_or(k);
  check_pool("avg_pool2d", k, s, p, 1);
  Window2d win = window(k, s, p, 1);
  check_input("avg_pool2d", x, -1, win);
  int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), OH = win.out_h(H), OW = win.out_w(W);
  Tensor sums = heed::im2col(x.reshape({N * C, 1, H, W}), win).sum(1);  // (N·C, L)
  Tensor out;
  if (count_include_pad || (p.h == 0 && p.w == 0)) {
    out = sums / (double)(k.h * k.w);
  } else {
    Tensor count = kernels::im2col(ones({1, 1, H, W}, x.dtype()), win).sum(1);  // (1, L), raw: a constant
    out = sums / count;
  }
  return out.view({N, C, OH, OW});
}

// The averaging matrix of one axis, P (out, in): row i is 1/n_i on PyTorch's bin i, rows
// start = floor(i·in/out) to end = ceil((i+1)·in/out) - 1, n_i = end - start, and 0 elsewhere.
static Tensor bin_matrix(int64_t in, int64_t out, DType dt) {
  std::vector<double> p(out * in, 0.0);
  for (int64_t i = 0; i < out; i++) {
    int64_t start = (i * in) / out, end = ((i + 1) * in + out - 1) / out;
    for (int64_t j = start; j < end; j++) p[i * in + j] = 1.0 / (double)(end - start);
  }
  return from_vector(p, {out, in}).to(dt);
}

// out = P_h @ x @ P_w^T   x: (N,C,H,W)  P_h: (OH,H)  P_w: (OW,W)  ->  (N,C,OH,OW)
// A bin is a rectangle (a row bin times a column bin), so its mean is the mean over rows of the means
// over columns: two small matrix multiplies, each a single GEMM over all N·C images (the second after a
// transpose, so that the batch folds into rows). Gradients and double backward come from matmul.
Tensor adaptive_avg_pool2d(const Tensor& x, Size2 output_size) {
  if (output_size.h < 1 || output_size.w < 1)
    throw Error("adaptive_avg_pool2d: output_size must be >= 1, got " + tuple_str(output_size));
  if (x.dim() != 4 || x.size(2) < 1 || x.size(3) < 1) shape_error("adaptive_avg_pool2d", "(N,C,H,W)", x.shape());
  int64_t H = x.size(2), W = x.size(3);
  Tensor ph = bin_matrix(H, output_size.h, x.dtype()), pw = bin_matrix(W, output_size.w, x.dtype());
  Tensor t = matmul(x, pw.mT());                  // (N,C,H,OW): averaged along each row
  t = matmul(t.mT().contiguous(), ph.mT());       // (N,C,OW,OH): then down each column
  return t.mT().contiguous();                     // (N,C,OH,OW)
}

// out[n,c,y,x] = in[n,c,y/sh,x/sw]   (N,C,H,W) -> (N,C,H·sh,W·sw)
// A view (N,C,H,1,W,1) expanded to (N,C,H,sh,W,sw) (stride 0: no copy) and reshaped (one copy). The
// backward of expand sums each sh x sw block of dout back onto its source pixel.
Tensor upsample_nearest(const Tensor& x, Size2 s) {
  if (s.h < 1 || s.w < 1) throw Error("upsample_nearest: scale_factor must be integers >= 1, got " + tuple_str(s));
  if (x.dim() != 4) shape_error("upsample_nearest", "(N,C,H,W)", x.shape());
  int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  return x.reshape({N, C, H, 1, W, 1}).expand({N, C, H, s.h, W, s.w}).reshape({N, C, H * s.h, W * s.w});
}

// ---- layers ----------------------------------------------------------------------------------------------
// PyTorch's _ConvNd.reset_parameters: weight kaiming_uniform_(a = √5), i.e. U(-1/√fan_in, 1/√fan_in), and
// the bias U(-1/√fan_in, 1/√fan_in), with fan_in from the weight's own layout.
static void init_conv(Tensor& weight, Tensor& bias) {
  init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    int64_t fan_in = init::calculate_fan_in_and_fan_out(weight).first;
    double bound = fan_in > 0 ? 1.0 / std::sqrt((double)fan_in) : 0.0;
    init::uniform_(bias, -bound, bound);
  }
}

static void check_channels(const std::string& layer, int64_t in, int64_t out, int64_t groups) {
  if (in < 1 || out < 1 || groups < 1 || in % groups != 0 || out % groups != 0)
    throw Error(layer + ": in_channels " + std::to_string(in) + " and out_channels " + std::to_string(out) +
                " must be >= 1 and divisible by groups " + std::to_string(groups));
}

// ", padding=(1, 1), dilation=(2, 2), groups=2": the options that differ from their defaults, as _ConvNd prints them.
static std::string conv_repr(int64_t in, int64_t out, Size2 k, Size2 s, Size2 p, Size2 d, Size2 op, int64_t g,
                             bool bias) {
  std::string r =
      std::to_string(in) + ", " + std::to_string(out) + ", kernel_size=" + tuple_str(k) + ", stride=" + tuple_str(s);
  if (!(p == Size2(0))) r += ", padding=" + tuple_str(p);
  if (!(d == Size2(1))) r += ", dilation=" + tuple_str(d);
  if (!(op == Size2(0))) r += ", output_padding=" + tuple_str(op);
  if (g != 1) r += ", groups=" + std::to_string(g);
  if (!bias) r += ", bias=False";
  return r;
}

Conv2d::Conv2d(int64_t in, int64_t out, Size2 k, const Config& cfg)
    : in_channels(in), out_channels(out), kernel_size(k), config(cfg) {
  check_channels("Conv2d", in, out, cfg.groups);
  check_window("Conv2d", k, cfg.stride, cfg.padding, cfg.dilation);
  weight = empty("Conv2d", {out, in / cfg.groups, k.h, k.w}, float32);
  if (cfg.bias) bias = empty({out});
  init_conv(weight, bias);
  register_parameter("weight", weight);
  register_parameter("bias", bias);
}

Conv2d::Conv2d(int64_t in, int64_t out, Size2 k) : Conv2d(in, out, k, Config{}) {}

Tensor Conv2d::forward(const Tensor& x) {
  check_input(describe(*this), x, in_channels, window(kernel_size, config.stride, config.padding, config.dilation));
  return conv2d(x, weight, bias, {config.stride, config.padding, config.dilation, config.groups});
}

std::string Conv2d::extra_repr() const {
  return conv_repr(in_channels, out_channels, kernel_size, config.stride, config.padding, config.dilation, 0,
                   config.groups, bias.defined());
}

ConvTranspose2d::ConvTranspose2d(int64_t in, int64_t out, Size2 k, const Config& cfg)
    : in_channels(in), out_channels(out), kernel_size(k), config(cfg) {
  check_channels("ConvTranspose2d", in, out, cfg.groups);
  check_window("ConvTranspose2d", k, cfg.stride, cfg.padding, cfg.dilation);
  Size2 op = cfg.output_padding;
  if (op.h < 0 || op.w < 0 || op.h >= cfg.stride.h || op.w >= cfg.stride.w)
    throw Error("ConvTranspose2d: output_padding " + tuple_str(op) + " must be >= 0 and smaller than the stride " +
                tuple_str(cfg.stride));
  weight = empty("ConvTranspose2d", {in, out / cfg.groups, k.h, k.w}, float32);
  if (cfg.bias) bias = empty({out});
  init_conv(weight, bias);
  register_parameter("weight", weight);
  register_parameter("bias", bias);
}

ConvTranspose2d::ConvTranspose2d(int64_t in, int64_t out, Size2 k) : ConvTranspose2d(in, out, k, Config{}) {}

Tensor ConvTranspose2d::forward(const Tensor& x) {
  if (x.dim() != 4 || x.size(1) != in_channels)
    shape_error(describe(*this), "(N," + std::to_string(in_channels) + ",H,W)", x.shape());
  return conv_transpose2d(x, weight, bias,
                          {config.stride, config.padding, config.output_padding, config.groups, config.dilation});
}

std::string ConvTranspose2d::extra_repr() const {
  return conv_repr(in_channels, out_channels, kernel_size, config.stride, config.padding, config.dilation,
                   config.output_padding, config.groups, bias.defined());
}

MaxPool2d::MaxPool2d(Size2 k, std::optional<Size2> s, Size2 p, Size2 d)
    : kernel_size(k), stride(s.value_or(k)), padding(p), dilation(d) {
  check_pool("MaxPool2d", kernel_size, stride, padding, dilation);
}

Tensor MaxPool2d::forward(const Tensor& x) {
  check_input(describe(*this), x, -1, window(kernel_size, stride, padding, dilation));
  return max_pool2d(x, kernel_size, stride, padding, dilation);
}

std::string MaxPool2d::extra_repr() const {
  return "kernel_size=" + size_str(kernel_size) + ", stride=" + size_str(stride) + ", padding=" + size_str(padding) +
         ", dilation=" + size_str(dilation) + ", ceil_mode=False";
}

AvgPool2d::AvgPool2d(Size2 k, std::optional<Size2> s, Size2 p, bool ceil_mode, bool count_include_pad)
    : kernel_size(k), stride(s.value_or(k)), padding(p), count_include_pad(count_include_pad) {
  check_no_ceil_mode("AvgPool2d", ceil_mode);
  check_pool("AvgPool2d", kernel_size, stride, padding, 1);
}

Tensor AvgPool2d::forward(const Tensor& x) {
  check_input(describe(*this), x, -1, window(kernel_size, stride, padding, 1));
  return avg_pool2d(x, kernel_size, stride, padding, false, count_include_pad);
}

std::string AvgPool2d::extra_repr() const {
  return "kernel_size=" + size_str(kernel_size) + ", stride=" + size_str(stride) + ", padding=" + size_str(padding);
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(Size2 output_size) : output_size(output_size) {
  if (output_size.h < 1 || output_size.w < 1)
    throw Error("AdaptiveAvgPool2d: output_size must be >= 1, got " + tuple_str(output_size));
}

Tensor AdaptiveAvgPool2d::forward(const Tensor& x) {
  if (x.dim() != 4 || x.size(2) < 1 || x.size(3) < 1) shape_error(describe(*this), "(N,C,H,W)", x.shape());
  return adaptive_avg_pool2d(x, output_size);
}

std::string AdaptiveAvgPool2d::extra_repr() const { return "output_size=" + size_str(output_size); }

Upsample::Upsample(Size2 scale_factor) : scale_factor(scale_factor) {
  if (scale_factor.h < 1 || scale_factor.w < 1)
    throw Error("Upsample: scale_factor must be integers >= 1, got " + tuple_str(scale_factor));
}

Tensor Upsample::forward(const Tensor& x) {
  if (x.dim() != 4) shape_error(describe(*this), "(N,C,H,W)", x.shape());
  return upsample_nearest(x, scale_factor);
}

std::string Upsample::extra_repr() const {
  // PyTorch stores the factors as floats: scale_factor=2.0, or (2.0, 3.0) when they differ.
  std::string s = scale_factor.h == scale_factor.w
                      ? py_float((double)scale_factor.h)
                      : "(" + py_float((double)scale_factor.h) + ", " + py_float((double)scale_factor.w) + ")";
  return "scale_factor=" + s + ", mode=nearest";
}

}  // namespace heed::nn
