// layers.h: every nn layer in one include. Each header below is one family; read them in this order.
#pragma once
#include "nn/module.h"         // nn::Module: registration, traversal, state dict
#include "nn/init.h"           // nn::init: the weight initialisers
#include "nn/linear.h"         // Linear, Embedding, Flatten, Unflatten, Dropout, activation modules
#include "nn/conv.h"           // Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Upsample
#include "nn/norm.h"           // BatchNorm1d/2d, LayerNorm, GroupNorm
#include "nn/container.h"      // Sequential, ModuleList
#include "nn/spectral_norm.h"  // SpectralNorm<Layer>
