"""Runs the inputs of `attnc bench` through the CPU peers and compares outputs and times.

Usage (run.sh sets up the virtual environment and calls this):
  python peers.py --attnc BUILD/tools/attnc/attnc [--seq 1024,4096] [--head-dim 128]
                  [--dtype fp32,bf16] [--mod all] [--repeat 3] [--threads N]
                  [--work DIR] [--results DIR]

One run does everything, case by case, so every ratio compares times taken moments apart:
  1. `attnc bench --no-ceiling --dump DIR --json DIR/attnc.json` for one case times attnc's flash
     kernel and writes the inputs (q, k, v) and attnc's output as .npy;
  2. each peer runs the same inputs with the same mod right after, with warm-up runs
     (compilation), and the median of --repeat timed runs is taken;
  3. each peer's output is compared with attnc's (max |difference|, tolerances below);
  4. a table goes to stdout, and JSON + Markdown (with the machine description) to --results.

Peers:
  sdpa        torch.nn.functional.scaled_dot_product_attention on the CPU: is_causal=True for the
              causal mask, an explicit mask otherwise (boolean, or an additive float mask for
              ALiBi); softcap cannot be expressed, so it is reported as n/a.
  flex        torch.compile(flex_attention) with the same score_mod and a BlockMask made by
              create_block_mask from the same mask_mod (so it skips masked blocks too).
  attnax-std  attnax.standard_attention under jax.jit, with attnax's own score mods.
  attnax-mem  attnax.memory_efficient_attention under jax.jit (block_size 512), the same mods.

Tolerances (max |out - attnc out|, outputs are O(0.1)): fp32 2e-4; bf16 3e-2 (the outputs are
rounded to bf16, and the peers round intermediates such as P to bf16 differently).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TOLERANCE = {"fp32": 2e-4, "bf16": 3e-2, "fp16": 5e-3}
WINDOW = 1024
SOFTCAP = 50.0
PEERS = ["sdpa", "flex", "attnax-std", "attnax-mem"]


def machine_description() -> dict:
    """What the numbers ran on: CPU model, cores, AVX-512 flags, memory, load, versions."""
    info = {"platform": platform.platform(), "python": platform.python_version()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = {}
        for line in lscpu.splitlines():
            if ":" in line:
                key, value = line.split(":", 1)
                fields[key.strip()] = value.strip()
        info["cpu_model"] = fields.get("Model name", "?")
        info["cpus"] = fields.get("CPU(s)", "?")
        info["threads_per_core"] = fields.get("Thread(s) per core", "?")
        info["cores_per_socket"] = fields.get("Core(s) per socket", "?")
        flags = fields.get("Flags", "").split()
        info["avx512_flags"] = " ".join(f for f in flags if f.startswith("avx512")) or "none"
        info["avx2"] = "avx2" in flags
        info["caches"] = {k: fields[k] for k in ("L1d cache", "L2 cache", "L3 cache") if k in fields}
    except (OSError, subprocess.CalledProcessError) as e:
        info["cpu_model"] = f"lscpu failed: {e}"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["memory_gib"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    info["load_average_at_start"] = os.getloadavg()
    return info


def load_input(path: Path, dtype: str):
    """A .npy written by attnc as a torch tensor (bf16 comes as raw '<u2' bits)."""
    import torch

    array = np.load(path)
    if dtype == "bf16":
        return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(array)


def to_float_numpy(t) -> np.ndarray:
    import torch

    if isinstance(t, torch.Tensor):
        return t.detach().float().numpy()
    return np.asarray(t, dtype=np.float32)


def document_ids_for(seq: int, batch: int, documents: int) -> np.ndarray:
    # The same ids attnc bench uses: token i of S belongs to document floor(i * 8 / S).
    ids = (np.arange(seq, dtype=np.int64) * documents // seq).astype(np.int32)
    return np.broadcast_to(ids, (batch, seq)).copy()


def alibi_slopes(heads: int) -> np.ndarray:
    # The ALiBi schedule for a power-of-two head count: 2^(-8 (i + 1) / H).
    return np.array([2.0 ** (-8.0 * (i + 1) / heads) for i in range(heads)], dtype=np.float32)


# ---- the peers -------------------------------------------------------------------------------


class TorchPeers:
    def __init__(self, threads: int):
        import torch

        torch.set_num_threads(threads)
        # Every (mod, shape, dtype) is its own compiled graph; past dynamo's default limit of 8
        # recompilations flex_attention would silently fall back to the unfused eager path.
        torch._dynamo.config.recompile_limit = 1024
        torch._dynamo.config.accumulated_recompile_limit = 4096
        self.torch = torch
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        self.create_block_mask = create_block_mask
        self.flex = torch.compile(flex_attention, dynamic=False)

    def sdpa_fn(self, mod, q, k, v, heads, doc_ids):
        torch = self.torch
        F = torch.nn.functional
        seq = q.shape[2]
        if mod == "none":
            return lambda: F.scaled_dot_product_attention(q, k, v)
        if mod == "causal":
            return lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)
        if mod == "softcap":
            return None  # SDPA has no score transformation
        i = torch.arange(seq)[:, None]
        j = torch.arange(seq)[None, :]
        if mod == "alibi-causal":
            slopes = torch.from_numpy(alibi_slopes(heads))[:, None, None]
            bias = -slopes * (i - j).abs().float()
            bias = bias.masked_fill(j > i, float("-inf")).to(q.dtype)[None]
            return lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        if mod == "sliding-window":
            mask = (j <= i) & (i - j < WINDOW)
        elif mod == "document":
            d = torch.from_numpy(doc_ids[0]).long()
            mask = d[:, None] == d[None, :]
        else:
            raise ValueError(mod)
        return lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    def flex_fn(self, mod, q, k, v, heads, doc_ids):
        torch = self.torch
        batch, _, seq, _ = q.shape
        score_mod = None
        mask_mod = None
        if mod == "causal" or mod == "alibi-causal":
            mask_mod = lambda b, h, qi, ki: qi >= ki  # noqa: E731
        if mod == "alibi-causal":
            slopes = torch.from_numpy(alibi_slopes(heads))

            def score_mod(score, b, h, qi, ki):
                return score - slopes[h] * (qi - ki).abs()

        if mod == "sliding-window":
            mask_mod = lambda b, h, qi, ki: (qi >= ki) & (qi - ki < WINDOW)  # noqa: E731
        if mod == "document":
            d = torch.from_numpy(doc_ids).long()
            mask_mod = lambda b, h, qi, ki: d[b, qi] == d[b, ki]  # noqa: E731
        if mod == "softcap":

            def score_mod(score, b, h, qi, ki):
                return SOFTCAP * torch.tanh(score / SOFTCAP)

        block_mask = None
        if mask_mod is not None:
            block_mask = self.create_block_mask(mask_mod, B=None, H=None, Q_LEN=seq, KV_LEN=seq, device="cpu")
        return lambda: self.flex(q, k, v, score_mod=score_mod, block_mask=block_mask)


class AttnaxPeers:
    def __init__(self):
        import attnax
        import jax
        import jax.numpy as jnp

        self.attnax = attnax
        self.jax = jax
        self.jnp = jnp
        from attnax.kernels import score_mods

        self.mods = score_mods

    def score_mod(self, mod, heads, doc_ids):
        m = self.mods
        jnp = self.jnp
        if mod == "none":
            return None
        if mod == "causal":
            return m.causal_mod()
        if mod == "alibi-causal":
            return m.compose_score_mods(m.alibi_mod(heads), m.causal_mod())
        if mod == "sliding-window":
            return m.sliding_window_mod(WINDOW, causal=True)
        if mod == "document":
            return m.document_mask_mod(jnp.asarray(doc_ids))
        if mod == "softcap":
            # attnax has no softcap built-in; a score mod is a plain function of the scores.
            return lambda s, b, h, q, kv: SOFTCAP * jnp.tanh(s / SOFTCAP)
        raise ValueError(mod)

    def fn(self, kind, mod, q, k, v, heads, doc_ids):
        jax = self.jax
        score_mod = self.score_mod(mod, heads, doc_ids)
        kernel = self.attnax.standard_attention if kind == "std" else self.attnax.memory_efficient_attention
        jitted = jax.jit(lambda q, k, v: kernel(q, k, v, score_mod=score_mod))
        return lambda: jitted(q, k, v).block_until_ready()

    def inputs(self, torch_tensors, dtype):
        jnp = self.jnp
        out = []
        for t in torch_tensors:
            array = t.float().numpy()
            out.append(jnp.asarray(array, dtype=jnp.bfloat16 if dtype == "bf16" else jnp.float32))
        return out


def time_median(fn, repeat: int, warmup: int = 2) -> tuple[float, float, object]:
    """(median ms, first-call ms, last result). The first call includes compilation."""
    start = time.perf_counter()
    result = fn()
    first = (time.perf_counter() - start) * 1e3
    for _ in range(warmup - 1):
        result = fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), first, result


# ---- the run ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attnc", required=True)
    parser.add_argument("--seq", default="1024,4096")
    parser.add_argument("--head-dim", default="128")
    parser.add_argument("--dtype", default="fp32,bf16")
    parser.add_argument("--mod", default="all")
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--work", default=str(Path(__file__).resolve().parent / ".work"))
    parser.add_argument("--results", default=str(Path(__file__).resolve().parents[1] / "results"))
    parser.add_argument("--tag", default="")
    args = parser.parse_args()

    machine = machine_description()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    import torch

    peers_wanted = args.peers.split(",")
    torch_peers = TorchPeers(args.threads) if {"sdpa", "flex"} & set(peers_wanted) else None
    attnax_peers = AttnaxPeers() if {"attnax-std", "attnax-mem"} & set(peers_wanted) else None
    versions = {"torch": torch.__version__, "numpy": np.__version__}
    if attnax_peers:
        import importlib.metadata as md

        versions["jax"] = attnax_peers.jax.__version__
        versions["attnax"] = md.version("attnax")

    # attnc is timed case by case, right before the peers run the same case, so that a change in
    # the machine's load (it may be shared) weighs on both sides of each ratio alike.
    mods = ["none", "causal", "alibi-causal", "sliding-window", "document", "softcap"] if args.mod == "all" \
        else args.mod.split(",")  # fmt: skip
    cases = []
    attnc_stdout = []
    for seq in args.seq.split(","):
        for head_dim in args.head_dim.split(","):
            for dtype in args.dtype.split(","):
                for mod in mods:
                    cases.append((seq, head_dim, dtype, mod))
    rows = []
    bench = None
    attnc_cases = []
    header = f"\n{'case':<34} {'peer':<11} {'peer_ms':>10} {'attnc_ms':>10} {'peer/attnc':>10} {'max|diff|':>10}  check"
    print(header)
    for seq_text, head_dim_text, dtype_text, mod_text in cases:
        bench_json = work / "attnc.json"
        command = [
            args.attnc, "bench", "--seq", seq_text, "--head-dim", head_dim_text, "--dtype", dtype_text,
            "--mod", mod_text, "--repeat", str(args.repeat), "--threads", str(args.threads), "--no-ceiling",
            "--dump", str(work / "dump"), "--json", str(bench_json),
        ]  # fmt: skip
        attnc_run = subprocess.run(command, text=True, capture_output=True)
        attnc_stdout.append("$ " + " ".join(command[1:]) + "\n" + attnc_run.stdout)
        if attnc_run.returncode != 0:
            sys.stderr.write(attnc_run.stdout + attnc_run.stderr)
            print(f"attnc bench failed with exit status {attnc_run.returncode}", file=sys.stderr)
            return 1
        bench = json.loads(bench_json.read_text())
        case = bench["cases"][0]
        attnc_cases.append(case)
        dtype, seq, head_dim, mod = case["dtype"], case["seq"], case["head_dim"], case["mod"]
        case_dir = work / "dump" / f"{dtype}-S{seq}-D{head_dim}"
        q, k, v = (load_input(case_dir / f"{name}.npy", dtype) for name in ("q", "k", "v"))
        ours = load_input(Path(case["output"]), dtype).float().numpy()
        doc_ids = document_ids_for(seq, bench["batch"], bench["documents"])
        if mod == "document":
            # The ids attnc used, so both sides see the same documents.
            assert np.array_equal(np.load(case_dir / "document_ids.npy"), doc_ids)
        heads = bench["heads"]
        for peer in peers_wanted:
            row = {"case": case["id"], "peer": peer, "attnc_ms": case["median_ms"], "dtype": dtype, "seq": seq,
                   "head_dim": head_dim, "mod": mod}  # fmt: skip
            try:
                if peer == "sdpa":
                    fn = torch_peers.sdpa_fn(mod, q, k, v, heads, doc_ids)
                elif peer == "flex":
                    fn = torch_peers.flex_fn(mod, q, k, v, heads, doc_ids)
                else:
                    jq, jk, jv = attnax_peers.inputs((q, k, v), dtype)
                    fn = attnax_peers.fn(peer.split("-")[1], mod, jq, jk, jv, heads, doc_ids)
                if fn is None:
                    row["status"] = "n/a (not expressible)"
                else:
                    with torch.inference_mode():
                        peer_ms, first_ms, out = time_median(fn, args.repeat)
                    diff = float(np.max(np.abs(to_float_numpy(out) - ours)))
                    row.update(peer_ms=peer_ms, first_ms=first_ms, max_abs_diff=diff,
                               ratio=peer_ms / case["median_ms"])  # fmt: skip
                    row["status"] = "ok" if diff <= TOLERANCE[dtype] else f"MISMATCH (tolerance {TOLERANCE[dtype]})"
            except Exception as e:  # a peer that cannot run a case is reported, not fatal
                row["status"] = f"error: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
            rows.append(row)
            if "peer_ms" in row:
                print(f"{case['id']:<34} {peer:<11} {row['peer_ms']:>10.2f} {row['attnc_ms']:>10.2f} "
                      f"{row['ratio']:>10.2f} {row['max_abs_diff']:>10.2e}  {row['status']}", flush=True)  # fmt: skip
            else:
                print(f"{case['id']:<34} {peer:<11} {'-':>10} {row['attnc_ms']:>10.2f} {'-':>10} {'-':>10}  "
                      f"{row['status']}", flush=True)  # fmt: skip

    date = datetime.date.today().isoformat()
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    stem = f"peers-cpu-{date}{('-' + args.tag) if args.tag else ''}"
    report = {"date": date, "machine": machine, "versions": versions, "threads": args.threads,
              "repeat": args.repeat, "attnc": {"jit": bench["jit"] if bench else "?", "cases": attnc_cases},
              "peers": rows,
              "load_average_at_end": os.getloadavg()}  # fmt: skip
    (results / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(results / f"{stem}.md", report, "\n".join(attnc_stdout))
    print(f"\nwrote {results / (stem + '.json')} and {results / (stem + '.md')}")
    bad = [r for r in rows if r["status"].startswith("MISMATCH")]
    return 1 if bad else 0


def write_markdown(path: Path, report: dict, attnc_stdout: str) -> None:
    m = report["machine"]
    lines = [
        f"# attnc vs CPU peers, {report['date']}",
        "",
        "Written by bench/peers/run.sh (bench/peers/peers.py). Times are medians of "
        f"{report['repeat']} runs after warm-up, {report['threads']} threads; ratio = peer time / attnc time "
        "(above 1: attnc is faster).",
        "",
        "## Machine",
        "",
        f"- CPU: {m.get('cpu_model')} ({m.get('cpus')} CPUs, {m.get('cores_per_socket')} cores per socket, "
        f"{m.get('threads_per_core')} threads per core)",
        f"- AVX-512: {m.get('avx512_flags')}",
        f"- memory: {m.get('memory_gib')} GiB; load average at start {m.get('load_average_at_start')}, "
        f"at end {report['load_average_at_end']}",
        f"- {m.get('platform')}, Python {m.get('python')}; "
        + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
        f"- attnc: mods by {report['attnc']['jit']}; timed case by case (`attnc bench --no-ceiling`) "
        "right before the peers run the same case",
        "",
        "## Results",
        "",
        "| case | peer | peer ms | attnc ms | peer / attnc | max abs diff | check |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in report["peers"]:
        if "peer_ms" in r:
            lines.append(f"| {r['case']} | {r['peer']} | {r['peer_ms']:.2f} | {r['attnc_ms']:.2f} | "
                         f"{r['ratio']:.2f} | {r['max_abs_diff']:.2e} | {r['status']} |")  # fmt: skip
        else:
            lines.append(f"| {r['case']} | {r['peer']} | - | {r['attnc_ms']:.2f} | - | - | {r['status']} |")
    lines += ["", "## attnc bench output of the same run", "", "```", attnc_stdout.rstrip(), "```", ""]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
