"""Does pretraining pay? NER and RE scores of scratch models against models fine-tuned from our
pretrained encoder, with the same fine-tuning budget, beside the classical baselines.

Runs (each one `biomodels.training.api.train` on the named splits, dev F1 of the kept weights):
- ner-scratch-<corpus>: `--model scratch`, the scratch learning rate (1e-3), 6 x 256, the same epochs,
  vocabulary trained on the training text;
- ner-pretrained-<corpus>: `--model ENCODER` (default: the shipped encoder), 6 epochs, lr 3e-4;
- re-pretrained-<corpus>: RE from the encoder, against the all-positive baseline (every candidate
  given the most frequent positive class) computed on the same dev candidates.
Corpora: BC5CDR (PubTator train/dev: Chemical, Disease; CID), NCBI-disease (CoNLL train/devel,
and test when present), ChemProt (the original TSV train/dev). The CRF figures (sklearn-crfsuite,
hand-made features, train split only) are quoted from the measurements in RESULTS.md.

Needs the corpora folder (default: the `shared/corpora` folder beside the checkout); runs that lack
their files are skipped with a message. Each run writes its model under benchmarks/_work/eval_models/.
The last stdout line is one JSON object of every figure.

    .venv/bin/python benchmarks/eval_models.py [--runs ner-scratch-bc5cdr ...] [--encoder DIR] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_CORPORA = REPO.parent / "shared" / "corpora"
WORK = REPO / "benchmarks" / "_work" / "eval_models"
CRF = {"bc5cdr": 0.814, "ncbi": 0.808}  # strict entity F1 on dev, from the CRF measurement

SPLITS = {
    "bc5cdr": ("bc5cdr/pubtator/CDR_TrainingSet.PubTator.txt", "bc5cdr/pubtator/CDR_DevelopmentSet.PubTator.txt", None),
    "ncbi": (
        "ncbi-disease/conll/NCBI-disease-IOB/train.tsv",
        "ncbi-disease/conll/NCBI-disease-IOB/devel.tsv",
        "ncbi-disease/conll/NCBI-disease-IOB/test.tsv",
    ),
    "chemprot": ("chemprot/original/chemprot_training", "chemprot/original/chemprot_development", None),
}
NER_BUDGET = {"epochs": 6, "batch_size": 32, "max_length": 128, "seed": 42}  # = NER_SETTINGS in the Makefile
RE_BUDGET = {"epochs": 4, "batch_size": 32, "max_length": 128, "seed": 42}  # = RE_SETTINGS
RUNS = {
    "ner-scratch-bc5cdr": ("ner", "bc5cdr", "scratch", {"layers": 6, "hidden": 256, "heads": 4, "vocab_size": 16000}),
    "ner-pretrained-bc5cdr": ("ner", "bc5cdr", "encoder", {"learning_rate": 3e-4}),
    "ner-scratch-ncbi": ("ner", "ncbi", "scratch", {"layers": 6, "hidden": 256, "heads": 4, "vocab_size": 16000}),
    "ner-pretrained-ncbi": ("ner", "ncbi", "encoder", {"learning_rate": 3e-4}),
    "re-pretrained-bc5cdr": ("re", "bc5cdr", "encoder", {"learning_rate": 3e-4, "relation_task": "bc5cdr-cid"}),
    # ChemProt has about four times BC5CDR's candidates: 1 epoch keeps the run near the others' time
    "re-pretrained-chemprot": (
        "re",
        "chemprot",
        "encoder",
        {"learning_rate": 3e-4, "relation_task": "chemprot", "epochs": 1},
    ),
}


def all_positive_baseline(metrics: dict[str, Any]) -> dict[str, float]:
    """Micro P/R/F1 over positive classes when every candidate gets the most frequent positive class."""
    per = metrics["per_class"]
    positives = sum(row["support"] for row in per.values())
    top = max(row["support"] for row in per.values())
    precision = top / metrics["n"]
    recall = top / positives if positives else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def run_one(name: str, corpora: Path, encoder: Path, threads: int) -> dict[str, Any]:
    from biomodels.training.api import evaluate, train

    task, corpus, start, extra = RUNS[name]
    train_rel, dev_rel, test_rel = SPLITS[corpus]
    train_path, dev_path = corpora / train_rel, corpora / dev_rel
    if not train_path.exists() or not dev_path.exists():
        return {"skipped": f"{train_path} or {dev_path} not found"}
    model = "scratch" if start == "scratch" else str(encoder)
    settings = {**(NER_BUDGET if task == "ner" else RE_BUDGET), **extra, "progress": False}
    out = WORK / name
    started = time.perf_counter()
    outcome = train(task, model, [train_path], [dev_path], out, settings)
    row: dict[str, Any] = {
        "task": task,
        "corpus": corpus,
        "start": model,
        "settings": settings,
        "dev": outcome.headline,
        "seconds": round(time.perf_counter() - started, 1),
        "threads": threads,
    }
    if task == "ner":
        row["dev_per_type"] = {t: round(v["f1"], 4) for t, v in outcome.dev_metrics.get("per_type", {}).items()}
        row["crf_dev_f1"] = CRF.get(corpus)
        if test_rel and (corpora / test_rel).exists():
            row["test"] = {k: evaluate("ner", out, [corpora / test_rel])[k] for k in ("precision", "recall", "f1")}
    else:
        row["dev_per_class"] = {c: round(v["f1"], 4) for c, v in outcome.dev_metrics["per_class"].items()}
        row["all_positive_baseline"] = all_positive_baseline(outcome.dev_metrics)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", nargs="+", choices=sorted(RUNS), default=sorted(RUNS), help="which runs (default all)")
    p.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA, help="folder holding the corpora")
    p.add_argument("--encoder", type=Path, default=None, help="pretrained encoder (default: the shipped one)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)
    if not args.corpora.is_dir():
        print(f"skipped: corpora folder {args.corpora} not found")
        print(json.dumps({"skipped": True}))
        return 0
    import torch

    from biomodels.models.shipped import shipped_model_dir

    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    results: dict[str, Any] = {}
    encoder = args.encoder
    if any(RUNS[name][2] == "encoder" for name in args.runs):
        encoder = encoder or shipped_model_dir("encoder")
        enc_meta = json.loads((Path(encoder) / "biomed.json").read_text(encoding="utf-8"))
        results["encoder"] = {
            "path": str(encoder),
            "held_out": enc_meta["result"]["held_out"],
            "pretraining_tokens_per_s": enc_meta["result"]["tokens_per_s"],
            "steps": enc_meta["result"]["global_step"],
        }
    for name in args.runs:
        results[name] = run_one(name, args.corpora, Path(encoder or "."), torch.get_num_threads())
        row = results[name]
        if "skipped" in row:
            print(f"{name}: skipped ({row['skipped']})")
            continue
        extra = (
            f"CRF {row['crf_dev_f1']}"
            if row["task"] == "ner"
            else f"all-positive {row['all_positive_baseline']['f1']:.4f}"
        )
        test = f", test F1 {row['test']['f1']:.4f}" if "test" in row else ""
        print(f"{name}: dev F1 {row['dev']['f1']:.4f}{test} ({extra}; {row['seconds']:.0f} s)", flush=True)
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / f"results-{'-'.join(args.runs) if len(args.runs) < 3 else 'all'}.json").write_text(
        json.dumps(results, indent=1), encoding="utf-8"
    )
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
