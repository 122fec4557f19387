"""The worker side of parallel preprocessing: one process, one pipeline, chunks in, offsets out.

Why not `concurrent.futures.ProcessPoolExecutor`: it hands chunks to a worker through threads of
the calling process (a manager thread and a queue feeder) that need the GIL, while the calling
process annotates chunks of its own and, now and then, runs a full garbage collection over the
millions of `Span`s it holds. Measured on the bundled abstracts, its worker sat idle for 30% of
the run waiting for the next chunk (gaps of 50-100 ms per chunk, and of half a second during each
collection in the caller). Here the worker keeps its own backlog: a receiver thread reads chunks
from the pipe as soon as they arrive and a sender thread writes results back, so the annotating
thread never waits on the caller while the caller keeps a few chunks queued.

Protocol (pickled messages over two one-way pipes): the caller sends `(seq, tasks)`, possibly
`("cancel", seq)` for a chunk it has taken back, and finally `None`; the worker answers
`("ready", fingerprint)` once its pipeline is built, then per chunk, in order, `("done", seq,
results)`, `("failed", seq, exception, traceback text)` or `("cancelled", seq)` (a cancelled
chunk it had not started). A worker that cannot build its pipeline answers `("failed", -1, ...)`
and exits.
"""

from __future__ import annotations

import pickle
import queue
import sys
import threading
import traceback
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux/macOS
    fcntl = None  # type: ignore[assignment]

_F_SETPIPE_SZ = 1031  # Linux fcntl command (not exported by Python before 3.10 on every platform)
PIPE_BYTES = 1 << 20  # a chunk's texts (~40 kB) or offsets (~120 kB) fit whole in the pipe


def enlarge_pipe(conn: Any) -> None:
    """Best effort: grow the OS pipe behind `conn` so a whole message is written in one go.

    A 64 kB pipe makes the writer of a 120 kB message wait for the reader twice; either side may be
    busy for tens of milliseconds. Linux only; elsewhere (or above the system limit) a no-op.
    """
    if fcntl is None or not sys.platform.startswith("linux"):
        return
    try:
        fcntl.fcntl(conn.fileno(), _F_SETPIPE_SZ, PIPE_BYTES)
    except OSError:
        pass  # over /proc/sys/fs/pipe-max-size: keep the default size, which only costs speed


def serve(tasks_in: Any, results_out: Any, spacy_model: str | None, batch_size: int) -> None:
    """Process entry point: build the pipeline, then annotate chunks until told to stop."""
    try:
        nlp, fingerprint = _build(spacy_model)
    except BaseException as exc:  # reported to the caller, which raises it with this traceback
        results_out.send_bytes(_dump(("failed", -1, exc, traceback.format_exc())))
        return
    from corpora.preprocess.chunks import annotate_tasks

    inbox: queue.SimpleQueue = queue.SimpleQueue()
    outbox: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()
    cancelled: set[int] = set()
    receiver = threading.Thread(target=_receive, args=(tasks_in, inbox, stop, cancelled), daemon=True)
    sender = threading.Thread(target=_send, args=(results_out, outbox), daemon=True)
    receiver.start()
    sender.start()
    outbox.put(_dump(("ready", fingerprint)))
    while (message := inbox.get()) is not None:
        if stop.is_set():
            continue  # the caller has gone: drop what is left
        seq, tasks = message
        if seq in cancelled:
            cancelled.discard(seq)
            outbox.put(_dump(("cancelled", seq)))
            continue
        try:
            outbox.put(_dump(("done", seq, annotate_tasks(nlp, tasks, batch_size))))
        except BaseException as exc:
            outbox.put(_dump(("failed", seq, exc, traceback.format_exc())))
    outbox.put(None)
    sender.join()


def _build(spacy_model: str | None) -> tuple[Any, str]:
    block_torch = spacy_model is None and "torch" not in sys.modules
    if block_torch:
        # thinc imports torch when it can (seconds per process); the rule-based pipeline never uses
        # it, so hide it while spaCy is imported (this worker process only), then unhide it.
        sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        from corpora.preprocess.pipeline import build_pipeline, pipeline_fingerprint
    finally:
        if block_torch:
            del sys.modules["torch"]
    nlp = build_pipeline(spacy_model)
    return nlp, pipeline_fingerprint(nlp)["hash"]


def _receive(tasks_in: Any, inbox: queue.SimpleQueue, stop: threading.Event, cancelled: set[int]) -> None:
    """Move chunks from the pipe into `inbox` as they arrive and note cancellations; `None` (or a
    closed pipe) ends it."""
    while True:
        try:
            message = pickle.loads(tasks_in.recv_bytes())
        except (EOFError, OSError):
            message = None
        if message is None:
            stop.set()
            inbox.put(None)
            return
        if message[0] == "cancel":
            cancelled.add(message[1])
        else:
            inbox.put(message)


def _send(results_out: Any, outbox: queue.SimpleQueue) -> None:
    while (payload := outbox.get()) is not None:
        try:
            results_out.send_bytes(payload)
        except OSError:
            return  # the caller closed its end: nobody is listening any more


def _dump(message: tuple) -> bytes:
    """Pickle `message`; an exception that does not pickle travels as a RuntimeError with its text."""
    try:
        return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        if message[0] != "failed":
            # results are plain arrays, lists and strings: report the surprise as this chunk's failure
            return _dump(("failed", message[1], error, traceback.format_exc()))
        kind, seq, exc, text = message
        return pickle.dumps(
            (kind, seq, RuntimeError(f"{type(exc).__name__}: {exc}"), text), protocol=pickle.HIGHEST_PROTOCOL
        )
