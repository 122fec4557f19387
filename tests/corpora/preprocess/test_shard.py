"""One preprocessed shard: the skip rule a rerun uses before any flow starts."""

from __future__ import annotations

from pathlib import Path


def test_unchanged_shards_answers_without_a_flow(samples: Path, tmp_path: Path) -> None:
    from corpora.dataset.ingest import ingest_file
    from corpora.dataset.store import DatasetStore
    from corpora.preprocess.shard import preprocess_shard, unchanged_shards

    ds, pre = tmp_path / "ds", tmp_path / "pre"
    report = ingest_file(samples / "bc5cdr" / "CDR_dev_sample.PubTator.txt", ds)
    DatasetStore(ds).write_manifest()
    preprocess_shard(ds, report.shard, pre)
    assert unchanged_shards(ds, pre) is None  # no manifest yet
    DatasetStore(pre).write_manifest()
    assert unchanged_shards(ds, pre) == [report.shard]
    ingest_file(samples / "pubmed" / "pubmed1.xml", ds)  # a new input shard: work to do
    assert unchanged_shards(ds, pre) is None
