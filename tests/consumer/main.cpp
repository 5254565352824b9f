// tests/consumer/main.cpp: the smallest program a user writes against heed.
//
// It touches each part a consumer must get right: heed's headers (the include path), heed's symbols
// (the library), an OpenMP-parallel kernel, and matmul, which loads OpenBLAS at run time (libdl).
// It checks the numbers itself, so a wrong link shows up as a non-zero exit, not as a line to read.
#include <heed.h>

#include <iostream>

int main() {
  heed::Tensor a = heed::tensor({{1, 2}, {3, 4}}).requires_grad_();
  heed::Tensor loss = heed::matmul(a, a).sum() + (a * a).sum();
  loss.backward();

  // a @ a = [[7, 10], [15, 22]] sums to 54, and sum(a*a) = 30, so loss = 84.
  // d sum(a@a) / da = ones @ a^T + a^T @ ones = [[7, 11], [9, 13]], sum 40; d sum(a*a) / da = 2a, sum 20.
  double loss_value = loss.item();
  double grad_sum = a.grad().sum().item();
  std::cout << "consumer: loss " << loss_value << ", gradient sum " << grad_sum << "\n";
  if (loss_value != 84 || grad_sum != 60) {
    std::cerr << "consumer: expected loss 84 and gradient sum 60\n";
    return 1;
  }
  return 0;
}
