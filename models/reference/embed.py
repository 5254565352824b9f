"""models/embed.cpp's recipe in PyTorch 1.13 (CPU), on the same data and protocol, to set its numbers and times
beside heed's.

A network maps a Fashion-MNIST image to 2-D. The neighbour graph: each training image's 15 nearest neighbours among
the 60,000 in the space of their first 50 principal components (exact, by blocks of distances). The loss: a batch of
B images i, each with a random neighbour j, and InfoNCE with the Cauchy kernel q(a,b) = 1/(1 + |a-b|^2) in
SimCLR's NT-Xent form: each of the 2B points must pick its partner out of the 2B-1 others. Adam at --lr, the lr
falling to 0 along a half cosine over the run, epochs of 60,000 // B batches. The encoders are embed.cpp's:
  mlp   784 -> 512 -> 256 -> 2, ReLU;
  attn  16 patches of 7x7 -> Linear(49, 64) + learned positions -> 2 pre-LN TransformerEncoderLayers (4 heads,
        feed-forward 128, no dropout) -> LayerNorm -> flatten (16*64) -> 256 -> ReLU -> 2.
Metrics by scikit-learn on the 10,000 test images: trustworthiness (k = 5, 12) of the first 5,000 against their
pixels; cross_val_score(KNeighborsClassifier(5), Y, labels, cv=5).mean(); KMeans(10, n_init=10) ACC (Hungarian,
scipy) and NMI. The random streams are PyTorch's, so the numbers agree with heed's in distribution, not bit for bit.
Needs python3-torch and python3-sklearn (Debian 12), which ./run does not install.

  /usr/bin/python3 models/reference/embed.py --arch attn --threads 1 --out runs/reference_embed_attn
"""
import argparse
import gzip
import json
import math
import os
import struct
import time

import numpy as np
import scipy.optimize
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.manifold import trustworthiness
from sklearn.metrics import normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier


def load_idx(path, magic, dims):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    header = struct.unpack(">" + "I" * (1 + len(dims)), raw[:4 + 4 * len(dims)])
    if header != (magic, *dims):
        raise SystemExit(f"embed.py: {path}: header {header}, expected {(magic, *dims)}")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * len(dims))


def load_fashion_mnist(folder, train):
    name, n = ("train", 60000) if train else ("t10k", 10000)
    x = load_idx(os.path.join(folder, f"{name}-images-idx3-ubyte.gz"), 0x803, (n, 28, 28)).reshape(n, 1, 28, 28)
    y = load_idx(os.path.join(folder, f"{name}-labels-idx1-ubyte.gz"), 0x801, (n,))
    return torch.from_numpy(x.astype(np.float32) / 255.0), torch.from_numpy(y.astype(np.int64))


def knn_graph(z, k):
    """z (N,P) -> (N,k) int64: each row's k nearest other rows, by blocks of squared distances."""
    sq = (z * z).sum(1)
    out = []
    for i0 in range(0, z.shape[0], 1024):
        d = sq[i0:i0 + 1024, None] + sq[None, :] - 2 * z[i0:i0 + 1024] @ z.T
        d[torch.arange(d.shape[0]), torch.arange(i0, i0 + d.shape[0])] = float("inf")
        out.append(d.topk(k, dim=1, largest=False).indices)
    return torch.cat(out)


class MLPEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(784, 512), nn.Linear(512, 256), nn.Linear(256, 2)

    def forward(self, x):
        return self.out(F.relu(self.fc2(F.relu(self.fc1(x.flatten(1))))))


class AttnEncoder(nn.Module):
    def __init__(self, width=64, layers=2, heads=4):
        super().__init__()
        self.patch = nn.Linear(49, width)
        self.position = nn.Parameter(torch.randn(16, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(width), enable_nested_tensor=False)
        self.fc, self.out = nn.Linear(16 * width, 256), nn.Linear(256, 2)

    def forward(self, x):
        p = x.reshape(-1, 4, 7, 4, 7).permute(0, 1, 3, 2, 4).reshape(-1, 16, 49)
        return self.out(F.relu(self.fc(self.blocks(self.patch(p) + self.position).flatten(1))))


def contrastive_loss(yi, yj):
    """NT-Xent with the Cauchy kernel: each of the 2B points picks its partner out of the 2B-1 others."""
    B = yi.shape[0]
    y = torch.cat([yi, yj])
    d2 = (y[:, None, :] - y[None, :, :]).square().sum(2)
    logits = -torch.log1p(d2) - torch.eye(2 * B) * 1e9
    return F.cross_entropy(logits, (torch.arange(2 * B) + B) % (2 * B))


def clustering_accuracy(labels, clusters):
    c = contingency_matrix(labels, clusters)
    rows, cols = scipy.optimize.linear_sum_assignment(-c)
    return float(c[rows, cols].sum()) / len(labels)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="attn", choices=["mlp", "attn"])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--neighbours", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default="runs/reference_embed")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    x_train, _ = load_fashion_mnist(a.data, True)
    x_test, labels = load_fashion_mnist(a.data, False)
    start = time.time()
    # PCA-50 as heed's metrics::pca: the top eigenvectors of the covariance, in float64 (the signs do not matter here).
    flat = x_train.reshape(-1, 784).double()
    centred = flat - flat.mean(0)
    _, vectors = torch.linalg.eigh(centred.T @ centred / (len(flat) - 1))
    z = (centred @ vectors[:, -50:]).float()
    graph = knn_graph(z, a.neighbours)
    print(f"embed.py: the {a.neighbours}-nearest-neighbour graph in {time.time() - start:.0f} s", flush=True)
    model = MLPEncoder() if a.arch == "mlp" else AttnEncoder()
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    B, N = a.batch_size, x_train.shape[0]
    per_epoch = N // B
    steps, step = a.epochs * per_epoch, 0
    for epoch in range(a.epochs):
        order = torch.randperm(N)
        other = graph[order, torch.randint(0, a.neighbours, (N,))]
        total = 0.0
        for b in range(per_epoch):
            for group in opt.param_groups:
                group["lr"] = a.lr * 0.5 * (1 + math.cos(math.pi * step / steps))
            i, j = order[b * B:(b + 1) * B], other[b * B:(b + 1) * B]
            y = model(torch.cat([x_train[i], x_train[j]]))
            loss = contrastive_loss(y[:B], y[B:])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
            step += 1
        print(f"epoch {epoch + 1}/{a.epochs}  train_loss {total / per_epoch:.4f}  ({time.time() - start:.0f} s)",
              flush=True)
    model.eval()
    with torch.no_grad():
        y = torch.cat([model(x_test[i:i + 500]) for i in range(0, len(x_test), 500)]).numpy().astype(np.float64)
    fit_seconds = time.time() - start
    pixels = x_test[:5000].reshape(5000, 784).numpy()
    km = KMeans(10, n_init=10, random_state=a.seed).fit(y)
    final = {"trust5": float(trustworthiness(pixels, y[:5000], n_neighbors=5)),
             "trust12": float(trustworthiness(pixels, y[:5000], n_neighbors=12)),
             "knn5_acc": float(cross_val_score(KNeighborsClassifier(5), y, labels.numpy(), cv=5).mean()),
             "acc": clustering_accuracy(labels.numpy(), km.labels_),
             "nmi": float(normalized_mutual_info_score(labels.numpy(), km.labels_)),
             "fit_seconds": fit_seconds}
    print(json.dumps(final))
    with open(os.path.join(a.out, "metrics.json"), "w") as f:
        json.dump({"model": "reference/embed.py", "config": vars(a), "final": final,
                   "torch": torch.__version__}, f, indent=1)


if __name__ == "__main__":
    main()
