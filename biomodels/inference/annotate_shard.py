"""Annotate one shard of a preprocessed dataset with the NER (and RE) models.

The library step behind the Prefect `annotate` flow. A shard is redone only when its input bytes,
the code, the models (by content hash) or the precision they run in changed, so a crashed run
resumes where it stopped and a rerun with the same models does no work. fp32 is not named in the
producer (datasets annotated before precision was a choice stay current); bf16 and fp16 are, since
their predictions differ slightly (about 0.2% of entities on BC5CDR dev with the shipped NER).

Tested in `tests/pipelines/flows/test_annotate.py`.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

from biomodels.inference.engine import AnnotationEngine
from corpora.dataset.derived_shards import new_entry, sync_removals
from corpora.dataset.shard_report import ShardReport, report_if_current
from corpora.dataset.store import DatasetStore, open_dataset
from corpora.dataset.versioning import code_version, source_hash
from corpora.formats.textio import sha256_file

log = logging.getLogger(__name__)


@lru_cache(maxsize=2)
def cached_engine(
    ner_dir: str, re_dir: str | None = None, compile: bool = False, precision: str = "auto"
) -> AnnotationEngine:
    """One engine per process and model pair (loading weights takes seconds; compiling, minutes)."""
    return AnnotationEngine(ner_dir, re_dir, precision=precision, compile=compile)


def annotate_code_version() -> str:
    return f"{code_version()}.bm{source_hash('biomodels')}"


def annotate_producer(ner_dir: str, re_dir: str | None = None, precision: str = "auto") -> dict:
    engine = cached_engine(ner_dir, re_dir, False, precision)  # positional: the same cache key as annotate_shard
    producer: dict = {"annotate": engine.annotators}
    if engine.precision != "fp32":
        producer["precision"] = engine.precision
    return producer


def unchanged_annotations(
    dataset: str | Path, out: str | Path, ner_dir: str, re_dir: str | None = None, precision: str = "auto"
) -> list[str] | None:
    """The shard names when `out` holds every shard of `dataset` as `annotate_shard` would write it
    with these models (same input bytes, code and model weights), none to remove, and a finished
    run's manifest; None when there is work to do. Loads the models (their hashes) but starts no flow."""
    source, target = open_dataset(dataset), DatasetStore(out)
    if not target.manifest_path.is_file():
        return None
    shards = source.shard_names()
    if set(target.shard_names()) - set(shards):
        return None
    version, producer = annotate_code_version(), annotate_producer(ner_dir, re_dir, precision)
    for shard in shards:
        if not target.is_current(shard, sha256_file(source.shard_path(shard)), version, producer):
            return None
    return shards


def annotate_shard(
    dataset: str | Path,
    shard: str,
    out: str | Path,
    ner_dir: str,
    re_dir: str | None = None,
    force: bool = False,
    compile: bool = False,
    precision: str = "auto",
) -> ShardReport:
    """Annotate one shard with the models (skipped when unchanged; `compile`: torch.compile the
    encoders; `precision`: auto, bf16 or fp32, see `biomodels.training.precision`)."""
    source = open_dataset(dataset)
    src_path = source.shard_path(shard)
    sha = sha256_file(src_path)
    producer = annotate_producer(ner_dir, re_dir, precision)
    version = annotate_code_version()
    target = DatasetStore(out)
    if not force and (skipped := report_if_current(target, shard, str(src_path), sha, version, producer)):
        return skipped
    if not force and (synced := sync_removals(source, target, shard, sha, version, producer)):
        return synced
    entry = new_entry(source, shard, sha, version, producer)
    engine = cached_engine(ner_dir, re_dir, compile, precision)
    written = target.write_shard(shard, engine.annotate(source.iter_documents(shard)), entry)
    log.info(
        "%s: annotated %d documents (%d entities, %d relations)",
        src_path,
        written.rows,
        written.entities,
        written.relations,
    )
    return ShardReport.from_entry(str(src_path), written, "written")
