"""Prefect's temporary API server dies with `biomed`, even when `biomed` is killed with SIGKILL.

Without PREFECT_API_URL, Prefect starts a temporary API server for the command: a `uvicorn`
subprocess (`prefect.server.api.server.SubprocessASGIServer._run_uvicorn_command`) that it stops
from an `atexit` hook. A `kill -9` of `biomed` runs no hook, so the server used to stay up for good
(issue 14, item 10). This module pairs each such server with a watchdog: a tiny process (this file
run as a script, standard library only, about 10 MB) that checks every 0.2 s whether `biomed` is
still its parent; once it is not, it stops the server (SIGTERM, SIGKILL after 5 s) and exits. It
also exits as soon as the server has stopped, and `biomed` stops it with the server.

Why a watchdog and not PR_SET_PDEATHSIG set in the server process: Linux delivers that signal when
the *thread* that started the child exits, not the process. Prefect starts the server from
whichever thread first needs the API (the flow's, the events worker's, a task runner's), so a
finished thread would kill a server still in use; and setting it needs code in the child, that is a
copy of Prefect's `Popen` call. Wrapping `_run_uvicorn_command` is the smallest hook: it sees
every server Prefect starts (also the retries on a taken port) and needs nothing of its arguments.

The wrapper is put in place when Prefect imports its server module (an import hook: importing it
ahead of time would cost a no-op rerun 2-4 s), so commands that never start a server pay nothing.

Tested in `tests/pipelines/cli/test_server_watchdog.py`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

SERVER_MODULE = "prefect.server.api.server"
POLL_SECONDS = 0.2
GRACE_SECONDS = 5.0


def _start_time(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/PID/stat), to tell it from a later one with its pid."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]


def _alive(pid: int, born: str | None) -> bool:
    if born is not None or os.path.isdir("/proc"):
        return born is not None and _start_time(pid) == born
    try:  # no /proc (macOS): the pid alone
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def watch(parent: int, target: int) -> None:
    """Stop `target` once `parent` has died; return when `target` is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: biomed does the stopping
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # outlive a closed terminal long enough to stop the server
    born = _start_time(target)
    while _alive(target, born):
        if os.getppid() != parent:  # reparented: biomed is gone
            os.kill(target, signal.SIGTERM)
            deadline = time.monotonic() + GRACE_SECONDS
            while _alive(target, born) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(target, born):
                os.kill(target, signal.SIGKILL)
            return
        time.sleep(POLL_SECONDS)


def start_watchdog(target: int) -> subprocess.Popen:
    """A watchdog process for `target`, a child of this process."""
    # -I -S: no site-packages, no environment, nothing beside this file on sys.path: it starts in ~20 ms
    return subprocess.Popen(
        [sys.executable, "-I", "-S", os.path.abspath(__file__), str(os.getpid()), str(target)],
        stdin=subprocess.DEVNULL,
        close_fds=True,
    )


def _patch(server_class: Any) -> None:
    """Give every server the class starts a watchdog, stopped with the server."""
    if getattr(server_class, "_biomed_watched", False):
        return
    run_server = server_class._run_uvicorn_command
    stop_server = server_class.stop

    def _run_uvicorn_command(self: Any) -> subprocess.Popen:
        process = run_server(self)
        self._biomed_watchdogs = [*getattr(self, "_biomed_watchdogs", []), start_watchdog(process.pid)]
        return process

    def stop(self: Any) -> None:
        try:
            stop_server(self)
        finally:
            for dog in getattr(self, "_biomed_watchdogs", []):
                dog.terminate()
                dog.wait()
            self._biomed_watchdogs = []

    server_class._run_uvicorn_command = _run_uvicorn_command
    server_class.stop = stop
    server_class._biomed_watched = True


class _PatchWhenImported:
    """A `sys.meta_path` finder that lets the normal finder load Prefect's server module, then patches it."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != SERVER_MODULE:
            return None
        import importlib.machinery

        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module: Any) -> None:
            exec_module(module)
            _patch(module.SubprocessASGIServer)

        spec.loader.exec_module = exec_and_patch  # type: ignore[method-assign]
        return spec


def watch_prefect_servers() -> None:
    """From now on, every temporary Prefect API server this process starts has a watchdog."""
    module = sys.modules.get(SERVER_MODULE)
    if module is not None:
        _patch(module.SubprocessASGIServer)
    elif not any(isinstance(finder, _PatchWhenImported) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PatchWhenImported())


if __name__ == "__main__":
    watch(int(sys.argv[1]), int(sys.argv[2]))
