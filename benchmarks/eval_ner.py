"""NER regression benchmark: a small Megatron-BERT trained from scratch on NCBI-disease, test F1.

Trains `biomed train ner --model scratch` (WordPiece vocabulary of 8000 trained on the training text,
4 layers, hidden 128, 3 epochs by default: hidden 256 did not fit 15 minutes on 2 shared cores) on
the full NCBI-disease train split from ../shared, picks the best epoch on devel, and scores the test
split with entity-level strict P/R/F1 (`biomed evaluate`).

It is a regression figure for the training and evaluation code on CPU (about 15 minutes on 2
cores), NOT a claim about BioMegatron: a pretrained 345m model reaches about 87 F1 on this test set
(Shin et al. 2020); a small model trained from scratch on 5,400 sentences gets far less.
Exits 0 with a message when the corpus is absent. The last stdout line is one JSON object.

    .venv/bin/python benchmarks/eval_ner.py [--epochs 3] [--hidden 128] [--layers 4]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_DATA = REPO.parent / "shared" / "corpora" / "ncbi-disease" / "conll" / "NCBI-disease-IOB"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="folder with train.tsv, devel.tsv, test.tsv")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "_work" / "eval_ner", help="model directory")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)

    splits = {name: args.data_dir / f"{name}.tsv" for name in ("train", "devel", "test")}
    missing = [str(path) for path in splits.values() if not path.is_file()]
    if missing:
        print(
            f"skipped: NCBI-disease CoNLL files not found ({', '.join(missing)}); "
            "the benchmark needs ../shared/corpora/ncbi-disease/conll/NCBI-disease-IOB/"
        )
        print(json.dumps({"skipped": True, "missing": missing}))
        return 0

    import torch

    from biomodels.training.api import evaluate, train

    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("httpx", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    config = {
        "layers": args.layers,
        "hidden": args.hidden,
        "heads": args.heads,
        "vocab_size": args.vocab_size,
        "epochs": args.epochs,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "warmup_ratio": 0.1,
        "weight_decay": 0.01,
        "dropout": 0.1,
        "max_length": 128,
        "stride": 32,
        "precision": "auto",
        "seed": args.seed,
        "log_every": 50,
        "save_every": 1000,
        "progress": False,
    }
    started = time.perf_counter()
    outcome = train("ner", "scratch", [splits["train"]], [splits["devel"]], args.out, config)
    train_s = time.perf_counter() - started
    t0 = time.perf_counter()
    test = evaluate("ner", args.out, splits["test"])
    eval_s = time.perf_counter() - t0
    metrics = json.loads((args.out / "metrics.json").read_text(encoding="utf-8"))
    dev = outcome.headline
    print(
        f"model: scratch {args.layers} layers, hidden {args.hidden}, {args.heads} heads, WordPiece vocab "
        f"{args.vocab_size} trained on the training text; {outcome.global_step} steps, "
        f"best dev at step {outcome.best_step}"
    )
    print(f"dev  (best epoch): P {dev['precision']:.4f}  R {dev['recall']:.4f}  F1 {dev['f1']:.4f}")
    print(
        f"test (strict IOB2): P {test['precision']:.4f}  R {test['recall']:.4f}  F1 {test['f1']:.4f}  "
        f"(gold {test['n_gold']}, predicted {test['n_pred']}, sentences {test['n_sentences']})"
    )
    print(
        f"time: train {train_s / 60:.1f} min ({metrics['tokens_per_s']:.0f} real tokens/s), "
        f"test evaluation {eval_s:.0f} s, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(
        json.dumps(
            {
                "benchmark": "eval_ner",
                "corpus": "NCBI-disease",
                "model": f"scratch-{args.layers}x{args.hidden}",
                "vocab_size": args.vocab_size,
                "epochs": args.epochs,
                "steps": outcome.global_step,
                "best_step": outcome.best_step,
                "dev_f1": dev["f1"],
                "test_precision": test["precision"],
                "test_recall": test["recall"],
                "test_f1": test["f1"],
                "train_minutes": round(train_s / 60, 2),
                "tokens_per_s": round(metrics["tokens_per_s"]),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
