"""One writer per dataset folder: a second is refused at once naming the holder; a dead holder's lock
is taken over (and reported as a run that did not finish); readers need no lock."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corpora.dataset.lock import DATASET_LOCK, DatasetLockedError, acquire, dataset_lock, release
from pipelines.cli import main as cli_main
from tests.helpers.paths import ROOT, SAMPLES

HOLD = """
import sys, time
from corpora.dataset.lock import acquire
acquire(sys.argv[1], "biomed ingest test-holder")
print("held", flush=True)
time.sleep(120)
"""


def start_holder(root: Path) -> subprocess.Popen:
    """A child process holding the lock of `root` until it is killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(root)], cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ}
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_naming_the_holder(tmp_path: Path) -> None:
    holder = start_holder(tmp_path / "ds")
    try:
        with pytest.raises(DatasetLockedError) as err:
            acquire(tmp_path / "ds")
        message = str(err.value)
        assert f"is being written by pid {holder.pid} on {socket.gethostname()} (biomed ingest test-holder" in message
        assert "wait for it to finish" in message
        assert "\n" not in message
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_leaves_a_lock_the_next_writer_takes_over(tmp_path: Path) -> None:
    holder = start_holder(tmp_path / "ds")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    record = json.loads((tmp_path / "ds" / DATASET_LOCK).read_text())
    assert record["pid"] == holder.pid  # the file stays: nobody cleaned up
    with dataset_lock(tmp_path / "ds", "second") as lock:
        assert lock.previous["pid"] == holder.pid  # the previous run did not finish
        assert json.loads((tmp_path / "ds" / DATASET_LOCK).read_text())["command"] == "second"
    assert not (tmp_path / "ds" / DATASET_LOCK).exists()  # a clean release deletes it


def test_the_lock_is_re_entrant_within_a_process(tmp_path: Path) -> None:
    outer = acquire(tmp_path, "outer")
    inner = acquire(tmp_path, "inner")
    assert inner is outer and outer.depth == 2
    release(inner)
    assert (tmp_path / DATASET_LOCK).exists()
    release(outer)
    assert not (tmp_path / DATASET_LOCK).exists()
    with dataset_lock(tmp_path) as again:
        assert again.previous == {}  # released cleanly: nothing to recover


def test_a_lock_of_another_host_is_refused_with_how_to_remove_it(tmp_path: Path) -> None:
    """On a network file system flock may not reach the other host: its record still refuses."""
    record = {"pid": 4242, "host": "other-node-7", "command": "biomed ingest x", "started": "2026-01-01T00:00:00+00:00"}
    (tmp_path / DATASET_LOCK).write_text(json.dumps(record))
    with pytest.raises(DatasetLockedError) as err:
        acquire(tmp_path)
    assert str(err.value) == (
        f"{tmp_path} is being written by pid 4242 on other-node-7 (biomed ingest x, started "
        "2026-01-01T00:00:00+00:00); wait for it to finish, or, if no such process runs on other-node-7 any "
        f"more, delete {tmp_path / DATASET_LOCK}"
    )


def test_cli_second_writer_exits_2_with_one_line_at_once(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "ds"
    holder = start_holder(out)
    try:
        start = time.perf_counter()
        code = cli_main(["ingest", str(SAMPLES / "pubmed" / "pubmed1.xml"), "--out", str(out), "--no-progress"])
        elapsed = time.perf_counter() - start
        err = capsys.readouterr().err.strip()
        assert code == 2
        assert err.startswith(f"error: {out} is being written by pid {holder.pid} on ")
        assert len(err.splitlines()) == 1
        assert not (out / "data").exists()  # nothing written
        print(f"refused in {elapsed:.2f} s")
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("command", ["preprocess", "annotate"])
def test_cli_preprocess_and_annotate_refuse_a_second_writer(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from corpora.dataset.ingest import ingest_file

    ds, out = tmp_path / "ds", tmp_path / "out"
    ingest_file(SAMPLES / "pubmed" / "pubmed1.xml", ds)
    (ds / "manifest.json").write_text("{}")
    holder = start_holder(out)
    try:
        argv = [command, str(ds), "--out", str(out), "--no-progress"]
        code = cli_main(argv + (["--ner", "default"] if command == "annotate" else []))
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1
        assert err.startswith(f"error: {out} is being written by pid {holder.pid} on ")
    finally:
        holder.kill()
        holder.wait()


def test_readers_need_no_lock(tmp_path: Path) -> None:
    from corpora.dataset.ingest import ingest_file
    from corpora.dataset.store import open_dataset

    out = tmp_path / "ds"
    ingest_file(SAMPLES / "pubmed" / "pubmed1.xml", out)
    holder = start_holder(out)
    try:
        assert [d.document_id for d in open_dataset(out).iter_documents()]
    finally:
        holder.kill()
        holder.wait()
