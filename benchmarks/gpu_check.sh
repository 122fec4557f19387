#!/usr/bin/env bash
# The GPU check of the encoder issue, as one script for a lent H100/H200 (about 6 minutes):
# the 345m NER fine-tuning loop in bf16 with each attention path, then sdpa with torch.compile.
# Results land in $OUT (or ./gpu-results) as one JSON line per run; copy them into RESULTS.md.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-results}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
for args in "--attention sdpa" "--attention eager" "--attention sdpa --compile"; do
  echo "== gpu_train.py $args"
  PYTHONUNBUFFERED=1 timeout 240 python3 benchmarks/gpu_train.py --steps 60 --batch-size 64 --precision bf16 $args \
    2>&1 | tee -a "$out/log.txt" | tail -1 >> "$out/results.jsonl"
done
cat "$out/results.jsonl"
