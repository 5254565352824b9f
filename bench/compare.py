"""heed against PyTorch in one run: `./run bench --compare` calls this.

For each thread count (1, then 2) it runs heed's Google Benchmark workloads (build/heed_bench) and
PyTorch's equivalents (bench/torch_ref.py, Debian's python3-torch) back to back, with the same
OMP/OpenBLAS thread counts and the same OPENBLAS_CORETYPE (the one heed selects for this CPU, unless the
caller set one), then prints one table: workload, heed ms, PyTorch ms, heed/PyTorch, and for GEMM the
GFLOP/s and the share of the machine's peak.

attn_long runs alone in its own processes on both sides, so that the process's peak RSS belongs to it.
Then every model step runs once more alone on each side, for its peak RSS above the process's baseline:
parameters, optimizer state, inputs and the step's tensors (--no-memory skips these runs).

The machine is shared and noisy, and noise only ever adds time. So each side runs --rounds times (default
3), alternating heed, PyTorch, heed, PyTorch, ..., and each workload keeps its fastest round on each side:
a burst of someone else's load then slows one round, not the whole comparison, and it falls on both sides
alike. Peak memory keeps the largest round instead.
"""
import argparse
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_WORKLOADS = ["mha_step", "vae_step", "gan_step", "gpt_step", "conv_ae_step"]


def machine_peak_gflops(threads):
    """Single-precision peak of this machine, and what it assumes: cores x GHz x flops per cycle.

    GHz is the model name's "@ x.xGHz" when it has one, else /proc/cpuinfo's "cpu MHz" (a VM reports its
    nominal clock there). Flops per cycle are two FMA units of the widest vector, 2 flops per lane: 64 with
    AVX-512 (16 float lanes), except AMD family 0x19 (Zen 4), whose AVX-512 runs on 256-bit units (32), and
    32 with AVX2 only. Turbo and thermal limits are not modelled, so a core above its nominal clock can show
    more than 100%.
    """
    with open("/proc/cpuinfo") as f:
        info = f.read()
    at = re.search(r"model name\s*:.*@ ([0-9.]+)GHz", info)
    mhz = re.search(r"cpu MHz\s*:\s*([0-9.]+)", info)
    ghz, source = (float(at.group(1)), "model name") if at else \
        (float(mhz.group(1)) / 1000, "cpu MHz") if mhz else (2.5, "assumed")
    vendor = re.search(r"vendor_id\s*:\s*(\S+)", info)
    family = re.search(r"cpu family\s*:\s*(\d+)", info)
    zen4 = vendor and vendor.group(1) == "AuthenticAMD" and family and int(family.group(1)) == 0x19
    avx512 = re.search(r"\bavx512f\b", info) is not None
    flops = 32 if zen4 or not avx512 else 64
    return threads * ghz * flops, f"{threads} core(s) x {ghz:.2f} GHz ({source}) x {flops} flops/cycle"


def run_heed(bench, env, filt):
    out = subprocess.run([bench, f"--benchmark_filter={filt}", "--benchmark_format=json"], env=env,
                         capture_output=True, text=True, check=True).stdout
    summary, _, js = out.partition("\n")  # bench/main.cpp prints blas_summary() first
    data = json.loads(js)
    res = {}
    for b in data["benchmarks"]:
        res[b["name"]] = b
        res.setdefault(b["name"].split("/")[0], b)  # "BM_vae_step/min_time:2.000/real_time" -> "BM_vae_step"
    return summary, res


def run_torch(threads, env, only=None):
    cmd = ["/usr/bin/python3", os.path.join(HERE, "torch_ref.py"), "--threads", str(threads), "--json"]
    if only:
        cmd += ["--only", only]
    return json.loads(subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout)


def keep_fastest(best, new):
    """Merges one round into best: per key the faster entry, but the largest peak memory of any round."""
    for k, v in new.items():
        old = best.get(k)
        if old is None:
            best[k] = v
        elif isinstance(v, dict):  # a Google Benchmark entry
            peaks = [e["peak_rss_above_base_MB"] for e in (old, v) if "peak_rss_above_base_MB" in e]
            best[k] = dict(v if ms(v) < ms(old) else old)
            if peaks:
                best[k]["peak_rss_above_base_MB"] = max(peaks)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            best[k] = max(v, old) if ("rss" in k or "gflops" in k) else min(v, old)


def ms(b):
    unit = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]
    return b["real_time"] * unit


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", default="build/heed_bench")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3, help="alternating runs per side; the fastest counts")
    ap.add_argument("--json", help="also write the raw numbers here")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs of the model steps")
    args = ap.parse_args()

    # The kernel heed picks (or the user's), applied to both sides.
    probe = subprocess.run([args.bench, "--benchmark_filter=^$"], capture_output=True, text=True).stdout
    core = os.environ.get("OPENBLAS_CORETYPE") or re.search(r"core=(\S+)", probe).group(1)
    rows, raw, peaks = [], {}, []
    for threads in [int(t) for t in args.threads.split(",")]:
        # heed at exactly this many threads (not fewer when the machine is busy: tensor/parallel.h), and
        # PyTorch's libgomp spinning 10,000 rather than 300,000 times between regions, as heed's did when
        # it ran with ./run's GOMP_SPINCOUNT; a value the caller set is kept.
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
                   OPENBLAS_CORETYPE=core, HEED_ADAPTIVE_THREADS="0")
        if "OMP_WAIT_POLICY" not in env:
            env.setdefault("GOMP_SPINCOUNT", "10000")
        heed, heed_long, torch, torch_long = {}, {}, {}, {}
        for _ in range(args.rounds):
            summary, h = run_heed(args.bench, env, "BM_(mha_step|vae_step|gan_step|gpt_step|conv_ae_step|"
                                  f"autograd_overhead)/|BM_sgemm/n:[0-9]+/threads:{threads}/")
            keep_fastest(heed, h)
            keep_fastest(heed_long, run_heed(args.bench, env, "^BM_attn_long/")[1])
            keep_fastest(torch, run_torch(threads, env))
            keep_fastest(torch_long, run_torch(threads, env, "attn_long"))
        heed_mem, torch_mem = {}, {}  # peak RSS above baseline, each step alone in a process of its own
        for w in [] if args.no_memory else MODEL_WORKLOADS:
            heed_mem[w] = run_heed(args.bench, env, f"^BM_{w}/")[1][f"BM_{w}"]["peak_rss_above_base_MB"]
            torch_mem[w] = run_torch(threads, env, w)["peak_rss_above_base_mb"]
        raw[threads] = {"heed": {**heed, **heed_long}, "torch": {**torch, **torch_long}, "blas": summary,
                        "peak_rss_above_base_MB": {"heed": heed_mem, "torch": torch_mem}}
        peak, peak_how = machine_peak_gflops(threads)
        peaks.append(f"{threads} thread(s): {peak:.0f} GFLOP/s = {peak_how}")
        for n in (128, 512, 1024):
            name = next((k for k in heed if re.match(rf"BM_sgemm/n:{n}/threads:{threads}(/|$)", k)), None)
            if name:
                h = ms(heed[name])
                gf = 2 * n ** 3 / (h * 1e-3) / 1e9
                rows.append((threads, f"gemm {n}", h, torch[f"gemm_{n}_ms"], gf, 100 * gf / peak))
        rows.append((threads, "per-op overhead (us/op)", ms(heed["BM_autograd_overhead"]) * 1e3 / 1000,
                     torch["overhead_us_per_op"], None, None))
        for w in MODEL_WORKLOADS:
            rows.append((threads, w, ms(heed[f"BM_{w}"]), torch[f"{w}_ms"], None, None))
        hl = heed_long["BM_attn_long"]
        rows.append((threads, "attn_long", ms(hl), torch_long["attn_long_ms"], None, None))
        rows.append((threads, "attn_long peak RSS above baseline (MB)", hl["peak_rss_above_base_MB"],
                     torch_long["peak_rss_above_base_mb"], None, None))
        for w in heed_mem:
            rows.append((threads, f"{w} peak RSS above baseline (MB)", heed_mem[w], torch_mem[w], None, None))

    spin = {k: env[k] for k in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY") if k in env}
    print(f"{summary}; PyTorch {raw[list(raw)[0]]['torch']['torch']} with OPENBLAS_CORETYPE={core}"
          + "".join(f" {k}={v}" for k, v in spin.items()) + " on both sides")
    print(f"{'threads':>7}  {'workload':<40} {'heed':>10} {'PyTorch':>10} {'ratio':>7} {'GFLOP/s':>8} {'% peak':>7}")
    for t, w, h, p, gf, pct in rows:
        extra = f"{gf:8.1f} {pct:6.1f}%" if gf is not None else ""
        print(f"{t:>7}  {w:<40} {h:10.3f} {p:10.3f} {h / p:7.2f} {extra}")
    print("ratio = heed / PyTorch (lower is better); times in ms unless the row says otherwise")
    print("% peak of " + "; ".join(peaks))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
