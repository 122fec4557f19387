#!/usr/bin/env bash
# Seconds of a rerun with nothing to do: `biomed ingest`, `preprocess`, `annotate` on the bundled
# samples, from a checkout of BEFORE (default 87483de: flows start Prefect's API, then skip every
# shard) and of the working tree ("after": unchanged inputs found before Prefect starts), each
# into its own folders, interleaved. Round 0 does the work; rounds 1-3 are the no-op reruns.
#   benchmarks/bench_noop_rerun.sh NER_MODEL_DIR [BEFORE_COMMIT]
# Figures and the machine load: benchmarks/RESULTS.md, "Reruns with nothing to do".
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
MODEL=${1:?usage: bench_noop_rerun.sh NER_MODEL_DIR [BEFORE_COMMIT]}
BEFORE=${2:-87483de}
PY=$REPO/.venv/bin/python
S=$REPO/corpora/samples
WORK=$(mktemp -d)
git -C "$REPO" worktree add -f --detach "$WORK/before-src" "$BEFORE" -q
trap 'git -C "$REPO" worktree remove --force "$WORK/before-src"; rm -rf "$WORK"' EXIT
seconds() { local s; s=$(date +%s.%N); "$@" > "$WORK/last.out" 2>&1; local rc=$?
  printf '%.2f s (exit %d) %s\n' "$(echo "$(date +%s.%N) - $s" | bc)" "$rc" "$(head -c 70 "$WORK/last.out" | tr '\n' ' ')"; }
for round in 0 1 2 3; do
  for side in before after; do
    if [ "$side" = before ]; then cd "$WORK/before-src"; else cd "$REPO"; fi  # -m runs the code of the cwd
    o=$WORK/$side
    echo "$round $side ingest:     $(seconds "$PY" -m pipelines.cli ingest "$S/bc5cdr/CDR_dev_sample.PubTator.txt" "$S/pubmed" --out "$o/ds" --no-progress)"
    echo "$round $side preprocess: $(seconds "$PY" -m pipelines.cli preprocess "$o/ds" --out "$o/pre" --no-progress)"
    echo "$round $side annotate:   $(seconds "$PY" -m pipelines.cli annotate "$o/pre" --ner "$MODEL" --out "$o/ann" --no-progress)"
  done
done
