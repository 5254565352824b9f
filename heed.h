// heed.h: the one header a heed program includes. Reading order: tensor, then autograd, then nn.
// The user-facing utilities have rooms of their own and are included where they are used:
//   data/data.h (datasets, DataLoader), metrics/metrics.h (clustering, anomaly and sample-quality scores),
//   viz/viz.h (PNG grids, heatmaps, plots), io/file.h (atomic writes, SHA-256).
#pragma once
#include "tensor/tensor.h"             // the strided tensor and every op's declaration
#include "tensor/random.h"             // Generator, manual_seed
#include "tensor/parallel.h"           // set_num_threads, parallel_threads, ParallelGuard
#include "tensor/kernels/blas.h"       // blas_info, blas_summary
#include "autograd/node.h"             // the graph, NoGradGuard, DetectAnomalyGuard
#include "autograd/engine.h"           // grad, to_dot, checkpoint
#include "autograd/gradcheck.h"        // gradcheck, gradgradcheck
#include "nn/module.h"                 // nn::Module
#include "nn/layers.h"                 // Linear, Conv2d, norms, dropout, containers, init, spectral norm
#include "nn/loss.h"                   // losses
#include "nn/functional.h"             // F.normalize, layer_norm, batch_norm, group_norm, embedding, kl_div, sampling
#include "nn/clip.h"                   // gradient clipping
#include "nn/distributions.h"          // Normal, Bernoulli, Categorical, kl_divergence
#include "nn/attention.h"              // scaled_dot_product_attention, local and block-sparse attention
#include "nn/transformer.h"            // MultiheadAttention, transformer layers, AttentionPooling, SelfAttention2d
#include "nn/optim/optim.h"            // optim::SGD, Adam, AdamW, RMSprop
#include "nn/optim/schedule.h"         // learning-rate schedules
#include "nn/optim/training_state.h"   // resumable training checkpoints
#include "io/safetensors.h"            // heed::save, heed::load
