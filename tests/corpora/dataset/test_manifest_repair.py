"""The manifest follows the shards found on disk, whatever a killed run left (issue 14, item 5)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from corpora.dataset.manifest import ShardEntry, read_entry, write_json_atomic
from corpora.dataset.manifest_repair import file_write_id, repair_manifest, table_counts
from corpora.dataset.store import DatasetStore
from tests.corpora.dataset.test_store import make_doc


def five_docs(root: Path) -> DatasetStore:
    store = DatasetStore(root)
    store.write_shard("s", [make_doc(i) for i in range(5)], ShardEntry("s", "in.txt", "abc", "pubtator", "v1"))
    store.write_manifest({"pipeline": {"name": "kept"}})
    return store


def test_remove_documents_killed_after_the_rename_is_repaired(tmp_path: Path) -> None:
    """The reported bug: data has 4 rows, the entry and manifest.json said 5, and a rerun kept it so."""
    store = five_docs(tmp_path)
    stale_entry = (store.entries_dir / "s.json").read_text()
    assert store.remove_documents("s", {"1002"}) == 1
    (store.entries_dir / "s.json").write_text(stale_entry)  # as if killed between the two renames
    store.write_manifest({"pipeline": {"name": "kept"}})
    assert json.loads(store.manifest_path.read_text())["rows"] == 5
    repairs = repair_manifest(store)
    assert repairs == [
        "s: entry said 5 rows, the shard has 4; recounted",
        "manifest.json rewritten from the shard entries (4 rows in 1 shards)",
    ]
    entry = read_entry(store.entries_dir / "s.json")
    assert (entry.rows, entry.passages, entry.entities, entry.relations, entry.removed_later) == (4, 8, 8, 4, 1)
    assert entry.entity_types == {"Chemical": 4, "Disease": 4}
    manifest = json.loads(store.manifest_path.read_text())
    assert manifest["rows"] == 4 and manifest["shards"]["s"]["rows"] == 4
    assert manifest["pipeline"] == {"name": "kept"}  # the run's own keys survive
    assert repair_manifest(store) == []  # nothing left to repair


def test_an_entry_of_an_earlier_write_is_dropped_so_the_shard_is_written_again(tmp_path: Path) -> None:
    store = five_docs(tmp_path)
    old_entry = (store.entries_dir / "s.json").read_text()
    store.write_shard("s", [make_doc(i) for i in range(3)], ShardEntry("s", "in.txt", "def", "pubtator", "v1"))
    (store.entries_dir / "s.json").write_text(old_entry)  # killed after the shard's rename
    assert file_write_id(store.shard_path("s")) != json.loads(old_entry)["write_id"]
    repairs = repair_manifest(store)
    assert repairs[0] == "s: entry of an earlier write than the shard file deleted; it is written again"
    assert store.entry("s") is None and not store.is_current("s", "abc", "v1")
    assert json.loads(store.manifest_path.read_text())["shards"] == {}


def test_entries_without_shards_and_unreadable_entries_are_deleted(tmp_path: Path) -> None:
    store = five_docs(tmp_path)
    shutil.copy(store.entries_dir / "s.json", store.entries_dir / "gone.json")
    entry = json.loads((store.entries_dir / "gone.json").read_text())
    write_json_atomic(store.entries_dir / "gone.json", {**entry, "shard": "gone"})
    (store.entries_dir / "broken.json").write_text("{not json")
    repairs = repair_manifest(store)
    assert "gone: entry without a shard file deleted" in repairs
    assert any(r.startswith("broken.json: unreadable entry deleted") for r in repairs)
    assert sorted(p.name for p in store.entries_dir.iterdir()) == ["s.json"]


def test_table_counts_match_what_write_shard_counts(tmp_path: Path) -> None:
    store = five_docs(tmp_path)
    entry = store.entry("s")
    counts = table_counts(pq.read_table(store.shard_path("s")))
    assert counts == {k: getattr(entry, k) for k in counts}
