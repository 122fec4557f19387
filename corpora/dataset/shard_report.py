"""What one shard job (ingest, preprocess, annotate) did with its input: written, skipped, synced or failed.

Every shard step returns a `ShardReport`; the flows total them into the run summary. One skip rule
serves every step: `report_if_current`.

Tested in `tests/corpora/dataset/test_ingest.py`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from corpora.dataset.manifest import ShardEntry
from corpora.dataset.store import DatasetStore


@dataclass
class ShardReport:
    """What happened to one input file: written, skipped (unchanged), or failed (with the error)."""

    path: str
    shard: str
    status: str
    format: str = ""
    documents: int = 0
    passages: int = 0
    entity_types: dict[str, int] = field(default_factory=dict)
    relation_types: dict[str, int] = field(default_factory=dict)
    deletions: int = 0
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_entry(cls, path: str, entry: ShardEntry, status: str) -> ShardReport:
        return cls(
            path=path,
            shard=entry.shard,
            status=status,
            format=entry.format,
            documents=entry.rows,
            passages=entry.passages,
            entity_types=dict(entry.entity_types),
            relation_types=dict(entry.relation_types),
            deletions=len(entry.deletions),
        )


def report_if_current(
    target: DatasetStore, shard: str, source: str, sha256: str, version: str, producer: dict | None = None
) -> ShardReport | None:
    """A `skipped` report when `shard` of `target` was made from the same input by the same code and producer."""
    if not target.is_current(shard, sha256, version, producer):
        return None
    entry = target.entry(shard)
    assert entry is not None
    return ShardReport.from_entry(source, entry, "skipped")
