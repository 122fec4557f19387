"""Process-level parallel preprocessing over plain values, in document order.

Why not spaCy's `n_process`: it serializes `Doc`s back to the parent, and scispaCy's abbreviation
detector stores `Span`s in `doc._`, which do not serialize (checked with spaCy 3.8 / scispaCy
0.6.2: `nlp.pipe(texts, n_process=2)` fails with E871, "can not serialize 'spacy.tokens.span.Span'
object"). Here each worker builds the pipeline once
(in its initializer) and exchanges only what `corpora.preprocess.annotate_tasks` takes and returns:
passage texts out, offset lists back. Documents stay in the calling process and are annotated
there, so the output is identical to the single-process path.

Chunks of `docs_per_chunk` documents (~40 kB of text, ~100 ms of work at 32 abstracts) keep IPC
small relative to work; at most `2 * workers` chunks are in flight, so memory stays flat on
inputs of any size, and a worker that dies raises BrokenProcessPool instead of hanging.

Workers are started with `forkserver` (fork from a clean server process: safe with threads in the
caller) or `spawn`. Starting them costs seconds (importing spaCy, compiling the tokenizer's
rules); until the first chunk comes back, the calling process annotates chunks itself with its
own pipeline, so that time is not lost.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import islice
from typing import TYPE_CHECKING, Any

from corpora.errors import ConfigError
from corpora.schema import Deletion, Document

if TYPE_CHECKING:
    from spacy.language import Language

_WORKER: dict[str, Any] = {}  # the worker process's pipeline and settings


def preprocess_parallel(
    docs: Iterable[Document | Deletion],
    spacy_model: str | None,
    workers: int,
    *,
    batch_size: int = 64,
    docs_per_chunk: int = 32,
    nlp: Language | None = None,
    start_method: str | None = None,
) -> Iterator[Document | Deletion]:
    """`corpora.preprocess.preprocess_documents` over `workers` processes; same output, same order.

    Starts a pool for this call only; keep a `PreprocessPool` open to reuse one across inputs.
    """
    with PreprocessPool(
        spacy_model, workers, batch_size=batch_size, docs_per_chunk=docs_per_chunk, nlp=nlp, start_method=start_method
    ) as pool:
        yield from pool.preprocess(docs)


class PreprocessPool:
    """Worker processes that each hold `build_pipeline(spacy_model)`, reusable across inputs.

    `nlp`, when given, must be `build_pipeline(spacy_model)` in the calling process: it annotates
    chunks there until the first worker answers, and its fingerprint is checked against the
    workers'. `chunks_in_workers` and `chunks_in_caller` count where chunks ran.
    """

    def __init__(
        self,
        spacy_model: str | None,
        workers: int,
        *,
        batch_size: int = 64,
        docs_per_chunk: int = 32,
        nlp: Language | None = None,
        start_method: str | None = None,
    ) -> None:
        from corpora.preprocess import pipeline_fingerprint

        if workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {workers}")
        if docs_per_chunk < 1:
            raise ConfigError(f"docs_per_chunk must be at least 1, got {docs_per_chunk}")
        self.workers = workers
        self.spacy_model = spacy_model
        self.batch_size = batch_size
        self.docs_per_chunk = docs_per_chunk
        self.nlp = nlp
        self.expected = pipeline_fingerprint(nlp)["hash"] if nlp is not None else None
        self.ready = False  # a worker has answered: the caller stops annotating chunks itself
        self.chunks_in_workers = 0
        self.chunks_in_caller = 0
        ctx = multiprocessing.get_context(start_method or _default_start_method())
        self._executor = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(spacy_model, batch_size))

    def __enter__(self) -> PreprocessPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the workers started so far (for monitoring: CPU, memory)."""
        return sorted((self._executor._processes or {}).keys())

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def preprocess(self, docs: Iterable[Document | Deletion]) -> Iterator[Document | Deletion]:
        """Annotate `docs` in place and yield them in order (Deletions pass through)."""
        from corpora.preprocess import annotate_tasks, apply_results, document_task

        items = iter(docs)
        # Each entry: (chunk of items, Future of its results, or results computed here), in order.
        pending: deque[tuple[list, Future | list]] = deque()
        exhausted = False
        in_flight = 0
        while True:
            while not exhausted and in_flight < 2 * self.workers:
                chunk = list(islice(items, self.docs_per_chunk))
                if not chunk:
                    exhausted = True
                    break
                tasks = [document_task(d) for d in chunk if isinstance(d, Document)]
                pending.append((chunk, self._executor.submit(_work, tasks)))
                in_flight += 1
                self.chunks_in_workers += 1
            if not pending:
                return
            chunk, result = pending[0]
            if isinstance(result, Future):
                self.ready = self.ready or result.done()
                if not self.ready and self.nlp is not None and not exhausted:
                    # Workers still starting: annotate the next chunk here rather than wait.
                    local = list(islice(items, self.docs_per_chunk))
                    if local:
                        tasks = [document_task(d) for d in local if isinstance(d, Document)]
                        pending.append((local, annotate_tasks(self.nlp, tasks, self.batch_size)))
                        self.chunks_in_caller += 1
                    else:
                        exhausted = True
                    continue
                try:
                    fingerprint, results = result.result()
                except BrokenProcessPool as exc:
                    exc.add_note(
                        f"preprocessing worker (pipeline {self.spacy_model or 'blank:en'}) died: killed (out of memory?) "
                        "or failed while building its pipeline"
                    )
                    raise
                self.ready = True
                in_flight -= 1
                if self.expected is not None and fingerprint != self.expected:
                    raise ConfigError(f"worker pipeline fingerprint {fingerprint} differs from the caller's {self.expected}")
            else:
                results = result
            pending.popleft()
            apply_results(chunk, results)
            yield from chunk


def _default_start_method() -> str:
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def _init_worker(spacy_model: str | None, batch_size: int) -> None:
    """Build the pipeline once per worker process."""
    block_torch = spacy_model is None and "torch" not in sys.modules
    if block_torch:
        # thinc imports torch when it can (seconds per process); the rule-based pipeline never uses
        # it, so hide it while spaCy is imported (this worker process only), then unhide it.
        sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        from corpora.preprocess import build_pipeline, pipeline_fingerprint
    finally:
        if block_torch:
            del sys.modules["torch"]

    nlp = build_pipeline(spacy_model)
    _WORKER.update(nlp=nlp, batch_size=batch_size, fingerprint=pipeline_fingerprint(nlp)["hash"])


def _work(tasks: list) -> tuple[str, list]:
    """Annotate one chunk in a worker: plain tuples in, plain offset lists out."""
    from corpora.preprocess import annotate_tasks

    return _WORKER["fingerprint"], annotate_tasks(_WORKER["nlp"], tasks, _WORKER["batch_size"])
