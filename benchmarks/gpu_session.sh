#!/usr/bin/env bash
# The GPU checks of a session, as one script with a time limit per step, so that a slow
# step cannot eat the others' time:
#
#   bash benchmarks/gpu_session.sh OUTDIR [tests] [members] [throughput] [ihdp] [compile]
#
# (no step names: all of them). "tests" runs the whole default suite with the GPU
# present, where device="auto" puts every estimator on CUDA (8 pytest workers share the
# GPU). The other steps are the issue-12 benchmarks: 100 IHDP TARNets as one batched
# fit against one-by-one fits, rows/s against a plain torch loop and CATENets, the 10
# IHDP files as one fit_many, and torch.compile with CUDA graphs. CATENets is
# optional: install it first (pip install --no-deps catenets==0.2.4 loguru gdown) or the
# table says it is missing.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:?usage: bash benchmarks/gpu_session.sh OUTDIR [step ...]}"
shift
steps="${*:-tests members throughput ihdp compile}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi -L 2>&1 | tee "$OUT/nvidia-smi.txt"
start=$(date +%s)
stamp() { echo "== $1 done at $(( $(date +%s) - start )) s"; }
has() { [[ " $steps " == *" $1 "* ]]; }

if has tests; then
  workers=$(python -c "import xdist" 2>/dev/null && echo "-n 8" || echo "")
  timeout 200 python -m pytest -q -p no:cacheprovider $workers -W ignore::UserWarning \
    --tb=short > "$OUT/pytest.txt" 2>&1
  grep -E "^(FAILED|ERROR)|passed|failed" "$OUT/pytest.txt" | tail -15
  stamp tests
fi
if has members; then  # 100 IHDP TARNets (10 files x 10 seeds) batched vs one by one
  timeout 110 python benchmarks/members.py --device cuda --part impl batched \
    --datasets 10 --seeds 10 --sequential-fits 10 --out "$OUT" 2>&1 | tail -22
  stamp members
fi
if has throughput; then  # rows/s at 1e6 and 1e7 rows x 25 features
  timeout 120 python benchmarks/throughput.py --device cuda --bf16 --epochs 2 \
    --rows 1000000 --batch 8192 65536 262144 --out "$OUT" 2>&1 | tail -20
  timeout 60 python benchmarks/throughput.py --device cuda --bf16 --epochs 2 \
    --rows 10000000 --batch 262144 --models plain tarnet tarnet-bf16 --tag _1e7 \
    --out "$OUT" 2>&1 | tail -8
  stamp throughput
fi
if has ihdp; then  # the 10 IHDP files x 10 members as one fit_many
  timeout 60 python benchmarks/ihdp.py --device cuda --fit-many --n-members 10 \
    --models "T-learner GB (baseline)" TARNet --out "$OUT" 2>&1 | tail -8
  stamp ihdp
fi
if has compile; then  # CUDA graphs through torch.compile (compilation not timed)
  timeout 100 python benchmarks/throughput.py --device cuda --epochs 3 \
    --rows 1000000 --batch 8192 --models plain tarnet tarnet-compile catenets --tag _compile \
    --out "$OUT" 2>&1 | tail -8
  stamp compile
fi
echo "total $(( $(date +%s) - start )) s"
