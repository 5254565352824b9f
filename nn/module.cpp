// module.cpp: registration, traversal, modes and the state dict.
#include "nn/module.h"

#include <cxxabi.h>

#include <charconv>
#include <cstdlib>
#include <cmath>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <typeinfo>

#include "tensor/kernels/kernels.h"

namespace heed::nn {

// ---- printing -------------------------------------------------------------------------------------------
// Python prints a float with the fewest digits that read back to the same value, in fixed notation when
// the decimal exponent is in [-4, 16) and in scientific notation otherwise: 0.01, 1.0, 1e-05, 1e+16.
// std::to_chars gives the same shortest digits; only the layout differs, so we lay them out as Python does.
std::string py_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);  // "-1.25e-05"
  std::string s(buf, res.ptr);
  std::string sign = s[0] == '-' ? "-" : "";
  if (!sign.empty()) s.erase(0, 1);
  size_t e_pos = s.find('e');
  int exp10 = std::stoi(s.substr(e_pos + 1));
  std::string digits;
  for (char c : s.substr(0, e_pos))
    if (c != '.') digits += c;
  if (exp10 < -4 || exp10 >= 16) {
    std::string mant = digits.substr(0, 1) + (digits.size() > 1 ? "." + digits.substr(1) : "");
    std::string e = std::to_string(std::abs(exp10));
    if (e.size() < 2) e = "0" + e;
    return sign + mant + "e" + (exp10 < 0 ? "-" : "+") + e;
  }
  if (exp10 < 0) return sign + "0." + std::string(-exp10 - 1, '0') + digits;
  if ((int)digits.size() <= exp10 + 1) return sign + digits + std::string(exp10 + 1 - digits.size(), '0') + ".0";
  return sign + digits.substr(0, exp10 + 1) + "." + digits.substr(exp10 + 1);
}


Tensor& Module::register_parameter(const std::string& name, Tensor& t) {
  if (t.defined()) t.requires_grad_(true);
  params_.push_back({name, &t});
  return t;
}

Tensor& Module::register_buffer(const std::string& name, Tensor& t) {
  buffers_.push_back({name, &t});
  return t;
}

void Module::add_child(const std::string& name, Module* m) { children_.push_back({name, m}); }

static std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

// Depth-first over the tree, this module's own tensors before its children's, as PyTorch orders them.
template <class F>
static void walk(const Module& m, const std::string& prefix, F&& f) {
  f(m, prefix);
  for (auto& [name, child] : m.named_children()) walk(*child, join(prefix, name), f);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  walk(*this, "", [&](const Module& m, const std::string& prefix) {
    for (auto& [name, t] : m.params_)
      if (t->defined()) out.push_back({join(prefix, name), *t});
  });
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  walk(*this, "", [&](const Module& m, const std::string& prefix) {
    for (auto& [name, t] : m.buffers_)
      if (t->defined()) out.push_back({join(prefix, name), *t});
  });
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_children() const { return children_; }

std::vector<Module*> Module::children() const {
  std::vector<Module*> out;
  for (auto& [name, m] : children_) out.push_back(m);
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() const {
  std::vector<std::pair<std::string, Module*>> out;
  walk(*this, "", [&](const Module& m, const std::string& prefix) {
    out.push_back({prefix, const_cast<Module*>(&m)});
  });
  return out;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (Tensor& p : parameters()) p.set_grad(Tensor());
}

StateDict Module::state_dict() const {
  StateDict out;
  for (auto& [name, t] : named_parameters()) out[name] = t.detach();
  for (auto& [name, t] : named_buffers()) out[name] = t.detach();
  return out;
}

void Module::load_state_dict(const StateDict& dict, bool strict) {
  // Collect every problem first, so that one error message lists them all.
  std::vector<std::string> missing, unexpected, mismatched;
  StateDict mine;
  std::map<std::string, Tensor> targets;
  for (auto& [name, t] : named_parameters()) targets[name] = t;
  for (auto& [name, t] : named_buffers()) targets[name] = t;
  for (auto& [name, t] : targets) {
    auto it = dict.find(name);
    if (it == dict.end()) {
      missing.push_back(name);
      continue;
    }
    const Tensor& src = it->second;
    if (src.shape() != t.shape() || src.dtype() != t.dtype())
      mismatched.push_back(name + ": expected " + shape_str(t.shape()) + " " + dtype_name(t.dtype()) + ", got " +
                           shape_str(src.shape()) + " " + dtype_name(src.dtype()));
  }
  for (auto& [name, t] : dict)
    if (!targets.count(name)) unexpected.push_back(name);
  bool bad = !mismatched.empty() || (strict && (!missing.empty() || !unexpected.empty()));
  if (bad) {
    std::ostringstream os;
    os << "load_state_dict: ";
    auto list = [&](const char* what, const std::vector<std::string>& keys) {
      if (keys.empty()) return;
      os << what << ":";
      for (auto& k : keys) os << " " << k << ";";
      os << " ";
    };
    list("missing keys", strict ? missing : std::vector<std::string>{});
    list("unexpected keys", strict ? unexpected : std::vector<std::string>{});
    list("shape mismatch", mismatched);
    throw StateDictError(os.str());
  }
  NoGradGuard no_grad;
  for (auto& [name, t] : targets) {
    auto it = dict.find(name);
    if (it != dict.end()) {
      Tensor dst = t.detach();  // same storage; detached so that copy_ is allowed on a parameter
      dst.copy_(it->second);
    }
  }
}

void Module::to(DType dtype) {
  NoGradGuard no_grad;
  for (auto& [name, t] : params_)
    if (t->defined() && is_floating(t->dtype()) && t->dtype() != dtype) *t = t->detach().to(dtype).requires_grad_();
  for (auto& [name, t] : buffers_)
    if (t->defined() && is_floating(t->dtype()) && t->dtype() != dtype) *t = t->detach().to(dtype);
  for (auto& [name, child] : children_) child->to(dtype);
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const Tensor& p : parameters()) n += p.numel();
  return n;
}

static void print_tree(std::ostream& os, const Module& m, int indent) {
  os << m.type_name() << "(" << m.extra_repr();
  auto kids = m.named_children();
  if (kids.empty()) {
    os << ")";
  } else {
    os << "\n";
    for (auto& [name, child] : kids) {
      os << std::string(indent + 2, ' ') << "(" << name << "): ";
      print_tree(os, *child, indent + 2);
      os << "\n";
    }
    os << std::string(indent, ' ') << ")";
  }
  // This module's own parameters (not its children's), with their shapes.
  bool first = true;
  for (auto& [name, t] : m.named_parameters()) {
    if (name.find('.') != std::string::npos) continue;
    os << (first ? "  " : " ") << name << " " << shape_str(t.shape());
    first = false;
  }
}

std::ostream& operator<<(std::ostream& os, const Module& m) {
  print_tree(os, m, 0);
  // Thousands separators make parameter counts readable: 318,010.
  std::string n = std::to_string(m.num_parameters());
  for (int i = (int)n.size() - 3; i > 0; i -= 3) n.insert(i, ",");
  return os << "  # " << n << " parameters";
}

// ---- calling -------------------------------------------------------------------------------------------------
// A user's struct keeps type_name() "Module", so the message names its C++ type, demangled ("CharLM").
Tensor Module::forward(const Tensor& x) {
  std::string name = type_name();
  if (name == "Module") {
    int status = 0;
    char* demangled = abi::__cxa_demangle(typeid(*this).name(), nullptr, nullptr, &status);
    if (status == 0 && demangled) name = demangled;
    std::free(demangled);
  }
  throw Error(name + ": called as " + name + "(x) with x " + shape_str(x.shape()) +
              ", but it has no member `Tensor forward(const Tensor&)` to call; its forward takes other arguments or "
              "returns another type, so call it as m.forward(...)");
}

void shape_error(const std::string& layer, const std::string& expected, const Shape& got) {
  throw Error(layer + ": expected input " + expected + ", got " + shape_str(got));
}

}  // namespace heed::nn
