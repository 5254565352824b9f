// models.h: the models of bench_models.cpp that bench_dist.cpp trains again under DistributedDataParallel.
#pragma once
#include "heed.h"
#include "nn/layers.h"
#include "nn/transformer.h"

namespace heed::bench {
using namespace heed::nn;

// pytorch/examples' VAE 784-400-20 (vae_step).
struct VAE : Module {
  Linear fc1{784, 400}, mu{400, 20}, lv{400, 20}, fc3{20, 400}, fc4{400, 784};
  VAE() {
    register_module("fc1", fc1);
    register_module("mu", mu);
    register_module("lv", lv);
    register_module("fc3", fc3);
    register_module("fc4", fc4);
  }
};

// A char GPT: token and position embeddings, L pre-LN blocks, a final LayerNorm, the head (gpt_step).
struct GPT : Module {
  Embedding tok, pos;
  ModuleList blocks;
  LayerNorm ln;
  Linear head;
  GPT(int64_t V, int64_t T, int64_t d, int64_t h, int64_t L) : tok(V, d), pos(T, d), ln(d), head(d, V) {
    for (int64_t i = 0; i < L; i++) blocks.add<CausalSelfAttentionBlock>(d, h);
    register_module("tok", tok);
    register_module("pos", pos);
    register_module("blocks", blocks);
    register_module("ln", ln);
    register_module("head", head);
  }
  Tensor forward(const Tensor& idx) {
    int64_t T = idx.size(1);
    Tensor x = tok(idx) + pos(arange(T));
    for (size_t i = 0; i < blocks.size(); i++) x = blocks.at<CausalSelfAttentionBlock>(i)(x);
    return head(ln(x));
  }
};

}  // namespace heed::bench
