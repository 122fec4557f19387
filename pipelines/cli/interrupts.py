"""Ctrl-C and SIGTERM: act at once, leave no process behind, say what was kept and how to resume.

A command stops within a second or two of the signal: the main thread gets KeyboardInterrupt
(SIGTERM is turned into one), the output dataset's staging files are removed, every child process
(Prefect's temporary API server, a local Dask cluster, preprocessing workers) is terminated, one
line says what happens on a rerun, and the process exits 130 without waiting for worker threads
to finish their current shard (what they had not published is discarded with the staging files;
finished shards are kept and a rerun skips them). `biomed train` saves a checkpoint first (see
`biomodels.training.trainer.TrainingInterrupted`). `biomed serve` runs until it is stopped, so
there a signal is the normal end: the same clean-up, then exit code 0.

Prefect does not let go at once: a KeyboardInterrupt inside a flow leaves through its task
runner, which joins the thread still working on a shard (several seconds for a large one). So
when `biomed` is its own process, a flow command is given `GRACE_SECONDS` to leave the usual way;
after that a timer thread does the same clean-up and exits (measured in benchmarks/RESULTS.md,
"Ctrl-C: signal to exit"). A second signal leaves at once. Training has no such timer: its own
handler stops after the current step and writes a checkpoint, which must not be cut short.

Tested in `tests/pipelines/cli/test_interrupts.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

EXIT_INTERRUPTED = 130
EXIT_SERVE_STOPPED = 0  # `biomed serve` runs until stopped: a signal is its normal end, as for any server
GRACE_SECONDS = 0.5  # for Prefect to leave the flow before the timer does the clean-up itself
CHILD_STOP_SECONDS = 0.5  # for children to exit on SIGTERM before they are killed
NO_DEADLINE = ("train", "pretrain")  # a checkpoint is being written after the current step


class _Stop:
    """What the signal handler and the clean-up share: the command, whether a signal came, one clean-up."""

    def __init__(self) -> None:
        self.args: argparse.Namespace | None = None
        self.own_process = False
        self.signalled = False
        self.cleaning = threading.Lock()
        self.spared: frozenset[int] = frozenset()  # processes the caller of `main` had before it


_stop = _Stop()


def _on_signal(signum: int, frame: Any) -> None:
    if _stop.signalled:  # the second signal: leave now, unless the clean-up is under way
        if _stop.own_process and _stop.args is not None and not _stop.cleaning.locked():
            _leave(_stop.args, None)
        return
    _stop.signalled = True
    args = _stop.args
    if _stop.own_process and args is not None and getattr(args, "command", None) not in NO_DEADLINE:
        timer = threading.Timer(GRACE_SECONDS, _leave, args=(args, None))
        timer.daemon = True
        timer.start()
    raise KeyboardInterrupt(f"signal {signum}")


def install_signal_handlers(args: argparse.Namespace | None = None, *, own_process: bool = False) -> dict[int, Any]:
    """SIGINT (Ctrl-C) and SIGTERM (a scheduler's or `kill`'s stop) raise KeyboardInterrupt in the
    main thread. With `own_process` (the `biomed` process itself, not a caller of `main`), a flow
    command that has not left `GRACE_SECONDS` later is cleaned up and ended by a timer thread.
    Without it (`main` called by a program that goes on, e.g. a test session with its own Prefect
    server), the processes that program already had are recorded and spared by `stop_children`.
    Returns the handlers replaced, for `restore_signal_handlers`."""
    _stop.args, _stop.own_process, _stop.signalled = args, own_process, False
    _stop.spared = frozenset() if own_process else frozenset(_descendants())
    return {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}


def restore_signal_handlers(previous: dict[int, Any]) -> None:
    """Put back what `install_signal_handlers` replaced (when `main` was called by a program that goes on)."""
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def install_sigterm_handler() -> None:
    """SIGTERM takes the same way out as Ctrl-C (kept for callers of the earlier name)."""
    install_signal_handlers()


def _descendants() -> list[int]:
    import psutil

    return [child.pid for child in psutil.Process().children(recursive=True)]


def stop_children(timeout: float = CHILD_STOP_SECONDS) -> int:
    """Terminate every descendant process the command started (then kill what is left after
    `timeout`); how many there were. Processes that were there before `main` ran are spared.

    A child that has exited counts as gone even while it is a zombie: its parent (a worker pool's
    fork server, this process) may never reap it, being stopped or about to exit itself.
    multiprocessing's resource tracker ignores SIGTERM on purpose, and was seen to outlive the
    command by more than 10 s, so it is killed once the others are gone.
    """
    import psutil

    children = [child for child in psutil.Process().children(recursive=True) if child.pid not in _stop.spared]
    trackers = [child for child in children if _is_resource_tracker(child)]
    others = [child for child in children if child not in trackers]
    for child in others:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    deadline = time.monotonic() + timeout
    while (alive := [child for child in others if _running(child)]) and time.monotonic() < deadline:
        time.sleep(0.02)
    for child in alive + trackers:
        with contextlib.suppress(psutil.Error):
            child.kill()
    return len(children)


def _running(process: Any) -> bool:
    import psutil

    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:  # gone
        return False


def _is_resource_tracker(process: Any) -> bool:
    try:
        return "from multiprocessing.resource_tracker import main" in " ".join(process.cmdline())
    except Exception:  # gone already, or not ours to read
        return False


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


def interrupted_message(args: argparse.Namespace, exc: BaseException | None) -> str:
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
    if command == "serve":
        return (
            "stopped: serve stopped on a signal; the deployment and its schedule stay registered "
            "(pause_on_shutdown=False). Run the same command to serve again."
        )
    return f"interrupted: {command} stopped; nothing was left half-written."


def _leave(args: argparse.Namespace, exc: BaseException | None) -> int:
    """The clean-up, done once whichever thread comes first; in `biomed`'s own process it ends it
    (also when the clean-up itself failed)."""
    code = EXIT_SERVE_STOPPED if getattr(args, "command", None) == "serve" else EXIT_INTERRUPTED
    if not _stop.cleaning.acquire(blocking=False):
        if not _stop.own_process:
            return code
        _stop.cleaning.acquire()  # the other thread ends the process before this returns
    try:
        stop_children()  # first: no worker process writes into staging after it is removed
        remove_staging(args)
        print(interrupted_message(args, exc), file=sys.stderr)
    finally:
        if _stop.own_process:
            exit_now(code)
        _stop.cleaning.release()  # `main` was called by a process that goes on
    return code


def exit_interrupted(args: argparse.Namespace, exc: BaseException) -> int:
    """Clean up after an interrupt and return the exit code (130; `serve`: 0); the caller exits at once."""
    return _leave(args, exc)


def exit_now(code: int) -> None:
    """Leave without joining worker threads (they would finish their shard first)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


__all__ = [
    "EXIT_INTERRUPTED",
    "exit_interrupted",
    "exit_now",
    "install_sigterm_handler",
    "install_signal_handlers",
    "restore_signal_handlers",
    "stop_children",
]
