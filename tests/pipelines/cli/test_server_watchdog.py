"""Prefect's temporary API server dies with `biomed`, even when `biomed` is killed with SIGKILL
(issue 14, item 10: it used to stay up for good)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.helpers.paths import ROOT, SAMPLES


def wait_for(condition, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.1)
    return None


def server_of(pid: int) -> list[psutil.Process]:
    """The command's uvicorn child serving Prefect's API, and its watchdog, once both are up."""
    try:
        children = psutil.Process(pid).children()
    except psutil.Error:
        return []
    servers = [c for c in children if "prefect.server.api.server:create_app" in " ".join(c.cmdline())]
    dogs = [c for c in children if "server_watchdog.py" in " ".join(c.cmdline())]
    return servers + dogs if servers and dogs else []


@pytest.mark.slow
def test_kill_9_of_biomed_takes_its_prefect_api_server_down(tmp_path) -> None:
    env = {**os.environ, "PREFECT_API_URL": ""}  # no API configured: Prefect starts a temporary one
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "ingest", str(SAMPLES / "pubmed"), "--out",
                             str(tmp_path / "ds"), "--no-progress"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    spawned: list[psutil.Process] = []
    try:
        spawned = wait_for(lambda: server_of(proc.pid), 300) or []
        assert spawned, "the server never started"
        assert proc.poll() is None  # biomed is still running: the kill is what ends it
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        gone = wait_for(lambda: all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in spawned), 30)
        assert gone, [" ".join(p.cmdline()) for p in spawned if p.is_running()]
    finally:  # only what this test started: the session's own Prefect server (a child too) stays up
        proc.kill()
        for p in spawned:
            with contextlib.suppress(psutil.Error):
                p.kill()


def test_without_its_parent_the_watchdog_stops_the_process_it_watches() -> None:
    """The watchdog alone: its parent (a stand-in for biomed) exits, the watched process is stopped."""
    code = (
        "import subprocess, sys, time\n"
        "target = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "from pipelines.cli.server_watchdog import start_watchdog\n"
        "dog = start_watchdog(target.pid)\n"
        "print(target.pid, dog.pid, flush=True)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    pids = [int(pid) for pid in out.stdout.split()]
    assert len(pids) == 2, out.stderr
    assert wait_for(lambda: not any(running(pid) for pid in pids), 30), "the watched process is still running"


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
