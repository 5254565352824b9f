"""The default recipe of models/gan.cpp (--arch dcgan, BCE loss) in PyTorch 1.13 (CPU), as a yardstick for heed.

Layer for layer what gan.cpp builds with its defaults (F = 32 channels at 14x14, nz = 100):

  G  Linear(100, 64*49) -> (B,64,7,7) -> BatchNorm2d -> ReLU -> ConvTranspose2d(64,32,4,2,1) -> BatchNorm2d -> ReLU
     -> ConvTranspose2d(32,1,4,2,1) -> tanh: images (B,1,28,28) in [-1,1]
  D  Conv2d(1,32,4,2,1) -> LeakyReLU(0.2) -> Conv2d(32,64,4,2,1) -> LeakyReLU(0.2) -> Linear(64*49, 1): logits (B)

initialised as gan.cpp's dcgan_init (every "...weight" N(0, 0.02), BatchNorm's N(1, 0.02), every bias 0), trained
on the 60000 Fashion-MNIST training images scaled to [-1,1] (2x/255 - 1), reshuffled every epoch, in batches of
32, with Adam 2e-4, betas (0.5, 0.999), for G and for D. Each batch is one D step, then one G step:

  D  fake = G(z) without a graph (G in training mode, so its BatchNorms use the batch's statistics); D scores
     cat(real, fake) in one pass; loss BCE(s_real, 1) + BCE(s_fake, 0), each a mean over the batch
  G  fresh z; loss BCE(D(G(z)), 1), the non-saturating -log D(G(z)); gradients for G's parameters alone

What is measured: at every "FD point" G, in eval mode (BatchNorm's running statistics), draws 10000 images
(G(z)+1)/2 in [0,1] from noise of a generator of its own (seeded seed+2), written as OUT/samples_<NN>.safetensors
(one float32 tensor "samples", (10000,1,28,28)) and as a row of OUT/points.csv. There is a point every
--fd-minutes of training time (evaluation excluded) and one at the end; OUT/samples.safetensors is the last.
heed's judge scores them:  build/classifier --fd-of OUT/samples_01.safetensors  (or pass --judge, below). The
judge trains its classifier first (minutes) when its weights are not cached; --judge-quick avoids that.

The random streams are PyTorch's, not heed's, so a run matches heed's in distribution, not bit for bit. Run it
with the Debian interpreter, which has torch:

  /usr/bin/python3 models/reference/gan.py --epochs 3 --threads 1 --out runs/reference_gan --judge build/classifier
"""
import argparse
import csv
import gzip
import io
import json
import math
import os
import re
import struct
import subprocess
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ---- files: every one is written to a temporary name, then renamed ------------------------------------------------

def write_atomic(path, data):
    """bytes or str -> path, never seen half-written: a temporary file beside it, then os.replace."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_safetensors(path, name, t):
    """One float32 tensor in the safetensors format: the header's length (8 bytes LE), the JSON header (padded with
    spaces to a multiple of 8), then the little-endian data."""
    data = t.detach().contiguous().to(torch.float32).numpy().astype("<f4").tobytes()
    header = json.dumps({name: {"dtype": "F32", "shape": list(t.shape), "data_offsets": [0, len(data)]}}).encode()
    header += b" " * (-len(header) % 8)
    write_atomic(path, struct.pack("<Q", len(header)) + header + data)


def write_csv(path, fields, rows):
    text = io.StringIO()
    w = csv.DictWriter(text, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    write_atomic(path, text.getvalue())


# ---- data -------------------------------------------------------------------------------------------------------

def load_train_images(folder):
    """The 60000 training images of Fashion-MNIST (a gzipped IDX file) -> float32 (60000,1,28,28) in [-1,1]."""
    path = os.path.join(folder, "train-images-idx3-ubyte.gz")
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, n, rows, cols = struct.unpack(">IIII", raw[:16])
    if magic != 0x803 or (n, rows, cols) != (60000, 28, 28) or len(raw) != 16 + n * rows * cols:
        raise SystemExit(f"gan.py: {path}: magic {magic:#x}, dims ({n},{rows},{cols}), {len(raw)} bytes decompressed;"
                         f" expected 0x803, (60000,28,28), {16 + 60000 * 784} bytes")
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, 1, 28, 28)
    table = (2.0 * np.arange(256) / 255.0 - 1.0).astype(np.float32)  # heed's data::Scale::MinusOneOne, per byte
    return torch.from_numpy(table[pixels])


# ---- the models, with gan.cpp's parameter names ---------------------------------------------------------------

class Generator(nn.Module):
    def __init__(self, nz=100, features=32):
        super().__init__()
        self.fc = nn.Linear(nz, 2 * features * 49)
        self.bn0, self.bn1 = nn.BatchNorm2d(2 * features), nn.BatchNorm2d(features)
        self.up1 = nn.ConvTranspose2d(2 * features, features, 4, stride=2, padding=1)  # 7 -> 14
        self.up2 = nn.ConvTranspose2d(features, 1, 4, stride=2, padding=1)  # 14 -> 28

    def forward(self, z):  # (B,nz) -> (B,1,28,28) in [-1,1]
        h = F.relu(self.bn0(self.fc(z).reshape(z.shape[0], -1, 7, 7)))  # (B,2F,7,7)
        h = F.relu(self.bn1(self.up1(h)))  # (B,F,14,14)
        return torch.tanh(self.up2(h))


class Discriminator(nn.Module):
    def __init__(self, features=32):
        super().__init__()
        self.conv1 = nn.Conv2d(1, features, 4, stride=2, padding=1)  # 28 -> 14
        self.conv2 = nn.Conv2d(features, 2 * features, 4, stride=2, padding=1)  # 14 -> 7
        self.fc = nn.Linear(2 * features * 49, 1)

    def forward(self, x):  # (B,1,28,28) -> logits (B)
        h = F.leaky_relu(self.conv2(F.leaky_relu(self.conv1(x), 0.2)), 0.2)
        return self.fc(h.flatten(1)).reshape(-1)


@torch.no_grad()
def dcgan_init(module):
    """gan.cpp's dcgan_init: names ending in "weight" N(0, 0.02), or N(1, 0.02) in a BatchNorm ("bn"); the rest 0."""
    for name, p in module.named_parameters():
        if name.endswith("weight"):
            p.normal_(1.0 if "bn" in name else 0.0, 0.02)
        else:
            p.zero_()


# ---- the training steps ---------------------------------------------------------------------------------------

def d_step(G, D, opt_d, real, nz):
    B = real.shape[0]
    with torch.no_grad():  # no graph through G: D's step cannot move it
        fake = G(torch.randn(B, nz))
    scores = D(torch.cat([real, fake]))  # (2B): one pass of D for both halves
    s_real, s_fake = scores[:B], scores[B:]
    loss = (F.binary_cross_entropy_with_logits(s_real, torch.ones_like(s_real))
            + F.binary_cross_entropy_with_logits(s_fake, torch.zeros_like(s_fake)))
    opt_d.zero_grad()
    loss.backward()
    opt_d.step()
    return loss.item()


def g_step(G, D, opt_g, B, nz):
    scores = D(G(torch.randn(B, nz)))
    loss = F.binary_cross_entropy_with_logits(scores, torch.ones_like(scores))  # non-saturating: -log D(G(z))
    params = list(G.parameters())
    for p, g in zip(params, torch.autograd.grad(loss, params)):  # G's gradients only: D's weights stay put
        p.grad = g
    opt_g.step()
    return loss.item()


@torch.no_grad()
def sample_images(G, n, nz, gen):
    """n images (n,1,28,28) in [0,1] from G in eval mode (BatchNorm's running statistics), 500 at a time."""
    G.eval()
    parts = [G(torch.randn(min(500, n - i), nz, generator=gen)) for i in range(0, n, 500)]
    G.train()
    return (torch.cat(parts) + 1.0) * 0.5


# ---- the judge ------------------------------------------------------------------------------------------------

def judge_weights_path():  # where heed's judge caches its weights (models/zoo/judge.cpp's judge_path)
    for var, sub in (("HEED_CACHE", ""), ("XDG_CACHE_HOME", "heed"), ("HOME", os.path.join(".cache", "heed"))):
        if os.environ.get(var):
            return os.path.join(os.environ[var], sub, "fmnist_classifier.safetensors")
    return os.path.join(tempfile.gettempdir(), "heed-cache", "fmnist_classifier.safetensors")


def judge(program, path, a):
    """FD-FMNIST of the samples in `path`, from heed's `classifier --fd-of` (its run folder is thrown away)."""
    with tempfile.TemporaryDirectory(prefix="ganref_judge_") as tmp:
        command = [program, "--fd-of", path, "--data", a.data, "--threads", str(a.threads),
                   "--out", os.path.join(tmp, "run")] + (["--quick"] if a.judge_quick else [])
        r = subprocess.run(command, capture_output=True, text=True)
    m = re.search(r"FD-FMNIST (\S+):", r.stdout)
    if r.returncode != 0 or not m:
        raise SystemExit(f"gan.py: {' '.join(command)} failed (exit {r.returncode}):\n{r.stdout}{r.stderr}")
    return float(m.group(1))


# ---- main --------------------------------------------------------------------------------------------------------

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--minutes", type=float, default=0.0,
                   help="stop once training (not evaluation) has taken this many minutes; 0: no limit")
    p.add_argument("--fd-minutes", type=float, default=0.0,
                   help="an FD point every this many minutes of training time, and one at the end; 0: at the end")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads; 1 to compare with heed --threads 1")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--out", default=None, help="folder for samples_<NN>.safetensors, points.csv, metrics.json")
    p.add_argument("--judge", metavar="PATH", help="heed's classifier program: after training, score every FD point "
                   "with it (--fd-of) and add a column fd_fmnist to points.csv")
    p.add_argument("--judge-quick", action="store_true", help="pass --quick to the judge: without cached weights it "
                   "judges with an untrained network (a smoke test) rather than training one first")
    a = p.parse_args()
    nz, features, batch_size, lr, betas, n_fd = 100, 32, 32, 2e-4, (0.5, 0.999), 10000
    out = a.out or os.path.join("runs", "reference_gan", time.strftime("%Y-%m-%d_%H-%M-%S"))
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    start = time.time()

    train = load_train_images(a.data)
    G, D = Generator(nz, features), Discriminator(features)
    dcgan_init(G), dcgan_init(D)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
    per_epoch = math.ceil(len(train) / batch_size)
    print(f"gan.py: torch {torch.__version__}, {torch.get_num_threads()} thread(s); dcgan, G "
          f"{sum(q.numel() for q in G.parameters())} and D {sum(q.numel() for q in D.parameters())} parameters, "
          f"{per_epoch} batches of {batch_size} an epoch", flush=True)
    if a.judge and not a.judge_quick and not os.path.exists(judge_weights_path()):
        print(f"gan.py: the judge has no weights at {judge_weights_path()}; it will train them first (minutes)",
              flush=True)

    eval_gen = torch.Generator().manual_seed(a.seed + 2)  # a stream of its own, never training's
    fields = ["point", "train_minutes", "g_steps", "epoch", "file"]
    points, epochs, last = [], [], {}  # last: the latest point's samples
    train_s, g_steps, first_200_s, stop = 0.0, 0, None, False

    def fd_point():
        name = f"samples_{len(points) + 1:02d}.safetensors"
        samples = sample_images(G, n_fd, nz, eval_gen)
        save_safetensors(os.path.join(out, name), "samples", samples)
        points.append({"point": len(points) + 1, "train_minutes": round(train_s / 60, 4), "g_steps": g_steps,
                       "epoch": round(g_steps / per_epoch, 4), "file": name})
        last["samples"] = samples
        write_csv(os.path.join(out, "points.csv"), fields, points)
        print(f"gan.py: FD point {len(points)} after {train_s / 60:.2f} min of training, {g_steps} G steps: {name}",
              flush=True)

    for epoch in range(1, a.epochs + 1):
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(a.seed * 1000 + epoch))
        d_sum, g_sum, n = 0.0, 0.0, 0
        for b in range(per_epoch):
            t0 = time.perf_counter()
            real = train[order[b * batch_size:(b + 1) * batch_size]]
            d_loss = d_step(G, D, opt_d, real, nz)
            if not math.isfinite(d_loss):
                raise SystemExit(f"gan.py: diverged at step {g_steps + 1}: D's loss is {d_loss}")
            g_loss = g_step(G, D, opt_g, real.shape[0], nz)
            train_s += time.perf_counter() - t0
            d_sum, g_sum, n, g_steps = d_sum + d_loss, g_sum + g_loss, n + 1, g_steps + 1
            if n % 200 == 0:
                first_200_s = first_200_s if first_200_s is not None else train_s
                print(f"  epoch {epoch} batch {n}/{per_epoch}  d_loss {d_sum / n:.4f}  g_loss {g_sum / n:.4f}  "
                      f"({train_s:.1f} s of training)", flush=True)
            stop = a.minutes > 0 and train_s >= a.minutes * 60
            if a.fd_minutes > 0 and train_s >= (len(points) + 1) * a.fd_minutes * 60:
                fd_point()
            if stop:
                break
        epochs.append({"epoch": epoch, "batches": n, "d_loss": d_sum / n, "g_loss": g_sum / n, "train_s": train_s})
        print(f"epoch {epoch}/{a.epochs}{' (stopped early)' if n < per_epoch else ''}  d_loss {d_sum / n:.4f}  "
              f"g_loss {g_sum / n:.4f}  ({n} batches, {train_s:.1f} s of training)", flush=True)
        if stop:
            break
    if not points or points[-1]["g_steps"] != g_steps:
        fd_point()
    save_safetensors(os.path.join(out, "samples.safetensors"), "samples", last["samples"])

    def write_metrics():
        write_atomic(os.path.join(out, "metrics.json"), json.dumps({
            "model": "reference/gan.py", "torch": torch.__version__, "threads": torch.get_num_threads(),
            "config": vars(a), "recipe": {"arch": "dcgan", "loss": "bce", "nz": nz, "features": features,
                                          "batch_size": batch_size, "lr": lr, "betas": betas, "fd_samples": n_fd},
            "epochs_done": g_steps // per_epoch, "epochs_fraction": g_steps / per_epoch, "g_steps": g_steps,
            "train_s": train_s, "first_200_batches_s": first_200_s, "wall_s": time.time() - start,
            "epochs": epochs, "points": points}, indent=1))

    write_metrics()
    if a.judge:
        for q in points:
            q["fd_fmnist"] = judge(a.judge, os.path.join(out, q["file"]), a)
            print(f"gan.py: point {q['point']} ({q['file']}): FD-FMNIST {q['fd_fmnist']:.4f}", flush=True)
        write_csv(os.path.join(out, "points.csv"), fields + ["fd_fmnist"], points)
        write_metrics()
    print(f"gan.py: {g_steps} G steps ({g_steps / per_epoch:.3f} epochs), training {train_s:.1f} s, in all "
          f"{time.time() - start:.1f} s; {len(points)} FD point(s) in {out}/points.csv", flush=True)


if __name__ == "__main__":
    main()
