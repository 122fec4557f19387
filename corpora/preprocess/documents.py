"""`preprocess_documents`: sentences, tokens and abbreviations for a stream of Documents.

The public entry point of preprocessing, on top of the pipeline (`corpora.preprocess.pipeline`),
chunk annotation (`corpora.preprocess.chunks`) and the worker pool (`corpora.preprocess.pool`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TYPE_CHECKING

from corpora.errors import ConfigError
from corpora.preprocess.chunks import DEFAULT_BATCH_SIZE, annotate_tasks, apply_results
from corpora.preprocess.passages import document_task
from corpora.preprocess.pipeline import pipeline_spec
from corpora.preprocess.pool import PreprocessPool
from corpora.schema import Deletion, Document

if TYPE_CHECKING:
    from spacy.language import Language

DOCS_PER_CHUNK = 32


def preprocess_documents(
    docs: Iterable[Document | Deletion],
    nlp: Language,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int = 1,
    docs_per_chunk: int = DOCS_PER_CHUNK,
    pool: PreprocessPool | None = None,
) -> Iterator[Document | Deletion]:
    """Add `sentences`, `tokens` and `abbreviations` to each Document (in place) and yield it.

    Order is kept; `Deletion`s pass through untouched. With `workers > 1`, `workers` processes
    annotate: this one and `workers - 1` pool processes that each rebuild `nlp` from its spec
    (`corpora.preprocess.pool`); the output is identical. A started pool costs seconds, so
    callers with many inputs can pass one `pool` (`PreprocessPool(spec, workers - 1, nlp=nlp)`)
    for all of them instead (`workers` is then ignored). Warnings about skipped or split
    passages are logged here, in the calling process.
    """
    if pool is not None:
        yield from pool.preprocess(docs)
        return
    if workers > 1:
        spec = pipeline_spec(nlp)
        yield from preprocess_parallel(
            docs, spec, workers, batch_size=batch_size, docs_per_chunk=docs_per_chunk, nlp=nlp
        )
        return
    items = iter(docs)
    while chunk := list(islice(items, docs_per_chunk)):
        tasks = [document_task(d) for d in chunk if isinstance(d, Document)]
        apply_results(chunk, annotate_tasks(nlp, tasks, batch_size))
        yield from chunk


def preprocess_parallel(
    docs: Iterable[Document | Deletion],
    spacy_model: str | None,
    workers: int,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    docs_per_chunk: int = DOCS_PER_CHUNK,
    nlp: Language | None = None,
    start_method: str | None = None,
) -> Iterator[Document | Deletion]:
    """`corpora.preprocess.documents.preprocess_documents` over `workers` processes; same output, same order.

    With `nlp` (the caller's `build_pipeline(spacy_model)`) the calling process is one of the
    `workers`, beside `workers - 1` pool processes; without it, all `workers` are pool processes.
    Starts a pool for this call only; keep a `PreprocessPool` open to reuse one across inputs.
    """
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    processes = workers - 1 if nlp is not None else workers
    if processes == 0:
        yield from preprocess_documents(docs, nlp, batch_size=batch_size, docs_per_chunk=docs_per_chunk)
        return
    with PreprocessPool(
        spacy_model, processes, batch_size=batch_size, docs_per_chunk=docs_per_chunk, nlp=nlp, start_method=start_method
    ) as pool:
        yield from pool.preprocess(docs)
