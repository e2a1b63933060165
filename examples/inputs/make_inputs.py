#!/usr/bin/env python3
"""Writes the small, deterministic example inputs of examples/*.attn as .npy files.

Only the standard library is used (no numpy on a fresh machine): the .npy format (version 1.0)
is a magic string, a little-endian header length, a Python-literal header padded to a multiple
of 64 bytes, then the raw little-endian C-order data.

    python3 examples/inputs/make_inputs.py            # rewrite the files next to this script
    python3 examples/inputs/make_inputs.py --check    # exit 1 if a committed file differs

Files:
    q.npy        (1, 4, 100, 64) float32   queries, 4 heads
    k.npy, v.npy (1, 2, 100, 64) float32   keys and values, 2 KV heads (grouped-query attention)
    doc_ids.npy  (1, 100) int32            three packed documents: ids 0, 1, 2 in runs of 30, 45, 25
    slopes.npy   (4,) float32              ALiBi slopes for 4 heads: 2^-2, 2^-4, 2^-6, 2^-8
Values of q, k, v are standard normal draws of random.Random(seed).gauss with fixed seeds,
rounded to float32.
"""

import argparse
import os
import random
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# (struct code, numpy descr) per element type.
FORMATS = {"float32": ("f", "<f4"), "int32": ("i", "<i4")}


def npy_bytes(shape, dtype, values):
    """The complete .npy file for `values` (a flat list in C order) of the given shape and dtype."""
    count = 1
    for extent in shape:
        count *= extent
    if len(values) != count:
        raise ValueError(f"{len(values)} values for shape {shape}")
    code, descr = FORMATS[dtype]
    # Python's tuple syntax: "(4,)" for one dimension, "(1, 100)" otherwise.
    shape_text = "(" + ", ".join(str(extent) for extent in shape) + ("," if len(shape) == 1 else "") + ")"
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}"
    # magic (6) + version (2) + header length (2) + header + padding + "\n" is a multiple of 64.
    prefix = 10
    padding = (-(prefix + len(header) + 1)) % 64
    header = header + " " * padding + "\n"
    out = b"\x93NUMPY" + bytes([1, 0]) + struct.pack("<H", len(header)) + header.encode("latin1")
    return out + struct.pack(f"<{count}{code}", *values)


def gaussian(shape, seed):
    rng = random.Random(seed)
    count = 1
    for extent in shape:
        count *= extent
    return [rng.gauss(0.0, 1.0) for _ in range(count)]


def document_ids(lengths):
    ids = []
    for doc, length in enumerate(lengths):
        ids.extend([doc] * length)
    return ids


def alibi_slopes(num_heads):
    # Power-of-two head counts only, which is all this example needs.
    return [2.0 ** (-8.0 * (i + 1) / num_heads) for i in range(num_heads)]


def inputs():
    return {
        "q.npy": npy_bytes((1, 4, 100, 64), "float32", gaussian((1, 4, 100, 64), seed=1)),
        "k.npy": npy_bytes((1, 2, 100, 64), "float32", gaussian((1, 2, 100, 64), seed=2)),
        "v.npy": npy_bytes((1, 2, 100, 64), "float32", gaussian((1, 2, 100, 64), seed=3)),
        "doc_ids.npy": npy_bytes((1, 100), "int32", document_ids([30, 45, 25])),
        "slopes.npy": npy_bytes((4,), "float32", alibi_slopes(4)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=HERE, help="directory to write (default: next to this script)")
    parser.add_argument("--check", action="store_true", help="compare with the files instead of writing")
    args = parser.parse_args()
    stale = []
    for name, data in inputs().items():
        path = os.path.join(args.out, name)
        if args.check:
            try:
                with open(path, "rb") as f:
                    same = f.read() == data
            except OSError:
                same = False
            if not same:
                stale.append(name)
        else:
            with open(path, "wb") as f:
                f.write(data)
    if stale:
        print("out of date: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
