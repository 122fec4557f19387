"""`biomed run`: the whole pipeline in one command, on a bundled sample with given models."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpora.dataset.store import open_dataset
from pipelines.cli import main
from pipelines.flows.run import DEFAULT_INPUTS


def test_default_inputs_are_the_bundled_pubmed_samples() -> None:
    folder = Path(DEFAULT_INPUTS[0])
    assert folder.is_dir() and any(p.name.endswith((".xml", ".xml.gz")) for p in folder.iterdir())


def test_run_ingests_preprocesses_annotates_and_reruns_nothing(
    samples: Path, tmp_path: Path, tiny_models: dict[str, str], prefect_harness: None, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    args = ["run", str(samples / "pubmed/pubmed1.xml"), "--out", str(out), "--no-progress"]
    args += ["--ner", tiny_models["ner"], "--re", tiny_models["re"]]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "== ingest" in text and "== preprocess" in text and "== annotate" in text and "1 written" in text
    docs = list(open_dataset(out / "annotated").iter_documents())
    assert len(docs) == 2 and all(d.sentences and d.tokens for d in docs)  # pubmed1.xml holds two citations
    assert all(e.annotator.startswith("ner:") for d in docs for e in d.entities)
    assert (out / "annotated" / "report.md").is_file()
    assert not (out / "models").exists()  # given models: no demo training
    assert main(args) == 0
    again = capsys.readouterr().out
    assert "0 written" in again and "skipped" in again
