// heed.h: the one header a heed program includes. Reading order: tensor, then autograd, then nn.
#pragma once
#include "tensor/tensor.h"   // the strided tensor and every op's declaration
#include "tensor/random.h"   // Generator, manual_seed
#include "tensor/blas.h"     // blas_info, set_num_threads
#include "autograd/node.h"   // the graph, NoGradGuard, DetectAnomalyGuard
#include "autograd/engine.h" // backward, grad, to_dot, checkpoint
#include "autograd/gradcheck.h"
