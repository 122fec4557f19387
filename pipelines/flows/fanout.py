"""Collecting mapped shard tasks: results as they finish, failures recorded per shard, with a progress bar.

Tested in `tests/pipelines/flows/test_ingest.py`.
"""

from __future__ import annotations

from typing import Any

from prefect.futures import as_completed
from tqdm import tqdm

from corpora.errors import BiomedError


def collect_reports(
    futures: list[Any], labels: list[tuple[str, str]], desc: str, progress: bool = True
) -> list[dict[str, Any]]:
    """Wait for every future; a failed task becomes a `failed` report with its error message.

    `labels[i]` is the (path, shard) of `futures[i]`, used to name failures. Reports come back in
    input order whatever the finishing order.
    """
    index = {id(f): i for i, f in enumerate(futures)}
    reports: list[dict[str, Any] | None] = [None] * len(futures)
    for future in tqdm(as_completed(futures), total=len(futures), desc=desc, unit="shard", disable=not progress):
        i = index[id(future)]
        try:
            reports[i] = future.result()
        except Exception as exc:  # the task's own exception, kept for the summary
            path, shard = labels[i]
            reports[i] = {"path": path, "shard": shard, "status": "failed", "error": failure_message(path, exc)}
    return [r for r in reports if r is not None]


def failure_message(path: str, exc: BaseException) -> str:
    """One line naming the input `path` and what to do. Our own errors already name their file;
    anything else (a library's ValueError, an OSError naming a staging file) gets the input in front
    and is marked as unexpected, with the way to see its traceback."""
    if isinstance(exc, BiomedError):
        return str(exc) if str(path) in str(exc) else f"{path}: {exc}"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{path}: unexpected {type(exc).__name__}: {text} (rerun with -v for the traceback, and report it)"
