"""`biomed pretrain`: masked-language-model pretraining (wrapper over `biomodels.training.pretrain`).

Tested in `tests/biomodels/training/test_pretrain.py`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os

from biomodels.training.config import build_config
from biomodels.training.provenance import command_line
from corpora.errors import ConfigError
from pipelines.cli.checks import check_model_output, check_paths_exist, check_training_model
from pipelines.cli.train import _add_overrides, overrides_from_args

PRETRAIN_HELP = """\
Pretrain a Megatron-BERT encoder with masked-language modelling on the text of one or more
datasets (folders from `biomed ingest` or `biomed preprocess`; sentence boundaries are used when
present) or raw corpus files, as BioMegatron was made: from scratch with a WordPiece vocabulary
trained on the same text (--model scratch, --layers/--hidden/--heads/--vocab-size), or continued
from a preset, checkpoint or model folder (domain-adaptive pretraining).

Recipe: whole-word masking of --mask-probability of the words (80% [MASK], 10% a random token,
10% kept), new masks every epoch; sequences packed from consecutive sentences of a document up to
--max-length (default 128); length-grouped batches; the fine-tuning trainer (AMP, fused AdamW,
apex when importable, --grad-accum, warmup then linear decay, clipping, exact --resume, torchrun
DDP). --held-out-percent of the documents (chosen by id) are kept out of training; their MLM loss,
accuracy and perplexity are measured every --eval-every steps (default: each epoch) and the best
weights are kept. --save-minutes N also checkpoints every N minutes.
Default learning rate: 5e-4 from scratch, 1e-4 when continuing.

Output (--out): a model directory (config.json, model.safetensors, tokenizer, vocab.txt, biomed.json
with the command, commit, sha256 of every input file, settings and held-out metrics), metrics.json,
training.png, held_out_metrics.json, checkpoint/ for --resume. Fine-tune it with
`biomed train ner|re|qa --model OUT`; transformers loads it as MegatronBertForMaskedLM.
The last line printed is one JSON object: output directory, steps, held-out metrics.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain",
        help="masked-LM pretraining of an encoder on dataset text",
        description=PRETRAIN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="DATASET", help="dataset folders or corpus files")
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument(
        "--model", default="scratch", help="'scratch' (default), or a preset / model folder / checkpoint to continue"
    )
    p.add_argument("--config", help="config file (.yaml/.yml/.toml)")
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint (same data and batches)")
    p.add_argument(
        "--overwrite", action="store_true", help="write into a non-empty --out (default: refuse, to keep a model)"
    )
    p.add_argument("--flow", action="store_true", help="run as the Prefect flow `pretrain` (one process)")
    _add_overrides(p)
    p.set_defaults(func=run_pretrain)


def run_pretrain(args: argparse.Namespace) -> int:
    overrides = overrides_from_args(args)
    config = build_config(args.config, overrides)
    command = command_line()
    rank0 = int(os.environ.get("RANK", "0")) == 0
    check_training_model(args.model)
    check_paths_exist(list(args.inputs), "input")
    if rank0:  # other ranks start once rank 0 has begun writing --out
        check_model_output(args.out, args.resume, args.overwrite)
    if not rank0:
        logging.getLogger().setLevel(logging.WARNING)
    if args.flow:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ConfigError("--flow runs pretraining in one process; under torchrun leave --flow out")
        from pipelines.flows.pretrain import pretrain_flow  # Prefect, only for --flow

        outcome = pretrain_flow(
            list(args.inputs), args.out, args.model, overrides, args.config, args.resume, command=command
        )
    else:
        from biomodels.training.pretrain import pretrain  # torch, when the command runs

        outcome = pretrain(
            list(args.inputs), args.out, config, model=args.model, resume=args.resume, command=command
        ).as_dict()
    if rank0:
        held = outcome["held_out"]
        if held:
            print(
                f"pretrained encoder: {outcome['out_dir']}  ({outcome['global_step']} steps; held-out MLM loss "
                f"{held['mlm_loss']:.4f}, accuracy {held['mlm_accuracy']:.4f}, perplexity {held['perplexity']:.1f})"
            )
        else:
            print(f"pretrained encoder: {outcome['out_dir']}  ({outcome['global_step']} steps; no held-out text)")
        print(json.dumps({k: outcome[k] for k in ("out_dir", "global_step", "best_step", "held_out")}, sort_keys=True))
    return 0
