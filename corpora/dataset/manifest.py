"""The dataset manifest: one entry per shard, recording where it came from and what made it.

Each shard's entry is its own small JSON file in `_shards/` (so parallel tasks never write the same
file), and `manifest.json` at the dataset root is the consolidated view, rebuilt after every run.
Both are written atomically (temporary file, fsync, rename).

Tested in `tests/corpora/dataset/test_store.py`.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from corpora.file_modes import apply_umask
from corpora.schema import SCHEMA_VERSION


@dataclass
class ShardEntry:
    shard: str
    source_path: str
    source_sha256: str
    format: str
    code_version: str
    producer: dict[str, Any] = field(default_factory=dict)  # e.g. preprocessing pipeline or model versions
    schema_version: str = SCHEMA_VERSION
    rows: int = 0
    passages: int = 0
    entities: int = 0
    relations: int = 0
    entity_types: dict[str, int] = field(default_factory=dict)
    relation_types: dict[str, int] = field(default_factory=dict)
    deletions: list[str] = field(default_factory=list)
    removed_later: int = 0  # documents since removed by deletions or newer versions in later shards
    written_at: str = ""
    write_id: str = ""  # unique per write of the shard (a forced rewrite of the same input gets a new one)
    source_write_id: str = ""  # derived shards: the `write_id` of the source shard they were made from

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShardEntry:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON beside `path`, fsync, then rename over it: readers see the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True, ensure_ascii=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        apply_umask(tmp)  # mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_entry(path: Path) -> ShardEntry:
    return ShardEntry.from_dict(json.loads(path.read_text(encoding="utf-8")))


def entry_to_dict(entry: ShardEntry) -> dict[str, Any]:
    return asdict(entry)
