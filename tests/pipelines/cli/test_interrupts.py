"""Ctrl-C and SIGTERM, sent for real to a `biomed` process: it stops at once, exits 130, leaves no
process and no staging files behind, says how to resume, and the rerun finishes the job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from corpora.dataset.store import open_dataset
from tests.helpers.paths import ROOT, SAMPLES

BIOMED = [sys.executable, "-m", "pipelines.cli"]


def start(args: list[str], tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [*BIOMED, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(condition, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before the signal: {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the condition never held")
        time.sleep(0.05)


def stop(proc: subprocess.Popen, sig: int) -> tuple[float, str]:
    family = [proc.pid, *(p.pid for p in psutil.Process(proc.pid).children(recursive=True))]
    sent = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - sent
    time.sleep(0.5)
    alive = [pid for pid in family if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert alive == [], f"processes left running: {alive}"
    return took, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_ingest_exits_130_cleanly_and_the_rerun_completes(tmp_path, sig) -> None:
    out = tmp_path / "ds"
    args = ["ingest", str(SAMPLES / "brat"), str(SAMPLES / "pubmed"), "--out", str(out), "--no-progress"]
    proc = start(args, tmp_path)
    wait_for(lambda: (out / ".staging").exists() or (out / "data").exists(), 120, proc)
    took, err = stop(proc, sig)
    assert proc.returncode == 130
    assert took < 10  # generous for a loaded CI machine; the path itself is immediate
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted: ingest stopped; shards finished so far are kept in")
    assert "Rerun the same command to resume" in last
    assert "Traceback" not in err and "Crash detected" not in err
    assert not (out / ".staging").exists()
    done = subprocess.run([*BIOMED, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert open_dataset(out).count_rows() > 0


def test_interrupted_training_saves_a_checkpoint_and_resumes(tmp_path) -> None:
    out = tmp_path / "ner"
    args = ["train", "ner", "--model", "scratch", "--layers", "1", "--hidden", "32", "--heads", "2",
            "--vocab-size", "800", "--train", str(SAMPLES / "bc5cdr" / "BC5CDR-IOB_train_sample.tsv"),
            "--out", str(out), "--max-steps", "100000", "--batch-size", "8", "--log-every", "1",
            "--save-every", "1000", "--no-progress", "--no-plot"]  # fmt: skip
    proc = start(args, tmp_path)
    wait_for(lambda: (out / "vocab" / "vocab.txt").exists(), 120, proc)
    time.sleep(3)  # into the training loop
    took, err = stop(proc, signal.SIGINT)
    assert proc.returncode == 130, err[-2000:]
    state = json.loads((out / "checkpoint" / "trainer_state.json").read_text())
    assert 0 < state["global_step"] < 100000  # stopped by the signal, not by the end of training
    last = err.strip().splitlines()[-1]
    assert f"training stopped at step {state['global_step']}" in last
    assert last.endswith("--resume") and "Continue with: biomed train ner" in last
    assert "Traceback" not in err
    target = state["global_step"] + 20  # a shorter run from the checkpoint: resumed, then done
    resumed = subprocess.run([*BIOMED, *args, "--max-steps", str(target), "--resume"], cwd=ROOT, capture_output=True,
                             text=True, timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"at step {state['global_step']}" in resumed.stderr  # "resumed from ... at step N"
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["global_step"] == target
