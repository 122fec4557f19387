"""`biomed preprocess`: two worker processes give what one process gives; a rerun does nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpora.dataset.ingest import ingest_file
from corpora.dataset.store import open_dataset
from pipelines.cli import main


def test_preprocess_with_workers_matches_one_process_and_reruns_nothing(
    samples: Path, tmp_path: Path, prefect_harness: None, capsys: pytest.CaptureFixture
) -> None:
    ds = tmp_path / "ds"
    ingest_file(samples / "ncbi-disease/NCBI_devel_sample.PubTator.txt", ds)
    ingest_file(samples / "pubmed/pubmed4.xml", ds)
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["preprocess", str(ds), "--out", str(one), "--no-progress"]) == 0
    assert main(["preprocess", str(ds), "--out", str(two), "--workers", "2", "--no-progress"]) == 0
    assert "2 written" in capsys.readouterr().out
    docs = [d.to_dict() for d in open_dataset(one).iter_documents()]
    assert docs == [d.to_dict() for d in open_dataset(two).iter_documents()]
    assert all(d["sentences"] and d["tokens"] for d in docs)
    assert main(["preprocess", str(ds), "--out", str(two), "--workers", "2", "--no-progress"]) == 0
    assert capsys.readouterr().out.startswith("nothing to do: 2 shard(s)")  # before any flow started
    assert main(["preprocess", str(tmp_path / "missing"), "--out", str(two)]) == 2
