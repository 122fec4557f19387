"""Keep a derived shard (preprocessed, annotated) in step with its source shard cheaply.

Why: a MEDLINE update file removes citations from earlier baseline shards (deletions, newer
versions; `DatasetStore.reconcile`). That changes the source shard's bytes, and a derived shard
keyed on those bytes would be redone whole: preprocessing or annotating 30,000 citations to drop
a handful. A source shard changes in exactly two ways: a new write (`write_shard`, new `write_id`)
or removals (`remove_documents`, same `write_id`). So when the derived shard was made from the same
write of its source, by the same code and producer, the same removals are applied to it instead;
per-document steps give every remaining document the output it already has.

Tested in `tests/pipelines/flows/test_preprocess.py`.
"""

from __future__ import annotations

import logging

import pyarrow.parquet as pq

from corpora.dataset.manifest import ShardEntry, write_json_atomic
from corpora.dataset.shard_report import ShardReport
from corpora.dataset.store import DatasetStore

log = logging.getLogger(__name__)


def source_write_id(source: DatasetStore, shard: str) -> str:
    """The `write_id` of the source shard's current write ("" for shards written before it existed)."""
    entry = source.entry(shard)
    return entry.write_id if entry is not None else ""


def sync_removals(
    source: DatasetStore, target: DatasetStore, shard: str, source_sha256: str, code_version: str, producer: dict | None
) -> ShardReport | None:
    """Apply the source shard's removals to the derived shard, or return None when it must be redone.

    Redo (None) unless the derived shard exists, was made by the same code and producer from the
    same write of the source, and the source's documents are a subset of the derived shard's.
    Otherwise remove the documents the source no longer has, record the source's new content hash,
    and report the shard as "synced".
    """
    derived = target.entry(shard)
    write_id = source_write_id(source, shard)
    if (
        derived is None
        or not write_id
        or derived.source_write_id != write_id
        or derived.code_version != code_version
        or derived.producer != (producer or {})
    ):
        return None
    source_ids = _ids(source, shard)
    derived_ids = _ids(target, shard)
    if not source_ids <= derived_ids:
        return None  # the source has documents the derived shard lacks: not a removal
    gone = derived_ids - source_ids
    removed = target.remove_documents(shard, gone)
    entry = target.entry(shard)
    assert entry is not None
    entry.source_sha256 = source_sha256
    write_json_atomic(target.entries_dir / f"{shard}.json", entry.__dict__)
    log.info("%s: %d documents removed upstream, removed here too (not redone)", shard, removed)
    return ShardReport.from_entry(str(source.shard_path(shard)), entry, "synced")


def new_entry(source: DatasetStore, shard: str, source_sha256: str, code_version: str, producer: dict) -> ShardEntry:
    """The manifest entry of a derived shard about to be written from `shard` of `source`."""
    return ShardEntry(
        shard=shard,
        source_path=str(source.shard_path(shard)),
        source_sha256=source_sha256,
        format="parquet",
        code_version=code_version,
        producer=producer,
        source_write_id=source_write_id(source, shard),
    )


def _ids(store: DatasetStore, shard: str) -> set[str]:
    return set(pq.read_table(store.shard_path(shard), columns=["document_id"])["document_id"].to_pylist())
