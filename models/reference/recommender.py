"""SASRec of models/recommender.cpp in PyTorch 1.13 (CPU), on the same data: heed's synthetic sequences and its
evaluation negatives, exported by `recommender --dump-data FILE` (the generator is not reimplemented here).

Same model (item embeddings N(0, 1/d) scaled by sqrt(d), learned position embeddings N(0, 0.02^2), dropout 0.1, pre-LN
causal transformer layers with a feed-forward of width d and ReLU, a final LayerNorm, scores by dot product with
the shared item embeddings), same loss (the softmax cross-entropy of the next item at every position of each
user's training items, the last --max-len of them, left-padded), Adam at 1e-3, batches of 128 users, and the same
protocol: leave-one-out (the last item tests, the one before validates), HR@10 and NDCG@10 among the dumped 100
negatives and among all items, ties counting against the target.

One difference is forced: PyTorch gives NaN for a query whose keys are all masked (the padded positions before a
user's first item), and the NaN then reaches real positions through 0 * NaN. So the masks here are -1e9 added to
the scores, not -inf; heed returns 0 for such rows. The padded rows never reach the loss or the scores.

  build/recommender --dump-data runs/sasrec_data.txt --out runs/dump
  /usr/bin/python3 models/reference/recommender.py --data runs/sasrec_data.txt --threads 1 --out runs/reference_sasrec
"""
import argparse
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def load(path):
    seqs, val_neg, test_neg = [], [], []
    with open(path) as f:
        n_items = int(f.readline().split()[1])
        for line in f:
            tag, *values = line.split()
            {"seq": seqs, "val_neg": val_neg, "test_neg": test_neg}[tag].append([int(v) for v in values])
    return seqs, n_items, torch.tensor(val_neg), torch.tensor(test_neg)


def window(s, end, L, pad):
    """The last L of s[:end], left-padded with pad."""
    w = s[max(0, end - L):end]
    return [pad] * (L - len(w)) + w


class SASRec(nn.Module):
    def __init__(self, n_items, d, heads, layers, L, dropout):
        super().__init__()
        self.n_items, self.heads = n_items, heads
        self.item_emb = nn.Embedding(n_items + 1, d)  # row n_items pads
        nn.init.normal_(self.item_emb.weight, std=d ** -0.5)  # as heed's: scores start near N(0, 1)
        self.pos = nn.Parameter(torch.randn(L, d) * 0.02)
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(d, heads, dim_feedforward=d, dropout=dropout, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d), enable_nested_tensor=False)

    def forward(self, items):  # (B,L) -> (B,L,d)
        B, L = items.shape
        x = self.drop(self.item_emb(items) * math.sqrt(self.item_emb.embedding_dim) + self.pos[:L])
        causal = torch.triu(torch.ones(L, L, dtype=torch.bool), diagonal=1)
        hidden = causal.unsqueeze(0) | (items == self.n_items).unsqueeze(1)  # (B,L,L) True = not allowed
        mask = torch.zeros(B, L, L).masked_fill(hidden, -1e9).repeat_interleave(self.heads, dim=0)
        return self.encoder(x, mask=mask)

    def scores(self, h):
        return h @ self.item_emb.weight[:self.n_items].T


def ranks(scores, targets):
    """How many other candidates score at least as high as the target: ties count against it."""
    mine = scores.gather(1, targets.unsqueeze(1))
    return (scores >= mine).sum(1) - 1


@torch.no_grad()
def evaluate(model, seqs, n_items, negatives, split, L, k=10):
    model.eval()
    sampled, full = [], []
    for u0 in range(0, len(seqs), 256):
        users = range(u0, min(u0 + 256, len(seqs)))
        ends = [len(seqs[u]) - split for u in users]
        x = torch.tensor([window(seqs[u], e, L, n_items) for u, e in zip(users, ends)])
        t = torch.tensor([seqs[u][e] for u, e in zip(users, ends)])
        s = model.scores(model(x)[:, -1])
        full.append(ranks(s, t))
        cand = torch.cat([t.unsqueeze(1), negatives[u0:u0 + len(users)]], 1)
        sampled.append(ranks(s.gather(1, cand), torch.zeros(len(users), dtype=torch.long)))
    model.train()
    out = {}
    for name, r in (("", torch.cat(sampled)), ("_full", torch.cat(full))):
        r = r.double()
        out["hr10" + name] = (r < k).double().mean().item()
        out["ndcg10" + name] = torch.where(r < k, 1 / torch.log2(r + 2), torch.zeros_like(r)).mean().item()
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    seqs, n_items, val_neg, test_neg = load(a.data)
    L = a.max_len
    model = SASRec(n_items, a.d_model, a.heads, a.layers, L, a.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    print(f"recommender.py: {len(seqs)} users, {n_items} items; {sum(q.numel() for q in model.parameters())} "
          f"parameters; torch {torch.__version__}")
    # Training pairs: inputs s[t], targets s[t+1] over each user's training items s[:n-2].
    inputs = torch.tensor([window(s, len(s) - 3, L, n_items) for s in seqs])
    targets = torch.tensor([window(s[1:], len(s) - 3, L, -100) for s in seqs])
    rows, train_seconds = [], 0.0
    for epoch in range(1, a.epochs + 1):
        start = time.perf_counter()
        order, total = torch.randperm(len(seqs)), 0.0
        for b in range(0, len(seqs), a.batch_size):
            idx = order[b:b + a.batch_size]
            loss = F.cross_entropy(model.scores(model(inputs[idx])).reshape(-1, n_items), targets[idx].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        train_seconds += time.perf_counter() - start
        val = evaluate(model, seqs, n_items, val_neg, 2, L)
        rows.append({"epoch": epoch, "train_loss": total / len(seqs), "val_hr10": val["hr10"]})
        print(f"epoch {epoch}  train_loss {rows[-1]['train_loss']:.4f}  val HR@10 {val['hr10']:.4f}  "
              f"({train_seconds:.1f} s training)", flush=True)
    test = evaluate(model, seqs, n_items, test_neg, 1, L)
    print("test: " + "  ".join(f"{k} {v:.4f}" for k, v in test.items()))
    with open(os.path.join(a.out, "metrics.json"), "w") as f:
        json.dump({"epochs": rows, "final": test, "train_seconds": train_seconds, "torch": torch.__version__,
                   "threads": a.threads}, f, indent=1)


if __name__ == "__main__":
    main()
