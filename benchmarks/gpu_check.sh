#!/usr/bin/env bash
# The checks that need a GPU, as one short script (under 5 minutes on one H100):
#   1. LOSO on the MEGC 2019 composite, STAG and STSTNet, 1 seed: all folds together on the GPU
#      (vmap, bfloat16) against the same folds on the CPU (one fold per core); times, speed-up,
#      agreement of the predictions (benchmarks/gpu_loso.py).
#   2. TV-L1, the torch backend on the GPU against one OpenCV thread (benchmarks/gpu_tvl1.py): pairs/s at
#      1, 8, 64 and 256 pairs per call on CASME II frames; EPE torch vs OpenCV on the CASME II pairs (and
#      vs IPOL) and on demo crops; batch vs one by one; the demo's ingest time with OpenCV, with torch one
#      clip per call and with torch on many clips per call (estimated 2 minutes, not yet run on a GPU;
#      needs casme2_frames/ in DATA, default ../shared/data).
#      Check it without a GPU: benchmarks/gpu_tvl1.py --device cpu --batch-sizes 1,2 --demo-clips 1 --ingest-clips 6
# Needs: a CUDA torch and the project's Python dependencies (pydantic, zarr, numcodecs, pyyaml,
# scikit-learn, pandas, torch-geometric; `make install` with a CUDA torch, or wheels on PYTHONPATH),
# and the composite store: STORE=path, or stores/megc2019.zarr, or ../shared/data to build it from.
# Figures go to $OUT (or benchmarks/results/gpu) as JSON as well as to the terminal.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
STORE=${STORE:-stores/megc2019.zarr}
OUTDIR=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUTDIR"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
if [ ! -f "$STORE/zarr.json" ]; then
    echo "building $STORE from ../shared/data ..."
    "$PY" -c "
import sys
from schemas.catalog import DatasetEntry
from schemas.pipeline_config import PipelineConfig
from stag_features.ingest.producers import producer_for
from stag_features.ingest.steps import ingest_in_process
data = '../shared/data'
entry = DatasetEntry(name='megc2019', adapter='megc2019', root=data + '/megc2019_flow', store='$STORE',
                     annotations=data + '/annotations/megc2019/combined_3class_gt.csv',
                     options={'flow_dir': data + '/megc2019_flow'})
print(ingest_in_process(entry, producer_for(entry, PipelineConfig())).table())"
fi
time "$PY" benchmarks/gpu_loso.py --store "$STORE" --out "$OUTDIR"
time "$PY" benchmarks/gpu_tvl1.py --out "$OUTDIR" --data "${DATA:-../shared/data}"  # TV-L1: torch on the GPU vs OpenCV
