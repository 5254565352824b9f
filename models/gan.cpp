// gan: generative adversarial networks on Fashion-MNIST, three recipes in one file.
//
// A generator G maps noise z ~ N(0, I) (B,nz) to images (B,1,28,28) in [-1,1] (tanh); a critic D scores images
// (B), and the two train against each other, one step of D, then one of G, on every batch.
// --arch dcgan (Radford et al. 2016): G is Linear, reshape to (2F,7,7), then ConvTranspose2d+BatchNorm+ReLU to
//   (F,14,14) and a ConvTranspose2d with tanh to 28x28; D is Conv2d+LeakyReLU(0.2) twice and a Linear. The
//   loss is the binary cross-entropy on D's logits (G's is the non-saturating -log D(G(z))); weights drawn
//   from N(0, 0.02), Adam 2e-4 with betas (0.5, 0.999), as the paper. F = 32 channels rather than the paper's 64
//   or more, and 3 epochs, keep `./run gan` within 15 minutes on two shared cores. Batches of 32 (the paper:
//   128) give more steps in the same time, which matters more here than larger batches (models/RESULTS.md
//   compares the two).
// --arch sagan (Zhang et al. 2019): the same shapes with SelfAttention2d at 14x14 in G and in D, spectral norm
//   (nn/spectral_norm.h) on every layer of both but G's BatchNorms, as the paper; the hinge loss; Adam with the
//   paper's two time-scales, 1e-4 for G and 4e-4 for D, and its betas (0, 0.9).
// --attention turns the two SelfAttention2d blocks on or off in either recipe (default: on for sagan only), so
//   that attention is measured apart from the rest: sagan --attention=false is SAGAN's recipe without them,
//   dcgan --attention is DCGAN's with them (plain, where sagan's are spectrally normalised).
// --loss wgan-gp (Gulrajani et al. 2017), with either arch: D is a critic, its loss mean D(fake) - mean D(real)
//   + 10 · the gradient penalty (nn::gradient_penalty: a double backward through D), 5 critic steps per G step;
//   Adam 1e-4 with betas (0.5, 0.9), as the paper's own MNIST code (gan_mnist.py). Neither D has BatchNorm,
//   which the penalty (per-sample gradients) forbids.
//
// Per epoch the run prints D's and G's mean losses, and every --fd-every epochs and at the end FD-FMNIST of
// 10000 samples (models/zoo/judge.h). For equal budgets: --minutes M stops training after M minutes of training
// time (evaluation excluded), and --fd-g-steps N adds an FD-FMNIST point every N G steps to steps.csv, with the
// G steps and training minutes it took, so that recipes compare at equal wall-clock or at equal G steps. It draws
// samples_epoch_<e>.png from fixed noise after every epoch (samples.png is the last), loss.png and steps.png (the
// losses every --log-every batches), and with attention attention.png: G's attention at 14x14 for four query pixels
// (red), over eight generated images. checkpoint.safetensors (G, D, Adam and the generator's state) lets --resume
// continue a run. --quick: 1024 training images, 1 epoch, FD-FMNIST of 1000 samples (it prints so).
#include <cmath>

#include "data/data.h"
#include "heed.h"  // tensor, autograd, nn, nn/optim, io/safetensors
#include "models/zoo/judge.h"
#include "models/zoo/zoo.h"
#include "viz/viz.h"

using namespace heed;
template <class Layer>
using SN = nn::SpectralNorm<Layer>;

struct Config {
  std::string arch = "dcgan", loss, data_dir;  // loss: bce, hinge or wgan-gp
  bool attention = false;                       // SelfAttention2d at 14x14 in G and D
  int64_t nz = 100, features = 32;              // F: G's and D's channels at 14x14 (2F at 7x7)
  int64_t n_critic = 1, train_images = 60000, fd_samples = 10000, fd_every = 1, log_every = 50;
  double lr_g = 2e-4, lr_d = 2e-4, beta1 = 0.5, beta2 = 0.999, gp_lambda = 10;
};

// ---- the modules, smallest first ------------------------------------------------------------------------------

// What training and the pictures see of G and D; the two architectures below fill it in.
struct GeneratorNet : nn::Module {
  // z (B,nz) -> images (B,1,28,28) in [-1,1], and with --attention the attention (B,196,49) at 14x14.
  virtual std::pair<Tensor, Tensor> generate(const Tensor& z) = 0;
  Tensor forward(const Tensor& z) { return generate(z).first; }
};
struct Discriminator : nn::Module {
  virtual Tensor forward(const Tensor& x) = 0;  // x (B,1,28,28) -> scores (B): logits, or a critic's values
};

nn::ConvTranspose2d::Config up2x{.stride = 2, .padding = 1};  // 4x4 kernels, stride 2: 7 -> 14 -> 28
nn::Conv2d::Config down2x{.stride = 2, .padding = 1};         // and back: 28 -> 14 -> 7

struct DcganG : GeneratorNet {
  nn::Linear fc;
  nn::BatchNorm2d bn0, bn1;
  nn::ConvTranspose2d up1, up2;
  nn::SelfAttention2d attn;  // --attention only
  bool with_attention;
  explicit DcganG(const Config& c)
      : fc(c.nz, 2 * c.features * 49), bn0(2 * c.features), bn1(c.features), up1(2 * c.features, c.features, 4, up2x),
        up2(c.features, 1, 4, up2x), attn(c.features), with_attention(c.attention) {
    register_module("fc", fc), register_module("bn0", bn0), register_module("up1", up1);
    register_module("bn1", bn1), register_module("up2", up2);
    if (with_attention) register_module("attn", attn);
  }
  std::pair<Tensor, Tensor> generate(const Tensor& z) override {
    Tensor h = relu(bn0(fc(z).reshape({z.size(0), -1, 7, 7})));  // (B,2F,7,7)
    h = relu(bn1(up1(h)));                                         // (B,F,14,14)
    if (!with_attention) return {tanh(up2(h)), Tensor()};          // (B,1,28,28)
    auto [a, attention] = attn.forward_with_attention(h);          // (B,F,14,14), (B,196,49)
    return {tanh(up2(a)), attention};
  }
};

struct DcganD : Discriminator {
  nn::Conv2d conv1, conv2;
  nn::SelfAttention2d attn;  // --attention only
  nn::Linear fc;
  bool with_attention;
  explicit DcganD(const Config& c)
      : conv1(1, c.features, 4, down2x), conv2(c.features, 2 * c.features, 4, down2x), attn(c.features),
        fc(2 * c.features * 49, 1), with_attention(c.attention) {
    register_module("conv1", conv1), register_module("conv2", conv2), register_module("fc", fc);
    if (with_attention) register_module("attn", attn);
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = leaky_relu(conv1(x), 0.2);  // (B,F,14,14)
    if (with_attention) h = attn(h);
    return fc(leaky_relu(conv2(h), 0.2).flatten(1)).reshape({-1});  // (B,2F,7,7) -> (B)
  }
};

struct SaganG : GeneratorNet {
  SN<nn::Linear> fc;
  nn::BatchNorm2d bn0, bn1;
  SN<nn::ConvTranspose2d> up1, up2;
  nn::SelfAttention2d attn;
  explicit SaganG(const Config& c)
      : fc(c.nz, 2 * c.features * 49), bn0(2 * c.features), bn1(c.features), up1(2 * c.features, c.features, 4, up2x),
        up2(c.features, 1, 4, up2x), attn(c.features, {.spectral_norm = true}), with_attention(c.attention) {
    register_module("fc", fc), register_module("bn0", bn0), register_module("up1", up1);
    register_module("bn1", bn1), register_module("up2", up2);
    if (with_attention) register_module("attn", attn);
  }
  bool with_attention;
  std::pair<Tensor, Tensor> generate(const Tensor& z) override {
    Tensor h = relu(bn0(fc(z).reshape({z.size(0), -1, 7, 7})));  // (B,2F,7,7)
    h = relu(bn1(up1(h)));                                         // (B,F,14,14)
    if (!with_attention) return {tanh(up2(h)), Tensor()};
    auto [a, attention] = attn.forward_with_attention(h);  // (B,F,14,14), (B,196,49)
    return {tanh(up2(a)), attention};
  }
};

struct SaganD : Discriminator {
  SN<nn::Conv2d> conv1, conv2;
  nn::SelfAttention2d attn;
  SN<nn::Linear> fc;
  explicit SaganD(const Config& c)
      : conv1(1, c.features, 4, down2x), conv2(c.features, 2 * c.features, 4, down2x),
        attn(c.features, {.spectral_norm = true}), fc(2 * c.features * 49, 1), with_attention(c.attention) {
    register_module("conv1", conv1), register_module("conv2", conv2), register_module("fc", fc);
    if (with_attention) register_module("attn", attn);
  }
  bool with_attention;
  Tensor forward(const Tensor& x) override {
    Tensor h = leaky_relu(conv1(x), 0.2);  // (B,F,14,14)
    if (with_attention) h = attn(h);
    return fc(leaky_relu(conv2(h), 0.2).flatten(1)).reshape({-1});
  }
};

// DCGAN's initialisation: conv and linear weights N(0, 0.02), BatchNorm scales N(1, 0.02), biases 0.
void dcgan_init(nn::Module& m) {
  for (auto& [name, p] : m.named_parameters()) {
    const bool weight = name.ends_with("weight"), batch_norm = name.find("bn") != std::string::npos;
    if (weight) nn::init::normal_(p, batch_norm ? 1.0 : 0.0, 0.02);
    else nn::init::zeros_(p);
  }
}

// G and D in one module, so that one checkpoint holds both ("G.fc.weight", "D.conv1.weight", ...).
struct GAN : nn::Module {
  std::unique_ptr<GeneratorNet> G;
  std::unique_ptr<Discriminator> D;
  explicit GAN(const Config& c) {
    if (c.arch == "sagan") G = std::make_unique<SaganG>(c), D = std::make_unique<SaganD>(c);
    else G = std::make_unique<DcganG>(c), D = std::make_unique<DcganD>(c), dcgan_init(*G), dcgan_init(*D);
    register_module("G", *G), register_module("D", *D);
  }
};

// ---- the training steps ---------------------------------------------------------------------------------------
// One Adam holds two parameter groups, G's and D's, each with its own learning rate. A step moves only the
// parameters that have a gradient, so each phase clears every gradient and then computes only its own.

// One step of D on a real batch (B,1,28,28); returns D's loss.
double critic_step(GAN& gan, optim::Adam& opt, const Config& c, const Tensor& real) {
  const int64_t B = real.size(0);
  Tensor fake;
  {
    NoGradGuard no_grad;  // D's step leaves G alone: no graph through G
    fake = gan.G->forward(randn({B, c.nz}));
  }
  Tensor scores = gan.D->forward(cat({real, fake}, 0));  // (2B): one pass of D for both halves
  Tensor s_real = scores.narrow(0, 0, B), s_fake = scores.narrow(0, B, B);
  Tensor loss;
  if (c.loss == "bce")
    loss = nn::binary_cross_entropy_with_logits(s_real, ones_like(s_real)) +
           nn::binary_cross_entropy_with_logits(s_fake, zeros_like(s_fake));
  else if (c.loss == "hinge")
    loss = nn::hinge_d(s_real, s_fake);
  else  // wgan-gp: D estimates the Wasserstein distance; the penalty keeps its gradient norm near 1
    loss = mean(s_fake) - mean(s_real) +
           c.gp_lambda * nn::gradient_penalty([&](const Tensor& x) { return gan.D->forward(x); }, real, fake);
  opt.zero_grad();
  loss.backward();
  opt.step();
  return loss.item();
}

// One step of G on a fresh batch of B noise vectors; returns G's loss.
double generator_step(GAN& gan, optim::Adam& opt, const Config& c, int64_t B) {
  Tensor scores = gan.D->forward(gan.G->forward(randn({B, c.nz})));
  // bce: the non-saturating loss -log D(G(z)), strong gradients while D still wins; hinge and wgan-gp: -mean D.
  Tensor loss = c.loss == "bce" ? nn::binary_cross_entropy_with_logits(scores, ones_like(scores)) : nn::hinge_g(scores);
  opt.zero_grad();
  std::vector<Tensor> params = gan.G->parameters();
  std::vector<Tensor> grads = grad({loss}, params);  // G's gradients only: D's weights stay put
  for (size_t i = 0; i < params.size(); ++i) params[i].set_grad(grads[i]);
  opt.step();
  return loss.item();
}

// ---- evaluation: FD-FMNIST of samples, and pictures ----------------------------------------------------------

// z (n,nz) -> images (n,1,28,28) in [0,1], from G in eval mode (BatchNorm's running statistics), 500 at a time.
Tensor images_from(GeneratorNet& G, const Tensor& z) {
  NoGradGuard no_grad;
  G.eval();
  std::vector<Tensor> parts;
  for (int64_t i = 0; i < z.size(0); i += 500)
    parts.push_back(G.forward(z.narrow(0, i, std::min<int64_t>(500, z.size(0) - i))));
  G.train();
  return (cat(parts, 0) + 1.0) * 0.5;
}

// --attention: each row is a generated image, then G's attention over the 7x7 pooled keys for four query pixels of the
// 14x14 map, overlaid on the image with the query's 2x2 block of pixels in red.
void save_attention(GeneratorNet& G, const Tensor& z, const std::string& path) {
  NoGradGuard no_grad;
  G.eval();
  auto [images, attention] = G.generate(z);  // (8,1,28,28), (8,196,49)
  G.train();
  images = (images + 1.0) * 0.5;
  const int64_t queries[4][2] = {{4, 7}, {7, 3}, {7, 10}, {11, 7}};  // (row, column) on the 14x14 grid
  std::vector<Tensor> tiles;
  for (int64_t i = 0; i < z.size(0); ++i) {
    tiles.push_back(nn::upsample_nearest(images.select(0, i).unsqueeze(0), 2).squeeze(0).expand({3, 56, 56}));
    for (auto [r, col] : queries) {
      viz::Image im = viz::render_overlay(images.select(0, i),
                                          attention.select(0, i).select(0, r * 14 + col).reshape({7, 7}), {.scale = 2});
      for (int y = 4 * r; y < 4 * r + 4; ++y)  // one 14x14 cell is 2x2 image pixels, 4x4 after the 2x scale
        for (int x = 4 * col; x < 4 * col + 4; ++x) im.at(x, y)[0] = 255, im.at(x, y)[1] = 0, im.at(x, y)[2] = 0;
      tiles.push_back(viz::to_tensor(im));
    }
  }
  viz::save_image_grid(stack(tiles), path, {.nrow = 5});
}

// ---- main -------------------------------------------------------------------------------------------------------

int main(int argc, char** argv) {
  zoo::Cli cli("gan", "Generative adversarial networks on Fashion-MNIST: DCGAN, SAGAN, WGAN-GP",
               {.epochs = 3, .batch_size = 32, .lr = 2e-4});
  cli.option("arch", "G and D: dcgan or sagan", std::string("dcgan"));
  cli.option("loss", "bce, hinge or wgan-gp (default: bce for dcgan, hinge for sagan)", std::string());
  cli.option("lr-d", "D's learning rate (default: the recipe's; --lr is G's)", 0.0, 0.0);
  cli.option("n-critic", "D steps per G step (0: the recipe's, 5 for wgan-gp, else 1)", 0, 0);
  cli.option("features", "F, the channels at 14x14 in G and D (2F at 7x7)", 32, 1);
  cli.option("fd-every", "FD-FMNIST every this many epochs, and at the end (0: only at the end)", 1, 0);
  cli.option("log-every", "a row of steps.csv every this many batches", 50, 1);
  cli.option("data", "the Fashion-MNIST folder (IDX files)", std::string("/usr/share/datasets/fashion-mnist"));
  cli.option("steps", "stop after this many D steps in all (0: --epochs full epochs)", 0, 0);
  cli.option("attention", "self-attention at 14x14 in G and D (default: on for sagan, off for dcgan)", false);
  cli.option("minutes", "stop after this many minutes of training, evaluation excluded (0: no limit)", 0.0, 0.0);
  cli.option("fd-g-steps", "an FD-FMNIST point every this many G steps, in steps.csv (0: none)", 0, 0);
  cli.option("resume", "continue from this checkpoint.safetensors (same --arch, --loss, --features)", std::string());
  return zoo::main_guard("gan", [&] {
    zoo::RunConfig run = cli.parse(argc, argv);
    Config c{.arch = cli.get<std::string>("arch"), .loss = cli.get<std::string>("loss"),
             .data_dir = cli.get<std::string>("data"), .features = cli.get<int64_t>("features"),
             .fd_every = cli.get<int64_t>("fd-every"), .log_every = cli.get<int64_t>("log-every")};
    cli.require(c.arch == "dcgan" || c.arch == "sagan", "--arch must be dcgan or sagan, got '" + c.arch + "'");
    c.attention = cli.given("attention") ? cli.get<bool>("attention") : c.arch == "sagan";
    const int64_t fd_g_steps = cli.get<int64_t>("fd-g-steps");
    if (c.loss.empty()) c.loss = c.arch == "dcgan" ? "bce" : "hinge";
    cli.require(c.loss == "bce" || c.loss == "hinge" || c.loss == "wgan-gp",
                "--loss must be bce, hinge or wgan-gp, got '" + c.loss + "'");
    if (c.arch == "sagan") c.lr_g = 1e-4, c.lr_d = 4e-4, c.beta1 = 0.0, c.beta2 = 0.9;
    if (c.loss == "wgan-gp") c.lr_g = 1e-4, c.lr_d = 1e-4, c.beta1 = 0.5, c.beta2 = 0.9, c.n_critic = 5;
    if (cli.given("lr")) c.lr_g = run.lr;
    if (cli.get<double>("lr-d") > 0) c.lr_d = cli.get<double>("lr-d");  // 0 means the recipe's, as the help says
    if (cli.get<int64_t>("n-critic") > 0) c.n_critic = cli.get<int64_t>("n-critic");
    if (run.quick) {
      run.epochs = 1, c.train_images = 1024, c.fd_samples = 1000, c.log_every = 2;
      std::printf("gan: --quick: 1024 training images, 1 epoch, FD-FMNIST of 1000 samples against 1000 test images\n");
    }
    Tensor train =
        data::load_fashion_mnist(true, data::Scale::MinusOneOne, c.data_dir).images.narrow(0, 0, c.train_images);
    data::DataLoader loader(data::TensorDataset{{train}},
                            {.batch_size = run.batch_size, .shuffle = true, .seed = run.seed});
    const int64_t per_epoch = loader.size();
    int64_t steps = cli.get<int64_t>("steps") > 0 ? cli.get<int64_t>("steps") : run.epochs * per_epoch;
    run.epochs = (int)((steps + per_epoch - 1) / per_epoch);

    manual_seed(run.seed);
    GAN gan(c);
    optim::Adam opt({{gan.G->parameters(), {.lr = c.lr_g, .beta1 = c.beta1, .beta2 = c.beta2}},
                     {gan.D->parameters(), {.lr = c.lr_d, .beta1 = c.beta1, .beta2 = c.beta2}}});
    const std::string resume = cli.get<std::string>("resume");  // restores G, D, Adam and the generator
    int64_t step = resume.empty() ? 0 : zoo::resume_training(cli, run, gan, opt);  // settles --lr, G's group
    if (!resume.empty() && cli.get<double>("lr-d") > 0) opt.set_lr(1, c.lr_d);     // and --lr-d, D's
    c.lr_g = opt.lr(0), c.lr_d = opt.lr(1);  // what runs, and what metrics.json records
    std::printf("gan: %s%s with the %s loss, G %lld and D %lld parameters, lr G %g D %g, betas (%g, %g), %lld D "
                "steps per G step; training from step %lld of %lld\n", c.arch.c_str(),
                c.attention ? " with attention" : " without attention", c.loss.c_str(),
                (long long)gan.G->num_parameters(), (long long)gan.D->num_parameters(), c.lr_g, c.lr_d, c.beta1,
                c.beta2, (long long)c.n_critic, (long long)step, (long long)steps);
    zoo::RunLog log(cli, run);
    log.set_config("loss", c.loss), log.set_config("train_images", c.train_images);
    log.set_config("n-critic", c.n_critic), log.set_config("lr-d", c.lr_d), log.set_config("lr", c.lr_g);

    Generator picture_gen(run.seed + 1), eval_gen(run.seed + 2);  // streams of their own, never training's
    const Tensor fixed_z = randn({64, c.nz}, float32, &picture_gen);  // the same 64 samples after every epoch
    auto fd_fmnist = [&] {
      Tensor z = randn({c.fd_samples, c.nz}, float32, &eval_gen);
      return zoo::fd_fmnist(images_from(*gan.G, z), {.data_dir = c.data_dir, .quick = run.quick});
    };
    double fd = NAN, d_window = 0, g_window = 0;  // d_window, g_window: the sums behind a row of steps.csv
    int64_t d_count = 0, g_count = 0;
    zoo::TrainClock clock(cli.get<double>("minutes"));
    // Epoch e's batch order is a function of (seed, e) alone, so a resumed run starts at batch step % per_epoch.
    for (int64_t epoch = step / per_epoch; step < steps && !clock.over(); ++epoch) {
      std::vector<int64_t> order = loader.order(epoch);
      zoo::ProgressBar bar(log.epoch_label((int)epoch + 1), per_epoch);
      double g_sum = 0;
      int64_t g_steps = 0;
      clock.start();
      for (int64_t b = step % per_epoch, first = b; b < per_epoch && step < steps; ++b) {
        if (b > first && clock.over()) {
          steps = step;  // the budget ends the run here, mid-epoch or not
          break;
        }
        Tensor real = loader.batch(order, b)[0];
        const double d_loss = critic_step(gan, opt, c, real);
        zoo::check_finite_loss(d_loss, step + 1);  // exit 1, "diverged at step N"
        d_window += d_loss, ++d_count;
        bool fd_point = false;
        if (++step % c.n_critic == 0) {
          const double g_loss = generator_step(gan, opt, c, real.size(0));
          g_sum += g_loss, ++g_steps, g_window += g_loss, ++g_count;
          fd_point = fd_g_steps > 0 && (step / c.n_critic) % fd_g_steps == 0;
        }
        zoo::Metrics logged;  // this step's row of steps.csv: the losses, an FD-FMNIST point, both or none
        if (step % c.log_every == 0) {
          logged = {{"d_loss", d_window / d_count}, {"g_loss", g_count ? g_window / g_count : NAN}};
          d_window = g_window = 0, d_count = g_count = 0;
        }
        if (fd_point) {
          clock.stop();
          const double point = fd_fmnist();
          logged.insert(logged.end(), {{"fd_fmnist", point}, {"g_steps", (double)(step / c.n_critic)},
                                       {"train_minutes", clock.minutes()}});
          std::printf("gan: FD-FMNIST %.2f after %lld G steps, %.2f minutes of training\n", point,
                      (long long)(step / c.n_critic), clock.minutes());
          clock.start();
        }
        if (!logged.empty()) log.step(step, logged);
        bar.update(d_loss, real.size(0));
      }
      clock.stop();
      bar.finish();
      // The epoch's training is saved before anything evaluates it: a failing evaluation (a damaged judge
      // cache) must not lose it.
      optim::save_training_state(log.dir() + "/checkpoint.safetensors", gan, opt, optim::StateDict{}, step,
                                 zoo::checkpoint_metadata(run, {{"arch", c.arch}, {"loss", c.loss},
                                                                {"features", std::to_string(c.features)},
                                                                {"attention", c.attention ? "true" : "false"}}));
      zoo::Metrics row{{"d_loss", bar.mean_loss()}, {"g_loss", g_steps ? g_sum / g_steps : NAN},
                       {"g_steps", (double)(step / c.n_critic)}, {"train_minutes", clock.minutes()}};
      if (step == steps || (c.fd_every > 0 && (epoch + 1) % c.fd_every == 0)) {
        row.emplace_back("fd_fmnist", fd = fd_fmnist());
      }
      log.epoch((int)epoch + 1, row);
      char name[64];
      std::snprintf(name, sizeof name, "/samples_epoch_%02lld.png", (long long)epoch + 1);
      viz::save_image_grid(images_from(*gan.G, fixed_z), log.dir() + name);
    }
    if (std::isnan(fd)) fd = fd_fmnist();  // a run resumed from its last step trained nothing more
    viz::save_image_grid(images_from(*gan.G, fixed_z), log.dir() + "/samples.png");
    if (c.attention) save_attention(*gan.G, fixed_z.narrow(0, 0, 8), log.dir() + "/attention.png");
    log.final({{"fd_fmnist", fd}, {"g_steps", (double)(step / c.n_critic)}, {"train_minutes", clock.minutes()}});
    log.finish();
    return 0;
  });
}
