"""The recipes of models/vae.cpp in PyTorch 1.13 (CPU), to compare heed's runs with on the same data and machine.

Same architectures (--arch mlp | conv | attn, layer for layer, PyTorch's default initialisation, which heed's
layers copy), same data (the Fashion-MNIST IDX files, pixels / 255 in [0,1] as Bernoulli targets), same loss
(per image: BCE of the decoder's logits summed over the 784 pixels + KL(q(z|x) || N(0,I)); the batch mean is
minimised), Adam at 1e-3, batches of 128 (the last one of 96), and the same evaluation:

  per epoch   the train loss (the epoch's mean) and the test neg-ELBO over the 10000 test images (one z per image,
              from a generator seeded seed+1, so every epoch sees the same noise);
  at the end  the importance-weighted NLL with k = --iw-samples (Burda et al. 2016), in batches of 4000/k images,
              and 10000 samples sigmoid(decoder(z)), z ~ N(0,I), written to OUT/samples.safetensors (10000,1,28,28)
              float32, which heed's judge scores:  build/classifier --fd-of OUT/samples.safetensors

What cannot be the same: the random streams (initial weights, batch order, noise) are PyTorch's, not heed's, so a
run matches heed's in distribution, not bit for bit. --eval-heed checks the other half: heed's trained weights,
evaluated here, give heed's numbers (up to the noise of different random draws). Run it with the Debian
interpreter, which has torch:

  /usr/bin/python3 models/reference/vae.py --arch mlp --epochs 10 --threads 1 --out runs/reference_vae_mlp
"""
import argparse
import gzip
import json
import math
import os
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ---- data -------------------------------------------------------------------------------------------------------

def load_images(path, count):
    """An IDX image file (gzipped) -> uint8 (count,1,28,28). Checks the magic, the dims and the byte count."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, n, rows, cols = struct.unpack(">IIII", raw[:16])
    if magic != 0x00000803 or (n, rows, cols) != (count, 28, 28) or len(raw) != 16 + n * rows * cols:
        raise SystemExit(f"vae.py: {path}: magic {magic:#x}, dims ({n},{rows},{cols}), {len(raw)} bytes decompressed;"
                         f" expected 0x803, ({count},28,28), {16 + count * 784} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(count, 1, 28, 28)


def load_fashion_mnist(folder, train):
    name, count = ("train", 60000) if train else ("t10k", 10000)
    x = load_images(os.path.join(folder, f"{name}-images-idx3-ubyte.gz"), count)
    return torch.from_numpy(x.astype(np.float32) / 255.0)  # heed's data::Scale::ZeroOne


def load_safetensors(path):
    """{name: tensor} of a safetensors file (F32, F64 and I64 tensors; enough for heed's checkpoints)."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    dtypes = {"F32": "<f4", "F64": "<f8", "I64": "<i8"}
    return {k: torch.from_numpy(np.frombuffer(raw, dtypes[v["dtype"]], offset=8 + n + v["data_offsets"][0],
                                              count=int(np.prod(v["shape"]))).reshape(v["shape"]).copy())
            for k, v in header.items() if v["dtype"] in dtypes}


def save_safetensors(path, name, t):
    """One float32 tensor in the safetensors format: 8-byte LE header length, JSON header, raw LE data."""
    data = t.detach().contiguous().to(torch.float32).numpy().astype("<f4").tobytes()
    header = json.dumps({name: {"dtype": "F32", "shape": list(t.shape), "data_offsets": [0, len(data)]}}).encode()
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + data)


# ---- the models: each encode(x) -> (mu, logvar), decode(z) -> logits (B,1,28,28) -------------------------------

class MlpVAE(nn.Module):  # pytorch/examples' VAE, with its parameter names
    def __init__(self, latent, hidden=400):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, hidden), nn.Linear(hidden, latent), nn.Linear(hidden, latent)
        self.fc3, self.fc4 = nn.Linear(latent, hidden), nn.Linear(hidden, 784)

    def encode(self, x):
        h = F.relu(self.fc1(x.flatten(1)))
        return self.fc21(h), self.fc22(h)

    def decode(self, z):
        return self.fc4(F.relu(self.fc3(z))).reshape(-1, 1, 28, 28)


class ConvVAE(nn.Module):
    def __init__(self, latent):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 4, 2, 1), nn.Conv2d(32, 64, 4, 2, 1)
        self.fc21, self.fc22, self.fc3 = nn.Linear(3136, latent), nn.Linear(3136, latent), nn.Linear(latent, 3136)
        self.up1, self.up2 = nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ConvTranspose2d(32, 1, 4, 2, 1)

    def encode(self, x):
        h = F.relu(self.conv2(F.relu(self.conv1(x)))).flatten(1)  # (B,64,7,7) -> (B,3136)
        return self.fc21(h), self.fc22(h)

    def decode(self, z):
        return self.up2(F.relu(self.up1(F.relu(self.fc3(z)).reshape(-1, 64, 7, 7))))


class LearnedPositionalEncoding(nn.Module):  # heed's nn::LearnedPositionalEncoding: x + W[:T], W ~ N(0, 0.02²)
    def __init__(self, max_len, d_model):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(max_len, d_model) * 0.02)

    def forward(self, x):
        return x + self.weight[:x.shape[1]]


class AttentionPooling(nn.Module):  # heed's nn::AttentionPooling: a learned query ~ N(0, 1/E) attends, one head
    def __init__(self, d_model):
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, d_model) / math.sqrt(d_model))
        self.attn = nn.MultiheadAttention(d_model, 1, batch_first=True)

    def forward(self, x):  # (B,T,E) -> (B,E)
        return self.attn(self.query.expand(x.shape[0], 1, -1), x, x, need_weights=False)[0].squeeze(1)


class AttnVAE(nn.Module):
    """49 patches of 4x4 as tokens, two pre-LN transformer layers with a final LayerNorm, AttentionPooling, and
    MlpVAE's decoder. The parameter names are heed's, so --eval-heed can load heed's checkpoints."""

    def __init__(self, latent, hidden=400, d_model=64, heads=4):
        super().__init__()
        self.embed, self.pos = nn.Linear(16, d_model), LearnedPositionalEncoding(49, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=2 * d_model, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)
        self.pool = AttentionPooling(d_model)
        self.fc21, self.fc22 = nn.Linear(d_model, latent), nn.Linear(d_model, latent)
        self.fc3, self.fc4 = nn.Linear(latent, hidden), nn.Linear(hidden, 784)

    def encode(self, x):
        B = x.shape[0]
        tokens = x.reshape(B, 7, 4, 7, 4).permute(0, 1, 3, 2, 4).reshape(B, 49, 16)
        pooled = self.pool(self.transformer(self.pos(self.embed(tokens))))  # (B,49,64) -> (B,64)
        return self.fc21(pooled), self.fc22(pooled)

    def decode(self, z):
        return self.fc4(F.relu(self.fc3(z))).reshape(-1, 1, 28, 28)


# ---- the loss and the evaluation ---------------------------------------------------------------------------------

def neg_log_px(logits, x):  # logits (...,1,28,28), x broadcast to them -> (...)
    return F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum((-3, -2, -1))


def neg_elbo(model, x, gen=None):  # x (B,1,28,28) -> (B)
    mu, logvar = model.encode(x)
    std = torch.exp(0.5 * logvar)
    z = mu + std * torch.randn(mu.shape, generator=gen)
    kl = 0.5 * (mu.pow(2) + std.pow(2) - 1 - logvar).sum(1)  # KL(N(mu, std²) || N(0, I))
    return neg_log_px(model.decode(z), x) + kl


@torch.no_grad()
def mean_over(images, batch, f):
    return sum(f(images[i:i + batch]).sum().item() for i in range(0, len(images), batch)) / len(images)


def test_neg_elbo(model, test, seed):
    gen = torch.Generator().manual_seed(seed)
    return mean_over(test, 500, lambda x: neg_elbo(model, x, gen))


def iw_nll(model, x, k, gen):  # -(logsumexp_i [log p(x|z_i) + log p(z_i) - log q(z_i|x)] - log k), x (B) -> (B)
    mu, logvar = model.encode(x)
    std = torch.exp(0.5 * logvar)
    eps = torch.randn((k,) + mu.shape, generator=gen)
    z = mu + std * eps  # (k,B,L)
    log_px = -neg_log_px(model.decode(z.flatten(0, 1)).reshape(k, x.shape[0], 1, 28, 28), x)
    log_2pi = math.log(2 * math.pi)
    log_pz = (-0.5 * (z.pow(2) + log_2pi)).sum(2)
    log_qz = (-0.5 * (eps.pow(2) + log_2pi) - torch.log(std)).sum(2)
    return -(torch.logsumexp(log_px + log_pz - log_qz, 0) - math.log(k))


# ---- main --------------------------------------------------------------------------------------------------------

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", choices=["mlp", "conv", "attn"], default="mlp")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--latent", type=int, default=20)
    p.add_argument("--iw-samples", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads; 1 to compare with heed --threads 1")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--out", default=None, help="folder for samples.safetensors and metrics.json")
    p.add_argument("--quick", action="store_true", help="512 training images, 1 epoch, 500 test images, k <= 10")
    p.add_argument("--eval-heed", metavar="CHECKPOINT", help="train nothing: evaluate the weights in heed's "
                   "checkpoint.safetensors (of the same --arch), to check that both programs measure alike")
    a = p.parse_args()
    out = a.out or os.path.join("runs", "reference_vae", time.strftime("%Y-%m-%d_%H-%M-%S"))
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    start = time.time()

    train, test = load_fashion_mnist(a.data, True), load_fashion_mnist(a.data, False)
    n_samples = 10000
    if a.quick:
        train, test, a.epochs, a.iw_samples, n_samples = train[:512], test[:500], 1, min(a.iw_samples, 10), 1000
    model = {"mlp": MlpVAE, "conv": ConvVAE, "attn": AttnVAE}[a.arch](a.latent)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    print(f"vae.py: torch {torch.__version__}, {torch.get_num_threads()} thread(s); {a.arch}, latent {a.latent}, "
          f"{sum(q.numel() for q in model.parameters())} parameters", flush=True)

    epochs = []
    if a.eval_heed:  # heed saves the model's tensors as "model.<name>", next to Adam's and the generator's
        state = load_safetensors(a.eval_heed)
        model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
        a.epochs = 0
        model.eval()
        epochs.append({"epoch": 0, "test_loss": test_neg_elbo(model, test, a.seed + 1)})
    for epoch in range(1, a.epochs + 1):
        model.train()
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(a.seed * 1000 + epoch))
        total = 0.0
        for i in range(0, len(train), a.batch_size):
            x = train[order[i:i + a.batch_size]]
            loss = neg_elbo(model, x).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(x)
        model.eval()
        row = {"epoch": epoch, "train_loss": total / len(train), "test_loss": test_neg_elbo(model, test, a.seed + 1),
               "time_s": time.time() - start}
        epochs.append(row)
        print(f"epoch {epoch}/{a.epochs}  train_loss {row['train_loss']:.4f}  test_loss {row['test_loss']:.4f}  "
              f"({row['time_s']:.1f} s)", flush=True)
    train_s = time.time() - start

    model.eval()
    gen = torch.Generator().manual_seed(a.seed + 2)
    nll = mean_over(test, max(1, 4000 // a.iw_samples), lambda x: iw_nll(model, x, a.iw_samples, gen))
    with torch.no_grad():
        samples = torch.cat([torch.sigmoid(model.decode(torch.randn(min(1000, n_samples - i), a.latent,
                                                                    generator=gen)))
                             for i in range(0, n_samples, 1000)])
    path = os.path.join(out, "samples.safetensors")
    save_safetensors(path, "samples", samples)
    final = {"neg_elbo": epochs[-1]["test_loss"], "iw_nll": nll, "iw_samples": a.iw_samples,
             "train_s": train_s, "wall_s": time.time() - start}
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump({"model": "reference/vae.py", "torch": torch.__version__, "config": vars(a), "epochs": epochs,
                   "final": final}, f, indent=1)
    print(f"vae.py: neg-ELBO {final['neg_elbo']:.2f}  IW-NLL {nll:.2f} (k = {a.iw_samples})  training {train_s:.1f} s,"
          f" in all {final['wall_s']:.1f} s\nvae.py: {len(samples)} samples in {path}; score them with heed's judge:\n"
          f"  build/classifier --fd-of {path}")


if __name__ == "__main__":
    main()
