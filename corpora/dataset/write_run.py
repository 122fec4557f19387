"""The start of every write run into a dataset folder: take the lock, repair the manifest, clear staging.

Why one function: ingest, preprocess and annotate (flows and CLI commands) must all do the same three
things in the same order before writing, or a second writer, a manifest left wrong by a killed run,
or a killed run's staging files get in the way. The CLI enters it before deciding whether there is
anything to do (so a refused second writer is told at once, and a killed run's damage is repaired
even on a "nothing to do" rerun); the flow enters it again (the lock is re-entrant).

Tested in `tests/corpora/dataset/test_fault_points.py` and `tests/corpora/dataset/test_lock.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from corpora.dataset.fault_points import fault_point
from corpora.dataset.lock import DatasetLock, acquire, release
from corpora.dataset.manifest_repair import repair_manifest
from corpora.dataset.store import DatasetStore


@dataclass
class WriteRun:
    """A write run in progress: the store, its lock, and what the start repaired."""

    store: DatasetStore
    lock: DatasetLock
    repairs: list[str] = field(default_factory=list)

    @property
    def recovering(self) -> bool:
        """True when the previous run died or left the manifest wrong: a "nothing to do" answer
        from the entries alone cannot be trusted, the run must go through every step."""
        return bool(self.lock.previous or self.repairs)


@contextmanager
def write_run(root: str | Path, command: str | None = None) -> Iterator[WriteRun]:
    """Lock dataset folder `root`, repair its manifest, remove staging leftovers; release at the end."""
    lock = acquire(root, command)
    try:
        fault_point("after-lock")
        store = DatasetStore(root)
        run = WriteRun(store=store, lock=lock)
        if lock.depth == 1:  # the outermost entry of this process does the repairs
            run.repairs = repair_manifest(store)
            store.clear_staging()
        yield run
    finally:
        release(lock)


__all__ = ["WriteRun", "write_run"]
