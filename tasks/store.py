"""Prefect tasks that act on a whole dataset after its shards are written.

Tested in `tests/pipelines/flows/test_ingest.py`.
"""

from __future__ import annotations

from prefect import task

from corpora.dataset.store import DatasetStore


@task(name="reconcile-deletions")
def reconcile_task(out_dir: str) -> dict[str, int]:
    """Apply MEDLINE deletions and newer versions across shards."""
    return DatasetStore(out_dir).reconcile()


@task(name="write-manifest")
def write_manifest_task(out_dir: str, extra: dict | None = None) -> dict:
    return DatasetStore(out_dir).write_manifest(extra)
