"""Reading one input file in a child process, so that a crash of a native parser fails that file alone.

The XML readers hand the bytes to libxml2 (through lxml). The size limits of
`corpora.formats.limits` keep the known bombs away from it, but a crash inside native code
(SIGSEGV, abort) would still take down the whole `biomed ingest` run, with no summary and no
manifest. `read_records` therefore reads those formats (`ISOLATED_FORMATS`) in a forked child:

- The child runs the format's reader and sends the records back over a pipe in batches of
  `BATCH_SIZE` (pickled), so the parent holds at most one batch of the file and the child waits
  while the parent writes. Warnings and log records of the reader (the DDI offset fix-ups, BioC's
  skipped annotations) travel with the batches and are re-issued in the parent.
- An error the reader raises on purpose (`InputError` and the rest of `corpora.errors`) arrives in
  the parent as it was raised. A child that dies (a signal, or running out of the address space
  `BIOMED_READER_MEMORY_MB` allows it beyond what the fork already maps, default 4096) gives a
  `ParserCrashError` naming the signal and how many records came before it; a child that sends
  nothing for `BIOMED_READER_IDLE_S` seconds (default 600) is killed and reported the same way.
  The run goes on with the other files.
- The child is a plain `os.fork()`: no new interpreter, no re-import of the user's script (which
  forkserver and spawn would do), and it works inside daemonic workers (Dask), where
  `multiprocessing` may not start children. It resets SIGINT/SIGTERM to their defaults and leaves
  with `os._exit`, so none of the parent's handlers or exit hooks run in it.

Pure-Python readers (PubTator, CoNLL, ChemProt, brat, BioC JSON) cannot crash the interpreter and
run in the calling process, bounded by the same limits; a `MemoryError` there becomes a
`DocumentTooLargeError` naming the file instead of an empty `MemoryError`. The cost of isolation
on the ingest benchmark is in benchmarks/RESULTS.md ("Hostile input: readers").

Tested in `tests/corpora/formats/test_isolated_read.py`.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import sys
import traceback
import warnings
from collections.abc import Iterator, Mapping
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from corpora.errors import BiomedError, ConfigError, DocumentTooLargeError, ParserCrashError
from corpora.formats.registry import Record, get_reader

ISOLATED_FORMATS = frozenset({"pubmed-xml", "bioc-xml", "ddi-xml"})
BATCH_SIZE = 256
MEMORY_ENV = "BIOMED_READER_MEMORY_MB"
IDLE_ENV = "BIOMED_READER_IDLE_S"
DEFAULT_MEMORY_MB = 4096
DEFAULT_IDLE_S = 600.0

log = logging.getLogger(__name__)


def read_records(
    path: str | Path, fmt: str, options: Mapping[str, Any] | None = None, *, isolate: bool | None = None
) -> Iterator[Record]:
    """Stream the records of `path` read by the `fmt` reader (with `options`), in a child process
    when `isolate` is true (default: when the format is parsed by native code, ISOLATED_FORMATS)."""
    opts = dict(options or {})
    if isolate is None:
        isolate = fmt in ISOLATED_FORMATS
    if isolate and hasattr(os, "fork"):
        yield from _read_in_child(Path(path), fmt, opts)
    else:
        yield from _read_here(Path(path), fmt, opts)


def _read_here(path: Path, fmt: str, options: dict[str, Any]) -> Iterator[Record]:
    count = 0
    try:
        for record in get_reader(fmt)(path, **options):
            count += 1
            yield record
    except MemoryError:
        raise _out_of_memory(path, count) from None


def _out_of_memory(path: Path, count: int) -> DocumentTooLargeError:
    return DocumentTooLargeError(
        path,
        f"ran out of memory after {count} records: a record is too large for the memory available "
        "(see BIOMED_MAX_DOCUMENT_MB)",
    )


def _setting(env: str, default: float) -> float:
    raw = os.environ.get(env, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{env}={raw!r} is not a number") from None
    if value <= 0:
        raise ConfigError(f"{env}={raw!r} must be positive")
    return value


def _read_in_child(path: Path, fmt: str, options: dict[str, Any]) -> Iterator[Record]:
    memory = int(_setting(MEMORY_ENV, DEFAULT_MEMORY_MB) * (1 << 20))
    idle = _setting(IDLE_ENV, DEFAULT_IDLE_S)
    get_reader(fmt)  # import the reader here, once, rather than in every child
    receiver, sender = Pipe(duplex=False)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        receiver.close()
        _child(path, fmt, options, sender, memory)
    sender.close()
    count = 0
    finished = False
    try:
        while True:
            if not receiver.poll(idle):
                _kill(pid)
                raise ParserCrashError(
                    path, f"the reader sent nothing for {idle:g} s after {count} records and was stopped ({IDLE_ENV})"
                )
            try:
                kind, payload, notes = receiver.recv()
            except (EOFError, OSError):
                raise _crash(path, pid, count) from None
            _replay(notes)
            if kind == "records":
                count += len(payload)
                yield from payload
            elif kind == "done":
                finished = True
                return
            else:  # "error"
                finished = True
                raise payload
    finally:
        receiver.close()
        if finished:
            os.waitpid(pid, 0)
        else:
            _kill(pid)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _crash(path: Path, pid: int, count: int) -> ParserCrashError:
    """The child closed the pipe without finishing: say how it ended."""
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            how = f"was killed by {signal.Signals(sig).name}"
        except ValueError:
            how = f"was killed by signal {sig}"
    else:
        how = f"exited with status {os.waitstatus_to_exitcode(status)}"
    return ParserCrashError(
        path,
        f"the reader's process {how} after {count} records (a crash in the native parser, or out of memory); "
        "this file is refused, the others are read",
    )


class _Collect(logging.Handler):
    """Keeps the reader's log records in the child, to be sent to the parent with the next batch."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.levelno, record.getMessage()))


def _child(path: Path, fmt: str, options: dict[str, Any], conn: Connection, memory: int) -> None:
    code = 0
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        try:
            cap = _virtual_size() + memory  # on top of what the fork already maps
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        except (ValueError, OSError):
            pass
        collect = _Collect()
        corpora_log = logging.getLogger("corpora")
        corpora_log.handlers = [collect]
        corpora_log.propagate = False
        with warnings.catch_warnings(record=True) as caught:

            def notes() -> tuple[list, list]:
                out = ([(str(w.message), w.category) for w in caught], collect.records)
                caught.clear()
                collect.records = []
                return out

            batch: list[Record] = []
            count = 0
            try:
                for record in get_reader(fmt)(path, **options):
                    batch.append(record)
                    if len(batch) >= BATCH_SIZE:
                        count += len(batch)
                        conn.send(("records", batch, notes()))
                        batch = []
                count += len(batch)
                if batch:
                    conn.send(("records", batch, notes()))
                conn.send(("done", None, notes()))
            except BiomedError as exc:
                conn.send(("error", exc, notes()))
            except MemoryError:
                batch = []
                conn.send(("error", _out_of_memory(path, count), notes()))
            except Exception as exc:  # a bug: the parent re-raises it with the child's traceback
                conn.send(("error", _unexpected(path, exc), notes()))
    except BaseException:  # the parent went away (broken pipe) or a signal: nothing left to tell
        code = 1
    finally:
        os._exit(code)


def _virtual_size() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmSize in /proc/self/status")


def _unexpected(path: Path, exc: Exception) -> Exception:
    """A picklable copy of an error that is not ours, with the child's traceback in its message."""
    text = "".join(traceback.format_exception(exc))
    return RuntimeError(f"{path}: the {type(exc).__name__} below was raised in the reader's process\n{text}")


def _replay(notes: tuple[list, list]) -> None:
    caught, records = notes
    for message, category in caught:
        warnings.warn(message, category, stacklevel=3)
    for name, level, message in records:
        logging.getLogger(name).log(level, "%s", message)


__all__ = ["ISOLATED_FORMATS", "read_records"]
