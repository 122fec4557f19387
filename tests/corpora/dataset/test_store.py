"""The Parquet store: round trips, readers of other libraries, atomic writes, deletions."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.dataset as pads
import pytest

from corpora.dataset.manifest import ShardEntry
from corpora.dataset.store import DatasetStore, open_dataset
from corpora.schema import Abbreviation, Document, Entity, MeshTerm, Metadata, Normalization, Passage, Relation, Span
from tests.helpers.paths import ROOT


def make_doc(i: int) -> Document:
    title = f"Aspirin reduces fever in patient {i}."
    abstract = "Acetylsalicylic acid (ASA) is an NSAID."
    text_len = len(title)
    return Document(
        id=str(i),
        document_id=str(1000 + i),
        passages=[
            Passage(f"{i}-0", "title", title, [[0, len(title)]]),
            Passage(f"{i}-1", "abstract", abstract, [[text_len + 1, text_len + 1 + len(abstract)]]),
        ],
        entities=[
            Entity(
                f"{i}-T1",
                "Chemical",
                ["Aspirin"],
                [[0, 7]],
                [Normalization("MESH", "D001241")],
                score=0.5,
                annotator="test",
            ),
            Entity(f"{i}-T2", "Disease", ["fever"], [[16, 21]]),
        ],
        relations=[Relation(f"{i}-R1", "treats", f"{i}-T1", f"{i}-T2")],
        sentences=[Span(0, text_len)],
        tokens=[Span(0, 7), Span(8, 15)],
        abbreviations=[
            Abbreviation(
                f"{i}-A1", "ASA", "Acetylsalicylic acid", [text_len + 23, text_len + 26], [text_len + 1, text_len + 21]
            )
        ],
        metadata=Metadata(
            journal="J Test",
            year=2020,
            mesh_terms=[MeshTerm("D001241", "Aspirin", True, ["therapeutic use"])],
            publication_types=["Journal Article"],
        ),
    )


def write(store: DatasetStore, shard: str, docs: list[Document], fmt: str = "test") -> ShardEntry:
    entry = ShardEntry(
        shard=shard, source_path=f"/src/{shard}.xml", source_sha256="x" * 64, format=fmt, code_version="v"
    )
    return store.write_shard(shard, docs, entry)


def test_round_trip_preserves_every_field(tmp_path: Path) -> None:
    docs = [make_doc(i) for i in range(5)]
    store = DatasetStore(tmp_path)
    entry = write(store, "a", docs)
    assert entry.rows == 5 and entry.entities == 10 and entry.entity_types == {"Chemical": 5, "Disease": 5}
    back = list(open_dataset(tmp_path).iter_documents())
    assert back == docs
    # offsets in the fixture are real: check them so the fixture itself cannot drift
    d = back[0]
    assert d.text[0:7] == "Aspirin" and d.text[16:21] == "fever"
    a = d.abbreviations[0]
    assert d.text[a.short_offsets[0] : a.short_offsets[1]] == "ASA"
    assert d.text[a.long_offsets[0] : a.long_offsets[1]] == "Acetylsalicylic acid"


def test_other_libraries_read_the_dataset(tmp_path: Path) -> None:
    import datasets
    import duckdb
    import pandas as pd
    import polars as pl

    store = DatasetStore(tmp_path)
    write(store, "a", [make_doc(i) for i in range(3)])
    write(store, "b", [make_doc(i) for i in range(3, 7)])
    pattern = str(tmp_path / "data" / "*.parquet")
    assert pads.dataset(str(tmp_path / "data")).count_rows() == 7
    assert len(pd.read_parquet(tmp_path / "data")) == 7
    assert pl.read_parquet(pattern).height == 7
    n, types = duckdb.sql(
        f"select count(*), count(distinct e.type) from (select unnest(entities) as e from read_parquet('{pattern}'))"
    ).fetchall()[0]
    assert (n, types) == (14, 2)
    ds = datasets.load_dataset("parquet", data_files=pattern, split="train")
    assert ds.num_rows == 7
    # features restored from the schema metadata: list of struct, not Sequence of dict
    assert isinstance(ds.features["entities"], datasets.List)
    assert ds[0]["entities"][0]["offsets"] == [[0, 7]]
    assert ds[0]["metadata"]["mesh_terms"][0]["qualifiers"] == ["therapeutic use"]


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    from tests.corpora.dataset.test_store import make_doc, write
    from corpora.dataset.store import DatasetStore

    def slow_docs():
        for i in range(100000):
            if i == 3000:
                print("halfway", flush=True)
                time.sleep(60)
            yield make_doc(i)

    write(DatasetStore({out!r}), "a", slow_docs())
    """
)


def test_killed_write_leaves_previous_dataset_intact(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "ds")
    write(store, "a", [make_doc(i) for i in range(10)])
    before = (tmp_path / "ds" / "data" / "a.parquet").read_bytes()
    script = tmp_path / "kill.py"
    root = str(ROOT)
    script.write_text(KILL_SCRIPT.format(root=root, out=str(tmp_path / "ds")))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "halfway"  # a row group is already on disk in .staging
    assert any((tmp_path / "ds" / ".staging").iterdir())
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert (tmp_path / "ds" / "data" / "a.parquet").read_bytes() == before
    reopened = open_dataset(tmp_path / "ds")
    assert [d.id for d in reopened.iter_documents()] == [str(i) for i in range(10)]
    assert reopened.dataset().count_rows() == 10  # staging leftovers are not part of the dataset
    reopened.clear_staging()
    assert not (tmp_path / "ds" / ".staging").exists()


def test_failed_iteration_keeps_previous_shard(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    write(store, "a", [make_doc(1)])

    def broken():
        yield make_doc(2)
        raise ValueError("bad record")

    with pytest.raises(ValueError):
        write(store, "a", broken())
    assert [d.id for d in store.iter_documents()] == ["1"]
    assert list((tmp_path / ".staging").iterdir()) == []


def test_reconcile_applies_deletions_and_newer_versions(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    base = [make_doc(i) for i in range(4)]  # document_ids 1000..1003
    write(store, "base", base, fmt="pubmed-xml")
    revised = make_doc(2)
    revised.passages[0].text = revised.passages[0].text.replace("Aspirin", "ASPIRIN")
    update_entry = ShardEntry(
        shard="upd", source_path="/src/zz-update.xml", source_sha256="y" * 64, format="pubmed-xml", code_version="v"
    )
    update_entry.deletions = ["1000"]
    store.write_shard("upd", [revised], update_entry)
    # a PubTator shard with the same PMID is not MEDLINE data: it must be left alone
    write(store, "other", [make_doc(0)], fmt="pubtator")
    removed = store.reconcile()
    assert removed == {"base": 2}
    ids = sorted((d.document_id, d.passages[0].text[:7], d.source.path) for d in store.iter_documents())
    assert [i[0] for i in ids] == ["1000", "1001", "1002", "1003"]  # 1000 kept only in the pubtator shard
    assert ("1002", "ASPIRIN", "") in ids
    assert (tmp_path / ".staging").is_dir()
    manifest = store.write_manifest()
    assert not (tmp_path / ".staging").exists()  # a finished run leaves no empty staging folder
    assert manifest["rows"] == 4
    assert manifest["shards"]["base"]["removed_later"] == 2
    assert json.loads((tmp_path / "manifest.json").read_text())["shards"]["upd"]["deletions"] == ["1000"]


def _medline(store: DatasetStore, shard: str, ids: list[int], deletions: list[int] = ()) -> None:
    """A pubmed-xml shard from source file `{shard}.xml` (names sort in publication order)."""
    entry = ShardEntry(
        shard=shard, source_path=f"/src/{shard}.xml", source_sha256="s" * 64, format="pubmed-xml", code_version="v"
    )
    entry.deletions = [str(1000 + i) for i in deletions]
    store.write_shard(shard, [make_doc(i) for i in ids], entry)


def _ids(store: DatasetStore) -> dict[str, list[int]]:
    return {s: sorted(int(d.document_id) - 1000 for d in store.iter_documents(s)) for s in sorted(store.shard_names())}


def test_reconcile_is_incremental_and_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = DatasetStore(tmp_path)
    _medline(store, "b1", [1, 2, 3, 4, 5])
    _medline(store, "b2", [6, 7, 8, 9, 10])
    _medline(store, "u1", [3], deletions=[7])  # 3 revised, 7 deleted
    assert store.reconcile() == {"b1": 1, "b2": 1}
    assert _ids(store) == {"b1": [1, 2, 4, 5], "b2": [6, 8, 9, 10], "u1": [3]}

    # nothing written since: no shard is read at all
    import pyarrow.parquet as pq

    reads: list[tuple[str, str]] = []
    real_read = pq.read_table

    def counting_read(path, *args, **kwargs):
        if Path(path).parent.name == "data":  # shard files, not the staged copy a rewrite validates
            reads.append(("ids" if kwargs.get("columns") == ["document_id"] else "full", Path(path).stem))
        return real_read(path, *args, **kwargs)

    monkeypatch.setattr(pq, "read_table", counting_read)
    assert store.reconcile() == {}
    assert reads == []

    # a new update file: earlier shards are checked by their id column, rewritten where touched
    _medline(store, "u2", [1, 3], deletions=[9])
    reads.clear()
    assert store.reconcile() == {"b1": 1, "b2": 1, "u1": 1}
    assert _ids(store) == {"b1": [2, 4, 5], "b2": [6, 8, 10], "u1": [], "u2": [1, 3]}
    assert sorted(stem for kind, stem in reads if kind == "full") == ["b1", "b2", "u1"]
    _medline(store, "u3", [8])
    reads.clear()
    assert store.reconcile() == {"b2": 1}
    assert [stem for kind, stem in reads if kind == "full"] == ["b2"]  # the only shard it touches
    assert sorted(stem for kind, stem in reads if kind == "ids") == ["b1", "b2", "u1", "u2", "u3"]

    # b1 rewritten from the same bytes by the same code (ingest --force): it is new content again
    _medline(store, "b1", [1, 2, 3, 4, 5])
    assert store.reconcile() == {"b1": 2}
    assert _ids(store)["b1"] == [2, 4, 5]

    # u1 replaced by a different file: checked against the later u2, and earlier shards against it
    _medline(store, "u1", [3, 11, 6], deletions=[2])
    assert store.reconcile() == {"b1": 1, "b2": 1, "u1": 1}
    assert _ids(store) == {"b1": [4, 5], "b2": [10], "u1": [6, 11], "u2": [1, 3], "u3": [8]}

    # an unreadable record means: check everything (same result, nothing more to remove)
    (tmp_path / "reconciled.json").write_text("{not json")
    assert store.reconcile() == {}
    assert _ids(store) == {"b1": [4, 5], "b2": [10], "u1": [6, 11], "u2": [1, 3], "u3": [8]}


def test_full_disk_at_the_manifest_names_the_dataset_and_keeps_the_shards(tmp_path: Path, monkeypatch) -> None:
    """ENOSPC while writing manifest.json: a StoreError saying what to do, every shard still readable."""
    import errno
    import os as os_module

    from corpora.dataset import manifest as manifest_module
    from corpora.errors import StoreError

    store = DatasetStore(tmp_path / "ds")
    write(store, "a", [make_doc(i) for i in range(3)])
    store.write_manifest()
    before = store.manifest_path.read_bytes()
    real_fsync = os_module.fsync

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, os_module.strerror(errno.ENOSPC))

    monkeypatch.setattr(manifest_module.os, "fsync", full_disk)
    with pytest.raises(StoreError) as err:
        store.write_manifest()
    monkeypatch.setattr(manifest_module.os, "fsync", real_fsync)
    assert str(err.value) == (
        f"{store.manifest_path}: cannot write into the dataset {store.root}: No space left on device; free disk "
        "space there, then rerun (shards already written are kept and skipped)"
    )
    assert store.manifest_path.read_bytes() == before  # the old manifest, not a half one
    assert [d.id for d in store.iter_documents()] == ["0", "1", "2"]
    assert [p.name for p in store.manifest_path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_read_only_dataset_names_the_input_and_what_to_do(tmp_path: Path, monkeypatch) -> None:
    """A read-only data/ (simulated: tests may run as root, for whom chmod does not forbid): the
    failed shard names its input file; the previous shard is untouched."""
    import errno
    import os as os_module

    from corpora.dataset import store as store_module
    from corpora.errors import StoreError

    store = DatasetStore(tmp_path / "ds")
    write(store, "a", [make_doc(1)])
    real_replace = os_module.replace

    def read_only(src, dst) -> None:
        if Path(dst).parent == store.data_dir:
            raise PermissionError(errno.EACCES, os_module.strerror(errno.EACCES), str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(store_module.os, "replace", read_only)
    entry = ShardEntry("a", "/inputs/corpus.PubTator.txt", "new", "pubtator", "v1")
    with pytest.raises(StoreError) as err:
        store.write_shard("a", [make_doc(2)], entry)
    assert str(err.value) == (
        f"/inputs/corpus.PubTator.txt: cannot write into the dataset {store.root}: Permission denied "
        f"({store.shard_path('a')}); make the folder writable for this user (or choose another --out), then rerun"
    )
    monkeypatch.setattr(store_module.os, "replace", real_replace)
    assert [d.id for d in store.iter_documents()] == ["1"]
    assert list(store.staging_dir.iterdir()) == []  # the staged file is removed
