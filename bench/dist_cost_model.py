#!/usr/bin/env python3
"""dist_cost_model.py: predicted scaling efficiency of data-parallel training on p ranks (docs/distributed.md).

One training step on p ranks = the step's compute on one rank's share of the batch + the all-reduce of the
gradients (S bytes), which a ring does in 2(p-1) messages per rank, each carrying S/p bytes:

    t_allreduce(p) = 2(p-1) * alpha  +  2(p-1)/p * S / B

alpha is the time of one message (latency), B the bandwidth each rank gets. Efficiency is the time of the
compute alone over the time of the step:

    no overlap:   E = t_compute / (t_compute + t_allreduce)
    overlap:      E = t_compute / (t_compute + max(0, t_allreduce - f * t_compute))

where f is the share of the step that backward takes and an all-reduce can hide behind (about 2/3: backward
costs about twice the forward; the optimizer step cannot hide anything, it needs the averaged gradients).

Weak scaling: each rank keeps the per-rank batch the step was measured with, so t_compute stays put and the
global batch grows with p. Strong scaling: the global batch stays (the zoo's recipes: 128 VAE images, 32 GPT
sequences), so t_compute shrinks as 1/p until a rank has one sample.

B is the smaller of the network's bandwidth and the measured on-node all-reduce rate, which bounds how fast a
rank can sum and copy what arrives. The measured numbers are arguments, so the table can be redone on another
machine:  python3 bench/dist_cost_model.py --vae-ms 13.0 --gpt-ms 180 --node-gbs 3.1
"""
import argparse


def allreduce_s(p, nbytes, alpha, bw):
    return 2 * (p - 1) * alpha + 2 * (p - 1) / p * nbytes / bw


def efficiency(t_compute, t_ar, overlap, f=2 / 3):
    exposed = max(0.0, t_ar - f * t_compute) if overlap else t_ar
    return t_compute / (t_compute + exposed)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vae-ms", type=float, required=True, help="vae_step at batch 128, one thread, np=1 (ms)")
    ap.add_argument("--gpt-ms", type=float, required=True, help="gpt_step at batch 32, one thread, np=1 (ms)")
    ap.add_argument("--node-gbs", type=float, required=True, help="measured on-node all-reduce rate (GB/s, bus)")
    ap.add_argument("--vae-params", type=int, default=652824)
    ap.add_argument("--gpt-params", type=int, default=826208)
    args = ap.parse_args()

    # (name, link bandwidth in bytes/s, per-message latency): 10 GbE over TCP, 100 Gbit/s InfiniBand/RoCE.
    networks = [("10 Gbit/s", 10e9 / 8, 50e-6), ("100 Gbit/s", 100e9 / 8, 5e-6)]
    models = [("vae_step", args.vae_ms / 1e3, args.vae_params * 4, 128),
              ("gpt_step", args.gpt_ms / 1e3, args.gpt_params * 4, 32)]
    print("| model | network | p | all-reduce (ms) | weak, no overlap | weak, overlap "
          "| strong (global batch), overlap |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, t_c, nbytes, batch in models:
        for net, link, alpha in networks:
            bw = min(link, args.node_gbs * 1e9)
            for p in (8, 64, 512):
                t_ar = allreduce_s(p, nbytes, alpha, bw)
                weak = efficiency(t_c, t_ar, False), efficiency(t_c, t_ar, True)
                if p <= batch:
                    strong = f"{100 * efficiency(t_c / p, t_ar, True):.0f}% ({batch // p}/rank)"
                else:
                    strong = f"n/a (batch {batch} < {p} ranks)"
                print(f"| {name} | {net} | {p} | {1e3 * t_ar:.2f} | {100 * weak[0]:.0f}% | {100 * weak[1]:.0f}% "
                      f"| {strong} |")


if __name__ == "__main__":
    main()
