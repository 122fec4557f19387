"""fp32 against bf16 annotation with the shipped NER model: same entities? same F1? how much faster?

Reads gold PubTator documents (default: BC5CDR dev from the corpora folder beside the checkout;
`--data FILE` for another), preprocesses them once, annotates them with the engine in each
precision (one torch thread, CPU seconds of this process, the second of two runs counted), and
prints strict span-level P/R/F1 against the gold offsets and how many entities the two precisions
share. Exits 0 with a message when the data file is absent.

Usage: .venv/bin/python benchmarks/compare_precision.py [--data FILE] [--model default]
The last stdout line is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from biomodels.inference import AnnotationEngine  # noqa: E402
from corpora.formats import read_documents  # noqa: E402
from corpora.preprocess import build_pipeline, preprocess_documents  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared/corpora/bc5cdr/pubtator/CDR_DevelopmentSet.PubTator.txt"


def spans(docs) -> set[tuple[str, int, int, str]]:
    return {(d.id, e.offsets[0][0], e.offsets[-1][1], e.type) for d in docs for e in d.entities}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--model", default="default", help="NER model directory, or default (shipped)")
    args = ap.parse_args()
    if not args.data.is_file():
        print(f"skipped: {args.data} not found (pass --data FILE)")
        return 0
    torch.set_num_threads(1)
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    gold = list(read_documents(args.data))
    docs = list(preprocess_documents(gold, build_pipeline()))
    truth = spans(gold)
    found, result = {}, {"data": str(args.data), "documents": len(docs), "gold_entities": len(truth)}
    for precision in ("fp32", "bf16"):
        engine = AnnotationEngine(args.model, device="cpu", precision=precision)
        for _ in range(2):
            start = time.process_time()
            predicted = spans(engine.annotate(docs))
            cpu = time.process_time() - start
        tp = len(predicted & truth)
        p, r = tp / max(len(predicted), 1), tp / max(len(truth), 1)
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        found[precision] = predicted
        result[precision] = {"cpu_s": round(cpu, 2), "entities": len(predicted), "p": p, "r": r, "f1": f1}
        print(f"{precision}: {cpu:.1f} CPU s, {len(predicted)} entities, P {p:.4f} R {r:.4f} F1 {f1:.4f}")
    a, b = found["fp32"], found["bf16"]
    result.update(shared=len(a & b), only_fp32=len(a - b), only_bf16=len(b - a), jaccard=len(a & b) / len(a | b))
    result["speedup_cpu"] = result["fp32"]["cpu_s"] / result["bf16"]["cpu_s"]
    print(f"shared {len(a & b)}, only fp32 {len(a - b)}, only bf16 {len(b - a)}, Jaccard {result['jaccard']:.4f}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
