"""Process-level parallel preprocessing over plain values, in document order.

Why not spaCy's `n_process`: it pickles `Doc`s back to the parent, and scispaCy's abbreviation
detector stores `Span`s in `doc._`, which do not pickle. Here each worker builds the pipeline once
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

    `nlp`, when given, must be `build_pipeline(spacy_model)`: the calling process uses it for the
    chunks it annotates while the workers start.
    """
    from corpora.preprocess import annotate_tasks, apply_result, document_task, pipeline_fingerprint

    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if docs_per_chunk < 1:
        raise ConfigError(f"docs_per_chunk must be at least 1, got {docs_per_chunk}")
    expected = pipeline_fingerprint(nlp)["hash"] if nlp is not None else None
    ctx = multiprocessing.get_context(start_method or _default_start_method())
    items = iter(docs)
    # Each entry: (chunk of items, Future of its results, or the results computed here).
    pending: deque[tuple[list, Future | list]] = deque()
    warmed_up = False
    executor = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(spacy_model, batch_size))
    try:
        exhausted = False
        while True:
            in_flight = sum(1 for _, r in pending if isinstance(r, Future))
            while not exhausted and in_flight < 2 * workers:
                chunk = list(islice(items, docs_per_chunk))
                if not chunk:
                    exhausted = True
                    break
                tasks = [document_task(d) for d in chunk if isinstance(d, Document)]
                pending.append((chunk, executor.submit(_work, tasks)))
                in_flight += 1
            if not pending:
                break
            chunk, result = pending[0]
            if isinstance(result, Future) and not warmed_up:
                warmed_up = result.done()
                if not warmed_up and nlp is not None and not exhausted:
                    # Workers still starting: annotate the next chunk here rather than wait.
                    local = list(islice(items, docs_per_chunk))
                    if local:
                        tasks = [document_task(d) for d in local if isinstance(d, Document)]
                        pending.append((local, annotate_tasks(nlp, tasks, batch_size)))
                    else:
                        exhausted = True
                    continue
            pending.popleft()
            if isinstance(result, Future):
                fingerprint, results = result.result()
                if expected is not None and fingerprint != expected:
                    raise ConfigError(f"worker pipeline fingerprint {fingerprint} differs from the caller's {expected}")
            else:
                results = result
            it = iter(results)
            for item in chunk:
                if isinstance(item, Document):
                    apply_result(item, next(it))
                yield item
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _default_start_method() -> str:
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def _init_worker(spacy_model: str | None, batch_size: int) -> None:
    """Build the pipeline once per worker process."""
    if spacy_model is None and "torch" not in sys.modules:
        # thinc imports torch when it can (seconds per process); the rule-based pipeline never uses it.
        sys.modules["torch"] = None  # type: ignore[assignment]
    from corpora.preprocess import build_pipeline, pipeline_fingerprint

    nlp = build_pipeline(spacy_model)
    _WORKER.update(nlp=nlp, batch_size=batch_size, fingerprint=pipeline_fingerprint(nlp)["hash"])


def _work(tasks: list) -> tuple[str, list]:
    """Annotate one chunk in a worker: plain tuples in, plain offset lists out."""
    from corpora.preprocess import annotate_tasks

    return _WORKER["fingerprint"], annotate_tasks(_WORKER["nlp"], tasks, _WORKER["batch_size"])
