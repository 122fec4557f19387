"""Prefect task: preprocess one shard (wiring only; logic in corpora.preprocess.shard).

Tested in `tests/pipelines/flows/test_preprocess.py`.
"""

from __future__ import annotations

from prefect import task

from corpora.preprocess.shard import preprocess_shard
from tasks.retry import is_transient


@task(
    name="preprocess-shard",
    retries=1,
    retry_delay_seconds=2,
    retry_condition_fn=is_transient,
    task_run_name="preprocess {shard}",
)
def preprocess_shard_task(
    dataset: str, shard: str, out: str, spacy_model: str | None = None, workers: int = 1, force: bool = False
) -> dict:
    return preprocess_shard(dataset, shard, out, spacy_model=spacy_model, workers=workers, force=force).to_dict()
