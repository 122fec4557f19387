"""The ingest flow: one mapped task per input file, then deletions, the manifest and a report."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, unmapped
from prefect.futures import as_completed
from tqdm import tqdm

from corpora.errors import PartialFailure
from corpora.formats import expand_inputs
from corpora.store import DatasetStore, shard_name_for
from pipelines.reporting import RunSummary, publish_table
from tasks.ingest import ingest_file_task
from tasks.store import reconcile_task, write_manifest_task


@flow(name="ingest")
def ingest_flow(inputs: list[str], out: str, fmt: str = "auto", force: bool = False, progress: bool = True) -> RunSummary:
    """Read every input file (file, folder or glob) into the Parquet dataset at `out`.

    Files that fail are listed at the end and the flow raises PartialFailure after the good files
    are written; a failed file leaves nothing partial and the previous dataset stays readable.
    """
    files = [str(p) for p in expand_inputs(inputs)]
    store = DatasetStore(out)
    store.clear_staging()
    summary = RunSummary(flow="ingest", out_dir=str(Path(out)))
    futures = ingest_file_task.map(files, out_dir=unmapped(out), fmt=unmapped(fmt), force=unmapped(force))
    by_future = {id(f): path for f, path in zip(futures, files)}
    for future in tqdm(as_completed(futures), total=len(futures), desc="ingest", unit="file", disable=not progress):
        try:
            summary.reports.append(future.result())
        except Exception as exc:  # the task's own exception: recorded per file, reported at the end
            path = by_future[id(future)]
            summary.reports.append({"path": path, "shard": shard_name_for(path), "status": "failed", "error": str(exc)})
    summary.reports.sort(key=lambda r: r["path"])
    removed = reconcile_task(out)
    if removed:
        summary.extra["removed by deletions/newer versions"] = sum(removed.values())
    write_manifest_task(out)
    publish_table(summary, key="ingest-report")
    get_run_logger().info("%s", summary.text())
    if summary.failed:
        raise PartialFailure(f"{len(summary.failed)} of {len(files)} input file(s) failed", summary)
    return summary
