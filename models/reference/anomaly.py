"""The first recipe of models/anomaly.cpp (--arch geom-attn, and geom) in PyTorch 1.13 (CPU), on the same data
and protocol, to set its numbers and times beside heed's.

One-class Fashion-MNIST (Golan and El-Yaniv 2018): for each class c, train on the 6000 training images of class c,
score the 10000 test images, anomaly = "not c". A small conv net learns which of the 4 rotations by 90 degrees
(--flips: x2 horizontal flips; --shifts: x9 shifts by {-7,0,7} pixels with zero fill; 72 with both) was applied;
an image's score is -sum_t log p(t | transform_t(x)): anomaly.cpp's first recipe, `--score loglik --with-pca=false`
(its default now adds GEOM's Dirichlet score and PCA's error, which are not here). The network is anomaly.cpp's
TransformNet layer for layer: conv 3x3 (W) BN ReLU, max-pool, conv 3x3 (2W) BN ReLU, [SAGAN self-attention: f, g
1x1 to C/8, h 1x1 to C/2, keys and values max-pooled 2x2, no 1/sqrt(d) scale, out 1x1 back to C, y = x + gamma *
out, gamma = 0 at the start], max-pool, conv 3x3 (4W) BN ReLU, flatten, linear to T. Adam at --lr, batches of 32
images (each with all T transformations), the lr falling to 0 along a half cosine over the run (heed's
WarmupCosineLR(opt, 0, total)).

Metrics by scikit-learn: roc_auc_score, average_precision_score, and the detection rate = the largest TPR of
roc_curve(drop_intermediate=False) with FPR <= 0.05 (heed's metrics::detection_rate). The random streams (weights,
batch order) are PyTorch's, so the numbers agree with heed's in distribution, not bit for bit. Run it with the
Debian interpreter with the packages python3-torch (PyTorch 1.13) and python3-sklearn, which ./run does not install
(they are large): `sudo apt-get install python3-torch python3-sklearn`.

  /usr/bin/python3 models/reference/anomaly.py --all-classes --threads 1 --out runs/reference_anomaly
  /usr/bin/python3 models/reference/anomaly.py --classes 4-9 --threads 1 --out runs/reference_4-9  (some classes)
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
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def load_idx(path, magic, dims):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    header = struct.unpack(">" + "I" * (1 + len(dims)), raw[:4 + 4 * len(dims)])
    if header != (magic, *dims):
        raise SystemExit(f"anomaly.py: {path}: header {header}, expected {(magic, *dims)}")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * len(dims))


def load_fashion_mnist(folder, train):
    name, n = ("train", 60000) if train else ("t10k", 10000)
    x = load_idx(os.path.join(folder, f"{name}-images-idx3-ubyte.gz"), 0x803, (n, 28, 28)).reshape(n, 1, 28, 28)
    y = load_idx(os.path.join(folder, f"{name}-labels-idx1-ubyte.gz"), 0x801, (n,))
    return torch.from_numpy(x.astype(np.float32) / 255.0), torch.from_numpy(y.astype(np.int64))


def transform_index(flips, shifts):
    """anomaly.cpp's transform_index: for each transformation t, the source pixel of each output pixel (784 = 0)."""
    S = 9 if shifts else 1
    index = []
    for t in range(4 * (2 if flips else 1) * S):
        turns, shift, flip = t % 4, (t // 4) % S, t // (4 * S)
        dy, dx = (7 * (shift // 3 - 1), 7 * (shift % 3 - 1)) if shifts else (0, 0)
        for i in range(28):
            for j in range(28):
                y, x = i, j
                for _ in range(turns):
                    y, x = x, 27 - y
                y, x = y - dy, x - dx
                if flip:
                    x = 27 - x
                index.append(784 if y < 0 or y > 27 or x < 0 or x > 27 else y * 28 + x)
    return torch.tensor(index)


def transform_all(x, index):
    """(B,1,28,28) -> every transformation of every image (B*T,1,28,28), image by image, and the labels (B*T)."""
    B, T = x.shape[0], index.numel() // 784
    padded = torch.cat([x.reshape(B, 784), torch.zeros(B, 1)], 1)
    return padded[:, index].reshape(B * T, 1, 28, 28), torch.arange(T).repeat(B)


class SelfAttention2d(nn.Module):
    """heed's nn::SelfAttention2d (SAGAN), pool_keys = True."""

    def __init__(self, C):
        super().__init__()
        self.f, self.g = nn.Conv2d(C, C // 8, 1), nn.Conv2d(C, C // 8, 1)
        self.h, self.out = nn.Conv2d(C, C // 2, 1), nn.Conv2d(C // 2, C, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        B, C, H, W = x.shape
        q = self.f(x).flatten(2).transpose(1, 2)
        k = F.max_pool2d(self.g(x), 2).flatten(2).transpose(1, 2)
        v = F.max_pool2d(self.h(x), 2).flatten(2).transpose(1, 2)
        o = torch.softmax(q @ k.transpose(1, 2), -1) @ v  # (B, HW, C/2)
        return x + self.gamma * self.out(o.transpose(1, 2).reshape(B, C // 2, H, W))


class TransformNet(nn.Module):
    def __init__(self, width, T, attention):
        super().__init__()
        W = width
        self.conv1, self.bn1 = nn.Conv2d(1, W, 3, padding=1), nn.BatchNorm2d(W)
        self.conv2, self.bn2 = nn.Conv2d(W, 2 * W, 3, padding=1), nn.BatchNorm2d(2 * W)
        self.attn = SelfAttention2d(2 * W) if attention else None
        self.conv3, self.bn3 = nn.Conv2d(2 * W, 4 * W, 3, padding=1), nn.BatchNorm2d(4 * W)
        self.head = nn.Linear(4 * W * 49, T)

    def forward(self, x):
        h = F.relu(self.bn2(self.conv2(F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2))))
        if self.attn is not None:
            h = self.attn(h)
        return self.head(F.relu(self.bn3(self.conv3(F.max_pool2d(h, 2)))).flatten(1))


def score(net, x, index):
    xt, t = transform_all(x, index)
    return -F.log_softmax(net(xt), 1).gather(1, t[:, None]).reshape(x.shape[0], -1).sum(1)


def detection_rate(labels, scores, max_fpr=0.05):
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(tpr[fpr <= max_fpr].max())


def run_class(k, args, train_x, train_y, test_x, test_y, index):
    torch.manual_seed(args.seed + k)
    normal = train_x[train_y == k][:args.train_images]
    net = TransformNet(args.width, index.numel() // 784, args.arch == "geom-attn")
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    steps_per_epoch = math.ceil(normal.shape[0] / args.batch_size)
    total = args.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    net.train()
    for epoch in range(args.epochs):
        order = torch.randperm(normal.shape[0])
        losses = []
        for i in range(0, normal.shape[0], args.batch_size):
            xt, t = transform_all(normal[order[i:i + args.batch_size]], index)
            loss = F.cross_entropy(net(xt), t)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        print(f"class {k} epoch {epoch + 1}/{args.epochs}: train loss {np.mean(losses):.4f}", flush=True)
    net.eval()
    with torch.no_grad():
        s = torch.cat([score(net, test_x[i:i + 100], index) for i in range(0, test_x.shape[0], 100)]).numpy()
    labels = (test_y.numpy() != k).astype(np.int64)
    return {"auroc": float(roc_auc_score(labels, s)), "ap": float(average_precision_score(labels, s)),
            "detection_rate": detection_rate(labels, s)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", choices=["geom", "geom-attn"], default="geom-attn")
    p.add_argument("--class", dest="normal_class", type=int, default=0)
    p.add_argument("--all-classes", action="store_true")
    p.add_argument("--classes", default="", help="only these classes, e.g. 4-9 or 0,3,6 (a run resumed by hand)")
    p.add_argument("--flips", action="store_true")
    p.add_argument("--shifts", action="store_true")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--train-images", type=int, default=6000)
    p.add_argument("--test-images", type=int, default=10000,
                   help="the first N test images (a smoke test; the protocol is 10000)")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--out", default="runs/reference_anomaly")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    train_x, train_y = load_fashion_mnist(args.data, True)
    test_x, test_y = load_fashion_mnist(args.data, False)
    test_x, test_y = test_x[:args.test_images], test_y[:args.test_images]
    index = transform_index(args.flips, args.shifts)
    classes = range(10) if args.all_classes else [args.normal_class]
    if args.classes:
        classes = [k for part in args.classes.split(",") for k in (
            range(int(part.split("-")[0]), int(part.split("-")[1]) + 1) if "-" in part else [int(part)])]
    results, start = {}, time.time()
    for k in classes:
        t0 = time.time()
        r = run_class(k, args, train_x, train_y, test_x, test_y, index)
        r["seconds"] = time.time() - t0
        results[k] = r
        print(f"class {k} ({NAMES[k]}): AUROC {r['auroc']:.4f}  AP {r['ap']:.4f}  detection rate "
              f"{r['detection_rate']:.4f}  ({r['seconds']:.0f} s)", flush=True)
        with open(os.path.join(args.out, "metrics.json"), "w") as f:
            json.dump({"args": vars(args), "classes": results, "seconds": time.time() - start}, f, indent=1)
    mean = {m: float(np.mean([r[m] for r in results.values()])) for m in ("auroc", "ap", "detection_rate")}
    print(f"mean over {len(results)} classes: AUROC {100 * mean['auroc']:.1f}  AP {100 * mean['ap']:.1f}  "
          f"detection rate {100 * mean['detection_rate']:.1f}  ({time.time() - start:.0f} s in all)")
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump({"args": vars(args), "classes": results, "mean": mean, "seconds": time.time() - start}, f, indent=1)


if __name__ == "__main__":
    main()
