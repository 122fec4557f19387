"""`biomed models list|convert` and `biomed vocab`: model files and vocabularies.

Thin wrappers: the work is in `biomodels.models.registry`, `biomodels.models.checkpoint_conversion` and
`biomodels.models.vocab_training`; this module only parses options and prints results.

Tested in `tests/biomodels/models/test_registry.py`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from corpora.errors import ConfigError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser(
        "models",
        help="list model presets, convert Megatron-LM / NeMo checkpoints",
        description="Model presets and checkpoint conversion. Models are local files under $BIOMODELS_HOME "
        "(default ~/.cache/biomed-pipelines/models), one folder per preset.",
    )
    msub = models.add_subparsers(dest="models_command", metavar="ACTION")
    lst = msub.add_parser("list", help="show each preset: present or missing, where, which files it needs")
    lst.set_defaults(func=run_list)
    conv = msub.add_parser(
        "convert",
        help="convert a Megatron-LM model_optim_rng.pt (or NGC's zip of one), NeMo MegatronBERT.pt or .nemo "
        "to a HuggingFace folder",
    )
    conv.add_argument(
        "src", help="checkpoint file or folder (model_optim_rng.pt, mp_rank_00/, NGC .zip, MegatronBERT.pt, .nemo)"
    )
    conv.add_argument("dst", help="output folder (e.g. $BIOMODELS_HOME/<preset>/)")
    conv.add_argument("--preset", help="preset name: fixes heads and casing (see `biomed models list`)")
    conv.add_argument("--vocab", help="vocab.txt (default: bundled in a .nemo, or vocab.txt beside the checkpoint)")
    conv.add_argument(
        "--checkpoint-version", type=float, help="override the fused-QKV layout version (0, 1.0, 2.0, 3.0)"
    )
    conv.add_argument("--config", help="your model's Megatron/NeMo config (JSON or YAML) for the custom presets")
    casing = conv.add_mutually_exclusive_group()
    casing.add_argument(
        "--lowercase", dest="lower_case", action="store_const", const=True, help="the vocabulary is uncased"
    )
    casing.add_argument("--cased", dest="lower_case", action="store_const", const=False, help="the vocabulary is cased")
    conv.add_argument(
        "--gelu",
        choices=("erf", "tanh"),
        help="GeLU form (default: from the checkpoint's args: openai_gelu / bias_gelu_fusion; tanh without args)",
    )
    conv.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="unpickle without the allow-list: a checkpoint can run code while it loads, so only for a file you trust",
    )
    conv.set_defaults(func=run_convert)
    models.set_defaults(func=lambda args: _usage(models))

    vocab = subparsers.add_parser(
        "vocab",
        help="train a WordPiece vocabulary (vocab.txt) on a corpus",
        description="Train a BERT WordPiece vocabulary on the text of any inputs the readers know.",
    )
    vocab.add_argument("corpus", nargs="+", help="input files, folders or globs (any known format)")
    vocab.add_argument("--size", type=int, required=True, help="vocabulary size (entries, special tokens included)")
    vocab.add_argument("--out", required=True, help="output folder for vocab.txt")
    vocab.add_argument("--lowercase", action="store_true", help="lower-case (and strip accents) before training")
    vocab.add_argument("--format", default="auto", help="input format (default: detect from content)")
    vocab.add_argument("--min-frequency", type=int, default=2, help="minimum count of a merged piece (default 2)")
    vocab.set_defaults(func=run_vocab)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def run_list(args: argparse.Namespace) -> int:
    # imported when the command runs: `biomed --help` loads no flow, torch or spaCy
    from biomodels.models.registry import list_models, models_home

    rows = [("PRESET", "STATUS", "PATH", "EXPECTED FILES")]
    for st in list_models():
        status = f"present ({st.form})" if st.present else "missing"
        rows.append((st.preset, status, str(st.path), st.expected))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    print(f"models folder: {models_home()}  (set BIOMODELS_HOME to change)")
    for r in rows:
        print("  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3])
    return 0


def run_convert(args: argparse.Namespace) -> int:
    # imported when the command runs: `biomed --help` loads no flow, torch or spaCy
    from biomodels.models.checkpoint_conversion import convert_checkpoint, read_conversion_record

    out = convert_checkpoint(
        args.src,
        args.dst,
        preset=args.preset,
        vocab=args.vocab,
        checkpoint_version=args.checkpoint_version,
        config=args.config,
        lower_case=args.lower_case,
        gelu=args.gelu,
        trust_checkpoint=args.trust_checkpoint,
    )
    record = read_conversion_record(out) or {}
    print(
        f"wrote {out}: {record.get('source_layout')} checkpoint_version {record.get('checkpoint_version')} "
        f"({record.get('checkpoint_version_origin')}), GeLU {record.get('gelu')} ({record.get('gelu_origin')}), "
        f"vocab {record.get('vocab_size')} (padded {record.get('padded_vocab_size')}), "
        f"lower_case={record.get('lower_case')}"
        + (
            f", heads dropped as untrained: {', '.join(record['untrained_heads_dropped'])}"
            if record.get("untrained_heads_dropped")
            else ""
        )
    )
    return 0


def _corpus_texts(inputs: list[str], fmt: str) -> Iterator[str]:
    # imported when the command runs: `biomed --help` loads no flow, torch or spaCy
    from corpora.formats.registry import expand_inputs, read_documents
    from corpora.schema import Document

    for path in expand_inputs(inputs):
        for record in read_documents(path, fmt):
            if isinstance(record, Document):
                yield record.text


def run_vocab(args: argparse.Namespace) -> int:
    # imported when the command runs: `biomed --help` loads no flow, torch or spaCy
    from biomodels.models.tokenization import read_vocab
    from biomodels.models.vocab_training import train_wordpiece_vocab

    if args.size < 10:
        raise ConfigError(f"--size {args.size} is too small for a vocabulary")
    path = train_wordpiece_vocab(
        _corpus_texts(args.corpus, args.format),
        args.size,
        args.lowercase,
        Path(args.out),
        min_frequency=args.min_frequency,
    )
    n = len(read_vocab(path))
    print(f"wrote {path}: {n} entries ({'uncased' if args.lowercase else 'cased'})", file=sys.stdout)
    return 0
