"""The ingest flow: one mapped task per input file, then deletions, the manifest and a report."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, unmapped

from corpora.dataset.duplicates import check_policy
from corpora.dataset.ingest import MISMATCH_CHOICES
from corpora.dataset.store import shard_name_for
from corpora.dataset.write_run import write_run
from corpora.errors import ConfigError, PartialFailure
from corpora.formats.registry import expand_inputs
from pipelines.flows.fanout import collect_reports
from pipelines.flows.reporting import RunSummary, publish_table
from tasks.ingest import ingest_file_task
from tasks.store import reconcile_task, write_manifest_task


@flow(name="ingest")
def ingest_flow(
    inputs: list[str],
    out: str,
    fmt: str = "auto",
    force: bool = False,
    progress: bool = True,
    on_mismatch: str = "error",
    on_duplicate: str = "error",
) -> RunSummary:
    """Read every input file (file, folder or glob) into the Parquet dataset at `out`.

    Files that fail are listed at the end and the flow raises PartialFailure after the good files
    are written; a failed file leaves nothing partial and the previous dataset stays readable.
    `on_mismatch="skip"`, `on_duplicate`: see `corpora.dataset.ingest.ingest_file`. The run holds
    the dataset's write lock and starts by repairing what a killed run left (`write_run`).
    """
    if on_mismatch not in MISMATCH_CHOICES:
        raise ConfigError(f"on_mismatch must be one of {MISMATCH_CHOICES}, got {on_mismatch!r}")
    check_policy(on_duplicate)
    files = [str(p) for p in expand_inputs(inputs)]
    with write_run(out) as run:
        summary = RunSummary(flow="ingest", out_dir=str(Path(out)))
        if run.repairs:
            summary.extra["manifest repaired"] = len(run.repairs)
        futures = ingest_file_task.map(
            files,
            out_dir=unmapped(out),
            fmt=unmapped(fmt),
            force=unmapped(force),
            on_mismatch=unmapped(on_mismatch),
            on_duplicate=unmapped(on_duplicate),
        )
        summary.reports = collect_reports(list(futures), [(f, shard_name_for(f)) for f in files], "ingest", progress)
        removed = reconcile_task(out)
        if removed:
            summary.extra["removed by deletions/newer versions"] = sum(removed.values())
        write_manifest_task(out)
    publish_table(summary, key="ingest-report")
    get_run_logger().info("%s", summary.text())
    if summary.failed:
        raise PartialFailure(f"{len(summary.failed)} of {len(files)} input file(s) failed", summary)
    return summary
