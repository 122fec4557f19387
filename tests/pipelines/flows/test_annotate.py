"""The annotate flow: raw PubMed files to an annotated dataset; skipping, resuming, Dask, report."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from corpora.dataset.store import DatasetStore, open_dataset

INPUTS = ["pubmed/pubmed4.xml", "pubmed/pubmed1.xml", "pubmed/test_current_medline.xml.gz"]


def _tables(root: Path) -> dict[str, object]:
    return {p.name: pq.read_table(p) for p in sorted((root / "data").glob("*.parquet"))}


def test_annotate_raw_files_end_to_end(
    samples: Path, tmp_path: Path, tiny_models: dict[str, str], prefect_harness: None
) -> None:
    from pipelines.flows.annotate import annotate_flow

    out = tmp_path / "annotated"
    summary = annotate_flow(
        [str(samples / p) for p in INPUTS], str(out), tiny_models["ner"], tiny_models["re"], progress=False
    )
    assert [r["status"] for r in summary.reports] == ["written"] * 3
    docs = list(open_dataset(out).iter_documents())
    assert len(docs) == 2 + 1 + 4
    annotators = set()
    n = 0
    for doc in docs:
        assert doc.sentences and doc.tokens  # preprocessed on the way
        text = doc.text
        for ent in doc.entities:
            assert ent.annotator and ent.annotator.startswith("ner:") and 0.0 <= ent.score <= 1.0
            assert [text[s:e] for s, e in ent.offsets] == ent.text
            assert ent.type in {"Chemical", "Disease"}
            annotators.add(ent.annotator)
            n += 1
        ids = {e.id for e in doc.entities}
        for rel in doc.relations:
            assert rel.arg1_id in ids and rel.arg2_id in ids and rel.annotator.startswith("re:")
    assert n > 0
    manifest = (out / "manifest.json").read_text()
    assert all(a in manifest for a in annotators)
    assert (out / "report.md").read_text().startswith("# Annotation report")
    assert (out / "scores.png").read_bytes()[:4] == b"\x89PNG"

    # rerun: nothing to do; after a crash that lost one shard, only that shard is redone
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "data").iterdir()}
    again = annotate_flow(
        [str(samples / p) for p in INPUTS], str(out), tiny_models["ner"], tiny_models["re"], progress=False
    )
    assert [r["status"] for r in again.reports] == ["skipped"] * 3
    lost = sorted((out / "data").iterdir())[0]
    lost.unlink()
    resumed = annotate_flow(
        [str(samples / p) for p in INPUTS], str(out), tiny_models["ner"], tiny_models["re"], progress=False
    )
    assert sorted(r["status"] for r in resumed.reports) == ["skipped", "skipped", "written"]
    assert {p.name for p in (out / "data").iterdir()} == set(stamps)


def test_dask_runner_gives_identical_output(
    samples: Path, tmp_path: Path, tiny_models: dict[str, str], prefect_harness: None
) -> None:
    from pipelines.flows.annotate import annotate_flow
    from pipelines.flows.runners import task_runner

    raw = [str(samples / p) for p in INPUTS]
    plain = tmp_path / "plain"
    annotate_flow(raw, str(plain), tiny_models["ner"], tiny_models["re"], progress=False)
    dask_flow = annotate_flow.with_options(task_runner=task_runner(dask_workers=2))
    # the same preprocessed input, annotated on a local Dask cluster of 2 worker processes
    dask_out = tmp_path / "dask"
    dask_flow(
        [str(plain / "_work" / "preprocessed")], str(dask_out), tiny_models["ner"], tiny_models["re"], progress=False
    )
    a, b = _tables(plain), _tables(dask_out)
    assert a.keys() == b.keys() and len(a) == 3
    for name in a:
        assert a[name].equals(b[name]), name


def test_bad_model_directory_is_reported(samples: Path, tmp_path: Path, tiny_models: dict[str, str]) -> None:
    import shutil

    from corpora.errors import ModelError
    from pipelines.cli import main as cli_main

    broken = tmp_path / "ner"
    shutil.copytree(tiny_models["ner"], broken)
    (broken / "labels.json").unlink()
    with pytest.raises(ModelError, match="labels.json"):
        from biomodels.inference.engine import AnnotationEngine

        AnnotationEngine(str(broken))
    out = tmp_path / "out"
    assert (
        cli_main(["annotate", str(samples / INPUTS[0]), "--ner", str(broken), "--out", str(out), "--no-progress"]) == 1
    )
    assert not DatasetStore(out).shard_files()  # nothing partial


def test_annotated_shard_follows_upstream_deletions(
    samples: Path, tmp_path: Path, tiny_models: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from biomodels.inference.annotate_shard import annotate_shard
    from biomodels.inference.engine import AnnotationEngine
    from corpora.dataset.ingest import ingest_file
    from corpora.dataset.store import shard_name_for
    from corpora.preprocess.shard import preprocess_shard

    base = samples / "pubmed/test_current_medline.xml.gz"  # four citations
    ds, pre, out = tmp_path / "ds", tmp_path / "pre", tmp_path / "ann"
    shard = shard_name_for(base)
    ingest_file(base, ds)
    preprocess_shard(ds, shard, pre)
    assert annotate_shard(pre, shard, out, tiny_models["ner"]).status == "written"
    before = {d.document_id: d.to_dict() for d in open_dataset(out).iter_documents(shard)}
    gone = sorted(before)[1]
    update = tmp_path / "zz_update.xml"
    update.write_text(
        f'<?xml version="1.0"?>\n<PubmedArticleSet><DeleteCitation><PMID Version="1">{gone}</PMID>'
        "</DeleteCitation></PubmedArticleSet>\n"
    )
    ingest_file(update, ds)
    assert DatasetStore(ds).reconcile() == {shard: 1}
    assert preprocess_shard(ds, shard, pre).status == "synced"

    def no_model_run(self, docs):
        raise AssertionError("the shard was redone")

    monkeypatch.setattr(AnnotationEngine, "annotate", no_model_run)
    report = annotate_shard(pre, shard, out, tiny_models["ner"])
    assert report.status == "synced"
    after = {d.document_id: d.to_dict() for d in open_dataset(out).iter_documents(shard)}
    assert set(after) == set(before) - {gone} and all(after[k] == before[k] for k in after)


def test_the_producer_and_the_shard_step_share_one_loaded_engine(tiny_models: dict[str, str]) -> None:
    """Loading models takes seconds: `annotate_producer` must hit the cache `annotate_shard` fills."""
    from biomodels.inference.annotate_shard import annotate_producer, cached_engine

    cached_engine.cache_clear()
    annotate_producer(tiny_models["ner"], None, "auto")
    cached_engine(tiny_models["ner"], None, False, "auto")  # as annotate_shard calls it
    assert (cached_engine.cache_info().hits, cached_engine.cache_info().misses) == (1, 1)
