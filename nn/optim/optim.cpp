// optim.cpp: the optimizers of optim.h.
//
// Reading order:
//   1. the Optimizer base: parameters, buffers, the state dict;
//   2. SGD, Adam/AdamW and RMSprop: options, checks, and a step() that calls its fused update loop
//      (tensor/kernels/optim.h) once per parameter.
//
// Matching PyTorch to the last bit: the loops perform PyTorch 1.13's single-tensor operations in the same
// order on values of the parameter's dtype (tensor/kernels/optim.cpp says how); tests/nn/optim/test_optim.cpp
// compares five steps of each optimizer with the ones tests/fixtures/optim/make_optim_fixtures.py recorded.
#include "nn/optim/optim.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "autograd/node.h"
#include "nn/module.h"
#include "tensor/kernels/kernels.h"
#include "tensor/kernels/optim.h"
#include "tensor/parallel.h"

namespace heed::optim {

namespace {

// A pointer `begin` elements on, or null for an absent buffer.
template <class T> T* at(T* ptr, int64_t begin) { return ptr ? ptr + begin : nullptr; }

// Runs f(begin, end) over [0, n): on one thread for a small parameter, in chunks on OpenMP threads for a
// large one. Every element's update is independent, so the split changes no result.
template <class F>
void for_chunks(int64_t n, F f) {
  constexpr int64_t grain = 1 << 15;  // a multiple of every SIMD width, so only the last chunk has a tail
  if (n < 2 * grain) {
    f(0, n);
    return;
  }
  const int64_t chunks = (n + grain - 1) / grain;
#pragma omp parallel for schedule(static) num_threads(parallel_threads())
  for (int64_t c = 0; c < chunks; c++) f(c * grain, std::min(n, (c + 1) * grain));
}

}  // namespace

// =====================================================================================================
// 1. The Optimizer base
// =====================================================================================================
Optimizer::Optimizer(const char* name, const std::vector<std::vector<Tensor>>& groups) : name_(name) {
  std::map<const TensorImpl*, size_t> seen;  // parameter -> its group, to catch one listed twice
  for (size_t g = 0; g < groups.size(); g++) {
    group_params_.emplace_back();
    for (const Tensor& p : groups[g]) {
      const size_t i = state_.size();
      std::string which = std::string(name_) + ": parameter " + std::to_string(i);
      if (!p.defined()) throw Error(which + " is an undefined tensor");
      if (!is_floating(p.dtype()))
        throw Error(which + " is " + dtype_name(p.dtype()) + "; optimizers update float32 or float64 tensors");
      if (!p.is_contiguous())
        throw Error(which + " " + shape_str(p.shape()) + " is not contiguous; an update is one pass over its storage");
      auto [it, fresh] = seen.emplace(p.impl(), g);
      if (!fresh)
        throw Error(which + " " + shape_str(p.shape()) + " appears twice (in groups " + std::to_string(it->second) +
                    " and " + std::to_string(g) + ")");
      state_.push_back({p, g, 0, {}});
      group_params_[g].push_back(i);
    }
  }
  if (state_.empty()) throw Error(std::string(name_) + ": got no parameters");
}

void Optimizer::zero_grad() {
  for (ParamState& s : state_) s.param.set_grad(Tensor());
}

void Optimizer::check_group(const char* what, size_t group) const {
  if (group >= num_groups())
    throw Error(std::string(name_) + "." + what + ": group " + std::to_string(group) + " out of range (" +
                std::to_string(num_groups()) + " group" + (num_groups() == 1 ? "" : "s") + ")");
}

// options() hands out pointers so that set_lr and load_state_dict can write through them; the const
// members below only read through them.
Optimizer::OptionList Optimizer::options_for_reading(size_t group) const {
  return const_cast<Optimizer*>(this)->options(group);
}

std::vector<Tensor> Optimizer::params(size_t group) const {
  check_group("params", group);
  std::vector<Tensor> out;
  for (size_t i : group_params_[group]) out.push_back(state_[i].param);
  return out;
}

// `lr` is always the first option (optim.h asks every optimizer to list it first).
double Optimizer::lr(size_t group) const {
  check_group("lr", group);
  return *std::get<double*>(options_for_reading(group).front().second);
}

void Optimizer::set_lr(size_t group, double lr) {
  check_group("set_lr", group);
  if (!(lr >= 0)) throw Error(std::string(name_) + ".set_lr: lr must be >= 0, got " + std::to_string(lr));
  *std::get<double*>(options(group).front().second) = lr;
}

void Optimizer::set_lr(double lr) {
  for (size_t g = 0; g < num_groups(); g++) set_lr(g, lr);
}

Tensor Optimizer::gradient(const ParamState& s) const {
  Tensor g = s.param.grad();
  if (!g.defined()) return g;
  if (g.shape() != s.param.shape() || g.dtype() != s.param.dtype())
    throw Error(std::string(name_) + ".step: a parameter " + shape_str(s.param.shape()) + " " +
                dtype_name(s.param.dtype()) + " has a gradient " + shape_str(g.shape()) + " " + dtype_name(g.dtype()));
  // A gradient may be a broadcast view (the gradient of x.sum() is one value expanded), so make it a
  // plain array before a loop walks it.
  return g.contiguous();
}

Tensor& Optimizer::buffer(ParamState& s, const std::string& name) {
  auto it = s.buffers.find(name);
  if (it == s.buffers.end()) it = s.buffers.emplace(name, zeros(s.param.shape(), s.param.dtype())).first;
  return it->second;
}

void Optimizer::bump_version(const Tensor& param, const char* op) {
  param.storage()->version++;
  param.storage()->last_inplace_op = op;
}

static double option_value(const std::variant<double*, bool*>& ref) {
  return std::holds_alternative<double*>(ref) ? *std::get<double*>(ref) : (*std::get<bool*>(ref) ? 1.0 : 0.0);
}

StateDict Optimizer::state_dict() const {
  StateDict d;
  for (size_t i = 0; i < state_.size(); i++) {
    const ParamState& s = state_[i];
    if (s.buffers.empty() && s.step == 0) continue;  // not updated yet: no state, as PyTorch
    const std::string key = "state." + std::to_string(i) + ".";
    if (counts_steps()) d[key + "step"] = scalar_tensor(s.step, float64);
    for (const auto& [name, t] : s.buffers) d[key + name] = t;
  }
  for (size_t g = 0; g < num_groups(); g++) {
    const std::string key = "param_groups." + std::to_string(g) + ".";
    std::vector<int64_t> idx(group_params_[g].begin(), group_params_[g].end());
    d[key + "params"] = from_vector(idx, {(int64_t)idx.size()});
    for (const auto& [name, ref] : options_for_reading(g))
      d[key + name] = scalar_tensor(option_value(ref), float64);
  }
  return d;
}

// "state.12.exp_avg" -> (12, "exp_avg"); false when the key does not have that form.
static bool split_key(const std::string& key, const std::string& prefix, size_t& index, std::string& rest) {
  if (key.compare(0, prefix.size(), prefix) != 0) return false;
  size_t dot = key.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size()) return false;
  std::string digits = key.substr(prefix.size(), dot - prefix.size());
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }) || digits.size() > 9)
    return false;
  index = std::stoul(digits);
  rest = key.substr(dot + 1);
  return true;
}

void Optimizer::load_state_dict(const StateDict& dict) {
  std::vector<std::string> problems;
  std::set<std::string> used;
  auto scalar_of = [&](const std::string& key, double& out) {
    auto it = dict.find(key);
    if (it == dict.end()) {
      problems.push_back("missing " + key);
      return false;
    }
    used.insert(key);
    if (it->second.numel() != 1 || !is_floating(it->second.dtype())) {
      problems.push_back(key + " must be one float, got " + shape_str(it->second.shape()) + " " +
                         dtype_name(it->second.dtype()));
      return false;
    }
    out = it->second.item();
    return true;
  };

  // The options first, into the live groups, remembering the old values: the buffers a parameter must
  // have depend on them (amsgrad adds max_exp_avg_sq), and a failed load puts them back.
  std::vector<std::vector<double>> old(num_groups());
  for (size_t g = 0; g < num_groups(); g++) {
    const std::string key = "param_groups." + std::to_string(g) + ".";
    auto it = dict.find(key + "params");
    if (it == dict.end()) {
      problems.push_back("missing " + key + "params");
    } else {
      used.insert(key + "params");
      std::vector<int64_t> want(group_params_[g].begin(), group_params_[g].end());
      if (it->second.dtype() != int64 || it->second.to_vector<int64_t>() != want)
        problems.push_back(key + "params does not list this optimizer's parameters of group " + std::to_string(g));
    }
    for (auto& [name, ref] : options(g)) {
      old[g].push_back(option_value(ref));
      double v;
      if (!scalar_of(key + name, v)) continue;
      if (std::holds_alternative<double*>(ref)) *std::get<double*>(ref) = v;
      else *std::get<bool*>(ref) = v != 0;
    }
  }

  // Then the per-parameter state: "state.<i>.<buffer>" for a known i and a buffer of its group.
  std::map<size_t, std::map<std::string, Tensor>> loaded;
  for (const auto& [key, t] : dict) {
    size_t i;
    std::string name;
    if (!split_key(key, "state.", i, name)) continue;
    if (i >= state_.size()) continue;  // reported as unexpected below
    std::vector<std::string> names = buffer_names(state_[i].group);
    if (counts_steps()) names.push_back("step");
    if (std::find(names.begin(), names.end(), name) == names.end()) continue;
    used.insert(key);
    loaded[i][name] = t;
  }
  for (auto& [i, buffers] : loaded) {
    const Tensor& p = state_[i].param;
    std::vector<std::string> names = buffer_names(state_[i].group);
    if (counts_steps()) names.push_back("step");
    for (const std::string& name : names) {
      const std::string key = "state." + std::to_string(i) + "." + name;
      auto it = buffers.find(name);
      if (it == buffers.end()) problems.push_back("missing " + key);
      else if (name == "step" ? it->second.numel() != 1 : it->second.shape() != p.shape())
        problems.push_back(key + " has shape " + shape_str(it->second.shape()) + ", expected " +
                           (name == "step" ? std::string("one element") : shape_str(p.shape())));
      else if (!is_floating(it->second.dtype()))
        problems.push_back(key + " is " + dtype_name(it->second.dtype()) + ", expected a float tensor");
    }
  }
  for (const auto& [key, t] : dict)
    if (!used.count(key)) problems.push_back("unexpected " + key);
  // The loaded options obey the constructor's rules (beta1 = 5 or eps = -1 from a crafted file would not),
  // and a step count is a whole number a double holds exactly (2^62 is no real run's).
  for (size_t g = 0; g < num_groups(); g++) {
    try {
      check_options(g);
    } catch (const Error& e) {
      problems.push_back(e.what());
    }
  }
  for (auto& [i, buffers] : loaded) {
    auto it = buffers.find("step");
    if (it == buffers.end() || it->second.numel() != 1 || !is_floating(it->second.dtype())) continue;
    const double v = it->second.item();
    if (!(v >= 0 && v <= 9007199254740992.0 && v == std::floor(v)))  // [0, 2^53], whole
      problems.push_back("state." + std::to_string(i) + ".step must be a whole number in [0, 2^53], got " +
                         std::to_string(v));
  }

  if (!problems.empty()) {
    for (size_t g = 0; g < num_groups(); g++) {
      OptionList refs = options(g);
      for (size_t k = 0; k < refs.size(); k++) {
        if (std::holds_alternative<double*>(refs[k].second)) *std::get<double*>(refs[k].second) = old[g][k];
        else *std::get<bool*>(refs[k].second) = old[g][k] != 0;
      }
    }
    std::ostringstream msg;
    msg << name_ << ".load_state_dict: " << problems.size() << " problem" << (problems.size() > 1 ? "s" : "") << ":";
    for (const std::string& p : problems) msg << "\n  " << p;
    throw nn::StateDictError(msg.str());
  }

  // All checked: replace the state. Buffers are copied (converted to the parameter's dtype), so the
  // optimizer never shares memory with the dict it was loaded from.
  for (ParamState& s : state_) {
    s.step = 0;
    s.buffers.clear();
  }
  for (auto& [i, buffers] : loaded) {
    ParamState& s = state_[i];
    for (auto& [name, t] : buffers) {
      if (name == "step") {
        s.step = t.item();
        continue;
      }
      Tensor b = empty(s.param.shape(), s.param.dtype());
      heed::kernels::copy_(b, t);
      s.buffers[name] = b;
    }
  }
}

// =====================================================================================================
// 2. The optimizers
// =====================================================================================================
namespace {

template <class G>
std::vector<std::vector<Tensor>> params_of(const std::vector<G>& groups) {
  std::vector<std::vector<Tensor>> out;
  for (const G& g : groups) out.push_back(g.params);
  return out;
}

template <class G, class O>
std::vector<O> options_from(const std::vector<G>& groups) {
  std::vector<O> out;
  for (const G& g : groups) out.push_back(g.options);
  return out;
}

// "Adam: group 1: lr must be >= 0, got -0.1"
void require(bool ok, const char* name, size_t group, const std::string& what, double value) {
  if (!ok) {
    std::ostringstream os;
    os << name << ": group " << group << ": " << what << ", got " << value;
    throw Error(os.str());
  }
}

// Calls the reference or the SIMD loop (as heed::kernels::use_simd says) for T = the parameter's dtype.
template <class F>
void dispatch_update(const Tensor& p, const char* op, F f) {
  dispatch_floating(p.dtype(), op, [&](auto zero) { f(zero, heed::kernels::use_simd()); });
}

}  // namespace

// ---- SGD ----------------------------------------------------------------------------------------------------
SGD::SGD(const std::vector<Tensor>& params, const Options& options) : SGD(std::vector<Group>{{params, options}}) {}

SGD::SGD(const std::vector<Group>& groups)
    : Optimizer("SGD", params_of(groups)), options_(options_from<Group, Options>(groups)) {
  for (size_t g = 0; g < options_.size(); g++) check_options(g);
}

// The checks of a group's options, run by the constructor and again by load_state_dict: options read from
// a file are held to the same rules as options written in code.
void SGD::check_options(size_t g) const {
  const Options& o = options_.at(g);
  require(o.lr >= 0, name_, g, "lr must be >= 0", o.lr);
  require(std::isfinite(o.lr), name_, g, "lr must be finite", o.lr);
  require(o.momentum >= 0, name_, g, "momentum must be >= 0", o.momentum);
  require(o.weight_decay >= 0, name_, g, "weight_decay must be >= 0", o.weight_decay);
  if (o.nesterov && !(o.momentum > 0 && o.dampening == 0))
    throw Error("SGD: group " + std::to_string(g) + ": nesterov needs momentum > 0 and dampening 0, got momentum " +
                std::to_string(o.momentum) + " and dampening " + std::to_string(o.dampening));
}

Optimizer::OptionList SGD::options(size_t g) {
  Options& o = options_.at(g);
  return {{"lr", &o.lr},
          {"momentum", &o.momentum},
          {"dampening", &o.dampening},
          {"weight_decay", &o.weight_decay},
          {"nesterov", &o.nesterov},
          {"maximize", &o.maximize}};
}

std::vector<std::string> SGD::buffer_names(size_t g) const {
  if (options_.at(g).momentum != 0) return {"momentum_buffer"};
  return {};
}

void SGD::step() {
  NoGradGuard no_grad;
  for (ParamState& s : state_) {
    Tensor g = gradient(s);
    if (!g.defined()) continue;
    const Options& o = options_[s.group];
    Tensor buf;
    bool first = false;
    if (o.momentum != 0) {
      first = s.buffers.count("momentum_buffer") == 0;
      buf = buffer(s, "momentum_buffer");
    }
    const kernels::SGDScalars k{o.lr, o.momentum, o.dampening, o.weight_decay, o.nesterov, o.maximize, first};
    dispatch_update(s.param, "SGD.step", [&](auto zero, bool fast) {
      using T = decltype(zero);
      T *p = s.param.data_ptr<T>(), *b = buf.defined() ? buf.data_ptr<T>() : nullptr;
      const T* gp = g.data_ptr<T>();
      for_chunks(s.param.numel(), [&](int64_t lo, int64_t hi) {
        if (fast) kernels::sgd_update_simd(p + lo, gp + lo, at(b, lo), hi - lo, k);
        else kernels::sgd_update_ref(p + lo, gp + lo, at(b, lo), hi - lo, k);
      });
    });
    bump_version(s.param, "sgd.step");
  }
}

// ---- Adam and AdamW ---------------------------------------------------------------------------------------------
Adam::Adam(const std::vector<Tensor>& params, const Options& options) : Adam(std::vector<Group>{{params, options}}) {}
Adam::Adam(const std::vector<Group>& groups) : Adam("Adam", groups, false) {}

Adam::Adam(const char* name, const std::vector<Group>& groups, bool decoupled)
    : Optimizer(name, params_of(groups)), options_(options_from<Group, Options>(groups)), decoupled_(decoupled) {
  for (size_t g = 0; g < options_.size(); g++) check_options(g);
}

void Adam::check_options(size_t g) const {
  const Options& o = options_.at(g);
  require(o.lr >= 0, name_, g, "lr must be >= 0", o.lr);
  require(std::isfinite(o.lr), name_, g, "lr must be finite", o.lr);
  require(o.eps >= 0, name_, g, "eps must be >= 0", o.eps);
  require(o.beta1 >= 0 && o.beta1 < 1, name_, g, "beta1 must be in [0,1)", o.beta1);
  require(o.beta2 >= 0 && o.beta2 < 1, name_, g, "beta2 must be in [0,1)", o.beta2);
  require(o.weight_decay >= 0, name_, g, "weight_decay must be >= 0", o.weight_decay);
}

static std::vector<Adam::Group> as_adam(const std::vector<AdamW::Group>& groups) {
  std::vector<Adam::Group> out;
  for (const AdamW::Group& g : groups) {
    const AdamW::Options& o = g.options;
    out.push_back({g.params, {o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, o.amsgrad, o.maximize}});
  }
  return out;
}

AdamW::AdamW(const std::vector<Tensor>& params, const Options& options)
    : AdamW(std::vector<Group>{{params, options}}) {}
AdamW::AdamW(const std::vector<Group>& groups) : Adam("AdamW", as_adam(groups), true) {}

Optimizer::OptionList Adam::options(size_t g) {
  Options& o = options_.at(g);
  return {{"lr", &o.lr},           {"beta1", &o.beta1},     {"beta2", &o.beta2},      {"eps", &o.eps},
          {"weight_decay", &o.weight_decay}, {"amsgrad", &o.amsgrad}, {"maximize", &o.maximize}};
}

std::vector<std::string> Adam::buffer_names(size_t g) const {
  if (options_.at(g).amsgrad) return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  return {"exp_avg", "exp_avg_sq"};
}

void Adam::step() {
  NoGradGuard no_grad;
  for (ParamState& s : state_) {
    Tensor g = gradient(s);
    if (!g.defined()) continue;
    const Options& o = options_[s.group];
    Tensor m = buffer(s, "exp_avg"), v = buffer(s, "exp_avg_sq");
    Tensor vmax = o.amsgrad ? buffer(s, "max_exp_avg_sq") : Tensor();
    s.step += 1;
    // The bias corrections undo the zero start of m and v: after t steps of a constant g, m = (1-β1^t) g.
    const double bias_correction1 = 1 - std::pow(o.beta1, s.step);
    const double bias_correction2 = 1 - std::pow(o.beta2, s.step);
    const kernels::AdamScalars k{o.beta1,
                                 o.beta2,
                                 o.eps,
                                 decoupled_ ? 0.0 : o.weight_decay,
                                 decoupled_ ? 1 - o.lr * o.weight_decay : 1.0,
                                 o.lr / bias_correction1,
                                 std::sqrt(bias_correction2),
                                 o.amsgrad,
                                 o.maximize};
    dispatch_update(s.param, name_, [&](auto zero, bool fast) {
      using T = decltype(zero);
      T *p = s.param.data_ptr<T>(), *mp = m.data_ptr<T>(), *vp = v.data_ptr<T>();
      T* xp = vmax.defined() ? vmax.data_ptr<T>() : nullptr;
      const T* gp = g.data_ptr<T>();
      for_chunks(s.param.numel(), [&](int64_t lo, int64_t hi) {
        if (fast) kernels::adam_update_simd(p + lo, gp + lo, mp + lo, vp + lo, at(xp, lo), hi - lo, k);
        else kernels::adam_update_ref(p + lo, gp + lo, mp + lo, vp + lo, at(xp, lo), hi - lo, k);
      });
    });
    bump_version(s.param, decoupled_ ? "adamw.step" : "adam.step");
  }
}

// ---- RMSprop ------------------------------------------------------------------------------------------------------
RMSprop::RMSprop(const std::vector<Tensor>& params, const Options& options)
    : RMSprop(std::vector<Group>{{params, options}}) {}

RMSprop::RMSprop(const std::vector<Group>& groups)
    : Optimizer("RMSprop", params_of(groups)), options_(options_from<Group, Options>(groups)) {
  for (size_t g = 0; g < options_.size(); g++) check_options(g);
}

void RMSprop::check_options(size_t g) const {
  const Options& o = options_.at(g);
  require(o.lr >= 0, name_, g, "lr must be >= 0", o.lr);
  require(std::isfinite(o.lr), name_, g, "lr must be finite", o.lr);
  require(o.eps >= 0, name_, g, "eps must be >= 0", o.eps);
  require(o.momentum >= 0, name_, g, "momentum must be >= 0", o.momentum);
  require(o.weight_decay >= 0, name_, g, "weight_decay must be >= 0", o.weight_decay);
  require(o.alpha >= 0, name_, g, "alpha must be >= 0", o.alpha);
}

Optimizer::OptionList RMSprop::options(size_t g) {
  Options& o = options_.at(g);
  return {{"lr", &o.lr},         {"alpha", &o.alpha},       {"eps", &o.eps},          {"weight_decay", &o.weight_decay},
          {"momentum", &o.momentum}, {"centered", &o.centered}, {"maximize", &o.maximize}};
}

std::vector<std::string> RMSprop::buffer_names(size_t g) const {
  const Options& o = options_.at(g);
  std::vector<std::string> names{"square_avg"};
  if (o.momentum > 0) names.push_back("momentum_buffer");
  if (o.centered) names.push_back("grad_avg");
  return names;
}

void RMSprop::step() {
  NoGradGuard no_grad;
  for (ParamState& s : state_) {
    Tensor g = gradient(s);
    if (!g.defined()) continue;
    const Options& o = options_[s.group];
    Tensor sq = buffer(s, "square_avg");
    Tensor buf = o.momentum > 0 ? buffer(s, "momentum_buffer") : Tensor();
    Tensor ga = o.centered ? buffer(s, "grad_avg") : Tensor();
    s.step += 1;  // kept for the state dict, as PyTorch; the update does not use it
    const kernels::RMSpropScalars k{o.lr, o.alpha, o.eps, o.weight_decay, o.momentum, o.centered, o.maximize};
    dispatch_update(s.param, "RMSprop.step", [&](auto zero, bool fast) {
      using T = decltype(zero);
      T *p = s.param.data_ptr<T>(), *sp = sq.data_ptr<T>();
      T* ap = ga.defined() ? ga.data_ptr<T>() : nullptr;
      T* bp = buf.defined() ? buf.data_ptr<T>() : nullptr;
      const T* gp = g.data_ptr<T>();
      for_chunks(s.param.numel(), [&](int64_t lo, int64_t hi) {
        if (fast) kernels::rmsprop_update_simd(p + lo, gp + lo, sp + lo, at(ap, lo), at(bp, lo), hi - lo, k);
        else kernels::rmsprop_update_ref(p + lo, gp + lo, sp + lo, at(ap, lo), at(bp, lo), hi - lo, k);
      });
    });
    bump_version(s.param, "rmsprop.step");
  }
}

}  // namespace heed::optim
