"""Prefect task: annotate one shard (wiring only; logic in biomodels.inference.annotate_shard).

Tested in `tests/pipelines/flows/test_annotate.py`.
"""

from __future__ import annotations

from prefect import task

from biomodels.inference.annotate_shard import annotate_shard
from tasks.retry import is_transient


@task(
    name="annotate-shard",
    retries=1,
    retry_delay_seconds=2,
    retry_condition_fn=is_transient,
    task_run_name="annotate {shard}",
)
def annotate_shard_task(
    dataset: str,
    shard: str,
    out: str,
    ner: str,
    re: str | None = None,
    force: bool = False,
    compile: bool = False,
    precision: str = "auto",
) -> dict:
    return annotate_shard(dataset, shard, out, ner, re, force=force, compile=compile, precision=precision).to_dict()
