#!/usr/bin/env bash
# The checks only a CUDA machine can run, in one go, each step under its own time limit so that
# one slow step leaves the others their figures. README "On a GPU" reports what they printed.
#
#   scripts/gpu_checks.sh path/to/ml-latest-small [results-folder] [seconds-in-all]
#
# Each step's JSON goes to the results folder; its stderr to <step>.err beside it.
set -u
data=${1:?"usage: scripts/gpu_checks.sh path/to/ml-latest-small [results-folder] [seconds]"}
out=${2:-gpu-results}
budget=${3:-600}
python=${PYTHON:-python3}
mkdir -p "$out"
start=$SECONDS

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2 left=$((budget - (SECONDS - start)))
    shift 2
    if [ "$left" -lt 15 ]; then echo "$name: skipped, out of time"; return; fi
    [ "$limit" -gt "$left" ] && limit=$left
    local began=$SECONDS
    timeout "$limit" "$@" > "$out/$name.json" 2> "$out/$name.err"
    echo "$name: exit $? after $((SECONDS - began)) s"
}

step tests 120 "$python" -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_tune_encoder.py \
    -k "gpu or half or saved_loads"
step encode 90 "$python" -m ctxrec bench encode --sizes 20000 --batch-sizes 64 256 1024
step index 180 "$python" -m ctxrec bench index --sizes 1000000 --vector-sizes 1000000 --calls 30
step tune_encoder 150 "$python" -m ctxrec tune-encoder --data "$data" --pairs-per-user 40 --seed 0 \
    --out "$out/encoder"
step evaluate_tuned 70 "$python" -m ctxrec evaluate --data "$data" --models lm-text lm-history \
    --model "$out/encoder"
step evaluate_frozen 70 "$python" -m ctxrec evaluate --data "$data" \
    --models popularity lm-text lm-history
step training 80 "$python" -m ctxrec bench training --data "$data"
step ddp_nccl 90 "$python" -m torch.distributed.run --standalone --nproc_per_node "${GPUS:-1}" \
    -m ctxrec train --distributed --data "$data" --seed 0 --epochs 3 --out "$out/ddp"
echo "all steps: $((SECONDS - start)) s; results in $out"
