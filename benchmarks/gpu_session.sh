#!/usr/bin/env bash
# One GPU session (issue 12): the full default test suite on CUDA, then the member-axis
# and throughput benchmarks. About 6-8 minutes on an H100; every step has a time limit
# so a slow step cannot eat the others' time.
#
#   bash benchmarks/gpu_session.sh OUTDIR
#
# Writes OUTDIR/pytest.txt, OUTDIR/members_cuda.md, OUTDIR/throughput_cuda.md and
# OUTDIR/throughput_cuda_1e7.md, OUTDIR/throughput_cuda_compile.md,
# OUTDIR/ihdp_cuda_members10_fitmany.md,
# OUTDIR/nvidia-smi.txt. CATENets (for the comparison row) is installed from
# benchmarks/wheels/ without network when it is not importable; without it the row is
# skipped and the table says why.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:?usage: bash benchmarks/gpu_session.sh OUTDIR}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true

if ! python -c "import catenets" 2>/dev/null && ls benchmarks/wheels/*.whl >/dev/null 2>&1; then
  pip install --quiet --no-deps --no-index benchmarks/wheels/*.whl || true
fi

start=$(date +%s)
# 1. the whole default suite; device="auto" puts every estimator on CUDA
timeout 240 python -m pytest -q -p no:cacheprovider 2>&1 | tail -40 > "$OUT/pytest.txt"
echo "pytest: $(tail -1 "$OUT/pytest.txt") ($(( $(date +%s) - start )) s)"

# 2. 100 IHDP TARNets (10 files x 10 seeds) as one batched fit vs fitted one by one
#    (20 sequential fits timed, the time scaled to 100); stacked vs vmap step
timeout 120 python benchmarks/members.py --device cuda --part impl batched \
  --datasets 10 --seeds 10 --sequential-fits 20 --out "$OUT" 2>&1 | tail -25

# 3. rows/s: 1e5 to 1e7 rows x 25 features
timeout 150 python benchmarks/throughput.py --device cuda --bf16 --epochs 2 \
  --rows 100000 1000000 --batch 8192 65536 262144 --out "$OUT" 2>&1 | tail -22
timeout 90 python benchmarks/throughput.py --device cuda --bf16 --epochs 2 \
  --rows 10000000 --batch 262144 --models plain tarnet tarnet-bf16 --tag _1e7 \
  --out "$OUT" 2>&1 | tail -8
# 4. IHDP: the 10 files x 10 members as one fit_many (replication 1's split)
timeout 60 python benchmarks/ihdp.py --device cuda --fit-many --n-members 10 \
  --models "T-learner GB (baseline)" TARNet --out "$OUT" 2>&1 | tail -6

# 5. torch.compile with CUDA graphs (compilation is paid in the untimed first fits)
timeout 90 python benchmarks/throughput.py --device cuda --epochs 2 \
  --rows 1000000 --batch 8192 --models plain tarnet tarnet-compile --tag _compile \
  --out "$OUT" 2>&1 | tail -8
echo "total $(( $(date +%s) - start )) s"
