"""PyTorch's CPU autograd through SDPA, for the backward comparison in bench/results/ (issue 14).

Times the backward pass alone (out.backward(dout) after a fresh forward, only the backward timed)
of scaled_dot_product_attention, causal, in a process of its own so nothing else shares the cores.
attnc's side is test_runtime "[.backward_timing]" (tests/runtime/families/flash_backward/
FlashBackwardTimingTest.cpp) on the same shape, run back to back.

    bench/peers/.venv/bin/python bench/peers/sdpa_backward.py [--seq 4096] [--threads 2] [--repeat 5]
"""
import argparse, statistics, time

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--seq", type=int, default=4096)
parser.add_argument("--heads", type=int, default=8)
parser.add_argument("--head-dim", type=int, default=128)
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--repeat", type=int, default=5)
args = parser.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)
shape = (1, args.heads, args.seq, args.head_dim)
q, k, v = (torch.randn(shape, dtype=torch.float32, requires_grad=True) for _ in range(3))
dout = torch.randn(shape, dtype=torch.float32)


def forward():
    for t in (q, k, v):
        t.grad = None
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)


forward_ms, backward_ms = [], []
for run in range(args.repeat + 1):  # the first is a warm-up
    start = time.perf_counter()
    out = forward()
    middle = time.perf_counter()
    out.backward(dout)
    end = time.perf_counter()
    if run > 0:
        forward_ms.append((middle - start) * 1e3)
        backward_ms.append((end - middle) * 1e3)
print(f"torch {torch.__version__} SDPA CPU B=1 H={args.heads} S={args.seq} D={args.head_dim} causal fp32 "
      f"threads={args.threads}: forward median {statistics.median(forward_ms):.1f} ms, backward median "
      f"{statistics.median(backward_ms):.1f} ms (min {min(backward_ms):.1f}), ratio "
      f"{statistics.median(backward_ms) / statistics.median(forward_ms):.2f}", flush=True)
