"""The `biomed` command line: one subcommand per job, each defined in its own module of this package.

Each command module exposes `register(subparsers)`, which adds its parser and sets `func` to a
callable taking the parsed args and returning the process exit code. This module only assembles
them; `python -m pipelines.cli` runs it too (what `torchrun -m pipelines.cli train ...` needs).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback

from tqdm.contrib.logging import logging_redirect_tqdm

from corpora.errors import BiomedError, ConfigError, UsageError
from pipelines.cli import annotate, ingest, models, preprocess, pretrain, run, serve, train
from pipelines.cli.interrupts import (
    EXIT_INTERRUPTED,
    exit_interrupted,
    exit_now,
    install_signal_handlers,
    restore_signal_handlers,
)
from pipelines.cli.server_watchdog import watch_prefect_servers

# Command modules, in the order `biomed --help` lists them.
COMMAND_MODULES = (run, ingest, preprocess, pretrain, train, annotate, models, serve)

EPILOG = """\
Typical use:
  biomed run --out out/                      the whole pipeline on the bundled samples
  biomed ingest 'pubmed/*.xml.gz' --out ds/  read raw files into a Parquet dataset
  biomed preprocess ds/ --out ds-pre/        add sentences, tokens, abbreviations (scispaCy)
  biomed pretrain ds-pre/ --out encoder/     masked-LM pretraining of an encoder on dataset text
  biomed train ner --model encoder/ ...      fine-tune or train a Megatron-BERT model
  biomed annotate ds-pre/ --ner MODEL --out annotated/

Every command prints --help of its own. Errors name the file and line they are about; the exit
code is 0 on success, 1 when some input failed, 2 for a usage error.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="biomed",
        description="biomed-pipelines: turn raw biomedical literature into annotated, queryable Parquet datasets.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def configure_runtime(verbose: bool = False) -> None:
    """Settings for Prefect before it is imported: the embedded API's start-up on small machines
    (8-15 s on 2 cores), no telemetry, and quiet run loggers. A failed input is reported once, by
    the command, as one line; Prefect's own "Encountered exception" and "Crash detected!" records
    (with tracebacks) and its per-task "Finished in state" lines show with -v only."""
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    quiet = "DEBUG" if verbose else "CRITICAL"
    os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL", quiet)
    os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL", quiet)
    os.environ.setdefault("DO_NOT_TRACK", "1")  # Prefect's and others' telemetry: nothing is sent
    os.environ.setdefault("PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY", "false")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' weight-loading bars
    if not verbose:  # transformers' load reports list the heads a task model leaves out, as intended
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def main(argv: list[str] | None = None, *, own_process: bool = False) -> int:
    """Run one command; its exit code. `own_process`: this is the `biomed` process itself (`entry`),
    which an interrupt may end from another thread (`pipelines.cli.interrupts`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_runtime(args.verbose)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("httpx", "httpcore", "prefect", "prefect.server", "distributed"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    previous_handlers = install_signal_handlers(args, own_process=own_process)
    watch_prefect_servers()  # a temporary Prefect API server dies with this process, even by SIGKILL
    try:
        with logging_redirect_tqdm():
            return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:
        return exit_interrupted(args, exc)
    except (UsageError, ConfigError) as exc:  # found before any work: a usage error
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BiomedError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if not own_process:
            restore_signal_handlers(previous_handlers)


def entry() -> None:
    """The `biomed` console script: `main`, then exit; after an interrupt at once, without joining
    worker threads that would finish their shard first."""
    code = main(own_process=True)
    if code == EXIT_INTERRUPTED:
        exit_now(code)
    sys.exit(code)
