"""`biomed train` and `biomed evaluate`: thin wrappers over `biomodels.training.api`.

Tested in `tests/biomodels/training/test_config.py`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import fields
from typing import Any, get_type_hints

from biomodels.training.config import KEYS, TASKS, TrainConfig, build_config, option_flags
from corpora.errors import ConfigError
from pipelines.cli.checks import check_model_output, check_paths_exist, check_training_model

TRAIN_HELP = """\
Fine-tune a Megatron-BERT model (or train a small one from scratch) for NER, relation extraction
or extractive QA, choose the best checkpoint on --dev, and write a self-contained model directory.

Data: NER and RE read any format the readers know (CoNLL/IOB, PubTator, BioC XML/JSON, ChemProt
TSV, brat, or a dataset folder from `biomed ingest`/`preprocess`); documents without sentences or
tokens are preprocessed with scispaCy first. RE also reads masked sentence files (BLUE
`id<TAB>sentence<TAB>label` with @CHEMICAL$/@GENE$, BioELECTRA `sentence<TAB>label` with BC6ENT*).
QA reads SQuAD v1.1 JSON.

Model: a preset name (`biomed models list`), a model folder or checkpoint path, or `scratch`
(random weights of --layers/--hidden/--heads; without --vocab a WordPiece vocabulary of
--vocab-size is trained from the training text and the log says so).

Settings: defaults < --config FILE (.yaml/.yml/.toml, keys as the option names with `_`, e.g.
`learning_rate`, `batch_size`; sections training/data/model allowed; README lists every key) < the options below.

Output (--out): model.safetensors, config.json (id2label), tokenizer.json, tokenizer_config.json,
vocab.txt, labels.json, biomed.json (task, source model and hash, data files and sha256, config,
precision, optimizer, apex, versions, max_length/stride, RE marker style), metrics.json,
training.png, dev_metrics.json, and checkpoint/ for --resume.

Running: by default the training runs in this process, so several GPUs work with
  torchrun --nproc_per_node=N -m pipelines.cli train ner ...
(only rank 0 writes files and prints). --flow runs the same training as a Prefect flow `train`
(one task, a table artifact of the final dev metrics); it needs one process, not torchrun.
The last line printed is one JSON object: output directory, steps, dev metrics.
"""

EVAL_HELP = """\
Score a trained model directory on gold data, with the settings it was trained with:
NER entity-level strict P/R/F1 (IOB2, overall and per type); RE micro P/R/F1 over the positive
classes (the negative class excluded) and per class; QA SQuAD exact match and F1.
The last line printed is one JSON object of all the metrics.
"""


_GROUP_TITLES = {
    "training": "training settings (override the config file)",
    "data": "data settings",
    "model": "model settings",
}


def _add_overrides(p: argparse.ArgumentParser) -> None:
    """One option per `TrainConfig` field, with the field's help and default (absent: None)."""
    groups = {name: p.add_argument_group(title) for name, title in _GROUP_TITLES.items()}
    hints = get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        hint = hints[f.name]
        base = next((a for a in getattr(hint, "__args__", ()) if a is not type(None)), hint)
        text = f.metadata["help"]
        if "default" not in text:
            text += (
                f" (default {'none' if f.default is None else str(f.default).lower() if base is bool else f.default})"
            )
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": text}
        flags = option_flags(f)
        if base is bool and len(flags) == 2:  # a yes and a no spelling of its own (--lowercase / --cased)
            group = groups[f.metadata["group"]]
            group.add_argument(flags[0], dest=f.name, action="store_const", const=True, default=None, help=text)
            group.add_argument(flags[1], dest=f.name, action="store_const", const=False, default=None, help=text)
            continue
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif base in (int, float):
            kwargs["type"] = base
        if f.metadata.get("choices"):
            kwargs["choices"] = f.metadata["choices"]
        groups[f.metadata["group"]].add_argument(*flags, **kwargs)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune or train a NER / RE / QA model",
        description=TRAIN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("task", choices=TASKS, help="ner | re | qa")
    p.add_argument("--model", required=True, help="preset name, model folder / checkpoint path, or 'scratch'")
    p.add_argument(
        "--train",
        nargs="+",
        required=True,
        metavar="PATH",
        help="training data: files, folders, globs, dataset folders",
    )
    p.add_argument("--dev", nargs="+", metavar="PATH", help="dev data for evaluation and best-checkpoint selection")
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument("--config", help="config file (.yaml/.yml/.toml)")
    p.add_argument(
        "--resume", action="store_true", help="continue from --out/checkpoint (same data and batch settings)"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="write into a non-empty --out (default: refuse, to keep a model)"
    )
    p.add_argument(
        "--flow", action="store_true", help="run as the Prefect flow `train` (one process; not under torchrun)"
    )
    _add_overrides(p)
    p.set_defaults(func=run_train)

    e = sub.add_parser(
        "evaluate",
        help="score a trained model directory on gold data",
        description=EVAL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument("task", choices=TASKS, help="ner | re | qa")
    e.add_argument("--model", required=True, help="model directory written by `biomed train`")
    e.add_argument("--data", nargs="+", required=True, metavar="PATH", help="gold data (same kinds as `biomed train`)")
    e.add_argument("--batch-size", type=int, default=64, help="examples per forward pass (default 64)")
    e.add_argument("--device", help="cpu, cuda, ... (default: cuda when present)")
    e.set_defaults(func=run_evaluate)


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The config keys given on the command line (absent options are None and not included)."""
    return {k: getattr(args, k) for k in KEYS if getattr(args, k, None) is not None}


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def run_train(args: argparse.Namespace) -> int:
    overrides = overrides_from_args(args)
    config = build_config(args.config, overrides)
    config.resolved(args.task, scratch=args.model == "scratch")  # fail on bad values before reading any data
    check_training_model(args.model)
    check_paths_exist(list(args.train), "--train")
    check_paths_exist(list(args.dev or []), "--dev")
    if _rank() == 0:  # other ranks start once rank 0 has begun writing --out
        check_model_output(args.out, args.resume, args.overwrite)
    if _rank() != 0:
        logging.getLogger().setLevel(logging.WARNING)  # one rank speaks
    if args.flow:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ConfigError("--flow runs training in one process; under torchrun leave --flow out")
        from pipelines.flows.train import train_flow  # Prefect, only for --flow

        outcome = train_flow(
            args.task,
            args.model,
            list(args.train),
            list(args.dev or []),
            args.out,
            config_overrides=overrides,
            config_file=args.config,
            resume=args.resume,
        )
    else:
        from biomodels.training.api import train  # torch, when the command runs

        outcome = train(
            args.task, args.model, list(args.train), list(args.dev or []) or None, args.out, config, resume=args.resume
        ).as_dict()
    if _rank() == 0:
        print(
            f"model directory: {outcome['out_dir']}  ({outcome['global_step']} steps, best at {outcome['best_step']})"
        )
        if outcome["dev_metrics"]:
            print(format_metrics(args.task, outcome["dev_metrics"], "dev"))
        print(
            json.dumps(
                {
                    "out_dir": outcome["out_dir"],
                    "global_step": outcome["global_step"],
                    "best_step": outcome["best_step"],
                    "dev": outcome["headline"],
                },
                sort_keys=True,
            )
        )
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    # imported when the command runs: `biomed --help` loads no flow, torch or spaCy
    from biomodels.training.api import evaluate

    metrics = evaluate(args.task, args.model, list(args.data), batch_size=args.batch_size, device=args.device)
    print(format_metrics(args.task, metrics, ", ".join(args.data)))
    print(json.dumps(metrics, sort_keys=True, default=str))
    return 0


def format_metrics(task: str, m: dict[str, Any], name: str) -> str:
    """A short human-readable table of the metrics of one evaluation."""
    if task == "qa":
        return (
            f"{name}: SQuAD exact match {m['exact_match']:.2f}  F1 {m['f1']:.2f}  "
            f"({m['total']} questions, {m['n_unanswered']} unanswered)"
        )
    if task == "ner":
        lines = [
            f"{name}: entity-level strict (IOB2)  P {m['precision']:.4f}  R {m['recall']:.4f}  F1 {m['f1']:.4f}  "
            f"(gold {m['n_gold']}, predicted {m['n_pred']}, sentences {m['n_sentences']})"
        ]
        per, support = m.get("per_type", {}), "support"
    else:
        lines = [
            f"{name}: micro over positive classes ('{m['negative_label']}' excluded)  P {m['precision']:.4f}  "
            f"R {m['recall']:.4f}  F1 {m['f1']:.4f}  ({m['n']} candidates)"
        ]
        per, support = m.get("per_class", {}), "support"
    for label, row in per.items():
        lines.append(
            f"  {label:<20} P {row['precision']:.4f}  R {row['recall']:.4f}  F1 {row['f1']:.4f}  support {row[support]}"
        )
    return "\n".join(lines)
