"""The reference recipe of models/gpt.cpp in PyTorch 1.13 (CPU): a character-level GPT on Debian's fortunes.

Same data (every plain-text file of /usr/share/games/fortunes, no *.dat, *.u8, symlinks or sub-folders, read as
UTF-8 and concatenated in sorted name order; the vocabulary is the sorted set of characters, 113 of them; the
first 90% of the characters train, the last 10% validate), same model (token and position embeddings, 4 pre-LN
blocks of causal self-attention with 4 heads and a GELU MLP of 4d, d = 128, dropout 0, a final LayerNorm, an untied
head; nn.MultiheadAttention and nn.Embedding with PyTorch's default initialisation, which heed's layers copy), same
training (random windows of T = 64, batch 32, AdamW lr 1e-3 weight decay 0.01, constant lr) and the same
validation loss (the mean over 50 random validation batches, the same batches at every evaluation).

What cannot be the same: the random streams (initial weights, windows) are PyTorch's, so a run matches heed's in
distribution, not bit for bit. Run it with the Debian interpreter, which has torch:

  /usr/bin/python3 models/reference/gpt.py --steps 2000 --threads 1 --out runs/reference_gpt
"""
import argparse
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def load_text(folder):
    names = sorted(n for n in os.listdir(folder)
                   if os.path.isfile(os.path.join(folder, n)) and not os.path.islink(os.path.join(folder, n))
                   and not n.startswith(".") and not n.endswith(".dat") and not n.endswith(".u8"))
    text = "".join(open(os.path.join(folder, n), encoding="utf-8").read() for n in names)
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    return ids, vocab, int(0.9 * len(ids))


class Block(nn.Module):
    """x + attn(ln1(x)) with a causal mask, then x + mlp(ln2(x)): heed's nn::CausalSelfAttentionBlock."""

    def __init__(self, d, heads):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, mask):
        a = self.ln1(x)
        h = x + self.attn(a, a, a, attn_mask=mask, need_weights=False)[0]
        return h + self.mlp(self.ln2(h))


class GPT(nn.Module):
    def __init__(self, vocab, T, d, heads, layers):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(T, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)

    def forward(self, idx):  # (B,T) -> (B,T,V)
        T = idx.size(1)
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)  # True = not allowed
        x = self.tok(idx) + self.pos(torch.arange(T))
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.ln(x))


def batch(ids, lo, hi, B, T, gen):
    starts = torch.randint(lo, hi - T - 1, (B,), generator=gen)
    x = torch.stack([ids[s:s + T] for s in starts])
    y = torch.stack([ids[s + 1:s + T + 1] for s in starts])
    return x, y


@torch.no_grad()
def val_loss(model, ids, n_train, B, T, batches, seed):
    gen = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(batches):
        x, y = batch(ids, n_train, len(ids), B, T, gen)
        total += F.cross_entropy(model(x).reshape(-1, model.head.out_features), y.reshape(-1)).item()
    return total / batches


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data", default="/usr/share/games/fortunes")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    ids, vocab, n_train = load_text(a.data)
    V, B, T = len(vocab), a.batch_size, a.context
    model = GPT(V, T, 128, 4, 4)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    print(f"gpt.py: {len(ids)} characters ({n_train} train), vocabulary {V}; "
          f"{sum(q.numel() for q in model.parameters())} parameters; torch {torch.__version__}")
    gen = torch.Generator().manual_seed(a.seed + 1)
    rows, train_seconds, losses = [], 0.0, []
    for step in range(1, a.steps + 1):
        start = time.perf_counter()
        x, y = batch(ids, 0, n_train, B, T, gen)
        loss = F.cross_entropy(model(x).reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        train_seconds += time.perf_counter() - start
        losses.append(loss.item())
        if step % a.eval_every == 0 or step == a.steps:
            val = val_loss(model, ids, n_train, B, T, 50, a.seed + 2)
            rows.append({"step": step, "train_loss": sum(losses) / len(losses), "val_loss": val})
            losses = []
            print(f"step {step}  train_loss {rows[-1]['train_loss']:.4f}  val_loss {val:.4f}  "
                  f"({1000 * train_seconds / step:.0f} ms per step)", flush=True)
    result = {"steps": rows, "final": {"val_loss": rows[-1]["val_loss"], "ms_per_step": 1000 * train_seconds / a.steps},
              "torch": torch.__version__, "threads": a.threads}
    with open(os.path.join(a.out, "metrics.json"), "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
