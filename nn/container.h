// container.h: modules that own other modules: Sequential (a chain) and ModuleList (a list).
//
// Both own their children (std::unique_ptr), built in place by add<M>(constructor args...), and name them
// "0", "1", ... as PyTorch does, so a state dict reads "0.weight", "2.bias" in both frameworks:
//
//   nn::Sequential mlp;
//   mlp.add<nn::Linear>(784, 400);
//   mlp.add<nn::ReLU>();
//   nn::Linear& head = mlp.add<nn::Linear>(400, 10);   // add returns the new layer
//   Tensor logits = mlp(x);                           // (B,784) -> (B,10)
//
// A module with a Config takes it braced as the last argument, as its constructor does:
//   seq.add<nn::Conv2d>(1, 32, 3, {.stride = 2, .padding = 1});
//   blocks.add<Block>({.d_model = 64, .nhead = 4});
// Perfect forwarding cannot deduce a braced list, so these are overloads whose last parameter is
// M::Config itself (up to three arguments before it); a designator out of declaration order is then one
// error at the call site, not a page of failed template candidates.
#pragma once
#include <concepts>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#include "nn/module.h"

namespace heed::nn {

/// A module Sequential can chain: it has Tensor forward(const Tensor&).
template <class M>
concept TensorToTensor = std::derived_from<M, Module> && requires(M& m, const Tensor& x) {
  { m.forward(x) } -> std::convertible_to<Tensor>;
};

/// A module type with a nested Config that it can be built from, after `Args`.
template <class M, class... Args>
concept ConfigurableWith = requires {
  typename M::Config;
}
&&std::constructible_from<M, Args..., const typename M::Config&>;

/// Applies its modules in order: forward(x) = m_{n-1}(...m_1(m_0(x))); no modules is the identity.
struct Sequential : Module {
  /// Builds an M from `args` at the end of the chain and returns it.
  template <class M, class... Args>
    requires std::constructible_from<M, Args...>
  M& add(Args&&... args) {
    return add(std::make_unique<M>(std::forward<Args>(args)...));
  }
  /// add<M>(args..., {.field = value}): the braced Config last (see the top of this file).
  template <class M>
    requires ConfigurableWith<M>
  M& add(const typename M::Config& config) {
    return add(std::make_unique<M>(config));
  }
  template <class M, class A>
    requires ConfigurableWith<M, A>
  M& add(A&& a, const typename M::Config& config) {
    return add(std::make_unique<M>(std::forward<A>(a), config));
  }
  template <class M, class A, class B>
    requires ConfigurableWith<M, A, B>
  M& add(A&& a, B&& b, const typename M::Config& config) {
    return add(std::make_unique<M>(std::forward<A>(a), std::forward<B>(b), config));
  }
  template <class M, class A, class B, class C>
    requires ConfigurableWith<M, A, B, C>
  M& add(A&& a, B&& b, C&& c, const typename M::Config& config) {
    return add(std::make_unique<M>(std::forward<A>(a), std::forward<B>(b), std::forward<C>(c), config));
  }
  /// Appends a module built elsewhere; the Sequential takes ownership.
  template <class M>
  M& add(std::unique_ptr<M> m) {
    static_assert(TensorToTensor<M>, "Sequential::add: the module needs a member Tensor forward(const Tensor&)");
    M* p = m.get();
    steps_.push_back({std::move(m), [p](const Tensor& x) -> Tensor { return p->forward(x); }});
    add_child(std::to_string(steps_.size() - 1), p);
    return *p;
  }

  Tensor forward(const Tensor& x);
  size_t size() const { return steps_.size(); }
  /// The i-th module; throws when i is out of range.
  Module& operator[](size_t i);
  /// The i-th module as an M; throws when it is not one.
  template <class M>
  M& at(size_t i) {
    M* p = dynamic_cast<M*>(&(*this)[i]);
    if (!p) wrong_type(i);
    return *p;
  }
  std::string type_name() const override { return "Sequential"; }

 private:
  [[noreturn]] void wrong_type(size_t i);
  struct Step {
    std::unique_ptr<Module> module;
    std::function<Tensor(const Tensor&)> forward;  // calls the module's own forward, whose type add<M> knew
  };
  std::vector<Step> steps_;
};

/// Holds modules so that their parameters are registered, with no forward of its own: the owner decides
/// how to call them (e.g. a transformer's blocks, each called with extra arguments).
///
///   nn::ModuleList blocks;
///   for (int i = 0; i < 4; i++) blocks.add<Block>(cfg);
///   for (size_t i = 0; i < blocks.size(); i++) x = blocks.at<Block>(i)(x, mask);
struct ModuleList : Module {
  template <class M, class... Args>
    requires std::constructible_from<M, Args...>
  M& add(Args&&... args) {
    return add(std::make_unique<M>(std::forward<Args>(args)...));
  }
  /// add<M>(args..., {.field = value}): the braced Config last (see the top of this file).
  template <class M>
    requires ConfigurableWith<M>
  M& add(const typename M::Config& config) {
    return add(std::make_unique<M>(config));
  }
  template <class M, class A>
    requires ConfigurableWith<M, A>
  M& add(A&& a, const typename M::Config& config) {
    return add(std::make_unique<M>(std::forward<A>(a), config));
  }
  template <class M, class A, class B>
    requires ConfigurableWith<M, A, B>
  M& add(A&& a, B&& b, const typename M::Config& config) {
    return add(std::make_unique<M>(std::forward<A>(a), std::forward<B>(b), config));
  }
  template <class M, class A, class B, class C>
    requires ConfigurableWith<M, A, B, C>
  M& add(A&& a, B&& b, C&& c, const typename M::Config& config) {
    return add(std::make_unique<M>(std::forward<A>(a), std::forward<B>(b), std::forward<C>(c), config));
  }
  template <class M>
  M& add(std::unique_ptr<M> m) {
    static_assert(std::derived_from<M, Module>, "ModuleList::add: the type must derive from nn::Module");
    M* p = m.get();
    modules_.push_back(std::move(m));
    add_child(std::to_string(modules_.size() - 1), p);
    return *p;
  }

  size_t size() const { return modules_.size(); }
  Module& operator[](size_t i);
  template <class M>
  M& at(size_t i) {
    M* p = dynamic_cast<M*>(&(*this)[i]);
    if (!p) wrong_type(i);
    return *p;
  }
  std::string type_name() const override { return "ModuleList"; }

 private:
  [[noreturn]] void wrong_type(size_t i);
  std::vector<std::unique_ptr<Module>> modules_;
};

}  // namespace heed::nn
