"""Worker processes for preprocessing: a `concurrent.futures.ProcessPoolExecutor`, reused across inputs.

Why not spaCy's `n_process`: it sends whole `Doc`s back to the parent (`Doc.to_bytes`), and
deserializing them there costs more than the annotation saves; measured on 30,000 abstracts it ran
9x slower than this (benchmarks/RESULTS.md, Preprocess). Here each worker builds the pipeline once
and exchanges only what `corpora.preprocess.chunks.annotate_tasks` takes and returns: passage texts
out, offset arrays back. Documents stay in the calling process, which applies each chunk's results
in order, so the output is identical to the single-process path.

A hand-made pool (caller annotating too, work stealing, its own pipes) was measured against this
plain one and a `multiprocessing.Pool.imap`; it did not win by the 15% its 500 lines needed
(benchmarks/RESULTS.md), so it went. The executor is kept over `multiprocessing.Pool` because a
killed worker breaks it (`BrokenProcessPool`, reported as `WorkerError`) instead of hanging.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import islice

from corpora.errors import ConfigError, WorkerError
from corpora.preprocess.chunks import DEFAULT_BATCH_SIZE, DOCS_PER_CHUNK, DocResult, apply_results
from corpora.preprocess.main_guard import check_main_guard
from corpora.preprocess.passages import DocTask, document_task
from corpora.preprocess.worker import annotate_chunk, start_worker
from corpora.schema import Deletion, Document

CHUNKS_IN_FLIGHT_PER_PROCESS = 4  # queued chunks per process: work to go on with, memory bounded


class PreprocessPool:
    """`processes` worker processes that each hold `build_pipeline(spacy_model)`, reusable.

    `expected` (the caller's `pipeline_fingerprint(nlp)["hash"]`), when given, must match the
    workers' pipelines. Use as a context manager, or call `close`.
    """

    def __init__(
        self,
        spacy_model: str | None,
        processes: int,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        docs_per_chunk: int = DOCS_PER_CHUNK,
        expected: str | None = None,
        start_method: str | None = None,
    ) -> None:
        if processes < 1:
            raise ConfigError(f"a preprocessing pool needs at least 1 process, got {processes}")
        if docs_per_chunk < 1:
            raise ConfigError(f"docs_per_chunk must be at least 1, got {docs_per_chunk}")
        if multiprocessing.current_process().daemon:
            raise ConfigError(
                f"--workers {processes}: this process is a daemon (a Dask or multiprocessing worker) and may not "
                "start worker processes; use --workers 1 there and let the task runner spread shards over processes"
            )
        self.processes = processes
        self.spacy_model = spacy_model
        self.docs_per_chunk = docs_per_chunk
        method = start_method or _default_start_method()
        check_main_guard(method, f"preprocessing with {processes} worker processes")
        ctx = multiprocessing.get_context(method)
        self._executor = ProcessPoolExecutor(
            processes, mp_context=ctx, initializer=start_worker, initargs=(spacy_model, batch_size, expected)
        )
        self._closed = False

    def __enter__(self) -> PreprocessPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (chunks not started are dropped)."""
        if not self._closed:
            self._closed = True
            self._executor.shutdown(wait=True, cancel_futures=True)

    def preprocess(self, docs: Iterable[Document | Deletion]) -> Iterator[Document | Deletion]:
        """Annotate `docs` in place and yield them in order (Deletions pass through)."""
        if self._closed:
            raise ConfigError("this PreprocessPool is closed")
        items = iter(docs)
        pending: deque[tuple[list, Future]] = deque()
        try:
            while True:
                while len(pending) < CHUNKS_IN_FLIGHT_PER_PROCESS * self.processes:
                    chunk = list(islice(items, self.docs_per_chunk))
                    if not chunk:
                        break
                    tasks = [document_task(d) for d in chunk if isinstance(d, Document)]
                    pending.append((chunk, self._submit(tasks)))
                if not pending:
                    return
                chunk, future = pending.popleft()
                apply_results(chunk, self._result(future))
                yield from chunk
        finally:
            for _, future in pending:  # a caller that stopped early, or an error: drop the rest
                future.cancel()

    def _submit(self, tasks: list[DocTask]) -> Future:
        try:
            return self._executor.submit(annotate_chunk, tasks)
        except BrokenProcessPool as exc:
            raise self._broken() from exc

    def _result(self, future: Future) -> list[DocResult]:
        try:
            return future.result()
        except BrokenProcessPool as exc:
            raise self._broken() from exc

    def _broken(self) -> WorkerError:
        self._closed = True
        return WorkerError(
            f"a preprocessing worker (pipeline {self.spacy_model or 'blank:en'}) died or could not start: killed "
            "(out of memory?), crashed, or failed building its pipeline (its traceback is printed above; a main "
            "program read from stdin cannot be started again in a worker: run it from a file, or use workers=1)"
        )


def _default_start_method() -> str:
    # forkserver: workers fork from a clean server process, safe with threads in the caller
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
