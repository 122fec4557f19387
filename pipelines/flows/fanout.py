"""Collecting mapped shard tasks: results as they finish, failures recorded per shard, with a progress bar.

Tested in `tests/pipelines/flows/test_ingest.py`.
"""

from __future__ import annotations

from typing import Any

from prefect.futures import as_completed
from tqdm import tqdm


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
            reports[i] = {"path": path, "shard": shard, "status": "failed", "error": str(exc)}
    return [r for r in reports if r is not None]
