// bench/user_program/main.cpp: an autoencoder 784-256-32-256-784 trained with Adam on random "images",
// B128, as a user would write it. It prints the mean time of a step (after 5 warm-up steps), so that
// bench/README.md ("Threads on a loaded machine") can compare thread settings outside ./run.
#include <heed.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

using namespace heed;

struct AutoEncoder : nn::Module {
  nn::Linear enc1{784, 256}, enc2{256, 32}, dec1{32, 256}, dec2{256, 784};
  AutoEncoder() {
    register_module("enc1", enc1);
    register_module("enc2", enc2);
    register_module("dec1", dec1);
    register_module("dec2", dec2);
  }
  Tensor forward(const Tensor& x) {
    Tensor z = enc2(relu(enc1(x)));
    return sigmoid(dec2(relu(dec1(z))));
  }
};

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::atoi(argv[1]) : 300;
  manual_seed(0);
  AutoEncoder model;
  optim::Adam opt(model.parameters(), {.lr = 1e-3});
  Tensor x = rand({128, 784});
  auto step = [&] {
    opt.zero_grad();
    Tensor loss = nn::mse_loss(model.forward(x), x);
    loss.backward();
    opt.step();
    return loss.item();
  };
  for (int i = 0; i < 5; i++) step();
  auto t0 = std::chrono::steady_clock::now();
  double loss = 0;
  for (int i = 0; i < steps; i++) loss = step();
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / steps;
  std::printf("user_program: %d steps, %.3f ms/step, loss %.5f\n", steps, ms, loss);
}
