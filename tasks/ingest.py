"""Prefect task: ingest one input file into one shard (wiring only; logic in corpora.dataset.ingest).

Tested in `tests/pipelines/flows/test_ingest.py`.
"""

from __future__ import annotations

from prefect import task

from corpora.dataset.ingest import ingest_file
from tasks.retry import is_transient


@task(
    name="ingest-file", retries=2, retry_delay_seconds=2, retry_condition_fn=is_transient, task_run_name="ingest {path}"
)
def ingest_file_task(
    path: str,
    out_dir: str,
    fmt: str = "auto",
    force: bool = False,
    on_mismatch: str = "error",
    on_duplicate: str = "error",
) -> dict:
    return ingest_file(
        path, out_dir, fmt=fmt, force=force, on_mismatch=on_mismatch, on_duplicate=on_duplicate
    ).to_dict()
