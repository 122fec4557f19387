"""The preprocess flow: scispaCy sentences, tokens and abbreviations for every shard of a dataset."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from tqdm import tqdm

from corpora.errors import PartialFailure
from corpora.preprocess_shard import preprocess_producer
from corpora.store import DatasetStore, open_dataset
from pipelines.reporting import RunSummary, publish_table
from tasks.preprocess import preprocess_shard_task
from tasks.store import write_manifest_task


@flow(name="preprocess")
def preprocess_flow(
    dataset: str, out: str, workers: int = 1, spacy_model: str | None = None, force: bool = False, progress: bool = True
) -> RunSummary:
    """Preprocess each shard of `dataset` into `out` (same shard names).

    Shards run one after another, each over `workers` processes (a pool per shard would fight for
    the same cores); unchanged shards are skipped, shards whose input is gone are removed.
    """
    shards = open_dataset(dataset).shard_names()
    target = DatasetStore(out)
    target.clear_staging()
    summary = RunSummary(flow="preprocess", out_dir=str(Path(out)))
    for shard in tqdm(shards, desc="preprocess", unit="shard", disable=not progress):
        future = preprocess_shard_task.submit(dataset, shard, out, spacy_model=spacy_model, workers=workers, force=force)
        try:
            summary.reports.append(future.result())
        except Exception as exc:  # recorded per shard, reported at the end
            summary.reports.append({"path": str(open_dataset(dataset).shard_path(shard)), "shard": shard, "status": "failed", "error": str(exc)})
    pruned = target.prune(set(shards))
    if pruned:
        summary.extra["removed (input shard gone)"] = len(pruned)
    fingerprint = preprocess_producer(spacy_model)["preprocess"]
    summary.extra["pipeline"] = f"{fingerprint['model']['name']} {fingerprint['components']} spacy {fingerprint['spacy']} scispacy {fingerprint['scispacy']}"
    write_manifest_task(out, {"pipeline": fingerprint})
    publish_table(summary, key="preprocess-report")
    get_run_logger().info("%s", summary.text())
    if summary.failed:
        raise PartialFailure(f"{len(summary.failed)} of {len(shards)} shard(s) failed", summary)
    return summary
