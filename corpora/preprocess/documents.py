"""`preprocess_documents`: sentences, tokens and abbreviations for a stream of Documents.

The public entry point of preprocessing, on top of the pipeline (`corpora.preprocess.pipeline`),
chunk annotation (`corpora.preprocess.chunks`) and the worker pool (`corpora.preprocess.pool`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TYPE_CHECKING

from corpora.errors import ConfigError
from corpora.preprocess.chunks import DEFAULT_BATCH_SIZE, DOCS_PER_CHUNK, annotate_tasks, apply_results
from corpora.preprocess.passages import document_task
from corpora.preprocess.pipeline import pipeline_fingerprint, pipeline_spec
from corpora.preprocess.pool import PreprocessPool
from corpora.schema import Deletion, Document

if TYPE_CHECKING:
    from spacy.language import Language


def preprocess_documents(
    docs: Iterable[Document | Deletion],
    nlp: Language,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int = 1,
    docs_per_chunk: int = DOCS_PER_CHUNK,
    pool: PreprocessPool | None = None,
) -> Iterator[Document | Deletion]:
    """Add `sentences`, `tokens` and `abbreviations` to each Document (in place) and yield it.

    Order is kept; `Deletion`s pass through untouched. With `workers > 1`, that many worker
    processes annotate, each rebuilding `nlp` from its spec (`corpora.preprocess.pool`), while this
    one applies their results; the output is identical. A started pool costs a second or two per
    process, so callers with many inputs can pass one `pool` (`PreprocessPool(spec, workers)`) for
    all of them instead (`workers` is then ignored). Warnings about skipped or split passages are
    logged here, in the calling process.
    """
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if pool is not None:
        yield from pool.preprocess(docs)
        return
    if workers > 1:
        expected = pipeline_fingerprint(nlp)["hash"]
        with PreprocessPool(
            pipeline_spec(nlp), workers, batch_size=batch_size, docs_per_chunk=docs_per_chunk, expected=expected
        ) as started:
            yield from started.preprocess(docs)
        return
    items = iter(docs)
    while chunk := list(islice(items, docs_per_chunk)):
        tasks = [document_task(d) for d in chunk if isinstance(d, Document)]
        apply_results(chunk, annotate_tasks(nlp, tasks, batch_size))
        yield from chunk
