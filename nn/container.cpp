// container.cpp: Sequential's forward, and the checked element access of both containers.
#include "nn/container.h"

namespace heed::nn {

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (Step& s : steps_) h = s.forward(h);
  return h;
}

static void check_index(const char* who, size_t i, size_t n) {
  if (i >= n)
    throw Error(std::string(who) + ": index " + std::to_string(i) + " out of range for " + std::to_string(n) +
                " modules");
}

Module& Sequential::operator[](size_t i) {
  check_index("Sequential", i, steps_.size());
  return *steps_[i].module;
}

void Sequential::wrong_type(size_t i) {
  throw Error("Sequential::at: module " + std::to_string(i) + " is a " + steps_[i].module->type_name() +
              ", not the type asked for");
}

Module& ModuleList::operator[](size_t i) {
  check_index("ModuleList", i, modules_.size());
  return *modules_[i];
}

void ModuleList::wrong_type(size_t i) {
  throw Error("ModuleList::at: module " + std::to_string(i) + " is a " + modules_[i]->type_name() +
              ", not the type asked for");
}

}  // namespace heed::nn
