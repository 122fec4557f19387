"""Running native XML parsing in a child process, so that a crash of the parser fails that file alone.

The XML readers hand the bytes to libxml2 (through lxml). The size limits of
`corpora.formats.limits` keep the known bombs away from it, but a crash inside native code
(SIGSEGV, abort) would still take down the whole `biomed ingest` run, with no summary and no
manifest. So the formats parsed by native code (`ISOLATED_FORMATS`) are handled in a forked child:

- `isolate_native_formats` decorates `corpora.dataset.ingest.ingest_file`: for those formats the
  whole ingest of the file (read, validate, write the shard atomically) runs in the child and only
  its report comes back. Nothing per record crosses the pipe, so the cost is one fork per file
  (sending every Document back instead cost 70-90% on the ingest benchmark: unpickling 30,000
  Documents takes longer than parsing them). A file that kills its child leaves at most a staging
  file, which the next run clears, never a half shard.
- `read_records` streams the records of one file from a child (in batches of `BATCH_SIZE`), for
  callers that need the Documents themselves.
- An error raised on purpose (`corpora.errors`) arrives in the parent as it was raised; any other
  exception too (an OSError stays one, so transient I/O is still retried), with the child's
  traceback as a note, or as a RuntimeError carrying it when it cannot be pickled. Warnings and the records of
  the `corpora` loggers are re-issued in the parent. A child that dies (a signal, or running out
  of the address space `BIOMED_READER_MEMORY_MB` allows it beyond what the fork already maps, no
  cap by default) gives a `ParserCrashError` naming the signal; one that sends nothing for
  `BIOMED_READER_IDLE_S` seconds (default 3600) is killed and reported the same way. The run
  goes on with the other files.
- The child is a plain `os.fork()`: no new interpreter, no re-import of the user's script (which
  forkserver and spawn would do), and it works inside daemonic workers (Dask), where
  `multiprocessing` may not start children. It resets SIGINT/SIGTERM to their defaults and leaves
  with `os._exit`, so none of the parent's handlers or exit hooks run in it.

Pure-Python readers (PubTator, CoNLL, ChemProt, brat, BioC JSON) cannot crash the interpreter and
run in the calling process, bounded by the same limits; a `MemoryError` while reading becomes a
`DocumentTooLargeError` naming the file instead of an empty `MemoryError`. The cost of isolation
on the ingest benchmark is in benchmarks/RESULTS.md ("Hostile input: readers").

Tested in `tests/corpora/formats/test_isolated_read.py`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import pickle
import resource
import signal
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

from corpora.errors import BiomedError, ConfigError, DocumentTooLargeError, ParserCrashError
from corpora.formats.registry import Record, detect_format, get_reader

ISOLATED_FORMATS = frozenset({"pubmed-xml", "bioc-xml", "ddi-xml"})
BATCH_SIZE = 256
MEMORY_ENV = "BIOMED_READER_MEMORY_MB"
IDLE_ENV = "BIOMED_READER_IDLE_S"
DEFAULT_IDLE_S = 3600.0

T = TypeVar("T")


def needs_isolation(path: str | Path, fmt: str = "auto") -> bool:
    """True when `path` is read by native code (ISOLATED_FORMATS) and this platform can fork."""
    if not hasattr(os, "fork"):
        return False
    name = detect_format(path) if fmt == "auto" else fmt
    return name in ISOLATED_FORMATS


def isolate_native_formats(func: Callable[..., T]) -> Callable[..., T]:
    """Run `func(path, ..., fmt=...)` in a child process when `path` needs isolation (see
    `needs_isolation`); its return value (picklable) or error comes back."""
    signature = inspect.signature(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        path = Path(bound.arguments["path"])
        try:
            isolate = needs_isolation(path, bound.arguments.get("fmt", "auto"))
        except BiomedError:
            isolate = False  # the function reports a file it cannot detect, in this process
        if not isolate:
            return func(*args, **kwargs)
        return run_in_child(path, func, *args, **kwargs)

    return wrapper


def run_in_child(source: Path, func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """`func(*args, **kwargs)` in a forked child; its result or error is returned or raised here
    (`source`, the input file, names the file in a ParserCrashError)."""

    def work(send: Callable[[str, Any], None]) -> None:
        send("done", func(*args, **kwargs))

    for kind, payload in _child_messages(source, work):
        if kind == "done":
            return payload
    raise AssertionError("unreachable: the child ends with done or an error")


def read_records(
    path: str | Path, fmt: str, options: Mapping[str, Any] | None = None, *, isolate: bool | None = None
) -> Iterator[Record]:
    """Stream the records of `path` read by the `fmt` reader (with `options`), in a child process
    when `isolate` is true (default: when the format is parsed by native code, ISOLATED_FORMATS)."""
    p = Path(path)
    opts = dict(options or {})
    if isolate is None:
        isolate = fmt in ISOLATED_FORMATS
    if not (isolate and hasattr(os, "fork")):
        yield from _read_here(p, fmt, opts)
        return
    get_reader(fmt)  # import the reader here, once, rather than in every child

    def work(send: Callable[[str, Any], None]) -> None:
        batch: list[Record] = []
        for record in get_reader(fmt)(p, **opts):
            batch.append(record)
            if len(batch) >= BATCH_SIZE:
                send("records", batch)
                batch = []
        if batch:
            send("records", batch)
        send("done", None)

    for kind, payload in _child_messages(p, work):
        if kind == "records":
            yield from payload


def _read_here(path: Path, fmt: str, options: dict[str, Any]) -> Iterator[Record]:
    count = 0
    try:
        for record in get_reader(fmt)(path, **options):
            count += 1
            yield record
    except MemoryError:
        raise _out_of_memory(path, count) from None


def _out_of_memory(path: Path, count: int | None) -> DocumentTooLargeError:
    after = f" after {count} records" if count is not None else ""
    return DocumentTooLargeError(
        path,
        f"ran out of memory{after}: a record is too large for the memory available (see BIOMED_MAX_DOCUMENT_MB)",
    )


def _setting(env: str, default: float | None) -> float | None:
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


def _child_messages(path: Path, work: Callable[[Callable[[str, Any], None]], None]) -> Iterator[tuple[str, Any]]:
    """Fork; the child runs `work(send)`. Yield what it sends until "done"; raise what it raises
    (or a ParserCrashError when it dies). The child is killed if the caller stops early."""
    memory_mb = _setting(MEMORY_ENV, None)
    idle = _setting(IDLE_ENV, DEFAULT_IDLE_S) or DEFAULT_IDLE_S
    receiver, sender = Pipe(duplex=False)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        receiver.close()
        _child(path, work, sender, memory_mb)
    sender.close()
    count = 0
    finished = False
    try:
        while True:
            if not receiver.poll(idle):
                raise ParserCrashError(
                    path, f"the reader sent nothing for {idle:g} s after {count} records and was stopped ({IDLE_ENV})"
                )
            try:
                kind, payload, notes = receiver.recv()
            except (EOFError, OSError):
                raise _crash(path, pid, count) from None
            _replay(notes)
            if kind == "error":
                finished = True
                raise payload
            if kind == "done":
                finished = True
            elif kind == "records":
                count += len(payload)
            yield kind, payload
            if finished:
                return
    finally:
        receiver.close()
        if finished:
            _reap(pid)
        else:
            _kill(pid)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid)


def _crash(path: Path, pid: int, count: int) -> ParserCrashError:
    """The child closed the pipe without finishing: say how it ended."""
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        how = "ended"
    else:
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            try:
                how = f"was killed by {signal.Signals(sig).name}"
            except ValueError:
                how = f"was killed by signal {sig}"
        else:
            how = f"exited with status {os.waitstatus_to_exitcode(status)}"
    after = f" after {count} records" if count else ""
    return ParserCrashError(
        path,
        f"the reader's process {how}{after} (a crash in the native parser, or out of memory); "
        "this file is refused, the others are read",
    )


class _Collect(logging.Handler):
    """Keeps the log records of the `corpora` loggers in the child, sent with the next message."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.levelno, record.getMessage()))


def _child(path: Path, work: Callable, conn: Connection, memory_mb: float | None) -> None:
    code = 0
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        if memory_mb is not None:
            try:
                cap = _virtual_size() + int(memory_mb * (1 << 20))  # on top of what the fork already maps
                resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
            except (ValueError, OSError):
                pass
        collect = _Collect()
        corpora_log = logging.getLogger("corpora")
        corpora_log.handlers = [collect]
        corpora_log.propagate = False
        with warnings.catch_warnings(record=True) as caught:

            def send(kind: str, payload: Any) -> None:
                notes = ([(str(w.message), w.category) for w in caught], collect.records)
                caught.clear()
                collect.records = []
                try:
                    conn.send((kind, payload, notes))  # pickled whole before a byte is written
                except (pickle.PicklingError, TypeError, AttributeError):
                    # a warning category or an error attribute that does not pickle: send them as text
                    plain = ([(message, UserWarning) for message, _ in notes[0]], notes[1])
                    conn.send((kind, _portable(path, payload) if kind == "error" else payload, plain))

            try:
                work(send)
            except BiomedError as exc:
                send("error", exc)
            except MemoryError:
                send("error", _out_of_memory(path, None))
            except Exception as exc:  # OSError (retried when transient) or a bug: raised in the parent
                send("error", _portable(path, exc))
    except BaseException as exc:  # the parent went away (broken pipe) or a signal: try to tell it
        code = 1
        with contextlib.suppress(BaseException):
            text = "".join(traceback.format_exception(exc))
            conn.send(("error", RuntimeError(f"{path}: the reader's process failed:\n{text}"), ([], [])))
    finally:
        os._exit(code)


def _virtual_size() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmSize in /proc/self/status")


def _portable(path: Path, exc: Exception) -> Exception:
    """`exc` with the child's traceback as a note, when it survives pickling (so an OSError stays
    an OSError, which the task's retry policy looks at); else a RuntimeError carrying that text."""
    text = "".join(traceback.format_exception(exc))
    try:
        exc.add_note(f"raised in the child process reading {path}:\n{text}")
        copy = pickle.loads(pickle.dumps(exc))
        if type(copy) is type(exc) and str(copy) == str(exc):
            return exc
    except Exception:
        pass
    if rebuilt := _rebuilt_input_error(exc):
        return rebuilt
    return RuntimeError(f"{path}: the {type(exc).__name__} below was raised in the reader's process\n{text}")


def _rebuilt_input_error(exc: Exception) -> Exception | None:
    """An InputError made anew from the class of that name in `corpora.errors` as imported now:
    pickle refuses an exception whose class is not the module's current attribute (a module
    imported twice in one process, as a long test session can do)."""
    import corpora.errors

    fields = [getattr(exc, name, None) for name in ("path", "reason", "line", "record")]
    cls = getattr(corpora.errors, type(exc).__name__, None)
    if not isinstance(fields[0], str) or not isinstance(fields[1], str) or not isinstance(cls, type):
        return None
    try:
        rebuilt = cls(fields[0], fields[1], line=fields[2], record=fields[3])
        pickle.dumps(rebuilt)
    except Exception:
        return None
    return rebuilt


def _replay(notes: tuple[list, list]) -> None:
    caught, records = notes
    for message, category in caught:
        warnings.warn(message, category, stacklevel=4)
    for name, level, message in records:
        logging.getLogger(name).log(level, "%s", message)


__all__ = ["ISOLATED_FORMATS", "isolate_native_formats", "needs_isolation", "read_records", "run_in_child"]
