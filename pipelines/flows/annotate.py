"""The annotate flow: raw files or a dataset in, an annotated Parquet dataset out.

Raw files are ingested and preprocessed first (into `OUT/_work/`); a dataset without sentences is
preprocessed; then one mapped task per shard runs the models. Shards already annotated by the same
models from the same input are skipped, so a crashed run resumes and a rerun does no work.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, unmapped
from prefect.artifacts import create_markdown_artifact
from prefect.task_runners import ThreadPoolTaskRunner

from biomodels.inference.annotate_shard import annotate_producer
from biomodels.models.shipped import resolve_model_path
from corpora.dataset.store import open_dataset
from corpora.dataset.write_run import write_run
from corpora.errors import PartialFailure
from pipelines.flows.annotate_inputs import is_dataset, is_preprocessed
from pipelines.flows.annotation_report import write_report
from pipelines.flows.fanout import collect_reports
from pipelines.flows.ingest import ingest_flow
from pipelines.flows.preprocess import preprocess_flow
from pipelines.flows.reporting import RunSummary, publish_table
from tasks.annotate import annotate_shard_task
from tasks.store import write_manifest_task


@flow(name="annotate", task_runner=ThreadPoolTaskRunner(max_workers=1))
def annotate_flow(
    inputs: list[str],
    out: str,
    ner: str,
    re: str | None = None,
    workers: int = 1,
    force: bool = False,
    progress: bool = True,
    compile: bool = False,
    precision: str = "auto",
) -> RunSummary:
    """Annotate `inputs` (one dataset folder, or raw files/folders/globs) into the dataset `out`
    (`ner`/`re` are model directories, or `default` for the shipped models)."""
    ner, re = str(resolve_model_path(ner, "ner")), resolve_model_path(re, "re")
    work = Path(out) / "_work"
    with write_run(out) as run:  # held from the start: `_work/` lies inside `out`
        if len(inputs) == 1 and is_dataset(inputs[0]):
            dataset = inputs[0]
        else:
            dataset = str(work / "ingested")
            ingest_flow(inputs, dataset, progress=progress)
        if not is_preprocessed(dataset):
            pre = str(work / "preprocessed")
            preprocess_flow(dataset, pre, workers=workers, progress=progress)
            dataset = pre
        source = open_dataset(dataset)
        shards = source.shard_names()
        target = run.store
        producer = annotate_producer(ner, re, precision)
        annotators = producer["annotate"]
        futures = annotate_shard_task.map(
            unmapped(dataset),
            shards,
            unmapped(out),
            unmapped(ner),
            unmapped(re),
            force=unmapped(force),
            compile=unmapped(compile),
            precision=unmapped(precision),
        )
        summary = RunSummary(flow="annotate", out_dir=str(Path(out)))
        summary.reports = collect_reports(
            list(futures), [(str(source.shard_path(s)), s) for s in shards], "annotate", progress
        )
        pruned = target.prune(set(shards))
        if pruned:
            summary.extra["removed (input shard gone)"] = len(pruned)
        summary.extra["models"] = ", ".join(f"{k}={v}" for k, v in annotators.items())
        if "precision" in producer:
            summary.extra["precision"] = producer["precision"]
        write_manifest_task(out, {"annotators": annotators})
        report, _ = write_report(out, annotators)
    create_markdown_artifact(
        markdown=report, key="annotate-report", description="annotated dataset: counts, scores, examples"
    )
    publish_table(summary, key="annotate-shards")
    get_run_logger().info("%s", summary.text())
    if summary.failed:
        raise PartialFailure(f"{len(summary.failed)} of {len(shards)} shard(s) failed", summary)
    return summary
