"""The headline recipe of models/cluster.cpp (--arch ae; --arch cos-attn too) in PyTorch 1.13 (CPU), on the same
data and protocol, to set its numbers and times beside heed's.

All 70,000 Fashion-MNIST images (train then test), 10 clusters, labels only for scoring. An MLP autoencoder
784-500-500-10 / 10-500-500-784 (ReLU, sigmoid output, MSE, Adam at --lr, batches of 256) learns a 10-d code; the
10-nearest-neighbour graph of the codes (w_ij = 1 when either is among the other's neighbours) gives
A = D^-1/2 W D^-1/2, whose top 10 eigenvectors are approximated by --iterations steps of subspace iteration from a
random start (QR each step); k-means (sklearn KMeans, n_init 10) on the unit rows gives the clusters. cos-attn
spends the last --self-train epochs on DEC/IDEC self-training of q = softmax(cos(z, mu) / tau) against the
sharpened target p = (q^2 / f) / row sum, loss MSE + 0.1 KL(p || q), centroids started at the spectral clusters'
mean codes; the clusters are then argmax q. Metrics by scikit-learn and SciPy: Hungarian ACC
(linear_sum_assignment), normalized_mutual_info_score, adjusted_rand_score. Random streams are PyTorch's and
NumPy's, so the numbers agree with heed's in distribution, not bit for bit.

  /usr/bin/python3 models/reference/cluster.py --epochs 20 --threads 1 --seed 0
"""
import argparse
import gzip
import json
import time

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def load(data):
    def images(name):
        return np.frombuffer(gzip.open(f"{data}/{name}").read(), np.uint8, offset=16).reshape(-1, 784) / 255.0

    def labels(name):
        return np.frombuffer(gzip.open(f"{data}/{name}").read(), np.uint8, offset=8).astype(np.int64)

    x = np.concatenate([images("train-images-idx3-ubyte.gz"), images("t10k-images-idx3-ubyte.gz")])
    y = np.concatenate([labels("train-labels-idx1-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz")])
    return torch.tensor(x, dtype=torch.float32), y


def accuracy(y, c):
    counts = np.zeros((c.max() + 1, y.max() + 1))
    np.add.at(counts, (c, y), 1)
    rows, cols = linear_sum_assignment(-counts)
    return counts[rows, cols].sum() / len(y)


class AutoEncoder(nn.Module):
    def __init__(self, hidden=500, latent=10, clusters=10):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, 784), nn.Sigmoid())
        self.centroids = nn.Parameter(torch.zeros(clusters, latent))


def soft_assign(model, z, tau):  # q_ij = softmax_j(cos(z_i, mu_j) / tau)
    return F.softmax(F.normalize(z, dim=1) @ F.normalize(model.centroids, dim=1).T / tau, dim=1)


def knn(z, k):
    sq = (z * z).sum(1)
    out = []
    for i in range(0, len(z), 1024):
        d = (z[i:i + 1024] ** 2).sum(1, keepdim=True) - 2 * z[i:i + 1024] @ z.T + sq[None]
        out.append(torch.topk(d, k + 1, dim=1, largest=False).indices[:, 1:])
    return torch.cat(out).numpy()


def spectral_clusters(z, k, iterations, seed):
    n = len(z)
    nb = knn(z, k)
    w = sp.csr_matrix((np.ones(n * k), (np.repeat(np.arange(n), k), nb.ravel())), shape=(n, n))
    w = ((w + w.T) > 0).astype(np.float64)
    scale = sp.diags(1 / np.sqrt(np.asarray(w.sum(1)).ravel()))
    a = scale @ w @ scale
    v = np.random.default_rng(seed).standard_normal((n, 10))
    for _ in range(iterations):
        v = np.linalg.qr(a @ v)[0]
    v /= np.linalg.norm(v, axis=1, keepdims=True) + 1e-12
    return KMeans(10, n_init=10, random_state=seed).fit_predict(v.astype(np.float32))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="ae", choices=["ae", "cos-attn"])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--self-train", type=int, default=3)
    p.add_argument("--temperature", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--neighbours", type=int, default=10)
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--out", default=None, help="write the metrics to this JSON file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.time()
    x, y = load(args.data)
    model = AutoEncoder()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    pretrain = args.epochs - (args.self_train if args.arch == "cos-attn" else 0)
    codes = lambda: torch.cat([model.encoder(x[i:i + 1000]) for i in range(0, len(x), 1000)])
    for epoch in range(1, args.epochs + 1):
        target = None
        if epoch > pretrain:
            with torch.no_grad():
                if epoch == pretrain + 1:
                    z = codes()
                    k = spectral_clusters(z, args.neighbours, args.iterations, args.seed)
                    model.centroids.copy_(torch.stack([z[k == j].mean(0) for j in range(10)]))
                q = soft_assign(model, codes(), args.temperature)
                target = q ** 2 / q.sum(0, keepdim=True)
                target /= target.sum(1, keepdim=True)
        order = torch.randperm(len(x))
        total = 0.0
        for i in range(0, len(x), args.batch_size):
            b = order[i:i + args.batch_size]
            z = model.encoder(x[b])
            loss = F.mse_loss(model.decoder(z), x[b])
            if target is not None:
                q = soft_assign(model, z, args.temperature)
                pb = target[b]
                loss = loss + 0.1 * (pb * (pb.clamp_min(1e-12).log() - q.clamp_min(1e-12).log())).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(b)
        print(f"epoch {epoch}/{args.epochs}  train_loss {total / len(x):.5f}  ({time.time() - start:.1f} s)",
              flush=True)
    with torch.no_grad():
        z = codes()
        if args.arch == "cos-attn":
            c = soft_assign(model, z, args.temperature).argmax(1).numpy()
        else:
            c = spectral_clusters(z, args.neighbours, args.iterations, args.seed)
    result = {"acc": accuracy(y, c), "nmi": normalized_mutual_info_score(y, c), "ari": adjusted_rand_score(y, c),
              "seconds": time.time() - start, "config": vars(args)}
    print(json.dumps(result))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
