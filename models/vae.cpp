// vae: a variational autoencoder on Fashion-MNIST (Kingma and Welling 2014, "Auto-Encoding Variational Bayes").
//
// The encoder gives q(z|x) = N(μ, σ²), the decoder 784 Bernoulli means p(x|z), and the prior is p(z) = N(0, I).
// Training minimises each image's negative evidence lower bound in nats (pixels in [0,1] are the Bernoulli targets):
//   -ELBO = BCE(x, decoder(z)) summed over pixels + KL(q(z|x) ‖ p(z)),  z = μ + σ·ε  (rsample: gradients reach μ, σ)
// --arch mlp is pytorch/examples' recipe (784-400-20, ReLU, sigmoid output; Adam 1e-3, batch 128, 10 epochs);
// conv encodes with Conv2d 1->32->64 (4x4, stride 2) and decodes with ConvTranspose2d; attn makes the 49 4x4
// patches tokens for two pre-LN transformer layers and pools them with AttentionPooling (its decoder is mlp's);
// conv-attn is conv with SAGAN's self-attention (Zhang et al. 2019: SelfAttention2d, its gain γ starting at 0,
// so the block starts as the identity) after each conv of the encoder and of the decoder, at 14x14 and 7x7.
// Decoders return logits, and the loss takes them: the BCE of sigmoid outputs without ever taking log(0).
//
// --minutes M stops training after M minutes of training time (evaluation excluded): runs of different
// architectures then compare at an equal wall-clock budget. --until-gain G trains to convergence: it stops once the
// best test loss has gained less than G nats an epoch over the last 5 epochs. Per epoch the run prints the train and
// test loss
// (-ELBO per image) and train_minutes, and every --fd-every epochs FD-FMNIST; at the end the importance-weighted NLL
// (Burda et al. 2016: -log (1/k) Σ p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x), k = --iw-samples) and FD-FMNIST of
// 10000 samples (models/zoo/judge.h). It draws samples.png, reconstructions.png (rows of test images, each above
// its reconstructions), traversal.png or with --latent 2 manifold.png, and for attn attention.png (the pooling's
// weights over the patches) and self_attention.png (the first layer's heads, patch to patch).
// checkpoint.safetensors lets --resume continue a run bit for bit. --quick: 512 training images, 1 epoch,
// smaller evaluations (it prints which).
// `mpirun -np P vae ...` (or `./run vae --np P ...`) trains the same model on P processes (dist/ddp.h): each
// rank takes batch_size/P images of every batch, and rank 0 alone evaluates and writes.
#include <algorithm>

#include "data/data.h"
#include "dist/ddp.h"
#include "heed.h"  // tensor, autograd, nn, nn/optim, io/safetensors
#include "models/zoo/judge.h"
#include "models/zoo/zoo.h"
#include "viz/viz.h"

using namespace heed;
using distributions::Normal;

struct Config {
  std::string arch = "mlp", data_dir, attn_at = "14,7";  // attn_at: conv-attn's resolutions with attention
  int64_t latent = 20, hidden = 400, d_model = 64, heads = 4;  // hidden: the MLP's width; d_model, heads: attn's
  int64_t train_images = 60000, test_images = 10000, iw_samples = 100, iw_images = 10000, fd_samples = 10000;
};

// ---- the modules, smallest first ------------------------------------------------------------------------------

// What an encoder gives: q(z|x)'s μ and log σ² (B,L), and for attn the pooling's weights over patches (B,49).
struct Posterior { Tensor mu, logvar, attention; };

// What training and evaluation see; the three architectures below fill it in.
struct VAE : nn::Module {
  virtual Posterior encode(const Tensor& x) = 0;  // x (B,1,28,28)
  virtual Tensor decode(const Tensor& z) = 0;     // z (B,L) -> logits (B,1,28,28)
  Normal posterior(const Tensor& x) { Posterior q = encode(x); return Normal(q.mu, exp(0.5 * q.logvar)); }
  Tensor decode_images(const Tensor& z) { return sigmoid(decode(z)); }
};

// pytorch/examples' VAE, with its parameter names.
struct MlpVAE : VAE {
  nn::Linear fc1, fc21, fc22, fc3, fc4;
  explicit MlpVAE(const Config& c)
      : fc1(784, c.hidden), fc21(c.hidden, c.latent), fc22(c.hidden, c.latent), fc3(c.latent, c.hidden),
        fc4(c.hidden, 784) {
    register_module("fc1", fc1), register_module("fc21", fc21), register_module("fc22", fc22);
    register_module("fc3", fc3), register_module("fc4", fc4);
  }
  Posterior encode(const Tensor& x) override {
    Tensor h = relu(fc1(x.flatten(1)));  // (B,400)
    return {fc21(h), fc22(h)};
  }
  Tensor decode(const Tensor& z) override { return fc4(relu(fc3(z))).reshape({-1, 1, 28, 28}); }
};

struct ConvVAE : VAE {
  nn::Conv2d conv1{1, 32, 4, {.stride = 2, .padding = 1}}, conv2{32, 64, 4, {.stride = 2, .padding = 1}};
  nn::Linear fc21, fc22, fc3;
  nn::ConvTranspose2d up1{64, 32, 4, {.stride = 2, .padding = 1}}, up2{32, 1, 4, {.stride = 2, .padding = 1}};
  explicit ConvVAE(const Config& c)
      : fc21(64 * 7 * 7, c.latent), fc22(64 * 7 * 7, c.latent), fc3(c.latent, 64 * 7 * 7) {
    register_module("conv1", conv1), register_module("conv2", conv2), register_module("fc21", fc21);
    register_module("fc22", fc22), register_module("fc3", fc3), register_module("up1", up1);
    register_module("up2", up2);
  }
  Posterior encode(const Tensor& x) override {
    Tensor h = relu(conv2(relu(conv1(x)))).flatten(1);  // (B,32,14,14) -> (B,64,7,7) -> (B,3136)
    return {fc21(h), fc22(h)};
  }
  // z -> (B,3136) -> (B,64,7,7) -> (B,32,14,14) -> logits (B,1,28,28)
  Tensor decode(const Tensor& z) override { return up2(relu(up1(relu(fc3(z)).reshape({-1, 64, 7, 7})))); }
};

// ConvVAE with a SelfAttention2d at 14x14 and at 7x7 in each half (--attn-at 14,7; or at one of the two): each
// pixel of those maps can draw on the whole image, where a 4x4 kernel sees its neighbours only.
struct ConvAttnVAE : VAE {
  nn::Conv2d conv1{1, 32, 4, {.stride = 2, .padding = 1}}, conv2{32, 64, 4, {.stride = 2, .padding = 1}};
  nn::SelfAttention2d attn1{32}, attn2{64}, attn3{64}, attn4{32};  // 14x14 keys pooled to 7x7; 7x7 unpooled
  nn::Linear fc21, fc22, fc3;
  nn::ConvTranspose2d up1{64, 32, 4, {.stride = 2, .padding = 1}}, up2{32, 1, 4, {.stride = 2, .padding = 1}};
  bool at14, at7;
  explicit ConvAttnVAE(const Config& c)
      : fc21(64 * 7 * 7, c.latent), fc22(64 * 7 * 7, c.latent), fc3(c.latent, 64 * 7 * 7),
        at14(c.attn_at != "7"), at7(c.attn_at != "14") {
    register_module("conv1", conv1), register_module("conv2", conv2), register_module("fc21", fc21);
    register_module("fc22", fc22), register_module("fc3", fc3), register_module("up1", up1);
    register_module("up2", up2);
    if (at14) register_module("attn1", attn1), register_module("attn4", attn4);
    if (at7) register_module("attn2", attn2), register_module("attn3", attn3);
  }
  Posterior encode(const Tensor& x) override {
    Tensor h = relu(conv1(x));  // (B,32,14,14)
    if (at14) h = attn1(h);
    h = relu(conv2(h));         // (B,64,7,7)
    if (at7) h = attn2(h);
    h = h.flatten(1);           // (B,3136)
    return {fc21(h), fc22(h)};
  }
  Tensor decode(const Tensor& z) override {
    Tensor h = relu(fc3(z)).reshape({-1, 64, 7, 7});  // (B,64,7,7)
    if (at7) h = attn3(h);
    h = relu(up1(h));  // (B,32,14,14)
    if (at14) h = attn4(h);
    return up2(h);  // logits (B,1,28,28)
  }
};

// A transformer encoder over patches, and MlpVAE's decoder.
struct AttnVAE : VAE {
  nn::Linear embed, fc21, fc22, fc3, fc4;
  nn::LearnedPositionalEncoding pos;
  nn::TransformerEncoder transformer;  // two pre-LN layers, and the final LayerNorm that pre-LN stacks need
  nn::AttentionPooling pool;
  explicit AttnVAE(const Config& c)
      : embed(16, c.d_model), fc21(c.d_model, c.latent), fc22(c.d_model, c.latent), fc3(c.latent, c.hidden),
        fc4(c.hidden, 784), pos(c.d_model, 49),
        transformer(c.d_model, c.heads, 2, {.dim_feedforward = 2 * c.d_model, .dropout = 0.0, .batch_first = true,
                                            .norm_first = true}, /*final_norm=*/true),
        pool(c.d_model) {
    register_module("embed", embed), register_module("pos", pos), register_module("transformer", transformer);
    register_module("pool", pool), register_module("fc21", fc21), register_module("fc22", fc22);
    register_module("fc3", fc3), register_module("fc4", fc4);
  }
  // (B,1,28,28) -> (B, 7 rows, 4, 7 columns, 4) -> (B,7,7,4,4) -> 49 tokens of 16 pixels, row by row -> (B,49,E)
  Tensor embed_patches(const Tensor& x) {
    const int64_t B = x.size(0);
    return pos(embed(x.reshape({B, 7, 4, 7, 4}).permute({0, 1, 3, 2, 4}).reshape({B, 49, 16})));
  }
  Posterior encode(const Tensor& x) override {
    auto [pooled, weights] = pool.forward(transformer(embed_patches(x)));  // (B,49,E) -> (B,E), (B,49)
    return {fc21(pooled), fc22(pooled), weights};
  }
  // The first layer's self-attention per head (B,NH,49,49): what each patch looks at. The layer is pre-LN, so
  // its attention sees norm1 of the embedded patches, as in TransformerEncoderLayer::forward.
  Tensor first_layer_attention(const Tensor& x) {
    auto& layer = transformer.layers.at<nn::TransformerEncoderLayer>(0);
    Tensor h = layer.norm1(embed_patches(x));
    return layer.self_attn.forward(h, h, h, {.need_weights = true, .average_attn_weights = false}).weights;
  }
  Tensor decode(const Tensor& z) override { return fc4(relu(fc3(z))).reshape({-1, 1, 28, 28}); }
};

std::unique_ptr<VAE> make_vae(const Config& c) {
  if (c.arch == "conv") return std::make_unique<ConvVAE>(c);
  if (c.arch == "attn") return std::make_unique<AttnVAE>(c);
  if (c.arch == "conv-attn") return std::make_unique<ConvAttnVAE>(c);
  return std::make_unique<MlpVAE>(c);
}

// ---- the training step ------------------------------------------------------------------------------------------

// -log p(x|z) (...): the BCE summed over each image's pixels, for logits (...,1,28,28) and images x broadcast to them.
Tensor neg_log_px(const Tensor& logits, const Tensor& x) {
  return nn::binary_cross_entropy_with_logits(logits, x.expand(logits.shape()), {.reduction = nn::Reduction::None})
      .sum({-3, -2, -1});
}

// The negative ELBO of each image (B), with one z ~ q(z|x) from `gen` (nullptr: the global generator).
Tensor neg_elbo(VAE& vae, const Tensor& x, Generator* gen) {
  Normal q = vae.posterior(x);
  Tensor kl = distributions::kl_divergence(q, Normal(zeros_like(q.loc()), ones_like(q.loc()))).sum({1});
  return neg_log_px(vae.decode(q.rsample({}, gen)), x) + kl;
}

double train_step(VAE& vae, optim::Adam& opt, const Tensor& x) {
  Tensor loss = neg_elbo(vae, x, nullptr).mean();  // nats per image
  opt.zero_grad();
  loss.backward();
  opt.step();
  return loss.item();
}

// ---- evaluation: negative ELBO, importance-weighted NLL, FD-FMNIST of samples, pictures ---------------------------

// The mean of f(x) (B) over `images`, in batches x of `batch` images, without a graph.
template <class F>
double mean_over(const Tensor& images, int64_t batch, F f) {
  NoGradGuard no_grad;
  double total = 0;
  for (int64_t i = 0; i < images.size(0); i += batch)
    total += f(images.narrow(0, i, std::min(batch, images.size(0) - i))).sum().item();
  return total / (double)images.size(0);
}

// The mean negative ELBO over `images`, with z's from Generator(seed): the same noise at every epoch.
double test_neg_elbo(VAE& vae, const Tensor& images, uint64_t seed) {
  Generator gen(seed);
  return mean_over(images, 500, [&](const Tensor& x) { return neg_elbo(vae, x, &gen); });
}

// -log p(x) ≈ -(logsumexp_i [log p(x|z_i) + log p(z_i) - log q(z_i|x)] - log k), z_1..z_k ~ q(z|x), for x (B) -> (B).
Tensor iw_nll(VAE& vae, const Tensor& x, int64_t k, Generator& gen) {
  Normal q = vae.posterior(x);
  Tensor z = q.sample({k}, &gen);  // (k,B,L)
  Tensor log_px = -neg_log_px(vae.decode(z.flatten(0, 1)).reshape({k, x.size(0), 1, 28, 28}), x);
  Tensor log_pz = Normal(zeros_like(q.loc()), ones_like(q.loc())).log_prob(z).sum({2});
  Tensor log_w = log_px + log_pz - q.log_prob(z).sum({2});  // (k,B)
  return -(logsumexp(log_w, 0) - std::log((double)k));
}

Tensor sample_images(VAE& vae, int64_t n, int64_t latent, Generator& gen) {
  NoGradGuard no_grad;
  std::vector<Tensor> parts;
  for (int64_t i = 0; i < n; i += 1000)
    parts.push_back(vae.decode_images(randn({std::min<int64_t>(1000, n - i), latent}, float32, &gen)));
  return cat(parts, 0);
}

void save_pictures(VAE& vae, const Config& c, const Tensor& test_images, const std::string& dir, Generator& gen) {
  NoGradGuard no_grad;
  viz::save_image_grid(sample_images(vae, 64, c.latent, gen), dir + "/samples.png");
  Tensor x = test_images.narrow(0, 0, 32);
  Posterior q = vae.encode(x);
  Tensor rows = stack({x.reshape({4, 8, 1, 28, 28}), vae.decode_images(q.mu).reshape({4, 8, 1, 28, 28})}, 1);
  viz::save_image_grid(rows.reshape({64, 1, 28, 28}), dir + "/reconstructions.png");
  if (c.latent == 2) {  // the decoder's image at each point of a 20x20 grid over [-3,3]², z2 growing upwards
    Tensor t = linspace(-3, 3, 20);
    Tensor z = stack({t.reshape({1, 20}).expand({20, 20}), -t.reshape({20, 1}).expand({20, 20})}, 2);
    viz::save_image_grid(vae.decode_images(z.reshape({400, 2})), dir + "/manifold.png", {.nrow = 20, .padding = 0});
  } else {  // row d: the first test image's μ with latent dim d swept over [-3,3]
    const int64_t dims = std::min<int64_t>(c.latent, 10);
    Tensor mask = eye(c.latent).narrow(0, 0, dims).unsqueeze(1);  // (dims,1,L)
    Tensor z = q.mu.narrow(0, 0, 1) * (1.0 - mask) + linspace(-3, 3, 10).reshape({1, 10, 1}) * mask;
    viz::save_image_grid(vae.decode_images(z.reshape({dims * 10, c.latent})), dir + "/traversal.png", {.nrow = 10});
  }
  if (c.arch != "attn") return;
  std::vector<Tensor> tiles;  // 16 overlays, their RGB bytes back as (3,56,56) tensors in [0,1] for one grid
  for (int64_t i = 0; i < 16; ++i) {
    viz::Image im = viz::render_overlay(x.select(0, i), q.attention.select(0, i).reshape({7, 7}), {.scale = 2});
    tiles.push_back(from_vector(std::vector<float>(im.pixels.begin(), im.pixels.end()), {56, 56, 3}) / 255.0);
  }
  viz::save_image_grid(stack(tiles).permute({0, 3, 1, 2}), dir + "/attention.png");
  // The first test image's patch-to-patch attention, a panel per head; patches labelled "row,column".
  std::vector<std::string> labels;
  for (int r = 0; r < 7; ++r)
    for (int col = 0; col < 7; ++col) labels.push_back(std::to_string(r) + "," + std::to_string(col));
  Tensor heads = dynamic_cast<AttnVAE&>(vae).first_layer_attention(x.narrow(0, 0, 1)).select(0, 0);  // (NH,49,49)
  viz::attention_heatmap(heads, dir + "/self_attention.png", {.row_labels = labels, .col_labels = labels});
}

// ---- main -------------------------------------------------------------------------------------------------------

int main(int argc, char** argv) {
  zoo::Cli cli("vae", "A variational autoencoder on Fashion-MNIST (Kingma and Welling 2014)",
               {.epochs = 10, .batch_size = 128, .lr = 1e-3});
  cli.option("arch", "encoder and decoder: mlp, conv, attn or conv-attn", std::string("mlp"));
  cli.option("latent", "size of the latent code z", 20, 1);
  cli.option("iw-samples", "k, importance samples per test image for the final NLL", 100, 1);
  cli.option("attn-at", "conv-attn: where to attend, 14,7 (both), 14 or 7 (a map's size)", std::string("14,7"));
  cli.option("iw-images", "the first this many test images for the final NLL", 10000, 1, 10000);
  cli.option("data", "the Fashion-MNIST folder (IDX files)", std::string("/usr/share/datasets/fashion-mnist"));
  cli.option("steps", "stop after this many optimizer steps in all (0: --epochs full epochs)", 0, 0);
  cli.option("minutes", "stop after this many minutes of training, evaluation excluded (0: no limit)", 0.0, 0.0);
  cli.option("fd-every", "FD-FMNIST of the samples every this many epochs too (0: only at the end)", 0, 0);
  cli.option("until-gain", "stop once the best test loss gains less than this many nats an epoch, over the last 5 "
                           "(0: never; training to convergence)", 0.0, 0.0);
  cli.option("resume", "continue from this checkpoint.safetensors (same --arch, --latent, --seed)", std::string());
  cli.option("eval", "evaluate and draw after training (--eval=false: train and save the checkpoint only)", true);
  return zoo::main_guard("vae", [&] {
    zoo::RunConfig run = cli.parse(argc, argv);
    Config c{.arch = cli.get<std::string>("arch"), .data_dir = cli.get<std::string>("data"),
             .latent = cli.get<int64_t>("latent"), .iw_samples = cli.get<int64_t>("iw-samples"),
             .iw_images = cli.get<int64_t>("iw-images")};
    c.attn_at = cli.get<std::string>("attn-at");
    cli.require(c.attn_at == "14,7" || c.attn_at == "14" || c.attn_at == "7",
                "--attn-at must be 14,7, 14 or 7, got '" + c.attn_at + "'");
    cli.require(c.arch == "mlp" || c.arch == "conv" || c.arch == "attn" || c.arch == "conv-attn",
                "--arch must be mlp, conv, attn or conv-attn, got '" + c.arch + "'");
    const int64_t fd_every = cli.get<int64_t>("fd-every");
    const double until_gain = cli.get<double>("until-gain");
    cli.require(until_gain == 0 || cli.get<bool>("eval"), "--until-gain needs the test loss: not with --eval=false");
    if (run.quick) {
      run.epochs = 1, c.train_images = 512, c.test_images = 500, c.iw_images = 200, c.fd_samples = 1000;
      c.iw_samples = std::min<int64_t>(c.iw_samples, 10);
      std::printf("vae: --quick: 512 training images, 1 epoch; test loss on 500 test images, IW-NLL with k = %lld on "
                  "200, FD-FMNIST of 1000 samples against 1000 test images\n", (long long)c.iw_samples);
    }
    Tensor train = data::load_fashion_mnist(true, data::Scale::ZeroOne, c.data_dir).images.narrow(0, 0, c.train_images);
    Tensor test = data::load_fashion_mnist(false, data::Scale::ZeroOne, c.data_dir).images.narrow(0, 0, c.test_images);
    // Each rank's share of every batch: its shard of the epoch's order (with one rank, the whole order).
    const int ranks = dist::world_size();
    cli.require(run.batch_size % ranks == 0, "--batch-size " + std::to_string(run.batch_size) +
                                                 " must divide evenly among " + std::to_string(ranks) + " ranks");
    const int64_t batch = run.batch_size / ranks;
    dist::DistributedSampler sampler(train.size(0), {.shuffle = true, .seed = run.seed});
    data::DataLoader loader(data::TensorDataset{{train}}, {.batch_size = batch});
    const int64_t per_epoch = (sampler.num_samples() + batch - 1) / batch;
    int64_t steps = cli.get<int64_t>("steps") > 0 ? cli.get<int64_t>("steps") : run.epochs * per_epoch;
    run.epochs = (int)((steps + per_epoch - 1) / per_epoch);

    manual_seed(run.seed);
    std::unique_ptr<VAE> model = make_vae(c);
    VAE& vae = *model;
    optim::Adam opt(vae.parameters(), {.lr = run.lr});
    const std::string resume = cli.get<std::string>("resume");  // restores the weights, Adam and the generator
    int64_t step = resume.empty() ? 0 : zoo::resume_training(cli, run, vae, opt);  // and settles --lr
    dist::DistributedDataParallel ddp(vae);  // rank 0's weights everywhere; backward averages the gradients
    // Each rank draws its own z noise; rank 0 keeps the stream of a single-process run (and of the checkpoint).
    if (dist::rank() > 0) manual_seed(run.seed + 1000003 * (uint64_t)dist::rank() + (uint64_t)step);
    std::printf("vae: %s, latent %lld, %lld parameters; training from step %lld of %lld on %d rank(s)\n",
                c.arch.c_str(), (long long)c.latent, (long long)vae.num_parameters(), (long long)step,
                (long long)steps, ranks);
    zoo::RunLog log(cli, run);
    log.set_config("train_images", c.train_images), log.set_config("test_images", c.test_images);
    const bool eval = cli.get<bool>("eval") && dist::rank() == 0;  // the other ranks go on to the next epoch

    zoo::TrainClock clock(cli.get<double>("minutes"));
    // Out of time: with several ranks, when any rank is (their clocks differ a little), so that all stop together.
    auto out_of_time = [&] {
      return ranks == 1 ? clock.over() : dist::all_reduce(clock.over() ? 1.0 : 0.0, dist::ReduceOp::Max) > 0;
    };
    Generator fd_gen(run.seed + 3);  // per-epoch FD-FMNIST samples: a stream apart from the final evaluation's
    std::vector<double> test_losses;  // per epoch, for --until-gain

    // Epoch e's batch order is a function of (seed, e) alone, so a resumed run starts at batch step % per_epoch.
    for (int64_t epoch = step / per_epoch; step < steps && !out_of_time(); ++epoch) {
      std::vector<int64_t> order = sampler.indices(epoch);
      zoo::ProgressBar bar(log.epoch_label((int)epoch + 1), per_epoch);
      clock.start();
      for (int64_t b = step % per_epoch, first = b; b < per_epoch && step < steps; ++b, ++step) {
        if (b > first && out_of_time()) {
          steps = step;  // the budget ends the run here, mid-epoch or not
          break;
        }
        Tensor x = loader.batch(order, b)[0];
        double loss;
        try {
          loss = train_step(vae, opt, x);
        } catch (const Error&) {  // non-finite weights fail inside an op ("Normal: scale must be > 0, got nan")
          zoo::check_finite_parameters(vae, step + 1);
          throw;
        }
        zoo::check_finite_loss(loss, step + 1);
        bar.update(loss, x.size(0));
      }
      clock.stop();
      bar.finish();
      zoo::Metrics row{{"train_loss", dist::all_reduce(bar.mean_loss(), dist::ReduceOp::Avg)}};
      if (eval) {
        test_losses.push_back(test_neg_elbo(vae, test, run.seed + 1));
        row.emplace_back("test_loss", test_losses.back());
      }
      // Converged: over the last 5 epochs the best test loss improved by less than --until-gain nats an epoch.
      // The best, not the last: one epoch's loss moves by more than 0.1 nats either way, and would stop a run early.
      const size_t n = test_losses.size();
      const bool converged = until_gain > 0 && n >= 6 &&
                             (*std::min_element(test_losses.begin(), test_losses.end() - 5) -
                              *std::min_element(test_losses.begin(), test_losses.end())) / 5 < until_gain;
      if (ranks == 1 ? converged : dist::all_reduce(converged ? 1.0 : 0.0, dist::ReduceOp::Max) > 0) steps = step;
      if (eval && fd_every > 0 && (epoch + 1) % fd_every == 0)
        row.emplace_back("fd_fmnist", zoo::fd_fmnist(sample_images(vae, c.fd_samples, c.latent, fd_gen),
                                                     {.data_dir = c.data_dir, .quick = run.quick}));
      row.emplace_back("train_minutes", clock.minutes());
      log.epoch((int)epoch + 1, row);
    }
    if (dist::rank() == 0)
      optim::save_training_state(
          log.dir() + "/checkpoint.safetensors", vae, opt, optim::StateDict{}, step,
          zoo::checkpoint_metadata(run, {{"arch", c.arch}, {"latent", std::to_string(c.latent)}}));
    if (eval) {
      Generator gen(run.seed + 2);  // evaluation draws from streams of its own, never from training's
      const double nll = mean_over(test.narrow(0, 0, c.iw_images), std::max<int64_t>(1, 4000 / c.iw_samples),
                                   [&](const Tensor& x) { return iw_nll(vae, x, c.iw_samples, gen); });
      std::printf("vae: IW-NLL %.2f nats (k = %lld, the first %lld test images); now FD-FMNIST of %lld samples\n", nll,
                  (long long)c.iw_samples, (long long)c.iw_images, (long long)c.fd_samples);
      const double fd = zoo::fd_fmnist(sample_images(vae, c.fd_samples, c.latent, gen),
                                       {.data_dir = c.data_dir, .quick = run.quick});
      save_pictures(vae, c, test, log.dir(), gen);
      log.final({{"neg_elbo", test_neg_elbo(vae, test, run.seed + 1)}, {"iw_nll", nll}, {"fd_fmnist", fd},
                 {"train_minutes", clock.minutes()}, {"steps", (double)step}});
    }
    log.finish();
    return 0;
  });
}
