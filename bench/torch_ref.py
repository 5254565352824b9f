"""PyTorch's side of heed's benchmarks: the same workloads, with the same shapes, timed the same way.

The shapes follow the shared reference (../shared/reference/torch_ref.py) so that the two scripts time
identical work; this one adds `overhead`, the per-op framework cost that bench/bench_autograd.cpp times.
Run it with Debian's PyTorch, and the same threads and OpenBLAS kernel as heed:
    OMP_NUM_THREADS=1 /usr/bin/python3 bench/torch_ref.py --threads 1 --json [--only NAME]
Times are medians in ms per step (forward + backward + optimizer update, where there is one).
"""
import argparse
import json
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def median_ms(step, warm=3, reps=20):
    for _ in range(warm):
        step()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def gemm(n):
    a, b = torch.randn(n, n), torch.randn(n, n)
    ms = median_ms(lambda: a @ b, reps=10)
    return ms, 2 * n ** 3 / (ms * 1e-3) / 1e9


def overhead(n_ops=1000):
    """1,000 chained ops on one-element tensors, forward and backward: microseconds per op."""
    x = torch.tensor(0.5, requires_grad=True)
    c = torch.tensor(1.0001)

    def step():
        y = x
        for _ in range(n_ops // 2):
            y = y * c + c
        y.backward()
        x.grad = None
    return median_ms(step, reps=20) * 1e3 / n_ops


def mha_step(B=16, T=128, d=256, h=8):
    m = nn.MultiheadAttention(d, h, batch_first=True)
    x = torch.randn(B, T, d, requires_grad=True)
    opt = torch.optim.Adam(m.parameters(), 1e-3)

    def step():
        opt.zero_grad()
        y, _ = m(x, x, x, need_weights=False)
        y.square().mean().backward()
        opt.step()
    return median_ms(step)


class VAE(nn.Module):  # pytorch/examples' VAE: 784-400-20
    def __init__(self):
        super().__init__()
        self.fc1, self.mu, self.lv = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        mu, lv = self.mu(h), self.lv(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * lv)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, lv


def vae_step(B=128):
    m = VAE()
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    x = torch.rand(B, 784)

    def step():
        opt.zero_grad()
        r, mu, lv = m(x)
        loss = F.binary_cross_entropy(r, x, reduction="sum") - 0.5 * torch.sum(1 + lv - mu.pow(2) - lv.exp())
        loss.backward()
        opt.step()
    return median_ms(step)


def gan_step(B=64, z=100):  # MLP GAN on 28x28: one D step and one G step
    G = nn.Sequential(nn.Linear(z, 256), nn.LeakyReLU(0.2), nn.Linear(256, 512), nn.LeakyReLU(0.2),
                      nn.Linear(512, 784), nn.Tanh())
    D = nn.Sequential(nn.Linear(784, 512), nn.LeakyReLU(0.2), nn.Linear(512, 256), nn.LeakyReLU(0.2), nn.Linear(256, 1))
    og = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    real = torch.rand(B, 784) * 2 - 1
    ones, zeros = torch.ones(B, 1), torch.zeros(B, 1)

    def step():
        od.zero_grad()
        fake = G(torch.randn(B, z))
        d_loss = (F.binary_cross_entropy_with_logits(D(real), ones)
                  + F.binary_cross_entropy_with_logits(D(fake.detach()), zeros))
        d_loss.backward()
        od.step()
        og.zero_grad()
        F.binary_cross_entropy_with_logits(D(fake), ones).backward()
        og.step()
    return median_ms(step)


def gpt_step(B=32, T=64, d=128, h=4, L=4, V=96):  # char-level GPT with pre-LN blocks
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.attn = nn.MultiheadAttention(d, h, batch_first=True)
            self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

        def forward(self, x, mask):
            a = self.ln1(x)
            x = x + self.attn(a, a, a, attn_mask=mask, need_weights=False)[0]
            return x + self.mlp(self.ln2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(V, d), nn.Embedding(T, d)
            self.blocks = nn.ModuleList([Block() for _ in range(L)])
            self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, V)

        def forward(self, idx):
            mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
            x = self.tok(idx) + self.pos(torch.arange(T))
            for b in self.blocks:
                x = b(x, mask)
            return self.head(self.ln(x))

    m = GPT()
    opt = torch.optim.AdamW(m.parameters(), 1e-3)
    idx, tgt = torch.randint(0, V, (B, T)), torch.randint(0, V, (B, T))

    def step():
        opt.zero_grad()
        F.cross_entropy(m(idx).view(-1, V), tgt.view(-1)).backward()
        opt.step()
    return median_ms(step, reps=10)


def conv_ae_step(B=64):  # a small convolutional autoencoder on 28x28
    enc = nn.Sequential(nn.Conv2d(1, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU())
    dec = nn.Sequential(nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, 2, 1),
                        nn.Sigmoid())
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), 1e-3)
    x = torch.rand(B, 1, 28, 28)

    def step():
        opt.zero_grad()
        F.mse_loss(dec(enc(x)), x).backward()
        opt.step()
    return median_ms(step)


def attn_long(B=1, T=2048, d=256, h=8):  # long causal self-attention, forward + backward, no optimizer
    m = nn.MultiheadAttention(d, h, batch_first=True)
    x = torch.randn(B, T, d, requires_grad=True)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)

    def step():
        y, _ = m(x, x, x, attn_mask=mask, need_weights=False)
        y.square().mean().backward()
    return median_ms(step, warm=1, reps=5)


WORKLOADS = {"mha_step": mha_step, "vae_step": vae_step, "gan_step": gan_step, "gpt_step": gpt_step,
             "conv_ae_step": conv_ae_step, "attn_long": attn_long}

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", choices=sorted(WORKLOADS) + ["gemm", "overhead"])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with open("/proc/self/statm") as f:  # resident memory before any workload: the baseline
        base_rss_mb = int(f.read().split()[1]) * 4096 / 1e6
    out = {"torch": torch.__version__, "threads": args.threads}
    if args.only in (None, "gemm"):
        for n in (128, 512, 1024):
            ms, gf = gemm(n)
            out[f"gemm_{n}_ms"], out[f"gemm_{n}_gflops"] = round(ms, 4), round(gf, 1)
    if args.only in (None, "overhead"):
        out["overhead_us_per_op"] = round(overhead(), 3)
    for name, f in WORKLOADS.items():
        if args.only == name or (args.only is None and name != "attn_long"):
            out[f"{name}_ms"] = round(f(), 3)
    if args.only in WORKLOADS:  # alone in this process: its peak is the workload's
        out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6, 1)  # KiB -> MB
        out["peak_rss_above_base_mb"] = round(out["peak_rss_mb"] - base_rss_mb, 1)
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
