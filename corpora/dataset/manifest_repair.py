"""Make the manifest agree with the shards found on disk, whatever moment the previous run died.

Why: a shard and its manifest entry are two files, renamed one after the other. A run killed
between the two renames leaves an entry that counts rows the shard no longer has (a kill inside
`remove_documents`), or an entry of an older write beside a newer shard (a kill inside
`write_shard`). Every write run starts with `repair_manifest`, which checks each shard against its
entry from the Parquet footer alone (row count and the `biomed_write_id` written into the file's
metadata; no data pages are read) and fixes what disagrees:

- an entry whose shard file is gone is deleted;
- an entry of another write than the file's is deleted, so the run writes that shard again;
- an entry whose row count differs is recounted from the shard (rows, passages, entity and
  relation counts), the difference added to `removed_later`;
- manifest.json is rewritten when its shards or rows differ from the entries.

Tested in `tests/corpora/dataset/test_manifest_repair.py`.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corpora.dataset.manifest import ShardEntry, read_entry, write_json_atomic
from corpora.errors import StoreError

log = logging.getLogger(__name__)

WRITE_ID_KEY = b"biomed_write_id"
_MANIFEST_OWN_KEYS = ("schema_version", "updated_at", "rows", "shards")


def table_counts(table: pa.Table) -> dict[str, Any]:
    """The counts a manifest entry records, computed from a shard's table (passages, entities, relations)."""

    def types(column: str) -> dict[str, int]:
        flat = pc.list_flatten(table[column])
        if len(flat) == 0:
            return {}
        counts = Counter(pc.struct_field(flat, "type").to_pylist())
        return dict(sorted(counts.items()))

    entity_types, relation_types = types("entities"), types("relations")
    return {
        "rows": table.num_rows,
        "passages": int(pc.sum(pc.list_value_length(table["passages"])).as_py() or 0),
        "entities": sum(entity_types.values()),
        "relations": sum(relation_types.values()),
        "entity_types": entity_types,
        "relation_types": relation_types,
    }


def file_write_id(path: Path) -> str | None:
    """The `write_id` recorded in a shard file's metadata (None for files written before it was)."""
    return _write_id(pq.read_metadata(path))


def _write_id(footer: pq.FileMetaData) -> str | None:
    value = (footer.metadata or {}).get(WRITE_ID_KEY)
    return value.decode() if value else None


def repair_manifest(store: Any) -> list[str]:
    """Fix the entries and manifest.json of `store` (a `DatasetStore`) to match its shards; return
    one line per repair (empty when everything agreed). Needs the dataset's write lock."""
    repairs: list[str] = []
    if not store.entries_dir.is_dir():
        return repairs
    for entry_path in sorted(store.entries_dir.glob("*.json")):
        try:
            entry = read_entry(entry_path)
        except (OSError, ValueError, TypeError) as exc:
            entry_path.unlink()
            repairs.append(f"{entry_path.name}: unreadable entry deleted ({exc}); its shard will be written again")
            continue
        shard_path = store.shard_path(entry.shard)
        if not shard_path.exists():
            entry_path.unlink()
            repairs.append(f"{entry.shard}: entry without a shard file deleted")
            continue
        try:
            footer = pq.read_metadata(shard_path)
            written_by, rows = _write_id(footer), footer.num_rows
        except (OSError, pa.ArrowInvalid) as exc:
            raise StoreError(f"{shard_path}: cannot read the shard's footer ({exc}); delete it and rerun") from exc
        if written_by is not None and entry.write_id and written_by != entry.write_id:
            entry_path.unlink()
            repairs.append(f"{entry.shard}: entry of an earlier write than the shard file deleted; it is written again")
            continue
        if rows != entry.rows:
            repairs.append(f"{entry.shard}: entry said {entry.rows} rows, the shard has {rows}; recounted")
            _recount(store, entry, shard_path)
            write_json_atomic(entry_path, entry.__dict__)
    repairs += _repair_consolidated(store)
    for line in repairs:
        log.warning("%s: manifest repaired: %s", store.root, line)
    return repairs


def _recount(store: Any, entry: ShardEntry, shard_path: Path) -> None:
    table = pq.read_table(shard_path, columns=["passages", "entities", "relations"])
    counts = table_counts(table)
    if counts["rows"] < entry.rows:
        entry.removed_later += entry.rows - counts["rows"]
    for key, value in counts.items():
        setattr(entry, key, value)


def _repair_consolidated(store: Any) -> list[str]:
    path: Path = store.manifest_path
    if not path.is_file():
        return []
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = {}
    entries = store.entries()
    want_rows = sum(e.rows for e in entries.values())
    shards = old.get("shards") if isinstance(old, dict) else None
    same = (
        isinstance(shards, dict)
        and old.get("rows") == want_rows
        and set(shards) == set(entries)
        and all(shards[name].get("rows") == e.rows for name, e in entries.items())
    )
    if same:
        return []
    extra = {k: v for k, v in old.items() if k not in _MANIFEST_OWN_KEYS} if isinstance(old, dict) else {}
    store.write_manifest(extra)
    return [f"manifest.json rewritten from the shard entries ({want_rows} rows in {len(entries)} shards)"]


__all__ = ["WRITE_ID_KEY", "file_write_id", "repair_manifest", "table_counts"]
