"""Process-level parallel preprocessing over plain values, in document order.

Why not spaCy's `n_process`: it serializes `Doc`s back to the parent, and scispaCy's abbreviation
detector stores `Span`s in `doc._`, which do not serialize (checked with spaCy 3.8 / scispaCy
0.6.2: `nlp.pipe(texts, n_process=2)` fails with E871, "can not serialize
'spacy.tokens.span.Span' object"). Here each worker builds the pipeline once (in its initializer)
and exchanges only what `corpora.preprocess.annotate_tasks` takes and returns: passage texts out,
offset lists back. Documents stay in the calling process and are annotated there, so the output
is identical to the single-process path.

Chunks of `docs_per_chunk` documents (~40 kB of text, ~100 ms of work at 32 abstracts, ~40 kB of
offsets back) keep IPC small relative to work; at most two chunks per pool process are in flight
and the caller holds at most `MAX_CALLER_AHEAD` chunks, so memory stays flat on inputs of any
size; a worker that dies raises BrokenProcessPool instead of hanging.

`--workers N` means N processes annotate: the calling process, which already holds the pipeline,
and N - 1 pool processes. Pool processes start with `forkserver` (fork from a clean server
process: safe with threads in the caller) or `spawn`, and starting one costs a few CPU seconds
(importing spaCy, compiling the tokenizer's rules); the caller annotates chunks from the start and
whenever the oldest pool chunk is not back, so it neither waits for the start-up nor idles.
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

    With `nlp` (the caller's `build_pipeline(spacy_model)`) the calling process is one of the
    `workers`, beside `workers - 1` pool processes; without it, all `workers` are pool processes.
    Starts a pool for this call only; keep a `PreprocessPool` open to reuse one across inputs.
    """
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    processes = workers - 1 if nlp is not None else workers
    if processes == 0:
        from corpora.preprocess import preprocess_documents

        yield from preprocess_documents(docs, nlp, batch_size=batch_size, docs_per_chunk=docs_per_chunk)
        return
    with PreprocessPool(
        spacy_model, processes, batch_size=batch_size, docs_per_chunk=docs_per_chunk, nlp=nlp, start_method=start_method
    ) as pool:
        yield from pool.preprocess(docs)


class PreprocessPool:
    """`processes` worker processes that each hold `build_pipeline(spacy_model)`, reusable.

    `nlp`, when given, must be `build_pipeline(spacy_model)` in the calling process (its
    fingerprint is checked against the workers'): the caller then annotates a chunk itself
    whenever the oldest chunk is not back from the pool yet, so it works while the workers start
    and never idles. `chunks_in_workers` and `chunks_in_caller` count where chunks ran.
    """

    # Chunks the caller may hold ahead of the oldest unfinished pool chunk (bounds memory when a
    # worker is slow to start or to answer).
    MAX_CALLER_AHEAD = 64

    def __init__(
        self,
        spacy_model: str | None,
        processes: int,
        *,
        batch_size: int = 64,
        docs_per_chunk: int = 32,
        nlp: Language | None = None,
        start_method: str | None = None,
    ) -> None:
        from corpora.preprocess import pipeline_fingerprint

        if processes < 1:
            raise ConfigError(f"a preprocessing pool needs at least 1 process, got {processes}")
        if docs_per_chunk < 1:
            raise ConfigError(f"docs_per_chunk must be at least 1, got {docs_per_chunk}")
        self.processes = processes
        self.spacy_model = spacy_model
        self.batch_size = batch_size
        self.docs_per_chunk = docs_per_chunk
        self.nlp = nlp
        self.expected = pipeline_fingerprint(nlp)["hash"] if nlp is not None else None
        self.chunks_in_workers = 0
        self.chunks_in_caller = 0
        ctx = multiprocessing.get_context(start_method or _default_start_method())
        self._executor = ProcessPoolExecutor(processes, mp_context=ctx, initializer=_init_worker, initargs=(spacy_model, batch_size))

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

    def preprocess(self, docs: Iterable[Document | Deletion], *, caller_helps: bool = True) -> Iterator[Document | Deletion]:
        """Annotate `docs` in place and yield them in order (Deletions pass through).

        `caller_helps=False` keeps the calling process out of the annotation even when the pool
        has its pipeline (all chunks go to the workers).
        """
        from corpora.preprocess import annotate_tasks, apply_results, document_task

        helps = caller_helps and self.nlp is not None
        items = iter(docs)
        # Each entry: (chunk of items, Future of its results, or results computed here), in order.
        pending: deque[tuple[list, Future | list]] = deque()
        exhausted = False
        in_flight = ahead = 0
        while True:
            while not exhausted and in_flight < 2 * self.processes:
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
                if helps and not exhausted and ahead < self.MAX_CALLER_AHEAD and not result.done():
                    # The oldest pool chunk is not back: annotate the next chunk here meanwhile.
                    local = list(islice(items, self.docs_per_chunk))
                    if local:
                        tasks = [document_task(d) for d in local if isinstance(d, Document)]
                        pending.append((local, annotate_tasks(self.nlp, tasks, self.batch_size)))
                        self.chunks_in_caller += 1
                        ahead += 1
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
                in_flight -= 1
                if self.expected is not None and fingerprint != self.expected:
                    raise ConfigError(f"worker pipeline fingerprint {fingerprint} differs from the caller's {self.expected}")
            else:
                results = result
                ahead -= 1
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
