#!/usr/bin/env python3
"""The PyTorch side of tools/gpu/check.sh's timing table.

Times, on the same GPU and shapes as attnc_gpu_bench (B=4, H=16, S in {2048, 8192}, D in {64, 128},
bf16), PyTorch's SDPA with the flash and cuDNN backends (torch.nn.attention.sdpa_kernel; only where
SDPA can express the mod: none and causal) and torch.compile'd flex_attention with the same mods
(no mod, causal, ALiBi, causal sliding window 1024, document mask with 4 equal documents, softcap 20).
Prints CSV rows `IMPL,MOD,S,D,MS,TFLOPS`, flushed one by one so a time-out keeps what finished.
TFLOP/s counts only unmasked work, as attnc_gpu_bench does. Times: CUDA events, median of --reps
runs after --warmup runs.

Usage: torch_peers.py [--quick] [--reps N] [--warmup N]
"""
import argparse
import statistics
import sys

import torch

B, H = 4, 16
MODS = ["none", "causal", "alibi", "sliding_window_1024", "document", "softcap"]


def kept_pairs(mod, s):
    if mod == "causal":
        return s * (s + 1) / 2
    if mod == "sliding_window_1024":
        w = 1024
        return sum(min(q + 1, w) for q in range(s))
    if mod == "document":
        return 4 * (s // 4) ** 2
    return s * s


def alibi_slopes(n):
    # n = 16, a power of two: 2^(-8 (i + 1) / n), as attnc's alibi_slopes.
    return torch.tensor([2.0 ** (-8.0 * (i + 1) / n) for i in range(n)], dtype=torch.float32)


def time_ms(fn, reps, warmup):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def emit(impl, mod, s, d, ms):
    flops = 4.0 * B * H * d * kept_pairs(mod, s)
    tflops = flops / (ms * 1e-3) / 1e12 if ms == ms else float("nan")
    print(f"{impl},{mod},{s},{d},{ms:.4f},{tflops:.1f}", flush=True)
    print(f"  {impl:10s} {mod:20s} S={s:<5d} D={d:<3d} {ms:8.3f} ms {tflops:7.1f} TFLOP/s", file=sys.stderr, flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="S=2048 only")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-flex", action="store_true")
    args = parser.parse_args()

    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    flex = create_block_mask = None
    if not args.no_flex:
        import torch._dynamo
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        # Every (mod, S, D) is another graph; past dynamo's recompile limit (8 by default)
        # torch.compile silently falls back to flex_attention's unfused eager path, 10-50x slower.
        # Raise it (recompile_limit; cache_size_limit in older torch) so every case is compiled.
        for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit",
                     "accumulated_cache_size_limit"):
            if hasattr(torch._dynamo.config, name):
                setattr(torch._dynamo.config, name, 1024)
        flex = torch.compile(flex_attention, dynamic=False)

    print(f"torch_peers: torch {torch.__version__} on {torch.cuda.get_device_name(0)}", file=sys.stderr)
    print("impl,mod,S,D,ms,tflops", flush=True)
    slopes = alibi_slopes(H).cuda()
    lengths = [2048] if args.quick else [2048, 8192]
    for s in lengths:
        doc = (torch.arange(s, device="cuda") // (s // 4)).repeat(B, 1)
        for d in (64, 128):
            q, k, v = (torch.randn(B, H, s, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
            for mod in MODS:
                if mod in ("none", "causal"):
                    for impl, backend in (("sdpa_flash", SDPBackend.FLASH_ATTENTION),
                                          ("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION)):
                        try:
                            with sdpa_kernel(backend):
                                ms = time_ms(lambda: sdpa(q, k, v, is_causal=(mod == "causal")), args.reps,
                                             args.warmup)
                            emit(impl, mod, s, d, ms)
                        except Exception as e:  # a backend this GPU or build lacks
                            print(f"  {impl} {mod} S={s} D={d}: {type(e).__name__}: {e}"[:300], file=sys.stderr)
                            emit(impl, mod, s, d, float("nan"))
                if flex is None:
                    continue
                score_mod = block_mask = None
                if mod == "causal":
                    block_mask = create_block_mask(lambda b, h, qi, ki: qi >= ki, None, None, s, s)
                elif mod == "sliding_window_1024":
                    block_mask = create_block_mask(lambda b, h, qi, ki: (qi >= ki) & (qi - ki < 1024), None, None, s, s)
                elif mod == "document":
                    block_mask = create_block_mask(lambda b, h, qi, ki: doc[b, qi] == doc[b, ki], B, None, s, s)
                elif mod == "alibi":
                    score_mod = lambda score, b, h, qi, ki: score - slopes[h] * (qi - ki).abs()
                elif mod == "softcap":
                    score_mod = lambda score, b, h, qi, ki: 20.0 * torch.tanh(score / 20.0)
                try:
                    ms = time_ms(lambda: flex(q, k, v, score_mod=score_mod, block_mask=block_mask), args.reps,
                                 args.warmup)
                    emit("flex", mod, s, d, ms)
                except Exception as e:
                    print(f"  flex {mod} S={s} D={d}: {type(e).__name__}: {e}"[:300], file=sys.stderr)
                    emit("flex", mod, s, d, float("nan"))


if __name__ == "__main__":
    main()
