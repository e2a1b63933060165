"""SDPA alone on the CPU, dense and causal, for the clean head-to-head in bench/results/cpu-2026-11-30.md.

peers.py times each peer right after `attnc bench` ran the same case in a child process, while the
Python process (torch and JAX thread pools) is alive; on the 2-core machine that disturbs both
sides. This script times only SDPA, in a process of its own, to be run back to back with
`attnc bench --seq 1024,4096 --head-dim 128 --dtype fp32,bf16 --mod none,causal --repeat 9 --no-ceiling`.

    bench/peers/.venv/bin/python bench/peers/sdpa_alone.py
"""
import time, torch, statistics, sys
torch.set_num_threads(2)
for S in (1024, 4096):
  for dt in (torch.float32, torch.bfloat16):
    q = torch.randn(1, 8, S, 128, dtype=dt); k = torch.randn_like(q); v = torch.randn_like(q)
    for causal in (False, True):
      f = lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
      for _ in range(2): f()
      ts = []
      for _ in range(9 if S == 1024 else 5):
        t = time.perf_counter(); f(); ts.append((time.perf_counter() - t) * 1e3)
      print(f"sdpa S={S} {str(dt)[6:]} {'causal' if causal else 'none'} median_ms {statistics.median(ts):.2f} min_ms {min(ts):.2f}", flush=True)
