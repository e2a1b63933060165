#!/usr/bin/env python3
"""The PyTorch side of tools/gpu/check.sh's timing tables.

Times, on the same GPU and shapes as attnc_gpu_bench, PyTorch's SDPA with the flash and cuDNN
backends (torch.nn.attention.sdpa_kernel; only where SDPA can express the case) and torch.compile'd
flex_attention (with dynamo's recompile limit raised, so no case silently runs the eager path):
  forward  B=4, H=16, S in {2048, 8192}, D in {64, 128}, bf16: no mod, causal, ALiBi, causal
           sliding window 1024, document mask with 4 equal documents, softcap 20 (TFLOP/s of
           unmasked work only, as attnc_gpu_bench counts it);
  decode   q (8, 32, 1, 128), k/v (8, 8, 32768, 128) bf16 with GQA: contiguous (SDPA and flex) and a
           causal sliding window of 4096 at the last position (flex with a block mask); GB/s of
           the K+V bytes the case must read. PyTorch has no paged SDPA: attnc's paged row stands alone;
  backward B=4, H=16, S in {2048, 8192}, D=128, bf16: no mod, causal, softcap 20 (issue 14's GPU
           target is >= 1.2x compiled flex_attention's backward): the backward pass alone through
           autograd after each forward, TFLOP/s counting it as 2.5x the forward's unmasked work (the
           FlashAttention-2 convention: five products against two).
Prints CSV rows `impl,kind,case,S,D,ms,rate,unit`, flushed one by one so a time-out keeps what
finished. Times: CUDA events, median of --reps runs after --warmup runs.

Usage: torch_peers.py [--quick] [--reps N] [--warmup N] [--no-flex] [--only forward|decode|backward]
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


def time_backward_ms(forward, dout, inputs, reps, warmup):
    """The backward pass alone: a fresh forward (untimed) before each timed out.backward(dout)."""
    def one(timed):
        for t in inputs:
            t.grad = None
        out = forward()
        if not timed:
            out.backward(dout)
            return None
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        out.backward(dout)
        stop.record()
        stop.synchronize()
        return start.elapsed_time(stop)
    for _ in range(warmup):
        one(False)
    torch.cuda.synchronize()
    return statistics.median(one(True) for _ in range(reps))


def bench_backward(args, sdpa, sdpa_kernel, SDPBackend, flex, create_block_mask):
    d = 128
    for s in ([2048] if args.quick else [2048, 8192]):
        q, k, v = (torch.randn(B, H, s, d, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
        dout = torch.randn(B, H, s, d, device="cuda", dtype=torch.bfloat16)
        for mod in ("none", "causal", "softcap"):
            def report(impl, forward):
                try:
                    ms = time_backward_ms(forward, dout, (q, k, v), args.reps, args.warmup)
                except Exception as e:  # a backend this GPU or build lacks
                    print(f"  {impl} backward {mod} S={s}: {type(e).__name__}: {e}"[:300], file=sys.stderr)
                    ms = float("nan")
                flops = 2.5 * 4.0 * B * H * d * kept_pairs(mod, s)
                emit_row(impl, "backward", mod, s, d, ms, flops / (ms * 1e-3) / 1e12 if ms == ms else float("nan"),
                         "TFLOP/s")
            if mod != "softcap":
                for impl, backend in (("sdpa_flash", SDPBackend.FLASH_ATTENTION),
                                      ("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION)):
                    def forward(backend=backend):
                        with sdpa_kernel(backend):
                            return sdpa(q, k, v, is_causal=(mod == "causal"))
                    report(impl, forward)
            if flex is None:
                continue
            block_mask = create_block_mask(lambda b, h, qi, ki: qi >= ki, None, None, s, s) if mod == "causal" else None
            score_mod = (lambda score, b, h, qi, ki: 20.0 * torch.tanh(score / 20.0)) if mod == "softcap" else None
            report("flex", lambda: flex(q, k, v, score_mod=score_mod, block_mask=block_mask))


def emit_row(impl, kind, case, s, d, ms, rate, unit):
    print(f"{impl},{kind},{case},{s},{d},{ms:.4f},{rate:.1f},{unit}", flush=True)
    print(f"  {impl:12s} {kind:8s} {case:20s} S={s:<6d} D={d:<4d} {ms:9.3f} ms {rate:8.1f} {unit}", file=sys.stderr,
          flush=True)


def emit(impl, mod, s, d, ms):
    flops = 4.0 * B * H * d * kept_pairs(mod, s)
    tflops = flops / (ms * 1e-3) / 1e12 if ms == ms else float("nan")
    emit_row(impl, "forward", mod, s, d, ms, tflops, "TFLOP/s")


def bench_decode(args, sdpa, sdpa_kernel, SDPBackend, flex, create_block_mask):
    b, h, hkv, kv, d, window = 8, 32, 8, 32768, 128, 4096
    reps, warmup = max(args.reps, 50), max(args.warmup, 5)
    q = torch.rand(b, h, 1, d, device="cuda", dtype=torch.bfloat16) * 2 - 1
    k, v = (torch.rand(b, hkv, kv, d, device="cuda", dtype=torch.bfloat16) * 2 - 1 for _ in range(2))
    full_bytes = 2.0 * b * hkv * kv * d * 2
    window_bytes = 2.0 * b * hkv * window * d * 2

    def report(impl, case, fn, nbytes):
        try:
            ms = time_ms(fn, reps, warmup)
        except Exception as e:  # a backend this GPU or build lacks
            print(f"  {impl} decode {case}: {type(e).__name__}: {e}"[:300], file=sys.stderr)
            ms = float("nan")
        emit_row(impl, "decode", case, kv, d, ms, nbytes / (ms * 1e-3) / 1e9 if ms == ms else float("nan"), "GB/s")

    for impl, backend in (("sdpa_flash", SDPBackend.FLASH_ATTENTION), ("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION)):
        def run(backend=backend):
            with sdpa_kernel(backend):
                sdpa(q, k, v, enable_gqa=True)
        report(impl, "contiguous", run, full_bytes)
    if flex is None:
        return
    report("flex", "contiguous", lambda: flex(q, k, v, enable_gqa=True), full_bytes)
    last = kv - 1  # the query sits at the last position
    block_mask = create_block_mask(lambda bb, hh, qi, ki: (ki <= qi + last) & (qi + last - ki < window), None, None, 1,
                                   kv)
    report("flex", "window_4096", lambda: flex(q, k, v, block_mask=block_mask, enable_gqa=True), window_bytes)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="S=2048 only")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-flex", action="store_true")
    parser.add_argument("--only", choices=["forward", "decode", "backward"], default=None)
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
    print("impl,kind,case,S,D,ms,rate,unit", flush=True)
    if args.only in (None, "decode"):
        bench_decode(args, sdpa, sdpa_kernel, SDPBackend, flex, create_block_mask)
    if args.only == "backward":
        bench_backward(args, sdpa, sdpa_kernel, SDPBackend, flex, create_block_mask)
    if args.only in ("decode", "backward"):
        return
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
    # Last: compiling flex's backward graphs takes long, and a time-out should cost only these rows.
    if args.only is None:
        bench_backward(args, sdpa, sdpa_kernel, SDPBackend, flex, create_block_mask)


if __name__ == "__main__":
    main()
