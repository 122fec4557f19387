"""`biomed serve`: a served deployment triggered twice against a temporary local Prefect server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _wait_for_deployment(name: str, timeout: float) -> None:
    from prefect.client.orchestration import get_client

    deadline = time.time() + timeout
    with get_client(sync_client=True) as client:
        while time.time() < deadline:
            try:
                client.read_deployment_by_name(name)
                return
            except Exception:
                time.sleep(1)
    raise TimeoutError(f"deployment {name} did not appear")


@pytest.mark.slow
def test_served_deployment_processes_only_new_files(
    samples: Path, tmp_path: Path, tiny_models: dict[str, str], prefect_harness: None
) -> None:
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL

    watch = tmp_path / "incoming"
    watch.mkdir()
    shutil.copy(samples / "pubmed/pubmed4.xml", watch)
    out = tmp_path / "out"
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_RUNNER_POLL_FREQUENCY": "2"}
    cmd = [sys.executable, "-m", "pipelines.cli", "serve", "--watch", str(watch), "--out", str(out),
           "--cron", "0 2 * * *", "--ner", tiny_models["ner"], "--re", tiny_models["re"],
           "--name", "test-nightly"]  # fmt: skip
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_deployment("end-to-end/test-nightly", 180)
        first = run_deployment("end-to-end/test-nightly", timeout=600)
        assert first.state.is_completed(), first.state
        data = out / "annotated" / "data"
        assert len(list(data.glob("*.parquet"))) == 1
        stamps = {p.name: p.stat().st_mtime_ns for p in (out / "dataset" / "data").iterdir()}
        annotated = {p.name: p.stat().st_mtime_ns for p in data.iterdir()}

        shutil.copy(samples / "pubmed/pubmed1.xml", watch)
        second = run_deployment("end-to-end/test-nightly", timeout=600)
        assert second.state.is_completed(), second.state
        after = {p.name: p.stat().st_mtime_ns for p in (out / "dataset" / "data").iterdir()}
        assert len(after) == 2 and all(after[k] == v for k, v in stamps.items())  # old shard untouched
        after_ann = {p.name: p.stat().st_mtime_ns for p in data.iterdir()}
        assert len(after_ann) == 2 and all(after_ann[k] == v for k, v in annotated.items())
    finally:
        server.terminate()
        server.wait(timeout=60)
