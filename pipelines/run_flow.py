"""The end-to-end run (`make run`, `biomed run`): every step on the bundled samples, or on given inputs."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from corpora.samples_path import SAMPLES_DIR
from pipelines.ingest_flow import ingest_flow
from pipelines.reporting import RunSummary


@flow(name="end-to-end")
def run_flow(out: str, inputs: list[str] | None = None, progress: bool = True) -> dict[str, RunSummary]:
    """Ingest the inputs (default: all bundled samples) into `out/dataset`."""
    root = Path(out)
    ingest = ingest_flow(inputs or [str(SAMPLES_DIR)], str(root / "dataset"), progress=progress)
    return {"ingest": ingest}
