"""The annotation report says what it found, and names only files it wrote."""

from __future__ import annotations

from pathlib import Path

from corpora.dataset.manifest import ShardEntry
from corpora.dataset.store import DatasetStore
from corpora.formats import read_documents
from pipelines.flows.annotation_report import markdown, write_report, written_outputs


def test_an_empty_result_says_so_and_claims_no_histograms(samples: Path, tmp_path: Path) -> None:
    docs = list(read_documents(samples / "bc5cdr" / "CDR_dev_sample.PubTator.txt"))
    for doc in docs:  # gold annotations carry no annotator: the report counts only model output
        assert all(not e.annotator for e in doc.entities)
    out = tmp_path / "annotated"
    entry = ShardEntry(shard="s", source_path="x", source_sha256="0" * 64, format="pubtator", code_version="t")
    DatasetStore(out).write_shard("s", docs, entry)
    (out / "scores.png").write_bytes(b"\x89PNG stale")  # left by an earlier run
    text, stats = write_report(out, {"ner": "ner:x@0"})
    assert stats["documents"] == len(docs) and not stats["entities"]
    assert "The models found no entities or relations in these documents." in text
    assert not (out / "scores.png").exists()
    assert written_outputs(out) == f"report {out / 'report.md'}, no score histograms (nothing was predicted)"


def test_an_empty_dataset_is_named_as_such() -> None:
    stats = {"documents": 0, "entities": {}, "relations": {}, "entity_scores": {}, "relation_scores": {}}
    assert "(the dataset is empty)" in markdown({**stats, "examples": []}, {}, None)
