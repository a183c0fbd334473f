#!/usr/bin/env bash
# Run every benchmark in sequence (most load-sensitive first), then render BENCHMARKS.md.
#   benchmarks/run_all.sh                 # the full set, about 15-20 min on 2 quiet cores
#   STEPS="store_codecs loader" benchmarks/run_all.sh
#   SMOKE=1 benchmarks/run_all.sh         # tiny inputs, results named smoke_<name>.json (checks the scripts run)
# Logs go to ${LOGS:-/tmp/stag-bench/logs}. Run it on a quiet machine: each script records the load average.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
NICE=${NICE:-}   # e.g. NICE="nice -n 10" on a shared machine
LOGS=${LOGS:-/tmp/stag-bench/logs}
mkdir -p "$LOGS"
STEPS=${STEPS:-"ingest_runs ingest_scaling_demo100 parallel_ceiling task_overhead selection_vs_all ingest_stages training_cost loader store_codecs"}
# a step runs benchmarks/<step>.py unless named here
declare -A SCRIPT=([ingest_scaling_demo100]=ingest_runs)
declare -A ARGS=(
  [ingest_runs]=""
  [ingest_scaling_demo100]="--datasets demo --demo-clips-per-emotion 4 --no-naive --scaling-pairs 9 --name ingest_scaling_demo100"
  [parallel_ceiling]=""
  [task_overhead]=""
  [selection_vs_all]=""
  [ingest_stages]=""
  [training_cost]="--folds 3 --epochs 40"
  [loader]="--epochs 6"
  [store_codecs]=""
)
if [ -n "${SMOKE:-}" ]; then
  ARGS=(
    [ingest_runs]="--datasets demo --demo-subjects 1 --demo-clips-per-emotion 1 --name smoke_ingest_runs"
    [ingest_scaling_demo100]="--datasets demo --demo-subjects 1 --demo-clips-per-emotion 2 --no-naive --name smoke_ingest_scaling_demo100"
    [parallel_ceiling]="--repeats 1 --name smoke_parallel_ceiling"
    [task_overhead]="--repeats 1 --tasks 20 --name smoke_task_overhead"
    [selection_vs_all]="--clips --demo 2 --name smoke_selection_vs_all"
    [ingest_stages]="--clips face_noface_0_60 --demo 2 --name smoke_ingest_stages"
    [training_cost]="--folds 1 --epochs 2 --name smoke_training_cost"
    [loader]="--stores composite --epochs 2 --name smoke_loader"
    [store_codecs]="--samples 8 --repeats 1 --name smoke_store_codecs"
  )
fi
for step in $STEPS; do
  echo "$(date -u +%H:%M:%S) $step ${ARGS[$step]} (load $(cut -d' ' -f1-3 /proc/loadavg))"
  # shellcheck disable=SC2086
  timeout "${STEP_TIMEOUT:-1200}" $NICE $PY "benchmarks/${SCRIPT[$step]:-$step}.py" ${ARGS[$step]} > "$LOGS/$step.log" 2>&1
  echo "$(date -u +%H:%M:%S) $step exit $? (load $(cut -d' ' -f1-3 /proc/loadavg))"
  $PY benchmarks/report.py > /dev/null
done
echo "$(date -u +%H:%M:%S) done"
