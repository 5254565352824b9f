// Tests for nn/linear, nn/conv, nn/norm, nn/container and nn/spectral_norm:
//   - golden values from PyTorch 1.13 (tests/fixtures/layers/, written by make_layer_fixtures.py): state
//     dict in, output, gradients, running stats and repr out;
//   - a gradcheck table of every layer in float64, with gradgradcheck where WGAN-GP-style double backward
//     must work;
//   - naive loop references for the convolutions, and the adjoint identity that ties conv_transpose2d to
//     conv2d;
//   - the error path of every layer (CHECK_THROWS_AS), dropout, containers, spectral norm, memory.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <sstream>

#include "heed.h"
#include "nn/layers.h"
#include "io/safetensors.h"

using namespace heed;
using V = std::vector<Tensor>;

namespace {

// ---- golden values ---------------------------------------------------------------------------------------

// The layer under test, registered as "layer" so that its state dict reads "layer.weight" as the fixtures do.
template <class M>
struct Named : nn::Module {
  M layer;
  template <class... A>
  explicit Named(A&&... a) : layer(std::forward<A>(a)...) {
    register_module("layer", layer);
  }
};

// The element-wise comparison of the golden tests: |a - b| <= atol + rtol·|b|, reporting the worst element.
void check_close(const Tensor& got, const Tensor& want, const std::string& what, double rtol = 1.3e-6,
                 double atol = 1e-5) {
  INFO(what);
  REQUIRE(got.defined());
  REQUIRE(got.shape() == want.shape());
  std::vector<double> a = got.to_vector<double>(), b = want.to_vector<double>();
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < a.size(); i++) {
    double excess = std::fabs(a[i] - b[i]) - (atol + rtol * std::fabs(b[i]));
    if (i == 0 || excess > worst) worst = excess, at = i;
  }
  INFO("worst element ", at, ": heed ", a.empty() ? 0 : a[at], " vs torch ", b.empty() ? 0 : b[at]);
  CHECK(allclose(got, want, rtol, atol));
}

std::string fixture(const std::string& name) {
  return std::string(HEED_SOURCE_DIR) + "/tests/fixtures/layers/" + name + ".safetensors";
}

// Loads the fixture, runs the layer in training mode and compares everything the fixture holds (see
// make_layer_fixtures.py for the keys). Returns the fixture, for the caller's extra checks.
// `repr_of` is the module whose describe() must print the fixture's repr (null: not compared).
template <class M>
TensorMap check_golden(const std::string& name, Named<M>& root, const nn::Module* repr_of) {
  INFO("fixture: ", name);
  Metadata meta;
  TensorMap f = load(fixture(name), &meta);
  nn::StateDict sd;
  for (auto& [k, v] : f)
    if (k.rfind("layer.", 0) == 0) sd[k] = v;
  root.load_state_dict(sd);
  if (repr_of) CHECK(nn::describe(*repr_of) == meta["repr"]);

  root.train();
  Tensor x = f.at("input");
  if (is_floating(x.dtype())) x = x.clone().requires_grad_();
  Tensor y = root.layer(x);
  check_close(y, f.at("output"), "output");
  (y * f.at("g")).sum().backward();
  if (f.count("grad.input")) check_close(x.grad(), f.at("grad.input"), "grad.input");
  int grads = 0;
  for (auto& [k, p] : root.named_parameters()) {
    check_close(p.grad(), f.at("grad." + k), "grad." + k);
    grads++;
  }
  int expected_grads = 0;
  for (auto& [k, v] : f) expected_grads += k.rfind("grad.layer.", 0) == 0;
  CHECK(grads == expected_grads);
  nn::StateDict now = root.state_dict();
  for (auto& [k, v] : f)
    if (k.rfind("after.", 0) == 0) {
      if (v.dtype() == int64) CHECK(now.at(k.substr(6)).item() == v.item());
      else check_close(now.at(k.substr(6)), v, k);
    }
  if (f.count("eval_output")) {
    root.eval();
    NoGradGuard no_grad;
    check_close(root.layer(x), f.at("eval_output"), "eval_output");
  }
  return f;
}

template <class M, class... A>
void golden(const std::string& name, A&&... args) {
  Named<M> root(std::forward<A>(args)...);
  check_golden(name, root, &root.layer);
}

// ---- gradcheck table -------------------------------------------------------------------------------------

Generator gen(77);
Tensor R(const Shape& s, double scale = 1.0) {
  NoGradGuard g;
  return (randn(s, float64, &gen) * scale).detach().requires_grad_();
}
// Values at least 0.2 away from 0, where relu-like activations have their kink.
Tensor away(const Shape& s) {
  NoGradGuard g;
  Tensor r = randn(s, float64, &gen);
  return (sign(r) * (abs(r) + 0.2)).detach().requires_grad_();
}
// Distinct values in a scrambled order, so that every max-pooling window has a unique maximum.
Tensor distinct(const Shape& s) {
  int64_t n = numel_of(s);
  std::vector<double> out(n);
  for (int64_t i = 0; i < n; i++)
    out[i] = 0.1 * (double)((i * 37 + 11) % n) - 0.05 * (double)n;  // 37 coprime to n here
  return from_vector(out, s).requires_grad_();
}

struct Case {
  std::string name;
  std::function<V()> inputs;
  TensorFn f;
  bool second_order = true;
};

// Each case builds its layer once; f swaps the float64 leaves in for the layer's float32 parameters (the
// members are plain Tensors) and runs the layer's own forward.
std::vector<Case> table() {
  auto linear = std::make_shared<nn::Linear>(3, 4);
  auto embedding = std::make_shared<nn::Embedding>(5, 3);
  auto conv =
      std::make_shared<nn::Conv2d>(4, 6, 3, nn::Conv2d::Config{.stride = 2, .padding = 1, .dilation = 2, .groups = 2});
  auto conv_plain = std::make_shared<nn::Conv2d>(2, 3, nn::Size2{2, 3});
  auto convt = std::make_shared<nn::ConvTranspose2d>(
      4, 6, 3, nn::ConvTranspose2d::Config{.stride = 2, .padding = 1, .output_padding = 1, .groups = 2});
  auto maxpool = std::make_shared<nn::MaxPool2d>(3, 2, 1);
  auto maxpool_dil = std::make_shared<nn::MaxPool2d>(2, 1, 1, 2);
  auto avgpool = std::make_shared<nn::AvgPool2d>(3, 2, 1);
  auto avgpool_ex = std::make_shared<nn::AvgPool2d>(3, 2, 1, /*ceil_mode=*/false, /*count_include_pad=*/false);
  auto adaptive = std::make_shared<nn::AdaptiveAvgPool2d>(nn::Size2{3, 4});
  auto upsample = std::make_shared<nn::Upsample>(nn::Size2{2, 3});
  auto bn1 = std::make_shared<nn::BatchNorm1d>(3);
  auto bn2 = std::make_shared<nn::BatchNorm2d>(2);
  auto bn2_eval = std::make_shared<nn::BatchNorm2d>(2);
  auto ln = std::make_shared<nn::LayerNorm>(Shape{3, 4});
  auto gn = std::make_shared<nn::GroupNorm>(2, 4);
  auto sn_linear = std::make_shared<nn::SpectralNorm<nn::Linear>>(4, 3);
  auto sn_convt = std::make_shared<nn::SpectralNorm<nn::ConvTranspose2d>>(2, 3, 2);
  auto seq = std::make_shared<nn::Sequential>();
  seq->add<nn::Linear>(3, 4, false);
  seq->add<nn::Tanh>();
  seq->add<nn::Linear>(4, 2, false);
  {
    // float64 buffers, so that the running-stat update and the eval path run in the cases' dtype.
    NoGradGuard g;
    for (nn::BatchNorm* bn : {static_cast<nn::BatchNorm*>(bn1.get()), static_cast<nn::BatchNorm*>(bn2.get()),
                              static_cast<nn::BatchNorm*>(bn2_eval.get())}) {
      bn->running_mean = randn({bn->num_features}, float64, &gen) * 0.3;
      bn->running_var = rand({bn->num_features}, float64, &gen) + 0.5;
    }
    bn2_eval->eval();
    sn_linear->weight_u = sn_linear->weight_u.to(float64);
    sn_linear->weight_v = sn_linear->weight_v.to(float64);
    sn_linear->eval();
    sn_convt->weight_u = sn_convt->weight_u.to(float64);
    sn_convt->weight_v = sn_convt->weight_v.to(float64);
    sn_convt->eval();
  }
  return {
      {"Linear",
       [] {
         return V{R({2, 3}), R({4, 3}), R({4})};
       },
       [=](const V& v) {
         linear->weight = v[1];
         linear->bias = v[2];
         return (*linear)(v[0]);
       }},
      {"Embedding",
       [] {
         return V{R({5, 3})};
       },
       [=](const V& v) {
         embedding->weight = v[0];
         return (*embedding)(from_vector<int64_t>({4, 0, 4, 2}, {2, 2}));
       }},
      {"Flatten/Unflatten",
       [] {
         return V{R({2, 3, 2})};
       },
       [](const V& v) {
         nn::Flatten fl;
         nn::Unflatten un(1, {2, -1});
         return un(fl(v[0])) * v[0].reshape({2, 2, 3});
       }},
      {"dropout",
       [] {
         return V{R({3, 4})};
       },
       [](const V& v) {
         Generator g(5);
         return nn::dropout(v[0], 0.4, true, &g) * v[0];
       }},
      {"activations",
       [] {
         return V{away({2, 5})};
       },
       [](const V& v) {
         nn::LeakyReLU lr(0.2);
         nn::ELU elu(0.7);
         nn::GELU ge;
         nn::GELU get("tanh");
         nn::SiLU si;
         nn::Softplus sp(2.0, 1.0);
         nn::ReLU re;
         nn::Tanh th;
         nn::Sigmoid sg;
         Tensor x = v[0];
         return lr(x) + elu(x) + ge(x) + get(x) + si(x) + sp(x) + re(x) + th(x) + sg(x);
       }},
      {"Conv2d stride 2 padding 1 dilation 2 groups 2",
       [] {
         return V{R({2, 4, 5, 5}), R({6, 2, 3, 3}), R({6})};
       },
       [=](const V& v) {
         conv->weight = v[1];
         conv->bias = v[2];
         return (*conv)(v[0]);
       }},
      {"Conv2d rectangular kernel",
       [] {
         return V{R({1, 2, 3, 4}), R({3, 2, 2, 3}), R({3})};
       },
       [=](const V& v) {
         conv_plain->weight = v[1];
         conv_plain->bias = v[2];
         return (*conv_plain)(v[0]);
       }},
      {"Conv2d 1x1 groups 2 (the pointwise path)",
       [] {
         return V{R({2, 4, 3, 2}), R({6, 2, 1, 1}), R({6})};
       },
       [=](const V& v) { return nn::conv2d(v[0], v[1], v[2], {.groups = 2}); }},
      {"ConvTranspose2d stride 2 padding 1 output_padding 1 groups 2",
       [] {
         return V{R({1, 4, 3, 3}), R({4, 3, 3, 3}), R({6})};
       },
       [=](const V& v) {
         convt->weight = v[1];
         convt->bias = v[2];
         return (*convt)(v[0]);
       }},
      {"MaxPool2d padding",
       [] {
         return V{distinct({1, 2, 5, 5})};
       },
       [=](const V& v) { return (*maxpool)(v[0]); }},
      {"MaxPool2d dilation",
       [] {
         return V{distinct({1, 1, 4, 5})};
       },
       [=](const V& v) { return (*maxpool_dil)(v[0]); }},
      {"AvgPool2d",
       [] {
         return V{R({1, 2, 5, 5})};
       },
       [=](const V& v) { return (*avgpool)(v[0]) + (*avgpool_ex)(v[0]); }},
      {"AdaptiveAvgPool2d",
       [] {
         return V{R({1, 2, 5, 7})};
       },
       [=](const V& v) { return (*adaptive)(v[0]); }},
      {"Upsample",
       [] {
         return V{R({1, 2, 2, 3})};
       },
       [=](const V& v) { return (*upsample)(v[0]) * (*upsample)(v[0]); }},
      {"BatchNorm1d train",
       [] {
         return V{R({4, 3, 2}), R({3}), R({3})};
       },
       [=](const V& v) {
         bn1->weight = v[1];
         bn1->bias = v[2];
         return (*bn1)(v[0]);
       }},
      {"BatchNorm2d train",
       [] {
         return V{R({3, 2, 2, 2}), R({2}), R({2})};
       },
       [=](const V& v) {
         bn2->weight = v[1];
         bn2->bias = v[2];
         return (*bn2)(v[0]);
       }},
      {"BatchNorm2d eval",
       [] {
         return V{R({2, 2, 2, 2}), R({2}), R({2})};
       },
       [=](const V& v) {
         bn2_eval->weight = v[1];
         bn2_eval->bias = v[2];
         return (*bn2_eval)(v[0]);
       }},
      {"LayerNorm over the last 2 dims",
       [] {
         return V{R({2, 3, 4}), R({3, 4}), R({3, 4})};
       },
       [=](const V& v) {
         ln->weight = v[1];
         ln->bias = v[2];
         return (*ln)(v[0]);
       }},
      {"GroupNorm",
       [] {
         return V{R({2, 4, 3}), R({4}), R({4})};
       },
       [=](const V& v) {
         gn->weight = v[1];
         gn->bias = v[2];
         return (*gn)(v[0]);
       }},
      {"SpectralNorm<Linear> eval",
       [] {
         return V{R({2, 4}), R({3, 4}), R({3})};
       },
       [=](const V& v) {
         sn_linear->weight_orig = v[1];
         sn_linear->layer.bias = v[2];
         return (*sn_linear)(v[0]);
       }},
      {"SpectralNorm<ConvTranspose2d> eval",
       [] {
         return V{R({1, 2, 2, 2}), R({2, 3, 2, 2}), R({3})};
       },
       [=](const V& v) {
         sn_convt->weight_orig = v[1];
         sn_convt->layer.bias = v[2];
         return (*sn_convt)(v[0]);
       }},
      {"Sequential",
       [] {
         return V{R({2, 3}), R({4, 3}), R({2, 4})};
       },
       [=](const V& v) {
         seq->at<nn::Linear>(0).weight = v[1];
         seq->at<nn::Linear>(2).weight = v[2];
         return (*seq)(v[0]);
       }},
  };
}

// ---- naive references ------------------------------------------------------------------------------------

// conv2d by its definition, seven nested loops in double:
//   y[n,o,oy,ox] = b[o] + Σ_{c',i,j} w[o,c',i,j] · x[n, g(o)·C/g + c', oy·sh - ph + i·dh, ox·sw - pw + j·dw]
Tensor conv2d_reference(const Tensor& x, const Tensor& w, const Tensor& b, const nn::ConvOptions& o) {
  int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), O = w.size(0), kh = w.size(2), kw = w.size(3);
  int64_t g = o.groups, Cg = C / g, Og = O / g;
  int64_t OH = (H + 2 * o.padding.h - o.dilation.h * (kh - 1) - 1) / o.stride.h + 1;
  int64_t OW = (W + 2 * o.padding.w - o.dilation.w * (kw - 1) - 1) / o.stride.w + 1;
  std::vector<double> xv = x.to_vector<double>(), wv = w.to_vector<double>(), bv = b.to_vector<double>(),
                      y(N * O * OH * OW);
  for (int64_t n = 0; n < N; n++)
    for (int64_t oc = 0; oc < O; oc++)
      for (int64_t oy = 0; oy < OH; oy++)
        for (int64_t ox = 0; ox < OW; ox++) {
          double s = bv[oc];
          for (int64_t c = 0; c < Cg; c++)
            for (int64_t i = 0; i < kh; i++)
              for (int64_t j = 0; j < kw; j++) {
                int64_t iy = oy * o.stride.h - o.padding.h + i * o.dilation.h,
                        ix = ox * o.stride.w - o.padding.w + j * o.dilation.w;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                int64_t ci = oc / Og * Cg + c;
                s += wv[((oc * Cg + c) * kh + i) * kw + j] * xv[((n * C + ci) * H + iy) * W + ix];
              }
          y[((n * O + oc) * OH + oy) * OW + ox] = s;
        }
  return from_vector(y, {N, O, OH, OW});
}

// max pooling by its definition, windows clipped to the image (what -inf padding means).
Tensor max_pool2d_reference(const Tensor& x, int64_t k, int64_t s, int64_t p, int64_t d) {
  int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  int64_t OH = (H + 2 * p - d * (k - 1) - 1) / s + 1, OW = (W + 2 * p - d * (k - 1) - 1) / s + 1;
  std::vector<double> xv = x.to_vector<double>(), y;
  for (int64_t nc = 0; nc < N * C; nc++)
    for (int64_t oy = 0; oy < OH; oy++)
      for (int64_t ox = 0; ox < OW; ox++) {
        double m = -INFINITY;
        for (int64_t i = 0; i < k; i++)
          for (int64_t j = 0; j < k; j++) {
            int64_t iy = oy * s - p + i * d, ix = ox * s - p + j * d;
            if (iy >= 0 && iy < H && ix >= 0 && ix < W) m = std::max(m, xv[(nc * H + iy) * W + ix]);
          }
        y.push_back(m);
      }
  return from_vector(y, {N, C, OH, OW});
}

double dot(const Tensor& a, const Tensor& b) { return (a * b).sum().item(); }

}  // namespace

// ---- golden tests ----------------------------------------------------------------------------------------

TEST_CASE("nn golden: Linear, Embedding, Flatten, Unflatten, Sequential against PyTorch") {
  golden<nn::Linear>("linear", 5, 4);
  golden<nn::Linear>("linear_nobias", 3, 2, false);
  golden<nn::Embedding>("embedding", 7, 3);
  golden<nn::Flatten>("flatten");
  golden<nn::Unflatten>("unflatten", 1, Shape{2, 3});
  Named<nn::Sequential> seq;
  seq.layer.add<nn::Linear>(4, 3);
  seq.layer.add<nn::Tanh>();
  seq.layer.add<nn::Linear>(3, 2);
  check_golden("sequential", seq, nullptr);  // PyTorch's repr of a Sequential spans lines; printing is tested below
}

TEST_CASE("nn golden: activation modules against PyTorch") {
  golden<nn::ReLU>("relu");
  golden<nn::LeakyReLU>("leaky_relu", 0.2);
  golden<nn::GELU>("gelu");
  golden<nn::GELU>("gelu_tanh", "tanh");
  golden<nn::SiLU>("silu");
  golden<nn::Tanh>("tanh");
  golden<nn::Sigmoid>("sigmoid");
  golden<nn::Softplus>("softplus");
  golden<nn::Softplus>("softplus_beta", 2.0, 3.0);
  golden<nn::ELU>("elu", 0.5);
}

TEST_CASE("nn golden: Conv2d and ConvTranspose2d against PyTorch") {
  golden<nn::Conv2d>("conv2d", 4, 6, 3, nn::Conv2d::Config{.stride = 2, .padding = 1, .dilation = 2, .groups = 2});
  golden<nn::Conv2d>("conv2d_rect", 3, 5, nn::Size2{3, 2}, nn::Conv2d::Config{.stride = {1, 2}, .padding = {0, 1}});
  golden<nn::Conv2d>("conv2d_nobias", 2, 3, 1, nn::Conv2d::Config{.bias = false});
  golden<nn::ConvTranspose2d>("conv_transpose2d", 4, 6, 3,
                              nn::ConvTranspose2d::Config{.stride = 2, .padding = 1, .output_padding = 1});
  golden<nn::ConvTranspose2d>(
      "conv_transpose2d_groups", 4, 6, nn::Size2{3, 2},
      nn::ConvTranspose2d::Config{.stride = {2, 1}, .padding = {1, 0}, .groups = 2, .dilation = {1, 2}});
}

TEST_CASE("nn golden: pooling and upsampling against PyTorch") {
  golden<nn::MaxPool2d>("max_pool2d", 3, 2, 1);
  golden<nn::MaxPool2d>("max_pool2d_default", 2);
  golden<nn::MaxPool2d>("max_pool2d_dilation", 2, 1, 1, 2);
  golden<nn::AvgPool2d>("avg_pool2d", 3, 2, 1);
  golden<nn::AvgPool2d>("avg_pool2d_exclude_pad", 3, 2, 1, /*ceil_mode=*/false, /*count_include_pad=*/false);
  golden<nn::AdaptiveAvgPool2d>("adaptive_avg_pool2d", nn::Size2{3, 4});
  golden<nn::AdaptiveAvgPool2d>("adaptive_avg_pool2d_global", 1);
  golden<nn::Upsample>("upsample", 2);
  golden<nn::Upsample>("upsample_rect", nn::Size2{2, 3});
}

TEST_CASE("nn golden: BatchNorm, LayerNorm, GroupNorm against PyTorch (train step, running stats, eval)") {
  golden<nn::BatchNorm1d>("batchnorm1d", 4);
  golden<nn::BatchNorm1d>("batchnorm1d_3d", 3);
  golden<nn::BatchNorm2d>("batchnorm2d", 3);
  golden<nn::BatchNorm2d>("batchnorm2d_cumulative", 3, nn::BatchNorm::Config{.momentum = std::nullopt});
  golden<nn::BatchNorm2d>("batchnorm2d_noaffine", 3, nn::BatchNorm::Config{.affine = false});
  golden<nn::BatchNorm2d>("batchnorm2d_nostats", 3, nn::BatchNorm::Config{.track_running_stats = false});
  golden<nn::LayerNorm>("layernorm", Shape{5, 6});
  golden<nn::LayerNorm>("layernorm_noaffine", 4, 1e-5, false);
  golden<nn::GroupNorm>("groupnorm", 2, 6);
}

TEST_CASE("nn golden: spectral norm after one training forward against PyTorch (u, v, W/sigma, output, grads)") {
  // PyTorch's repr of a spectral-normed layer is the layer's own; heed's wrapper prints the layer inside.
  {
    Named<nn::SpectralNorm<nn::Linear>> root(5, 4);
    TensorMap f = check_golden("spectral_norm_linear", root, &root.layer.layer);
    check_close(root.layer.layer.weight, f.at("sn_weight"), "sn_weight");
  }
  {
    Named<nn::SpectralNorm<nn::Conv2d>> root(3, 4, 3, nn::Conv2d::Config{.padding = 1});
    TensorMap f = check_golden("spectral_norm_conv2d", root, &root.layer.layer);
    check_close(root.layer.layer.weight, f.at("sn_weight"), "sn_weight");
  }
  {
    Named<nn::SpectralNorm<nn::ConvTranspose2d>> root(3, 2, 2, nn::ConvTranspose2d::Config{.stride = 2});
    CHECK(root.layer.dim == 1);
    TensorMap f = check_golden("spectral_norm_conv_transpose2d", root, &root.layer.layer);
    check_close(root.layer.layer.weight, f.at("sn_weight"), "sn_weight");
  }
}

// ---- gradcheck -------------------------------------------------------------------------------------------

TEST_CASE("nn layers: gradcheck and gradgradcheck of every layer (float64)") {
  int first = 0, second = 0;
  for (const Case& c : table()) {
    INFO("layer case: ", c.name);
    V in = c.inputs();
    CHECK_NOTHROW(gradcheck(c.f, in));
    first++;
    if (c.second_order) {
      CHECK_NOTHROW(gradgradcheck(c.f, in));
      second++;
    }
  }
  MESSAGE("layer gradcheck cases: ", first, ", gradgradcheck cases: ", second);
}

// ---- convolution against its definition ---------------------------------------------------------------------

TEST_CASE("nn conv2d matches the naive loops on odd shapes, grouped, strided, padded and dilated") {
  Generator g(3);
  struct Geo {
    int64_t N, C, H, W, O, kh, kw;
    nn::ConvOptions o;
  };
  std::vector<Geo> geos = {
      {1, 1, 1, 1, 1, 1, 1, {}},
      {2, 3, 7, 5, 4, 3, 2, {}},
      {1, 6, 9, 8, 9, 3, 3, {.stride = {2, 1}, .padding = {1, 2}, .dilation = {1, 2}, .groups = 3}},
      {3, 2, 17, 7, 2, 5, 1, {.stride = 3, .padding = 2, .dilation = 1, .groups = 2}},
      // 1x1: the pointwise path (x permuted, no im2col), plain and grouped; then 1x1 windows it must not take
      {2, 6, 5, 4, 4, 1, 1, {}},
      {3, 6, 4, 3, 9, 1, 1, {.groups = 3}},
      {2, 3, 5, 6, 4, 1, 1, {.stride = 2}},
      {2, 3, 4, 4, 2, 1, 1, {.padding = 1}},
  };
  for (const Geo& q : geos) {
    INFO("x (", q.N, ",", q.C, ",", q.H, ",", q.W, ") weight (", q.O, ",", q.C / q.o.groups, ",", q.kh, ",", q.kw, ")");
    Tensor x = randn({q.N, q.C, q.H, q.W}, float64, &g), w = randn({q.O, q.C / q.o.groups, q.kh, q.kw}, float64, &g);
    Tensor b = randn({q.O}, float64, &g);
    CHECK(allclose(nn::conv2d(x, w, b, q.o), conv2d_reference(x, w, b, q.o), 1e-12, 1e-12));
    // A non-contiguous input gives the same result.
    Tensor xt = x.transpose(2, 3).contiguous().transpose(2, 3);
    CHECK(allclose(nn::conv2d(xt, w, b, q.o), conv2d_reference(x, w, b, q.o), 1e-12, 1e-12));
  }
}

TEST_CASE("nn conv_transpose2d is the adjoint of conv2d: <conv2d(a), b> = <a, conv_transpose2d(b)>") {
  // The same weight tensor read as (O, C/g, kh, kw) by conv2d and as (Cin=O, Cout/g=C/g, kh, kw) by the
  // transposed conv; output_padding picks the one input size of the many that conv2d maps to OH.
  Generator g(4);
  struct Geo {
    int64_t C, H, W, O, k, s, p, d, gr, op;
  };
  for (const Geo& q : std::vector<Geo>{{2, 5, 5, 3, 3, 1, 0, 1, 1, 0}, {4, 8, 7, 6, 3, 2, 1, 1, 2, 1},
                                       {3, 9, 10, 3, 2, 3, 1, 2, 3, 2}, {1, 4, 4, 1, 4, 2, 1, 1, 1, 0}}) {
    INFO("C ", q.C, " H ", q.H, " W ", q.W, " O ", q.O, " k ", q.k, " s ", q.s, " p ", q.p, " d ", q.d, " groups ",
         q.gr);
    Tensor w = randn({q.O, q.C / q.gr, q.k, q.k}, float64, &g);
    Tensor a = randn({2, q.C, q.H, q.W}, float64, &g);
    Tensor ca = nn::conv2d(a, w, Tensor(), {.stride = q.s, .padding = q.p, .dilation = q.d, .groups = q.gr});
    Tensor b = randn(ca.shape(), float64, &g);
    int64_t oh = (q.H + 2 * q.p - q.d * (q.k - 1) - 1) % q.s, ow = (q.W + 2 * q.p - q.d * (q.k - 1) - 1) % q.s;
    Tensor tb = nn::conv_transpose2d(
        b, w, Tensor(), {.stride = q.s, .padding = q.p, .output_padding = {oh, ow}, .groups = q.gr, .dilation = q.d});
    REQUIRE(tb.shape() == a.shape());
    CHECK(dot(ca, b) == doctest::Approx(dot(a, tb)).epsilon(1e-12));
  }
}

TEST_CASE("nn max_pool2d matches the naive loops, including all-negative windows at the padding") {
  Generator g(5);
  for (auto [k, s, p, d] :
       std::vector<std::array<int64_t, 4>>{{2, 2, 0, 1}, {3, 2, 1, 1}, {3, 1, 1, 2}, {4, 3, 2, 1}}) {
    INFO("kernel ", k, " stride ", s, " padding ", p, " dilation ", d);
    Tensor x = randn({2, 3, 9, 7}, float64, &g) - 3.0;  // mostly negative: zero padding would win the max
    CHECK(allclose(nn::max_pool2d(x, k, s, p, d), max_pool2d_reference(x, k, s, p, d), 0, 0));
  }
}

TEST_CASE("nn ConvTranspose2d backward allocates no more than the column buffer beyond its inputs' gradients") {
  // (N,Cin,H,W) = (8,32,14,14) -> (8,16,28,28), kernel 4 stride 2: the columns are Cout·16 x H·W per image.
  nn::ConvTranspose2d up(32, 16, 4, nn::ConvTranspose2d::Config{.stride = 2, .padding = 1});
  Tensor x = randn({8, 32, 14, 14}).requires_grad_();
  Tensor y = up(x);
  Tensor g = randn(y.shape());
  int64_t cols = 8 * (16 * 4 * 4) * (14 * 14) * 4;  // bytes of the float32 columns
  int64_t grads =
      x.numel() * 4 + 8 * up.weight.numel() * 4 + up.weight.numel() * 4 + 16 * 4;  // dx, per-image dW, dW, dbias
  int64_t before = memory_stats().current;
  reset_peak_memory();
  y.backward(g);
  int64_t peak = memory_stats().peak - before;
  MESSAGE("ConvTranspose2d backward peak ", peak, " bytes; columns ", cols, ", gradients ", grads);
  CHECK(peak <= cols + grads + y.numel() * 4);  // + one output-sized temporary (the bias gradient's reduction)
}

// ---- error paths -----------------------------------------------------------------------------------------

TEST_CASE("nn layers: wrong input shapes name the layer and show expected and actual shapes") {
  nn::Linear fc(784, 400);
  CHECK_THROWS_WITH_AS(fc(zeros({32, 785})),
                       "Linear(in_features=784, out_features=400, bias=True): expected input (..., 784), got (32,785)",
                       Error);
  CHECK_THROWS_AS(fc(scalar_tensor(1.0)), Error);
  nn::Conv2d conv(1, 32, 3);
  CHECK_THROWS_WITH_AS(conv(zeros({3, 28, 28})),
                       "Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1)): expected input (N,1,H,W) with H >= 3 and W "
                       ">= 3, got (3,28,28)",
                       Error);
  CHECK_THROWS_AS(conv(zeros({1, 2, 28, 28})), Error);  // channels
  CHECK_THROWS_AS(conv(zeros({1, 1, 2, 28})), Error);   // too small for the kernel
  nn::ConvTranspose2d convt(4, 2, 3);
  CHECK_THROWS_AS(convt(zeros({1, 3, 5, 5})), Error);
  CHECK_THROWS_AS(convt(zeros({4, 5, 5})), Error);
  nn::Embedding emb(10, 3);
  CHECK_THROWS_AS(emb(zeros({2})), Error);  // float indices
  CHECK_THROWS_AS(emb(from_vector<int64_t>({10})), Error);  // out of range
  CHECK_THROWS_AS(nn::Flatten(2)(zeros({3, 4})), Error);
  CHECK_THROWS_AS(nn::Unflatten(1, {2, 3})(zeros({2, 5})), Error);
  CHECK_THROWS_AS(nn::Unflatten(2, {2, 3})(zeros({2, 6})), Error);
  CHECK_THROWS_AS(nn::Unflatten(1, {4, -1})(zeros({2, 6})), Error);
  CHECK_THROWS_AS(nn::MaxPool2d(2)(zeros({1, 4, 4})), Error);
  CHECK_THROWS_AS(nn::MaxPool2d(3)(zeros({1, 1, 2, 2})), Error);
  CHECK_THROWS_AS(nn::AvgPool2d(2)(zeros({1, 4, 4})), Error);
  CHECK_THROWS_AS(nn::AvgPool2d(3)(zeros({1, 1, 2, 2})), Error);
  CHECK_THROWS_AS(nn::AdaptiveAvgPool2d(2)(zeros({4, 4})), Error);
  CHECK_THROWS_AS(nn::Upsample(2)(zeros({4, 4})), Error);
  CHECK_THROWS_AS(nn::BatchNorm1d(3)(zeros({2, 4})), Error);
  CHECK_THROWS_AS(nn::BatchNorm1d(3)(zeros({2, 3, 4, 5})), Error);
  CHECK_THROWS_AS(nn::BatchNorm2d(3)(zeros({2, 3, 4})), Error);
  CHECK_THROWS_WITH_AS(nn::BatchNorm2d(3)(zeros({1, 3, 1, 1})),
                       doctest::Contains("expected more than 1 value per channel"), Error);
  CHECK_THROWS_WITH_AS(nn::LayerNorm(Shape{5, 6})(zeros({2, 6, 5})),
                       "LayerNorm((5, 6), eps=1e-05, elementwise_affine=True): expected input (..., 5,6), got (2,6,5)",
                       Error);
  CHECK_THROWS_AS(nn::GroupNorm(2, 4)(zeros({2, 6, 3})), Error);
  CHECK_THROWS_AS(nn::GroupNorm(2, 4)(zeros({4})), Error);
  nn::SpectralNorm<nn::Linear> sn(3, 2);
  CHECK_THROWS_AS(sn(zeros({2, 4})), Error);
  // The functional forms check too.
  CHECK_THROWS_AS(nn::conv2d(zeros({1, 2, 5, 5}), zeros({3, 2, 3})), Error);            // 3-d weight
  CHECK_THROWS_AS(nn::conv2d(zeros({1, 3, 5, 5}), zeros({3, 2, 3, 3})), Error);         // channels
  CHECK_THROWS_AS(nn::conv2d(zeros({1, 4, 5, 5}), zeros({3, 2, 3, 3}), Tensor(), {.groups = 2}), Error);  // 3 % 2
  CHECK_THROWS_AS(nn::conv2d(zeros({1, 2, 5, 5}), zeros({3, 2, 3, 3}), zeros({4})), Error);  // bias
  CHECK_THROWS_AS(nn::conv2d(zeros({1, 2, 5, 5}), zeros({3, 2, 3, 3}), Tensor(), {.stride = 0}), Error);
  CHECK_THROWS_AS(nn::conv_transpose2d(zeros({1, 2, 5, 5}), zeros({2, 3, 3})), Error);
  CHECK_THROWS_AS(nn::conv_transpose2d(zeros({1, 3, 5, 5}), zeros({3, 2, 3, 3}), Tensor(), {.groups = 2}), Error);
  CHECK_THROWS_AS(nn::conv_transpose2d(zeros({1, 2, 5, 5}), zeros({2, 2, 3, 3}), zeros({3})), Error);
  CHECK_THROWS_AS(nn::conv_transpose2d(zeros({1, 2, 5, 5}), zeros({2, 2, 3, 3}), Tensor(), {.output_padding = 1}),
                  Error);
  CHECK_THROWS_AS(nn::conv_transpose2d(zeros({1, 2, 5, 5}), zeros({2, 2, 0, 3})), Error);
  CHECK_THROWS_AS(nn::conv_transpose2d(zeros({1, 2, 1, 1}), zeros({2, 2, 1, 1}), Tensor(), {.padding = 1}),
                  Error);                                                                  // empty output
  CHECK_THROWS_AS(nn::conv_transpose2d(zeros({1, 3, 5, 5}), zeros({2, 2, 3, 3})), Error);  // channels
  CHECK_THROWS_AS(nn::max_pool2d(zeros({1, 1, 5, 5}), 3, 1, 2), Error);  // padding > kernel/2
  CHECK_THROWS_AS(nn::max_pool2d(zeros({5, 5}), 2), Error);
  CHECK_THROWS_AS(nn::avg_pool2d(zeros({1, 1, 5, 5}), 2, 1, 2), Error);
  CHECK_THROWS_AS(nn::avg_pool2d(zeros({1, 5, 5}), 2), Error);
  CHECK_THROWS_AS(nn::adaptive_avg_pool2d(zeros({1, 1, 5, 5}), 0), Error);
  CHECK_THROWS_AS(nn::adaptive_avg_pool2d(zeros({1, 5, 5}), 2), Error);
  CHECK_THROWS_AS(nn::upsample_nearest(zeros({1, 1, 5, 5}), 0), Error);
  CHECK_THROWS_AS(nn::upsample_nearest(zeros({1, 5, 5}), 2), Error);
}

TEST_CASE("nn layers: invalid constructor arguments throw") {
  CHECK_THROWS_AS(nn::Linear(-1, 3), Error);
  CHECK_THROWS_AS(nn::Embedding(3, -2), Error);
  CHECK_THROWS_AS(nn::Unflatten(1, {2, -1, -1}), Error);
  CHECK_THROWS_AS(nn::Unflatten(1, {2, -3}), Error);
  CHECK_THROWS_AS(nn::Unflatten(1, Shape{}), Error);
  CHECK_THROWS_AS(nn::Dropout(1.5), Error);
  CHECK_THROWS_AS(nn::dropout(ones({2}), -0.1), Error);
  CHECK_THROWS_AS(nn::GELU("erf"), Error);
  CHECK_THROWS_AS(nn::Softplus(0.0), Error);
  CHECK_THROWS_AS(nn::Conv2d(3, 4, 3, nn::Conv2d::Config{.groups = 2}), Error);
  CHECK_THROWS_AS(nn::Conv2d(0, 4, 3), Error);
  CHECK_THROWS_AS(nn::Conv2d(2, 4, 3, nn::Conv2d::Config{.dilation = 0}), Error);
  CHECK_THROWS_AS(nn::ConvTranspose2d(4, 3, 3, nn::ConvTranspose2d::Config{.groups = 2}), Error);
  CHECK_THROWS_AS(nn::ConvTranspose2d(4, 3, 3, nn::ConvTranspose2d::Config{.stride = 2, .output_padding = 2}), Error);
  CHECK_THROWS_AS(nn::ConvTranspose2d(4, 3, 0), Error);
  CHECK_THROWS_AS(nn::MaxPool2d(2, 2, 2), Error);
  CHECK_THROWS_AS(nn::AvgPool2d(3, 1, 2), Error);
  CHECK_THROWS_AS(nn::AdaptiveAvgPool2d(nn::Size2{0, 2}), Error);
  CHECK_THROWS_AS(nn::Upsample(0), Error);
  CHECK_THROWS_AS(nn::BatchNorm2d(0), Error);
  CHECK_THROWS_AS(nn::LayerNorm(Shape{}), Error);
  CHECK_THROWS_AS(nn::LayerNorm(Shape{3, 0}), Error);
  CHECK_THROWS_AS(nn::GroupNorm(3, 4), Error);
  CHECK_THROWS_AS(nn::spectral_norm_init(zeros({3}), 0, 1e-12), Error);
}

// ---- behaviour -------------------------------------------------------------------------------------------

TEST_CASE("nn dropout: seeded, scaled by 1/(1-p), identity in eval, zero gradient where dropped") {
  Tensor x = ones({100000});
  Generator g1(9), g2(9);
  Tensor a = nn::dropout(x, 0.3, true, &g1), b = nn::dropout(x, 0.3, true, &g2);
  CHECK(allclose(a, b, 0, 0));  // the same seed, the same mask
  std::vector<float> v = a.to_vector<float>();
  int64_t kept = 0;
  for (float e : v) {
    CHECK((e == 0.0f || e == doctest::Approx(1.0 / 0.7)));
    kept += e != 0.0f;
  }
  CHECK((double)kept / (double)v.size() == doctest::Approx(0.7).epsilon(0.01));
  CHECK(a.mean().item() == doctest::Approx(1.0).epsilon(0.01));  // E[out] = x
  CHECK(nn::dropout(x, 0.3, false).is_same(x));
  CHECK(nn::dropout(x, 0.0, true).is_same(x));
  CHECK(nn::dropout(x, 1.0, true).sum().item() == 0);

  // The module: the global generator, training mode only.
  nn::Dropout drop(0.5);
  Tensor w = ones({6}).requires_grad_();
  manual_seed(11);
  Tensor y1 = drop(w);
  manual_seed(11);
  Tensor y2 = drop(w);
  CHECK(allclose(y1, y2, 0, 0));
  y1.sum().backward();
  CHECK(allclose(w.grad(), y1.detach(), 0, 0));  // the gradient is the mask times 2, like the output
  drop.eval();
  CHECK(drop(w).is_same(w));
  std::ostringstream os;
  os << drop;
  CHECK(os.str().find("Dropout(p=0.5, inplace=False)") == 0);
}

TEST_CASE("nn Sequential and ModuleList: PyTorch's child names, state dict, typed access, printing") {
  manual_seed(0);
  nn::Sequential seq;
  nn::Linear& first = seq.add<nn::Linear>(4, 3);
  seq.add<nn::ReLU>();
  seq.add(std::make_unique<nn::Linear>(3, 2, false));
  CHECK(seq.size() == 3);
  CHECK(&seq.at<nn::Linear>(0) == &first);
  CHECK(seq[1].type_name() == "ReLU");
  CHECK_THROWS_AS(seq.at<nn::Conv2d>(0), Error);
  CHECK_THROWS_AS(seq[3], Error);
  nn::StateDict sd = seq.state_dict();
  CHECK(sd.size() == 3);
  CHECK(sd.count("0.weight") == 1);
  CHECK(sd.count("0.bias") == 1);
  CHECK(sd.count("2.weight") == 1);
  Tensor x = randn({5, 4});
  Tensor manual = linear(relu(linear(x, first.weight, first.bias)), seq.at<nn::Linear>(2).weight);
  CHECK(allclose(seq(x), manual, 0, 0));
  CHECK(allclose(nn::Sequential()(x), x, 0, 0));  // empty: the identity
  std::ostringstream os;
  os << seq;
  CHECK(os.str().find("Sequential(\n  (0): Linear(in_features=4, out_features=3, bias=True)") == 0);
  CHECK(os.str().find("(1): ReLU()") != std::string::npos);
  seq.eval();
  CHECK(!seq[0].is_training());

  // Nested: a Sequential inside a Sequential names "1.0.weight".
  nn::Sequential outer;
  outer.add<nn::Flatten>();
  nn::Sequential& inner = outer.add<nn::Sequential>();
  inner.add<nn::Linear>(6, 2);
  CHECK(outer.state_dict().count("1.0.weight") == 1);
  CHECK(outer(zeros({2, 2, 3})).shape() == Shape{2, 2});

  nn::ModuleList list;
  for (int i = 0; i < 3; i++) list.add<nn::Linear>(2, 2);
  list.add<nn::LayerNorm>(2);
  CHECK(list.size() == 4);
  CHECK(list.state_dict().count("3.weight") == 1);
  CHECK(list.named_parameters().size() == 8);
  CHECK(list.at<nn::LayerNorm>(3).normalized_shape == Shape{2});
  CHECK_THROWS_AS(list.at<nn::Linear>(3), Error);
  CHECK_THROWS_AS(list[4], Error);
  Tensor h = ones({1, 2});
  for (size_t i = 0; i < 3; i++) h = list.at<nn::Linear>(i)(h);
  CHECK(h.shape() == Shape{1, 2});
}

TEST_CASE("nn layers: extra_repr reads as PyTorch's repr") {
  CHECK(nn::describe(nn::Linear(3, 4, false)) == "Linear(in_features=3, out_features=4, bias=False)");
  CHECK(nn::describe(nn::Unflatten(1, {6})) == "Unflatten(dim=1, unflattened_size=(6,))");
  CHECK(nn::describe(nn::Conv2d(1, 2, nn::Size2{3, 5}, nn::Conv2d::Config{.bias = false})) ==
        "Conv2d(1, 2, kernel_size=(3, 5), stride=(1, 1), bias=False)");
  CHECK(nn::describe(nn::ConvTranspose2d(
            4, 6, 3, nn::ConvTranspose2d::Config{.stride = 2, .padding = 1, .output_padding = 1})) ==
        "ConvTranspose2d(4, 6, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), output_padding=(1, 1))");
  CHECK(nn::describe(nn::MaxPool2d(2)) == "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)");
  CHECK(nn::describe(nn::AdaptiveAvgPool2d(nn::Size2{3, 2})) == "AdaptiveAvgPool2d(output_size=(3, 2))");
  CHECK(nn::describe(nn::Upsample(nn::Size2{2, 3})) == "Upsample(scale_factor=(2.0, 3.0), mode=nearest)");
  CHECK(nn::describe(nn::BatchNorm2d(4, {.momentum = std::nullopt, .affine = false})) ==
        "BatchNorm2d(4, eps=1e-05, momentum=None, affine=False, track_running_stats=True)");
  CHECK(nn::describe(nn::LayerNorm(4, 1e-6, false)) == "LayerNorm((4,), eps=1e-06, elementwise_affine=False)");
  CHECK(nn::describe(nn::GroupNorm(2, 4)) == "GroupNorm(2, 4, eps=1e-05, affine=True)");
  CHECK(nn::describe(nn::Softplus()) == "Softplus(beta=1, threshold=20)");
  CHECK(nn::describe(nn::SpectralNorm<nn::Linear>(3, 4)) ==
        "SpectralNorm(Linear(in_features=3, out_features=4, bias=True), n_power_iterations=1, eps=1e-12, dim=0)");
  for (auto [v, s] : std::vector<std::pair<double, std::string>>{
           {0.01, "0.01"}, {1.0, "1.0"}, {1e-5, "1e-05"}, {0.1, "0.1"}, {0.0001, "0.0001"}, {123.25, "123.25"},
           {1e16, "1e+16"}, {-2.5e-7, "-2.5e-07"}, {0.0, "0.0"}, {1234567.0, "1234567.0"}})
    CHECK(nn::py_float(v) == s);
}

TEST_CASE("nn BatchNorm: train uses batch statistics and updates running ones; eval uses the running ones") {
  nn::BatchNorm1d bn(2, {.momentum = 0.5});
  Tensor x = tensor({{1.0, 10.0}, {3.0, 20.0}, {5.0, 30.0}});
  Tensor y = bn(x);
  // Per column: mean 3 and 20, biased var 8/3 and 200/3 normalise; unbiased 4 and 100 update.
  CHECK(y.at({0, 0}) == doctest::Approx(-2.0 / std::sqrt(8.0 / 3.0 + 1e-5)));
  CHECK(bn.running_mean.to_vector<float>() == std::vector<float>{1.5f, 10.0f});
  CHECK(bn.running_var.to_vector<float>() == std::vector<float>{2.5f, 50.5f});
  CHECK(bn.num_batches_tracked.item() == 1);
  bn.eval();
  Tensor z = bn(x);
  CHECK(z.at({0, 0}) == doctest::Approx((1.0 - 1.5) / std::sqrt(2.5 + 1e-5)));
  CHECK(bn.num_batches_tracked.item() == 1);  // eval leaves the statistics alone
  // The running update is not part of the graph.
  bn.train();
  Tensor xr = x.clone().requires_grad_();
  bn(xr).sum().backward();
  CHECK(!bn.running_mean.requires_grad());
  CHECK(bn.state_dict().size() == 5);
}

TEST_CASE("nn SpectralNorm: PyTorch's state dict names, sigma converges to the top singular value") {
  manual_seed(2);
  nn::SpectralNorm<nn::Linear> sn(6, 5);
  nn::StateDict sd = sn.state_dict();
  CHECK(sd.size() == 4);
  for (const char* k : {"weight_orig", "bias", "weight_u", "weight_v"}) CHECK(sd.count(k) == 1);
  CHECK(sd.at("weight_u").shape() == Shape{5});
  CHECK(sd.at("weight_v").shape() == Shape{6});
  auto names = sn.named_parameters();
  REQUIRE(names.size() == 2);
  CHECK(names[0].first == "bias");
  CHECK(names[1].first == "weight_orig");
  Tensor x = randn({3, 6});
  Tensor u0 = sn.weight_u.clone();
  for (int i = 0; i < 50; i++) sn(x);
  CHECK(!allclose(u0, sn.weight_u));
  // After convergence W/sigma has spectral norm 1: its top singular value, by a long power iteration.
  Tensor w = sn.layer.weight.detach().to(float64);
  Tensor v = ones({6}, float64);
  for (int i = 0; i < 500; i++) {
    v = matmul(w.mT(), matmul(w, v));
    v = v / norm(v).item();
  }
  CHECK(norm(matmul(w, v)).item() == doctest::Approx(1.0).epsilon(1e-4));
  // Eval: no iteration, u and v stay.
  sn.eval();
  Tensor u1 = sn.weight_u.clone();
  sn(x);
  CHECK(allclose(u1, sn.weight_u, 0, 0));
  // Double backward through a spectral-normed conv (the SAGAN critic with a gradient penalty).
  nn::SpectralNorm<nn::Conv2d> conv(1, 2, 3);
  Tensor img = randn({1, 1, 5, 5}).requires_grad_();
  Tensor gx = grad({conv(img).square().sum()}, {img}, {}, true)[0];
  gx.square().sum().backward();
  CHECK(conv.weight_orig.grad().defined());
}

TEST_CASE("nn layers: default initialisation follows PyTorch's distributions") {
  manual_seed(0);
  nn::Linear fc(400, 300);
  double bound = 1.0 / std::sqrt(400.0);
  CHECK(max(abs(fc.weight)).item() <= bound);
  CHECK(max(abs(fc.bias)).item() <= bound);
  CHECK(var(fc.weight.reshape({-1})).item() == doctest::Approx(bound * bound / 3).epsilon(0.02));
  // ConvTranspose2d: fan_in = out_channels/groups·kh·kw (PyTorch reads dim 1 of the (in, out/g, kh, kw) weight).
  nn::ConvTranspose2d ct(64, 8, 4, nn::ConvTranspose2d::Config{.groups = 2});
  CHECK(ct.weight.shape() == Shape{64, 4, 4, 4});
  double b2 = 1.0 / std::sqrt(4.0 * 16.0);
  CHECK(max(abs(ct.weight)).item() <= b2);
  CHECK(max(abs(ct.weight)).item() > 0.95 * b2);
  CHECK(max(abs(ct.bias)).item() <= b2);
  nn::Conv2d c(6, 9, 3, nn::Conv2d::Config{.groups = 3});
  CHECK(c.weight.shape() == Shape{9, 2, 3, 3});
  CHECK(max(abs(c.weight)).item() <= 1.0 / std::sqrt(18.0));
  nn::Embedding emb(1000, 64);
  CHECK(emb.weight.mean().item() == doctest::Approx(0).epsilon(0.01).scale(1));
  CHECK(var(emb.weight.reshape({-1})).item() == doctest::Approx(1.0).epsilon(0.02));
  nn::BatchNorm2d bn(3);
  CHECK(bn.weight.to_vector<float>() == std::vector<float>{1, 1, 1});
  CHECK(bn.bias.to_vector<float>() == std::vector<float>{0, 0, 0});
  CHECK(fc.weight.requires_grad());
  CHECK(fc.weight.is_leaf());
}

// Issue 15: Linear(2^31, 2^31) wrote past a tiny buffer; a size too large for memory said only bad_alloc.
TEST_CASE("Linear, Embedding and Conv2d refuse impossible sizes with the layer's name") {
  CHECK_THROWS_WITH_AS(nn::Linear(1LL << 31, 1LL << 31), doctest::Contains("Linear: shape (2147483648,2147483648)"),
                       Error);
  CHECK_THROWS_WITH_AS(nn::Linear(1LL << 30, 1LL << 30), doctest::Contains("Linear: out of memory allocating"),
                       OutOfMemory);
  CHECK_THROWS_WITH_AS(nn::Embedding(1LL << 40, 1LL << 40), doctest::Contains("Embedding:"), Error);
}
