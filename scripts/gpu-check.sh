#!/usr/bin/env bash
# convgrad on a GPU, end to end, in one run (under 10 minutes on a datacentre GPU):
#   1. convgrad info and convgrad check (the f64 reference and finite differences);
#   2. 100 runs of each op of the standard layers, every result compared bit for bit with the first;
#   3. the standard and gpu bench suites, to JSON; every candidate plan of both suites measured
#      (`convgrad tune`, tuned against Auto per layer and op) and the standard suite's picks timed;
#   4. where PyTorch with CUDA is installed, the same layers timed with cuDNN (FP32, TF32 off;
#      deterministic on and off), and a Markdown table of the ratios per layer and op.
# Everything lands in $OUT (default gpu-check/); the last step's table is $OUT/table.md.
#
#   bash scripts/gpu-check.sh                  # uses target/release/convgrad, building it if needed
#   CONVGRAD=/path/to/convgrad OUT=/tmp/gc PYTHON=/path/to/python bash scripts/gpu-check.sh
#
# On a software adapter (lavapipe, SwiftShader) the same steps run on smaller work so that the script
# can be checked anywhere: 5 repeats instead of 100, and the tiny suite in place of the gpu suite
# (whose batch-128 layers take tens of minutes there), and only the tiny suite tuned. It says so when
# it does.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
BIN=${CONVGRAD:-target/release/convgrad}
# The cuDNN step needs the Python that has PyTorch (PYTHON=... to name it); the table needs only the
# standard library.
PYTHON=${PYTHON:-python3}
if [ ! -x "$BIN" ]; then
    echo "== building convgrad (release)"
    cargo build --release --bin convgrad
fi
step() { echo; echo "== $*"; }
start=$SECONDS

step "convgrad info"
"$BIN" info | tee "$OUT/info.txt"
# The adapter convgrad picks is the line marked with '*'; a CPU device type means a software driver.
software=0
if grep -E '^\s*\*' "$OUT/info.txt" | grep -q 'Cpu'; then
    software=1
    echo "note: the chosen adapter is a software one: repeats and the large suite are cut down (see the header)"
fi
repeats=100
big_suite=gpu
tune_suites="standard gpu"
if [ "$software" = 1 ]; then
    repeats=5
    big_suite=tiny
    tune_suites=tiny
fi

step "convgrad check"
"$BIN" check | tee "$OUT/check.txt"

step "bitwise repeats: $repeats runs per op, standard suite"
"$BIN" bench --suite standard --repeats "$repeats" | tee "$OUT/repeats.txt"

step "bench: standard suite"
"$BIN" bench --suite standard --reps 10 --json "$OUT/standard.json" | tee "$OUT/standard.txt"

# Measured plans: every candidate of each layer and op timed on this adapter, each line with its speed
# against the planner's own (Auto), the pick marked; then the picks timed like the plans above.
for s in $tune_suites; do
    step "tune: $s suite (cache $OUT/tuned.txt)"
    "$BIN" tune --suite "$s" --cache "$OUT/tuned.txt" | tee "$OUT/tune-$s.txt"
done
first=${tune_suites%% *}
step "bench: $first suite with the tuned plans"
"$BIN" bench --suite "$first" --reps 10 --tuned --cache "$OUT/tuned.txt" --json "$OUT/$first-tuned.json" \
    | tee "$OUT/$first-tuned.txt"

step "bench: $big_suite suite"
"$BIN" bench --suite "$big_suite" --reps 10 --json "$OUT/$big_suite.json" | tee "$OUT/$big_suite.txt"

step "cuDNN (PyTorch)"
cudnn_arg=()
set +e
"$PYTHON" scripts/cudnn_compare.py time "$OUT/standard.json" "$OUT/$big_suite.json" --out "$OUT/cudnn.json"
status=$?
set -e
case $status in
    0) cudnn_arg=(--cudnn "$OUT/cudnn.json") ;;
    3) echo "skipped: the table below has no cuDNN columns" ;;
    *) echo "the cuDNN timing failed (exit $status)"; exit "$status" ;;
esac

step "table"
"$PYTHON" scripts/cudnn_compare.py table "$OUT/standard.json" "$OUT/$big_suite.json" "${cudnn_arg[@]}" | tee "$OUT/table.md"

echo
echo "gpu-check done in $((SECONDS - start)) s; results in $OUT/"
