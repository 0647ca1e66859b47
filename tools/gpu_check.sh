#!/usr/bin/env bash
# The GPU check in one command, on a fresh GPU machine (docs/gpu.md):
#
#     tools/gpu_check.sh [LOG_DIR]          # default runs/gpu_check
#
# 1. the machine (nvidia-smi, Python), 2. `make install GPU=1 VENV=.venv-gpu` (mxnet-cu112 and the
# pinned CUDA wheels), 3. `dso-nas doctor`, 4. the golden micro search (tests/golden/micro.yaml on
# the 512 Fashion-MNIST images shipped with it) with context=gpu, 5. the same with context=cpu on
# the CUDA build. Each step's stdout and stderr go to LOG_DIR/<step>.log; a failed step does not
# stop the others. The summary (LOG_DIR/summary.txt) gives each step's exit status, time and last
# line. On a GPU the wheels do not serve (compute capability 9.0 and newer: H100, H200) step 4 is
# expected to end in one line, `dso-nas: error: context=gpu: ...`, with exit status 2.
set -u

cd "$(dirname "$0")/.."
LOG=${1:-runs/gpu_check}
VENV=${VENV:-.venv-gpu}
mkdir -p "$LOG"
LOG=$(cd "$LOG" && pwd)
: > "$LOG/summary.txt"
STATUS=0

step() {  # step NAME COMMAND...: run COMMAND, its output in $LOG/NAME.log, its status in the summary
  local name=$1 start=$SECONDS rc
  shift
  echo "== $name: $*"
  { echo "\$ $*"; "$@"; } > "$LOG/$name.log" 2>&1
  rc=$?
  [ "$rc" = 0 ] || STATUS=1
  printf '%-12s exit %-3s %5ss  %s\n' "$name" "$rc" "$((SECONDS - start))" \
    "$(grep -v '^[[:space:]]*$' "$LOG/$name.log" | tail -n 1 | cut -c1-200)" | tee -a "$LOG/summary.txt"
}

machine() {
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  uname -a
  git log -1 --format='commit %H %s' 2>/dev/null
  python3 --version
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=index,name,memory.total,compute_cap,driver_version --format=csv
    nvidia-smi
  else
    echo "nvidia-smi: not found"
  fi
}

MICRO=(--config tests/golden/micro.yaml data.root=tests/golden/fashion_mnist progress=false)

step machine machine
step install make install GPU=1 VENV="$VENV"
step doctor "$VENV/bin/dso-nas" doctor
cat "$LOG/doctor.log"
rm -rf "$LOG/search_gpu" "$LOG/search_cpu"
step search_gpu "$VENV/bin/dso-nas" search "${MICRO[@]}" context=gpu output_dir="$LOG/search_gpu"
step search_cpu "$VENV/bin/dso-nas" search "${MICRO[@]}" context=cpu output_dir="$LOG/search_cpu"

echo "logs in $LOG; summary:"
cat "$LOG/summary.txt"
exit "$STATUS"
