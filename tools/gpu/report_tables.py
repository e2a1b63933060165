#!/usr/bin/env python3
"""The markdown tables of tools/gpu/check.sh's report, from the CSV rows of attnc_gpu_bench and
torch_peers.py (`impl,kind,case,S,D,ms,rate,unit`): forward TFLOP/s per family and peer, decode
GB/s with each row's share of the same run's copy rate, linear attention, backward TFLOP/s. Files that are missing or
rows that do not parse are skipped, so a run cut short still gives the rows it finished.

Usage: report_tables.py ATTNC_CSV TORCH_CSV
"""
import csv
import math
import os
import sys


def read_rows(paths):
    rows = []
    for path in paths:
        if not os.path.exists(path):
            continue
        with open(path) as f:
            for r in csv.DictReader(f):
                try:
                    rows.append((r["impl"], r["kind"], r["case"], int(r["S"]), int(r["D"]), float(r["ms"]),
                                 float(r["rate"])))
                except (KeyError, TypeError, ValueError):
                    pass
    return rows


def cell(value, digits=1):
    return "" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def forward_table(rows):
    impls = ["attnc_sm90", "attnc_flash", "flex", "sdpa_flash", "sdpa_cudnn"]
    order = ["none", "causal", "alibi", "sliding_window_1024", "document", "softcap"]
    table = {}
    for impl, kind, case, s, d, _, rate in rows:
        if kind == "forward":
            table.setdefault((case, s, d), {})[impl] = rate
    if not table:
        return ["(no forward timings)"]
    out = ["| mod | S | D | attnc sm90 | attnc flash | flex (compiled) | SDPA flash | SDPA cuDNN | best attnc / flex |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for key in sorted(table, key=lambda k: (k[1], k[2], order.index(k[0]) if k[0] in order else 99)):
        r = table[key]
        ours = [r[i] for i in ("attnc_sm90", "attnc_flash") if i in r and not math.isnan(r[i])]
        flex = r.get("flex", float("nan"))
        ratio = f"{max(ours) / flex:.2f}x" if ours and flex > 0 else ""
        out.append(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cell(r.get(i)) for i in impls) + f" | {ratio} |")
    return out


def decode_table(rows):
    copy = [rate for impl, kind, *_, rate in rows if kind == "copy"]
    copy_rate = copy[0] if copy else float("nan")
    lines = [f"Same-run device copy rate (read + write): {cell(copy_rate)} GB/s", "",
             "| impl | case | time (us) | K+V read rate (GB/s) | of the copy rate |", "| --- | --- | ---: | ---: | ---: |"]
    found = False
    for impl, kind, case, s, d, ms, rate in rows:
        if kind != "decode":
            continue
        found = True
        share = f"{100 * rate / copy_rate:.0f}%" if copy_rate == copy_rate and rate == rate else ""
        lines.append(f"| {impl} | {case} | {cell(ms * 1000, 0)} | {cell(rate)} | {share} |")
    return lines if found else ["(no decode timings)"]


def linear_table(rows):
    lines = ["| impl | S | D | time (ms) | TFLOP/s (4 B H S D^2) |", "| --- | ---: | ---: | ---: | ---: |"]
    found = False
    for impl, kind, case, s, d, ms, rate in rows:
        if kind == "linear":
            found = True
            lines.append(f"| {impl} | {s} | {d} | {cell(ms, 3)} | {cell(rate)} |")
    return lines if found else ["(no linear-attention timings)"]


def backward_table(rows):
    impls = ["attnc_backward", "flex", "sdpa_flash", "sdpa_cudnn"]
    table = {}
    for impl, kind, case, s, d, _, rate in rows:
        if kind == "backward":
            table.setdefault((case, s, d), {})[impl] = rate
    if not table:
        return ["(no backward timings)"]
    out = ["| mod | S | D | attnc | flex (compiled) | SDPA flash | SDPA cuDNN | attnc / flex (target 1.2x) |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for key in sorted(table):
        r = table[key]
        ours, flex = r.get("attnc_backward", float("nan")), r.get("flex", float("nan"))
        ratio = f"{ours / flex:.2f}x" if ours == ours and flex > 0 else ""
        out.append(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cell(r.get(i)) for i in impls) + f" | {ratio} |")
    return out


def main():
    rows = read_rows(sys.argv[1:])
    sections = [
        ("Forward (B=4, H=16, bf16; TFLOP/s of unmasked work; median of 10 after 3 warm-up runs)", forward_table),
        ("Decode (q (8, 32, 1, 128), k/v (8, 8, 32768, 128) bf16; median of 50)", decode_table),
        ("Linear attention (causal, B=4, H=16, bf16)", linear_table),
        ("Backward (B=4, H=16, D=128, bf16; TFLOP/s counting 2.5x the forward's unmasked work)", backward_table),
    ]
    for title, make in sections:
        print(f"## {title}\n")
        print("\n".join(make(rows)))
        print()


if __name__ == "__main__":
    main()
