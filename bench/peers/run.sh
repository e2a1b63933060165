#!/usr/bin/env bash
# Compares attnc's CPU flash kernel with its CPU peers (PyTorch SDPA, torch.compile'd
# flex_attention, attnax) on the same inputs, in one run. Creates bench/peers/.venv on first use
# and installs the peers into it with pip; see bench/peers/README.md.
#
#   bench/peers/run.sh [--attnc PATH] [peers.py options...]
#
# The attnc binary defaults to build/tools/attnc/attnc (build it in Release first). Other options
# go to peers.py (--seq, --head-dim, --dtype, --mod, --peers, --repeat, --threads, --tag).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$here/.venv"

attnc="$repo/build/tools/attnc/attnc"
if [[ "${1:-}" == "--attnc" ]]; then
  attnc="$2"
  shift 2
fi
if [[ ! -x "$attnc" ]]; then
  echo "run.sh: no attnc binary at $attnc; build it (Release) or pass --attnc PATH" >&2
  exit 2
fi

if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "import torch, attnax, numpy" 2>/dev/null; then
  echo "run.sh: setting up $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  # The torch wheel on PyPI is a CUDA build: it depends on ~3 GB of CUDA packages (cuda-toolkit,
  # cuDNN, NCCL, NVSHMEM, triton), and without them `import torch` fails (libtorch_cuda.so needs
  # libcufile.so.0 and others at load time), even for CPU-only use. PyPI has no CPU-only torch,
  # so the full dependency set is installed (the venv is about 6 GB).
  "$venv/bin/pip" install --quiet torch
  "$venv/bin/pip" install --quiet numpy attnax jax
fi

exec "$venv/bin/python" "$here/peers.py" --attnc "$attnc" "$@"
