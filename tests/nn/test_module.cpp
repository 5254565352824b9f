// Tests for nn/module.cpp: registration, traversal order, modes, the state dict and its errors, printing.
#include <doctest/doctest.h>

#include <sstream>

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
  CHECK(names(net.named_parameters()) ==
        std::vector<std::string>{"scale", "block.fc.weight", "block.fc.bias", "block.bn.weight", "block.bn.bias", "head.weight"});
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
