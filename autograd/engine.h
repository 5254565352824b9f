// engine.h: running the recorded graph backwards (engine.cpp), and the tools built on it.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "autograd/node.h"

namespace heed {

/// Gradients of `outputs` (seeded with `grad_outputs`, or 1 for one-element outputs) with respect to
/// `inputs`, returned rather than accumulated into .grad. With create_graph the results are themselves
/// differentiable (the gradient penalty of WGAN-GP). An input the outputs do not depend on gets an
/// undefined Tensor. retain_graph defaults to create_graph, as in PyTorch.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {}, bool create_graph = false);
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, bool retain_graph, bool create_graph);

/// The graph behind `root` as Graphviz DOT: one box per op with its output shape and dtype, one ellipse
/// per leaf; ops whose backward reduced a broadcast gradient are drawn orange.
std::string to_dot(const Tensor& root);

/// Gradient checkpointing: runs fn(inputs) without saving its intermediates, and reruns it during backward
/// to get them back. Memory falls from O(ops in fn) to O(output); compute grows by one forward of fn.
/// The global generator's state is restored for the rerun, so dropout inside fn draws the same mask.
/// First-order only: create_graph through a checkpoint throws.
Tensor checkpoint(const std::function<Tensor(const std::vector<Tensor>&)>& fn, const std::vector<Tensor>& inputs);

}  // namespace heed
