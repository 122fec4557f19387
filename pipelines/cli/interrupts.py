"""Ctrl-C and SIGTERM: act at once, leave no process behind, say what was kept and how to resume.

A command stops within a second or two of the signal: the main thread gets KeyboardInterrupt
(SIGTERM is turned into one), the output dataset's staging files are removed, every child process
(Prefect's temporary API server, a local Dask cluster, preprocessing workers) is terminated, one
line says what happens on a rerun, and the process exits 130 without waiting for worker threads
to finish their current shard (what they had not published is discarded with the staging files;
finished shards are kept and a rerun skips them). `biomed train` saves a checkpoint first (see
`biomodels.training.trainer.TrainingInterrupted`).

Tested in `tests/pipelines/cli/test_interrupts.py`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

EXIT_INTERRUPTED = 130


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def install_sigterm_handler() -> None:
    """SIGTERM (a scheduler's or `kill`'s stop) takes the same way out as Ctrl-C."""
    signal.signal(signal.SIGTERM, _sigterm)


def stop_children(timeout: float = 2.0) -> int:
    """Terminate every descendant process (then kill what is left after `timeout`); how many there were."""
    import psutil

    children = psutil.Process().children(recursive=True)
    for child in children:
        try:
            child.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(children, timeout=timeout)
    for child in alive:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    return len(children)


def remove_staging(args: argparse.Namespace) -> None:
    """Delete the staging folder of the command's output dataset (the shard being written)."""
    out = getattr(args, "out", None)
    if not out or getattr(args, "command", None) in ("train", "pretrain"):
        return
    for folder in (Path(out), Path(out) / "dataset", Path(out) / "preprocessed", Path(out) / "annotated"):
        staging = folder / ".staging"
        if staging.is_dir():
            import shutil

            shutil.rmtree(staging, ignore_errors=True)


def interrupted_message(args: argparse.Namespace, exc: BaseException) -> str:
    """One line: what was kept and what to type next."""
    hint = getattr(exc, "resume_hint", None)
    if hint:
        from biomodels.training.provenance import command_line

        again = command_line()
        again = again if " --resume" in f"{again} " else f"{again} --resume"
        return f"interrupted: {hint}. Continue with: {again}"
    command = getattr(args, "command", None) or "command"
    if command in ("ingest", "preprocess", "annotate", "run"):
        return (
            f"interrupted: {command} stopped; shards finished so far are kept in {args.out}. "
            "Rerun the same command to resume: finished shards are skipped."
        )
    return f"interrupted: {command} stopped; nothing was left half-written."


def exit_interrupted(args: argparse.Namespace, exc: BaseException) -> int:
    """Clean up after an interrupt and return the exit code (130); the caller exits at once."""
    remove_staging(args)
    stop_children()
    print(interrupted_message(args, exc), file=sys.stderr)
    return EXIT_INTERRUPTED


def exit_now(code: int) -> None:
    """Leave without joining worker threads (they would finish their shard first)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


__all__ = ["EXIT_INTERRUPTED", "exit_interrupted", "exit_now", "install_sigterm_handler", "stop_children"]
