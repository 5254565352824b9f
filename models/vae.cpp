// vae: a variational autoencoder on Fashion-MNIST (Kingma and Welling 2014, "Auto-Encoding Variational Bayes").
//
// An encoder maps an image x to q(z|x) = N(μ, σ²), a decoder maps a code z to 784 Bernoulli means p(x|z),
// and the prior is p(z) = N(0, I). Training maximises the evidence lower bound, i.e. minimises per image
//   -ELBO = BCE(x, decoder(z)) summed over pixels + KL(q(z|x) ‖ N(0, I)),   z = μ + σ·ε  (rsample)
// The reparameterisation z = μ + σ·ε lets gradients reach μ and σ through the sample. --arch picks the encoder:
//   mlp   pytorch/examples' recipe: 784-400-(20,20), ReLU; decoder 20-400-784, sigmoid. Adam 1e-3, batch 128
//   conv  Conv2d 1->32->64 (4x4, stride 2) to 7x7, then μ, log σ²; the decoder mirrors it with ConvTranspose2d
//   attn  4x4 patches of the image are 49 tokens (Linear 16->64 plus learned positions), 2 pre-LN transformer
//         layers, and AttentionPooling (a learned query) pools them to μ, log σ²; the decoder is mlp's
// The decoder returns logits; the loss takes them (the same BCE as on sigmoid outputs, without log(0)).
//
// The run prints per epoch the training and test loss (negative ELBO per image, nats; pixels in [0,1] are
// used as Bernoulli targets, as in pytorch/examples), and at the end:
//   iw_nll     the importance-weighted NLL (Burda et al. 2016) with k = --iw-samples z's per test image:
//              -log (1/k) Σ p(x|z_i) p(z_i) / q(z_i|x), a bound on -log p(x) that tightens as k grows
//   fd_fmnist  FD-FMNIST of 10000 samples against the test set (nn/fmnist_judge.h; lower is better)
// and draws samples.png, reconstructions.png (rows of originals, each above its reconstructions),
// traversal.png (each latent dim swept over [-3,3]) or, with --latent 2, manifold.png, and for attn
// attention.png: the pooling's attention over the 7x7 patches, laid over test images.
// The run directory also gets checkpoint.safetensors: --resume continues from it, bit for bit.
// --quick: 512 training images, 1 epoch, 500 test images, k = 10 on 200 of them, FD on 1000 samples.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <memory>

#include "heed.h"
#include "nn/data.h"
#include "nn/distributions.h"
#include "nn/fmnist_judge.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "nn/optim.h"
#include "nn/training_state.h"
#include "nn/transformer.h"
#include "nn/viz.h"
#include "nn/zoo.h"

using namespace heed;
using distributions::Normal;

struct Config {
  std::string arch = "mlp", data_dir;
  int64_t latent = 20, hidden = 400;  // hidden: the MLP's width
  int64_t d_model = 64, heads = 4;    // the attn encoder's tokens
  int64_t train_images = 60000, test_images = 10000, iw_samples = 100, iw_images = 10000, fd_samples = 10000;
};

// ---- the modules, smallest first ---------------------------------------------------------------------------

// What an encoder returns: q(z|x)'s μ and log σ² (B,L), and for attn the pooling weights over patches (B,49).
struct Posterior {
  Tensor mu, logvar, attention;
};
struct Encoder : nn::Module {
  virtual Posterior forward(const Tensor& x) = 0;  // x (B,1,28,28)
};
struct Decoder : nn::Module {
  virtual Tensor forward(const Tensor& z) = 0;  // z (B,L) -> logits (B,1,28,28)
};

struct MlpEncoder : Encoder {
  nn::Linear fc1, fc_mu, fc_logvar;
  explicit MlpEncoder(const Config& c) : fc1(784, c.hidden), fc_mu(c.hidden, c.latent), fc_logvar(c.hidden, c.latent) {
    register_module("fc1", fc1), register_module("fc_mu", fc_mu), register_module("fc_logvar", fc_logvar);
  }
  Posterior forward(const Tensor& x) override {
    Tensor h = relu(fc1(x.flatten(1)));  // (B,400)
    return {fc_mu(h), fc_logvar(h)};
  }
};

struct MlpDecoder : Decoder {
  nn::Linear fc1, fc2;
  explicit MlpDecoder(const Config& c) : fc1(c.latent, c.hidden), fc2(c.hidden, 784) {
    register_module("fc1", fc1), register_module("fc2", fc2);
  }
  Tensor forward(const Tensor& z) override { return fc2(relu(fc1(z))).reshape({-1, 1, 28, 28}); }
};

struct ConvEncoder : Encoder {
  nn::Conv2d conv1{1, 32, 4, {.stride = 2, .padding = 1}}, conv2{32, 64, 4, {.stride = 2, .padding = 1}};
  nn::Linear fc_mu, fc_logvar;
  explicit ConvEncoder(const Config& c) : fc_mu(64 * 7 * 7, c.latent), fc_logvar(64 * 7 * 7, c.latent) {
    register_module("conv1", conv1), register_module("conv2", conv2);
    register_module("fc_mu", fc_mu), register_module("fc_logvar", fc_logvar);
  }
  Posterior forward(const Tensor& x) override {
    Tensor h = relu(conv2(relu(conv1(x)))).flatten(1);  // (B,32,14,14) -> (B,64,7,7) -> (B,3136)
    return {fc_mu(h), fc_logvar(h)};
  }
};

struct ConvDecoder : Decoder {
  nn::Linear fc;
  nn::ConvTranspose2d up1{64, 32, 4, {.stride = 2, .padding = 1}}, up2{32, 1, 4, {.stride = 2, .padding = 1}};
  explicit ConvDecoder(const Config& c) : fc(c.latent, 64 * 7 * 7) {
    register_module("fc", fc), register_module("up1", up1), register_module("up2", up2);
  }
  Tensor forward(const Tensor& z) override {
    Tensor h = relu(fc(z)).reshape({-1, 64, 7, 7});
    return up2(relu(up1(h)));  // (B,32,14,14) -> (B,1,28,28)
  }
};

struct AttnEncoder : Encoder {
  nn::Linear embed, fc_mu, fc_logvar;
  nn::LearnedPositionalEncoding pos;
  nn::ModuleList layers;
  nn::LayerNorm norm;  // pre-LN layers leave the residual stream unnormalised; this closes it
  nn::AttentionPooling pool;
  explicit AttnEncoder(const Config& c)
      : embed(16, c.d_model), fc_mu(c.d_model, c.latent), fc_logvar(c.d_model, c.latent), pos(49, c.d_model),
        norm(c.d_model), pool(c.d_model) {
    for (int i = 0; i < 2; ++i)
      layers.add<nn::TransformerEncoderLayer>(c.d_model, c.heads, nn::TransformerEncoderLayer::Config{
          .dim_feedforward = 2 * c.d_model, .dropout = 0.0, .batch_first = true, .norm_first = true});
    register_module("embed", embed), register_module("pos", pos), register_module("layers", layers);
    register_module("norm", norm), register_module("pool", pool);
    register_module("fc_mu", fc_mu), register_module("fc_logvar", fc_logvar);
  }
  Posterior forward(const Tensor& x) override {
    const int64_t B = x.size(0);
    // (B,1,28,28) -> (B, 7 rows, 4, 7 cols, 4) -> (B, 7, 7, 4, 4) -> 49 tokens of 16 pixels, row by row.
    Tensor tokens = x.reshape({B, 7, 4, 7, 4}).permute({0, 1, 3, 2, 4}).reshape({B, 49, 16});
    Tensor h = pos(embed(tokens));  // (B,49,64)
    for (size_t i = 0; i < layers.size(); ++i) h = layers.at<nn::TransformerEncoderLayer>(i)(h);
    auto [pooled, weights] = pool.forward(norm(h));  // (B,64), (B,49)
    return {fc_mu(pooled), fc_logvar(pooled), weights};
  }
};

struct VAE : nn::Module {
  std::unique_ptr<Encoder> encoder;
  std::unique_ptr<Decoder> decoder;
  explicit VAE(const Config& c) {
    if (c.arch == "conv") encoder = std::make_unique<ConvEncoder>(c), decoder = std::make_unique<ConvDecoder>(c);
    if (c.arch == "attn") encoder = std::make_unique<AttnEncoder>(c);
    if (c.arch == "mlp") encoder = std::make_unique<MlpEncoder>(c);
    if (!decoder) decoder = std::make_unique<MlpDecoder>(c);
    register_module("encoder", *encoder), register_module("decoder", *decoder);
  }
};

// ---- the training step ---------------------------------------------------------------------------------------

Normal posterior(const Posterior& q) { return Normal(q.mu, exp(0.5 * q.logvar)); }

// -log p(x|z) of each image (B), summed over pixels; logits (B,1,28,28) or with leading sample dims.
Tensor neg_log_px(const Tensor& logits, const Tensor& x) {
  Tensor bce = nn::binary_cross_entropy_with_logits(logits, x.expand(logits.shape()), {.reduction = nn::Reduction::None});
  return bce.sum({-3, -2, -1});
}

// The negative ELBO of each image (B), with one z ~ q(z|x) drawn from `gen` (nullptr: the global generator).
Tensor neg_elbo(VAE& vae, const Tensor& x, Generator* gen) {
  Normal q = posterior(vae.encoder->forward(x));
  Tensor kl = distributions::kl_divergence(q, Normal(zeros_like(q.loc()), ones_like(q.loc()))).sum({1});
  return neg_log_px(vae.decoder->forward(q.rsample({}, gen)), x) + kl;
}

double train_step(VAE& vae, optim::Adam& opt, const Tensor& x) {
  Tensor loss = neg_elbo(vae, x, nullptr).mean();
  opt.zero_grad();
  loss.backward();
  opt.step();
  return loss.item();
}

// ---- evaluation: negative ELBO, importance-weighted NLL, samples -------------------------------------------------

// The mean negative ELBO over `images`, drawing z's from Generator(seed): the same noise every epoch.
double test_neg_elbo(VAE& vae, const Tensor& images, uint64_t seed) {
  NoGradGuard no_grad;
  Generator gen(seed);
  double total = 0;
  for (int64_t i = 0; i < images.size(0); i += 500)
    total += neg_elbo(vae, images.narrow(0, i, std::min<int64_t>(500, images.size(0) - i)), &gen).sum().item();
  return total / (double)images.size(0);
}

// -log p(x) ≈ -logsumexp_i(log p(x|z_i) + log p(z_i) - log q(z_i|x)) + log k, z_i ~ q(z|x), averaged over images.
double iw_nll(VAE& vae, const Tensor& images, int64_t k, uint64_t seed) {
  NoGradGuard no_grad;
  Generator gen(seed);
  const int64_t chunk = std::max<int64_t>(1, 4000 / k);  // images per pass: k * chunk decoded images
  double total = 0;
  for (int64_t i = 0; i < images.size(0); i += chunk) {
    const int64_t b = std::min<int64_t>(chunk, images.size(0) - i);
    Tensor x = images.narrow(0, i, b);
    Normal q = posterior(vae.encoder->forward(x));
    Tensor z = q.sample({k}, &gen);  // (k,b,L)
    Tensor log_px = -neg_log_px(vae.decoder->forward(z.flatten(0, 1)).reshape({k, b, 1, 28, 28}), x);
    Tensor log_pz = Normal(zeros_like(q.loc()), ones_like(q.loc())).log_prob(z).sum({2});
    Tensor log_w = log_px + log_pz - q.log_prob(z).sum({2});  // (k,b)
    total -= (logsumexp(log_w, 0) - std::log((double)k)).sum().item();
  }
  return total / (double)images.size(0);
}

Tensor decode_images(VAE& vae, const Tensor& z) { return sigmoid(vae.decoder->forward(z)); }

Tensor sample_images(VAE& vae, int64_t n, int64_t latent, Generator& gen) {
  NoGradGuard no_grad;
  std::vector<Tensor> parts;
  for (int64_t i = 0; i < n; i += 1000) parts.push_back(decode_images(vae, randn({std::min<int64_t>(1000, n - i), latent}, float32, &gen)));
  return cat(parts, 0);
}

void save_pictures(VAE& vae, const Config& c, const Tensor& test_images, const std::string& dir, Generator& gen) {
  NoGradGuard no_grad;
  viz::save_image_grid(sample_images(vae, 64, c.latent, gen), dir + "/samples.png", {.nrow = 8});
  Tensor x = test_images.narrow(0, 0, 32);
  Posterior q = vae.encoder->forward(x);
  Tensor rows = stack({x.reshape({4, 8, 1, 28, 28}), decode_images(vae, q.mu).reshape({4, 8, 1, 28, 28})}, 1);
  viz::save_image_grid(rows.reshape({64, 1, 28, 28}), dir + "/reconstructions.png", {.nrow = 8});
  if (c.latent == 2) {  // the decoder's image at each point of a 20x20 grid over [-3,3]²
    Tensor t = linspace(-3, 3, 20);
    Tensor z = stack({t.reshape({1, 20}).expand({20, 20}), -t.reshape({20, 1}).expand({20, 20})}, 2);
    viz::save_image_grid(decode_images(vae, z.reshape({400, 2})), dir + "/manifold.png", {.nrow = 20, .padding = 0});
  } else {  // from the first test image's μ, row d sweeps latent dim d over [-3,3]
    const int64_t dims = std::min<int64_t>(c.latent, 10);
    Tensor mask = eye(c.latent).narrow(0, 0, dims).unsqueeze(1);  // (dims,1,L)
    Tensor z = q.mu.narrow(0, 0, 1) * (1.0 - mask) + linspace(-3, 3, 10).reshape({1, 10, 1}) * mask;
    viz::save_image_grid(decode_images(vae, z.reshape({dims * 10, c.latent})), dir + "/traversal.png", {.nrow = 10});
  }
  if (c.arch == "attn") {  // the pooling's attention over the 7x7 patches of 16 test images
    std::vector<Tensor> tiles;
    for (int64_t i = 0; i < 16; ++i) {
      viz::Image im = viz::render_overlay(x.select(0, i), q.attention.select(0, i).reshape({7, 7}), {.alpha = 0.5, .scale = 2});
      tiles.push_back(from_vector(std::vector<float>(im.pixels.begin(), im.pixels.end()), {56, 56, 3}).permute({2, 0, 1}) / 255.0);
    }
    viz::save_image_grid(stack(tiles), dir + "/attention.png", {.nrow = 8});
  }
}

// ---- main ----------------------------------------------------------------------------------------------------------

int main(int argc, char** argv) {
  zoo::Cli cli("vae", "A variational autoencoder on Fashion-MNIST (Kingma and Welling 2014)",
               {.epochs = 10, .batch_size = 128, .lr = 1e-3});
  cli.option("arch", "encoder/decoder: mlp, conv or attn", std::string("mlp"));
  cli.option("latent", "size of the latent code z", 20, 1);
  cli.option("iw-samples", "k, importance samples per test image for the final NLL", 100, 1);
  cli.option("data", "the Fashion-MNIST folder (IDX files)", std::string("/usr/share/datasets/fashion-mnist"));
  cli.option("steps", "stop after this many optimizer steps in all (0: --epochs full epochs)", 0, 0);
  cli.option("resume", "continue from this checkpoint.safetensors (same --arch, --latent, --seed)", std::string(""));
  cli.option("eval", "evaluate and draw after training (--eval=false: train and save the checkpoint only)", true);
  return zoo::main_guard("vae", [&] {
    zoo::RunConfig run = cli.parse(argc, argv);
    Config c{.arch = cli.get<std::string>("arch"), .data_dir = cli.get<std::string>("data"),
             .latent = cli.get<int64_t>("latent"), .iw_samples = cli.get<int64_t>("iw-samples")};
    cli.require(c.arch == "mlp" || c.arch == "conv" || c.arch == "attn", "--arch must be mlp, conv or attn, got '" + c.arch + "'");
    if (run.quick) {
      run.epochs = 1;
      c.train_images = 512, c.test_images = 500, c.iw_samples = std::min<int64_t>(c.iw_samples, 10), c.iw_images = 200, c.fd_samples = 1000;
      std::printf("vae: --quick: 512 training images, 1 epoch, test loss on 500 images, IW-NLL with k = %lld on 200, "
                  "FD-FMNIST of 1000 samples against 1000 test images\n", (long long)c.iw_samples);
    }
    data::FashionMNIST train = data::load_fashion_mnist(true, data::Scale::ZeroOne, c.data_dir);
    Tensor test = data::load_fashion_mnist(false, data::Scale::ZeroOne, c.data_dir).images.narrow(0, 0, c.test_images);
    data::DataLoader loader(data::TensorDataset{{train.images.narrow(0, 0, c.train_images)}},
                            {.batch_size = run.batch_size, .shuffle = true, .seed = run.seed});
    const int64_t per_epoch = loader.size();
    const int64_t steps = cli.get<int64_t>("steps") > 0 ? cli.get<int64_t>("steps") : run.epochs * per_epoch;
    run.epochs = (int)((steps + per_epoch - 1) / per_epoch);

    manual_seed(run.seed);
    VAE vae(c);
    optim::Adam opt(vae.parameters(), {.lr = run.lr});
    int64_t step = 0;
    if (const std::string from = cli.get<std::string>("resume"); !from.empty()) {
      step = nn::load_training_state(from, vae, opt).step;  // the weights, Adam's moments and the generator
      std::printf("vae: resumed from %s at step %lld\n", from.c_str(), (long long)step);
    }
    std::cout << vae << "\n";
    zoo::RunLog log(cli, run);
    log.set_config("train_images", c.train_images);
    log.set_config("test_images", c.test_images);
    const bool eval = cli.get<bool>("eval");

    // Epoch e's batch order is a function of (seed, e) alone, so a resumed run picks up at batch step % per_epoch.
    for (int64_t epoch = step / per_epoch; step < steps; ++epoch) {
      std::vector<int64_t> order = loader.order(epoch);
      zoo::ProgressBar bar(log.epoch_label((int)epoch + 1), per_epoch);
      for (int64_t b = step % per_epoch; b < per_epoch && step < steps; ++b, ++step) {
        Tensor x = loader.batch(order, b)[0];
        bar.update(train_step(vae, opt, x), x.size(0));
      }
      bar.finish();
      zoo::Metrics row{{"train_loss", bar.mean_loss()}};
      if (eval) row.emplace_back("test_loss", test_neg_elbo(vae, test, run.seed + 1));
      log.epoch((int)epoch + 1, row);
    }
    nn::save_training_state(log.dir() + "/checkpoint.safetensors", vae, opt, optim::StateDict{}, step,
                            {{"arch", c.arch}, {"latent", std::to_string(c.latent)}});
    if (eval) {
      vae.eval();
      Generator gen(run.seed + 2);  // evaluation draws from its own stream, never from training's
      const double nelbo = test_neg_elbo(vae, test, run.seed + 1);
      const double nll = iw_nll(vae, test.narrow(0, 0, c.iw_images), c.iw_samples, run.seed + 3);
      std::printf("vae: IW-NLL %.2f nats with k = %lld on %lld test images; FD-FMNIST of %lld samples...\n", nll,
                  (long long)c.iw_samples, (long long)c.iw_images, (long long)c.fd_samples);
      const double fd = zoo::fd_fmnist(sample_images(vae, c.fd_samples, c.latent, gen), {.data_dir = c.data_dir, .quick = run.quick});
      save_pictures(vae, c, test, log.dir(), gen);
      log.final({{"neg_elbo", nelbo}, {"iw_nll", nll}, {"fd_fmnist", fd}});
    }
    log.finish();
    return 0;
  });
}
