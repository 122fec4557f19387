"""Process-level parallel preprocessing over plain values, in document order.

Why not spaCy's `n_process`: it serializes `Doc`s back to the parent, and scispaCy's abbreviation
detector stores `Span`s in `doc._`, which do not serialize (checked with spaCy 3.8 / scispaCy
0.6.2: `nlp.pipe(texts, n_process=2)` fails with E871, "can not serialize
'spacy.tokens.span.Span' object"). Here each worker process builds the pipeline once and exchanges
only what `corpora.preprocess.chunks.annotate_tasks` takes and returns: passage texts out, offset arrays
back (`corpora.preprocess.worker` has the worker side and why it is not a ProcessPoolExecutor).
Documents stay in the calling process and are annotated there, so the output is identical to the
single-process path.

`--workers N` means N processes annotate: the calling process, which already holds the pipeline,
and N - 1 pool processes. Each pool process keeps a backlog of `IN_FLIGHT_PER_PROCESS` chunks of
`docs_per_chunk` documents (~40 kB of text and ~70 ms of work per 32 abstracts); the caller
annotates the next chunk itself whenever the oldest pool chunk is not back yet, and holds at most
`MAX_CALLER_AHEAD` such chunks, so memory stays flat on inputs of any size. Pool processes start
with `forkserver` (fork from a clean server process: safe with threads in the caller) or `spawn`;
starting one costs a couple of CPU seconds (importing spaCy, compiling the tokenizer's rules),
during which the caller annotates alone. A worker that dies raises `WorkerError` instead of
hanging; an exception inside a worker is raised again in the caller with the worker's traceback.
"""

from __future__ import annotations

import multiprocessing
import pickle
import time
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import islice
from multiprocessing.connection import wait
from typing import TYPE_CHECKING, Any

from corpora.errors import ConfigError, WorkerError
from corpora.preprocess.chunks import DEFAULT_BATCH_SIZE, annotate_tasks, apply_results
from corpora.preprocess.passages import document_task
from corpora.preprocess.pipeline import pipeline_fingerprint
from corpora.preprocess.worker import enlarge_pipe, serve
from corpora.schema import Deletion, Document

if TYPE_CHECKING:
    from spacy.language import Language


class _Worker:
    """One pool process and the calling process's ends of its two pipes."""

    def __init__(self, ctx: Any, spacy_model: str | None, batch_size: int, index: int) -> None:
        tasks_in, self.tasks = ctx.Pipe(duplex=False)
        self.results, results_out = ctx.Pipe(duplex=False)
        enlarge_pipe(self.tasks)
        enlarge_pipe(self.results)
        self.process = ctx.Process(
            target=serve,
            args=(tasks_in, results_out, spacy_model, batch_size),
            name=f"preprocess-worker-{index}",
            daemon=True,
        )
        self.process.start()
        tasks_in.close()  # the worker holds these ends now
        results_out.close()
        self.ready = False
        self.outstanding: deque[int] = deque()  # chunks sent and not answered, oldest first
        self.answers: dict[int, list] = {}
        self.abandoned: set[int] = set()  # chunks of a `preprocess` call that stopped early

    def send(self, seq: int, tasks: list) -> None:
        self._write((seq, tasks))
        self.outstanding.append(seq)

    def cancel(self, seq: int) -> None:
        """Ask the worker to skip chunk `seq` (if it has not started it); its answer is dropped."""
        self._write(("cancel", seq))
        self.abandoned.add(seq)

    def _write(self, message: tuple) -> None:
        try:
            self.tasks.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError as exc:  # a broken pipe: the process is gone
            self.process.join(timeout=5)
            raise WorkerError(
                f"preprocessing worker {self.process.name} died with exit code {self.process.exitcode} (killed: out of "
                f"memory?); {len(self.outstanding)} chunks were lost"
            ) from exc


class PreprocessPool:
    """`processes` worker processes that each hold `build_pipeline(spacy_model)`, reusable.

    `nlp`, when given, must be `build_pipeline(spacy_model)` in the calling process (its
    fingerprint is checked against the workers'): the caller then annotates a chunk itself
    whenever the oldest chunk is not back from the pool yet, so it works while the workers start
    and, once every chunk is handed out, takes back chunks a worker has not started instead of
    waiting for its backlog. `chunks_in_workers` and `chunks_in_caller` count where chunks ran.
    """

    # Chunks the caller may hold ahead of the oldest unfinished pool chunk (bounds memory when a
    # worker is slow to start or to answer).
    MAX_CALLER_AHEAD = 64
    # Chunks queued per pool process: enough work (~0.3 s) that the worker keeps annotating while
    # the caller is busy with a chunk of its own or a garbage collection.
    IN_FLIGHT_PER_PROCESS = 4
    # How long `close` lets workers finish what they hold before terminating them.
    CLOSE_TIMEOUT_S = 30.0

    def __init__(
        self,
        spacy_model: str | None,
        processes: int,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        docs_per_chunk: int = 32,
        nlp: Language | None = None,
        start_method: str | None = None,
    ) -> None:
        if processes < 1:
            raise ConfigError(f"a preprocessing pool needs at least 1 process, got {processes}")
        if docs_per_chunk < 1:
            raise ConfigError(f"docs_per_chunk must be at least 1, got {docs_per_chunk}")
        if multiprocessing.current_process().daemon:
            raise ConfigError(
                f"--workers {processes + 1}: this process is a daemon (a Dask or multiprocessing worker) and may not start "
                "worker processes; use --workers 1 there and let the task runner spread shards over processes"
            )
        self.processes = processes
        self.spacy_model = spacy_model
        self.batch_size = batch_size
        self.docs_per_chunk = docs_per_chunk
        self.nlp = nlp
        self.expected = pipeline_fingerprint(nlp)["hash"] if nlp is not None else None
        self.chunks_in_workers = 0
        self.chunks_in_caller = 0
        self.chunks_taken_back = 0  # sent to a worker, then annotated by the caller at the end of a run
        self._seq = 0
        self._closed = False
        ctx = multiprocessing.get_context(start_method or _default_start_method())
        self._workers: list[_Worker] = []
        try:
            for i in range(processes):
                self._workers.append(_Worker(ctx, spacy_model, batch_size, i))
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> PreprocessPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the workers (for monitoring: CPU, memory)."""
        return sorted(w.process.pid for w in self._workers if w.process.pid is not None)

    def close(self) -> None:
        """Stop the workers: they drop chunks not started yet, finish the current one and exit."""
        if self._closed:
            return
        self._closed = True
        for w in self._workers:
            try:
                w.tasks.send_bytes(pickle.dumps(None))
            except OSError:
                pass  # already gone
            w.tasks.close()
        deadline = time.monotonic() + self.CLOSE_TIMEOUT_S
        for w in self._workers:
            while w.process.is_alive() and (left := deadline - time.monotonic()) > 0:
                if w.results in wait([w.results, w.process.sentinel], timeout=left):
                    try:
                        w.results.recv_bytes()  # drain, so a worker blocked writing can finish
                    except (EOFError, OSError):
                        break
            w.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.terminate()
                w.process.join()
            w.results.close()

    def preprocess(
        self, docs: Iterable[Document | Deletion], *, caller_helps: bool = True
    ) -> Iterator[Document | Deletion]:
        """Annotate `docs` in place and yield them in order (Deletions pass through).

        `caller_helps=False` keeps the calling process out of the annotation even when the pool
        has its pipeline (all chunks go to the workers).
        """
        if self._closed:
            raise ConfigError("this PreprocessPool is closed")
        helps = caller_helps and self.nlp is not None
        # Each entry: (chunk of items, the worker annotating it or None, its seq or its results).
        pending: deque[tuple[list, _Worker | None, Any]] = deque()
        try:
            yield from self._run(iter(docs), pending, helps)
        finally:
            for _, w, seq in pending:  # left behind by a caller that stopped iterating (or an error)
                if w is not None:
                    w.answers.pop(seq, None)
                    if seq in w.outstanding:
                        w.abandoned.add(seq)

    def _run(self, items: Iterator, pending: deque, helps: bool) -> Iterator[Document | Deletion]:
        exhausted = False
        ahead = 0
        while True:
            for w in self._workers:
                while not exhausted and w.ready and len(w.outstanding) < self.IN_FLIGHT_PER_PROCESS:
                    chunk = list(islice(items, self.docs_per_chunk))
                    if not chunk:
                        exhausted = True
                        break
                    self._seq += 1
                    w.send(self._seq, [document_task(d) for d in chunk if isinstance(d, Document)])
                    pending.append((chunk, w, self._seq))
                    self.chunks_in_workers += 1
                self._collect(w, block=False)
            if not pending:
                if exhausted:
                    return
                if not helps:
                    self._wait_for_any()  # nothing to do until a worker is ready
                    continue
            chunk, worker, ref = pending[0] if pending else (None, None, None)
            if worker is not None and ref in worker.answers:
                results = worker.answers.pop(ref)
            elif worker is None and chunk is not None:
                results = ref
                ahead -= 1
            elif helps and not exhausted and ahead < self.MAX_CALLER_AHEAD:
                # The oldest pool chunk is not back (or no worker is ready yet): annotate one here.
                local = list(islice(items, self.docs_per_chunk))
                if local:
                    tasks = [document_task(d) for d in local if isinstance(d, Document)]
                    pending.append((local, None, annotate_tasks(self.nlp, tasks, self.batch_size)))
                    self.chunks_in_caller += 1
                    ahead += 1
                else:
                    exhausted = True
                continue
            elif helps and exhausted and (stolen := self._steal(pending)) is not None:
                # Nothing left to hand out and the caller would wait: take back a chunk the worker
                # has probably not started, so the run does not end on one process's backlog.
                i, chunk = stolen
                tasks = [document_task(d) for d in chunk if isinstance(d, Document)]
                pending[i] = (chunk, None, annotate_tasks(self.nlp, tasks, self.batch_size))
                self.chunks_in_caller += 1
                self.chunks_in_workers -= 1
                self.chunks_taken_back += 1
                ahead += 1
                continue
            else:
                self._collect(worker, block=True)
                continue
            pending.popleft()
            apply_results(chunk, results)
            yield from chunk

    @staticmethod
    def _steal(pending: deque) -> tuple[int, list] | None:
        """The newest pending pool chunk that its worker has not answered and is not working on
        (its oldest outstanding chunk), cancelled there; None when there is none."""
        for i in range(len(pending) - 1, 0, -1):
            chunk, w, seq = pending[i]
            if w is not None and seq not in w.answers and seq in w.outstanding and w.outstanding[0] != seq:
                w.cancel(seq)
                return i, chunk
        return None

    def wait_ready(self) -> PreprocessPool:
        """Block until every worker has built its pipeline (raises what a worker raised doing so)."""
        for w in self._workers:
            while not w.ready:
                self._collect(w, block=True)
        return self

    def _wait_for_any(self) -> None:
        ready = wait([w.results for w in self._workers] + [w.process.sentinel for w in self._workers])
        for w in self._workers:
            if w.results in ready or w.process.sentinel in ready:
                self._collect(w, block=True)

    def _collect(self, w: _Worker, *, block: bool) -> None:
        """Read every answer `w` has sent; with `block`, wait for at least one (or its death)."""
        while True:
            if not w.results.poll():
                if not block:
                    return
                if w.results not in wait([w.results, w.process.sentinel]):
                    raise WorkerError(
                        f"preprocessing worker {w.process.name} (pipeline {self.spacy_model or 'blank:en'}) died with exit "
                        f"code {w.process.exitcode}: killed (out of memory?) or crashed; {len(w.outstanding)} chunks were lost"
                    )
            try:
                message = pickle.loads(w.results.recv_bytes())
            except (EOFError, OSError) as exc:
                w.process.join(timeout=5)
                if not w.ready:
                    raise WorkerError(
                        f"preprocessing worker {w.process.name} exited while starting (exit code {w.process.exitcode}); "
                        "its traceback is printed above. A common cause: the main program was read from stdin, "
                        "which a new process cannot import again; run it from a file, or use workers=1"
                    ) from exc
                raise WorkerError(
                    f"preprocessing worker {w.process.name} closed its pipe (exit code {w.process.exitcode}) with "
                    f"{len(w.outstanding)} chunks unanswered"
                ) from exc
            self._accept(w, message)
            block = False

    def _accept(self, w: _Worker, message: tuple) -> None:
        kind = message[0]
        if kind == "ready":
            if self.expected is not None and message[1] != self.expected:
                raise ConfigError(f"worker pipeline fingerprint {message[1]} differs from the caller's {self.expected}")
            w.ready = True
            return
        seq = message[1]
        if seq >= 0:
            expected = w.outstanding.popleft()
            if seq != expected:
                raise WorkerError(f"preprocessing worker {w.process.name} answered chunk {seq}, expected {expected}")
            if seq in w.abandoned:
                w.abandoned.discard(seq)
                return  # nobody is waiting for it, not even for its failure
        if kind == "cancelled":
            raise WorkerError(f"preprocessing worker {w.process.name} skipped chunk {seq}, which was not cancelled")
        if kind == "done":
            w.answers[seq] = message[2]
        else:
            _, seq, exc, text = message
            where = "while building its pipeline" if seq < 0 else f"on chunk {seq}"
            exc.add_note(f"raised in preprocessing worker {w.process.name} {where}:\n{text}")
            raise exc


def _default_start_method() -> str:
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
