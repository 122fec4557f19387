"""Preprocess one shard of a dataset into the same-named shard of another dataset.

The library step behind the Prefect `preprocess` flow. A shard is redone only when its input bytes,
the code, or the pipeline's fingerprint (components and versions) changed.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from corpora.ingest import ShardReport, report_if_current
from corpora.manifest import ShardEntry
from corpora.store import DatasetStore, open_dataset
from corpora.textio import sha256_file
from corpora.versioning import code_version

if TYPE_CHECKING:
    from spacy.language import Language

log = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def cached_pipeline(spacy_model: str | None = None) -> "Language":
    """One pipeline per process and model name (building it takes seconds)."""
    from corpora.preprocess import build_pipeline

    return build_pipeline(spacy_model)


def preprocess_producer(spacy_model: str | None = None) -> dict:
    """What the manifest records as the producer of a preprocessed shard."""
    from corpora.preprocess import pipeline_fingerprint

    return {"preprocess": pipeline_fingerprint(cached_pipeline(spacy_model))}


def preprocess_shard(
    dataset: str | Path,
    shard: str,
    out: str | Path,
    spacy_model: str | None = None,
    workers: int = 1,
    force: bool = False,
) -> ShardReport:
    from corpora.preprocess import preprocess_documents

    source = open_dataset(dataset)
    src_path = source.shard_path(shard)
    sha = sha256_file(src_path)
    producer = preprocess_producer(spacy_model)
    version = code_version()
    target = DatasetStore(out)
    if not force and (skipped := report_if_current(target, shard, str(src_path), sha, version, producer)):
        return skipped
    entry = ShardEntry(shard=shard, source_path=str(src_path), source_sha256=sha, format="parquet", code_version=version, producer=producer)
    docs = preprocess_documents(source.iter_documents(shard), cached_pipeline(spacy_model), workers=workers)
    written = target.write_shard(shard, docs, entry)
    log.info("%s: preprocessed %d documents -> %s", src_path, written.rows, Path(out) / "data" / f"{shard}.parquet")
    return ShardReport.from_entry(str(src_path), written, "written")
