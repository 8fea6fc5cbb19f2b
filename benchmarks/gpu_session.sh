#!/usr/bin/env bash
# The GPU checks of a session, as one script that ends inside a time budget:
#
#   bash benchmarks/gpu_session.sh OUTDIR [tests] [profile] [members] [throughput] [chunks]
#                                         [ihdp] [compile]
#
# (no step names: all of them). "tests" runs the whole default suite with the GPU
# present, where device="auto" puts every estimator on CUDA (8 pytest workers share the
# GPU when pytest-xdist is there). "profile" says where a training epoch and effect(X)
# spend their time (benchmarks/profile_steps.py). The other steps are the issue-12 benchmarks: 100 IHDP
# TARNets as one batched fit against one-by-one fits, rows/s against a plain torch loop
# and CATENets, effect(X) by prediction chunk size, the 10 IHDP files as one fit_many,
# and torch.compile with CUDA graphs.
#
# Each step writes its own results file(s) under OUTDIR (no two steps the same file).
# The benchmark scripts refuse, before any fit, to replace a results file that is
# already there (their --force is not passed here), so OUTDIR must be new or empty: the
# script refuses one that holds anything (a warm machine keeps /tmp between calls; give
# a second call another OUTDIR).
#
# Environment:
#   GPU_SESSION_BUDGET_S  seconds the whole script may take (default 480). Each step's
#                         time limit is its own cap or what is left of the budget,
#                         whichever is less; a step with under 30 s left is skipped.
#   GPU_SESSION_PACK      a folder: after every step, OUTDIR is packed into
#                         PACK/gpu_session.tgz (replaced whole, never half-written) and
#                         the lines printed so far into PACK/summary.txt, so that a call
#                         cut off at its limit still returns the finished steps.
#   GPU_SESSION_DEVICE    the device the benchmarks ask for (default cuda; "cpu" for a
#                         dry run of the script on a machine without a GPU).
#   PYTHON                the interpreter; by default the first of python3, python and
#                         /opt/torch/.venv/bin/python3 that imports torch. (A symbolic
#                         link to a virtual environment's python that lies outside it
#                         starts a python without the environment's packages.)
#
# CATENets is optional: with wheels in .whl/ (pip download catenets==0.2.4 loguru gdown
# requests beautifulsoup4 soupsieve) they are installed into a folder of their own, used
# only if torch still imports beside it; otherwise the tables say CATENets is missing.
#
# On the device tool (15 minutes of device time a session, 10 a call; a machine stays
# warm only 30 s after a call), as one call that returns its packed results:
#   GPU_SESSION_PACK=$OUT GPU_SESSION_BUDGET_S=555 bash benchmarks/gpu_session.sh /tmp/gs
# with timeout_s=600 and carry [".whl"]. The steps' caps add up to more than a budget:
# the budget decides, and the last steps are skipped when time runs out. Two calls fit in
# a session's 15 minutes when the first gives the machine back at once: on 2026-11-28 a
# machine started in about 30 s; "tests profile throughput members chunks compile" ran
# 408 s under a 430 s budget (chunks cut at its cap), and after changes made from its
# profile, "tests throughput profile compile" 341 s under 370 s. The tests step alone
# takes about 135 s (1,216 tests, 8 workers).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:?usage: bash benchmarks/gpu_session.sh OUTDIR [step ...]}"
shift
all_steps="tests profile members throughput chunks ihdp compile"
steps="${*:-$all_steps}"
for name in $steps; do
  if [[ " $all_steps " != *" $name "* ]]; then
    echo "unknown step '$name'; the steps are: $all_steps" >&2
    exit 2
  fi
done
if [[ -e "$OUT" && ( ! -d "$OUT" || -n "$(ls -A "$OUT")" ) ]]; then
  echo "OUTDIR $OUT exists and is not an empty folder: give a new one (the benchmark" \
       "scripts would refuse to replace its results files)" >&2
  exit 2
fi
budget="${GPU_SESSION_BUDGET_S:-480}"
device="${GPU_SESSION_DEVICE:-cuda}"
pack_to="${GPU_SESSION_PACK:-}"
start=$(date +%s)
deadline=$((start + budget))
mkdir -p "$OUT/logs"
summary="$OUT/summary.txt"
: > "$summary"
say() { echo "$*" | tee -a "$summary"; }
has() { [[ " $steps " == *" $1 "* ]]; }

pack() {  # a half-written archive never replaces a whole one
  [[ -n "$pack_to" ]] || return 0
  mkdir -p "$pack_to"
  cp "$summary" "$pack_to/summary.txt.part" && mv -f "$pack_to/summary.txt.part" "$pack_to/summary.txt"
  tar czf "$pack_to/gpu_session.tgz.part" -C "$(dirname "$OUT")" "$(basename "$OUT")" \
    && mv -f "$pack_to/gpu_session.tgz.part" "$pack_to/gpu_session.tgz"
}

# step NAME CAP_S COMMAND...: runs COMMAND under min(CAP_S, budget left - 15 s); its
# output goes to logs/NAME.log, and the log's last lines to the summary. SIGINT first
# (pytest then prints its summary), SIGKILL 10 s later: timeout signals the command's
# whole process group, pytest's workers included.
step() {
  local name=$1 cap=$2
  shift 2
  local left=$((deadline - $(date +%s) - 15))
  local limit=$(( cap < left ? cap : left ))
  if (( limit < 30 )); then
    say "== $name skipped: ${left} s of the budget left"
    return 0
  fi
  timeout -s INT -k 10 "$limit" "$@" > "$OUT/logs/$name.log" 2>&1
  local rc=$?
  tail -n "${TAIL_LINES:-22}" "$OUT/logs/$name.log" | tee -a "$summary"
  say "== $name: exit $rc after $(( $(date +%s) - start )) s (limit ${limit} s)"
  pack
}

PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  for candidate in python3 python /opt/torch/.venv/bin/python3; do
    if command -v "$candidate" > /dev/null && "$candidate" -c "import torch" 2> /dev/null; then
      PY=$candidate
      break
    fi
  done
fi
if [[ -z "$PY" ]] || ! "$PY" -c "import torch" 2> /dev/null; then
  say "no python with torch found (set PYTHON)"
  pack
  exit 2
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null && ! "$PY" -c "import catenets" 2> /dev/null; then
  site=/tmp/causalnn_gpu_session_site
  if timeout 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
       --target "$site" .whl/*.whl > "$OUT/logs/wheels.log" 2>&1 \
     && PYTHONPATH="$PYTHONPATH:$site" "$PY" -c "import torch, catenets" 2>> "$OUT/logs/wheels.log"; then
    export PYTHONPATH="$PYTHONPATH:$site"
  else
    say "CATENets wheels did not install (logs/wheels.log): its rows say it is missing"
  fi
fi
say "$("$PY" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available())')"
{ command -v nvidia-smi > /dev/null && timeout 30 nvidia-smi -L || echo "no nvidia-smi"; } > "$OUT/nvidia-smi.txt" 2>&1
say "$(cat "$OUT/nvidia-smi.txt")"
say "device $device, budget ${budget} s, steps: $steps"
pack

if has tests; then
  pytest_args=(-q -p no:cacheprovider -W ignore::UserWarning --tb=short --durations=15)
  "$PY" -c "import xdist" 2> /dev/null && pytest_args+=(-n 8)
  "$PY" -c "import pytest_timeout" 2> /dev/null && pytest_args+=(--timeout=150)
  TAIL_LINES=40 step tests 240 "$PY" -m pytest "${pytest_args[@]}"
fi
if has profile; then  # the plain loop and TARNet epochs under torch.profiler
  TAIL_LINES=12 step profile 90 "$PY" benchmarks/profile_steps.py --device "$device" \
    --rows 1000000 --batch 8192 262144 --out "$OUT"
fi
if has members; then  # 100 IHDP TARNets (10 files x 10 seeds) batched vs one by one
  step members 110 "$PY" benchmarks/members.py --device "$device" --part impl batched \
    --datasets 10 --seeds 10 --sequential-fits 10 --out "$OUT"
fi
if has throughput; then  # rows/s at 1e6 and 1e7 rows x 25 features
  step throughput 150 "$PY" benchmarks/throughput.py --device "$device" --bf16 --epochs 2 \
    --rows 1000000 --batch 8192 65536 262144 --models plain plain-members tarnet \
    tarnet-plain-model tarnet-addmm tarnet-bf16 tarnet-graph tarnet-graph-bf16 cfr-wass \
    catenets --out "$OUT"
  step throughput_1e7 60 "$PY" benchmarks/throughput.py --device "$device" --bf16 --epochs 2 \
    --rows 10000000 --batch 262144 --models plain tarnet tarnet-bf16 --tag _1e7 --out "$OUT"
fi
if has chunks; then  # effect(X) rows/s by prediction chunk size
  # chunks from 2**21 floats: smaller ones launch tens of thousands of tiny products on
  # a GPU (the step's cap ran out in them on 2026-11-28)
  step chunks 60 "$PY" benchmarks/prediction_chunks.py --device "$device" --rows 2000000 \
    --floats 2097152 8388608 33554432 67108864 --repeats 2 --out "$OUT"
fi
if has ihdp; then  # the 10 IHDP files x 10 members as one fit_many
  step ihdp 60 "$PY" benchmarks/ihdp.py --device "$device" --fit-many --n-members 10 \
    --models "T-learner GB (baseline)" TARNet --out "$OUT"
fi
if has compile; then  # CUDA graphs: torch.compile's (compilation not timed), whole steps
  step compile 100 "$PY" benchmarks/throughput.py --device "$device" --epochs 3 \
    --rows 1000000 --batch 8192 --models plain tarnet tarnet-compile tarnet-graph catenets \
    --tag _compile --out "$OUT"
fi
say "total $(( $(date +%s) - start )) s"
pack
