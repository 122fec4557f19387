"""The preprocess flow: scispaCy sentences, tokens and abbreviations for every shard of a dataset."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from corpora.dataset.store import open_dataset
from corpora.dataset.write_run import write_run
from corpora.errors import PartialFailure
from corpora.preprocess.shard import close_shared_pools, preprocess_producer
from pipelines.flows.fanout import collect_reports
from pipelines.flows.reporting import RunSummary, publish_table
from tasks.preprocess import preprocess_shard_task
from tasks.store import write_manifest_task


@flow(name="preprocess", task_runner=ThreadPoolTaskRunner(max_workers=1))
def preprocess_flow(
    dataset: str, out: str, workers: int = 1, spacy_model: str | None = None, force: bool = False, progress: bool = True
) -> RunSummary:
    """Preprocess each shard of `dataset` into `out` (same shard names).

    One mapped task per shard. With the default runner (`biomed preprocess` sets one thread) shards
    run one after another over `workers` processes (one pool of `workers - 1` processes started
    for the whole run); on a Dask cluster they fan out. Unchanged
    shards are skipped; shards whose input is gone are removed.
    """
    source = open_dataset(dataset)
    shards = source.shard_names()
    with write_run(out) as run:
        target = run.store
        summary = RunSummary(flow="preprocess", out_dir=str(Path(out)))
        futures = preprocess_shard_task.map(
            unmapped(dataset),
            shards,
            unmapped(out),
            spacy_model=unmapped(spacy_model),
            workers=unmapped(workers),
            force=unmapped(force),
        )
        labels = [(str(source.shard_path(s)), s) for s in shards]
        try:
            summary.reports = collect_reports(list(futures), labels, "preprocess", progress)
        finally:
            close_shared_pools()  # the shards shared one pool of worker processes (workers > 1)
        pruned = target.prune(set(shards))
        if pruned:
            summary.extra["removed (input shard gone)"] = len(pruned)
        fingerprint = preprocess_producer(spacy_model)["preprocess"]
        summary.extra["pipeline"] = (
            f"{fingerprint['model']['name']} {fingerprint['components']} "
            f"spacy {fingerprint['spacy']} scispacy {fingerprint['scispacy']}"
        )
        write_manifest_task(out, {"pipeline": fingerprint})
    publish_table(summary, key="preprocess-report")
    get_run_logger().info("%s", summary.text())
    if summary.failed:
        raise PartialFailure(f"{len(summary.failed)} of {len(shards)} shard(s) failed", summary)
    return summary
