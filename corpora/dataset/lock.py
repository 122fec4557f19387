"""One writer per dataset folder: a lock file naming its holder, held for the whole write run.

Why: two runs writing the same folder interfere (the second's staging clean-up deletes the files
the first is still writing, and both rewrite the manifest). Every writer (ingest, preprocess,
annotate) takes `DATASET_LOCK` in the dataset folder before touching it; readers never need it.

The file is locked with `fcntl.flock`, so the kernel releases it when the holder dies, however it
dies: a lock left by a killed run is never mistaken for a live one on the same host. The file also
holds JSON `{pid, host, command, started}`, so a refused writer can say who holds it. A clean
release deletes the file; a file found with a holder in it therefore tells the next writer that the
previous run died (`DatasetLock.previous`), and that a "nothing to do" answer must not be trusted.

Locks are re-entrant within a process (the CLI takes the lock before starting a flow, and the flow
takes it again), so only other processes are refused. On a network file system where `flock` does
not reach other hosts, the JSON still names the holder's host, and the message says how to remove
a lock whose holder is gone.

Tested in `tests/corpora/dataset/test_lock.py`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corpora.dataset.manifest import utc_now
from corpora.errors import StoreError, UsageError

log = logging.getLogger(__name__)

DATASET_LOCK = ".biomed.lock"


class DatasetLockedError(UsageError):
    """Another process is writing the dataset folder: refused at once, naming the holder."""


@dataclass
class DatasetLock:
    """A held lock on one dataset folder; `previous` is the holder a killed run left in the file."""

    root: Path
    fd: int
    depth: int = 1
    previous: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.root / DATASET_LOCK


_HELD: dict[str, DatasetLock] = {}
_HELD_GUARD = threading.Lock()


def holder_record(command: str) -> dict[str, Any]:
    """What the lock file says about this process."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": command, "started": utc_now()}


def this_command() -> str:
    """The command line of this process as a user typed it (`biomed ingest ...` also under `python -m`)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    cli = Path(sys.argv[0]).name == "biomed" or (spec is not None and spec.name.startswith("pipelines.cli"))
    return " ".join(["biomed" if cli else Path(sys.argv[0]).name, *sys.argv[1:]])


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def acquire(root: str | Path, command: str | None = None) -> DatasetLock:
    """Take the write lock of dataset folder `root` (created if missing), or raise DatasetLockedError.

    Re-entrant in one process; release with `release` (or use `dataset_lock`)."""
    root = Path(root)
    key = str(root.resolve())
    with _HELD_GUARD:
        held = _HELD.get(key)
        if held is not None:
            held.depth += 1
            return held
        lock = _take(root, command or this_command())
        _HELD[key] = lock
        return lock


def release(lock: DatasetLock) -> None:
    """Give the lock back; the last release of a process deletes the file, then unlocks it."""
    key = str(lock.root.resolve())
    with _HELD_GUARD:
        lock.depth -= 1
        if lock.depth > 0:
            return
        _HELD.pop(key, None)
        with contextlib.suppress(OSError):
            if os.fstat(lock.fd).st_ino == os.stat(lock.path).st_ino:
                lock.path.unlink()
        os.close(lock.fd)  # closing releases the flock


@contextlib.contextmanager
def dataset_lock(root: str | Path, command: str | None = None) -> Iterator[DatasetLock]:
    """`acquire` for the duration of a `with` block."""
    lock = acquire(root, command)
    try:
        yield lock
    finally:
        release(lock)


def _take(root: Path, command: str) -> DatasetLock:
    path = root / DATASET_LOCK
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{root}: cannot create the dataset folder ({exc.strerror}); choose a writable --out") from exc
    for _ in range(5):  # the file may be deleted by its releasing holder between our open and flock
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(
                f"{root}: cannot create the lock file {DATASET_LOCK} ({exc.strerror}); make the folder writable"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_record(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise DatasetLockedError(_held_message(root, holder)) from None
            raise StoreError(f"{path}: cannot lock ({exc.strerror})") from exc
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        previous = _read_record(fd)
        if previous:
            _check_other_host(root, previous, fd)
            log.warning(
                "%s: the previous writer (pid %s on %s, %s, started %s) did not finish; checking the whole dataset",
                root,
                previous.get("pid"),
                previous.get("host"),
                previous.get("command"),
                previous.get("started"),
            )
        _write_record(fd, holder_record(command))
        return DatasetLock(root=root, fd=fd, previous=previous)
    raise DatasetLockedError(f"{root}: the lock file {DATASET_LOCK} keeps changing; another writer is starting")


def _check_other_host(root: Path, previous: dict[str, Any], fd: int) -> None:
    """A record of another host whose flock did not reach us (a network file system): refuse."""
    host = previous.get("host")
    if host and host != socket.gethostname():
        os.close(fd)
        raise DatasetLockedError(_held_message(root, previous))


def _held_message(root: Path, holder: dict[str, Any]) -> str:
    if not holder:
        return f"{root} is being written by another process (lock {root / DATASET_LOCK}); wait for it to finish"
    pid, host = holder.get("pid"), holder.get("host")
    who = f"pid {pid} on {host} ({holder.get('command')}, started {holder.get('started')})"
    if host == socket.gethostname():
        alive = isinstance(pid, int) and pid_alive(pid)
        state = "" if alive else "; that process is gone, but a worker process it started still holds the lock"
        return f"{root} is being written by {who}{state}; wait for it to finish or stop it"
    return (
        f"{root} is being written by {who}; wait for it to finish, or, if no such process runs on {host} any more, "
        f"delete {root / DATASET_LOCK}"
    )


def _read_record(fd: int) -> dict[str, Any]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 65536)
        data = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_record(fd: int, record: dict[str, Any]) -> None:
    payload = (json.dumps(record, sort_keys=True) + "\n").encode()
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, payload)
    os.fsync(fd)


__all__ = ["DATASET_LOCK", "DatasetLock", "DatasetLockedError", "acquire", "dataset_lock", "pid_alive", "release"]
