"""Named places in the write path where the fault tests kill the run, to prove reruns repair.

Why: "a run killed at any moment leaves a dataset that the next run completes" is only believable
when every moment between two writes has been tried. Each write step calls `fault_point(name)`;
when the environment variable `BIOMED_FAULT_AT` names that point, SIGKILL goes to the whole process
group there (no clean-up, no `finally`, like `kill -9` of the run or a power cut; the group, because
a shard may be written by a child process, such as ingest's forked reader of XML files). Only the
fault tests set the variable, and they start each such run as a process group of its own; unset, a
fault point costs one dictionary lookup.

`BIOMED_FAULT_AT=after-shard-replace` kills at the first pass through that point,
`after-shard-replace:3` at the third (a run writes many shards).

Tested in `tests/corpora/dataset/test_fault_points.py`.
"""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

FAULT_ENV = "BIOMED_FAULT_AT"

# every point the write path passes, in the order a run passes them; the fault tests try each one
FAULT_POINTS: dict[str, str] = {
    "after-lock": "the dataset lock is taken, nothing repaired or written yet",
    "after-staging-write": "a shard's Parquet file is complete in .staging/, not yet renamed into data/",
    "after-shard-replace": "a shard's new Parquet file is in data/, its manifest entry not yet written",
    "after-entry-write": "a shard and its entry are written (the next shard not started)",
    "after-removal-replace": "remove_documents renamed the shard without the removed rows; its entry still counts them",
    "after-reconcile-shard": "reconcile finished one shard's removals; reconciled.json not yet updated",
    "after-prune-unlink": "prune deleted a shard whose input is gone; its entry not yet deleted",
    "before-manifest": "every shard is written; manifest.json is not yet rewritten",
}


def fault_point(name: str) -> None:
    """SIGKILL this process group when `BIOMED_FAULT_AT` names `name` (and its pass count)."""
    wanted = os.environ.get(FAULT_ENV)
    if not wanted:
        return
    if name not in FAULT_POINTS:
        raise ValueError(f"unknown fault point {name!r}")
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    if _passes(name) == (int(nth) if nth else 1):
        os.killpg(os.getpgrp(), signal.SIGKILL)


def _passes(name: str) -> int:
    """How many times the run (this process group, children included) has reached `name`: one byte
    appended per pass to a file named by the group, so passes in forked children count too."""
    counter = Path(tempfile.gettempdir()) / f"biomed-fault-{os.getpgrp()}-{name}"
    fd = os.open(counter, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, b".")
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


__all__ = ["FAULT_ENV", "FAULT_POINTS", "fault_point"]
