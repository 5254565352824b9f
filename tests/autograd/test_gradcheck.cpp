// The gradcheck table: every differentiable op, with sample inputs, checked against finite differences
// in float64 (gradcheck), and its backward checked the same way (gradgradcheck) where it supports double
// backward. A last test fails if an op is registered (autograd/node.h) but no case here exercises it.
#include <doctest/doctest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <unordered_set>

#include "heed.h"
#include "tensor/kernels/flash_attention.h"
#include "tensor/kernels/kernels.h"

using namespace heed;

namespace {

Generator gen(2024);
// A float64 leaf with standard normal values.
Tensor R(const Shape& s) { return randn(s, float64, &gen).requires_grad_(); }
// Values kept at least 0.2 away from 0, where relu, abs and friends have their kink.
Tensor away(const Shape& s) {
  NoGradGuard g;
  Tensor r = randn(s, float64, &gen);
  return (sign(r) * (abs(r) + 0.2)).detach().requires_grad_();
}
Tensor positive(const Shape& s) {
  NoGradGuard g;
  return (abs(randn(s, float64, &gen)) + 0.5).detach().requires_grad_();
}
// A non-contiguous leaf: the transpose of a (s[1], s[0]) tensor.
Tensor NC(const Shape& s) {
  Tensor t = randn({s[1], s[0]}, float64, &gen);
  return t.transpose(0, 1).detach().requires_grad_();
}
// Distinct values 0.37·k in a scrambled order (no ties), so that max/min pick one element and finite
// differences agree with the analytic gradient.
Tensor distinct(const Shape& s, double shift = 0) {
  int64_t n = numel_of(s);
  std::vector<double> out(n);
  for (int64_t i = 0; i < n; i++) out[i] = 0.37 * (double)((i * 7 + 3) % n) + shift;  // 7 is coprime to n here
  return from_vector(out, s).requires_grad_();
}

struct Case {
  std::string name;
  std::function<std::vector<Tensor>()> inputs;
  TensorFn f;
  bool second_order = true;
  GradcheckOptions opts = {};
};

Tensor I(std::vector<int64_t> v, Shape s = {}) {
  return s.empty() ? from_vector<int64_t>(v) : from_vector<int64_t>(v, s);
}

std::vector<Case> table() {
  using V = std::vector<Tensor>;
  return {
      // unary
      {"neg",
       [] {
         return V{NC({3, 4})};
       },
       [](const V& x) { return -x[0]; }},
      {"exp",
       [] {
         return V{R({2, 3})};
       },
       [](const V& x) { return exp(x[0]); }},
      {"log", [] { return V{positive({5})}; }, [](const V& x) { return log(x[0]); }},
      {"sqrt", [] { return V{positive({5})}; }, [](const V& x) { return sqrt(x[0]); }},
      {"rsqrt", [] { return V{positive({5})}; }, [](const V& x) { return rsqrt(x[0]); }},
      {"abs",
       [] {
         return V{away({2, 3})};
       },
       [](const V& x) { return abs(x[0]); }},
      {"sign", [] { return V{away({4})}; }, [](const V& x) { return sign(x[0]) * x[0]; }},
      {"tanh",
       [] {
         return V{NC({3, 2})};
       },
       [](const V& x) { return tanh(x[0]); }},
      {"sigmoid", [] { return V{R({4})}; }, [](const V& x) { return sigmoid(x[0]); }},
      {"relu",
       [] {
         return V{away({2, 3})};
       },
       [](const V& x) { return relu(x[0]); }},
      {"leaky_relu", [] { return V{away({5})}; }, [](const V& x) { return leaky_relu(x[0], 0.2); }},
      {"elu", [] { return V{away({5})}; }, [](const V& x) { return elu(x[0], 1.3); }},
      {"gelu", [] { return V{R({5})}; }, [](const V& x) { return gelu(x[0]); }},
      {"gelu_tanh", [] { return V{R({5})}; }, [](const V& x) { return gelu(x[0], true); }},
      {"silu", [] { return V{R({5})}; }, [](const V& x) { return silu(x[0]); }},
      {"softplus", [] { return V{R({5})}; }, [](const V& x) { return softplus(x[0]); }},
      {"erf", [] { return V{R({5})}; }, [](const V& x) { return erf(x[0]); }},
      {"pow_scalar", [] { return V{positive({4})}; },
       [](const V& x) { return pow(x[0], 2.5) + pow(x[0], -1.5) + x[0].square(); }},
      {"clamp",
       [] {
         return V{tensor({-2.0, -0.3, 0.1, 0.6, 3.0}, float64).requires_grad_()};
       },
       [](const V& x) { return clamp(x[0], -1.0, 1.0); }},
      // binary, broadcasting
      {"add",
       [] {
         return V{R({3, 1}), R({1, 4})};
       },
       [](const V& x) { return x[0] + x[1]; }},
      {"sub",
       [] {
         return V{NC({3, 4}), R({4})};
       },
       [](const V& x) { return x[0] - x[1]; }},
      {"mul",
       [] {
         return V{R({2, 3}), R({})};
       },
       [](const V& x) { return x[0] * x[1]; }},
      {"div",
       [] {
         return V{R({2, 3}), away({3})};
       },
       [](const V& x) { return x[0] / x[1]; }},
      {"pow",
       [] {
         return V{positive({2, 3}), R({3})};
       },
       [](const V& x) { return pow(x[0], x[1]); }},
      {"maximum",
       [] {
         return V{distinct({2, 3}), full({1, 3}, 1.0, float64).requires_grad_()};
       },
       [](const V& x) { return maximum(x[0], x[1]); }},
      {"minimum",
       [] {
         return V{distinct({6}), distinct({6}, -1.0)};
       },
       [](const V& x) { return minimum(x[0], x[1]); }},
      {"where",
       [] {
         return V{R({2, 3}), R({3})};
       },
       [](const V& x) {
         return where(tensor({1.0, 0.0, 1.0}, float64) > 0.5, x[0], x[1]);
       }},
      {"masked_fill",
       [] {
         return V{R({2, 3})};
       },
       [](const V& x) {
         return masked_fill(x[0], tensor({0.0, 1.0, 0.0}, float64) > 0.5, 2.0);
       }},
      // reductions
      {"sum",
       [] {
         return V{NC({3, 4})};
       },
       [](const V& x) { return sum(x[0], {1}, true) * sum(x[0]); }},
      {"mean",
       [] {
         return V{R({2, 3, 4})};
       },
       [](const V& x) {
         return mean(x[0], {0, 2});
       }},
      {"max_dim",
       [] {
         return V{distinct({3, 4})};
       },
       [](const V& x) { return max(x[0], 1).first + min(x[0], 0, true).first.sum(); }},
      {"max_all",
       [] {
         return V{distinct({3, 4})};
       },
       [](const V& x) { return max(x[0]) * min(x[0]); }},
      {"max_all ties",
       [] {
         return V{tensor({1.0, 3.0, 3.0, 2.0}, float64).requires_grad_()};
       },
       [](const V& x) { return max(x[0]); },
       false,
       {.eps = 1e-6, .atol = 1e-5, .rtol = 1e-3}},
      {"amax",
       [] {
         return V{distinct({3, 4})};
       },
       [](const V& x) { return amax(x[0], 0, true); }},
      {"var",
       [] {
         return V{R({3, 5})};
       },
       [](const V& x) { return var(x[0], 1).sum() * heed::std(x[0], 0, 0).sum() + var(x[0]); }},
      {"logsumexp",
       [] {
         return V{R({3, 4})};
       },
       [](const V& x) { return logsumexp(x[0], 1); }},
      {"softmax",
       [] {
         return V{NC({3, 4})};
       },
       [](const V& x) { return softmax(x[0], 1) * softmax(x[0], 0); }},
      {"log_softmax",
       [] {
         return V{R({3, 4})};
       },
       [](const V& x) { return log_softmax(x[0], -1); }},
      {"norm",
       [] {
         return V{R({3, 2})};
       },
       [](const V& x) { return norm(x[0]); }},
      {"sum_to_size",
       [] {
         return V{R({2, 3, 4})};
       },
       [](const V& x) {
         return sum_to_size(x[0], {3, 1});
       }},
      // views
      {"view",
       [] {
         return V{R({2, 6})};
       },
       [](const V& x) {
         return x[0].view({3, 4}).reshape({4, 3}).flatten();
       }},
      {"permute",
       [] {
         return V{R({2, 3, 4})};
       },
       [](const V& x) {
         return x[0].permute({2, 0, 1}).contiguous() * 2.0;
       }},
      {"transpose",
       [] {
         return V{R({2, 3})};
       },
       [](const V& x) { return matmul(x[0].transpose(0, 1), x[0]); }},
      {"expand",
       [] {
         return V{R({3, 1})};
       },
       [](const V& x) {
         return x[0].expand({2, 3, 4}) * arange(0, 4, 1, float64);
       }},
      {"slice",
       [] {
         return V{R({4, 6})};
       },
       [](const V& x) { return x[0].slice(0, 0, 4, 2).slice(1, 1, 6, 2) * x[0].narrow(0, 1, 2).slice(1, -3, 100); }},
      {"select",
       [] {
         return V{R({4, 3})};
       },
       [](const V& x) { return x[0].select(0, 2) * x[0].select(1, -1).sum(); }},
      {"squeeze",
       [] {
         return V{R({3, 1})};
       },
       [](const V& x) { return x[0].squeeze().unsqueeze(0).squeeze(0) * 3.0; }},
      {"slice_backward",
       [] {
         return V{R({2, 3})};
       },
       [](const V& x) {
         // The gradient of a slice, recorded with create_graph, is a slice_backward node.
         Tensor base = ones({2, 6}, float64).requires_grad_();
         return grad({(base.slice(1, 0, 6, 2) * x[0]).sum()}, {base}, {}, true)[0];
       }},
      {"contiguous",
       [] {
         return V{NC({3, 4})};
       },
       [](const V& x) { return x[0].contiguous(); }},
      {"clone", [] { return V{R({3})}; }, [](const V& x) { return x[0].clone() * x[0]; }},
      {"to",
       [] { return V{R({3})}; },
       [](const V& x) { return x[0].to(float32).to(float64); },
       true,
       {.eps = 1e-2, .atol = 1e-5, .rtol = 1e-3}},
      // indexing and joining
      {"index_select",
       [] {
         return V{R({4, 3})};
       },
       [](const V& x) {
         return index_select(x[0], 0, I({3, 0, 3}));
       }},
      {"index_add",
       [] {
         return V{R({4, 3}), R({2, 3})};
       },
       [](const V& x) {
         return index_add(x[0], 0, I({1, 1}), x[1]);
       }},
      {"gather",
       [] {
         return V{R({3, 4})};
       },
       [](const V& x) {
         return gather(x[0], 1, I({0, 3, 3, 1, 2, 2}, {3, 2}));
       }},
      {"scatter_add",
       [] {
         return V{R({3, 4}), R({3, 3})};
       },
       [](const V& x) {
         return scatter_add(x[0], 1, I({0, 3, 3, 1, 2, 2}, {3, 2}), x[1]);
       }},
      {"cat",
       [] {
         return V{R({2, 3}), NC({1, 3})};
       },
       [](const V& x) {
         return cat({x[0], x[1], x[0]}, 0);
       }},
      {"stack/split/chunk",
       [] {
         return V{R({2, 4})};
       },
       [](const V& x) {
         auto p = split(x[0], 3, 1);
         auto c = chunk(x[0], 2, 0);
         return stack({c[0].squeeze(0), c[1].squeeze(0) * 2.0}, 1).sum() + p[1].sum() * p[0].sum();
       }},
      {"split by sizes",
       [] {
         return V{R({2, 5})};
       },
       [](const V& x) {
         auto p = split(x[0], std::vector<int64_t>{1, 3, 1}, 1);
         return p[1] * p[0] + p[2];
       }},
      // sorting: the values, gathered at the sorted indices
      {"sort",
       [] {
         return V{NC({4, 3})};
       },
       [](const V& x) { return sort(x[0], 0, true).first * x[0]; }},
      {"topk",
       [] {
         return V{R({3, 5})};
       },
       [](const V& x) { return topk(x[0], 2).first + topk(x[0], 2, 0, false).first.sum(); }},
      // linear algebra
      {"matmul",
       [] {
         return V{R({2, 1, 3, 4}), NC({4, 2})};
       },
       [](const V& x) { return matmul(x[0], x[1]); }},
      {"matmul transposed",
       [] {
         return V{NC({3, 4}), NC({4, 2})};
       },
       [](const V& x) { return matmul(x[0], x[1]); }},
      {"matmul shared left",
       [] {
         return V{R({1, 3, 4}), R({2, 4, 5}), R({4, 3})};
       },
       [](const V& x) { return matmul(x[0], x[1]) + matmul(x[2].mT(), x[1]); }},  // row- and column-major
      {"matmul batched",
       [] {
         return V{R({2, 3, 4}), R({2, 4, 2})};
       },
       [](const V& x) { return matmul(x[0], x[1]); }},
      {"matmul vectors",
       [] {
         return V{R({3}), R({3, 2}), R({2})};
       },
       [](const V& x) { return matmul(x[0], x[1]) * matmul(x[1], x[2]).sum() + matmul(x[0], x[0]); }},
      {"linear",
       [] {
         return V{R({2, 3, 4}), R({5, 4}), R({5})};
       },
       [](const V& x) { return linear(x[0], x[1], x[2]); }},
      // convolution as matrix multiply
      {"im2col",
       [] {
         return V{R({2, 2, 5, 4})};
       },
       [](const V& x) {
         return im2col(x[0], {.kh = 3, .kw = 2, .sh = 2, .sw = 1, .ph = 1, .pw = 0, .dh = 1, .dw = 2});
       }},
      {"col2im",
       [] {
         return V{R({1, 2 * 2 * 2, 3 * 5})};
       },
       [](const V& x) { return col2im(x[0], 2, 4, 4, {.kh = 2, .kw = 2, .sh = 1, .sw = 1, .ph = 0, .pw = 1}); }},
      {"im2col batched",
       [] {
         return V{R({2, 2, 5, 4})};
       },
       [](const V& x) {
         return heed::im2col(x[0], {.kh = 3, .kw = 2, .sh = 2, .sw = 1, .ph = 1, .pw = 0, .dh = 1, .dw = 2},
                       kernels::Columns::Batched);
       }},
      {"col2im batched",
       [] {
         return V{R({2 * 2 * 2, 2, 3 * 5})};
       },
       [](const V& x) {
         return heed::col2im(x[0], 2, 4, 4, {.kh = 2, .kw = 2, .sh = 1, .sw = 1, .ph = 0, .pw = 1},
                       kernels::Columns::Batched);
       }},
      // the fused attention kernel (first order only: its backward is a raw kernel)
      {"flash_attention",
       [] {
         return V{R({2, 3, 4}), R({2, 5, 4}), R({2, 5, 3})};
       },
       [](const V& x) { return flash_attention(x[0], x[1], x[2], {.scale = 0.5, .causal = true}); }, false},
      {"flash_attention_packed",
       [] {
         return V{R({2, 5, 3 * 2 * 3})};
       },  // (B, T, 3·NH·D), NH = 2, D = 3
       [](const V& x) { return flash_attention_packed(x[0], 2, {.scale = 0.5, .causal = true}); }, false},
      // normalisation (a fused op whose create_graph backward is heed ops, so second order too)
      {"layer_norm",
       [] {
         return V{R({3, 2, 4}), R({2, 4}), R({2, 4})};
       },
       [](const V& x) {
         return layer_norm(x[0], {2, 4}, x[1], x[2]);
       }},
      {"layer_norm (no affine)",
       [] {
         return V{R({5, 3})};
       },
       [](const V& x) { return layer_norm(x[0], {3}, {}, {}, 0.1); }},
      {"layer_norm (nn::LayerNorm)",
       [] {
         return V{NC({4, 3}), R({3}), R({3})};
       },
       [](const V& x) {
         nn::LayerNorm ln(3);
         ln.weight = x[1], ln.bias = x[2];
         return ln(x[0]);
       }},
      // the fused losses (autograd/ops_loss.cpp; their create_graph backwards are heed ops, so second order too)
      {"binary_cross_entropy",
       [] {
         return V{sigmoid(R({3, 4})).detach().requires_grad_(), sigmoid(R({3, 4})).detach().requires_grad_()};
       },
       [](const V& x) { return nn::binary_cross_entropy(x[0], x[1], {.reduction = nn::Reduction::None}); }},
      {"binary_cross_entropy_elementwise",
       [] {
         return V{sigmoid(R({2, 5})).detach().requires_grad_(), sigmoid(R({2, 5})).detach().requires_grad_()};
       },
       [](const V& x) { return binary_cross_entropy_elementwise(x[0], x[1]); }},
      {"binary_cross_entropy (constant target)", [] { return V{sigmoid(R({7})).detach().requires_grad_()}; },
       [](const V& x) {
         return nn::binary_cross_entropy(x[0], tensor({0, 1, 0.25, 1, 0, 0.5, 1}, float64));
       }},
      {"cross_entropy",
       [] {
         return V{R({5, 4})};
       },
       [](const V& x) {
         nn::CrossEntropyOptions o{.label_smoothing = 0.1, .reduction = nn::Reduction::None};
         return nn::cross_entropy(x[0], I({0, 3, 1, -100, 2}), o);
       }},
      {"remainder",
       [] {
         return V{R({3, 4}), positive({4})};
       },
       [](const V& x) { return remainder(x[0], x[1]) + x[0] % 0.7; }},
      {"checkpoint",
       [] {
         return V{R({2, 3}), R({3, 3})};
       },
       [](const V& x) { return checkpoint([](const V& in) { return tanh(matmul(in[0], in[1])); }, x); }, false},
  };
}

// Every op name in the graph behind t (iteratively, as the engine walks it).
void collect_ops(const Tensor& t, std::set<std::string>& seen) {
  if (!t.grad_fn()) return;
  std::vector<Node*> stack{t.grad_fn().get()};
  std::unordered_set<Node*> visited;
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    if (!visited.insert(n).second) continue;
    if (!n->is_accumulate()) seen.insert(n->name);
    for (auto& c : n->next)
      if (c) stack.push_back(c.get());
  }
}

}  // namespace

TEST_CASE("gradcheck and gradgradcheck over the op table (float64)") {
  int first = 0, second = 0;
  for (const Case& c : table()) {
    INFO("op case: ", c.name);
    std::vector<Tensor> in = c.inputs();
    CHECK_NOTHROW(gradcheck(c.f, in, c.opts));
    first++;
    if (c.second_order) {
      CHECK_NOTHROW(gradgradcheck(c.f, in, c.opts));
      second++;
    }
  }
  MESSAGE("gradcheck cases: ", first, ", gradgradcheck cases: ", second);
}

TEST_CASE("every registered differentiable op is covered by the table") {
  std::set<std::string> seen;
  for (const Case& c : table()) {
    std::vector<Tensor> in = c.inputs();
    collect_ops(c.f(in), seen);
  }
  std::set<std::string> registered(registered_ops().begin(), registered_ops().end());
  for (const std::string& op : registered) {
    INFO("registered op with no gradcheck case: ", op);
    CHECK(seen.count(op) == 1);
  }
  for (const std::string& op : seen) {
    INFO("op in a graph but not registered: ", op);
    CHECK(registered.count(op) == 1);
  }
  MESSAGE("registered differentiable ops: ", registered.size());
}

TEST_CASE("gradcheck reports the input, element and both values on a wrong backward") {
  // A deliberately wrong op: forward x^2, backward claims 3x.
  TensorFn wrong = [](const std::vector<Tensor>& x) {
    Tensor out = x[0].detach() * x[0].detach();
    auto backward = [x0 = x[0]](const Tensor& d, const Tensor&) { return std::vector<Tensor>{d * x0 * 3.0}; };
    return attach("sum", out, {x[0]}, backward, {});
  };
  Tensor x = tensor({1.0, 2.0}, float64).requires_grad_();
  CHECK_THROWS_WITH_AS(gradcheck(wrong, {x}), doctest::Contains("input 0 (shape (2)), element 0, output element 0"),
                       GradcheckError);
  CHECK_THROWS_WITH_AS(gradcheck(wrong, {x}), doctest::Contains("analytic 3 vs numeric 2"), GradcheckError);
  CHECK_THROWS_AS(gradcheck([](const std::vector<Tensor>& v) { return v[0] * 2.0; }, {ones({2}).requires_grad_()}),
                  GradcheckError);
}

// ---- the table against tensor/tensor.h ------------------------------------------------------------------
// The registry test above starts from the ops that call register_ops. This one starts from the header a
// user reads: every function declared under "differentiable ops" in tensor/tensor.h must have a row here,
// named after it or calling it, so a new op cannot be declared and shipped without a gradcheck.

namespace {

std::string read_source(const std::string& relative) {
  std::ifstream in(std::string(HEED_SOURCE_DIR) + "/" + relative);
  REQUIRE_MESSAGE(in.good(), "cannot read ", relative);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The functions declared in tensor.h between "// ---- differentiable ops" and "// C++ operators", except
// under a sub-heading that says "not differentiable". Sub-headings are lines that start with "// ".
std::set<std::string> declared_differentiable_ops(const std::string& header) {
  static const std::regex decl(R"(^(?:Tensor|std::pair<Tensor, Tensor>|std::vector<Tensor>) (\w+)\()");
  std::set<std::string> names;
  std::istringstream lines(header);
  bool inside = false, skip = false;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("// ---- differentiable ops", 0) == 0) inside = true;
    else if (line.rfind("// C++ operators", 0) == 0) break;
    else if (!inside) continue;
    else if (line.rfind("// ", 0) == 0) skip = line.find("not differentiable") != std::string::npos;
    else if (std::smatch m; !skip && std::regex_search(line, m, decl)) names.insert(m[1]);
  }
  return names;
}

}  // namespace

TEST_CASE("every differentiable op declared in tensor/tensor.h has a row in the gradcheck table") {
  const std::set<std::string> declared = declared_differentiable_ops(read_source("tensor/tensor.h"));
  CHECK(declared.count("exp") == 1);  // the parse found the section
  CHECK(declared.count("eq") == 0);   // and skipped the comparisons
  // argmax and argmin return int64 indices: nothing to differentiate.
  const std::set<std::string> not_differentiable = {"argmax", "argmin"};
  const std::string table_source = read_source("tests/autograd/test_gradcheck.cpp");
  for (const std::string& op : declared) {
    if (not_differentiable.count(op)) continue;
    INFO("declared in tensor/tensor.h but no gradcheck row names or calls it: ", op);
    const bool named = table_source.find("{\"" + op + "\"") != std::string::npos;
    const bool called = std::regex_search(table_source, std::regex("\\b" + op + "\\("));
    CHECK((named || called));
  }
}

TEST_CASE("every op method of Tensor in tensor/tensor.h is also a free function there") {
  // "ops as methods (same as the free functions below)": x.exp() is heed::exp(x), defined in one line in
  // autograd/ops_view.cpp, so a method can never be an op of its own that the table above misses.
  const std::string header = read_source("tensor/tensor.h");
  static const std::regex free_fn(R"((?:^|\n)(?:Tensor|std::pair<Tensor, Tensor>) (\w+)\()");
  std::set<std::string> free;
  for (std::sregex_iterator it(header.begin(), header.end(), free_fn), end; it != end; ++it) free.insert((*it)[1]);
  const size_t begin = header.find("// ---- ops as methods"), stop = header.find(" private:", begin);
  REQUIRE(begin != std::string::npos);
  REQUIRE(stop != std::string::npos);
  const std::string methods = header.substr(begin, stop - begin);
  static const std::regex method(R"(\n  Tensor (\w+)\()");
  int count = 0;
  for (std::sregex_iterator it(methods.begin(), methods.end(), method), end; it != end; ++it, ++count) {
    const std::string name = (*it)[1];
    INFO("Tensor::", name, " has no free function of the same name in tensor/tensor.h");
    CHECK(free.count(name) == 1);
  }
  CHECK(count > 10);
}
