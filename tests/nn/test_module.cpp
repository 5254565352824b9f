// Tests for nn/module.cpp: registration, traversal order, modes, the state dict and its errors, printing.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "heed.h"

using namespace heed;
using namespace heed::nn;

namespace {

struct Block : Module {
  Linear fc{4, 3};
  BatchNorm1d bn{3};
  Block() {
    register_module("fc", fc);
    register_module("bn", bn);
  }
  std::string type_name() const override { return "Block"; }
};

struct Net : Module {
  Tensor scale = ones({1});
  Block block;
  Linear head{3, 2, false};
  Net() {
    register_parameter("scale", scale);
    register_module("block", block);
    register_module("head", head);
  }
  std::string type_name() const override { return "Net"; }
};

std::vector<std::string> names(const NamedTensors& nt) {
  std::vector<std::string> out;
  for (auto& [n, t] : nt) out.push_back(n);
  return out;
}

}  // namespace

TEST_CASE("nn Module: names and order of parameters, buffers and modules follow registration, as PyTorch") {
  Net net;
  CHECK(names(net.named_parameters()) == std::vector<std::string>{"scale", "block.fc.weight", "block.fc.bias",
                                                                  "block.bn.weight", "block.bn.bias", "head.weight"});
  CHECK(names(net.named_buffers()) ==
        std::vector<std::string>{"block.bn.running_mean", "block.bn.running_var", "block.bn.num_batches_tracked"});
  std::vector<std::string> mods;
  for (auto& [n, m] : net.named_modules()) mods.push_back(n);
  CHECK(mods == std::vector<std::string>{"", "block", "block.fc", "block.bn", "head"});
  CHECK(net.children().size() == 2);
  CHECK(net.num_parameters() == 1 + 12 + 3 + 3 + 3 + 6);
  for (const Tensor& p : net.parameters()) CHECK(p.requires_grad());
}

TEST_CASE("nn Module: train/eval reach every sub-module; zero_grad clears every gradient") {
  Net net;
  CHECK(net.block.bn.is_training());
  net.eval();
  CHECK(!net.is_training());
  CHECK(!net.block.bn.is_training());
  net.train();
  CHECK(net.block.fc.is_training());
  net.head(net.block.fc(ones({2, 4}))).sum().backward();
  CHECK(net.head.weight.grad().defined());
  net.zero_grad();
  for (const Tensor& p : net.parameters()) CHECK(!p.grad().defined());
}

TEST_CASE("nn Module: state_dict round trip, in place, and strict errors that list every problem") {
  manual_seed(3);
  Net a, b;
  StateDict sd = a.state_dict();
  CHECK(sd.size() == 9);
  Tensor head_before = b.head.weight;  // optimizers hold this handle: loading must write into it
  b.load_state_dict(sd);
  CHECK(b.head.weight.is_same(head_before));
  CHECK(b.head.weight.to_vector<float>() == a.head.weight.to_vector<float>());
  CHECK(b.block.bn.running_var.to_vector<float>() == a.block.bn.running_var.to_vector<float>());

  StateDict bad = sd;
  bad.erase("block.fc.bias");
  bad["extra.weight"] = zeros({1});
  bad["head.weight"] = zeros({5, 5});
  std::string msg;
  try {
    b.load_state_dict(bad);
  } catch (const StateDictError& e) {
    msg = e.what();
  }
  CHECK(msg.find("missing keys: block.fc.bias;") != std::string::npos);
  CHECK(msg.find("unexpected keys: extra.weight;") != std::string::npos);
  CHECK(msg.find("head.weight: expected (2,3) float32, got (5,5) float32") != std::string::npos);
  // Non-strict ignores missing and unexpected keys, but never a shape mismatch.
  StateDict partial{{"head.weight", zeros({2, 3})}, {"nonsense", ones({1})}};
  CHECK_NOTHROW(b.load_state_dict(partial, false));
  CHECK(b.head.weight.sum().item() == 0);
  CHECK_THROWS_AS(b.load_state_dict({{"head.weight", zeros({3, 3})}}, false), StateDictError);
  CHECK_THROWS_AS(b.load_state_dict({{"head.weight", zeros({2, 3}, float64)}}, false), StateDictError);
}

TEST_CASE("nn Module: to(float64) converts parameters and buffers, keeping them trainable leaves") {
  Net net;
  net.to(float64);
  for (auto& [n, p] : net.named_parameters()) {
    INFO(n);
    CHECK(p.dtype() == float64);
    CHECK(p.requires_grad());
    CHECK(p.is_leaf());
  }
  CHECK(net.block.bn.running_mean.dtype() == float64);
  CHECK(net.block.bn.num_batches_tracked.dtype() == int64);  // counts stay integers
  CHECK(net.head(ones({1, 3}, float64)).dtype() == float64);
}

TEST_CASE("nn Module: printing shows the tree, each parameter's shape and the total count") {
  Net net;
  std::ostringstream os;
  os << net;
  std::string s = os.str();
  CHECK(s.find("Net(") == 0);
  CHECK(s.find("(block): Block(") != std::string::npos);
  CHECK(s.find("(fc): Linear(in_features=4, out_features=3, bias=True)  weight (3,4) bias (3)") != std::string::npos);
  CHECK(s.find("scale (1)") != std::string::npos);
  CHECK(s.find("# 28 parameters") != std::string::npos);
}

// ---- calling a module: model(x) is model.forward(x) ---------------------------------------------------------
namespace {
// A user's struct, as a PyTorch user writes one: no operator() of its own.
struct TwoLayer : Module {
  Linear fc1{4, 8}, fc2{8, 2};
  TwoLayer() {
    register_module("fc1", fc1);
    register_module("fc2", fc2);
  }
  Tensor forward(const Tensor& x) { return fc2(relu(fc1(x))); }
};
// A forward of two tensors that returns a struct still compiles beside the virtual forward(const Tensor&).
struct Pair {
  Tensor sum, diff;
};
struct TwoInputs : Module {
  Pair forward(const Tensor& a, const Tensor& b) { return {a + b, a - b}; }
};
struct Derived : TwoLayer {};  // inherits a callable forward
}  // namespace

TEST_CASE("modules are callable: model(x) calls the user's forward(const Tensor&)") {
  TwoLayer model;
  Tensor x = randn({3, 4});
  CHECK(allclose(model(x), model.forward(x)));
  CHECK(model(x).shape() == Shape{3, 2});
  Derived d;
  CHECK(d(x).shape() == Shape{3, 2});
  Module& base = model;  // through a base reference too (virtual dispatch)
  CHECK(allclose(base(x), model.forward(x)));
  Sequential seq;
  seq.add<Linear>(4, 3);
  seq.add<ReLU>();
  CHECK(seq(x).shape() == Shape{3, 3});
  TwoInputs two;
  CHECK(two.forward(x, x).diff.sum().item() == 0.0);
  // Without a forward(const Tensor&), calling it says so and names the C++ type.
  CHECK_THROWS_WITH_AS(two(x), doctest::Contains("TwoInputs"), Error);
  CHECK_THROWS_WITH_AS(two(x), doctest::Contains("m.forward(...)"), Error);
  MultiheadAttention mha(8, 2, {.batch_first = true});
  Tensor q = randn({2, 5, 8});
  CHECK(mha(q, q, q).out.shape() == Shape{2, 5, 8});
}

// ---- issue 14, item 7: constructors take their arguments in one order, and a Config is short to write ------

TEST_CASE("nn constructors: positional encodings take (d_model, max_len), as every width-then-length constructor") {
  SinusoidalPositionalEncoding sin_pe(8, 16);
  LearnedPositionalEncoding learned(8, 16);
  CHECK(sin_pe.pe.shape() == Shape{16, 8});  // (max_len, E)
  CHECK(learned.weight.shape() == Shape{16, 8});
  CHECK(learned(zeros({2, 16, 8})).shape() == Shape{2, 16, 8});
  CHECK_THROWS_AS(learned(zeros({2, 17, 8})), Error);

  // The convention, read off the headers: no constructor in nn/ takes a length before the width.
  for (const char* header : {"nn/transformer.h", "nn/linear.h", "nn/attention.h", "nn/norm.h", "nn/conv.h"}) {
    std::ifstream f(std::string(HEED_SOURCE_DIR) + "/" + header);
    REQUIRE(f);
    std::string line;
    while (std::getline(f, line)) {
      size_t len = line.find("int64_t max_len"), width = line.find("int64_t d_model");
      if (len != std::string::npos && width != std::string::npos) {
        CAPTURE(header);
        CAPTURE(line);
        CHECK(width < len);
      }
    }
  }
}

TEST_CASE("nn constructors: AvgPool2d and avg_pool2d take nn.AvgPool2d's positional order (ceil_mode 4th)") {
  Tensor x = ones({1, 1, 2, 2});
  // PyTorch's AvgPool2d(2, 2, 1, False): ceil_mode=False, and count_include_pad keeps its default True.
  CHECK(AvgPool2d(2, 2, 1, false)(x).at({0, 0, 0, 0}) == doctest::Approx(0.25));
  CHECK(avg_pool2d(x, 2, 2, 1, false, false).at({0, 0, 0, 0}) == doctest::Approx(1.0));
  std::string message;
  try {
    AvgPool2d pool(2, 2, 0, true);
  } catch (const Error& e) {
    message = e.what();
  }
  CHECK(message.find("AvgPool2d: ceil_mode=true is not supported") == 0);
  CHECK_THROWS_AS(avg_pool2d(x, 2, 2, 0, true), Error);
}

// A user's block with a Config, as the transformer LM has.
struct ConfiguredBlock : Module {
  struct Config {
    int64_t d_model = 8;
    int64_t nhead = 2;
  };
  Linear fc;
  explicit ConfiguredBlock(const Config& c) : fc(c.d_model, c.d_model) { register_module("fc", fc); }
  Tensor forward(const Tensor& x) { return fc(x); }
};

TEST_CASE("nn containers: add<M>(args..., {.field = v}) takes a braced Config as the constructor does") {
  Sequential seq;
  seq.add<Conv2d>(1, 4, 3, {.stride = 2, .padding = 1});
  seq.add<ConfiguredBlock>({.d_model = 5});  // acts on the last dim (W = 5 after the stride-2 conv of 10)
  CHECK(seq(zeros({1, 1, 10, 10})).shape() == Shape{1, 4, 5, 5});
  CHECK(seq.at<Conv2d>(0).config.stride.h == 2);

  ModuleList layers;
  layers.add<TransformerEncoderLayer>(16, 2, {.dim_feedforward = 32, .dropout = 0.0, .batch_first = true});
  layers.add<TransformerEncoderLayer>(16, 2);  // PyTorch's defaults, as nn.TransformerEncoderLayer(16, 2)
  layers.add<MultiheadAttention>(16, 2, {.batch_first = true});
  CHECK(layers.at<TransformerEncoderLayer>(0).linear1.out_features == 32);
  CHECK(layers.at<TransformerEncoderLayer>(1).config.dim_feedforward == 2048);
  CHECK(layers.at<TransformerEncoderLayer>(0)(zeros({2, 3, 16})).shape() == Shape{2, 3, 16});
  CHECK(layers.at<MultiheadAttention>(2).config.batch_first);
}
