"""Preprocess one shard of a dataset into the same-named shard of another dataset.

The library step behind the Prefect `preprocess` flow. A shard is redone only when its input bytes,
the code, or the pipeline's fingerprint (components and versions) changed. With `workers > 1`
the shards of a run share one pool of worker processes (`shared_pool`): starting one costs a
couple of CPU seconds, which a dataset of hundreds of shards would otherwise pay per shard.

Tested in `tests/pipelines/flows/test_preprocess.py`.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from corpora.dataset.derived_shards import new_entry, sync_removals
from corpora.dataset.shard_report import ShardReport, report_if_current
from corpora.dataset.store import DatasetStore, open_dataset
from corpora.dataset.versioning import code_version
from corpora.formats.textio import sha256_file
from corpora.preprocess.documents import preprocess_documents
from corpora.preprocess.pipeline import build_pipeline, pipeline_fingerprint
from corpora.preprocess.pool import PreprocessPool

if TYPE_CHECKING:
    from spacy.language import Language

log = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def cached_pipeline(spacy_model: str | None = None) -> Language:
    """One pipeline per process and model name (building it takes seconds)."""
    return build_pipeline(spacy_model)


_POOLS: dict[tuple[str | None, int], tuple[PreprocessPool, threading.Lock]] = {}
_POOLS_LOCK = threading.Lock()


@contextmanager
def shared_pool(spacy_model: str | None, processes: int) -> Iterator[PreprocessPool]:
    """A started `PreprocessPool` of `processes` workers for `spacy_model`, kept for the next caller.

    One pool per (model, size) per process, lent to one caller at a time; a caller that finds it
    lent out (another thread) gets a private pool for the call. A pool whose use raised is closed
    and forgotten, so a retry starts a fresh one. `close_shared_pools` (also run at exit) stops them.
    """
    key = (spacy_model, processes)
    with _POOLS_LOCK:
        if key not in _POOLS:
            _POOLS[key] = (PreprocessPool(spacy_model, processes, expected=_fingerprint(spacy_model)), threading.Lock())
        pool, lent = _POOLS[key]
    if not lent.acquire(blocking=False):
        with PreprocessPool(spacy_model, processes, expected=_fingerprint(spacy_model)) as private:
            yield private
        return
    try:
        yield pool
    except BaseException:
        with _POOLS_LOCK:
            if _POOLS.get(key, (None,))[0] is pool:
                del _POOLS[key]
        pool.close()
        raise
    finally:
        lent.release()


def close_shared_pools() -> None:
    """Stop every pool `shared_pool` started (their worker processes exit)."""
    with _POOLS_LOCK:
        pools = [pool for pool, _ in _POOLS.values()]
        _POOLS.clear()
    for pool in pools:
        pool.close()


atexit.register(close_shared_pools)


def _fingerprint(spacy_model: str | None) -> str:
    return pipeline_fingerprint(cached_pipeline(spacy_model))["hash"]


def preprocess_producer(spacy_model: str | None = None) -> dict:
    """What the manifest records as the producer of a preprocessed shard."""
    return {"preprocess": pipeline_fingerprint(cached_pipeline(spacy_model))}


def unchanged_shards(dataset: str | Path, out: str | Path, spacy_model: str | None = None) -> list[str] | None:
    """The shard names when `out` already holds every shard of `dataset` as `preprocess_shard` would
    write it (same input bytes, code and pipeline fingerprint), no shard to remove, and a finished
    run's manifest; None when there is work to do. Builds the pipeline (for its fingerprint) but
    starts no flow and no worker."""
    source, target = open_dataset(dataset), DatasetStore(out)
    if not target.manifest_path.is_file():
        return None
    shards = source.shard_names()
    if set(target.shard_names()) - set(shards):
        return None  # shards whose input is gone: the flow removes them
    version = code_version()
    producer = preprocess_producer(spacy_model)
    for shard in shards:
        if not target.is_current(shard, sha256_file(source.shard_path(shard)), version, producer):
            return None
    return shards


def preprocess_shard(
    dataset: str | Path,
    shard: str,
    out: str | Path,
    spacy_model: str | None = None,
    workers: int = 1,
    force: bool = False,
) -> ShardReport:
    source = open_dataset(dataset)
    src_path = source.shard_path(shard)
    sha = sha256_file(src_path)
    producer = preprocess_producer(spacy_model)
    version = code_version()
    target = DatasetStore(out)
    if not force and (skipped := report_if_current(target, shard, str(src_path), sha, version, producer)):
        return skipped
    if not force and (synced := sync_removals(source, target, shard, sha, version, producer)):
        return synced
    entry = new_entry(source, shard, sha, version, producer)
    nlp = cached_pipeline(spacy_model)
    if workers > 1:
        with shared_pool(spacy_model, workers) as pool:
            written = target.write_shard(
                shard, preprocess_documents(source.iter_documents(shard), nlp, pool=pool), entry
            )
    else:
        written = target.write_shard(
            shard, preprocess_documents(source.iter_documents(shard), nlp, workers=workers), entry
        )
    log.info("%s: preprocessed %d documents -> %s", src_path, written.rows, Path(out) / "data" / f"{shard}.parquet")
    return ShardReport.from_entry(str(src_path), written, "written")
