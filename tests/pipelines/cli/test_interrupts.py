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


def stop(proc: subprocess.Popen, sig: int) -> str:
    """Send `sig`, wait for the exit (a hang fails at the timeout) and check no child outlives it."""
    family = [proc.pid, *(p.pid for p in psutil.Process(proc.pid).children(recursive=True))]
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    time.sleep(0.5)
    alive = [pid for pid in family if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert alive == [], f"processes left running: {alive}"
    return err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_ingest_exits_130_cleanly_and_the_rerun_completes(tmp_path, sig) -> None:
    out = tmp_path / "ds"
    args = ["ingest", str(SAMPLES / "brat"), str(SAMPLES / "pubmed"), "--out", str(out), "--no-progress"]
    proc = start(args, tmp_path)
    wait_for(lambda: (out / ".staging").exists() or (out / "data").exists(), 120, proc)
    err = stop(proc, sig)
    assert proc.returncode == 130
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
    err = stop(proc, signal.SIGINT)
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


# --- every long-running command: preprocess (worker processes), annotate, pretrain, run, serve ---


def replicated_pubtator(path: Path, copies: int, first_id: int) -> Path:
    """The NCBI-disease devel sample (25 abstracts) `copies` times under new ids: seconds of work per shard."""
    blocks = [
        b for b in (SAMPLES / "ncbi-disease" / "NCBI_devel_sample.PubTator.txt").read_text().split("\n\n") if b.strip()
    ]
    out = []
    for n in range(copies):
        for i, block in enumerate(blocks):
            pmid, new = block.split("|", 1)[0], str(first_id + n * 1000 + i)
            out.append("\n".join(new + line[len(pmid) :] for line in block.strip().splitlines()))
    path.write_text("\n\n".join(out) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> dict[str, Path]:
    """Four raw PubTator files of 100 abstracts, their dataset, its preprocessed copy, tiny models."""
    from corpora.dataset.ingest import ingest_file
    from pipelines.cli import main
    from tests.helpers.annotation_models import ner_model_dir, re_model_dir, sample_vocab

    root = tmp_path_factory.mktemp("interrupt-corpus")
    raw = root / "raw"
    raw.mkdir()
    for s in range(4):
        ingest_file(replicated_pubtator(raw / f"part{s}.PubTator.txt", 4, 10_000_000 + s * 100_000), root / "ds")
    assert main(["preprocess", str(root / "ds"), "--out", str(root / "pre"), "--no-progress"]) == 0
    vocab = sample_vocab(root / "vocab.txt")
    return {"raw": raw, "ds": root / "ds", "pre": root / "pre",
            "ner": ner_model_dir(root / "ner", vocab), "re": re_model_dir(root / "re", vocab)}  # fmt: skip


class Lines:
    """Collects a process's stderr lines while it runs (so a test can wait for a log line)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        import threading

        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(proc.stderr), daemon=True)
        self.reader.start()

    def text(self) -> str:
        self.reader.join(timeout=30)
        return "".join(self.lines)


def stop_and_check(proc: subprocess.Popen, lines: Lines, sig: int, out: Path) -> str:
    """Send `sig` to a working command; then no process of its tree and no `.staging` is left. Its stderr."""
    family = psutil.Process(proc.pid).children(recursive=True)
    assert family, "the command has started no child process (Prefect's API server, workers)"
    proc.send_signal(sig)
    proc.wait(timeout=120)
    err = lines.text()
    alive = still_running(family)
    assert alive == [], f"processes left running: {alive}"
    assert list(out.rglob(".staging")) == []
    assert "Traceback" not in err and "Crash detected" not in err, err[-3000:]
    return err


def still_running(processes: list[psutil.Process], wait: float = 10.0) -> list[str]:
    """The command lines of `processes` still running after up to `wait` seconds (multiprocessing's
    resource tracker exits by itself, once every process holding its pipe has gone)."""
    deadline = time.monotonic() + wait
    while True:
        alive = []
        for p in processes:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(" ".join(p.cmdline()))
            except psutil.Error:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def start_collecting(args: list[str]) -> tuple[subprocess.Popen, Lines]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PREFECT_API_URL", None)  # Prefect's temporary API server, a child of the command
    proc = subprocess.Popen([*BIOMED, *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    return proc, Lines(proc)


def shards_in(folder: Path) -> int:
    return len(list((folder / "data").glob("*.parquet"))) if (folder / "data").is_dir() else 0


@pytest.mark.slow
def test_interrupted_preprocess_with_worker_processes_stops_them_and_exits_130(corpus, tmp_path) -> None:
    out = tmp_path / "pre"
    proc, lines = start_collecting(["preprocess", str(corpus["ds"]), "--out", str(out), "--workers", "2",
                                    "--no-progress"])  # fmt: skip
    wait_for(lambda: shards_in(out) >= 1, 300, proc)  # working: one shard done, the next under way
    workers = [
        p for p in psutil.Process(proc.pid).children(recursive=True) if "multiprocessing" in " ".join(p.cmdline())
    ]
    assert workers, "no worker processes seen"
    err = stop_and_check(proc, lines, signal.SIGINT, out)
    assert proc.returncode == 130
    assert shards_in(out) < 4  # stopped by the signal, not by the end of the work
    assert err.strip().splitlines()[-1].startswith("interrupted: preprocess stopped; shards finished so far are kept")


@pytest.mark.slow
def test_interrupted_annotate_exits_130_cleanly(corpus, tmp_path) -> None:
    out = tmp_path / "ann"
    proc, lines = start_collecting(["annotate", str(corpus["pre"]), "--ner", str(corpus["ner"]), "--re",
                                    str(corpus["re"]), "--out", str(out), "--no-progress"])  # fmt: skip
    wait_for(lambda: shards_in(out) >= 1, 300, proc)
    err = stop_and_check(proc, lines, signal.SIGINT, out)
    assert proc.returncode == 130
    assert shards_in(out) < 4
    assert err.strip().splitlines()[-1].startswith("interrupted: annotate stopped; shards finished so far are kept")


@pytest.mark.slow
def test_interrupted_run_exits_130_cleanly(corpus, tmp_path) -> None:
    out = tmp_path / "run"
    proc, lines = start_collecting(["run", str(corpus["raw"]), "--out", str(out), "--ner", str(corpus["ner"]),
                                    "--re", str(corpus["re"]), "--no-progress"])  # fmt: skip
    wait_for(lambda: shards_in(out / "dataset") >= 1, 300, proc)
    err = stop_and_check(proc, lines, signal.SIGTERM, out)
    assert proc.returncode == 130
    assert shards_in(out / "annotated") < 4
    assert err.strip().splitlines()[-1].startswith("interrupted: run stopped; shards finished so far are kept")


def test_interrupted_pretraining_saves_a_checkpoint_and_says_how_to_resume(corpus, tmp_path) -> None:
    out = tmp_path / "enc"
    proc, lines = start_collecting(["pretrain", str(corpus["pre"]), "--out", str(out), "--layers", "1", "--hidden",
                                    "32", "--heads", "2", "--vocab-size", "800", "--max-steps", "100000",
                                    "--batch-size", "8", "--log-every", "1", "--save-every", "100000", "--no-progress",
                                    "--no-plot"])  # fmt: skip
    wait_for(lambda: any(" step 2 loss " in line for line in lines.lines), 300, proc)  # in the training loop
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    err = lines.text()
    assert proc.returncode == 130, err[-2000:]
    state = json.loads((out / "checkpoint" / "trainer_state.json").read_text())
    assert 2 <= state["global_step"] < 100000
    last = err.strip().splitlines()[-1]
    assert f"training stopped at step {state['global_step']}" in last
    assert "Continue with: biomed pretrain" in last and last.endswith("--resume")
    assert "Traceback" not in err
    assert [p.name for p in out.iterdir() if ".tmp-" in p.name] == []


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_stops_on_a_signal_with_exit_0_and_no_process_left(corpus, tmp_path, sig) -> None:
    """Serving ends only on a signal, so that is its clean stop: exit 0 (Prefect's runner handles
    SIGTERM itself, Ctrl-C reaches ours)."""
    out = tmp_path / "served"
    proc = subprocess.Popen([*BIOMED, "serve", "--watch", str(corpus["raw"]), "--out", str(out), "--ner",
                             str(corpus["ner"]), "--re", str(corpus["re"]), "--name", f"interrupt-{int(sig)}"],
                            cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1", "PREFECT_API_URL": ""},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    lines = Lines(proc)
    served = []
    import threading

    threading.Thread(target=lambda: served.extend(proc.stdout), daemon=True).start()
    wait_for(lambda: any("is being served" in line for line in served), 300, proc)
    err = stop_and_check(proc, lines, sig, out)
    assert proc.returncode == 0, err[-2000:]
    assert err.strip().splitlines()[-1].startswith("stopped: serve stopped on a signal; the deployment")


@pytest.mark.slow
def test_annotate_on_a_local_dask_cluster_leaves_no_process(corpus, tmp_path) -> None:
    """Dask's workers and nannies and Prefect's temporary API server all end with the command."""
    import threading

    out = tmp_path / "dask"
    proc, lines = start_collecting(["annotate", str(corpus["pre"]), "--ner", str(corpus["ner"]), "--out", str(out),
                                    "--dask-workers", "2", "--no-progress"])  # fmt: skip
    seen: dict[int, tuple[psutil.Process, str]] = {}

    def record() -> None:  # every descendant seen while the command runs
        while proc.poll() is None:
            try:
                for child in psutil.Process(proc.pid).children(recursive=True):
                    if child.pid not in seen:
                        seen[child.pid] = (child, " ".join(child.cmdline()))
            except psutil.Error:
                pass
            time.sleep(0.1)

    recorder = threading.Thread(target=record, daemon=True)
    recorder.start()
    proc.wait(timeout=600)
    recorder.join(timeout=10)
    err = lines.text()
    assert proc.returncode == 0, err[-3000:]
    assert shards_in(out) == 4
    commands = [command for _, command in seen.values()]
    assert any("uvicorn" in c for c in commands), commands  # Prefect's temporary API server
    assert sum("multiprocessing" in c for c in commands) >= 2, commands  # the Dask cluster's processes
    alive = still_running([p for p, _ in seen.values()])
    assert alive == [], f"processes left running: {alive}"


def test_stop_children_in_a_caller_of_main_spares_the_processes_it_had_before() -> None:
    """`main` called in-process (a test session with its own Prefect server, a user's script):
    an interrupt stops what the command started, never what its caller already ran."""
    import subprocess
    import sys

    from pipelines.cli.interrupts import install_signal_handlers, restore_signal_handlers, stop_children

    sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
    before = subprocess.Popen(sleeper)
    previous = install_signal_handlers(None, own_process=False)
    during = subprocess.Popen(sleeper)
    try:
        stop_children()
        assert during.wait(timeout=10) is not None
        assert before.poll() is None
    finally:
        restore_signal_handlers(previous)
        before.kill()
        during.kill()
        before.wait()
