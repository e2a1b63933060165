"""PyTorch SDPA decoding on the CPU, for issue 12's comparison with `attnc bench --decode`.

One query row per sequence against a K/V cache, GQA through `enable_gqa` (no copies of K/V), the
shape `attnc bench --decode` uses by default: q (B, Hq, 1, D), k/v (B, Hkv, S, D). Prints the median
time of N calls after two warm-ups and the K+V read rate it implies.

    bench/peers/.venv/bin/python bench/peers/sdpa_decode.py [--batch 4] [--heads 32] [--kv-heads 8]
        [--kv-len 16384] [--head-dim 128] [--dtype bf16|fp32] [--repeat 9] [--threads 2]
"""
import argparse
import statistics
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--kv-heads", type=int, default=8)
    p.add_argument("--kv-len", type=int, default=16384)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    p.add_argument("--repeat", type=int, default=9)
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: all CPUs)")
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    dt = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    q = torch.randn(a.batch, a.heads, 1, a.head_dim, dtype=dt)
    k = torch.randn(a.batch, a.kv_heads, a.kv_len, a.head_dim, dtype=dt)
    v = torch.randn_like(k)
    f = lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    for _ in range(2):
        f()
    times = []
    for _ in range(a.repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    kv_bytes = 2 * k.numel() * k.element_size()
    print(f"sdpa decode B={a.batch} Hq={a.heads} Hkv={a.kv_heads} S={a.kv_len} D={a.head_dim} {a.dtype} "
          f"threads={torch.get_num_threads()}: median {med * 1e3:.2f} ms, min {min(times) * 1e3:.2f} ms, "
          f"K+V {kv_bytes / 1e9:.3f} GB at {kv_bytes / med / 1e9:.2f} GB/s")


if __name__ == "__main__":
    main()
