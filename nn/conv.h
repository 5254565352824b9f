// conv.h: convolution, transposed convolution, pooling and nearest upsampling, as functions and as layers.
//
// Letters used in every shape comment: N batch, C (or Cin) input channels, O (or Cout) output channels,
// H, W the input's height and width, OH, OW the output's, kh, kw the kernel, g the groups,
// K = C/g·kh·kw the length of one receptive field, L = OH·OW the number of output pixels.
//
// All of them are composites of three differentiable ops: im2col, col2im (autograd/ops_conv.cpp) and
// matmul. im2col lays each receptive field out as a column, so a convolution is one matrix multiply
// (W (O,K) @ cols (K,L)), which runs at BLAS speed; the convolutions lay the whole batch's columns side by
// side (cols (K, N·L)), so it is one multiply for the batch. A transposed convolution is the adjoint
// (W^T @ x, then col2im adds the columns back into an image); pooling is a max or a mean down each
// column. Their backward passes, and the backward of those (double backward: WGAN-GP's gradient penalty
// through a convolutional critic), come from the three primitives with no hand-written gradient.
//
//   nn::Conv2d conv(1, 32, 3, {.stride = 2, .padding = 1});    // (N,1,28,28) -> (N,32,14,14)
//   nn::ConvTranspose2d up(32, 1, 4, {.stride = 2, .padding = 1});  // (N,32,14,14) -> (N,1,28,28)
//   nn::MaxPool2d pool(2);                                     // (N,C,28,28) -> (N,C,14,14)
//
// Only 4-d (N,C,H,W) inputs are accepted; an unbatched (C,H,W) input is an error (PyTorch would take it).
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "nn/module.h"

namespace heed::nn {

/// A (height, width) pair. One number means the same for both: `3` is (3, 3), `{3, 5}` is (3, 5).
struct Size2 {
  int64_t h = 0, w = 0;
  Size2(int64_t v) : h(v), w(v) {}  // implicit on purpose, so that `.stride = 2` reads as in PyTorch
  Size2(int64_t h, int64_t w) : h(h), w(w) {}
  bool operator==(const Size2&) const = default;
};

// ---- functional forms ------------------------------------------------------------------------------------

struct ConvOptions {
  Size2 stride = 1;
  Size2 padding = 0;   // zeros, on both sides
  Size2 dilation = 1;  // the spacing between kernel taps
  int64_t groups = 1;  // channels split into g independent convolutions
};
/// x (N,C,H,W), weight (O, C/g, kh, kw), bias (O) or undefined -> (N, O, OH, OW), OH = (H + 2p - d(kh-1) - 1)/s + 1.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), const ConvOptions& opt = {});

struct ConvTransposeOptions {
  Size2 stride = 1;
  Size2 padding = 0;         // removed from each side of the output (the padding of the conv this inverts)
  Size2 output_padding = 0;  // extra rows/cols at the bottom/right; must be < stride
  int64_t groups = 1;
  Size2 dilation = 1;
};
/// x (N, Cin, H, W), weight (Cin, Cout/g, kh, kw), bias (Cout) -> (N, Cout, OH, OW),
/// OH = (H-1)·s - 2p + d(kh-1) + output_padding + 1: the shape of the input of the conv2d it is the adjoint of.
Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
                        const ConvTransposeOptions& opt = {});

/// The max of each window, per channel. Padding never wins (it acts as -∞) and may be at most half the
/// kernel, as PyTorch requires, so every window holds a real pixel. stride defaults to kernel_size.
Tensor max_pool2d(const Tensor& x, Size2 kernel_size, std::optional<Size2> stride = std::nullopt, Size2 padding = 0,
                  Size2 dilation = 1);
/// The mean of each window, per channel; with count_include_pad the zero padding counts in the divisor.
/// The arguments come in F.avg_pool2d's order; ceil_mode must be false (heed's windows round the output
/// size down) and is there so that a positional `false` means what it means in PyTorch.
Tensor avg_pool2d(const Tensor& x, Size2 kernel_size, std::optional<Size2> stride = std::nullopt, Size2 padding = 0,
                  bool ceil_mode = false, bool count_include_pad = true);
/// (N,C,H,W) -> (N,C,OH,OW): output pixel (i,j) averages rows floor(i·H/OH) .. ceil((i+1)·H/OH)-1 and the
/// same for columns, as PyTorch; the bins overlap when H is not a multiple of OH.
Tensor adaptive_avg_pool2d(const Tensor& x, Size2 output_size);
/// (N,C,H,W) -> (N,C,H·sh,W·sw): each pixel repeated sh x sw times. Integer scale factors only.
Tensor upsample_nearest(const Tensor& x, Size2 scale_factor);

// ---- layers ----------------------------------------------------------------------------------------------

/// weight (out_channels, in_channels/groups, kh, kw), bias (out_channels); both U(-1/√fan_in, 1/√fan_in)
/// (kaiming_uniform_ with a = √5 for the weight), fan_in = in_channels/groups·kh·kw.
struct Conv2d : Module {
  struct Config {
    Size2 stride = 1;
    Size2 padding = 0;
    Size2 dilation = 1;
    int64_t groups = 1;
    bool bias = true;
  };
  int64_t in_channels, out_channels;
  Size2 kernel_size;
  Config config;
  Tensor weight, bias;

  Conv2d(int64_t in_channels, int64_t out_channels, Size2 kernel_size, const Config& config);
  // Two constructors rather than a default argument `= {}`, which g++ 12 rejects for a nested type with
  // member initialisers inside the enclosing class.
  Conv2d(int64_t in_channels, int64_t out_channels, Size2 kernel_size);
  Tensor forward(const Tensor& x);
  std::string type_name() const override { return "Conv2d"; }
  std::string extra_repr() const override;
};

/// weight (in_channels, out_channels/groups, kh, kw), bias (out_channels). PyTorch's fan_in for this
/// layout is weight.size(1)·kh·kw = out_channels/groups·kh·kw, and both bounds are 1/√fan_in.
struct ConvTranspose2d : Module {
  struct Config {
    Size2 stride = 1;
    Size2 padding = 0;
    Size2 output_padding = 0;
    int64_t groups = 1;
    bool bias = true;
    Size2 dilation = 1;
  };
  int64_t in_channels, out_channels;
  Size2 kernel_size;
  Config config;
  Tensor weight, bias;

  ConvTranspose2d(int64_t in_channels, int64_t out_channels, Size2 kernel_size, const Config& config);
  ConvTranspose2d(int64_t in_channels, int64_t out_channels, Size2 kernel_size);  // as Conv2d's
  Tensor forward(const Tensor& x);
  std::string type_name() const override { return "ConvTranspose2d"; }
  std::string extra_repr() const override;
};

struct MaxPool2d : Module {
  Size2 kernel_size, stride, padding, dilation;
  explicit MaxPool2d(Size2 kernel_size, std::optional<Size2> stride = std::nullopt, Size2 padding = 0,
                     Size2 dilation = 1);
  Tensor forward(const Tensor& x);
  std::string type_name() const override { return "MaxPool2d"; }
  std::string extra_repr() const override;
};

struct AvgPool2d : Module {
  Size2 kernel_size, stride, padding;
  bool count_include_pad;
  /// nn.AvgPool2d's order; ceil_mode must be false, as in avg_pool2d.
  explicit AvgPool2d(Size2 kernel_size, std::optional<Size2> stride = std::nullopt, Size2 padding = 0,
                     bool ceil_mode = false, bool count_include_pad = true);
  Tensor forward(const Tensor& x);
  std::string type_name() const override { return "AvgPool2d"; }
  std::string extra_repr() const override;
};

struct AdaptiveAvgPool2d : Module {
  Size2 output_size;
  explicit AdaptiveAvgPool2d(Size2 output_size);
  Tensor forward(const Tensor& x);
  std::string type_name() const override { return "AdaptiveAvgPool2d"; }
  std::string extra_repr() const override;
};

/// nn.Upsample(scale_factor=s, mode='nearest') for integer s.
struct Upsample : Module {
  Size2 scale_factor;
  explicit Upsample(Size2 scale_factor);
  Tensor forward(const Tensor& x);
  std::string type_name() const override { return "Upsample"; }
  std::string extra_repr() const override;
};

}  // namespace heed::nn
