"""The preprocess flow over a dataset: offsets added, reruns skipped, pipeline changes redone."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpora.dataset.ingest import ingest_file
from corpora.dataset.store import DatasetStore, open_dataset


@pytest.fixture()
def small_dataset(samples: Path, tmp_path: Path) -> Path:
    out = tmp_path / "ds"
    for rel in (
        "pubmed/pubmed4.xml",
        "pubmed/test_current_medline.xml.gz",
        "ncbi-disease/NCBI_devel_sample.PubTator.txt",
    ):
        ingest_file(samples / rel, out)
    return out


def test_preprocess_flow_adds_offsets_and_skips_reruns(
    small_dataset: Path, tmp_path: Path, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import corpora.preprocess.shard as ps
    from pipelines.flows.preprocess import preprocess_flow

    out = tmp_path / "pre"
    first = preprocess_flow(str(small_dataset), str(out), progress=False)
    assert [r["status"] for r in first.reports] == ["written"] * 3
    src = {d.id: d for d in open_dataset(small_dataset).iter_documents()}
    docs = list(open_dataset(out).iter_documents())
    assert len(docs) == len(src) == 1 + 4 + 25
    for doc in docs:
        assert doc.passages == src[doc.id].passages and doc.entities == src[doc.id].entities  # text never rewritten
        text = doc.text
        assert doc.sentences and doc.tokens
        for s in doc.sentences:
            assert text[s.start : s.end].strip() == text[s.start : s.end] != ""
        for t in doc.tokens:
            assert text[t.start : t.end].strip() == text[t.start : t.end] != ""
        for a in doc.abbreviations:
            assert text[a.short_offsets[0] : a.short_offsets[1]] == a.short_form
            assert text[a.long_offsets[0] : a.long_offsets[1]] == a.long_form
    manifest = (out / "manifest.json").read_text()
    assert "abbreviation_detector" in manifest and "scispacy" in manifest

    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "data").iterdir()}
    again = preprocess_flow(str(small_dataset), str(out), progress=False)
    assert [r["status"] for r in again.reports] == ["skipped"] * 3
    assert {p.name: p.stat().st_mtime_ns for p in (out / "data").iterdir()} == stamps

    # a different pipeline fingerprint (another model or version) redoes every shard
    real = ps.preprocess_producer
    monkeypatch.setattr(
        ps, "preprocess_producer", lambda m=None: {"preprocess": {**real(m)["preprocess"], "hash": "changed"}}
    )
    redo = preprocess_flow(str(small_dataset), str(out), progress=False)
    assert [r["status"] for r in redo.reports] == ["written"] * 3

    # a shard whose input disappeared is removed from the output
    gone = DatasetStore(small_dataset).shard_files()[0]
    gone.unlink()
    monkeypatch.setattr(ps, "preprocess_producer", real)
    preprocess_flow(str(small_dataset), str(out), progress=False)
    assert gone.name not in {p.name for p in (out / "data").iterdir()}


def test_shards_share_one_worker_pool(
    small_dataset: Path, tmp_path: Path, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import corpora.preprocess.pool as pp
    import corpora.preprocess.shard as ps
    from pipelines.flows.preprocess import preprocess_flow

    started = []
    real_init = pp.PreprocessPool.__init__

    def counting_init(self, *args, **kwargs):
        started.append(args)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(pp.PreprocessPool, "__init__", counting_init)
    preprocess_flow(str(small_dataset), str(tmp_path / "one"), progress=False)
    assert started == []
    two = preprocess_flow(str(small_dataset), str(tmp_path / "two"), workers=2, progress=False)
    assert [r["status"] for r in two.reports] == ["written"] * 3
    assert started == [(None, 2)]  # one pool of two processes for all three shards
    assert ps._POOLS == {}  # stopped at the end of the run
    one = {d.id: d.to_dict() for d in open_dataset(tmp_path / "one").iter_documents()}
    assert {d.id: d.to_dict() for d in open_dataset(tmp_path / "two").iter_documents()} == one


def test_upstream_removals_are_applied_not_redone(
    samples: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gzip
    import re

    import corpora.preprocess.shard as pre
    from corpora.dataset.store import shard_name_for
    from corpora.preprocess.shard import preprocess_shard

    base = samples / "pubmed/medline16n0902.xml.gz"
    raw = gzip.open(base).read().decode()
    pmids = re.findall(r"<MedlineCitation [^>]*>\s*<PMID[^>]*>(\d+)</PMID>", raw)
    update = tmp_path / "medline16n0903.xml"
    update.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<MedlineCitationSet>\n'
        + f'<DeleteCitation><PMID Version="1">{pmids[5]}</PMID><PMID Version="1">{pmids[9]}</PMID></DeleteCitation>\n'
        + "</MedlineCitationSet>\n"
    )
    ds, out = tmp_path / "ds", tmp_path / "pre"
    shard = shard_name_for(base)
    ingest_file(base, ds)
    assert preprocess_shard(ds, shard, out).status == "written"
    before = {d.document_id: d.to_dict() for d in open_dataset(out).iter_documents(shard)}

    ingest_file(update, ds)
    assert DatasetStore(ds).reconcile() == {shard: 2}

    def no_pipeline(*args, **kwargs):
        raise AssertionError("the shard was redone")

    monkeypatch.setattr(pre, "preprocess_documents", no_pipeline)
    report = preprocess_shard(ds, shard, out)
    assert report.status == "synced" and report.documents == 602
    after = {d.document_id: d.to_dict() for d in open_dataset(out).iter_documents(shard)}
    assert set(after) == set(before) - {pmids[5], pmids[9]}
    assert all(after[k] == before[k] for k in after)  # the remaining documents are untouched
    assert preprocess_shard(ds, shard, out).status == "skipped"  # the new source hash is recorded
    monkeypatch.undo()

    # a new write of the source (ingest --force) is new content: redone, not synced
    ingest_file(base, ds, force=True)
    assert preprocess_shard(ds, shard, out).status == "written"
    assert len(list(open_dataset(out).iter_documents(shard))) == 604
